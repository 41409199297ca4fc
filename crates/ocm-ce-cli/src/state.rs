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

    /// Stores or replaces one work.
    pub(crate) fn put(&mut self, work: &ManifestWork) -> Result<()> {
        let body = serde_json::to_string(work)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO works (namespace, name, uid, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(namespace, name) DO UPDATE SET uid = excluded.uid, body = excluded.body",
            params![work.namespace(), work.name(), work.uid(), body],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes one work.
    pub(crate) fn delete(&mut self, namespace: &str, name: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM works WHERE namespace = ?1 AND name = ?2",
            params![namespace, name],
        )?;
        Ok(())
    }

    /// Replaces the whole content in one transaction.
    pub(crate) fn replace_all(&mut self, works: &[std::sync::Arc<ManifestWork>]) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM works", [])?;
        for w in works {
            tx.execute(
                "INSERT INTO works (namespace, name, uid, body) VALUES (?1, ?2, ?3, ?4)",
                params![w.namespace(), w.name(), w.uid(), serde_json::to_string(&**w)?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Applies one change of the source's store.
    pub(crate) fn apply(&mut self, event: &WatchEvent) -> Result<()> {
        match event {
            WatchEvent::Added(w) | WatchEvent::Modified(w) => self.put(w),
            WatchEvent::Deleted(w) => self.delete(w.namespace(), w.name()),
            WatchEvent::Relisted(all) => self.replace_all(all),
        }
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
        db.put(&w).unwrap();
        w.metadata.resource_version = Some("2".into());
        db.put(&w).unwrap();
        drop(db);
        let mut db = StateDb::open(dir.path(), "source1").unwrap();
        let loaded = db.load().unwrap();
        assert_eq!(loaded, vec![w]);
        db.delete("cluster1", "w1").unwrap();
        assert!(db.load().unwrap().is_empty());
    }
}
