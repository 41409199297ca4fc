//! The MQTT config file (Go `MQTTConfig`, `generic/options/mqtt/options.go`): YAML or JSON,
//! Go's keys and defaults, unknown keys ignored, validated with Go's messages and order.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ocm_ce_core::{TopicError, Topics};
use serde::Deserialize;

pub use crate::config::ConfigError;
use crate::config::TlsFiles;

/// Default `keepAlive`: 60 seconds.
pub const DEFAULT_KEEP_ALIVE: u16 = 60;
/// Default `dialTimeout`: 60 seconds.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `maxPacketSize`: 4 MiB (Go peers send at most about 520 KB: 512 000 bytes of manifests plus the event).
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 4 * 1024 * 1024;
/// Default `certCheckInterval`: 60 seconds.
pub const DEFAULT_CERT_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// The MQTT transport configuration, YAML- and JSON-compatible with Go's `MQTTConfig`.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `brokerHost` | — (required) | `host:port` of the broker |
/// | `username`, `password` | `""` | CONNECT user name / password, each sent only when non-empty |
/// | `caFile` | — | PEM roots added to the system store; alone it enables server-verified TLS (Go: plain TCP) |
/// | `clientCertFile`, `clientKeyFile` | — | both or none; both enable mutual TLS (re-read on every handshake) |
/// | `keepAlive` | `60` | seconds; values below 5 are raised to 5 (rumqttc's minimum) |
/// | `dialTimeout` | `60s` | Go duration (`30s`, `10m`, `1h30m`) or integer nanoseconds |
/// | `pubQoS`, `subQoS` | `1`, `1` | QoS of publishes and subscriptions (0, 1 or 2) |
/// | `topics` | — (required) | `sourceEvents`, `agentEvents`, optional `sourceBroadcast`, `agentBroadcast` |
/// | `maxPacketSize` | `4194304` | **ours**: largest MQTT packet sent or accepted, in bytes |
/// | `certCheckInterval` | `60s` | **ours**: how often the client certificate files are checked for rotation |
///
/// See `docs/config-mqtt.md` for the full description and the differences from Go.
#[doc(alias = "MQTTConfig")]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct MqttConfig {
    /// `host:port` of the broker.
    pub broker_host: String,
    /// CONNECT user name (sent only when non-empty).
    pub username: String,
    /// CONNECT password (sent only when non-empty).
    pub password: String,
    /// `caFile` (extra PEM root certificates), `clientCertFile` and `clientKeyFile` (mutual
    /// TLS).
    #[serde(flatten)]
    pub tls: TlsFiles,
    /// Keep-alive in seconds.
    pub keep_alive: u16,
    /// Timeout of the TCP connect and TLS handshake (`0` = none).
    #[serde(deserialize_with = "ocm_ce_core::go_duration::deserialize")]
    pub dial_timeout: Duration,
    /// QoS of published events.
    #[serde(rename = "pubQoS")]
    pub pub_qos: u8,
    /// QoS of the subscriptions.
    #[serde(rename = "subQoS")]
    pub sub_qos: u8,
    /// The four topics; required.
    pub topics: Option<Topics>,
    /// Largest MQTT packet this client sends (checked before publishing, and lowered to the
    /// broker's Maximum Packet Size) or accepts (larger received ones are dropped and counted),
    /// in bytes. CONNECT announces at least 16 MiB, so the broker delivers an oversized event
    /// for us to report instead of dropping it silently.
    pub max_packet_size: u32,
    /// How often the client certificate files are compared with the ones the connection was
    /// made with; a change forces a reconnect (Go: every 5 minutes).
    #[serde(deserialize_with = "ocm_ce_core::go_duration::deserialize")]
    pub cert_check_interval: Duration,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            broker_host: String::new(),
            username: String::new(),
            password: String::new(),
            tls: TlsFiles::default(),
            keep_alive: DEFAULT_KEEP_ALIVE,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            pub_qos: 1,
            sub_qos: 1,
            topics: None,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            cert_check_interval: DEFAULT_CERT_CHECK_INTERVAL,
        }
    }
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("broker_host", &self.broker_host)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("tls", &self.tls)
            .field("keep_alive", &self.keep_alive)
            .field("dial_timeout", &self.dial_timeout)
            .field("pub_qos", &self.pub_qos)
            .field("sub_qos", &self.sub_qos)
            .field("topics", &self.topics)
            .field("max_packet_size", &self.max_packet_size)
            .field("cert_check_interval", &self.cert_check_interval)
            .finish()
    }
}

impl MqttConfig {
    /// A config for `broker_host` with `topics` and Go's defaults otherwise.
    pub fn new(broker_host: impl Into<String>, topics: Topics) -> Self {
        Self {
            broker_host: broker_host.into(),
            topics: Some(topics),
            ..Self::default()
        }
    }

    /// Sets user name and password.
    #[must_use]
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = username.into();
        self.password = password.into();
        self
    }
    /// Sets the publish and subscribe QoS.
    #[must_use]
    pub fn qos(mut self, pub_qos: u8, sub_qos: u8) -> Self {
        self.pub_qos = pub_qos;
        self.sub_qos = sub_qos;
        self
    }
    ocm_ce_core::builder_setters! {
        /// Sets the TLS files.
        fn tls(tls: TlsFiles) => tls;
        /// Sets the keep-alive in seconds.
        fn keep_alive(seconds: u16) => keep_alive;
        /// Sets the dial timeout.
        fn dial_timeout(timeout: Duration) => dial_timeout;
        /// Sets the maximum packet size.
        fn max_packet_size(bytes: u32) => max_packet_size;
        /// Sets the certificate check interval.
        fn cert_check_interval(interval: Duration) => cert_check_interval;
    }

    /// Reads, parses and validates a YAML or JSON config file (Go
    /// `BuildMQTTOptionsFromFlags`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        crate::config::read_file("MQTT", path.as_ref())
    }

    /// Parses YAML or JSON without validating.
    pub fn parse_unvalidated(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        crate::config::parse_yaml("MQTT", text)
    }

    /// Checks the config in Go's order: `brokerHost`, the certificate/key pair, the topics;
    /// then (ours) the QoS values. The form of `brokerHost` is checked when a transport is
    /// built ([`broker_address`](Self::broker_address)), as Go only finds out when dialing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.broker_host.is_empty() {
            return Err(ConfigError::Required { key: "brokerHost" });
        }
        self.tls.check_pair()?;
        let topics = self.topics.as_ref().ok_or(ConfigError::Topics(TopicError::Missing))?;
        topics.validate().map_err(ConfigError::Topics)?;
        for (key, qos) in [("pubQoS", self.pub_qos), ("subQoS", self.sub_qos)] {
            if qos > 2 {
                return Err(ConfigError::Qos { key, value: qos });
            }
        }
        Ok(())
    }

    /// The topics (an empty set when absent; [`validate`](Self::validate) refuses that).
    pub fn topics_or_default(&self) -> Topics {
        self.topics.clone().unwrap_or_default()
    }

    /// `brokerHost` split into host and port (`[::1]:1883` for IPv6).
    pub fn broker_address(&self) -> Result<(String, u16), ConfigError> {
        let invalid = |reason: &'static str| ConfigError::Address {
            key: "brokerHost",
            value: self.broker_host.clone(),
            reason,
        };
        let (host, port) = self
            .broker_host
            .rsplit_once(':')
            .ok_or_else(|| invalid("missing port"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        let port: u16 = port.parse().map_err(|_| invalid("invalid port"))?;
        Ok((host.to_owned(), port))
    }

    /// True when the connection uses TLS: a client certificate (Go's rule) or, unlike Go, a
    /// CA file alone.
    pub fn uses_tls(&self) -> bool {
        self.tls.ca_file.is_some() || self.tls.client_cert_pair().is_some()
    }
}

impl FromStr for MqttConfig {
    type Err = ConfigError;

    /// Parses YAML or JSON and validates.
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let config = Self::parse_unvalidated(text)?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_need_a_port() {
        let c = |h: &str| MqttConfig {
            broker_host: h.into(),
            ..MqttConfig::default()
        };
        assert_eq!(
            c("127.0.0.1:1883").broker_address().unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(c("[::1]:8883").broker_address().unwrap(), ("::1".into(), 8883));
        assert!(c("localhost").broker_address().is_err());
        assert!(c("localhost:x").broker_address().is_err());
    }

    #[test]
    fn the_password_is_not_printed() {
        let c = MqttConfig::default().credentials("u", "secret");
        assert!(!format!("{c:?}").contains("secret"));
    }
}
