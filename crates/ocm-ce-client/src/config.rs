//! What the config files of the three transports share: the TLS file settings ([`TlsFiles`],
//! the `caFile`, `clientCertFile` and `clientKeyFile` keys) and the error of an invalid config
//! ([`ConfigError`], with Go's validation texts).

use std::path::PathBuf;

use ocm_ce_core::TopicError;
use serde::{Deserialize, Deserializer};

/// The TLS files of a transport config: Go's `caFile`, `clientCertFile` and `clientKeyFile`
/// keys (an empty path is no path, as in Go). Each transport says what they switch on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct TlsFiles {
    /// PEM root certificates of the broker.
    #[serde(deserialize_with = "optional_path")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain (mutual TLS).
    #[serde(deserialize_with = "optional_path")]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[serde(deserialize_with = "optional_path")]
    pub client_key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the CA file.
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

    /// Both the client certificate and its key, when both are set.
    pub fn client_cert_pair(&self) -> Option<(&PathBuf, &PathBuf)> {
        self.client_cert_file.as_ref().zip(self.client_key_file.as_ref())
    }

    /// Go's check: both or none of the client certificate and key.
    pub fn check_pair(&self) -> Result<(), ConfigError> {
        if self.client_cert_file.is_some() == self.client_key_file.is_some() {
            Ok(())
        } else {
            Err(ConfigError::CertKeyPair)
        }
    }

    /// Go's check for gRPC and Kafka: a client certificate needs a CA file.
    pub fn check_cert_has_ca(&self) -> Result<(), ConfigError> {
        if self.client_cert_file.is_some() && self.ca_file.is_none() {
            Err(ConfigError::CertRequiresCa)
        } else {
            Ok(())
        }
    }
}

/// Reads the config file of `transport` (`MQTT`, `grpc` or `Kafka`) at `path` and parses it;
/// what `from_file` of each transport's config does.
pub(crate) fn read_file<C: std::str::FromStr<Err = ConfigError>>(
    transport: &'static str,
    path: &std::path::Path,
) -> Result<C, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|cause| ConfigError::Read {
            transport,
            path: path.to_owned(),
            cause,
        })?
        .parse()
}

/// Parses the YAML (or JSON) text of a `transport`'s config; what the parser refuses is a
/// [`ConfigError::Parse`].
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    transport: &'static str,
    text: &str,
) -> Result<T, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
        transport,
        reason: e.to_string(),
    })
}

/// Reads an optional path: absent, `null` and `""` are none.
pub(crate) fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(PathBuf::from))
}

/// An invalid transport configuration (MQTT, gRPC or Kafka). The validation texts are Go's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read the {transport} config file {}: {cause}", path.display())]
    Read {
        /// `MQTT`, `grpc` or `Kafka`.
        transport: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The text is not a YAML/JSON config.
    #[error("failed to parse the {transport} config: {reason}")]
    Parse {
        /// `MQTT`, `grpc` or `Kafka`.
        transport: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// A required key is empty (`brokerHost`, `url`, `bootstrapServer`).
    #[error("{key} is required")]
    Required {
        /// The key.
        key: &'static str,
    },
    /// Only one of `clientCertFile` and `clientKeyFile` is set.
    #[error("either both or none of clientCertFile and clientKeyFile must be set")]
    CertKeyPair,
    /// A client certificate without `caFile` (gRPC, Kafka).
    #[error("setting clientCertFile and clientKeyFile requires caFile")]
    CertRequiresCa,
    /// A token file without `caFile` (gRPC).
    #[error("setting tokenFile requires caFile")]
    TokenRequiresCa,
    /// The topics are missing or invalid (MQTT; Go's texts).
    #[error(transparent)]
    Topics(TopicError),
    /// A QoS outside 0..=2 (MQTT).
    #[error("{key} must be 0, 1 or 2, not {value}")]
    Qos {
        /// `pubQoS` or `subQoS`.
        key: &'static str,
        /// The value.
        value: u8,
    },
    /// A broker address that is not `host:port`.
    #[error("invalid {key} {value:?}: {reason}")]
    Address {
        /// What the address is (`brokerHost`, `grpc url`).
        key: &'static str,
        /// The value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A property whose value is not a scalar (Kafka).
    #[error("invalid value for {key}: expected a string, number or boolean, not {kind}")]
    Value {
        /// The key.
        key: String,
        /// What was found.
        kind: &'static str,
    },
    /// An unknown `topicLayout` (Kafka).
    #[error("invalid topicLayout {value:?}: must be perCluster or shared")]
    TopicLayout {
        /// The value.
        value: String,
    },
    /// A duration that does not parse.
    #[error("invalid {key} {value:?}: expected a duration such as 60s")]
    Duration {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// Another named key with a value out of its range.
    #[error("invalid {key} {value:?}: expected {expected}")]
    Setting {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
        /// What the key takes.
        expected: &'static str,
    },
}

impl From<ConfigError> for crate::TransportError {
    fn from(e: ConfigError) -> Self {
        Self::config(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_read_go_keys_and_check_go_rules() {
        let files: TlsFiles = serde_json::from_str(r#"{"caFile":"","clientCertFile":"c.pem"}"#).unwrap();
        assert_eq!(files.ca_file, None, "an empty path is no path");
        assert_eq!(
            files.check_pair().unwrap_err().to_string(),
            "either both or none of clientCertFile and clientKeyFile must be set"
        );
        let files = TlsFiles::new().client_cert("c.pem", "k.pem");
        assert!(files.check_pair().is_ok());
        assert_eq!(
            files.check_cert_has_ca().unwrap_err().to_string(),
            "setting clientCertFile and clientKeyFile requires caFile"
        );
        assert!(files.ca_file("ca.pem").check_cert_has_ca().is_ok());
    }

    #[test]
    fn a_config_error_is_a_config_transport_error_with_the_same_text() {
        let e = crate::TransportError::from(ConfigError::Required { key: "url" });
        assert!(e.is_config());
        assert_eq!(e.to_string(), "url is required");
    }
}
