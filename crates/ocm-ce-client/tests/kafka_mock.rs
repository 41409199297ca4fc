//! The Kafka transport against librdkafka's in-process mock cluster (fast; no broker needed):
//! round trips with Go's topics, keys and headers, exact regex subscriptions, the
//! at-least-once offset contract, loss detection, and the generic client lifecycle.

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used)]

mod kafka_support;
mod mock;

use std::time::Duration;

use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Event};
use futures::StreamExt;
use kafka_support::{config, pair_topics, ty};
use ocm_ce_client::transport::kafka::{KafkaConfig, KafkaConnection, KafkaTransport, TopicLayout};
use ocm_ce_client::{Connection, PublishTarget, Subscription, Transport};
use ocm_ce_core::event_type::action;
use ocm_ce_core::{EventBuilder, SubResource};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);

/// A mock cluster with `topics`. Leaked, so it outlives every client: consumers being destroyed
/// in the background at the end of a test can still leave their group.
fn cluster_with(topics: &[String]) -> &'static MockCluster<'static, DefaultProducerContext> {
    let mock = Box::leak(Box::new(MockCluster::new(1).unwrap()));
    for t in topics {
        mock.create_topic(t, 1, 1).unwrap();
    }
    mock
}

/// The test config for the mock cluster, which has no `CreateTopics` (a creation request would
/// only time out): the tests create their topics on the mock.
fn mock_config(bootstrap: &str) -> KafkaConfig {
    config(bootstrap).create_topics(false)
}

fn spec(source: &str, cluster: &str, n: i64) -> Event {
    let mut e = EventBuilder::new(source, ty(SubResource::Spec, action::CREATE_REQUEST))
        .cluster_name(cluster)
        .resource_id(format!("uid-{n}"))
        .resource_version(n)
        .build()
        .unwrap();
    e.set_data("application/json", format!("{{\"n\":{n}}}").into_bytes());
    e
}

fn status(agent_id: &str, cluster: &str, source: &str) -> Event {
    EventBuilder::new(agent_id, ty(SubResource::Status, action::UPDATE_REQUEST))
        .cluster_name(cluster)
        .original_source(source)
        .resource_id("uid-1")
        .resource_version(1)
        .sequence_id("1")
        .build()
        .unwrap()
}

fn ext(e: &Event, name: &str) -> String {
    match e.extension(name) {
        Some(ExtensionValue::String(s)) => s.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

async fn next(sub: &mut Subscription) -> Event {
    tokio::time::timeout(T, sub.next())
        .await
        .expect("an event in time")
        .expect("the subscription goes on")
        .expect("no error")
}

/// Source `source1` and agent `cluster1-agent` of `cluster1`, with `cfg`.
fn source1_and_cluster1_agent(cfg: KafkaConfig) -> (KafkaTransport, KafkaTransport) {
    let src = KafkaTransport::source(cfg.clone(), "source1").unwrap();
    let agt = KafkaTransport::agent(cfg, "cluster1", "cluster1-agent").unwrap();
    (src, agt)
}

/// Publishes `spec("source1", "cluster1", n)` to cluster1 for each `n`; returns the events.
async fn send_specs(src_conn: &KafkaConnection, ns: std::ops::RangeInclusive<i64>) -> Vec<Event> {
    let sent: Vec<Event> = ns.map(|n| spec("source1", "cluster1", n)).collect();
    for e in &sent {
        src_conn
            .publish(&PublishTarget::Cluster("cluster1".into()), e)
            .await
            .unwrap();
    }
    sent
}

async fn connected(t: &KafkaTransport) -> (KafkaConnection, Subscription) {
    let conn = t.connect().await.unwrap();
    let sub = conn.subscribe().await.unwrap();
    (conn, sub)
}

/// A new consumer of `agt` reads `want` first (compared by id), asks for no more, and closes.
async fn session_reads(agt: &KafkaTransport, want: &[Event]) {
    let (conn, mut sub) = connected(agt).await;
    for e in want {
        assert_eq!(next(&mut sub).await.id(), e.id());
    }
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_statuses_and_broadcasts_travel_on_go_s_topics_with_go_s_keys() {
    let mock = cluster_with(&pair_topics("source1", "cluster1"));
    let (src, agt) = source1_and_cluster1_agent(mock_config(&mock.bootstrap_servers()));
    let ((src_conn, mut src_sub), (agt_conn, mut agt_sub)) = tokio::join!(connected(&src), connected(&agt));

    let sent = spec("source1", "cluster1", 1);
    src_conn
        .publish(&PublishTarget::Cluster("cluster1".into()), &sent)
        .await
        .unwrap();
    let got = next(&mut agt_sub).await;
    assert_eq!(got.id(), sent.id());
    assert_eq!(got.ty(), sent.ty());
    assert_eq!(got.data(), sent.data());
    assert_eq!(ext(&got, "resourceversion"), "1");
    assert_eq!(ext(&got, "kafkatopic"), "sourceevents.source1.cluster1");
    assert_eq!(ext(&got, "kafkamessagekey"), "source1@cluster1");

    let st = status("cluster1-agent", "cluster1", "source1");
    agt_conn
        .publish(&PublishTarget::Source("source1".into()), &st)
        .await
        .unwrap();
    let got = next(&mut src_sub).await;
    assert_eq!(got.id(), st.id());
    assert_eq!(ext(&got, "kafkatopic"), "agentevents.source1.cluster1");
    assert_eq!(ext(&got, "kafkamessagekey"), "source1@cluster1");

    src_conn.publish(&PublishTarget::AllClusters, &sent).await.unwrap();
    let got = next(&mut agt_sub).await;
    assert_eq!(ext(&got, "kafkatopic"), "sourcebroadcast.source1");
    assert_eq!(ext(&got, "kafkamessagekey"), "source1");
    agt_conn.publish(&PublishTarget::AllSources, &st).await.unwrap();
    let got = next(&mut src_sub).await;
    assert_eq!(ext(&got, "kafkatopic"), "agentbroadcast.cluster1");
    assert_eq!(ext(&got, "kafkamessagekey"), "cluster1");

    // The record on the wire, read by a plain consumer: key, ce-* headers, content-type, value.
    let raw: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "raw-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("sourceevents.source1.cluster1", 0, Offset::Beginning)
        .unwrap();
    raw.assign(&tpl).unwrap();
    let record = tokio::task::spawn_blocking(move || {
        let m = raw.poll(T).unwrap().unwrap();
        let headers: Vec<(String, String)> = m
            .headers()
            .unwrap()
            .iter()
            .map(|h| (h.key.to_owned(), String::from_utf8(h.value.unwrap().to_vec()).unwrap()))
            .collect();
        (m.key().map(<[u8]>::to_vec), headers, m.payload().map(<[u8]>::to_vec))
    })
    .await
    .unwrap();
    assert_eq!(record.0.as_deref(), Some(&b"source1@cluster1"[..]));
    let names: Vec<&str> = record.1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "ce-id",
            "ce-source",
            "ce-specversion",
            "ce-type",
            "content-type",
            "ce-time",
            "ce-clustername",
            "ce-originalsource",
            "ce-resourceid",
            "ce-resourceversion"
        ]
    );
    assert_eq!(record.1[2].1, "1.0");
    assert_eq!(record.1[4].1, "application/json");
    assert_eq!(record.2.as_deref(), Some(&b"{\"n\":1}"[..]));

    src_conn.close().await;
    agt_conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_of_cluster1_never_sees_the_events_of_cluster10() {
    let mut topics = pair_topics("source1", "cluster1");
    topics.extend(pair_topics("source1", "cluster10"));
    topics.sort();
    topics.dedup();
    let mock = cluster_with(&topics);
    let cfg = mock_config(&mock.bootstrap_servers());
    let src = KafkaTransport::source(cfg.clone(), "source1").unwrap();
    let a1 = KafkaTransport::agent(cfg.clone(), "cluster1", "a1").unwrap();
    let a10 = KafkaTransport::agent(cfg, "cluster10", "a10").unwrap();
    let (src_conn, (_c1, mut sub1), (_c10, mut sub10)) = tokio::join!(src.connect(), connected(&a1), connected(&a10));
    let src_conn = src_conn.unwrap();

    let for10 = spec("source1", "cluster10", 10);
    let for1 = spec("source1", "cluster1", 1);
    src_conn
        .publish(&PublishTarget::Cluster("cluster10".into()), &for10)
        .await
        .unwrap();
    src_conn
        .publish(&PublishTarget::Cluster("cluster1".into()), &for1)
        .await
        .unwrap();
    assert_eq!(next(&mut sub10).await.id(), for10.id());
    // cluster1's first event is its own: cluster10's was published before and never arrives
    assert_eq!(next(&mut sub1).await.id(), for1.id());
    let nothing = tokio::time::timeout(Duration::from_secs(2), sub1.next()).await;
    assert!(nothing.is_err(), "cluster1 got {nothing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_is_committed_only_after_the_next_event_was_requested() {
    let mock = cluster_with(&pair_topics("source1", "cluster1"));
    let (src, agt) = source1_and_cluster1_agent(mock_config(&mock.bootstrap_servers()));
    let src_conn = src.connect().await.unwrap();
    let sent = send_specs(&src_conn, 1..=3).await;

    // Take event 1 but never ask for the next: it was not handled, so it comes again.
    session_reads(&agt, &sent[..1]).await;
    // Handle 1 and 2 (asking for 2 and 3), leave 3 unhandled: the next consumer starts at 3.
    session_reads(&agt, &sent).await;
    session_reads(&agt, &sent[2..]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auto_commit_off_offsets_are_committed_explicitly() {
    let mock = cluster_with(&pair_topics("source1", "cluster1"));
    let cfg = mock_config(&mock.bootstrap_servers()).property("enable.auto.commit", "false");
    let (src, agt) = source1_and_cluster1_agent(cfg);
    let src_conn = src.connect().await.unwrap();
    let sent = send_specs(&src_conn, 1..=2).await;
    session_reads(&agt, &sent).await;
    session_reads(&agt, &sent[1..]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_confirmed_before_its_topics_exist_and_picks_them_up_later() {
    let mock = cluster_with(&[]);
    let cfg = mock_config(&mock.bootstrap_servers());
    let (_agt_conn, mut sub) = connected(&KafkaTransport::agent(cfg.clone(), "cluster1", "a1").unwrap()).await;
    mock.create_topic("sourceevents.source1.cluster1", 1, 1).unwrap();
    let src_conn = KafkaTransport::source(cfg, "source1").unwrap().connect().await.unwrap();
    let sent = send_specs(&src_conn, 1..=1).await;
    // found on the next metadata refresh (1 s in the test config), read from the earliest offset
    assert_eq!(next(&mut sub).await.id(), sent[0].id());
}

/// The mock cluster does not answer `CreateTopics`, like brokers that refuse: the client says
/// which topics are missing (a warning), carries on, does not ask again for each record, and
/// picks the topics up once someone else creates them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_that_cannot_be_created_are_reported_and_waited_for() {
    let mock = cluster_with(&[]);
    let cfg = config(&mock.bootstrap_servers()).property("message.timeout.ms", "30000");
    let started = std::time::Instant::now();
    // connect tries to create sourcebroadcast.source1, in vain: not fatal
    let src_conn = KafkaTransport::source(cfg.clone(), "source1")
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (_agt_conn, mut sub) = connected(&KafkaTransport::agent(cfg, "cluster1", "a1").unwrap()).await;
    eprintln!("connected in {:?} with every topic creation refused", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(30));
    // the first record to cluster1 tries the pair once more (in vain); an administrator then
    // creates the topic, and the record waits for it
    let target = PublishTarget::Cluster("cluster1".into());
    let first = spec("source1", "cluster1", 1);
    let publish = async {
        src_conn.publish(&target, &first).await.unwrap();
        // a second record does not try again
        let again = std::time::Instant::now();
        src_conn
            .publish(&target, &spec("source1", "cluster1", 2))
            .await
            .unwrap();
        assert!(again.elapsed() < Duration::from_secs(2), "{:?}", again.elapsed());
    };
    let admin = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        mock.create_topic("sourceevents.source1.cluster1", 1, 1).unwrap();
    };
    tokio::time::timeout(T, futures::future::join(publish, admin))
        .await
        .expect("publishing waited for the topic");
    // the agent's subscription finds the topic created after it subscribed
    assert_eq!(next(&mut sub).await.id(), first.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_every_broker_ends_the_subscription_and_publishing_fails_fast() {
    let mock = cluster_with(&pair_topics("source1", "cluster1"));
    let cfg = mock_config(&mock.bootstrap_servers());
    let agt = KafkaTransport::agent(cfg, "cluster1", "cluster1-agent").unwrap();
    let (conn, mut sub) = connected(&agt).await;
    mock.broker_down(-1).unwrap();
    let end = tokio::time::timeout(T, sub.next())
        .await
        .expect("the subscription ends");
    let err = end.expect("an error item").expect_err("an error");
    assert!(err.is_disconnected(), "{err}");
    let started = std::time::Instant::now();
    let err = conn
        .publish(
            &PublishTarget::Source("source1".into()),
            &status("a", "cluster1", "source1"),
        )
        .await
        .unwrap_err();
    assert!(err.is_disconnected() && err.is_retryable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // and a new connection fails while the brokers are down
    let err = agt.connect().await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_subscribe_on_one_connection_is_refused() {
    let mock = cluster_with(&[]);
    let agt = KafkaTransport::agent(mock_config(&mock.bootstrap_servers()), "cluster1", "a1").unwrap();
    let (conn, _sub) = connected(&agt).await;
    assert!(conn.subscribe().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_clients_go_through_the_lifecycle_on_the_mock_cluster() {
    let mock = cluster_with(&pair_topics("source1", "cluster1"));
    kafka_support::lifecycle(mock_config(&mock.bootstrap_servers()), "source1", "cluster1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_clients_go_through_the_lifecycle_on_shared_topics_of_the_mock_cluster() {
    let mock = cluster_with(&["sourceevents".to_owned(), "agentevents".to_owned()]);
    let cfg = mock_config(&mock.bootstrap_servers()).topic_layout(TopicLayout::Shared);
    kafka_support::lifecycle(cfg, "source1", "cluster1").await;
}
