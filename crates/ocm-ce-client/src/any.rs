//! Choosing a transport at run time from a configuration file, as Go's `ConfigLoader` and
//! `BuildCloudEvents{Source,Agent}Options` do: [`TransportConfig`] holds one parsed Go config
//! file, [`AnyTransport`] is the enum over the transports compiled in (one variant per cargo
//! feature), so configuration-driven code needs neither `dyn` nor generics.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use cloudevents::Event;

use crate::error::TransportError;
#[cfg(feature = "grpc")]
use crate::transport::grpc::{GrpcConfig, GrpcConnection, GrpcTransport};
#[cfg(feature = "kafka")]
use crate::transport::kafka::{KafkaConfig, KafkaConnection, KafkaTransport};
#[cfg(feature = "mqtt")]
use crate::transport::mqtt::{MqttConfig, MqttConnection, MqttTransport};
use crate::transport::{Connection, PublishTarget, Role, Subscription, Transport};

/// The kind of a transport (`mqtt`, `grpc`, `kafka`: Go's config type names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// MQTT 5.
    Mqtt,
    /// gRPC.
    Grpc,
    /// Kafka.
    Kafka,
}

impl FromStr for TransportKind {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mqtt" => Ok(Self::Mqtt),
            "grpc" => Ok(Self::Grpc),
            "kafka" => Ok(Self::Kafka),
            other => Err(TransportError::config(format!("unsupported config type {other}"))),
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mqtt => "mqtt",
            Self::Grpc => "grpc",
            Self::Kafka => "kafka",
        })
    }
}

/// A parsed and validated transport configuration file (the Go SDK's YAML/JSON formats).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TransportConfig {
    /// An MQTT config (`brokerHost`, `topics`, ...).
    #[cfg(feature = "mqtt")]
    Mqtt(MqttConfig),
    /// A gRPC config (`url`, `caFile`, ...).
    #[cfg(feature = "grpc")]
    Grpc(GrpcConfig),
    /// A Kafka config (`bootstrapServer`, librdkafka keys, ...).
    #[cfg(feature = "kafka")]
    Kafka(KafkaConfig),
}

fn not_built(kind: TransportKind) -> TransportError {
    TransportError::config(format!(
        "the {kind} transport is not built in: enable the `{kind}` cargo feature"
    ))
}

impl TransportConfig {
    /// Loads and validates the config file of `kind` (errors carry Go's validation texts).
    pub fn load(kind: TransportKind, path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let path = path.as_ref();
        match kind {
            #[cfg(feature = "mqtt")]
            TransportKind::Mqtt => MqttConfig::from_file(path)
                .map(Self::Mqtt)
                .map_err(|e| TransportError::config(format!("{}: {e}", path.display()))),
            #[cfg(feature = "grpc")]
            TransportKind::Grpc => GrpcConfig::from_file(path)
                .map(Self::Grpc)
                .map_err(|e| TransportError::config(format!("{}: {e}", path.display()))),
            #[cfg(feature = "kafka")]
            TransportKind::Kafka => KafkaConfig::from_file(path)
                .map(Self::Kafka)
                .map_err(|e| TransportError::config(format!("{}: {e}", path.display()))),
            #[allow(unreachable_patterns)]
            other => Err(not_built(other)),
        }
    }

    /// The kind of this config.
    pub fn kind(&self) -> TransportKind {
        match self {
            #[cfg(feature = "mqtt")]
            Self::Mqtt(_) => TransportKind::Mqtt,
            #[cfg(feature = "grpc")]
            Self::Grpc(_) => TransportKind::Grpc,
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => TransportKind::Kafka,
        }
    }
}

/// Any transport compiled in.
// One value per client: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyTransport {
    /// MQTT 5.
    #[cfg(feature = "mqtt")]
    Mqtt(MqttTransport),
    /// gRPC.
    #[cfg(feature = "grpc")]
    Grpc(GrpcTransport),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(KafkaTransport),
}

impl AnyTransport {
    /// The transport of a source (`client_id` is the MQTT client id; Go's `WithClientID`).
    pub fn source(config: &TransportConfig, source_id: &str, client_id: &str) -> Result<Self, TransportError> {
        Self::build(config, Role::source(source_id), client_id)
    }

    /// The transport of an agent of `cluster_name` sending as `agent_id`.
    pub fn agent(config: &TransportConfig, cluster_name: &str, agent_id: &str) -> Result<Self, TransportError> {
        Self::build(config, Role::agent(cluster_name, agent_id), agent_id)
    }

    #[allow(unused_variables)]
    fn build(config: &TransportConfig, role: Role, client_id: &str) -> Result<Self, TransportError> {
        match config {
            #[cfg(feature = "mqtt")]
            TransportConfig::Mqtt(c) => MqttTransport::new(c.clone(), role, client_id).map(Self::Mqtt),
            #[cfg(feature = "grpc")]
            TransportConfig::Grpc(c) => GrpcTransport::new(c.clone(), role).map(Self::Grpc),
            #[cfg(feature = "kafka")]
            TransportConfig::Kafka(c) => KafkaTransport::new(c.clone(), role).map(Self::Kafka),
        }
    }
}

/// A connection of an [`AnyTransport`].
// One value per live connection: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyConnection {
    /// MQTT 5.
    #[cfg(feature = "mqtt")]
    Mqtt(MqttConnection),
    /// gRPC.
    #[cfg(feature = "grpc")]
    Grpc(GrpcConnection),
    /// Kafka.
    #[cfg(feature = "kafka")]
    Kafka(KafkaConnection),
}

/// The same call on whichever transport an [`AnyTransport`] or [`AnyConnection`] holds:
/// `dispatch!(self, inner => expression)` evaluates `expression` with `inner` bound to the
/// variant's value, for each transport compiled in.
macro_rules! dispatch {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            #[cfg(feature = "mqtt")]
            Self::Mqtt($inner) => $call,
            #[cfg(feature = "grpc")]
            Self::Grpc($inner) => $call,
            #[cfg(feature = "kafka")]
            Self::Kafka($inner) => $call,
        }
    };
}

impl Transport for AnyTransport {
    type Connection = AnyConnection;

    async fn connect(&self) -> Result<AnyConnection, TransportError> {
        match self {
            #[cfg(feature = "mqtt")]
            Self::Mqtt(t) => t.connect().await.map(AnyConnection::Mqtt),
            #[cfg(feature = "grpc")]
            Self::Grpc(t) => t.connect().await.map(AnyConnection::Grpc),
            #[cfg(feature = "kafka")]
            Self::Kafka(t) => t.connect().await.map(AnyConnection::Kafka),
        }
    }

    fn set_data_types(&mut self, data_types: &[ocm_ce_core::DataType]) {
        dispatch!(self, t => t.set_data_types(data_types))
    }
}

impl Connection for AnyConnection {
    async fn publish(&self, target: &PublishTarget, event: &Event) -> Result<(), TransportError> {
        dispatch!(self, c => c.publish(target, event).await)
    }

    async fn subscribe(&self) -> Result<Subscription, TransportError> {
        dispatch!(self, c => c.subscribe().await)
    }

    fn max_event_bytes(&self) -> Option<usize> {
        dispatch!(self, c => c.max_event_bytes())
    }

    async fn close(&self) {
        dispatch!(self, c => c.close().await)
    }
}
