//! Errors of the client crate: one [`Error`] for the clients, and the opaque [`TransportError`]
//! every transport reports through.

use std::fmt;

use ocm_ce_core::{CodecError, DataType, ExtensionError, PayloadError, TopicError};

/// A boxed error from user code (listers, status hash functions) or a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Disconnected,
    Publish,
    Subscribe,
    Config,
    Rejected,
    TooLarge,
    Encoding,
    Dropped(&'static str),
}

/// The constructors of the kinds that carry nothing but the message: `fn name => Kind;` makes
/// `pub fn name(message) -> Self` of that kind, with the doc comments written before it.
macro_rules! kind_constructors {
    ($($(#[$attr:meta])* fn $name:ident => $kind:ident;)*) => {
        $(
            $(#[$attr])*
            pub fn $name(message: impl Into<String>) -> Self {
                Self::new(Kind::$kind, message)
            }
        )*
    };
}

/// A transport failure (connect, publish, subscribe, configuration). The kind is private; ask
/// with the `is_*` predicates, so new backends never break callers.
#[derive(Debug)]
pub struct TransportError {
    kind: Kind,
    message: String,
    source: Option<BoxError>,
}

impl TransportError {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error (shown by reporters through `source()`).
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    kind_constructors! {
        /// Dialing or handshaking failed.
        fn connect => Connect;
        /// The connection was lost (or is not established).
        fn disconnected => Disconnected;
        /// Sending an event failed.
        fn publish => Publish;
        /// Subscribing failed.
        fn subscribe => Subscribe;
        /// The transport configuration is invalid.
        fn config => Config;
        /// The peer refused us (authentication, authorization).
        fn rejected => Rejected;
        /// An event exceeds the configured maximum size.
        fn too_large => TooLarge;
        /// An event cannot be represented on this transport's wire.
        fn encoding => Encoding;
    }

    /// A received message was dropped (it is not a valid CloudEvent, or it is over the size
    /// limit); `reason` is a short label for the drop counter (`too_large`,
    /// `malformed_message`). Yielded by a [`Subscription`](crate::Subscription), which carries
    /// on: the client counts it and keeps receiving.
    pub fn dropped(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Kind::Dropped(reason), message)
    }

    /// True for failures to establish a connection.
    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }
    /// True when the connection was lost or is absent.
    pub fn is_disconnected(&self) -> bool {
        self.kind == Kind::Disconnected
    }
    /// True for configuration errors (retrying does not help).
    pub fn is_config(&self) -> bool {
        self.kind == Kind::Config
    }
    /// True when the peer refused us.
    pub fn is_rejected(&self) -> bool {
        self.kind == Kind::Rejected
    }
    /// True when an event is over the size limit.
    pub fn is_too_large(&self) -> bool {
        self.kind == Kind::TooLarge
    }
    /// The reason label when this reports a dropped received message (see
    /// [`dropped`](Self::dropped)); such an error does not end a subscription.
    pub fn dropped_reason(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Dropped(reason) => Some(reason),
            _ => None,
        }
    }
    /// True when retrying later may succeed (connection problems, failed sends).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            Kind::Connect | Kind::Disconnected | Kind::Publish | Kind::Subscribe
        )
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An error of the generic clients.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection right now (the client is reconnecting); retry later.
    #[error("the cloudevents client is not ready")]
    NotConnected,
    /// The transport failed.
    #[error("transport failure")]
    Transport(#[source] TransportError),
    /// The event type is not one this side may send.
    #[error("unsupported event type {event_type}")]
    UnsupportedEventType {
        /// The event type.
        event_type: String,
    },
    /// No codec handles the data type.
    #[error("failed to find the codec for event {data_type}")]
    NoCodec {
        /// The data type.
        data_type: DataType,
    },
    /// Encoding or decoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// An event could not be built (e.g. a resource version beyond int32).
    #[error(transparent)]
    Extension(#[from] ExtensionError),
    /// A resync payload could not be decoded.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The event cannot be routed.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The lister failed.
    #[error("failed to list resources")]
    List(#[source] BoxError),
    /// The status hash function failed.
    #[error("failed to compute the status hash of {resource_id}")]
    StatusHash {
        /// The resource.
        resource_id: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// `subscribe` was called a second time on the same client.
    #[error("the client is already subscribed")]
    AlreadySubscribed,
    /// A [`PublishTurn`](crate::PublishTurn) of another client was passed to `publish_in_turn`.
    #[error("the publish turn belongs to another client")]
    ForeignTurn,
}

impl Error {
    /// True when retrying the operation later may succeed (Go's `IsPublishError` cases:
    /// not connected, or the transport failed to send).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotConnected => true,
            Self::Transport(t) => t.is_retryable(),
            _ => false,
        }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

/// Displays an error with its chain of causes (`outer: cause: root cause`), for logs and
/// messages: [`Error`]'s own `Display` leaves the causes to `source()`, so logging only `%e`
/// would hide why (e.g. "transport failure" without the broker's answer).
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// Result with the client [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
