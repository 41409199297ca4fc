//! The Kafka config file (Go `KafkaConfig`, `generic/options/kafka/options.go`): YAML or JSON,
//! a few named keys, every other top-level key handed to librdkafka verbatim over Go's default
//! configuration map, validated with Go's messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

pub use crate::config::ConfigError;
use crate::config::TlsFiles;

/// Default of `subscribeTimeout` (ours): how long `subscribe()` waits for the partition
/// assignment.
pub const DEFAULT_SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of `connectTimeout` (ours): how long `connect()` waits for the brokers' metadata.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Named keys of the file; every other key is a librdkafka property.
const NAMED_KEYS: &[&str] = &[
    "bootstrapServer",
    "caFile",
    "clientCertFile",
    "clientKeyFile",
    "groupID",
    "topicLayout",
    "subscribeTimeout",
    "connectTimeout",
    "createTopics",
    "topicPartitions",
    "topicReplicationFactor",
];

/// Which topics events travel on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicLayout {
    /// The Go SDK v0.15.0 layout (default, wire-compatible with Go peers): one topic per
    /// source/cluster pair and direction, `sourceevents.<source>.<cluster>`,
    /// `agentevents.<source>.<cluster>`, plus `sourcebroadcast.<source>` and
    /// `agentbroadcast.<cluster>`, consumed through anchored regex subscriptions.
    #[default]
    PerCluster,
    /// Two shared topics for large fleets (what upstream moved to in v0.16.0): sources write
    /// everything to `sourceevents`, agents to `agentevents`, keyed `<source>@<cluster>`
    /// (broadcasts keyed `<source>` / `<cluster>`); consumers keep the events addressed to them
    /// by their `clustername` / `originalsource` extensions. Config key `topicLayout: shared`.
    Shared,
}

impl TopicLayout {
    /// The config value: `perCluster` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerCluster => "perCluster",
            Self::Shared => "shared",
        }
    }
}

impl fmt::Display for TopicLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TopicLayout {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "" | "perCluster" => Ok(Self::PerCluster),
            "shared" => Ok(Self::Shared),
            other => Err(ConfigError::TopicLayout {
                value: other.to_owned(),
            }),
        }
    }
}

/// The Kafka transport configuration, YAML- and JSON-compatible with Go's `KafkaConfig`.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `bootstrapServer` | — (required) | `bootstrap.servers` of librdkafka |
/// | `caFile` | — | CA of the brokers; used only together with a client certificate (as Go) |
/// | `clientCertFile`, `clientKeyFile` | — | both or none; both (with `caFile`) switch to `security.protocol=ssl` |
/// | `groupID` | source id / agent id | consumer group |
/// | `topicLayout` | `perCluster` | **ours**: `perCluster` (Go v0.15.0 topics) or `shared` (two topics) |
/// | `subscribeTimeout` | `60s` | **ours**: how long a subscription waits for its partition assignment |
/// | `connectTimeout` | `30s` | **ours**: how long a connect waits for the brokers' metadata |
/// | `createTopics` | `true` | **ours**: create the topics a client needs (see `docs/config-kafka.md`) |
/// | `topicPartitions` | `-1` | **ours**: partitions of created topics (`-1`: the broker's `num.partitions`) |
/// | `topicReplicationFactor` | `-1` | **ours**: replication factor of created topics (`-1`: the broker's `default.replication.factor`) |
/// | any other key | Go's defaults, see [`go_config_map`](Self::go_config_map) | a librdkafka property, passed verbatim (scalars stringified); `go.*` keys of the Go client are dropped |
///
/// See `docs/config-kafka.md` for the full description and the differences from Go.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// `host:port[,host:port…]` of the bootstrap brokers.
    pub bootstrap_server: String,
    /// `caFile` (PEM CA of the brokers), `clientCertFile` and `clientKeyFile`: used only all
    /// together (as Go).
    pub tls: TlsFiles,
    /// Consumer group id; empty means the source id (sources) or agent id (agents).
    pub group_id: String,
    /// The topic layout.
    pub topic_layout: TopicLayout,
    /// How long `subscribe()` waits for the consumer group's partition assignment.
    pub subscribe_timeout: Duration,
    /// How long `connect()` waits until the brokers answer a metadata request.
    pub connect_timeout: Duration,
    /// Whether clients create the topics they need (with the Kafka admin API) when the
    /// brokers allow it.
    pub create_topics: bool,
    /// Partitions of the topics clients create; `-1` is the broker's default.
    pub topic_partitions: i32,
    /// Replication factor of the topics clients create; `-1` is the broker's default.
    pub topic_replication_factor: i32,
    /// Every other top-level key: librdkafka properties, stringified, `go.*` keys removed.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_server: String::new(),
            tls: TlsFiles::default(),
            group_id: String::new(),
            topic_layout: TopicLayout::PerCluster,
            subscribe_timeout: DEFAULT_SUBSCRIBE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            create_topics: true,
            topic_partitions: -1,
            topic_replication_factor: -1,
            properties: BTreeMap::new(),
        }
    }
}

/// Properties whose values are secrets: shown redacted by `Debug`.
fn is_secret(key: &str) -> bool {
    key.contains("password") || key.contains("secret") || key.ends_with(".pem") || key.contains("sasl.oauthbearer")
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_server", &self.bootstrap_server)
            .field("tls", &self.tls)
            .field("group_id", &self.group_id)
            .field("topic_layout", &self.topic_layout)
            .field("subscribe_timeout", &self.subscribe_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("create_topics", &self.create_topics)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication_factor", &self.topic_replication_factor)
            .field("properties", &properties)
            .finish()
    }
}

impl KafkaConfig {
    /// A config for `bootstrap_server` with Go's defaults otherwise.
    pub fn new(bootstrap_server: impl Into<String>) -> Self {
        Self {
            bootstrap_server: bootstrap_server.into(),
            ..Self::default()
        }
    }

    /// Sets the consumer group id.
    #[must_use]
    pub fn group_id(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = group_id.into();
        self
    }
    ocm_ce_core::builder_setters! {
        /// Sets the TLS files (used when the CA, client certificate and key are all set).
        fn tls(tls: TlsFiles) => tls;
        /// Sets the topic layout.
        fn topic_layout(layout: TopicLayout) => topic_layout;
        /// Sets how long a subscription waits for its partition assignment.
        fn subscribe_timeout(timeout: Duration) => subscribe_timeout;
        /// Sets how long a connect waits for the brokers.
        fn connect_timeout(timeout: Duration) => connect_timeout;
        /// Turns the creation of the topics a client needs on or off.
        fn create_topics(on: bool) => create_topics;
    }
    /// Sets the partitions and replication factor of the topics clients create (`-1`: the
    /// broker's default).
    #[must_use]
    pub fn new_topics(mut self, partitions: i32, replication_factor: i32) -> Self {
        self.topic_partitions = partitions;
        self.topic_replication_factor = replication_factor;
        self
    }
    /// Sets a librdkafka property (overrides Go's default for the key). `go.*` keys are ignored.
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        if !is_go_client_key(&key) {
            self.properties.insert(key, value.into());
        }
        self
    }

    /// Reads, parses and validates a YAML or JSON config file (Go `BuildKafkaOptionsFromFlags`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        crate::config::read_file("Kafka", path.as_ref())
    }

    /// Parses YAML or JSON without validating.
    pub fn parse_unvalidated(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let doc: Option<BTreeMap<String, Value>> = crate::config::parse_yaml("Kafka", text)?;
        let mut doc = doc.unwrap_or_default();
        let mut named = |key: &str| -> Result<String, ConfigError> {
            match doc.remove(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(v) => scalar_string(key, v),
            }
        };
        let path = |s: String| Some(PathBuf::from(s)).filter(|p| !p.as_os_str().is_empty());
        let mut config = Self {
            bootstrap_server: named("bootstrapServer")?,
            tls: TlsFiles {
                ca_file: path(named("caFile")?),
                client_cert_file: path(named("clientCertFile")?),
                client_key_file: path(named("clientKeyFile")?),
            },
            group_id: named("groupID")?,
            topic_layout: named("topicLayout")?.parse()?,
            ..Self::default()
        };
        for (key, field) in [
            ("subscribeTimeout", &mut config.subscribe_timeout),
            ("connectTimeout", &mut config.connect_timeout),
        ] {
            let value = named(key)?;
            if !value.is_empty() {
                *field = parse_duration(&value).ok_or(ConfigError::Duration { key, value })?;
            }
        }
        let value = named("createTopics")?;
        config.create_topics = match value.as_str() {
            "" | "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError::Setting {
                    key: "createTopics",
                    value,
                    expected: "true or false",
                });
            }
        };
        for (key, field) in [
            ("topicPartitions", &mut config.topic_partitions),
            ("topicReplicationFactor", &mut config.topic_replication_factor),
        ] {
            let value = named(key)?;
            if !value.is_empty() {
                *field = value
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n == -1 || *n >= 1)
                    .ok_or(ConfigError::Setting {
                        key,
                        value,
                        expected: "a positive number, or -1 for the broker's default",
                    })?;
            }
        }
        debug_assert!(NAMED_KEYS.iter().all(|k| !doc.contains_key(*k)));
        for (key, value) in doc {
            if is_go_client_key(&key) {
                tracing::debug!(%key, "dropping a Go client property (not a librdkafka one)");
                continue;
            }
            let value = scalar_string(&key, value)?;
            config.properties.insert(key, value);
        }
        Ok(config)
    }

    /// Checks the config as Go does, in Go's order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap_server.is_empty() {
            return Err(ConfigError::Required { key: "bootstrapServer" });
        }
        self.tls.check_pair()?;
        self.tls.check_cert_has_ca()
    }

    /// The librdkafka configuration Go builds from this file (`KafkaOptions.ConfigMap`, minus the
    /// Go client's own `go.events.channel.size`): Go's defaults, the TLS keys when a client
    /// certificate is set, then every passed-through property. `group.id` is `groupID` as
    /// written (possibly empty); the transport fills in the default.
    pub fn go_config_map(&self) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = [
            ("bootstrap.servers", self.bootstrap_server.as_str()),
            ("socket.keepalive.enable", "true"),
            ("log.connection.close", "false"),
            ("ssl.endpoint.identification.algorithm", "none"),
            ("acks", "1"),
            ("retries", "0"),
            ("group.id", self.group_id.as_str()),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "true"),
            ("queued.max.messages.kbytes", "32768"),
            ("auto.offset.reset", "earliest"),
            ("auto.commit.interval.ms", "5000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(cert) = &self.tls.client_cert_file {
            let path = |p: Option<&PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();
            map.insert("security.protocol".into(), "ssl".into());
            map.insert("ssl.ca.location".into(), path(self.tls.ca_file.as_ref()));
            map.insert("ssl.certificate.location".into(), path(Some(cert)));
            map.insert("ssl.key.location".into(), path(self.tls.client_key_file.as_ref()));
        }
        map.extend(self.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        map
    }

    /// The configuration a client of `default_group_id` (the source id or agent id) uses:
    /// [`go_config_map`](Self::go_config_map) with `group.id` defaulted when empty.
    pub fn client_config_map(&self, default_group_id: &str) -> BTreeMap<String, String> {
        let mut map = self.go_config_map();
        if map.get("group.id").is_none_or(String::is_empty) {
            map.insert("group.id".into(), default_group_id.to_owned());
        }
        map
    }
}

impl FromStr for KafkaConfig {
    type Err = ConfigError;

    /// Parses YAML or JSON and validates.
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let config = Self::parse_unvalidated(text)?;
        config.validate()?;
        Ok(config)
    }
}

/// Properties of confluent-kafka-go itself, not librdkafka (`go.events.channel.size`, …).
fn is_go_client_key(key: &str) -> bool {
    key.starts_with("go.")
}

/// A YAML scalar as librdkafka wants it: strings verbatim, booleans `true`/`false`, numbers in
/// decimal. Nulls, lists and maps are refused.
fn scalar_string(key: &str, value: Value) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(ConfigError::Value {
            key: key.to_owned(),
            kind: match other {
                Value::Null => "null",
                Value::Array(_) => "a list",
                _ => "a map",
            },
        }),
    }
}

/// A duration: plain seconds (`60`) or Go syntax (`90s`, `1m30s`, `500ms`, `2h`).
fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    match s.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => ocm_ce_core::go_duration::parse_go_duration(s).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// Go's default map for `bootstrapServer: broker1` (without `go.events.channel.size`).
    fn go_defaults(group_id: &str) -> BTreeMap<String, String> {
        map(&[
            ("bootstrap.servers", "broker1"),
            ("socket.keepalive.enable", "true"),
            ("log.connection.close", "false"),
            ("ssl.endpoint.identification.algorithm", "none"),
            ("acks", "1"),
            ("retries", "0"),
            ("group.id", group_id),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "true"),
            ("queued.max.messages.kbytes", "32768"),
            ("auto.offset.reset", "earliest"),
            ("auto.commit.interval.ms", "5000"),
        ])
    }

    fn with(mut m: BTreeMap<String, String>, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        m.extend(map(pairs));
        m
    }

    const SSL: &[(&str, &str)] = &[
        ("security.protocol", "ssl"),
        ("ssl.ca.location", "ca.pem"),
        ("ssl.certificate.location", "cert.pem"),
        ("ssl.key.location", "key.pem"),
    ];

    type Built = Result<BTreeMap<String, String>, String>;

    fn built(yaml: &str) -> Built {
        yaml.parse::<KafkaConfig>()
            .map(|c| c.go_config_map())
            .map_err(|e| e.to_string())
    }

    /// Go `TestBuildKafkaOptionsFromFlags`, case by case.
    #[test]
    fn every_go_build_kafka_options_case_gives_go_s_result() {
        let cases: Vec<(&str, &str, Built)> = vec![
            ("empty config", "", Err("bootstrapServer is required".into())),
            (
                "tls config without clientKeyFile",
                "bootstrapServer: broker1\nclientCertFile: cert.pem\n",
                Err("either both or none of clientCertFile and clientKeyFile must be set".into()),
            ),
            (
                "tls config without caFile",
                "bootstrapServer: broker1\nclientCertFile: cert.pem\nclientKeyFile: key.pem\n",
                Err("setting clientCertFile and clientKeyFile requires caFile".into()),
            ),
            (
                "options without ssl",
                "bootstrapServer: broker1\ngroupID: id\n",
                Ok(go_defaults("id")),
            ),
            (
                "options with ssl",
                "bootstrapServer: broker1\ngroupID: id\nclientCertFile: cert.pem\nclientKeyFile: key.pem\ncaFile: ca.pem\n",
                Ok(with(go_defaults("id"), SSL)),
            ),
            (
                "override the security protocol",
                "bootstrapServer: broker1\ngroupID: id\nclientCertFile: cert.pem\nclientKeyFile: key.pem\ncaFile: ca.pem\nsecurity.protocol: plaintext\n",
                Ok(with(
                    with(go_defaults("id"), SSL),
                    &[("security.protocol", "plaintext")],
                )),
            ),
            (
                "override consumer defaults",
                "bootstrapServer: broker1\ngroupID: id\nenable.auto.commit: false\nauto.offset.reset: latest\nqueued.max.messages.kbytes: 1024\n",
                Ok(with(
                    go_defaults("id"),
                    &[
                        ("enable.auto.commit", "false"),
                        ("auto.offset.reset", "latest"),
                        ("queued.max.messages.kbytes", "1024"),
                    ],
                )),
            ),
            (
                "extra librdkafka keys",
                "bootstrapServer: broker1\ngroupID: id\ndebug: all\nmessage.max.bytes: 1048576\nenable.random.seed: false\n",
                Ok(with(
                    go_defaults("id"),
                    &[
                        ("debug", "all"),
                        ("message.max.bytes", "1048576"),
                        ("enable.random.seed", "false"),
                    ],
                )),
            ),
            (
                "a complex quoted string kept verbatim",
                "bootstrapServer: broker1\ngroupID: id\nsasl.kerberos.kinit.cmd: \"kinit -R -t \\\"%{sasl.kerberos.keytab}\\\" -k %{sasl.kerberos.principal} || kinit -t \\\"%{sasl.kerberos.keytab}\\\" -k %{sasl.kerberos.principal}\"\n",
                Ok(with(
                    go_defaults("id"),
                    &[(
                        "sasl.kerberos.kinit.cmd",
                        "kinit -R -t \"%{sasl.kerberos.keytab}\" -k %{sasl.kerberos.principal} || kinit -t \"%{sasl.kerberos.keytab}\" -k %{sasl.kerberos.principal}",
                    )],
                )),
            ),
        ];
        for (name, yaml, want) in cases {
            assert_eq!(built(yaml), want, "{name}");
        }
    }

    /// Go `optionsbuilder_kafka_test.go`.
    #[test]
    fn the_options_builder_case_applies_ssl_and_overrides() {
        let yaml = "bootstrapServer: broker1\ngroupID: source\nclientCertFile: cert.pem\nclientKeyFile: key.pem\ncaFile: ca.pem\nauto.commit.interval.ms: 8000\nenable.random.seed: false\n";
        let want = with(
            with(go_defaults("source"), SSL),
            &[("auto.commit.interval.ms", "8000"), ("enable.random.seed", "false")],
        );
        assert_eq!(built(yaml), Ok(want));
    }

    #[test]
    fn json_configs_parse_like_yaml() {
        let json = r#"{"bootstrapServer":"broker1","groupID":"id","retries":3,"enable.idempotence":true}"#;
        assert_eq!(
            built(json),
            Ok(with(
                go_defaults("id"),
                &[("retries", "3"), ("enable.idempotence", "true")]
            ))
        );
    }

    #[test]
    fn go_client_keys_are_dropped_and_the_group_defaults_to_the_client_id() {
        let c: KafkaConfig = "bootstrapServer: b\ngo.events.channel.size: 10\ngo.logs.channel.enable: true\n"
            .parse()
            .unwrap();
        assert!(c.properties.is_empty());
        assert_eq!(c.go_config_map()["group.id"], "");
        assert_eq!(c.client_config_map("cluster1-agent")["group.id"], "cluster1-agent");
        let c = c.group_id("g");
        assert_eq!(c.client_config_map("cluster1-agent")["group.id"], "g");
        // a passed-through group.id counts too, as in Go
        let c: KafkaConfig = "bootstrapServer: b\ngroup.id: passthrough\n".parse().unwrap();
        assert_eq!(c.client_config_map("source1")["group.id"], "passthrough");
    }

    #[test]
    fn a_ca_file_without_a_client_certificate_is_ignored_like_go() {
        let c: KafkaConfig = "bootstrapServer: b\ncaFile: ca.pem\n".parse().unwrap();
        assert!(!c.go_config_map().contains_key("security.protocol"));
    }

    #[test]
    fn our_keys_parse_and_are_not_passed_to_librdkafka() {
        let c: KafkaConfig = "bootstrapServer: b\ntopicLayout: shared\nsubscribeTimeout: 1m30s\nconnectTimeout: 5\n"
            .parse()
            .unwrap();
        assert_eq!(c.topic_layout, TopicLayout::Shared);
        assert_eq!(c.subscribe_timeout, Duration::from_secs(90));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert!(c.properties.is_empty());
        assert_eq!(c.go_config_map(), with(go_defaults(""), &[("bootstrap.servers", "b")]));
        let c: KafkaConfig = "bootstrapServer: b\n".parse().unwrap();
        assert_eq!(c.topic_layout, TopicLayout::PerCluster);
        assert_eq!(c.subscribe_timeout, DEFAULT_SUBSCRIBE_TIMEOUT);
        assert!(c.create_topics);
        assert_eq!((c.topic_partitions, c.topic_replication_factor), (-1, -1));
        let c: KafkaConfig = "bootstrapServer: b\ncreateTopics: false\ntopicPartitions: 3\ntopicReplicationFactor: 2\n"
            .parse()
            .unwrap();
        assert!(!c.create_topics);
        assert_eq!((c.topic_partitions, c.topic_replication_factor), (3, 2));
        assert!(c.properties.is_empty());
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let err = |yaml: &str| yaml.parse::<KafkaConfig>().unwrap_err().to_string();
        assert_eq!(
            err("bootstrapServer: b\ntopicLayout: flat\n"),
            "invalid topicLayout \"flat\": must be perCluster or shared"
        );
        assert_eq!(
            err("bootstrapServer: b\ndebug: [a, b]\n"),
            "invalid value for debug: expected a string, number or boolean, not a list"
        );
        assert_eq!(
            err("bootstrapServer: b\nsubscribeTimeout: soon\n"),
            "invalid subscribeTimeout \"soon\": expected a duration such as 60s"
        );
        assert_eq!(
            err("bootstrapServer: b\ncreateTopics: yes please\n"),
            "invalid createTopics \"yes please\": expected true or false"
        );
        assert_eq!(
            err("bootstrapServer: b\ntopicPartitions: 0\n"),
            "invalid topicPartitions \"0\": expected a positive number, or -1 for the broker's default"
        );
        assert!(err("- a\n- b\n").starts_with("failed to parse the Kafka config"));
    }

    #[test]
    fn durations_parse_in_go_syntax() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = KafkaConfig::new("b").property("sasl.password", "hunter2");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
