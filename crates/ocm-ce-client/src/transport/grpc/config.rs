//! The gRPC transport configuration: Go's `GRPCConfig` (YAML or JSON) plus the keep-alive and
//! server-healthiness (heartbeat) settings of newer Go SDKs.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, TlsFiles};

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
    /// `caFile` (PEM roots; enables TLS 1.3), `clientCertFile` and `clientKeyFile` (mutual
    /// TLS).
    #[serde(flatten)]
    pub tls: TlsFiles,
    /// File whose whole content is the bearer token.
    #[serde(deserialize_with = "crate::config::optional_path")]
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

    /// Sets the bearer token file.
    #[must_use]
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    ocm_ce_core::builder_setters! {
        /// Sets the TLS files (a CA file turns on TLS 1.3).
        fn tls(tls: TlsFiles) => tls;
        /// Sets the keep-alive settings.
        fn keep_alive(keep_alive: KeepAliveConfig) => keep_alive_config;
        /// Sets (or clears) the server healthiness (heartbeat) timeout.
        fn heartbeat_timeout(timeout: Option<Duration>) => server_healthiness_timeout;
    }

    /// Reads, parses and validates a config file (Go `BuildGRPCOptionsFromFlags`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        crate::config::read_file("grpc", path.as_ref())
    }

    /// Checks the settings, with Go's messages in Go's order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.url.is_empty() {
            return Err(ConfigError::Required { key: "url" });
        }
        self.tls.check_pair()?;
        self.tls.check_cert_has_ca()?;
        if self.token_file.is_some() && self.tls.ca_file.is_none() {
            return Err(ConfigError::TokenRequiresCa);
        }
        Ok(())
    }

    /// True when TLS is on (a CA file is set).
    pub fn is_tls(&self) -> bool {
        self.tls.ca_file.is_some()
    }
}

impl FromStr for GrpcConfig {
    type Err = ConfigError;

    /// Parses YAML or JSON (unknown keys ignored) and validates.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let blank = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        let config: Self = if blank {
            Self::default()
        } else {
            crate::config::parse_yaml("grpc", text)?
        };
        config.validate()?;
        Ok(config)
    }
}

/// Splits `url` (`host:port`, optionally with an `http(s)://` prefix) into the host (without
/// IPv6 brackets) and the port.
pub(crate) fn host_port(url: &str) -> Result<(String, u16), ConfigError> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.trim_end_matches('/');
    let bad = || ConfigError::Address {
        key: "grpc url",
        value: url.to_owned(),
        reason: "expected host:port",
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(host_port("localhost:8090").unwrap(), ("localhost".to_owned(), 8090));
        assert_eq!(host_port("https://broker:443").unwrap(), ("broker".to_owned(), 443));
        assert_eq!(host_port("[::1]:9").unwrap(), ("::1".to_owned(), 9));
        assert_eq!(
            host_port("test").unwrap_err().to_string(),
            "invalid grpc url \"test\": expected host:port"
        );
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
