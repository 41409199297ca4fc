//! MQTT topic rules of the Go SDK (`generic/options/mqtt`): validation, the source of an events topic, who
//! subscribes to what and which topic an event is published to. Pure functions; the MQTT
//! transport applies them.

use cloudevents::{AttributesReader, Event};
use serde::{Deserialize, Serialize};

use crate::error::{ExtensionError, TopicError};
use crate::event_type::EventType;
use crate::extensions;

/// Pattern of any events topic (Go's `EventsTopicPattern`).
pub const EVENTS_TOPIC_PATTERN: &str =
    r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/([a-z]+)/([a-z0-9-]+|\+)/(sourceevents|agentevents)$";
/// Pattern of a source events topic.
pub const SOURCE_EVENTS_TOPIC_PATTERN: &str =
    r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/([a-z]+)/([a-z0-9-]+|\+)/sourceevents$";
/// Pattern of an agent events topic.
pub const AGENT_EVENTS_TOPIC_PATTERN: &str =
    r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/([a-z]+)/([a-z0-9-]+|\+)/agentevents$";
/// Pattern of a source broadcast topic.
pub const SOURCE_BROADCAST_TOPIC_PATTERN: &str = r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/sourcebroadcast$";
/// Pattern of an agent broadcast topic.
pub const AGENT_BROADCAST_TOPIC_PATTERN: &str = r"^(\$share/[a-z0-9-]+/)?([a-z]+)/([a-z0-9-]+|\+)/agentbroadcast$";

/// The four MQTT topics of a client (`topics` block of the Go MQTT config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topics {
    /// Spec events, e.g. `sources/source1/clusters/+/sourceevents`.
    #[serde(default)]
    pub source_events: String,
    /// Status events, e.g. `sources/source1/clusters/+/agentevents`.
    #[serde(default)]
    pub agent_events: String,
    /// Broadcast status resync requests of sources, e.g. `sources/+/sourcebroadcast` (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_broadcast: String,
    /// Broadcast spec resync requests of agents, e.g. `clusters/+/agentbroadcast` (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_broadcast: String,
}

#[derive(Clone, Copy)]
enum Suffix {
    SourceEvents,
    AgentEvents,
    AnyEvents,
    SourceBroadcast,
    AgentBroadcast,
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase())
}

fn is_id_or_plus(s: &str) -> bool {
    s == "+"
        || (!s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
}

/// Strips a valid `$share/<group>/` prefix. `None` when the topic starts with `$share/` but
/// the group is invalid.
fn strip_share(topic: &str) -> Option<&str> {
    match topic.strip_prefix("$share/") {
        None => Some(topic),
        Some(rest) => {
            let (group, rest) = rest.split_once('/')?;
            is_id_or_plus(group).then_some(rest).filter(|_| group != "+")
        }
    }
}

fn matches(topic: &str, suffix: Suffix) -> bool {
    let try_match = |t: &str| -> bool {
        let seg: Vec<&str> = t.split('/').collect();
        match suffix {
            Suffix::SourceEvents | Suffix::AgentEvents | Suffix::AnyEvents => {
                let last_ok = match suffix {
                    Suffix::SourceEvents => seg.get(4) == Some(&"sourceevents"),
                    Suffix::AgentEvents => seg.get(4) == Some(&"agentevents"),
                    _ => matches!(seg.get(4), Some(&"sourceevents" | &"agentevents")),
                };
                seg.len() == 5
                    && is_word(seg[0])
                    && is_id_or_plus(seg[1])
                    && is_word(seg[2])
                    && is_id_or_plus(seg[3])
                    && last_ok
            }
            Suffix::SourceBroadcast | Suffix::AgentBroadcast => {
                let end = if matches!(suffix, Suffix::SourceBroadcast) {
                    "sourcebroadcast"
                } else {
                    "agentbroadcast"
                };
                seg.len() == 3 && is_word(seg[0]) && is_id_or_plus(seg[1]) && seg[2] == end
            }
        }
    };
    // The optional share group is part of the regex: `$share/...` either matches as a prefix or
    // (when the group is invalid) the topic is tried as is, which then fails on `$share`.
    strip_share(topic).is_some_and(try_match) || try_match(topic)
}

/// True when `topic` matches [`SOURCE_EVENTS_TOPIC_PATTERN`].
pub fn is_source_events_topic(topic: &str) -> bool {
    matches(topic, Suffix::SourceEvents)
}
/// True when `topic` matches [`AGENT_EVENTS_TOPIC_PATTERN`].
pub fn is_agent_events_topic(topic: &str) -> bool {
    matches(topic, Suffix::AgentEvents)
}
/// True when `topic` matches [`SOURCE_BROADCAST_TOPIC_PATTERN`].
pub fn is_source_broadcast_topic(topic: &str) -> bool {
    matches(topic, Suffix::SourceBroadcast)
}
/// True when `topic` matches [`AGENT_BROADCAST_TOPIC_PATTERN`].
pub fn is_agent_broadcast_topic(topic: &str) -> bool {
    matches(topic, Suffix::AgentBroadcast)
}

impl Topics {
    /// Validates the topics as Go's `validateTopics`; all violations are reported together.
    pub fn validate(&self) -> Result<(), TopicError> {
        let mut errors: Vec<String> = Vec::new();
        let mut push = |e: String| {
            if !errors.contains(&e) {
                errors.push(e);
            }
        };
        if !is_source_events_topic(&self.source_events) {
            push(format!(
                "invalid source events topic {:?}, it should match `{SOURCE_EVENTS_TOPIC_PATTERN}`",
                self.source_events
            ));
        }
        if !is_agent_events_topic(&self.agent_events) {
            push(format!(
                "invalid agent events topic {:?}, it should match `{AGENT_EVENTS_TOPIC_PATTERN}`",
                self.agent_events
            ));
        }
        if !self.source_broadcast.is_empty() && !is_source_broadcast_topic(&self.source_broadcast) {
            push(format!(
                "invalid source broadcast topic {:?}, it should match `{SOURCE_BROADCAST_TOPIC_PATTERN}`",
                self.source_broadcast
            ));
        }
        if !self.agent_broadcast.is_empty() && !is_agent_broadcast_topic(&self.agent_broadcast) {
            push(format!(
                "invalid agent broadcast topic {:?}, it should match `{AGENT_BROADCAST_TOPIC_PATTERN}`",
                self.agent_broadcast
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TopicError::Invalid(errors))
        }
    }

    /// The filters a source subscribes to: `agentEvents` as configured (after checking that its
    /// source segment is `source_id`), plus `agentBroadcast` when set.
    pub fn source_subscriptions(&self, source_id: &str) -> Result<Vec<String>, TopicError> {
        let topic_source = source_of_events_topic(&self.agent_events)?;
        if topic_source != source_id {
            return Err(TopicError::SourceMismatch {
                topic: self.agent_events.clone(),
                source_id: source_id.to_owned(),
            });
        }
        let mut subs = vec![self.agent_events.clone()];
        if !self.agent_broadcast.is_empty() {
            subs.push(self.agent_broadcast.clone());
        }
        Ok(subs)
    }

    /// The filters an agent subscribes to: `sourceEvents` with its last `+` replaced by the
    /// cluster name, plus `sourceBroadcast` when set.
    pub fn agent_subscriptions(&self, cluster_name: &str) -> Vec<String> {
        let mut subs = vec![replace_last_plus(&self.source_events, cluster_name)];
        if !self.source_broadcast.is_empty() {
            subs.push(self.source_broadcast.clone());
        }
        subs
    }

    /// The topic a source publishes `event` to (Go `sourceOptions.WithContext`). `forced` is a
    /// caller-chosen topic, which must be a source events or source broadcast topic.
    pub fn source_publish_topic(
        &self,
        source_id: &str,
        event: &Event,
        forced: Option<&str>,
    ) -> Result<String, TopicError> {
        if let Some(t) = forced {
            return if is_source_events_topic(t) || is_source_broadcast_topic(t) {
                Ok(t.to_owned())
            } else {
                Err(TopicError::InvalidSourcePubTopic)
            };
        }
        let Some(cluster) = addressee(event, extensions::CLUSTER_NAME)? else {
            if self.source_broadcast.is_empty() {
                return Err(TopicError::NoSourceBroadcast);
            }
            return Ok(self.source_broadcast.replacen('+', source_id, 1));
        };
        Ok(self.source_events.replacen('+', &cluster, 1))
    }

    /// The topic an agent of `cluster_name` publishes `event` to (Go `agentOptions.WithContext`),
    /// and a warning when a broadcast falls back to the agent events topic.
    pub fn agent_publish_topic(
        &self,
        cluster_name: &str,
        event: &Event,
        forced: Option<&str>,
    ) -> Result<(String, Option<&'static str>), TopicError> {
        if let Some(t) = forced {
            return if is_agent_events_topic(t) || is_agent_broadcast_topic(t) {
                Ok((t.to_owned(), None))
            } else {
                Err(TopicError::InvalidAgentPubTopic)
            };
        }
        if addressee(event, extensions::ORIGINAL_SOURCE)?.is_none() {
            if self.agent_broadcast.is_empty() {
                return Ok((
                    replace_last_plus(&self.agent_events, cluster_name),
                    Some("the agent broadcast topic not set, fall back to the agent events topic"),
                ));
            }
            return Ok((self.agent_broadcast.replacen('+', cluster_name, 1), None));
        }
        let source = source_of_events_topic(&self.agent_events)?;
        let with_cluster = replace_last_plus(&self.agent_events, cluster_name);
        Ok((replace_last_plus(&with_cluster, &source), None))
    }
}

/// The source segment of an events topic (`a/<source>/b/c/…`, after an optional share prefix);
/// it may be `+`.
pub fn source_of_events_topic(topic: &str) -> Result<String, TopicError> {
    if !matches(topic, Suffix::AnyEvents) {
        return Err(TopicError::NoSource {
            topic: topic.to_owned(),
        });
    }
    let seg: Vec<&str> = topic.split('/').collect();
    let idx = if topic.starts_with("$share") { 3 } else { 1 };
    Ok(seg.get(idx).copied().unwrap_or_default().to_owned())
}

/// A routing extension of `event` (`clustername`, `originalsource`) as the string it must be:
/// absent and not-a-string are distinct errors, so a wrongly typed one can never turn into an
/// empty topic segment or a broadcast.
pub fn routing_extension(event: &Event, name: &'static str) -> Result<String, TopicError> {
    match extensions::to_string(event.extension(name)) {
        Ok(s) => Ok(s),
        Err(ExtensionError::Missing) => Err(TopicError::MissingExtension { name }),
        Err(_) => Err(TopicError::WrongExtensionType {
            name,
            value: event.extension(name).map(ToString::to_string).unwrap_or_default(),
        }),
    }
}

/// Whom `event` is addressed to: its routing extension `name` (`clustername` of a source's
/// event, `originalsource` of an agent's), or `None` for a broadcast, a `resync_request` whose
/// `name` is empty.
pub fn addressee(event: &Event, name: &'static str) -> Result<Option<String>, TopicError> {
    let ty: EventType = event.ty().parse().map_err(TopicError::EventType)?;
    let to = routing_extension(event, name)?;
    Ok((!(ty.is_resync_request() && to.is_empty())).then_some(to))
}

/// The cluster segment of a received agent events topic (`a/<source>/b/<cluster>/agentevents`),
/// or `None` for any other topic. A source checks it against the `clustername` of the event:
/// a broker's topic permissions bind an agent to its cluster's topics, so the topic is the
/// cluster the sender may speak for.
pub fn cluster_of_agent_events_topic(topic: &str) -> Option<&str> {
    if !is_agent_events_topic(topic) || topic.starts_with("$share") {
        return None;
    }
    topic.split('/').nth(3).filter(|c| *c != "+")
}

fn replace_last_plus(topic: &str, with: &str) -> String {
    match topic.rfind('+') {
        Some(i) => format!("{}{with}{}", &topic[..i], &topic[i + 1..]),
        None => topic.to_owned(),
    }
}

/// Go's `TestValidateTopics` cases (sdk-go `generic/options/mqtt`), for the tests of every place
/// that validates topics. Each case is `[sourceEvents, agentEvents, sourceBroadcast,
/// agentBroadcast]`.
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod go_cases {
    /// Topic sets Go accepts.
    pub const VALID: &[[&str; 4]] = &[
        [
            "sources/maestro/clusters/+/sourceevents",
            "sources/maestro/clusters/+/agentevents",
            "",
            "",
        ],
        [
            "sources/maestro/consumers/+/sourceevents",
            "sources/maestro/consumers/+/agentevents",
            "",
            "",
        ],
        [
            "hubs/maestro/consumers/+/sourceevents",
            "hubs/maestro/consumers/+/agentevents",
            "",
            "",
        ],
        [
            "$share/group1/sources/maestro/clusters/+/sourceevents",
            "$share/group1/sources/maestro/clusters/+/agentevents",
            "$share/group1/sources/+/sourcebroadcast",
            "$share/group1/clusters/+/agentbroadcast",
        ],
        [
            "sources/+/clusters/+/sourceevents",
            "sources/+/clusters/+/agentevents",
            "sources/+/sourcebroadcast",
            "clusters/+/agentbroadcast",
        ],
        [
            "sources/maestro/clusters/cluster-1/sourceevents",
            "sources/maestro/clusters/cluster-1/agentevents",
            "sources/maestro/sourcebroadcast",
            "clusters/cluster1/agentbroadcast",
        ],
        [
            "sources/0b5e8a34-5d6c-4e3a-9a8b-1c2d3e4f5a6b/clusters/+/sourceevents",
            "sources/0b5e8a34-5d6c-4e3a-9a8b-1c2d3e4f5a6b/clusters/+/agentevents",
            "",
            "",
        ],
    ];

    /// Topic sets Go refuses: nothing set, an unknown suffix, suffixes swapped.
    pub const INVALID: &[[&str; 4]] = &[
        ["", "", "", ""],
        [
            "sources/a/clusters/+/specresync",
            "sources/a/clusters/+/agentevents",
            "",
            "",
        ],
        [
            "sources/a/clusters/+/sourceevents",
            "sources/a/clusters/+/statusresync",
            "",
            "",
        ],
        [
            "sources/a/clusters/+/agentevents",
            "sources/a/clusters/+/sourceevents",
            "",
            "",
        ],
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(se: &str, ae: &str, sb: &str, ab: &str) -> Topics {
        Topics {
            source_events: se.into(),
            agent_events: ae.into(),
            source_broadcast: sb.into(),
            agent_broadcast: ab.into(),
        }
    }

    #[test]
    fn topics_accepted_by_go_are_valid_and_refused_ones_are_not() {
        for [se, ae, sb, ab] in go_cases::VALID {
            assert_eq!(t(se, ae, sb, ab).validate(), Ok(()), "{se} {ae} {sb} {ab}");
        }
        for [se, ae, sb, ab] in go_cases::INVALID {
            assert!(t(se, ae, sb, ab).validate().is_err(), "{se} {ae} {sb} {ab}");
        }
    }

    #[test]
    fn several_violations_are_listed_together() {
        let err = t("x", "y", "", "").validate().unwrap_err().to_string();
        assert!(err.starts_with("[invalid source events topic \"x\""), "{err}");
        assert!(err.contains(", invalid agent events topic \"y\""), "{err}");
    }

    #[test]
    fn the_source_of_an_events_topic_skips_the_share_prefix() {
        assert_eq!(
            source_of_events_topic("$share/group/sources/source1/consumers/+/agentevents").unwrap(),
            "source1"
        );
        assert_eq!(
            source_of_events_topic("sources/source2/consumers/+/agentevents").unwrap(),
            "source2"
        );
        assert_eq!(
            source_of_events_topic("$share/group/sources/source3/consumers/+/sourceevents").unwrap(),
            "source3"
        );
        assert_eq!(
            source_of_events_topic("sources/source4/consumers/+/sourceevents").unwrap(),
            "source4"
        );
    }

    #[test]
    fn an_agent_subscribes_to_its_own_cluster() {
        let topics = t(
            "sources/+/clusters/+/sourceevents",
            "sources/s/clusters/+/agentevents",
            "sources/+/sourcebroadcast",
            "",
        );
        assert_eq!(
            topics.agent_subscriptions("cluster1"),
            vec![
                "sources/+/clusters/cluster1/sourceevents".to_owned(),
                "sources/+/sourcebroadcast".to_owned()
            ]
        );
    }

    #[test]
    fn the_cluster_of_a_received_agent_events_topic_is_its_fourth_segment() {
        assert_eq!(
            cluster_of_agent_events_topic("sources/s1/clusters/payroll/agentevents"),
            Some("payroll")
        );
        assert_eq!(
            cluster_of_agent_events_topic("sources/s1/clusters/payroll/sourceevents"),
            None
        );
        assert_eq!(cluster_of_agent_events_topic("sources/s1/clusters/+/agentevents"), None);
        assert_eq!(cluster_of_agent_events_topic("sources/s1/sourcebroadcast"), None);
    }

    #[test]
    fn a_routing_extension_that_is_not_a_string_is_a_clear_error() {
        let ty: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.status.resync_request"
            .parse()
            .unwrap();
        let mut event = crate::EventBuilder::new("s1", ty).build().unwrap();
        event.set_extension("clustername", 5_i64);
        let err = routing_extension(&event, extensions::CLUSTER_NAME).unwrap_err();
        assert_eq!(err.to_string(), "the clustername extension must be a string, not 5");
        let topics = t(
            "sources/s1/clusters/+/sourceevents",
            "sources/s1/clusters/+/agentevents",
            "sources/s1/sourcebroadcast",
            "",
        );
        // Not a broadcast to every cluster (what an empty clustername would mean).
        assert!(matches!(
            topics.source_publish_topic("s1", &event, None),
            Err(TopicError::WrongExtensionType { .. })
        ));
        event.remove_extension("clustername");
        assert!(matches!(
            routing_extension(&event, extensions::CLUSTER_NAME),
            Err(TopicError::MissingExtension { .. })
        ));
    }
}
