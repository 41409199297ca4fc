//! The gRPC transport configuration: Go's `GRPCConfig` (YAML or JSON) plus the keep-alive and
//! server-healthiness (heartbeat) settings of newer Go SDKs.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::Deserializer;

use crate::error::TransportError;

/// Default keep-alive ping interval when keep-alive is enabled (Go: 30 s).
pub const DEFAULT_KEEP_ALIVE_TIME: Duration = Duration::from_secs(30);
/// Default keep-alive ping timeout (Go: 10 s).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The smallest keep-alive interval used (grpc-go raises smaller values to 10 s, and servers
/// punish clients that ping more often).
pub const MIN_KEEP_ALIVE_TIME: Duration = Duration::from_secs(10);

/// The configuration of the gRPC transport, read from the same file as Go's `GRPCConfig`
/// (`generic/options/grpc`): YAML or JSON, unknown keys ignored.
///
/// | key | meaning |
/// |---|---|
/// | `url` | broker address `host:port` (required) |
/// | `caFile` | PEM roots; turns on TLS (1.3 only) |
/// | `clientCertFile`, `clientKeyFile` | client certificate for mutual TLS (both or none; need `caFile`) |
/// | `tokenFile` | bearer token sent as `authorization: Bearer <content>` (needs `caFile`; unused with a client certificate) |
/// | `keepAliveConfig` (alias `keepAlive`) | HTTP/2 keep-alive: `enable`, `time` (30s), `timeout` (10s), `permitWithoutStream` |
/// | `serverHealthinessTimeout` (alias `heartbeatTimeout`) | end the subscription when nothing (event or heartbeat) arrives for this long |
///
/// Durations are Go duration strings (`30s`, `1m30s`, `500ms`) or integers in nanoseconds, as
/// Go's YAML decoder reads a `time.Duration`. Files are read again on every connect, so a
/// rotated certificate or token is used without a restart.
#[doc(alias = "GRPCConfig")]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct GrpcConfig {
    /// Broker address, `host:port` (an `http://` or `https://` prefix is tolerated).
    pub url: String,
    /// PEM file of root certificates; enables TLS 1.3.
    #[serde(deserialize_with = "optional_path")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (mutual TLS).
    #[serde(deserialize_with = "optional_path")]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(deserialize_with = "optional_path")]
    pub client_key_file: Option<PathBuf>,
    /// File whose whole content is the bearer token.
    #[serde(deserialize_with = "optional_path")]
    pub token_file: Option<PathBuf>,
    /// HTTP/2 keep-alive pings (off by default, as in Go).
    #[serde(alias = "keepAlive")]
    pub keep_alive_config: KeepAliveConfig,
    /// End the subscription with an error when nothing (event or heartbeat) arrives within this
    /// time, so the client reconnects. Off by default; set it above the broker's heartbeat
    /// interval.
    #[serde(
        alias = "heartbeatTimeout",
        deserialize_with = "ocm_ce_core::go_duration::deserialize_option"
    )]
    pub server_healthiness_timeout: Option<Duration>,
}

/// HTTP/2 keep-alive settings (Go v0.16+ `keepAliveConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct KeepAliveConfig {
    /// Send keep-alive pings. The other settings are ignored when off.
    pub enable: bool,
    /// Interval between pings when the connection is quiet (default 30 s, at least 10 s).
    #[serde(deserialize_with = "ocm_ce_core::go_duration::deserialize_option")]
    pub time: Option<Duration>,
    /// How long to wait for a ping acknowledgement before closing the connection (default
    /// 10 s).
    #[serde(deserialize_with = "ocm_ce_core::go_duration::deserialize_option")]
    pub timeout: Option<Duration>,
    /// Ping even when no call is active. The transport always keeps its Subscribe call open, so
    /// this only matters between a loss and the next subscription.
    pub permit_without_stream: bool,
}

impl KeepAliveConfig {
    /// Keep-alive on with Go's defaults.
    pub fn enabled() -> Self {
        Self {
            enable: true,
            ..Self::default()
        }
    }

    /// The ping interval in effect (default and minimum applied).
    pub fn effective_time(&self) -> Duration {
        self.time.unwrap_or(DEFAULT_KEEP_ALIVE_TIME).max(MIN_KEEP_ALIVE_TIME)
    }

    /// The ping timeout in effect.
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_KEEP_ALIVE_TIMEOUT)
    }
}

impl GrpcConfig {
    /// A plaintext configuration for `url` (`host:port`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Sets the CA file (turns on TLS 1.3).
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets the client certificate and key files (mutual TLS).
    #[must_use]
    pub fn client_cert(mut self, cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(cert_file.into());
        self.client_key_file = Some(key_file.into());
        self
    }

    /// Sets the bearer token file.
    #[must_use]
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// Sets the keep-alive settings.
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: KeepAliveConfig) -> Self {
        self.keep_alive_config = keep_alive;
        self
    }

    /// Sets (or clears) the server healthiness (heartbeat) timeout.
    #[must_use]
    pub fn heartbeat_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.server_healthiness_timeout = timeout;
        self
    }

    /// Reads, parses and validates a config file (Go `BuildGRPCOptionsFromFlags`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            TransportError::config(format!("failed to read the grpc config file {}: {e}", path.display()))
        })?;
        text.parse()
    }

    /// Checks the settings, with Go's messages in Go's order.
    pub fn validate(&self) -> Result<(), TransportError> {
        if self.url.is_empty() {
            return Err(TransportError::config("url is required"));
        }
        let (cert, key) = (self.client_cert_file.is_some(), self.client_key_file.is_some());
        if cert != key {
            return Err(TransportError::config(
                "either both or none of clientCertFile and clientKeyFile must be set",
            ));
        }
        if cert && self.ca_file.is_none() {
            return Err(TransportError::config(
                "setting clientCertFile and clientKeyFile requires caFile",
            ));
        }
        if self.token_file.is_some() && self.ca_file.is_none() {
            return Err(TransportError::config("setting tokenFile requires caFile"));
        }
        Ok(())
    }

    /// True when TLS is on (a CA file is set).
    pub fn is_tls(&self) -> bool {
        self.ca_file.is_some()
    }
}

impl FromStr for GrpcConfig {
    type Err = TransportError;

    /// Parses YAML or JSON (unknown keys ignored) and validates.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let blank = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        let config: Self = if blank {
            Self::default()
        } else {
            serde_saphyr::from_str(text)
                .map_err(|e| TransportError::config(format!("failed to parse the grpc config: {e}")))?
        };
        config.validate()?;
        Ok(config)
    }
}

/// Splits `url` (`host:port`, optionally with an `http(s)://` prefix) into the host (without
/// IPv6 brackets) and the port.
pub(crate) fn host_port(url: &str) -> Result<(String, u16), TransportError> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.trim_end_matches('/');
    let bad = || TransportError::config(format!("invalid grpc url {url:?}: expected host:port"));
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(host_port("localhost:8090").unwrap(), ("localhost".to_owned(), 8090));
        assert_eq!(host_port("https://broker:443").unwrap(), ("broker".to_owned(), 443));
        assert_eq!(host_port("[::1]:9").unwrap(), ("::1".to_owned(), 9));
        assert!(host_port("test").unwrap_err().is_config());
        assert!(host_port(":80").is_err());
    }

    #[test]
    fn keep_alive_defaults_follow_go() {
        let k = KeepAliveConfig::enabled();
        assert_eq!(k.effective_time(), Duration::from_secs(30));
        assert_eq!(k.effective_timeout(), Duration::from_secs(10));
        let fast = KeepAliveConfig {
            time: Some(Duration::from_secs(1)),
            ..KeepAliveConfig::enabled()
        };
        assert_eq!(fast.effective_time(), MIN_KEEP_ALIVE_TIME);
    }
}
