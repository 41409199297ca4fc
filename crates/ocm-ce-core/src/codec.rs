//! The codec trait: converts resources to and from CloudEvents for one or more data types.

use cloudevents::Event;
use thiserror::Error;

use crate::event_type::{DataType, EventType};

/// Why an event could not be decoded or a resource not encoded; the kind feeds metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodecErrorKind {
    /// The event type does not parse.
    MalformedType,
    /// The data type has no codec.
    UnknownDataType,
    /// A required extension is missing or has the wrong type.
    BadExtension,
    /// The data does not decode.
    BadData,
    /// The decoded resource fails validation.
    Invalid,
    /// The resource cannot be encoded.
    Encode,
}

impl CodecErrorKind {
    /// A short label for metrics (`malformed_type`, `unknown_data_type`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedType => "malformed_type",
            Self::UnknownDataType => "unknown_data_type",
            Self::BadExtension => "bad_extension",
            Self::BadData => "bad_data",
            Self::Invalid => "invalid",
            Self::Encode => "encode",
        }
    }
}

/// A codec failure; the message reproduces the Go codec's text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct CodecError {
    kind: CodecErrorKind,
    message: String,
}

impl CodecError {
    /// A codec error of `kind` with the given message.
    pub fn new(kind: CodecErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> CodecErrorKind {
        self.kind
    }
}

/// Converts resources of type `T` to and from CloudEvents (Go `generic.Codec`). One codec may
/// serve several data types; the clients pick it by the data type of the event type.
pub trait Codec<T>: Send + Sync {
    /// The data types this codec handles.
    fn data_types(&self) -> &[DataType];

    /// Encodes `resource` as an event of `event_type` sent by `source`.
    fn encode(&self, source: &str, event_type: &EventType, resource: &T) -> Result<Event, CodecError>;

    /// Decodes a received event.
    fn decode(&self, event: &Event) -> Result<T, CodecError>;

    /// True when this codec handles `data_type`.
    fn handles(&self, data_type: &DataType) -> bool {
        self.data_types().contains(data_type)
    }
}
