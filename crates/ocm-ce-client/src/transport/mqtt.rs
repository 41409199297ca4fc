//! The MQTT 5 transport (Go `generic/options/mqtt`), on rumqttc's MQTT 5 client with rustls.
//!
//! One [`MqttTransport`] is built for one side ([`Role`]) from an [`MqttConfig`]. Every
//! [`connect`](Transport::connect) opens a **fresh** MQTT session (clean start, no session
//! expiry), waits for the CONNACK, and hands the event loop to a pump task owned by the
//! returned [`MqttConnection`]. rumqttc never reconnects by itself here: a lost connection ends
//! the subscription with an error, and the generic client dials a new connection, subscribes
//! again (waiting for the SUBACK) and resyncs.
//!
//! Wire behaviour is Go's (`generic/options/mqtt`): binary content mode ([`binding`]), Go's topics and routing
//! ([`ocm_ce_core::Topics`]), client ids (the source's given id; `<agentID>-client` for an
//! agent), QoS 1 by default, user name/password only when set, and a 10 second wait for each
//! PUBACK and SUBACK.
//!
//! Beyond Go:
//!
//! * [`subscribe`](crate::transport::Connection::subscribe) resolves only after the SUBACK, and a refused filter
//!   is an error (Go ignores SUBACK reason codes).
//! * Publishing on a lost connection fails at once with a retryable error; nothing is queued
//!   in memory to be lost later. QoS ≥ 1 publishes wait for the PUBACK (or PUBCOMP), so a
//!   refusal by the broker is reported.
//! * Events are checked against `maxPacketSize` before sending ([`TransportError::is_too_large`]).
//! * A CA file alone enables TLS with server verification (Go: plain TCP).
//! * When an agent's `agentEvents` topic has `+` in its source segment, a status for source
//!   `s` ([`PublishTarget::Source`]) goes to the topic with `s` in that segment, where Go would
//!   publish to a topic containing `+` (which brokers refuse).
//! * The client certificate files are checked every `certCheckInterval` (default 60 s; Go: 5
//!   minutes); a change ends the connection so the next one presents the new certificate.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ocm_ce_client::transport::mqtt::{MqttConfig, MqttTransport};
//! use ocm_ce_client::Role;
//!
//! let config = MqttConfig::from_file("mqtt.yaml")?;
//! let transport = MqttTransport::new(
//!     config,
//!     Role::Agent { cluster_name: "cluster1".into(), agent_id: "cluster1-work-agent".into() },
//!     "",
//! )?;
//! assert_eq!(transport.client_id(), "cluster1-work-agent-client");
//! # Ok(()) }
//! ```

pub mod binding;
mod config;
mod connection;

use std::sync::Arc;
use std::time::Duration;

use cloudevents::Event;
use ocm_ce_core::Topics;

pub use config::{
    ConfigError, DEFAULT_CERT_CHECK_INTERVAL, DEFAULT_DIAL_TIMEOUT, DEFAULT_KEEP_ALIVE, DEFAULT_MAX_PACKET_SIZE,
    MqttConfig,
};
pub use connection::MqttConnection;

use crate::error::TransportError;
use crate::transport::{PublishTarget, Role, Transport};

/// How long a CONNACK may take after the connection is up (paho's packet timeout).
pub const DEFAULT_CONNACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a PUBACK / SUBACK may take (paho's packet timeout).
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Received events buffered for the subscriber before the connection stops reading.
pub const DEFAULT_RECEIVE_BUFFER: usize = 4096;

/// The MQTT transport for one side. Cheap to clone.
#[doc(alias = "MQTTOptions")]
#[derive(Debug, Clone)]
pub struct MqttTransport {
    settings: Arc<Settings>,
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: MqttConfig,
    pub(crate) topics: Topics,
    pub(crate) role: Role,
    pub(crate) client_id: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) filters: Vec<String>,
    pub(crate) connack_timeout: Duration,
    pub(crate) ack_timeout: Duration,
    pub(crate) receive_buffer: usize,
}

fn config_error(e: impl std::fmt::Display) -> TransportError {
    TransportError::config(e.to_string())
}

impl MqttTransport {
    /// A transport for `role`. The config is validated (Go's messages); a source also checks
    /// that its `agentEvents` topic names it. The MQTT client id is `client_id` for a source
    /// and `<agentID>-client` for an agent (Go's rule; `client_id` is then not used — see
    /// [`with_client_id`](Self::with_client_id) to override it).
    pub fn new(config: MqttConfig, role: Role, client_id: impl Into<String>) -> Result<Self, TransportError> {
        config.validate().map_err(config_error)?;
        let topics = config.topics_or_default();
        let (host, port) = config.broker_address().map_err(config_error)?;
        let (filters, client_id) = match &role {
            Role::Source { source_id } => (
                topics.source_subscriptions(source_id).map_err(config_error)?,
                client_id.into(),
            ),
            Role::Agent { cluster_name, agent_id } => {
                (topics.agent_subscriptions(cluster_name), format!("{agent_id}-client"))
            }
        };
        if client_id.is_empty() {
            return Err(TransportError::config("the MQTT client id must not be empty"));
        }
        Ok(Self {
            settings: Arc::new(Settings {
                config,
                topics,
                role,
                client_id,
                host,
                port,
                filters,
                connack_timeout: DEFAULT_CONNACK_TIMEOUT,
                ack_timeout: DEFAULT_ACK_TIMEOUT,
                receive_buffer: DEFAULT_RECEIVE_BUFFER,
            }),
        })
    }

    /// A transport for source `source_id` connecting as `client_id` (Go `NewSourceOptions`).
    pub fn source(
        config: MqttConfig,
        source_id: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Result<Self, TransportError> {
        Self::new(config, Role::source(source_id), client_id)
    }

    /// A transport for agent `agent_id` of `cluster_name`, client id `<agentID>-client` (Go
    /// `NewAgentOptions`).
    pub fn agent(
        config: MqttConfig,
        cluster_name: impl Into<String>,
        agent_id: impl Into<String>,
    ) -> Result<Self, TransportError> {
        Self::new(config, Role::agent(cluster_name, agent_id), "")
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// Uses `client_id` as the MQTT client id (it must be unique per connection: the broker
    /// drops an older session with the same id).
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.settings_mut().client_id = client_id.into();
        self
    }

    /// How long the CONNACK may take once the TCP/TLS connection is up (default 10 s, paho's
    /// packet timeout). A connect fails after `dialTimeout` plus this.
    #[must_use]
    pub fn with_connack_timeout(mut self, timeout: Duration) -> Self {
        self.settings_mut().connack_timeout = timeout;
        self
    }

    /// How long a PUBACK or SUBACK may take (default 10 s, paho's packet timeout).
    #[must_use]
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.settings_mut().ack_timeout = timeout;
        self
    }

    /// How many received events wait for the subscriber (default 4096, at least 1); also
    /// announced as the CONNECT Receive Maximum (capped at 65535). When the buffer is full the
    /// connection stops reading and acknowledging, so the broker queues — and past its queue
    /// limit drops — further messages for this client, as it does for a Go client that falls
    /// behind; the periodic resync recovers them.
    #[must_use]
    pub fn with_receive_buffer(mut self, events: usize) -> Self {
        self.settings_mut().receive_buffer = events.max(1);
        self
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// The side this transport connects as.
    pub fn role(&self) -> &Role {
        &self.settings.role
    }

    /// The configuration.
    pub fn config(&self) -> &MqttConfig {
        &self.settings.config
    }

    /// The topic filters one SUBSCRIBE asks for: a source subscribes to its agent events topic
    /// (and the agent broadcast), an agent to its source events topic (and the source broadcast).
    pub fn subscriptions(&self) -> &[String] {
        &self.settings.filters
    }

    /// The topic `event` is published to (Go's `WithContext`, plus the agent improvement
    /// described in the module docs). Errors are configuration errors.
    pub fn publish_topic(&self, target: &PublishTarget, event: &Event) -> Result<String, TransportError> {
        self.settings.publish_topic(target, event)
    }
}

impl Settings {
    pub(crate) fn publish_topic(&self, target: &PublishTarget, event: &Event) -> Result<String, TransportError> {
        let topic = match &self.role {
            Role::Source { source_id } => self
                .topics
                .source_publish_topic(source_id, event, None)
                .map_err(config_error)?,
            Role::Agent { cluster_name, .. } => {
                let (topic, warning) = self
                    .topics
                    .agent_publish_topic(cluster_name, event, None)
                    .map_err(config_error)?;
                if let Some(w) = warning {
                    tracing::debug!(topic, "{w}");
                }
                match target {
                    PublishTarget::Source(source) if topic.contains('+') && !source.is_empty() => {
                        replace_last_plus(&topic, source)
                    }
                    _ => topic,
                }
            }
        };
        if topic.contains(['+', '#']) || topic.starts_with('$') || topic.is_empty() {
            return Err(TransportError::config(format!(
                "cannot publish to topic {topic:?}: it is a subscription filter, not a topic name"
            )));
        }
        Ok(topic)
    }
}

fn replace_last_plus(topic: &str, with: &str) -> String {
    match topic.rfind('+') {
        Some(i) => format!("{}{with}{}", &topic[..i], &topic[i + 1..]),
        None => topic.to_owned(),
    }
}

impl Transport for MqttTransport {
    type Connection = MqttConnection;

    /// Dials a new MQTT session: TCP (or TLS, re-reading the certificate files), CONNECT, and
    /// the CONNACK within `dialTimeout` + the CONNACK timeout. A CONNACK refusal (reason ≥
    /// 0x80, e.g. a wrong password) is a [`TransportError::is_rejected`] error.
    async fn connect(&self) -> Result<MqttConnection, TransportError> {
        MqttConnection::open(self.settings.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use cloudevents::{EventBuilder, EventBuilderV10};

    use super::*;

    fn topics() -> Topics {
        Topics {
            source_events: "sources/source1/clusters/+/sourceevents".into(),
            agent_events: "sources/+/clusters/+/agentevents".into(),
            source_broadcast: "sources/+/sourcebroadcast".into(),
            agent_broadcast: String::new(),
        }
    }

    fn status(original_source: &str) -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("cluster1-agent")
            .ty("io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request")
            .extension("clustername", "cluster1")
            .extension("originalsource", original_source)
            .build()
            .unwrap()
    }

    #[test]
    fn an_agent_with_a_wildcard_source_segment_publishes_to_the_named_source() {
        let t = MqttTransport::agent(MqttConfig::new("127.0.0.1:1883", topics()), "cluster1", "a").unwrap();
        assert_eq!(t.client_id(), "a-client");
        let topic = t
            .publish_topic(&PublishTarget::Source("source2".into()), &status("source2"))
            .unwrap();
        assert_eq!(topic, "sources/source2/clusters/cluster1/agentevents");
        let err = t
            .publish_topic(&PublishTarget::Source(String::new()), &status(""))
            .unwrap_err();
        assert!(err.is_config(), "{err}");
    }

    #[test]
    fn a_source_must_be_named_in_its_agent_events_topic() {
        let err = MqttTransport::source(MqttConfig::new("127.0.0.1:1883", topics()), "source1", "c").unwrap_err();
        assert!(err.is_config());
        assert_eq!(
            err.to_string(),
            "the topic source \"sources/+/clusters/+/agentevents\" does not match with the client sourceID \"source1\""
        );
    }

    #[test]
    fn a_config_without_topics_is_refused_with_go_text() {
        let config = MqttConfig::parse_unvalidated("brokerHost: 127.0.0.1:1883").unwrap();
        let err = MqttTransport::agent(config, "c", "a").unwrap_err();
        assert_eq!(err.to_string(), "the topics must be set");
    }
}
