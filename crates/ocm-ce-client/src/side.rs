//! The two sides a [`Client`] plays: [`SourceSide`](crate::SourceSide) sends specs and receives
//! statuses, [`AgentSide`](crate::AgentSide) the reverse. Everything else — connecting,
//! subscribing, publishing, receiving, resync scheduling — is one code path in
//! [`Client`]; a side says only what differs.

use std::fmt;
use std::future::Future;

use cloudevents::Event;
use ocm_ce_core::{EventType, PayloadError, ResourceObject, SubResource, TopicError};

use crate::client::Client;
use crate::error::Result;
use crate::metrics::ClientMetrics;
use crate::transport::{PublishTarget, Transport};

/// The side a [`Client`] plays: [`SourceSide`](crate::SourceSide) or
/// [`AgentSide`](crate::AgentSide). Sealed: the protocol has exactly these two.
pub trait Side: sealed::Sealed + fmt::Debug + Send + Sync + Sized + 'static {}

pub(crate) mod sealed {
    use super::{
        Client, ClientMetrics, Event, EventType, Future, PayloadError, PublishTarget, ResourceObject, Result,
        SubResource, TopicError, Transport,
    };

    /// What differs between the two sides (crate-internal).
    pub trait Sealed {
        /// What this side publishes, and so the resync requests it answers.
        const PUBLISHES: SubResource;
        /// What this side receives, and so the resync requests it sends.
        const RECEIVES: SubResource;

        /// The id this side sends as (a source id, or an agent id).
        fn sender_id(&self) -> &str;

        /// A label for logs.
        fn describe(&self) -> String;

        /// Where one of this side's events goes.
        fn target(event: &Event) -> std::result::Result<PublishTarget, TopicError>;

        /// Checks the payload of a received resync request before it is queued for an answer.
        fn check_request(data: &[u8]) -> std::result::Result<(), PayloadError>;

        /// Who asked, for the per-peer answer queue.
        fn request_peer(event: &Event) -> String;

        /// Whether a received resource event (already known to be of [`Self::RECEIVES`] and of
        /// a data type the codec handles) is one this side takes; a refusal is logged and
        /// counted here.
        fn accept(&self, event: &Event, metrics: &ClientMetrics) -> bool;

        /// Sends this side's resync request to `peer` (`""` = every peer).
        fn request_resync<T, Tr>(client: &Client<T, Tr, Self>, peer: &str) -> impl Future<Output = Result<()>> + Send
        where
            Self: super::Side,
            T: ResourceObject + Send + Sync + 'static,
            Tr: Transport;

        /// Answers a peer's resync request of type `event_type`.
        fn answer_request<T, Tr>(
            client: &Client<T, Tr, Self>,
            event_type: &EventType,
            request: &Event,
        ) -> impl Future<Output = Result<()>> + Send
        where
            Self: super::Side,
            T: ResourceObject + Send + Sync + 'static,
            Tr: Transport;

        /// The peer to which this side sends its own resync request after answering `request`
        /// (see `ClientOptions::answer_resync_window`), if it names one.
        fn asking_peer(request: &Event) -> Option<String>;
    }
}
