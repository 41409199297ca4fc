//! Shared helpers of the Kafka tests: the broker address, test configs, topic creation, and
//! generic clients driven in the background like an informer would drive them.

#![allow(clippy::unwrap_used)]
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use ocm_ce_client::transport::kafka::{KafkaConfig, KafkaTransport};
use ocm_ce_client::{AgentClient, BackoffConfig, ClientEvent, ClientOptions, ClientStream, SourceClient};
use ocm_ce_core::{EventType, ResourceAction, SubResource};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::mock::{Mock, MockCodec, Side, Store, bundles, status_hash};

/// The real broker of `scripts/test-env.sh` (`OCM_CE_TEST_KAFKA`). `None` (skip) when unset
/// locally; a failure when `CI` is set.
pub fn broker() -> Option<String> {
    match std::env::var("OCM_CE_TEST_KAFKA") {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty()),
                "OCM_CE_TEST_KAFKA is not set but CI is: start the brokers with scripts/test-env.sh"
            );
            eprintln!("skipping: OCM_CE_TEST_KAFKA is not set (bash scripts/test-env.sh start DIR; source DIR/env)");
            None
        }
    }
}

/// A name unique to this test run, so reruns against a long-lived broker start clean.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos & 0xff_ffff_ffff)
}

/// Logs to the test output, filtered by `RUST_LOG` (e.g. `RUST_LOG=librdkafka=debug,ocm_ce_client=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A config for tests: quick group membership timeouts and topic discovery.
pub fn config(bootstrap: &str) -> KafkaConfig {
    init_tracing();
    let config = KafkaConfig::new(bootstrap)
        .property("session.timeout.ms", "6000")
        .property("heartbeat.interval.ms", "500")
        .property("topic.metadata.refresh.interval.ms", "1000")
        .property("auto.commit.interval.ms", "1000")
        .subscribe_timeout(Duration::from_secs(45))
        .connect_timeout(Duration::from_secs(10));
    // librdkafka debug contexts, e.g. `cgrp,topic` (shown with RUST_LOG=librdkafka=debug)
    match std::env::var("OCM_CE_TEST_KAFKA_DEBUG") {
        Ok(contexts) if !contexts.is_empty() => config.property("debug", contexts),
        _ => config,
    }
}

/// Creates topics with one partition each; existing ones are fine.
pub async fn create_topics(bootstrap: &str, names: &[String]) {
    create_topics_with(bootstrap, names, 1).await;
}

/// Creates topics with `partitions` partitions each; existing ones are fine.
pub async fn create_topics_with(bootstrap: &str, names: &[String], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => panic!("creating topic {name}: {code:?}"),
        }
    }
}

/// A source id and a cluster name unique to this test run, with their four per-cluster topics
/// created.
pub async fn pair_with_topics(bootstrap: &str) -> (String, String) {
    let (src, cluster) = (unique("src"), unique("cluster"));
    create_topics(bootstrap, &pair_topics(&src, &cluster)).await;
    (src, cluster)
}

/// The four per-cluster topics of one source/cluster pair.
pub fn pair_topics(source: &str, cluster: &str) -> Vec<String> {
    vec![
        format!("sourceevents.{source}.{cluster}"),
        format!("agentevents.{source}.{cluster}"),
        format!("sourcebroadcast.{source}"),
        format!("agentbroadcast.{cluster}"),
    ]
}

pub fn options() -> ClientOptions {
    ClientOptions::default()
        .rate_limit(None)
        .backoff(BackoffConfig::constant(Duration::from_secs(1)))
}

pub fn ty(sub: SubResource, action: &str) -> EventType {
    EventType::new(bundles(), sub, action)
}

pub type Source = SourceClient<Mock, KafkaTransport>;
pub type Agent = AgentClient<Mock, KafkaTransport>;

pub fn source(config: KafkaConfig, source_id: &str, store: &Store) -> Source {
    SourceClient::new(
        KafkaTransport::source(config, source_id).unwrap(),
        source_id,
        MockCodec::new(Side::Source),
        store.clone(),
        status_hash,
        options(),
    )
}

pub fn agent(config: KafkaConfig, cluster: &str, store: &Store) -> Agent {
    agent_with(config, cluster, store, options())
}

pub fn agent_with(config: KafkaConfig, cluster: &str, store: &Store, options: ClientOptions) -> Agent {
    let agent_id = format!("{cluster}-agent");
    AgentClient::new(
        KafkaTransport::agent(config, cluster, &agent_id).unwrap(),
        cluster,
        agent_id,
        MockCodec::new(Side::Agent),
        store.clone(),
        status_hash,
        options,
    )
}

/// What a driven client saw.
pub type Seen = Result<Got, String>;

/// What a driven client's stream gave, as its application took it.
#[derive(Debug)]
pub enum Got {
    /// `Connected` or `Reconnected`.
    Marker(ClientEvent<Mock>),
    /// A received resource and what it meant to the application (`StatusModified` for a
    /// source's statuses; `Added`, `Modified` or `Deleted` for an agent's specs).
    Resource { action: ResourceAction, resource: Mock },
}

/// A client whose subscription stream is polled in the background; what it yields is applied
/// to its store (as an informer would) and forwarded to `events`.
pub struct Driven {
    pub events: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Driven {
    /// Stops polling; the connection closes.
    pub async fn stop(mut self) {
        self.task.abort();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }

    /// Waits for a yielded item matching `want`, skipping others.
    pub async fn wait_for(&mut self, what: &str, timeout: Duration, mut want: impl FnMut(&Seen) -> bool) -> Seen {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(item)) if want(&item) => return item,
                Ok(Some(item)) => seen.push(item),
                Ok(None) => panic!("{what}: the client stopped; saw {seen:#?}"),
                Err(_) => panic!("{what}: nothing within {timeout:?}; saw {seen:#?}"),
            }
        }
    }

    /// Waits until the subscription is confirmed (`Connected` or `Reconnected`).
    pub async fn connected(&mut self, timeout: Duration) {
        let _ = self
            .wait_for("connected", timeout, |s| {
                matches!(s, Ok(Got::Marker(ClientEvent::Connected | ClientEvent::Reconnected)))
            })
            .await;
    }

    /// Waits for a resource event of `uid` with `action`, returning the resource.
    pub async fn resource(&mut self, uid: &str, action: ResourceAction, timeout: Duration) -> Mock {
        self.resource_where(uid, action, timeout, |_| true).await
    }

    /// Waits for a resource event of `uid` with `action` whose resource passes `check`.
    pub async fn resource_where(
        &mut self,
        uid: &str,
        action: ResourceAction,
        timeout: Duration,
        check: impl Fn(&Mock) -> bool,
    ) -> Mock {
        let got = self
            .wait_for(&format!("{action:?} {uid}"), timeout, |s| {
                matches!(s, Ok(Got::Resource { action: a, resource })
                    if *a == action && resource.uid == uid && check(resource))
            })
            .await;
        match got {
            Ok(Got::Resource { resource, .. }) => resource,
            _ => unreachable!(),
        }
    }

    /// Whatever arrived so far, without waiting.
    pub fn drain(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        while let Ok(item) = self.events.try_recv() {
            out.push(item);
        }
        out
    }

    /// The uids of the resources that arrived so far, without waiting.
    pub fn drain_uids(&mut self) -> Vec<String> {
        self.drain()
            .into_iter()
            .filter_map(|e| match e {
                Ok(Got::Resource { resource, .. }) => Some(resource.uid),
                _ => None,
            })
            .collect()
    }
}

/// Polls `stream` in the background and forwards what it yields to the returned [`Driven`]'s
/// events; `on_received` applies a received resource to the application's store and says what
/// it meant (`None`: nothing, and nothing is forwarded).
fn drive(mut stream: ClientStream<Mock>, mut on_received: impl FnMut(Mock) -> Option<Got> + Send + 'static) -> Driven {
    let (tx, events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let seen = match item {
                Ok(ClientEvent::Received(resource)) => match on_received(resource) {
                    Some(got) => Ok(got),
                    None => continue,
                },
                Ok(marker) => Ok(Got::Marker(marker)),
                Err(e) => Err(e.to_string()),
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    Driven { events, task }
}

/// Drives a source: statuses update the status of the resource in `store`.
pub fn drive_source(client: &Source, store: &Store) -> Driven {
    let store = store.clone();
    drive(client.subscribe(), move |resource| {
        if let Some(mut local) = store.get_mock(&resource.uid) {
            local.status.clone_from(&resource.status);
            store.put(local);
        }
        Some(Got::Resource {
            action: ResourceAction::StatusModified,
            resource,
        })
    })
}

/// Drives an agent: added and modified specs are stored, deleted ones removed. Like a real
/// agent it finishes the deletion of a deleting spec at once, also when it arrives as `Added`:
/// a copy of a deletion that reaches the agent after it removed the work (a duplicate delivery
/// or a resync answer listing the deleting work) is `Added` by Go's rule for unknown resources.
/// Like a real agent's store, a modified spec keeps the status the agent holds (a spec event
/// carries none): a status resync answered after it still reports that status.
pub fn drive_agent(client: &Agent, store: &Store) -> Driven {
    let store = store.clone();
    drive(client.subscribe(), move |resource| {
        let action = store.spec_action(&resource.namespace, &resource)?;
        if action == ResourceAction::Deleted || resource.deleting.is_some() {
            store.remove(&resource.uid);
        } else {
            let mut stored = resource.clone();
            if let Some(local) = store.get_mock(&resource.uid) {
                stored.status = local.status;
            }
            store.put(stored);
        }
        Some(Got::Resource { action, resource })
    })
}

/// Source `source_id` with a store of its own, driven and connected within `timeout`.
pub async fn connected_source(config: KafkaConfig, source_id: &str, timeout: Duration) -> (Source, Store, Driven) {
    let store = Store::source();
    let client = source(config, source_id, &store);
    let mut driven = drive_source(&client, &store);
    driven.connected(timeout).await;
    (client, store, driven)
}

/// A source and the agent of a cluster, each with its store and driven.
pub struct Pair {
    pub src_store: Store,
    pub agt_store: Store,
    pub src: Source,
    pub agt: Agent,
    pub s: Driven,
    pub a: Driven,
}

/// Starts and drives source `source_id` and the agent of `cluster`, and waits until both are
/// connected.
pub async fn connected_pair(config: KafkaConfig, source_id: &str, cluster: &str, timeout: Duration) -> Pair {
    let (src_store, agt_store) = (Store::source(), Store::agent());
    let src = source(config.clone(), source_id, &src_store);
    let agt = agent(config, cluster, &agt_store);
    let mut s = drive_source(&src, &src_store);
    let mut a = drive_agent(&agt, &agt_store);
    s.connected(timeout).await;
    a.connected(timeout).await;
    Pair {
        src_store,
        agt_store,
        src,
        agt,
        s,
        a,
    }
}

/// Waits until the source has got status `status` for `uid` and its store holds it.
async fn source_gets_status(s: &mut Driven, src_store: &Store, uid: &str, status: &str, timeout: Duration) {
    s.resource_where(uid, ResourceAction::StatusModified, timeout, |m| m.status == status)
        .await;
    converges(&format!("the source holds the status {status}"), timeout, || {
        src_store.get_mock(uid).is_some_and(|m| m.status == status)
    })
    .await;
}

/// A work for `cluster` from `source`.
pub fn work(uid: &str, rv: &str, source: &str, cluster: &str, payload: &str) -> Mock {
    Mock {
        namespace: cluster.into(),
        source_label: source.into(),
        payload: payload.into(),
        ..Mock::new(uid, rv)
    }
}

/// The agent's view of `spec` with a status set (what it publishes).
pub fn with_status(spec: &Mock, status: &str) -> Mock {
    Mock {
        status: status.into(),
        ..spec.clone()
    }
}

/// `spec` marked as deleting now.
pub fn deleting(spec: &Mock) -> Mock {
    Mock {
        deleting: Some(Utc::now()),
        ..spec.clone()
    }
}

/// Publishes with retries while the client (re)connects.
pub async fn retry<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ocm_ce_client::Result<()>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match f().await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{what}: {e} ({:?})", std::error::Error::source(&e)),
        }
    }
}

/// Publishes a spec, retrying while the source (re)connects.
pub async fn send_spec(src: &Source, action: &str, m: &Mock) {
    let t = ty(SubResource::Spec, action);
    retry(action, Duration::from_secs(60), || src.publish(&t, m)).await;
}

/// Puts `m` into the source's store, then publishes it as [`send_spec`] does.
pub async fn put_and_send_spec(src: &Source, src_store: &Store, action: &str, m: &Mock) {
    src_store.put(m.clone());
    send_spec(src, action, m).await;
}

/// Waits (bounded) until `check` holds. Kafka delivers at least once: after a rebalance a client
/// may get records it handled again, in order, so a store can show an older state for a moment
/// before the repeated newer record arrives; what is checked is where both sides end up.
pub async fn converges(what: &str, timeout: Duration, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes a status, retrying while the agent (re)connects.
pub async fn send_status(agt: &Agent, action: &str, m: &Mock) {
    let t = ty(SubResource::Status, action);
    retry(action, Duration::from_secs(60), || agt.publish(&t, m)).await;
}

/// The generic source + agent lifecycle over Kafka: create, status, update, delete, `Deleted`
/// (Go's `test/integration/cloudevents` lifecycle, with the mock resource). The topics must exist.
pub async fn lifecycle(config: KafkaConfig, source_id: &str, cluster: &str) {
    use ocm_ce_core::event_type::action;
    let t = Duration::from_secs(60);
    let Pair {
        src_store,
        agt_store,
        src,
        agt,
        mut s,
        mut a,
    } = connected_pair(config, source_id, cluster, t).await;

    // create
    let w = work("w1", "1", source_id, cluster, "v1");
    put_and_send_spec(&src, &src_store, action::CREATE_REQUEST, &w).await;
    let got = a.resource("w1", ResourceAction::Added, t).await;
    assert_eq!((got.payload.as_str(), got.namespace.as_str()), ("v1", cluster));
    assert_eq!(got.source_label, source_id);

    // status
    // the agent keeps what it reports: its answer to the source's status resync (which may
    // arrive before or after this update) must not take the status back
    let status = with_status(&got, "Created");
    agt_store.put(status.clone());
    send_status(&agt, action::UPDATE_REQUEST, &status).await;
    // (the agent's answer to the source's initial status resync may come first, with no status)
    source_gets_status(&mut s, &src_store, "w1", "Created", t).await;

    // update
    let w2 = Mock {
        status: "Created".into(),
        ..work("w1", "2", source_id, cluster, "v2")
    };
    put_and_send_spec(&src, &src_store, action::UPDATE_REQUEST, &w2).await;
    let got = a.resource("w1", ResourceAction::Modified, t).await;
    assert_eq!((got.payload.as_str(), got.rv.as_str()), ("v2", "2"));
    converges("the agent holds v2", t, || {
        agt_store.get_mock("w1").is_some_and(|m| m.payload == "v2")
    })
    .await;

    // delete: the agent sees Deleted, finishes and reports the `Deleted` status
    let d = deleting(&w2);
    put_and_send_spec(&src, &src_store, action::DELETE_REQUEST, &d).await;
    let got = a.resource("w1", ResourceAction::Deleted, t).await;
    assert!(got.deleting.is_some());
    converges("the agent no longer holds w1", t, || agt_store.get_mock("w1").is_none()).await;
    let gone = with_status(&got, "Deleted");
    send_status(&agt, action::DELETE_REQUEST, &gone).await;
    source_gets_status(&mut s, &src_store, "w1", "Deleted", t).await;
    s.stop().await;
    a.stop().await;
}
