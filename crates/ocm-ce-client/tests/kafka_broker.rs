//! The Kafka transport against a real Apache Kafka broker (`OCM_CE_TEST_KAFKA`, started by
//! `scripts/test-env.sh`): the generic lifecycle, a new consumer group reading from the earliest
//! offset (Go's `auto.offset.reset: earliest`), exact per-cluster subscriptions, and the shared-topic layout.
//! Skipped when the variable is unset, unless `CI` is set. Every test uses ids unique to the run.

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used)]

mod kafka_support;
mod mock;

use std::time::Duration;

use kafka_support::{
    Pair, agent, agent_with, broker, config, connected_pair, create_topics, create_topics_with, drive_agent,
    drive_source, options, pair_topics, pair_with_topics, put_and_send_spec, send_spec, source, unique, work,
};
use mock::Store;
use ocm_ce_client::transport::kafka::TopicLayout;
use ocm_ce_core::ResourceAction;
use ocm_ce_core::event_type::action;

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_and_an_agent_go_through_the_whole_lifecycle() {
    let Some(b) = broker() else { return };
    let (src, cluster) = pair_with_topics(&b).await;
    kafka_support::lifecycle(config(&b), &src, &cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_consumer_group_reads_its_works_again_from_the_earliest_offset() {
    let Some(b) = broker() else { return };
    let (src, cluster) = pair_with_topics(&b).await;
    let Pair {
        src_store,
        src: source_client,
        s,
        mut a,
        ..
    } = connected_pair(config(&b), &src, &cluster, T).await;
    for uid in ["w1", "w2"] {
        let w = work(uid, "1", &src, &cluster, uid);
        put_and_send_spec(&source_client, &src_store, action::CREATE_REQUEST, &w).await;
        a.resource(uid, ResourceAction::Added, T).await;
    }
    a.stop().await;
    // The source goes away too, so nothing but the topic's history can bring the works back.
    s.stop().await;

    // A new agent instance with its own group and no resync of its own: it reads from the
    // earliest offset and gets both works again.
    let fresh_store = Store::agent();
    let fresh = agent_with(
        config(&b).group_id(unique("fresh-group")),
        &cluster,
        &fresh_store,
        options().resync_on_connect(false),
    );
    let mut f = drive_agent(&fresh, &fresh_store);
    f.connected(T).await;
    for uid in ["w1", "w2"] {
        let got = f.resource(uid, ResourceAction::Added, T).await;
        assert_eq!(got.payload, uid);
    }
    assert!(fresh_store.get_mock("w1").is_some() && fresh_store.get_mock("w2").is_some());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_of_cluster1_does_not_receive_the_events_of_cluster10() {
    let Some(b) = broker() else { return };
    let src = unique("src");
    let prefix = unique("c");
    let (c1, c10) = (format!("{prefix}-1"), format!("{prefix}-10"));
    let mut topics = pair_topics(&src, &c1);
    topics.extend(pair_topics(&src, &c10));
    topics.sort();
    topics.dedup();
    create_topics(&b, &topics).await;

    let (src_store, s1, s10) = (Store::source(), Store::agent(), Store::agent());
    let source_client = source(config(&b), &src, &src_store);
    let agent1 = agent(config(&b), &c1, &s1);
    let agent10 = agent(config(&b), &c10, &s10);
    let mut s = drive_source(&source_client, &src_store);
    let mut a1 = drive_agent(&agent1, &s1);
    let mut a10 = drive_agent(&agent10, &s10);
    s.connected(T).await;
    a1.connected(T).await;
    a10.connected(T).await;

    let w10 = work("for-10", "1", &src, &c10, "ten");
    let w1 = work("for-1", "1", &src, &c1, "one");
    for w in [&w10, &w1] {
        src_store.put(w.clone());
    }
    send_spec(&source_client, action::CREATE_REQUEST, &w10).await;
    send_spec(&source_client, action::CREATE_REQUEST, &w1).await;
    a10.resource("for-10", ResourceAction::Added, T).await;
    a1.resource("for-1", ResourceAction::Added, T).await;
    // a resync round trip later, cluster1 still has only its own work
    agent1.resync("").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = a1.drain_uids();
    assert!(!seen.contains(&"for-10".to_owned()), "cluster1 saw {seen:?}");
    assert!(s1.get_mock("for-10").is_none());
    assert!(s1.get_mock("for-1").is_some());
    assert!(s10.get_mock("for-1").is_none());
    for d in [s, a1, a10] {
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_topic_layout_works_end_to_end_and_keeps_clusters_apart() {
    let Some(b) = broker() else { return };
    create_topics_with(&b, &["sourceevents".to_owned(), "agentevents".to_owned()], 3).await;
    let (src, cluster) = (unique("src"), unique("cluster"));
    let shared = || config(&b).topic_layout(TopicLayout::Shared);

    // a bystander agent of another cluster on the same topics
    let other = unique("other");
    let other_store = Store::agent();
    let bystander = agent(shared(), &other, &other_store);
    let mut o = drive_agent(&bystander, &other_store);
    o.connected(T).await;

    kafka_support::lifecycle(shared(), &src, &cluster).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = o.drain_uids();
    assert!(seen.is_empty(), "the other cluster saw {seen:?}");
    assert!(other_store.get_mock("w1").is_none());
    o.stop().await;
}
