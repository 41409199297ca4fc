//! The Kafka transport as a new user meets it (`OCM_CE_TEST_KAFKA`, the real broker of
//! `scripts/test-env.sh`): a config with nothing but `bootstrapServer`, topics that do not exist
//! yet, and a client that starts right after another one of the same consumer group stopped.
//!
//! "Fresh" here means fresh **topics**: every test uses a source id and cluster names unique to
//! the run, so none of the topics its clients use (`sourceevents.<source>.<cluster>`, …) exists
//! when it starts, and each test checks that. The broker itself is shared with the other tests
//! and may hold their topics; a broker with no topic at all is exercised by
//! `crates/ocm-ce-cli/tests/kafka_fresh_broker.rs`, which starts one of its own. Skipped when
//! the variable is unset, unless `CI` is set. Every wait is bounded.

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used)]

mod kafka_support;
mod mock;

use std::time::{Duration, Instant};

use kafka_support::{agent, broker, connected_source, drive_agent, init_tracing, put_and_send_spec, unique, work};
use mock::Store;
use ocm_ce_client::transport::kafka::KafkaConfig;
use ocm_ce_core::ResourceAction;
use ocm_ce_core::event_type::action;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// What Kafka 4.4 gives a consumer group member that vanished without leaving (its session
/// timeout): a successor that takes less than a third of it did not wait for it.
const SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// Only `bootstrapServer`, as a new user's file.
fn bare(bootstrap: &str) -> KafkaConfig {
    init_tracing();
    KafkaConfig::new(bootstrap)
}

/// A plain consumer (no group) for looking at topics and groups.
fn inspector(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

fn existing_topics(bootstrap: &str) -> Vec<String> {
    let metadata = inspector(bootstrap)
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    metadata.topics().iter().map(|t| t.name().to_owned()).collect()
}

fn pair(src: &str, cluster: &str) -> [String; 4] {
    [
        format!("sourceevents.{src}.{cluster}"),
        format!("agentevents.{src}.{cluster}"),
        format!("sourcebroadcast.{src}"),
        format!("agentbroadcast.{cluster}"),
    ]
}

fn assert_absent(bootstrap: &str, topics: &[String]) {
    let existing = existing_topics(bootstrap);
    for t in topics {
        assert!(!existing.contains(t), "{t} exists before the test");
    }
}

/// Members of consumer group `group` (an unknown or empty group has none).
fn group_members(bootstrap: &str, group: &str) -> usize {
    let list = inspector(bootstrap)
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .unwrap();
    list.groups().iter().map(|g| g.members().len()).sum()
}

/// Waits (30 s at most, looking every `poll`) until consumer group `group` has a member.
async fn agent_joins(bootstrap: &str, group: &str, poll: Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while group_members(bootstrap, group) == 0 {
        assert!(Instant::now() < deadline, "the agent never showed up in group {group}");
        tokio::time::sleep(poll).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_works_the_first_time_with_only_a_bootstrap_server() {
    let Some(b) = broker() else { return };
    let (src, cluster) = (unique("fresh-src"), unique("fresh-cluster"));
    let topics = pair(&src, &cluster);
    assert_absent(&b, &topics);
    let started = Instant::now();
    // Each step of the lifecycle waits at most 60 s; the whole of it must not take minutes
    // (librdkafka alone would find the peer's new topics only at its 5-minute refresh).
    tokio::time::timeout(
        Duration::from_secs(90),
        kafka_support::lifecycle(bare(&b), &src, &cluster),
    )
    .await
    .expect("the lifecycle did not finish within 90 s");
    let took = started.elapsed();
    eprintln!("lifecycle on new topics took {took:?}");
    assert!(took < Duration::from_secs(45), "took {took:?}");
    let existing = existing_topics(&b);
    for t in &topics {
        assert!(existing.contains(t), "{t} was not created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_long_before_its_source_gets_the_first_work_quickly() {
    let Some(b) = broker() else { return };
    let (src, cluster) = (unique("late-src"), unique("early-cluster"));
    assert_absent(&b, &pair(&src, &cluster));
    let t = Duration::from_secs(60);
    let agt_store = Store::agent();
    let agt = agent(bare(&b), &cluster, &agt_store);
    let mut a = drive_agent(&agt, &agt_store);
    a.connected(t).await;
    // The agent waits with no topic of a source of its cluster; the source comes later.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (sc, src_store, s) = connected_source(bare(&b), &src, t).await;
    let w = work("w1", "1", &src, &cluster, "v1");
    let sent = Instant::now();
    put_and_send_spec(&sc, &src_store, action::CREATE_REQUEST, &w).await;
    a.resource("w1", ResourceAction::Added, Duration::from_secs(40)).await;
    eprintln!(
        "the first work reached the early agent {:?} after it was sent",
        sent.elapsed()
    );
    s.stop().await;
    a.stop().await;
    agt.close().await;
    sc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_client_leaves_its_group_and_a_successor_starts_at_once() {
    let Some(b) = broker() else { return };
    let (src, cluster) = (unique("succ-src"), unique("succ-cluster"));
    assert_absent(&b, &pair(&src, &cluster));
    let t = Duration::from_secs(60);
    let group = format!("{cluster}-agent");

    // A source first, so that the agent's subscription matches a topic and it joins its group.
    let (sc, src_store, s) = connected_source(bare(&b), &src, t).await;

    let first_store = Store::agent();
    let first = agent(bare(&b), &cluster, &first_store);
    let mut a = drive_agent(&first, &first_store);
    a.connected(t).await;
    agent_joins(&b, &group, Duration::from_millis(250)).await;

    // A graceful close: the member is gone right away (not after its session timeout).
    let closing = Instant::now();
    first.close().await;
    let members = group_members(&b, &group);
    eprintln!("closed in {:?}; members left: {members}", closing.elapsed());
    assert_eq!(members, 0, "the closed agent is still a member of {group}");
    a.stop().await;

    // A successor of the same group is subscribed (partitions assigned) at once.
    let started = Instant::now();
    let second_store = Store::agent();
    let second = agent(bare(&b), &cluster, &second_store);
    let mut a2 = drive_agent(&second, &second_store);
    a2.connected(SESSION_TIMEOUT + Duration::from_secs(15)).await;
    let took = started.elapsed();
    eprintln!("the successor was subscribed after {took:?}");
    assert!(took < SESSION_TIMEOUT / 3, "the successor waited {took:?}");

    // And it works: a spec reaches it.
    let w = work("w1", "1", &src, &cluster, "v1");
    put_and_send_spec(&sc, &src_store, action::CREATE_REQUEST, &w).await;
    a2.resource("w1", ResourceAction::Added, t).await;
    a2.stop().await;
    s.stop().await;
    second.close().await;
    sc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_closed_while_it_subscribes_leaves_its_group_too() {
    let Some(b) = broker() else { return };
    let (src, cluster) = (unique("mid-src"), unique("mid-cluster"));
    assert_absent(&b, &pair(&src, &cluster));
    let group = format!("{cluster}-agent");
    let (sc, _src_store, s) = connected_source(bare(&b), &src, Duration::from_secs(60)).await;

    // Close the agent as soon as it is a member of its group, whether or not its subscription
    // was confirmed yet (the assignment may still be on its way).
    let store = Store::agent();
    let agt = agent(bare(&b), &cluster, &store);
    let a = drive_agent(&agt, &store);
    agent_joins(&b, &group, Duration::from_millis(50)).await;
    agt.close().await;
    assert_eq!(
        group_members(&b, &group),
        0,
        "the closed agent is still a member of {group}"
    );
    a.stop().await;
    s.stop().await;
    sc.close().await;
}
