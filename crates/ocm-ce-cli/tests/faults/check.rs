//! The invariant, read from both sides' own state — the source's database and the records and
//! files each agent wrote — never from what a client told the test:
//!
//! 1. the source holds exactly the works of its directory (none left deleting), with their
//!    manifests;
//! 2. every work the source holds is applied by its cluster's agent with the same resource
//!    version and manifests, and the manifest files are on disk;
//! 3. every applied work's latest status (the agent's record) is the status at the source,
//!    and it says `Applied`;
//! 4. every deleted work is gone on both sides: no agent holds a work the source does not.

use std::collections::BTreeMap;
use std::path::Path;

use ocm_ce_work::ManifestWork;
use ocm_ce_work::manifest_work_status_hash;

use super::system::System;

/// The works in the source's database, by (namespace, name).
fn source_works(db: &Path) -> Result<BTreeMap<(String, String), ManifestWork>, String> {
    if !db.exists() {
        return Err("the source has no database yet".into());
    }
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("opening the source database: {e}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(2)).ok();
    let mut stmt = conn
        .prepare("SELECT body FROM works")
        .map_err(|e| format!("reading the source database: {e}"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| format!("reading the source database: {e}"))?;
    let mut out = BTreeMap::new();
    for body in rows {
        let body = body.map_err(|e| e.to_string())?;
        let w: ManifestWork = serde_json::from_str(&body).map_err(|e| format!("a stored work: {e}"))?;
        out.insert((w.namespace().to_owned(), w.name().to_owned()), w);
    }
    Ok(out)
}

/// The works an agent recorded, by UID, with the number of manifest files beside each.
fn agent_works(dir: &Path) -> Result<BTreeMap<String, (ManifestWork, usize)>, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let record = entry.path().join(".work.json");
        let Ok(text) = std::fs::read_to_string(&record) else {
            // A directory being created or removed right now.
            continue;
        };
        let w: ManifestWork = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", record.display()))?;
        let files = std::fs::read_dir(entry.path())
            .map(|d| {
                d.flatten()
                    .filter(|f| f.file_name().to_string_lossy().ends_with(".yaml"))
                    .count()
            })
            .unwrap_or(0);
        out.insert(w.uid().to_owned(), (w, files));
    }
    Ok(out)
}

fn manifests(w: &ManifestWork) -> Vec<serde_json::Value> {
    w.spec
        .workload
        .manifests
        .iter()
        .map(|m| m.to_value().unwrap_or_default())
        .collect()
}

fn applied(w: &ManifestWork) -> bool {
    w.status
        .conditions
        .iter()
        .any(|c| c.type_ == "Applied" && c.status == "True")
}

/// `Ok` when the invariant holds; otherwise the first differences found.
pub fn check(sys: &System) -> Result<(), String> {
    let mut problems = Vec::new();
    let source: BTreeMap<_, _> = source_works(&sys.db_path())?
        .into_iter()
        .filter(|((ns, _), _)| sys.checked.contains(ns))
        .collect();
    // 1. the source holds exactly the directory's works
    for (key, want) in sys.desired.iter().filter(|((ns, _), _)| sys.checked.contains(ns)) {
        match source.get(key) {
            None => problems.push(format!("{}/{}: not at the source", key.0, key.1)),
            Some(w) if w.is_deleting() => problems.push(format!("{}/{}: deleting at the source", key.0, key.1)),
            Some(w) if manifests(w) != want.manifests => {
                problems.push(format!("{}/{}: the source has other manifests", key.0, key.1));
            }
            Some(_) => {}
        }
    }
    for key in source.keys() {
        if !sys.desired.contains_key(key) {
            problems.push(format!("{}/{}: still at the source (deleted or refused)", key.0, key.1));
        }
    }
    for cluster in &sys.checked {
        let agent = agent_works(&sys.path("apply").join(cluster))?;
        // 2. and 3.: applied with the same content, the agent's status at the source
        for ((ns, name), w) in source.iter().filter(|((ns, _), _)| ns == cluster) {
            let Some((a, files)) = agent.get(w.uid()) else {
                problems.push(format!("{ns}/{name}: not applied by the agent"));
                continue;
            };
            if a.resource_version() != w.resource_version() {
                problems.push(format!(
                    "{ns}/{name}: the agent has version {}, the source {}",
                    a.resource_version(),
                    w.resource_version()
                ));
            } else if manifests(a) != manifests(w) {
                problems.push(format!("{ns}/{name}: the agent has other manifests"));
            } else if *files != a.spec.workload.manifests.len() {
                problems.push(format!("{ns}/{name}: {files} manifest files on disk"));
            }
            if !applied(a) {
                problems.push(format!("{ns}/{name}: the agent has not reported it Applied"));
            } else if manifest_work_status_hash(a).ok() != manifest_work_status_hash(w).ok() {
                problems.push(format!(
                    "{ns}/{name}: the source does not have the agent's latest status"
                ));
            }
        }
        // 4. nothing the source does not hold
        for (uid, (a, _)) in &agent {
            if !source.values().any(|w| w.uid() == uid) {
                problems.push(format!(
                    "{}/{}: applied by the agent but not at the source",
                    a.namespace(),
                    a.name()
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    problems.truncate(8);
    Err(format!("{n} problems, e.g. {}", problems.join("; ")))
}
