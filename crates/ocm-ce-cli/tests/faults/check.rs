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

use serde_json::Value;

use super::system::System;

/// The fields of a work the invariant looks at, read as plain JSON (the suite's own build is
/// unoptimised: parsing thousands of records into typed works and hashing their statuses
/// would take seconds per check).
struct Work {
    namespace: String,
    name: String,
    uid: String,
    version: String,
    deleting: bool,
    manifests: Value,
    status: Value,
}

impl Work {
    fn from_json(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let meta = &v["metadata"];
        let s = |x: &Value| x.as_str().unwrap_or_default().to_owned();
        Ok(Self {
            namespace: s(&meta["namespace"]),
            name: s(&meta["name"]),
            uid: s(&meta["uid"]),
            version: s(&meta["resourceVersion"]),
            deleting: !meta["deletionTimestamp"].is_null(),
            manifests: v["spec"]["workload"]["manifests"].clone(),
            status: v["status"].clone(),
        })
    }

    fn applied(&self) -> bool {
        self.status["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Applied" && c["status"] == "True"))
    }
}

/// The works in the source's database, by (namespace, name).
fn source_works(db: &Path) -> Result<BTreeMap<(String, String), Work>, String> {
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
        let w = Work::from_json(&body.map_err(|e| e.to_string())?).map_err(|e| format!("a stored work: {e}"))?;
        out.insert((w.namespace.clone(), w.name.clone()), w);
    }
    Ok(out)
}

/// The works an agent recorded, by UID, with the number of manifest files beside each.
fn agent_works(dir: &Path) -> Result<BTreeMap<String, (Work, usize)>, String> {
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
        let w = Work::from_json(&text).map_err(|e| format!("{}: {e}", record.display()))?;
        let files = std::fs::read_dir(entry.path())
            .map(|d| {
                d.flatten()
                    .filter(|f| f.file_name().to_string_lossy().ends_with(".yaml"))
                    .count()
            })
            .unwrap_or(0);
        out.insert(w.uid.clone(), (w, files));
    }
    Ok(out)
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
            Some(w) if w.deleting => problems.push(format!("{}/{}: deleting at the source", key.0, key.1)),
            Some(w) if w.manifests != Value::Array(want.manifests.clone()) => {
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
    let uids: std::collections::HashSet<&str> = source.values().map(|w| w.uid.as_str()).collect();
    for cluster in &sys.checked {
        let agent = agent_works(&sys.path("apply").join(cluster))?;
        // 2. and 3.: applied with the same content, the agent's status at the source
        for ((ns, name), w) in source.iter().filter(|((ns, _), _)| ns == cluster) {
            let Some((a, files)) = agent.get(&w.uid) else {
                problems.push(format!("{ns}/{name}: not applied by the agent"));
                continue;
            };
            if a.version != w.version {
                problems.push(format!(
                    "{ns}/{name}: the agent has version {}, the source {}",
                    a.version, w.version
                ));
            } else if a.manifests != w.manifests {
                problems.push(format!("{ns}/{name}: the agent has other manifests"));
            } else if Some(*files) != a.manifests.as_array().map(Vec::len) {
                problems.push(format!("{ns}/{name}: {files} manifest files on disk"));
            }
            if !a.applied() {
                problems.push(format!("{ns}/{name}: the agent has not reported it Applied"));
            } else if a.status != w.status {
                problems.push(format!(
                    "{ns}/{name}: the source does not have the agent's latest status"
                ));
            }
        }
        // 4. nothing the source does not hold
        for (uid, (a, _)) in &agent {
            if !uids.contains(uid.as_str()) {
                problems.push(format!(
                    "{}/{}: applied by the agent but not at the source",
                    a.namespace, a.name
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
