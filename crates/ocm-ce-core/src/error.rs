//! Errors of the protocol core. Messages reproduce the Go SDK's texts where peers or users see them.

use thiserror::Error;

/// A CloudEvents `type` or data type that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EventTypeError {
    /// Fewer than five dot-separated segments.
    #[error("unsupported cloudevents type format: {value}")]
    TypeFormat {
        /// The rejected type.
        value: String,
    },
    /// Fewer than three dot-separated segments in a data type.
    #[error("unsupported cloudevents data type format")]
    DataTypeFormat,
    /// The subresource segment is neither `spec` nor `status`.
    #[error("unsupported subresource {value}")]
    SubResource {
        /// The rejected subresource.
        value: String,
    },
}

/// An extension that is missing or cannot be converted to the wanted type
/// (Go's CloudEvents SDK conversion texts).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The extension is absent.
    #[error("invalid CloudEvents value: <nil>")]
    Missing,
    /// The value has a type that does not convert.
    #[error("cannot convert {value} to {target}")]
    WrongType {
        /// The value as Go prints it.
        value: String,
        /// The wanted Go type (`string`, `int32`, `time.Time`).
        target: &'static str,
    },
    /// A number outside the int32 range.
    #[error("cannot convert {value} to int32: out of range")]
    OutOfRange {
        /// The value as Go prints it (strings quoted).
        value: String,
    },
    /// A string that is not a Go float literal.
    #[error("strconv.ParseFloat: parsing {value:?}: invalid syntax")]
    FloatSyntax {
        /// The rejected string.
        value: String,
    },
    /// A string that is not an RFC 3339 time.
    #[error("parsing time {value:?} as \"2006-01-02T15:04:05.999999999Z07:00\": cannot parse {value:?} as RFC 3339")]
    Time {
        /// The rejected string.
        value: String,
    },
    /// An extension value the event builder cannot set (e.g. a resource version beyond int32).
    #[error("extension:{name}: {reason}")]
    Invalid {
        /// Extension name.
        name: &'static str,
        /// Why.
        reason: Box<Self>,
    },
}

/// A resync payload that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The data of a spec resync request is not a `ResourceVersionList`.
    #[error("failed to unmarshal spec resync request payload {data}, {reason}")]
    SpecResyncRequest {
        /// The data as text.
        data: String,
        /// The JSON error.
        reason: String,
    },
    /// The data of a status resync request is not a `ResourceStatusHashList`.
    #[error("failed to unmarshal status resync request payload {data}, {reason}")]
    StatusResyncRequest {
        /// The data as text.
        data: String,
        /// The JSON error.
        reason: String,
    },
}

/// A snowflake sequence id comparison that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SequenceIdError {
    /// The last id does not parse.
    #[error("unable to parse last sequence ID: {value}, strconv.ParseInt: parsing {value:?}: {reason}")]
    Last {
        /// The id.
        value: String,
        /// `invalid syntax` or `value out of range`.
        reason: &'static str,
    },
    /// The current id does not parse (Go writes no comma here).
    #[error("unable to parse current sequence ID: {value} strconv.ParseInt: parsing {value:?}: {reason}")]
    Current {
        /// The id.
        value: String,
        /// `invalid syntax` or `value out of range`.
        reason: &'static str,
    },
    /// The two ids come from different generator nodes.
    #[error("sequence IDs ({last},{current}) are not from the same node")]
    DifferentNodes {
        /// Last id.
        last: String,
        /// Current id.
        current: String,
    },
}

/// A topic configuration or routing failure (MQTT topic rules, Go texts).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TopicError {
    /// No topics configured.
    #[error("the topics must be set")]
    Missing,
    /// One or more topics do not match their pattern; one message, or `[e1, e2]` for several.
    #[error("{}", format_list(.0))]
    Invalid(Vec<String>),
    /// A topic is not an events topic, so no source can be read from it.
    #[error("failed to get source from topic: {topic:?}")]
    NoSource {
        /// The topic.
        topic: String,
    },
    /// A source's agent events topic names another source.
    #[error("the topic source {topic:?} does not match with the client sourceID {source_id:?}")]
    SourceMismatch {
        /// The configured topic.
        topic: String,
        /// The client's source id.
        source_id: String,
    },
    /// The event type does not parse.
    #[error("unsupported event type <nil>, {0}")]
    EventType(EventTypeError),
    /// A routing extension is absent.
    #[error("{name:?} not found")]
    MissingExtension {
        /// Extension name.
        name: &'static str,
    },
    /// A routing extension is not a string (an event cannot be routed by a number or a time:
    /// it would name no cluster or source, or the wrong one).
    #[error("the {name} extension must be a string, not {value}")]
    WrongExtensionType {
        /// Extension name.
        name: &'static str,
        /// The value, as Go prints it.
        value: String,
    },
    /// A broadcast status resync needs `sourceBroadcast`.
    #[error("the source broadcast topic not set")]
    NoSourceBroadcast,
    /// A forced publish topic that a source may not use.
    #[error("invalid source pub topic")]
    InvalidSourcePubTopic,
    /// A forced publish topic that an agent may not use.
    #[error("invalid agent pub topic")]
    InvalidAgentPubTopic,
}

fn format_list(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Why a received event is refused (Go's `binding.ToEvent` and CloudEvents validation); see
/// [`crate::received`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// A structured-mode payload that is not a JSON CloudEvent.
    #[error("invalid structured event: {reason}")]
    Structured {
        /// What the JSON parser said.
        reason: String,
    },
    /// An extension name CloudEvents does not allow.
    #[error("invalid extension name {name:?}: {reason}")]
    ExtensionName {
        /// The offending name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An extension value that cannot be represented (an integer outside int32).
    #[error("extension {name}: {reason}")]
    ExtensionValue {
        /// The extension name.
        name: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// The event fails CloudEvents validation: `attribute: reason` lines, sorted.
    #[error("invalid event: {reason}")]
    Invalid {
        /// The failures.
        reason: String,
    },
}

/// Any error of the protocol core.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`EventTypeError`].
    #[error(transparent)]
    EventType(#[from] EventTypeError),
    /// See [`ExtensionError`].
    #[error(transparent)]
    Extension(#[from] ExtensionError),
    /// See [`PayloadError`].
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// See [`SequenceIdError`].
    #[error(transparent)]
    SequenceId(#[from] SequenceIdError),
    /// See [`TopicError`].
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// See [`ReceiveError`].
    #[error(transparent)]
    Receive(#[from] ReceiveError),
}

/// Result with the core [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
