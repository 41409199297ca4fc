//! The Kafka transport (Go `generic/options/kafka`, build tag `kafka`), on librdkafka through
//! the `rdkafka` crate. Opt-in through the `kafka` cargo feature because librdkafka is built
//! from C sources.
//!
//! One [`KafkaTransport`] is built for one side ([`Role`]) from a [`KafkaConfig`]. Every
//! [`connect`](Transport::connect) creates a **fresh** producer and consumer from the config
//! (so rotated certificate files are read again), waits until the brokers answer a
//! metadata request, and creates the topic the side broadcasts to. [`subscribe`](crate::Connection::subscribe) subscribes the consumer and
//! resolves once the consumer group has handed it its partition assignment (or, when no topic
//! matches yet, once the brokers confirmed that). A lost connection (all brokers down, a fatal
//! or authentication error, any consumer error not in the benign list of [`KafkaConnection`])
//! ends the subscription with an error; the generic client then dials a new connection,
//! subscribes again and resyncs.
//!
//! Wire behaviour is Go's (`generic/options/kafka`): topics and keys ([`topics`]), binary content mode with
//! `ce-*` headers ([`binding`]), Go's librdkafka defaults and passthrough keys ([`KafkaConfig`]),
//! the consumer group defaulting to the source id / agent id.
//!
//! Beyond Go:
//!
//! * **Exact subscriptions.** Ids are regex-escaped and the patterns anchored at both ends, so
//!   the agent of `cluster1` never consumes `cluster10`'s topics (Go's `^sourceevents.*.cluster1`
//!   does), while every topic a Go peer writes for us still matches ([`topics`]).
//! * **At-least-once delivery.** librdkafka's automatic offset store is off. An event's offset
//!   is stored only when the **next** event is requested from the
//!   [`Subscription`](crate::Subscription), that is, after the client has handled the previous
//!   one (the generic client handles events one at a time and asks for the next only then);
//!   stored offsets are committed every `auto.commit.interval.ms`, on partition revocation and
//!   on close (or right away when `enable.auto.commit: false`). A crash or disconnect therefore
//!   re-delivers the events that were fetched or being handled, never loses them. Go stores
//!   offsets as soon as librdkafka hands a message over, so a crash loses events that were
//!   fetched but not yet handled.
//! * `subscribe()` resolves only after the partition assignment, so the resync request sent
//!   next cannot miss its answers; `publish()` waits for the broker's acknowledgement (Go does
//!   not wait for the delivery report) and fails at once with a retryable error once the
//!   connection is lost.
//! * **Topic creation.** Clients create the topics they need, named as Go names them, before
//!   the first record goes there (`createTopics`, on by default; [`topics::connect_topics`],
//!   [`topics::target_topics`]); a refusal is reported once with the missing topics named, and
//!   the client waits for them. Go relies on the brokers' auto-creation.
//! * **Topic discovery.** A new topic matching the subscription is found within seconds of its
//!   creation (the consumer asks for the topic list after pauses of 1 s doubling to 30 s, from
//!   the start and again whenever the matching topics change), not at librdkafka's 5-minute
//!   metadata refresh, so clients started together on a fresh broker exchange their first
//!   events at once.
//! * An opt-in **shared-topic layout** (`topicLayout: shared`, [`TopicLayout::Shared`]) for
//!   large fleets: two topics instead of four per source/cluster pair.
//! * Source ids and cluster names are checked for Kafka topic characters
//!   (`[A-Za-z0-9._-]`) when the transport is built.
//!
//! Received events carry Go's extra string extensions `kafkatopic`, `kafkapartition`,
//! `kafkaoffset` and `kafkamessagekey`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ocm_ce_client::Role;
//! use ocm_ce_client::transport::kafka::{KafkaConfig, KafkaTransport};
//!
//! let config = KafkaConfig::from_file("kafka.yaml")?;
//! let transport = KafkaTransport::new(
//!     config,
//!     Role::Agent { cluster_name: "cluster1".into(), agent_id: "cluster1-work-agent".into() },
//! )?;
//! assert_eq!(transport.group_id(), "cluster1-work-agent");
//! # Ok(()) }
//! ```

pub mod binding;
mod config;
mod connection;
mod provision;
pub mod topics;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::ClientConfig;

pub use config::{ConfigError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SUBSCRIBE_TIMEOUT, KafkaConfig, TopicLayout};
pub use connection::KafkaConnection;
use connection::Settings;

use crate::error::TransportError;
use crate::transport::{Role, Transport};

/// librdkafka properties the transport sets itself, whatever the config says.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    // Offsets are stored by the subscription once an event was handled (at-least-once).
    ("enable.auto.offset.store", "false"),
];

/// Dials Kafka connections for one [`Role`].
#[derive(Clone)]
pub struct KafkaTransport {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    role: Role,
    properties: BTreeMap<String, String>,
    /// Connections opened so far.
    connections: AtomicU64,
}

impl fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("role", &self.inner.role)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl KafkaTransport {
    /// A transport for `role`. Fails when the config is invalid (Go's checks, then librdkafka's
    /// own check of every property) or an id cannot be part of a Kafka topic name.
    pub fn new(config: KafkaConfig, role: Role) -> Result<Self, TransportError> {
        config
            .validate()
            .map_err(|e| TransportError::config("invalid Kafka configuration").with_source(e))?;
        let topic_id = match &role {
            Role::Source { source_id } => source_id,
            Role::Agent { cluster_name, .. } => cluster_name,
        };
        if !topics::is_valid_topic_id(topic_id) {
            return Err(TransportError::config(format!(
                "{topic_id:?} cannot be part of a Kafka topic name (allowed: A-Z a-z 0-9 . _ -)"
            )));
        }
        let default_group = match &role {
            Role::Source { source_id } => source_id,
            Role::Agent { agent_id, .. } => agent_id,
        };
        let mut properties = config.client_config_map(default_group);
        for (key, value) in OWNED_PROPERTIES {
            if properties.get(*key).is_some_and(|v| v != value) && config.properties.contains_key(*key) {
                tracing::warn!(
                    key,
                    "ignoring the configured value: the Kafka transport manages this property"
                );
            }
            properties.insert((*key).to_owned(), (*value).to_owned());
        }
        let transport = Self {
            inner: Arc::new(Inner {
                config,
                role,
                properties,
                connections: AtomicU64::new(0),
            }),
        };
        transport
            .client_config()
            .create_native_config()
            .map_err(|e| TransportError::config("invalid librdkafka property").with_source(e))?;
        Ok(transport)
    }

    /// A transport for source `source_id`.
    pub fn source(config: KafkaConfig, source_id: impl Into<String>) -> Result<Self, TransportError> {
        Self::new(config, Role::source(source_id))
    }

    /// A transport for the agent `agent_id` of `cluster_name`.
    pub fn agent(
        config: KafkaConfig,
        cluster_name: impl Into<String>,
        agent_id: impl Into<String>,
    ) -> Result<Self, TransportError> {
        Self::new(config, Role::agent(cluster_name, agent_id))
    }

    /// The role.
    pub fn role(&self) -> &Role {
        &self.inner.role
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// The consumer group id (`groupID`, or the source id / agent id).
    pub fn group_id(&self) -> &str {
        self.inner.properties.get("group.id").map_or("", String::as_str)
    }

    /// The librdkafka properties both clients are created with.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.inner.properties
    }

    /// What the consumer subscribes to (regexes start with `^`).
    pub fn subscriptions(&self) -> Vec<String> {
        topics::subscriptions(self.inner.config.topic_layout, &self.inner.role)
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.inner.properties {
            config.set(key, value);
        }
        config
    }
}

impl Transport for KafkaTransport {
    type Connection = KafkaConnection;

    async fn connect(&self) -> Result<KafkaConnection, TransportError> {
        let config = &self.inner.config;
        let settings = Settings {
            role: self.inner.role.clone(),
            layout: config.topic_layout,
            connect_timeout: config.connect_timeout,
            subscribe_timeout: config.subscribe_timeout,
            patterns: self.subscriptions(),
            auto_commit: self
                .inner
                .properties
                .get("enable.auto.commit")
                .is_none_or(|v| v != "false"),
            create_topics: config
                .create_topics
                .then_some((config.topic_partitions, config.topic_replication_factor)),
            eager_discovery: self.inner.connections.fetch_add(1, Ordering::Relaxed) == 0,
        };
        KafkaConnection::open(self.client_config(), settings).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_owns_the_offset_store_and_defaults_the_group() {
        let t = KafkaTransport::agent(KafkaConfig::new("127.0.0.1:9"), "cluster1", "cluster1-agent").unwrap();
        assert_eq!(t.group_id(), "cluster1-agent");
        assert_eq!(t.properties()["enable.auto.offset.store"], "false");
        assert_eq!(t.properties()["enable.auto.commit"], "true");
        let t = KafkaTransport::source(
            KafkaConfig::new("127.0.0.1:9").property("enable.auto.offset.store", "true"),
            "source1",
        )
        .unwrap();
        assert_eq!(t.group_id(), "source1");
        assert_eq!(t.properties()["enable.auto.offset.store"], "false");
    }

    #[test]
    fn invalid_configs_and_ids_are_refused_when_built() {
        let err = KafkaTransport::source(KafkaConfig::default(), "s").unwrap_err();
        assert!(err.is_config());
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string).as_deref(),
            Some("bootstrapServer is required")
        );
        let err = KafkaTransport::source(KafkaConfig::new("b:1"), "a/b").unwrap_err();
        assert!(err.is_config(), "{err}");
        let err = KafkaTransport::source(KafkaConfig::new("b:1").property("no.such.property", "1"), "s").unwrap_err();
        assert!(err.is_config());
        assert!(
            std::error::Error::source(&err)
                .unwrap()
                .to_string()
                .contains("no.such.property")
        );
    }
}
