//! The work lifecycle that `quickstart` and `bench` drive: a source creates works for every
//! cluster, waits until each is reported `Applied`, updates some of them, waits until the
//! agents applied the update, deletes them all and waits until every agent acknowledged the
//! deletion. It records latencies and throughput.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use ocm_ce_client::Transport;
use ocm_ce_work::api::{RESOURCE_VERSION_ANNOTATION, condition_type};
use ocm_ce_work::client::SourceWorkClient;
use ocm_ce_work::conditions::is_status_condition_true;
use ocm_ce_work::store::WatchEvent;
use ocm_ce_work::{Manifest, ManifestWork};
use serde::Serialize;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Cluster names.
    pub(crate) clusters: Vec<String>,
    /// Works per cluster.
    pub(crate) works_per_cluster: usize,
    /// Size of the ConfigMap data in each work.
    pub(crate) manifest_bytes: usize,
    /// Works created per second (0 = as fast as possible).
    pub(crate) rate: f64,
    /// Every `update_every`-th work is updated (0 = none).
    pub(crate) update_every: usize,
    /// Give up after this long.
    pub(crate) timeout: Duration,
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    /// Works created.
    pub(crate) works_created: usize,
    /// Works updated.
    pub(crate) works_updated: usize,
    /// Works deleted (and acknowledged).
    pub(crate) works_deleted: usize,
    /// Status changes the source received.
    pub(crate) statuses_received: u64,
    /// Median create → Applied latency.
    pub(crate) p50_ms: f64,
    /// 99th percentile create → Applied latency.
    pub(crate) p99_ms: f64,
    /// Slowest create → Applied latency.
    pub(crate) max_ms: f64,
    /// Whole lifecycles per second.
    pub(crate) works_per_sec: f64,
    /// Wall time of the run.
    pub(crate) elapsed_s: f64,
    /// True when every work completed its lifecycle.
    pub(crate) complete: bool,
    /// Seconds from the first create until every work was Applied.
    pub(crate) apply_s: f64,
    /// Seconds from the first update until every update was Applied.
    pub(crate) update_s: f64,
    /// Seconds from the first deletion until every deletion was acknowledged.
    pub(crate) delete_s: f64,
}

/// A ConfigMap and a Deployment, the ConfigMap carrying `bytes` of data.
pub(crate) fn bundle(cluster: &str, name: &str, bytes: usize, version: u64) -> Result<ManifestWork> {
    let data = "x".repeat(bytes.max(1));
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-config"), "namespace": "default"},
        "data": {"payload": data, "version": version.to_string()},
    });
    let deploy = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}},
    });
    let mut w = ManifestWork::new(
        cluster,
        name,
        vec![Manifest::from_object(&cm)?, Manifest::from_object(&deploy)?],
    );
    w.metadata.annotations = Some([(RESOURCE_VERSION_ANNOTATION.to_owned(), version.to_string())].into());
    Ok(w)
}

fn applied_at(work: &ManifestWork, version: u64) -> bool {
    is_status_condition_true(&work.status.conditions, condition_type::APPLIED)
        && work
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition_type::APPLIED)
            .is_some_and(|c| c.observed_generation.unwrap_or(0) >= i64::try_from(version).unwrap_or(i64::MAX))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Progress callback: (phase, done, total).
pub(crate) type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// Runs the plan with `source` (agents must be running and applying).
pub(crate) async fn run<Tr: Transport>(
    source: &SourceWorkClient<Tr>,
    plan: &Plan,
    progress: Progress<'_>,
) -> Result<Summary> {
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let mut watch = source.watch();
    let total = plan.clusters.len() * plan.works_per_cluster;
    let names: Vec<(String, String)> = plan
        .clusters
        .iter()
        .flat_map(|c| (0..plan.works_per_cluster).map(move |i| (c.clone(), format!("work-{i}"))))
        .collect();
    let mut created_at: HashMap<(String, String), Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(total);
    let mut statuses = 0u64;

    // Phase 1: create, and collect Applied as it comes.
    let interval = (plan.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.rate));
    for (i, (cluster, name)) in names.iter().enumerate() {
        if let Some(step) = interval {
            tokio::time::sleep_until((started + step.mul_f64(i as f64)).into()).await;
        }
        let work = bundle(cluster, name, plan.manifest_bytes, 1)?;
        create_with_retry(source, cluster, work, deadline).await?;
        created_at.insert((cluster.clone(), name.clone()), Instant::now());
        progress("create", i + 1, total);
        drain(&mut watch, &mut statuses, |w| {
            note_applied(w, 1, &mut created_at, &mut latencies)
        });
    }
    while latencies.len() < total {
        let ev = next_before(&mut watch, deadline).await.with_context(|| {
            format!(
                "{} of {total} works were reported Applied before the timeout",
                latencies.len()
            )
        })?;
        count(&ev, &mut statuses);
        for w in changed(&ev) {
            note_applied(w, 1, &mut created_at, &mut latencies);
        }
        progress("apply", latencies.len(), total);
    }

    let applied_at_all = Instant::now();

    // Phase 2: update every n-th work and wait until each update is applied.
    let mut pending_update: HashMap<(String, String), ()> = HashMap::new();
    if plan.update_every > 0 {
        let selected: Vec<_> = names.iter().step_by(plan.update_every).cloned().collect();
        for (i, (cluster, name)) in selected.iter().enumerate() {
            source
                .update(cluster, bundle(cluster, name, plan.manifest_bytes, 2)?)
                .await?;
            pending_update.insert((cluster.clone(), name.clone()), ());
            progress("update", i + 1, selected.len());
            // Keep up with the watch while updating, as while creating: a watcher that lags
            // keeps the versions its events hold (up to the watch's capacity) alive.
            drain(&mut watch, &mut statuses, |w| {
                if applied_at(w, 2) {
                    pending_update.remove(&(w.namespace_str().to_owned(), w.name().to_owned()));
                }
            });
        }
        let updates = pending_update.len();
        pending_update.retain(|(c, n), ()| !source.get(c, n).is_ok_and(|w| applied_at(&w, 2)));
        while !pending_update.is_empty() {
            let ev = next_before(&mut watch, deadline).await.with_context(|| {
                format!(
                    "{} of {updates} updates were not applied before the timeout",
                    pending_update.len()
                )
            })?;
            count(&ev, &mut statuses);
            for w in changed(&ev) {
                if applied_at(w, 2) {
                    pending_update.remove(&(w.namespace_str().to_owned(), w.name().to_owned()));
                }
            }
            progress("updated", updates - pending_update.len(), updates);
        }
    }
    let works_updated = if plan.update_every > 0 {
        names.iter().step_by(plan.update_every).count()
    } else {
        0
    };

    let updated_at_all = Instant::now();

    // Phase 3: delete everything and wait for the agents' Deleted acknowledgements.
    for (i, (cluster, name)) in names.iter().enumerate() {
        source.delete(cluster, name).await?;
        progress("delete", i + 1, total);
        drain(&mut watch, &mut statuses, |_| {});
    }
    while !source.store().is_empty() {
        let ev = next_before(&mut watch, deadline).await.with_context(|| {
            format!(
                "{} works were not acknowledged deleted before the timeout",
                source.store().len()
            )
        })?;
        count(&ev, &mut statuses);
        progress("deleted", total - source.store().len(), total);
    }

    let finished = Instant::now();
    let elapsed = finished - started;
    latencies.sort_by(f64::total_cmp);
    Ok(Summary {
        works_created: total,
        works_updated,
        works_deleted: total,
        statuses_received: statuses,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        works_per_sec: total as f64 / elapsed.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        complete: true,
        apply_s: (applied_at_all - started).as_secs_f64(),
        update_s: (updated_at_all - applied_at_all).as_secs_f64(),
        delete_s: (finished - updated_at_all).as_secs_f64(),
    })
}

async fn create_with_retry<Tr: Transport>(
    source: &SourceWorkClient<Tr>,
    cluster: &str,
    work: ManifestWork,
    deadline: Instant,
) -> Result<()> {
    loop {
        match source.create(cluster, work.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("creating work {cluster}/{}", work.name())),
        }
    }
}

fn changed(ev: &WatchEvent) -> Vec<&ManifestWork> {
    match ev {
        WatchEvent::Modified(w) | WatchEvent::Added(w) => vec![&**w],
        WatchEvent::Relisted(all) => all.iter().map(|w| &**w).collect(),
        WatchEvent::Deleted(_) => Vec::new(),
    }
}

fn count(ev: &WatchEvent, statuses: &mut u64) {
    if matches!(ev, WatchEvent::Modified(_) | WatchEvent::Deleted(_)) {
        *statuses += 1;
    }
}

fn note_applied(
    w: &ManifestWork,
    version: u64,
    created_at: &mut HashMap<(String, String), Instant>,
    latencies: &mut Vec<f64>,
) {
    if applied_at(w, version)
        && let Some(at) = created_at.remove(&(w.namespace_str().to_owned(), w.name().to_owned()))
    {
        latencies.push(at.elapsed().as_secs_f64() * 1000.0);
    }
}

fn drain(watch: &mut ocm_ce_work::store::WatchStream, statuses: &mut u64, mut f: impl FnMut(&ManifestWork)) {
    while let Some(Some(ev)) = futures::FutureExt::now_or_never(watch.next()) {
        count(&ev, statuses);
        for w in changed(&ev) {
            f(w);
        }
    }
}

async fn next_before(watch: &mut ocm_ce_work::store::WatchStream, deadline: Instant) -> Result<WatchEvent> {
    match tokio::time::timeout_at(deadline.into(), watch.next()).await {
        Ok(Some(ev)) => Ok(ev),
        Ok(None) => bail!("the source's store closed"),
        Err(_) => bail!("timed out"),
    }
}
