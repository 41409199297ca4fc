//! The transport abstraction: a [`Transport`] dials [`Connection`]s; a connection publishes
//! events to an explicit [`PublishTarget`] and opens one confirmed [`Subscription`].
//!
//! A transport is built for one side (a source id, or a cluster name and agent id), so it knows
//! what to subscribe to. Routing is explicit: each publish says whether it goes to one cluster,
//! all clusters, one source or all sources; MQTT and Kafka map that to topics and keys, gRPC
//! leaves it to the broker.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use cloudevents::Event;
use futures::Stream;
use ocm_ce_core::topics::addressee;
use ocm_ce_core::{TopicError, extensions};
use tokio::sync::mpsc;

use crate::error::TransportError;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka;
#[cfg(any(feature = "mqtt", feature = "kafka"))]
mod message;
#[cfg(feature = "mqtt")]
#[cfg_attr(docsrs, doc(cfg(feature = "mqtt")))]
pub mod mqtt;

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublishTarget {
    /// From a source to the agents of one cluster (specs, spec resync answers, a status resync
    /// request for one cluster).
    Cluster(String),
    /// From a source to every cluster (a status resync request for all clusters).
    AllClusters,
    /// From an agent to one source (statuses, status resync answers, a spec resync request to
    /// one source).
    Source(String),
    /// From an agent to every source (a spec resync request for all sources).
    AllSources,
}

impl PublishTarget {
    /// The target of an event built by a source: a `resync_request` with an empty
    /// `clustername` goes to all clusters, everything else to its `clustername`.
    pub fn for_source_event(event: &Event) -> Result<Self, TopicError> {
        let cluster = addressee(event, extensions::CLUSTER_NAME)?;
        Ok(cluster.map_or(Self::AllClusters, Self::Cluster))
    }

    /// The target of an event built by an agent: a `resync_request` with an empty
    /// `originalsource` goes to all sources, everything else to its `originalsource`.
    pub fn for_agent_event(event: &Event) -> Result<Self, TopicError> {
        let source = addressee(event, extensions::ORIGINAL_SOURCE)?;
        Ok(source.map_or(Self::AllSources, Self::Source))
    }
}

/// Who a transport connects as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A source with this id: receives statuses and agents' spec resync requests.
    Source {
        /// Source id.
        source_id: String,
    },
    /// An agent of a cluster: receives specs and sources' status resync requests.
    Agent {
        /// Cluster name.
        cluster_name: String,
        /// Agent id (the `source` of the events it sends).
        agent_id: String,
    },
}

impl Role {
    /// The role of source `source_id`.
    pub fn source(source_id: impl Into<String>) -> Self {
        Self::Source {
            source_id: source_id.into(),
        }
    }

    /// The role of the agent `agent_id` of `cluster_name`.
    pub fn agent(cluster_name: impl Into<String>, agent_id: impl Into<String>) -> Self {
        Self::Agent {
            cluster_name: cluster_name.into(),
            agent_id: agent_id.into(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source { source_id } => write!(f, "source {source_id}"),
            Self::Agent { cluster_name, agent_id } => write!(f, "agent {agent_id} of cluster {cluster_name}"),
        }
    }
}

/// Dials connections to a broker for one [`Role`].
pub trait Transport: Send + Sync + 'static {
    /// One live connection.
    type Connection: Connection;

    /// Dials and handshakes a new connection. Called at start and after every loss; transports
    /// re-read credentials here so rotated certificates and tokens are picked up.
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send;

    /// Told once, before the first connection, which data types the client decodes. A
    /// transport whose subscription names a data type uses it: gRPC's
    /// `SubscriptionRequest.data_type`, which sdk-go v1.x brokers require and v0.15 peers
    /// ignore. Default: nothing.
    fn set_data_types(&mut self, data_types: &[ocm_ce_core::DataType]) {
        let _ = data_types;
    }
}

/// A live connection.
pub trait Connection: Send + Sync + 'static {
    /// Sends one event. Fails at once with a retryable error when the connection is gone.
    fn publish(&self, target: &PublishTarget, event: &Event)
    -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Subscribes for the transport's role. Resolves only once the broker has confirmed the
    /// subscription (SUBACK, the stream's response headers, a partition assignment), so a resync
    /// request sent afterwards cannot miss its answers.
    fn subscribe(&self) -> impl Future<Output = Result<Subscription, TransportError>> + Send;

    /// The largest event, in bytes on this transport's wire, the connection can send (an MQTT
    /// broker's Maximum Packet Size); `None` when the transport has no such limit of its own.
    fn max_event_bytes(&self) -> Option<usize> {
        None
    }

    /// Closes the connection; pending and later operations fail.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// The received events of one subscription. It ends (or yields an error) when the connection
/// is lost; the client then reconnects and subscribes again. An error for which
/// [`TransportError::dropped_reason`] is `Some` reports one received message that was dropped
/// (malformed, oversized) and does not end the subscription.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Result<Event, TransportError>> + Send>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    /// Wraps a stream of received events.
    pub fn from_stream(stream: impl Stream<Item = Result<Event, TransportError>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(stream),
        }
    }

    /// A subscription fed through a bounded channel; dropping the sender ends it.
    pub fn channel(capacity: usize) -> (mpsc::Sender<Result<Event, TransportError>>, Self) {
        let (tx, mut rx) = mpsc::channel(capacity);
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (tx, Self::from_stream(stream))
    }
}

impl Stream for Subscription {
    type Item = Result<Event, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
