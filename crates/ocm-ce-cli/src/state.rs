//! The source's works between invocations of `ocm-ce source`: an embedded SQLite database
//! (`<state-dir>/<source-id>.db`). Every change of the source's store is written in its own
//! transaction, so the file always holds a consistent set of works.

use std::path::Path;

use anyhow::{Context, Result};
use ocm_ce_work::ManifestWork;
use ocm_ce_work::store::WatchEvent;
use rusqlite::{Connection, params};

/// The database of one source.
#[derive(Debug)]
pub(crate) struct StateDb {
    conn: Connection,
}

impl StateDb {
    /// Opens (or creates) the database for `source_id` under `dir`.
    pub(crate) fn open(dir: &Path, source_id: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the state directory {}", dir.display()))?;
        let path = dir.join(format!("{source_id}.db"));
        let conn = Connection::open(&path).with_context(|| format!("opening the state database {}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS works (
                 namespace TEXT NOT NULL,
                 name TEXT NOT NULL,
                 uid TEXT NOT NULL,
                 body TEXT NOT NULL,
                 PRIMARY KEY (namespace, name)
             );",
        )
        .with_context(|| format!("initialising the state database {}", path.display()))?;
        Ok(Self { conn })
    }

    /// Every stored work.
    pub(crate) fn load(&self) -> Result<Vec<ManifestWork>> {
        let mut stmt = self.conn.prepare("SELECT body FROM works ORDER BY namespace, name")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut works = Vec::new();
        for body in rows {
            let body = body?;
            works.push(serde_json::from_str(&body).context("a stored work is not valid JSON")?);
        }
        Ok(works)
    }

    /// Applies one change of the source's store.
    pub(crate) fn apply(&mut self, event: &WatchEvent) -> Result<()> {
        self.apply_all(std::slice::from_ref(event))
    }

    /// Applies changes of the source's store in order, in one transaction.
    pub(crate) fn apply_all(&mut self, events: &[WatchEvent]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for event in events {
            match event {
                WatchEvent::Added(w) | WatchEvent::Modified(w) => {
                    tx.execute(
                        "INSERT INTO works (namespace, name, uid, body) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(namespace, name) DO UPDATE SET uid = excluded.uid, body = excluded.body",
                        params![w.namespace_str(), w.name(), w.uid_str(), serde_json::to_string(&**w)?],
                    )?;
                }
                WatchEvent::Deleted(w) => {
                    tx.execute(
                        "DELETE FROM works WHERE namespace = ?1 AND name = ?2",
                        params![w.namespace_str(), w.name()],
                    )?;
                }
                WatchEvent::Relisted(all) => {
                    tx.execute("DELETE FROM works", [])?;
                    for w in all {
                        tx.execute(
                            "INSERT INTO works (namespace, name, uid, body) VALUES (?1, ?2, ?3, ?4)",
                            params![w.namespace_str(), w.name(), w.uid_str(), serde_json::to_string(&**w)?],
                        )?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = StateDb::open(dir.path(), "source1").unwrap();
        let mut w = ManifestWork::new("cluster1", "w1", Vec::new());
        w.metadata.uid = Some("u1".into());
        let other = ManifestWork::new("cluster1", "w2", Vec::new());
        db.apply(&WatchEvent::Added(std::sync::Arc::new(w.clone()))).unwrap();
        w.metadata.resource_version = Some("2".into());
        db.apply_all(&[
            WatchEvent::Modified(std::sync::Arc::new(w.clone())),
            WatchEvent::Added(std::sync::Arc::new(other.clone())),
        ])
        .unwrap();
        drop(db);
        let mut db = StateDb::open(dir.path(), "source1").unwrap();
        assert_eq!(db.load().unwrap(), vec![w, other.clone()]);
        db.apply(&WatchEvent::Deleted(std::sync::Arc::new(other))).unwrap();
        assert_eq!(db.load().unwrap().len(), 1);
    }
}
