//! What `ocm-ce agent` does with a work: write its manifests as YAML files under
//! `DIR/<cluster>/<work-uid>/` (a real, inspectable effect), report `Applied` / `Available`
//! with per-manifest status and status feedback, and on deletion remove the files and the
//! finalizer so the agent client reports `Deleted`.
//!
//! Next to the manifests, `.work.json` records the work as the agent holds it (spec, finalizers,
//! the status it reported). A restarted agent starts from these records, so a deletion made
//! while it was down completes at its first resync. A work that cannot be applied (a file
//! system error) is retried with back-off until it can.
//!
//! [`Applier::in_memory`] applies nowhere (no files, no records) and remembers a digest of what
//! it applied: the same finalizer, statuses and deletions, so that `bench` measures the protocol
//! and the agent rather than a file system or a model of a cluster's storage.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use futures::{FutureExt as _, StreamExt};
use ocm_ce_client::Transport;
use ocm_ce_work::api::{MANIFEST_WORK_FINALIZER, condition, condition_type};
use ocm_ce_work::client::AgentWorkClient;
use ocm_ce_work::conditions::set_status_condition;
use ocm_ce_work::store::WatchEvent;
use ocm_ce_work::{
    FeedbackValue, FieldValue, Manifest, ManifestCondition, ManifestResourceMeta, ManifestWork, ManifestWorkStatus,
    StatusFeedbackResult, ValueType,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio_util::time::{DelayQueue, delay_queue};

/// The record of a work in its directory (a dot file, beside the manifests).
const RECORD: &str = ".work.json";
/// First retry delay of a work that failed to apply (doubled per failure up to 30 s).
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The applier's per-work maps, keyed by work UIDs and names and read several times per watch
/// event: hashed with foldhash (seeded per process) rather than SipHash.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Applies works to a directory (or to memory).
#[derive(Debug)]
pub(crate) struct Applier {
    /// The directory; `None` applies to memory.
    root: Option<PathBuf>,
    /// A digest of the manifests last applied per work UID, so our own status patches do not
    /// rewrite the files while a changed spec always does, versioned or not (`"0"`). In memory,
    /// holding a digest is what "applied" means: the manifests themselves go nowhere, so what a
    /// benchmark measures is the agent, not a model of a cluster's storage.
    written: Map<String, Digest>,
    /// A digest of the last record written per work UID.
    recorded: Map<String, Digest>,
    /// Per work UID, the [`trigger_key`] of the version last brought to its state: a watch
    /// event of a version with the same key (our own status and finalizer reports, or an
    /// unchanged work in a `Relisted` snapshot) needs no work.
    seen: Map<String, u64>,
    /// Works that failed to apply: how often in a row, and their pending retry.
    failures: Map<String, (u32, Option<delay_queue::Key>)>,
    retries: DelayQueue<String>,
}

fn file_name(ordinal: usize, manifest: &Value) -> String {
    let kind = manifest["kind"].as_str().unwrap_or("object").to_lowercase();
    let name = manifest["metadata"]["name"].as_str().unwrap_or("unnamed");
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{ordinal:02}-{kind}-{safe}.yaml")
}

/// The status an agent reports for a work whose manifests were written.
pub(crate) fn applied_status(work: &ManifestWork, manifests: &[Value]) -> ManifestWorkStatus {
    let now = Utc::now();
    let mut status = work.status.clone();
    // Agent-side works carry no generation (Go v0.15.0), so the applied resource version is
    // reported as the observed generation: it tells the source which spec was applied.
    let generation = work.resource_version_str().parse::<i64>().ok().filter(|g| *g > 0);
    for (ty, reason, message) in [
        (
            condition_type::APPLIED,
            "AppliedManifestWorkComplete",
            "Apply manifest work complete",
        ),
        (
            condition_type::AVAILABLE,
            "ResourcesAvailable",
            "All resources are available",
        ),
    ] {
        set_status_condition(
            &mut status.conditions,
            condition(ty, "True", reason, message, None),
            now,
        );
        if let Some(c) = status.conditions.iter_mut().find(|c| c.type_ == ty) {
            c.observed_generation = generation;
        }
    }
    let previous = std::mem::take(&mut status.resource_status.manifests);
    status.resource_status.manifests = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (group, version) = match m["apiVersion"].as_str().unwrap_or("v1").split_once('/') {
                Some((g, v)) => (g.to_owned(), v.to_owned()),
                None => (String::new(), m["apiVersion"].as_str().unwrap_or("v1").to_owned()),
            };
            let kind = m["kind"].as_str().unwrap_or_default().to_owned();
            let meta = ManifestResourceMeta {
                ordinal: i32::try_from(i).unwrap_or(i32::MAX),
                group,
                version,
                resource: format!("{}s", kind.to_lowercase()),
                kind: kind.clone(),
                name: m["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                namespace: m["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
            };
            let mut conditions = previous
                .iter()
                .find(|p| p.resource_meta == meta)
                .and_then(|p| p.conditions.clone())
                .unwrap_or_default();
            set_status_condition(
                &mut conditions,
                condition(
                    condition_type::APPLIED,
                    "True",
                    "AppliedManifestComplete",
                    "Apply manifest complete",
                    None,
                ),
                now,
            );
            set_status_condition(
                &mut conditions,
                condition(
                    condition_type::AVAILABLE,
                    "True",
                    "ResourceAvailable",
                    "Resource is available",
                    None,
                ),
                now,
            );
            let values = if kind == "Deployment" {
                let replicas = m["spec"]["replicas"].as_i64().unwrap_or(1);
                ["Replicas", "ReadyReplicas", "AvailableReplicas"]
                    .iter()
                    .map(|name| FeedbackValue {
                        name: (*name).to_owned(),
                        field_value: FieldValue {
                            type_: ValueType::Integer,
                            integer: Some(replicas),
                            ..FieldValue::default()
                        },
                    })
                    .collect()
            } else {
                Vec::new()
            };
            ManifestCondition {
                resource_meta: meta,
                status_feedback: StatusFeedbackResult { values },
                conditions: Some(conditions),
            }
        })
        .collect();
    status
}

impl Applier {
    /// An applier writing under `root/<cluster>/`.
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_root(Some(root.into()))
    }

    /// An applier that writes nothing: the statuses, finalizers and deletions of the directory
    /// applier, without touching the file system.
    pub(crate) fn in_memory() -> Self {
        Self::with_root(None)
    }

    fn with_root(root: Option<PathBuf>) -> Self {
        Self {
            root,
            written: Map::default(),
            seen: Map::default(),
            recorded: Map::default(),
            failures: Map::default(),
            retries: DelayQueue::new(),
        }
    }

    /// The works recorded under `root/<cluster>/` by an earlier run (unreadable records are
    /// reported and skipped: their work comes back through the spec resync like a new one).
    pub(crate) fn recorded(&mut self, cluster: &str) -> Result<Vec<ManifestWork>> {
        let Some(root) = &self.root else {
            return Ok(Vec::new());
        };
        let dir = root.join(cluster);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut works = Vec::new();
        for entry in entries {
            let path = entry?.path().join(RECORD);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            match serde_json::from_str::<ManifestWork>(&text) {
                Ok(work) if work.namespace_str() == cluster && !work.uid_str().is_empty() => {
                    self.recorded.insert(work.uid_str().to_owned(), digest([text.as_str()]));
                    works.push(work);
                }
                Ok(_) => tracing::warn!(record = %path.display(), "ignoring a record of another cluster"),
                Err(e) => tracing::warn!(record = %path.display(), error = %e, "ignoring an unreadable record"),
            }
        }
        Ok(works)
    }

    /// Writes the record of `work` when it changed.
    fn record(&mut self, work: &ManifestWork) -> Result<()> {
        let Some(dir) = self.work_dir(work) else {
            return Ok(());
        };
        let text = serde_json::to_string(work).context("rendering the work record")?;
        let key = digest([text.as_str()]);
        if self.recorded.get(work.uid_str()) == Some(&key) {
            return Ok(());
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&dir.join(RECORD), text.as_bytes())?;
        self.recorded.insert(work.uid_str().to_owned(), key);
        Ok(())
    }

    /// The directory of one work (`None` in memory).
    fn work_dir(&self, work: &ManifestWork) -> Option<PathBuf> {
        Some(self.root.as_ref()?.join(work.namespace_str()).join(work.uid_str()))
    }

    /// True when the manifests of `work` are where they were applied.
    fn present(&self, work: &ManifestWork) -> bool {
        match self.work_dir(work) {
            Some(dir) => dir.exists(),
            None => self.written.contains_key(work.uid_str()),
        }
    }

    fn remove_dir(&mut self, work: &ManifestWork) -> Result<()> {
        self.written.remove(work.uid_str());
        self.recorded.remove(work.uid_str());
        let Some(dir) = self.work_dir(work) else {
            return Ok(());
        };
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
        }
    }

    fn write_manifests(&mut self, work: &ManifestWork, manifests: &[Value], key: Digest) -> Result<()> {
        let Some(dir) = self.work_dir(work) else {
            self.written.insert(work.uid_str().to_owned(), key);
            return Ok(());
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let wanted: Vec<String> = manifests.iter().enumerate().map(|(i, m)| file_name(i, m)).collect();
        for (name, manifest) in wanted.iter().zip(manifests) {
            let yaml = serde_saphyr::to_string(manifest).context("rendering a manifest as YAML")?;
            write_atomic(&dir.join(name), yaml.as_bytes())?;
        }
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            if entry.file_name() != RECORD && !wanted.iter().any(|w| entry.file_name() == w.as_str()) {
                std::fs::remove_file(entry.path()).ok();
            }
        }
        self.written.insert(work.uid_str().to_owned(), key);
        Ok(())
    }

    /// Brings one work to its desired state.
    pub(crate) async fn reconcile<Tr: Transport>(
        &mut self,
        agent: &AgentWorkClient<Tr>,
        work: &ManifestWork,
    ) -> Result<()> {
        let uid = work.name().to_owned();
        if work.is_deleting() {
            self.remove_dir(work)?;
            if !work.finalizers().is_empty() {
                agent.set_finalizers(&uid, Vec::new()).await?;
            }
            return Ok(());
        }
        if !work.finalizers().iter().any(|f| f == MANIFEST_WORK_FINALIZER) {
            let mut finalizers = work.finalizers().to_vec();
            finalizers.push(MANIFEST_WORK_FINALIZER.to_owned());
            agent.set_finalizers(&uid, finalizers).await?;
            return Ok(());
        }
        let manifests: Vec<Value> = work
            .spec
            .workload
            .manifests
            .iter()
            .map(|m| m.to_value())
            .collect::<Result<_, _>>()
            .context("a manifest is not JSON")?;
        let key = digest(work.spec.workload.manifests.iter().map(Manifest::raw));
        if self.written.get(work.uid_str()) != Some(&key) || !self.present(work) {
            self.write_manifests(work, &manifests, key)?;
        }
        let desired = applied_status(work, &manifests);
        if desired == work.status {
            // Up to date: the record keeps what this agent holds and reported.
            return self.record(work);
        }
        let reported = agent.update_status(&uid, desired).await?;
        self.record(&reported)
    }

    /// Applies every work the agent holds and every change, until `shutdown` resolves.
    ///
    /// Level-triggered: a watch event only says which work to look at; what is applied is that
    /// work's latest state in the store (or its absence), never the event's snapshot, so a
    /// backlog of events can never bring back a work that was deleted meanwhile.
    pub(crate) async fn run<Tr: Transport>(
        &mut self,
        agent: &AgentWorkClient<Tr>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut watch = agent.watch();
        for w in agent.list(&Default::default()) {
            self.report(agent, &w).await;
        }
        self.remove_unknown(agent)?;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                ev = watch.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    // Take every event already waiting as well: the channel then lets go of the
                    // work versions they hold, and each work is brought to its latest state once.
                    let mut batch = Batch::default();
                    batch.add(ev);
                    while batch.works.len() < MAX_BATCH {
                        match watch.next().now_or_never() {
                            Some(Some(ev)) => batch.add(ev),
                            Some(None) | None => break,
                        }
                    }
                    for w in batch.works.values() {
                        self.sync(agent, w).await?;
                    }
                    if batch.relisted {
                        self.remove_unknown(agent)?;
                    }
                }
                Some(expired) = self.retries.next(), if !self.retries.is_empty() => {
                    let uid = expired.into_inner();
                    if let Some((_, key)) = self.failures.get_mut(&uid) {
                        *key = None;
                    }
                    if let Ok(w) = agent.get(&uid) {
                        self.report(agent, &w).await;
                    }
                }
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    /// Brings `work` to the state the store has for it now: applied, or removed when the
    /// store no longer holds it.
    async fn sync<Tr: Transport>(&mut self, agent: &AgentWorkClient<Tr>, work: &ManifestWork) -> Result<()> {
        match agent.get(work.name()) {
            Ok(latest) => {
                let key = trigger_key(&latest);
                // Unchanged since it was last brought to its state; a work waiting for a retry
                // is left to its retry.
                if self.seen.get(latest.uid_str()) != Some(&key) {
                    self.report(agent, &latest).await;
                }
            }
            Err(_) => {
                self.succeeded(work.uid_str());
                self.seen.remove(work.uid_str());
                self.remove_dir(work)?;
            }
        }
        Ok(())
    }

    /// Removes the directories of works the agent does not hold (deleted while a watch lagged,
    /// or while the agent was down and the records were not read).
    fn remove_unknown<Tr: Transport>(&mut self, agent: &AgentWorkClient<Tr>) -> Result<()> {
        let Some(root) = &self.root else {
            self.written.retain(|uid, _| agent.get(uid).is_ok());
            self.seen.retain(|uid, _| agent.get(uid).is_ok());
            return Ok(());
        };
        let dir = root.join(agent.cluster_name());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if agent.get(&uid).is_err() {
                self.written.remove(&uid);
                self.seen.remove(&uid);
                self.recorded.remove(&uid);
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    async fn report<Tr: Transport>(&mut self, agent: &AgentWorkClient<Tr>, work: &ManifestWork) {
        match self.reconcile(agent, work).await {
            Ok(()) => {
                self.succeeded(work.uid_str());
                self.seen.insert(work.uid_str().to_owned(), trigger_key(work));
            }
            // The spec moved on while we applied: its own watch event follows.
            Err(e)
                if e.downcast_ref::<ocm_ce_work::Error>()
                    .is_some_and(ocm_ce_work::Error::is_conflict) => {}
            Err(e) => {
                let (failures, key) = self.failures.entry(work.uid_str().to_owned()).or_default();
                *failures += 1;
                let delay = FIRST_RETRY
                    .saturating_mul(1 << (*failures - 1).min(6))
                    .min(Duration::from_secs(30));
                tracing::warn!(work = work.uid_str(), error = %format!("{e:#}"), ?delay, "failed to apply a work; retrying");
                match key {
                    Some(k) => self.retries.reset(k, delay),
                    None => *key = Some(self.retries.insert(work.uid_str().to_owned(), delay)),
                }
            }
        }
    }

    /// Forgets the failures of work `uid` (and its pending retry).
    fn succeeded(&mut self, uid: &str) {
        if let Some((_, Some(key))) = self.failures.remove(uid) {
            self.retries.remove(&key);
        }
    }
}

/// The most works [`Applier::run`] takes from its watch before it applies them.
const MAX_BATCH: usize = 1024;

/// Watch events taken together: the last version seen of each work they name.
#[derive(Default)]
struct Batch {
    works: Map<String, Arc<ManifestWork>>,
    /// A `Relisted` was among them: works the agent no longer holds are removed afterwards.
    relisted: bool,
}

impl Batch {
    fn add(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Added(w) | WatchEvent::Modified(w) | WatchEvent::Deleted(w) => {
                self.works.insert(w.name().to_owned(), w);
            }
            WatchEvent::Relisted(all) => {
                self.relisted = true;
                for w in all {
                    self.works.insert(w.name().to_owned(), w);
                }
            }
        }
    }
}

/// What makes a version of a work worth applying: its resource version, deletion, finalizers
/// and manifests (not the status this applier reports).
fn trigger_key(work: &ManifestWork) -> u64 {
    let mut h = DefaultHasher::new();
    work.resource_version_str().hash(&mut h);
    work.is_deleting().hash(&mut h);
    work.finalizers().hash(&mut h);
    for m in &work.spec.workload.manifests {
        m.raw().hash(&mut h);
    }
    h.finish()
}

/// A SHA-256 digest of what was applied or recorded.
type Digest = [u8; 32];

/// The digest of `parts` (each one terminated, so a boundary cannot move unnoticed).
fn digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> Digest {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// Writes `data` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))
}
