//! Source → agent → status round trips through a real Kafka broker (`OCM_CE_TEST_KAFKA`), with
//! 1 KiB spec payloads, Go's librdkafka defaults (`acks=1`, `linger.ms` 5) and the rate limit
//! off.
//!
//! ```text
//! scripts/test-env.sh start DIR && source DIR/env
//! cargo bench -p ocm-ce-client --features kafka --bench kafka_roundtrip
//! OCM_CE_BENCH_KAFKA_PROPS=linger.ms=0 cargo bench …   # extra librdkafka properties, k=v,k=v
//! ```
//!
//! Two figures: *sequential* (one spec in flight, i.e. round-trip latency) and *pipelined*
//! (many specs in flight: the source publishes from `WINDOW` tasks, the agent answers from
//! spawned tasks). Each round trip is two Kafka records (spec and status), each publish waiting
//! for the broker's acknowledgement, each received event's offset stored once handled.
//! `OCM_CE_BENCH_N` sets the number of round trips.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/mock/mod.rs"]
mod mock;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mock::{Mock, MockCodec, Side, Store, bundles, status_hash};
use ocm_ce_client::transport::kafka::{KafkaConfig, KafkaTransport};
use ocm_ce_client::{AgentClient, BackoffConfig, ClientEvent, ClientOptions, SourceClient};
use ocm_ce_core::event_type::action;
use ocm_ce_core::{EventType, ResourceAction, SubResource};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tokio::sync::{Notify, Semaphore};

const WINDOW: usize = 64;

fn options() -> ClientOptions {
    ClientOptions::default()
        .rate_limit(None)
        .resync_on_connect(false)
        .resync_interval(None)
        .backoff(BackoffConfig::constant(Duration::from_secs(1)))
}

fn config(bootstrap: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(bootstrap)
        .property("session.timeout.ms", "6000")
        .property("message.max.bytes", "65536");
    if let Ok(props) = std::env::var("OCM_CE_BENCH_KAFKA_PROPS") {
        for pair in props.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("OCM_CE_BENCH_KAFKA_PROPS: k=v,k=v");
            config = config.property(k, v);
        }
    }
    config
}

async fn create_topics(bootstrap: &str, names: &[String]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(1)))
        .collect();
    for r in admin.create_topics(&topics, &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
}

struct Bench {
    source: SourceClient<Mock, KafkaTransport>,
    statuses: Arc<AtomicUsize>,
    notify: Arc<Notify>,
    cluster: String,
    src: String,
    payload: String,
}

async fn setup(bootstrap: &str) -> Bench {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("{}-{nanos:x}", std::process::id());
    let (src, cluster) = (format!("bench-src-{tag}"), format!("bench-cluster-{tag}"));
    create_topics(
        bootstrap,
        &[
            format!("sourceevents.{src}.{cluster}"),
            format!("agentevents.{src}.{cluster}"),
            format!("sourcebroadcast.{src}"),
            format!("agentbroadcast.{cluster}"),
        ],
    )
    .await;
    let config = config(bootstrap);

    let agent_store = Store::agent();
    let agent = AgentClient::new(
        KafkaTransport::agent(config.clone(), &cluster, "bench-agent").unwrap(),
        &cluster,
        "bench-agent",
        MockCodec::new(Side::Agent),
        agent_store.clone(),
        status_hash,
        options(),
    );
    let agent_ready = Arc::new(Notify::new());
    {
        let (mut stream, ready, agent) = (agent.subscribe(), agent_ready.clone(), agent.clone());
        tokio::spawn(async move {
            let limit = Arc::new(Semaphore::new(WINDOW));
            let status = EventType::new(bundles(), SubResource::Status, action::UPDATE_REQUEST);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ClientEvent::Connected | ClientEvent::Reconnected) => ready.notify_one(),
                    Ok(ClientEvent::Resource {
                        action: ResourceAction::Added | ResourceAction::Modified,
                        mut resource,
                    }) => {
                        resource.status = format!("applied-{}", resource.rv);
                        agent_store.put(resource.clone());
                        let (agent, status, permit) = (
                            agent.clone(),
                            status.clone(),
                            limit.clone().acquire_owned().await.unwrap(),
                        );
                        tokio::spawn(async move {
                            agent.publish(&status, &resource).await.unwrap();
                            drop(permit);
                        });
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("agent: {e}"),
                }
            }
        });
    }

    let source = SourceClient::new(
        KafkaTransport::source(config, &src).unwrap(),
        &src,
        MockCodec::new(Side::Source),
        Store::source(),
        status_hash,
        options(),
    );
    let statuses = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(Notify::new());
    let source_ready = Arc::new(Notify::new());
    {
        let (mut stream, statuses, notify, ready) = (
            source.subscribe(),
            statuses.clone(),
            notify.clone(),
            source_ready.clone(),
        );
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ClientEvent::Connected | ClientEvent::Reconnected) => ready.notify_one(),
                    Ok(ClientEvent::Resource { .. }) => {
                        statuses.fetch_add(1, Ordering::SeqCst);
                        notify.notify_one();
                    }
                    Err(e) => eprintln!("source: {e}"),
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(60), agent_ready.notified())
        .await
        .expect("the agent did not connect");
    tokio::time::timeout(Duration::from_secs(60), source_ready.notified())
        .await
        .expect("the source did not connect");
    Bench {
        source,
        statuses,
        notify,
        cluster,
        src,
        payload: "x".repeat(1024),
    }
}

impl Bench {
    fn work(&self, id: String) -> Mock {
        Mock {
            namespace: self.cluster.clone(),
            source_label: self.src.clone(),
            payload: self.payload.clone(),
            ..Mock::new(&id, "1")
        }
    }

    async fn wait_statuses(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while self.statuses.load(Ordering::SeqCst) < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out with {} of {n} statuses",
                self.statuses.load(Ordering::SeqCst)
            );
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), self.notify.notified()).await;
        }
    }

    async fn sequential(&self, n: usize) -> f64 {
        let create = EventType::new(bundles(), SubResource::Spec, action::CREATE_REQUEST);
        let start = Instant::now();
        let base = self.statuses.load(Ordering::SeqCst);
        for i in 0..n {
            self.source.publish(&create, &self.work(format!("w{i}"))).await.unwrap();
            self.wait_statuses(base + i + 1).await;
        }
        n as f64 / start.elapsed().as_secs_f64()
    }

    async fn pipelined(&self, n: usize, offset: usize) -> f64 {
        let create = EventType::new(bundles(), SubResource::Spec, action::CREATE_REQUEST);
        let base = self.statuses.load(Ordering::SeqCst);
        let start = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..WINDOW {
            let (source, next, create) = (self.source.clone(), next.clone(), create.clone());
            let template = self.work(String::new());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    let w = Mock {
                        uid: format!("p{}", offset + i),
                        ..template.clone()
                    };
                    source.publish(&create, &w).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        self.wait_statuses(base + n).await;
        n as f64 / start.elapsed().as_secs_f64()
    }
}

fn main() {
    let Some(bootstrap) = std::env::var("OCM_CE_TEST_KAFKA").ok().filter(|h| !h.is_empty()) else {
        eprintln!("skipped: OCM_CE_TEST_KAFKA is not set (run `scripts/test-env.sh start DIR` and source DIR/env)");
        return;
    };
    let n: usize = std::env::var("OCM_CE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let bench = setup(&bootstrap).await;
        // Warm-up.
        bench.pipelined(500, 10_000_000).await;
        let seq_n = (n / 20).max(100);
        let seq = bench.sequential(seq_n).await;
        println!(
            "kafka_roundtrip sequential: {seq_n} round trips, {seq:.0} round trips/s ({:.1} ms each)",
            1e3 / seq
        );
        let pipe = bench.pipelined(n, 0).await;
        println!(
            "kafka_roundtrip pipelined ({WINDOW} in flight): {n} round trips, {pipe:.0} round trips/s \
             ({:.0} Kafka records/s through the broker)",
            pipe * 2.0
        );
    });
}
