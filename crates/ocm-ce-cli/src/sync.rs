//! `ocm-ce source sync --dir DIR`: a long-running source that keeps its works equal to the
//! ManifestWork files in a directory (GitOps style). A file added or changed creates or
//! updates its works, a work whose file (or document) is gone is deleted, and the source's
//! state — specs and the statuses its agents report — is kept in its state database, so a
//! restarted `sync` carries on where it stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use futures::StreamExt;
use ocm_ce_client::Transport;
use ocm_ce_work::ManifestWork;
use ocm_ce_work::client::SourceWorkClient;
use ocm_ce_work::selector::ListParams;
use ocm_ce_work::store::WatchStream;

use crate::commands::{Shutdown, Upserted, persist_pending, read_works, upsert};
use crate::state::StateDb;

/// One file of the directory, as last read.
struct Read {
    modified: Option<SystemTime>,
    len: u64,
    works: Vec<ManifestWork>,
}

/// The directory's files and the problems already reported (each once, until it changes).
#[derive(Default)]
struct Desired {
    files: HashMap<PathBuf, Read>,
    reported: HashSet<String>,
}

fn is_work_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

impl Desired {
    /// Reads the files that changed since the last scan; an unreadable file keeps its last good
    /// content (a file being written), and is reported once. True when anything changed.
    fn scan(&mut self, dir: &Path) -> Result<bool> {
        let mut seen = HashSet::new();
        let mut changed = false;
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if !is_work_file(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            seen.insert(path.clone());
            let (modified, len) = (meta.modified().ok(), meta.len());
            if self
                .files
                .get(&path)
                .is_some_and(|r| r.modified == modified && r.len == len)
            {
                continue;
            }
            match read_works(&path) {
                Ok(works) => {
                    self.files.insert(path, Read { modified, len, works });
                    changed = true;
                }
                Err(e) => {
                    if self.reported.insert(format!("{}:{modified:?}:{len}", path.display())) {
                        tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "skipping a file that does not read as ManifestWorks");
                    }
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| seen.contains(path));
        Ok(changed || self.files.len() != before)
    }

    /// The works of all files by (namespace, name); a work defined twice is reported once and
    /// the last definition read counts.
    fn works(&mut self) -> BTreeMap<(&str, &str), &ManifestWork> {
        let mut desired = BTreeMap::new();
        for (path, read) in &self.files {
            for w in &read.works {
                if desired.insert((w.namespace_str(), w.name()), w).is_some()
                    && self.reported.insert(format!("dup:{}/{}", w.namespace_str(), w.name()))
                {
                    tracing::warn!(file = %path.display(), work = %format!("{}/{}", w.namespace_str(), w.name()), "a work is defined twice; the last definition read counts");
                }
            }
        }
        desired
    }
}

/// What one reconciliation left to do later.
#[derive(Debug, Default)]
struct Outcome {
    /// Works waiting for a deletion to complete before they are created again.
    deferred: bool,
}

/// Brings the source's works to the directory's: creates, updates, deletes. A work that cannot
/// be created (e.g. its resource id collides with another's) is reported once and skipped.
async fn reconcile<Tr: Transport>(
    client: &SourceWorkClient<Tr>,
    desired: &BTreeMap<(&str, &str), &ManifestWork>,
    reported: &mut HashSet<String>,
) -> Outcome {
    let mut outcome = Outcome::default();
    for (&(ns, name), work) in desired {
        if client.get(ns, name).is_ok_and(|w| w.is_deleting()) {
            // Created again once the deletion completed.
            outcome.deferred = true;
            continue;
        }
        match upsert(client, (*work).clone()).await {
            Ok(Upserted::Unchanged(_)) => {}
            Ok(done) => tracing::info!(work = %format!("{ns}/{name}"), ?done, "synced"),
            Err(e) => {
                if reported.insert(format!("err:{ns}/{name}:{e:#}")) {
                    tracing::warn!(work = %format!("{ns}/{name}"), error = %format!("{e:#}"), "cannot sync a work");
                }
            }
        }
    }
    for work in client.list("", &ListParams::default()) {
        if work.is_deleting() || desired.contains_key(&(work.namespace_str(), work.name())) {
            continue;
        }
        match client.delete(work.namespace_str(), work.name()).await {
            Ok(()) => {
                tracing::info!(work = %format!("{}/{}", work.namespace_str(), work.name()), "deleted (its file is gone)")
            }
            Err(e) => {
                tracing::warn!(work = %format!("{}/{}", work.namespace_str(), work.name()), error = %format!("{e:#}"), "cannot delete a work")
            }
        }
    }
    outcome
}

/// Every work is compared with its file at least this often, even when no file changed.
const FULL_RECONCILE: Duration = Duration::from_secs(10);

/// Runs the sync loop until SIGINT/SIGTERM: scans `dir` every `interval`, persists every store
/// change to `db`.
pub(crate) async fn run<Tr: Transport>(
    client: &SourceWorkClient<Tr>,
    db: &mut StateDb,
    watch: &mut WatchStream,
    dir: &Path,
    interval: Duration,
    shutdown: &mut Shutdown,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "source {} syncing the works in {} (every {interval:?})",
        client.source_id(),
        dir.display()
    );
    let mut files = Desired::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Reconcile when a file changed, while a recreation waits for a deletion, and now and then.
    let mut due = true;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                match files.scan(dir) {
                    Ok(changed) => due |= changed || last.elapsed() >= FULL_RECONCILE,
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot scan the works directory"),
                }
                if due {
                    let mut reported = std::mem::take(&mut files.reported);
                    let desired = files.works();
                    let outcome = reconcile(client, &desired, &mut reported).await;
                    files.reported.extend(reported);
                    due = outcome.deferred;
                    last = tokio::time::Instant::now();
                }
                persist_pending(watch, db)?;
            }
            ev = watch.next() => match ev {
                Some(ev) => {
                    db.apply(&ev)?;
                    persist_pending(watch, db)?;
                }
                None => return Ok(()),
            },
            () = shutdown.recv() => return Ok(()),
        }
    }
}
