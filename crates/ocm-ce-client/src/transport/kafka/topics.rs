//! Kafka topics, message keys and subscriptions of the Go SDK (`generic/options/kafka`) as pure
//! functions.
//!
//! Per-cluster layout (Go v0.15.0):
//!
//! | sender | event | topic | key |
//! |---|---|---|---|
//! | source | `resync_request` with `clustername` `""` | `sourcebroadcast.<source>` | `<source>` |
//! | source | anything else | `sourceevents.<source>.<clustername>` | `<source>@<clustername>` |
//! | agent | `resync_request` with `originalsource` `""` | `agentbroadcast.<cluster>` | `<cluster>` |
//! | agent | anything else | `agentevents.<originalsource>.<cluster>` | `<originalsource>@<cluster>` |
//!
//! Subscriptions are librdkafka regexes (POSIX extended). Go's (`^sourceevents.*.<cluster>`,
//! `^agentevents.<source>.*`) are unescaped and not end-anchored, so the agent of `cluster1`
//! also reads `cluster10`'s topics. Ours escape the ids and anchor both ends, and still match
//! every topic a Go peer writes for us (cluster names are DNS labels without dots; source ids may
//! contain dots):
//!
//! * source `source1`: `^agentevents\.source1\.[^.]+$` and `^agentbroadcast\.[^.]+$`;
//! * agent of `cluster1`: `^sourceevents\..+\.cluster1$` and `^sourcebroadcast\..+$`.
//!
//! Shared layout (ours, opt-in): sources write to `sourceevents`, agents to `agentevents`, with
//! the same keys; each side subscribes to the other's topic and keeps what
//! [`accepts`] lets through.
//!
//! The topics a client creates (`createTopics`): [`connect_topics`] when it connects,
//! [`target_topics`] before the first record to a peer.

use cloudevents::Event;
use ocm_ce_core::{EventExt, EventTypeError};

use super::config::TopicLayout;
use crate::transport::{PublishTarget, Role};

/// Prefix of the source → agent topics.
pub const SOURCE_EVENTS: &str = "sourceevents";
/// Prefix of the agent → source topics.
pub const AGENT_EVENTS: &str = "agentevents";
/// Prefix of a source's broadcast topic.
pub const SOURCE_BROADCAST: &str = "sourcebroadcast";
/// Prefix of an agent's broadcast topic.
pub const AGENT_BROADCAST: &str = "agentbroadcast";

/// Where one message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The topic.
    pub topic: String,
    /// The message key (the partitioner hashes it, so one source/cluster pair keeps one
    /// partition and its order).
    pub key: String,
}

impl Route {
    fn new(topic: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: key.into(),
        }
    }
}

/// Why an event cannot be routed. Texts are Go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The event type does not parse (`unsupported cloudevents type format: …`).
    #[error(transparent)]
    EventType(#[from] EventTypeError),
    /// A routing extension is absent or not a string.
    #[error(transparent)]
    Extension(#[from] ocm_ce_core::TopicError),
    /// The target is not one this side sends to (a source publishing to a source, …).
    #[error("a {role} cannot publish to {target:?}")]
    WrongDirection {
        /// `source` or `agent`.
        role: &'static str,
        /// The target.
        target: PublishTarget,
    },
}

/// The route of a source's message (Go `kafkaSourceOptions.WithContext`, by target).
pub fn source_route(layout: TopicLayout, source_id: &str, target: &PublishTarget) -> Result<Route, RouteError> {
    let (per_cluster_topic, key) = match target {
        PublishTarget::AllClusters => (format!("{SOURCE_BROADCAST}.{source_id}"), source_id.to_owned()),
        PublishTarget::Cluster(cluster) => (
            format!("{SOURCE_EVENTS}.{source_id}.{cluster}"),
            format!("{source_id}@{cluster}"),
        ),
        other => {
            return Err(RouteError::WrongDirection {
                role: "source",
                target: other.clone(),
            });
        }
    };
    Ok(match layout {
        TopicLayout::PerCluster => Route::new(per_cluster_topic, key),
        TopicLayout::Shared => Route::new(SOURCE_EVENTS, key),
    })
}

/// The route of an agent's message (Go `kafkaAgentOptions.WithContext`, by target).
pub fn agent_route(layout: TopicLayout, cluster_name: &str, target: &PublishTarget) -> Result<Route, RouteError> {
    let (per_cluster_topic, key) = match target {
        PublishTarget::AllSources => (format!("{AGENT_BROADCAST}.{cluster_name}"), cluster_name.to_owned()),
        PublishTarget::Source(source) => (
            format!("{AGENT_EVENTS}.{source}.{cluster_name}"),
            format!("{source}@{cluster_name}"),
        ),
        other => {
            return Err(RouteError::WrongDirection {
                role: "agent",
                target: other.clone(),
            });
        }
    };
    Ok(match layout {
        TopicLayout::PerCluster => Route::new(per_cluster_topic, key),
        TopicLayout::Shared => Route::new(AGENT_EVENTS, key),
    })
}

/// Why the target of an event could not be told: a type that does not parse stays a
/// [`RouteError::EventType`].
fn event_route_error(e: ocm_ce_core::TopicError) -> RouteError {
    match e {
        ocm_ce_core::TopicError::EventType(e) => RouteError::EventType(e),
        other => RouteError::Extension(other),
    }
}

/// The route of an event built by source `source_id`, from its type and `clustername` (Go
/// `kafkaSourceOptions.WithContext`).
pub fn source_event_route(layout: TopicLayout, source_id: &str, event: &Event) -> Result<Route, RouteError> {
    let target = PublishTarget::for_source_event(event).map_err(event_route_error)?;
    source_route(layout, source_id, &target)
}

/// The route of an event built by the agent of `cluster_name`, from its type and
/// `originalsource` (Go `kafkaAgentOptions.WithContext`).
pub fn agent_event_route(layout: TopicLayout, cluster_name: &str, event: &Event) -> Result<Route, RouteError> {
    let target = PublishTarget::for_agent_event(event).map_err(event_route_error)?;
    agent_route(layout, cluster_name, &target)
}

/// The topics a client creates when it connects: the one it sends its broadcasts to (so that
/// the peers' subscriptions find it before the first record), or both shared topics.
///
/// * source `s`: `sourcebroadcast.s`;
/// * agent of `c`: `agentbroadcast.c`;
/// * shared layout: `sourceevents` and `agentevents`.
pub fn connect_topics(layout: TopicLayout, role: &Role) -> Vec<String> {
    match (layout, role) {
        (TopicLayout::PerCluster, Role::Source { source_id }) => vec![format!("{SOURCE_BROADCAST}.{source_id}")],
        (TopicLayout::PerCluster, Role::Agent { cluster_name, .. }) => {
            vec![format!("{AGENT_BROADCAST}.{cluster_name}")]
        }
        (TopicLayout::Shared, _) => vec![SOURCE_EVENTS.to_owned(), AGENT_EVENTS.to_owned()],
    }
}

/// The topics a client creates before it first sends to `target`: the topic it writes to and,
/// for a source/cluster pair, the topic of the other direction (which its own subscription
/// reads), both named exactly as Go names them. Empty for a target the role cannot send to.
///
/// * source `s` to cluster `c` (or agent of `c` to source `s`): `sourceevents.s.c` and
///   `agentevents.s.c`;
/// * broadcasts: the broadcast topic (see [`connect_topics`]);
/// * shared layout: the topic written to.
pub fn target_topics(layout: TopicLayout, role: &Role, target: &PublishTarget) -> Vec<String> {
    let pair = |source: &str, cluster: &str| {
        vec![
            format!("{SOURCE_EVENTS}.{source}.{cluster}"),
            format!("{AGENT_EVENTS}.{source}.{cluster}"),
        ]
    };
    match (layout, role, target) {
        (TopicLayout::PerCluster, Role::Source { source_id }, PublishTarget::Cluster(cluster)) => {
            pair(source_id, cluster)
        }
        (TopicLayout::PerCluster, Role::Agent { cluster_name, .. }, PublishTarget::Source(source)) => {
            let mut topics = pair(source, cluster_name);
            topics.reverse();
            topics
        }
        (_, Role::Source { source_id }, _) => source_route(layout, source_id, target)
            .map(|r| vec![r.topic])
            .unwrap_or_default(),
        (_, Role::Agent { cluster_name, .. }, _) => agent_route(layout, cluster_name, target)
            .map(|r| vec![r.topic])
            .unwrap_or_default(),
    }
}

/// Whether `topic` is one that [`connect_topics`] or [`target_topics`] can name for `role`: the
/// topics a client would create, so the ones worth knowing to exist already.
pub fn provisioned_topic(layout: TopicLayout, role: &Role, topic: &str) -> bool {
    // What follows `sourceevents.` or `agentevents.`.
    let pair = [SOURCE_EVENTS, AGENT_EVENTS]
        .iter()
        .find_map(|prefix| topic.strip_prefix(prefix)?.strip_prefix('.'));
    match (layout, role) {
        (TopicLayout::PerCluster, Role::Source { source_id }) => {
            connect_topics(layout, role).iter().any(|t| t == topic)
                || pair
                    .and_then(|rest| rest.strip_prefix(source_id.as_str())?.strip_prefix('.'))
                    .is_some_and(|cluster| !cluster.is_empty() && !cluster.contains('.'))
        }
        (TopicLayout::PerCluster, Role::Agent { cluster_name, .. }) => {
            connect_topics(layout, role).iter().any(|t| t == topic)
                || pair
                    .and_then(|rest| rest.strip_suffix(cluster_name.as_str())?.strip_suffix('.'))
                    .is_some_and(|source| !source.is_empty())
        }
        (TopicLayout::Shared, _) => connect_topics(layout, role).iter().any(|t| t == topic),
    }
}

/// Escapes the POSIX extended regex metacharacters of `id` (topic names only hold
/// `[A-Za-z0-9._-]`, so in practice only `.` changes).
pub fn escape_regex(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 4);
    for c in id.chars() {
        if ".[]{}()\\*+?^$|".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a role subscribes to: regex patterns (starting with `^`) or plain topic names.
pub fn subscriptions(layout: TopicLayout, role: &Role) -> Vec<String> {
    match (layout, role) {
        (TopicLayout::PerCluster, Role::Source { source_id }) => vec![
            format!(r"^{AGENT_EVENTS}\.{}\.[^.]+$", escape_regex(source_id)),
            format!(r"^{AGENT_BROADCAST}\.[^.]+$"),
        ],
        (TopicLayout::PerCluster, Role::Agent { cluster_name, .. }) => vec![
            format!(r"^{SOURCE_EVENTS}\..+\.{}$", escape_regex(cluster_name)),
            format!(r"^{SOURCE_BROADCAST}\..+$"),
        ],
        (TopicLayout::Shared, Role::Source { .. }) => vec![AGENT_EVENTS.to_owned()],
        (TopicLayout::Shared, Role::Agent { .. }) => vec![SOURCE_EVENTS.to_owned()],
    }
}

/// Whether a received topic is one the role's subscription means (the same rule as the regexes
/// of [`subscriptions`], for checking and tests).
pub fn topic_matches(layout: TopicLayout, role: &Role, topic: &str) -> bool {
    let no_dot = |s: &str| !s.is_empty() && !s.contains('.');
    match (layout, role) {
        (TopicLayout::PerCluster, Role::Source { source_id }) => {
            if let Some(rest) = topic.strip_prefix(&format!("{AGENT_EVENTS}.{source_id}.")) {
                return no_dot(rest);
            }
            topic.strip_prefix(&format!("{AGENT_BROADCAST}.")).is_some_and(no_dot)
        }
        (TopicLayout::PerCluster, Role::Agent { cluster_name, .. }) => {
            if let Some(rest) = topic.strip_prefix(&format!("{SOURCE_EVENTS}.")) {
                return rest
                    .strip_suffix(cluster_name.as_str())
                    .and_then(|s| s.strip_suffix('.'))
                    .is_some_and(|source| !source.is_empty());
            }
            topic
                .strip_prefix(&format!("{SOURCE_BROADCAST}."))
                .is_some_and(|s| !s.is_empty())
        }
        (TopicLayout::Shared, Role::Source { .. }) => topic == AGENT_EVENTS,
        (TopicLayout::Shared, Role::Agent { .. }) => topic == SOURCE_EVENTS,
    }
}

/// Whether a received event is for this role. Per-cluster topics are already exact; on the
/// shared topics an agent keeps events whose `clustername` is its cluster or empty (a
/// broadcast), a source those whose `originalsource` is its id or empty.
pub fn accepts(layout: TopicLayout, role: &Role, event: &Event) -> bool {
    if layout == TopicLayout::PerCluster {
        return true;
    }
    match role {
        Role::Agent { cluster_name, .. } => event.cluster_name().is_ok_and(|c| c.is_empty() || &c == cluster_name),
        Role::Source { source_id } => event.original_source().is_ok_and(|s| s.is_empty() || &s == source_id),
    }
}

/// Whether an id can be part of a topic name (Kafka allows `[A-Za-z0-9._-]`, up to 249
/// characters in a topic).
pub fn is_valid_topic_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use cloudevents::{EventBuilder as _, EventBuilderV10};

    use super::*;

    const PER: TopicLayout = TopicLayout::PerCluster;

    fn event(ty: &str, ext: &[(&str, &str)]) -> Event {
        let mut b = EventBuilderV10::new().id("1").source("s").ty(ty);
        for (k, v) in ext {
            b = b.extension(k, *v);
        }
        b.build().unwrap()
    }

    const STATUS_RESYNC: &str = "io.open-cluster-management.works.v1alpha1.manifests.status.resync_request";
    const SPEC_CREATE: &str = "io.open-cluster-management.works.v1alpha1.manifests.spec.create_request";
    const SPEC_RESYNC: &str = "io.open-cluster-management.works.v1alpha1.manifests.spec.resync_request";
    const STATUS_UPDATE: &str = "io.open-cluster-management.works.v1alpha1.manifests.status.update_request";

    fn ok(topic: &str, key: &str) -> Result<Route, String> {
        Ok(Route::new(topic, key))
    }

    /// Go `TestSourceContext` (source `hub1`).
    #[test]
    fn every_go_source_context_case_routes_like_go() {
        let cases: Vec<(&str, Event, Result<Route, String>)> = vec![
            (
                "unsupported event",
                event("wrongType", &[]),
                Err("unsupported cloudevents type format: wrongType".into()),
            ),
            (
                "resync status",
                event(STATUS_RESYNC, &[("clustername", "")]),
                ok("sourcebroadcast.hub1", "hub1"),
            ),
            (
                "unsupported send resource no cluster name",
                event(SPEC_CREATE, &[]),
                Err("\"clustername\" not found".into()),
            ),
            (
                "send spec",
                event(SPEC_CREATE, &[("clustername", "cluster1")]),
                ok("sourceevents.hub1.cluster1", "hub1@cluster1"),
            ),
        ];
        for (name, e, want) in cases {
            let got = source_event_route(PER, "hub1", &e).map_err(|e| e.to_string());
            assert_eq!(got, want, "{name}");
        }
    }

    /// Go `TestAgentContext` (cluster `cluster1`).
    #[test]
    fn every_go_agent_context_case_routes_like_go() {
        let cases: Vec<(&str, Event, Result<Route, String>)> = vec![
            (
                "unsupported event",
                event("wrongType", &[]),
                Err("unsupported cloudevents type format: wrongType".into()),
            ),
            (
                "resync specs",
                event(SPEC_RESYNC, &[("originalsource", "")]),
                ok("agentbroadcast.cluster1", "cluster1"),
            ),
            (
                "send status no original source",
                event(STATUS_UPDATE, &[]),
                Err("\"originalsource\" not found".into()),
            ),
            (
                "send status",
                event(STATUS_UPDATE, &[("originalsource", "hub1")]),
                ok("agentevents.hub1.cluster1", "hub1@cluster1"),
            ),
        ];
        for (name, e, want) in cases {
            let got = agent_event_route(PER, "cluster1", &e).map_err(|e| e.to_string());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn targets_route_like_the_events_they_come_from() {
        let spec = event(SPEC_CREATE, &[("clustername", "c1")]);
        let target = PublishTarget::for_source_event(&spec).unwrap();
        assert_eq!(
            source_route(PER, "s1", &target).unwrap(),
            source_event_route(PER, "s1", &spec).unwrap()
        );
        let resync = event(SPEC_RESYNC, &[("clustername", "c1"), ("originalsource", "")]);
        let target = PublishTarget::for_agent_event(&resync).unwrap();
        assert_eq!(
            agent_route(PER, "c1", &target).unwrap(),
            agent_event_route(PER, "c1", &resync).unwrap()
        );
        assert_eq!(
            source_route(PER, "s1", &PublishTarget::AllSources)
                .unwrap_err()
                .to_string(),
            "a source cannot publish to AllSources"
        );
        assert!(agent_route(PER, "c1", &PublishTarget::Cluster("c1".into())).is_err());
    }

    #[test]
    fn the_shared_layout_uses_two_topics_with_the_same_keys() {
        let sh = TopicLayout::Shared;
        assert_eq!(
            source_route(sh, "s1", &PublishTarget::Cluster("c1".into())).unwrap(),
            Route::new("sourceevents", "s1@c1")
        );
        assert_eq!(
            source_route(sh, "s1", &PublishTarget::AllClusters).unwrap(),
            Route::new("sourceevents", "s1")
        );
        assert_eq!(
            agent_route(sh, "c1", &PublishTarget::Source("s1".into())).unwrap(),
            Route::new("agentevents", "s1@c1")
        );
        assert_eq!(
            agent_route(sh, "c1", &PublishTarget::AllSources).unwrap(),
            Route::new("agentevents", "c1")
        );
    }

    fn source(id: &str) -> Role {
        Role::source(id)
    }
    fn agent(cluster: &str) -> Role {
        Role::agent(cluster, format!("{cluster}-agent"))
    }

    #[test]
    fn subscriptions_escape_ids_and_anchor_both_ends() {
        assert_eq!(
            subscriptions(PER, &source("source1")),
            [r"^agentevents\.source1\.[^.]+$", r"^agentbroadcast\.[^.]+$"]
        );
        assert_eq!(
            subscriptions(PER, &agent("cluster1")),
            [r"^sourceevents\..+\.cluster1$", r"^sourcebroadcast\..+$"]
        );
        assert_eq!(escape_regex("a.b-c_d"), r"a\.b-c_d");
        assert_eq!(subscriptions(TopicLayout::Shared, &agent("c")), ["sourceevents"]);
        assert_eq!(subscriptions(TopicLayout::Shared, &source("s")), ["agentevents"]);
    }

    #[test]
    fn cluster1_does_not_read_cluster10_and_source1_does_not_read_source10() {
        let a = agent("cluster1");
        assert!(topic_matches(PER, &a, "sourceevents.source1.cluster1"));
        assert!(topic_matches(PER, &a, "sourceevents.hub.example.cluster1"));
        assert!(topic_matches(PER, &a, "sourcebroadcast.source1"));
        assert!(!topic_matches(PER, &a, "sourceevents.source1.cluster10"));
        assert!(!topic_matches(PER, &a, "sourceevents.source1.xcluster1"));
        assert!(!topic_matches(PER, &a, "sourceevents.cluster1"));
        assert!(!topic_matches(PER, &a, "sourcebroadcast"));
        let s = source("source1");
        assert!(topic_matches(PER, &s, "agentevents.source1.cluster1"));
        assert!(topic_matches(PER, &s, "agentbroadcast.cluster10"));
        assert!(!topic_matches(PER, &s, "agentevents.source10.cluster1"));
        assert!(!topic_matches(PER, &s, "agentevents.source1.x.cluster1"));
        assert!(!topic_matches(PER, &s, "agentbroadcast.a.b"));
    }

    #[test]
    fn every_topic_a_go_peer_writes_for_us_matches() {
        // What Go's WithContext produces for source1 ↔ cluster1, checked against our side.
        let spec = source_event_route(PER, "source1", &event(SPEC_CREATE, &[("clustername", "cluster1")])).unwrap();
        let bcast = source_event_route(PER, "source1", &event(STATUS_RESYNC, &[("clustername", "")])).unwrap();
        assert!(topic_matches(PER, &agent("cluster1"), &spec.topic));
        assert!(topic_matches(PER, &agent("cluster1"), &bcast.topic));
        let status =
            agent_event_route(PER, "cluster1", &event(STATUS_UPDATE, &[("originalsource", "source1")])).unwrap();
        let bcast = agent_event_route(PER, "cluster1", &event(SPEC_RESYNC, &[("originalsource", "")])).unwrap();
        assert!(topic_matches(PER, &source("source1"), &status.topic));
        assert!(topic_matches(PER, &source("source1"), &bcast.topic));
    }

    #[test]
    fn shared_topic_consumers_keep_only_their_events() {
        let sh = TopicLayout::Shared;
        let a = agent("cluster1");
        assert!(accepts(sh, &a, &event(SPEC_CREATE, &[("clustername", "cluster1")])));
        assert!(accepts(sh, &a, &event(STATUS_RESYNC, &[("clustername", "")])));
        assert!(!accepts(sh, &a, &event(SPEC_CREATE, &[("clustername", "cluster10")])));
        assert!(!accepts(sh, &a, &event(SPEC_CREATE, &[])));
        let s = source("source1");
        assert!(accepts(sh, &s, &event(STATUS_UPDATE, &[("originalsource", "source1")])));
        assert!(accepts(sh, &s, &event(SPEC_RESYNC, &[("originalsource", "")])));
        assert!(!accepts(
            sh,
            &s,
            &event(STATUS_UPDATE, &[("originalsource", "source10")])
        ));
        assert!(accepts(PER, &s, &event(STATUS_UPDATE, &[("originalsource", "other")])));
    }

    #[test]
    fn clients_create_the_topics_go_names() {
        assert_eq!(connect_topics(PER, &source("s1")), ["sourcebroadcast.s1"]);
        assert_eq!(connect_topics(PER, &agent("c1")), ["agentbroadcast.c1"]);
        assert_eq!(
            connect_topics(TopicLayout::Shared, &agent("c1")),
            ["sourceevents", "agentevents"]
        );
        assert_eq!(
            target_topics(PER, &source("s1"), &PublishTarget::Cluster("c1".into())),
            ["sourceevents.s1.c1", "agentevents.s1.c1"]
        );
        assert_eq!(
            target_topics(PER, &agent("c1"), &PublishTarget::Source("s1".into())),
            ["agentevents.s1.c1", "sourceevents.s1.c1"]
        );
        assert_eq!(
            target_topics(PER, &source("s1"), &PublishTarget::AllClusters),
            ["sourcebroadcast.s1"]
        );
        assert_eq!(
            target_topics(PER, &agent("c1"), &PublishTarget::AllSources),
            ["agentbroadcast.c1"]
        );
        assert_eq!(
            target_topics(TopicLayout::Shared, &agent("c1"), &PublishTarget::Source("s1".into())),
            ["agentevents"]
        );
        assert!(target_topics(PER, &agent("c1"), &PublishTarget::AllClusters).is_empty());
        // every created topic is one the peers' (or our own) subscriptions read
        for t in target_topics(PER, &source("s1"), &PublishTarget::Cluster("c1".into())) {
            assert!(
                topic_matches(PER, &agent("c1"), &t) || topic_matches(PER, &source("s1"), &t),
                "{t}"
            );
        }
        assert!(topic_matches(PER, &agent("c1"), &connect_topics(PER, &source("s1"))[0]));
        assert!(topic_matches(PER, &source("s1"), &connect_topics(PER, &agent("c1"))[0]));
    }

    #[test]
    fn the_provisioned_topics_are_exactly_the_ones_a_client_can_create() {
        let targets = |cluster: &str, source: &str| {
            [
                PublishTarget::Cluster(cluster.into()),
                PublishTarget::Source(source.into()),
                PublishTarget::AllClusters,
                PublishTarget::AllSources,
            ]
        };
        for layout in [PER, TopicLayout::Shared] {
            for role in [source("s1"), source("s.1"), agent("c1")] {
                let mut created = connect_topics(layout, &role);
                for target in targets("c1", "s1").iter().chain(&targets("c2", "s.1")) {
                    created.extend(target_topics(layout, &role, target));
                }
                for t in &created {
                    assert!(provisioned_topic(layout, &role, t), "{layout:?} {role}: {t}");
                }
            }
        }
        for (role, foreign) in [
            (
                source("s1"),
                &[
                    "sourceevents.s2.c1",
                    "agentevents.s1",
                    "sourceevents.s1.",
                    "sourceevents.s1.c.1",
                    "sourcebroadcast.s2",
                    "agentbroadcast.c1",
                    "sourceevents",
                    "other.s1.c1",
                ][..],
            ),
            (
                agent("c1"),
                &[
                    "sourceevents.s1.c2",
                    "sourceevents.s1.c10",
                    "agentevents..c1",
                    "agentevents.c1",
                    "agentbroadcast.c2",
                    "sourcebroadcast.s1",
                    "agentevents",
                ][..],
            ),
        ] {
            for t in foreign {
                assert!(!provisioned_topic(PER, &role, t), "{role}: {t}");
            }
        }
        assert!(!provisioned_topic(
            TopicLayout::Shared,
            &agent("c1"),
            "sourceevents.s1.c1"
        ));
    }

    #[test]
    fn topic_ids_are_checked_for_kafka_s_characters() {
        assert!(is_valid_topic_id("cluster-1.a_b"));
        assert!(!is_valid_topic_id(""));
        assert!(!is_valid_topic_id("a/b"));
        assert!(!is_valid_topic_id("a b"));
    }
}
