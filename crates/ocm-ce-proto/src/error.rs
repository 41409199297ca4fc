//! The error of this crate.

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a CloudEvent could not be converted to or from its protobuf message.
///
/// The messages follow the Go SDK's wording where a Go peer has one (for example
/// `extension:resourceversion: cannot convert 2147483648 to int32: out of range`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message is neither a binary-mode nor a structured-mode CloudEvent: it has no
    /// attributes at all, or an unknown `spec_version`, or a `contenttype` naming an unknown
    /// `application/cloudevents…` format. Go drops such messages.
    #[error("unknown message encoding: {reason}")]
    UnknownEncoding {
        /// What the message lacks (e.g. "the event has no type").
        reason: String,
    },
    /// A structured-mode message in an event format this binding cannot read (batches).
    #[error("unsupported event format {media_type:?}")]
    UnsupportedFormat {
        /// The `contenttype` of the message.
        media_type: String,
    },
    /// The payload of a structured-mode message is not a JSON CloudEvent.
    #[error("invalid structured event: {reason}")]
    InvalidStructuredEvent {
        /// What the JSON parser said.
        reason: String,
    },
    /// An attribute value of the message cannot be converted (no value set, a `ce_uri` that is
    /// not a URL, a timestamp out of range).
    #[error("failed to convert attribute {name}: {reason}")]
    InvalidAttributeValue {
        /// The attribute key, as in the message.
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A context attribute got a value of the wrong type or form.
    #[error("invalid value for {name}: {reason}")]
    InvalidAttribute {
        /// The attribute name (`id`, `time`, …).
        name: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// An extension name CloudEvents does not allow (it must be ASCII letters and digits and
    /// must not be a context attribute name).
    #[error("invalid extension name {name:?}: {reason}")]
    InvalidExtensionName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An extension value that has no protobuf representation (an integer outside `i32`).
    #[error("extension:{name}: {reason}")]
    InvalidExtension {
        /// The extension name.
        name: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// The event fails CloudEvents validation (blank `id`, `source` or `type`, an
    /// unparsable `datacontenttype`, …). Go's SDK refuses to send such events and drops them
    /// on receipt.
    #[error("invalid event: {reason}")]
    InvalidEvent {
        /// The validation failures, `attribute: reason`, sorted, one per line (as Go prints
        /// them).
        reason: String,
    },
    /// The event has no attribute besides `id`, `source`, `type` and `specversion` (no time,
    /// content type, subject, data schema nor extension). Its message would carry an empty
    /// attribute map, which receivers (Go's and ours) drop as unrecognised, so it is not sent.
    #[error("event has no optional attribute or extension: receivers would drop its message")]
    NoAttributes,
    /// The event data could not be serialized.
    #[error("failed to serialize event data: {reason}")]
    Data {
        /// What the serializer said.
        reason: String,
    },
}

impl From<ocm_ce_core::ReceiveError> for Error {
    fn from(e: ocm_ce_core::ReceiveError) -> Self {
        use ocm_ce_core::ReceiveError as R;
        match e {
            R::Structured { reason } => Self::InvalidStructuredEvent { reason },
            R::ExtensionName { name, reason } => Self::InvalidExtensionName { name, reason },
            R::ExtensionValue { name, reason } => Self::InvalidExtension { name, reason },
            R::Invalid { reason } => Self::InvalidEvent { reason },
            // `ReceiveError` is non-exhaustive; a future kind is an invalid event.
            other => Self::InvalidEvent {
                reason: other.to_string(),
            },
        }
    }
}
