//! Per-event cost on an agent holding N works (N = 100, 10 000, 100 000): the time to receive,
//! decode, look up and apply one spec update must not grow with N (the Go SDK lists every work
//! of the source for each received event). Also reports the memory held per stored work.
//!
//! The source side likewise: a source holding N works receives status updates (the time to
//! receive, decode, find the work by its UID and store the status; the Go source scans its works
//! for each one).
//!
//! And a status resync between a source and an agent holding the same N works (N = 10 000,
//! 100 000): when every hash matches (the agent lists, hashes and compares, and sends nothing),
//! and for a source restored without statuses (the agent sends all N, the source stores them).
//!
//! `cargo bench -p ocm-ce-work --bench per_event` (release build; plain `main`, no harness).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use ocm_ce_client::testing::FakeBroker;
use ocm_ce_client::{ClientOptions, PublishTarget, Role};
use ocm_ce_core::{Codec, EventType};
use ocm_ce_work::api::{ORIGINAL_SOURCE_LABEL, condition, condition_type};
use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, SourceWorkClient, WorkClientOptions};
use ocm_ce_work::{AgentManifestBundleCodec, Manifest, ManifestWork, SourceManifestBundleCodec, work_uid};

const UPDATES: usize = 5_000;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn work(i: usize, rv: i64) -> ManifestWork {
    let name = format!("work-{i}");
    let manifest = Manifest::from_raw(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","namespace":"default"}},"data":{{"key":"{}"}}}}"#,
        "x".repeat(200)
    ))
    .unwrap();
    let mut w = ManifestWork::new("cluster1", &name, vec![manifest]);
    w.metadata.uid = Some(work_uid("source1", "cluster1", &name));
    w.metadata.resource_version = Some(rv.to_string());
    w
}

/// Waits until `count()` reaches `n`.
async fn wait_for(n: u64, count: impl Fn() -> u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while count() < n {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn options() -> WorkClientOptions {
    WorkClientOptions::default()
        .client(ClientOptions::default().rate_limit(None))
        .without_resync()
}

/// Agent side: (µs per spec event, bytes per stored work).
async fn run(n: usize) -> (f64, f64) {
    let broker = FakeBroker::new();
    let options = options();
    let agent = AgentWorkClient::start(
        broker.agent("cluster1", "agent"),
        "cluster1",
        "agent",
        AgentCodecs::bundles(),
        options,
    );
    agent.wait_until_connected().await;
    let codec = SourceManifestBundleCodec::new();
    let create: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
        .parse()
        .unwrap();
    let update: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.update_request"
        .parse()
        .unwrap();
    let from = Role::source("source1");
    let to = PublishTarget::Cluster("cluster1".into());

    let rss_before = rss_bytes();
    for i in 0..n {
        broker.inject(&from, &to, codec.encode("source1", &create, &work(i, 1)).unwrap());
    }
    wait_for(n as u64, || agent.metrics().specs_applied()).await;
    let per_work = (rss_bytes().saturating_sub(rss_before)) as f64 / n as f64;

    // Pre-encode the updates so only the agent's handling is timed.
    let events: Vec<_> = (0..UPDATES)
        .map(|k| {
            codec
                .encode("source1", &update, &work((k * 7919) % n, 2 + k as i64))
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    for e in events {
        broker.inject(&from, &to, e);
    }
    wait_for((n + UPDATES) as u64, || agent.metrics().specs_applied()).await;
    let per_event_us = start.elapsed().as_secs_f64() * 1e6 / UPDATES as f64;
    (per_event_us, per_work)
}

/// Source side: µs per status event on a source holding `n` works (each status a new one: a
/// newer sequence id and another condition message).
async fn run_source(n: usize) -> f64 {
    let broker = FakeBroker::new();
    let source = SourceWorkClient::start(
        broker.source("source1"),
        "source1",
        (0..n).map(|i| work(i, 1)),
        options(),
    );
    source.wait_until_connected().await;
    let codec = AgentManifestBundleCodec::new();
    let status: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
        .parse()
        .unwrap();
    let from = Role::agent("cluster1", "agent");
    let to = PublishTarget::Source("source1".into());
    // Pre-encoded (in sequence-id order) so only the source's handling is timed.
    let events: Vec<_> = (0..UPDATES)
        .map(|k| {
            let mut w = work((k * 7919) % n, 1);
            w.metadata.labels = Some([(ORIGINAL_SOURCE_LABEL.to_owned(), "source1".to_owned())].into());
            w.status.conditions = vec![condition(
                condition_type::APPLIED,
                "True",
                "AppliedManifestWorkComplete",
                format!("status {k}"),
                None,
            )];
            codec.encode("cluster1-agent", &status, &w).unwrap()
        })
        .collect();
    let start = Instant::now();
    for e in events {
        broker.inject(&from, &to, e);
    }
    wait_for(UPDATES as u64, || source.metrics().statuses_applied()).await;
    start.elapsed().as_secs_f64() * 1e6 / UPDATES as f64
}

/// Status resync between a source and an agent holding the same `n` works: (ms until the agent
/// answered a resync request whose hashes all match, ms until a source restored without any
/// status got back all `n` from the agent's answer).
async fn run_status_resync(n: usize) -> (f64, f64) {
    let broker = FakeBroker::new();
    let works: Vec<ManifestWork> = (0..n).map(|i| work(i, 1)).collect();
    let source = SourceWorkClient::start(broker.source("source1"), "source1", works.clone(), options());
    let agent = AgentWorkClient::start(
        broker.agent("cluster1", "agent"),
        "cluster1",
        "agent",
        AgentCodecs::bundles(),
        options(),
    );
    source.wait_until_connected().await;
    agent.wait_until_connected().await;
    // The agent gets every spec by its spec resync and reports a status for each.
    agent.generic().resync("").await.unwrap();
    wait_for(n as u64, || agent.metrics().specs_applied()).await;
    for w in agent.list(&Default::default()) {
        let mut status = w.status.clone();
        status.conditions = vec![condition(
            condition_type::APPLIED,
            "True",
            "AppliedManifestWorkComplete",
            "Apply manifest work complete",
            None,
        )];
        agent.update_status(w.name(), status).await.unwrap();
    }
    wait_for(n as u64, || source.metrics().statuses_applied()).await;
    assert!(agent.flush(Duration::from_secs(60)).await);

    let data_type = "io.open-cluster-management.works.v1alpha1.manifestbundles";
    let answered = || {
        agent
            .generic()
            .metrics()
            .status_resync_stats("source1", "cluster1", data_type)
            .0
    };
    let before = answered();
    let start = Instant::now();
    source.generic().resync("cluster1").await.unwrap();
    wait_for(before + 1, answered).await;
    let in_sync_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(agent.unsent(), 0, "nothing differed, so nothing is sent");

    source.close(Duration::from_secs(5)).await;
    let restored = SourceWorkClient::start(broker.source("source1"), "source1", works, options());
    restored.wait_until_connected().await;
    let start = Instant::now();
    restored.generic().resync("cluster1").await.unwrap();
    wait_for(n as u64, || restored.metrics().statuses_applied()).await;
    let restored_ms = start.elapsed().as_secs_f64() * 1e3;
    restored.close(Duration::from_secs(5)).await;
    agent.close(Duration::from_secs(5)).await;
    (in_sync_ms, restored_ms)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{:>10} {:>28} {:>28} {:>26}",
        "works", "agent: per spec event (us)", "agent: memory per work (B)", "source: per status (us)"
    );
    for n in [100, 10_000, 100_000] {
        let (us, bytes) = rt.block_on(run(n));
        let source_us = rt.block_on(run_source(n));
        println!("{n:>10} {us:>28.1} {bytes:>28.0} {source_us:>26.1}");
    }
    println!();
    println!(
        "{:>10} {:>34} {:>40}",
        "works", "status resync, all in sync (ms)", "status resync, restored source (ms)"
    );
    for n in [10_000, 100_000] {
        let (in_sync, restored) = rt.block_on(run_status_resync(n));
        println!("{n:>10} {in_sync:>34.0} {restored:>40.0}");
    }
}
