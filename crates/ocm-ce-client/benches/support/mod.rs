//! The source → agent → status round-trip benchmark shared by `mqtt_roundtrip` and
//! `kafka_roundtrip`: the clients, their subscription loops, and the sequential and pipelined
//! measurements. Each bench supplies its transports and prints its figures.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ocm_ce_client::transport::Transport;
use ocm_ce_client::{AgentClient, BackoffConfig, ClientEvent, ClientOptions, SourceClient};
use ocm_ce_core::event_type::action;
use ocm_ce_core::{EventType, ResourceAction, SubResource};
use tokio::sync::{Notify, Semaphore};

use crate::mock::{Mock, MockCodec, Side, Store, bundles, status_hash};

/// Specs in flight in the pipelined figure.
pub(crate) const WINDOW: usize = 64;

fn options() -> ClientOptions {
    ClientOptions::default()
        .rate_limit(None)
        .resync_on_connect(false)
        .resync_interval(None)
        .backoff(BackoffConfig::constant(Duration::from_secs(1)))
}

/// Fresh (source id, cluster name) for one run.
pub(crate) fn names() -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("{}-{nanos:x}", std::process::id());
    (format!("bench-src-{tag}"), format!("bench-cluster-{tag}"))
}

/// Reads the broker address from `env_var` and `OCM_CE_BENCH_N`, runs `setup`, a warm-up, the
/// sequential (`n / seq_divisor`, at least 100) and the pipelined (`n`) figures, handing each
/// to its report (round trips, round trips per second).
pub(crate) fn run<Tr, Fut>(
    env_var: &str,
    seq_divisor: usize,
    setup: impl FnOnce(String) -> Fut,
    report_sequential: impl FnOnce(usize, f64),
    report_pipelined: impl FnOnce(usize, f64),
) where
    Tr: Transport,
    Fut: Future<Output = Bench<Tr>>,
{
    let Some(address) = std::env::var(env_var).ok().filter(|h| !h.is_empty()) else {
        eprintln!("skipped: {env_var} is not set (run `scripts/test-env.sh start DIR` and source DIR/env)");
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
        let bench = setup(address).await;
        // Warm-up.
        bench.pipelined(500, 10_000_000).await;
        let seq_n = (n / seq_divisor).max(100);
        report_sequential(seq_n, bench.sequential(seq_n).await);
        report_pipelined(n, bench.pipelined(n, 0).await);
    });
}

/// A connected source and agent; the agent answers every spec with a status.
pub(crate) struct Bench<Tr: Transport> {
    source: SourceClient<Mock, Tr>,
    statuses: Arc<AtomicUsize>,
    notify: Arc<Notify>,
    cluster: String,
    src: String,
    payload: String,
}

/// Starts the agent (on `agent_transport`) and the source (on `source_transport`) of `src` and
/// `cluster`, waiting up to `connect_timeout` for each to connect.
pub(crate) async fn setup<Tr: Transport>(
    agent_transport: Tr,
    source_transport: Tr,
    src: String,
    cluster: String,
    connect_timeout: Duration,
) -> Bench<Tr> {
    let agent_store = Store::agent();
    let agent = AgentClient::new(
        agent_transport,
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
                    Ok(ClientEvent::Received(mut resource))
                        if matches!(
                            agent_store.receive(&resource),
                            Some(ResourceAction::Added | ResourceAction::Modified)
                        ) =>
                    {
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
        source_transport,
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
                    Ok(ClientEvent::Received(_)) => {
                        statuses.fetch_add(1, Ordering::SeqCst);
                        notify.notify_one();
                    }
                    Err(e) => eprintln!("source: {e}"),
                }
            }
        });
    }
    tokio::time::timeout(connect_timeout, agent_ready.notified())
        .await
        .expect("the agent did not connect");
    tokio::time::timeout(connect_timeout, source_ready.notified())
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

impl<Tr: Transport> Bench<Tr> {
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
