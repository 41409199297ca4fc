//! The owner index (Go's `manifestWorkByOwner` indexer): owner UID → the works it owns, kept
//! up to date from the work store's watch. Lookups are O(1).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::api::ManifestWork;
use crate::store::WatchEvent;

/// `(namespace, name)` of a work.
pub(super) type WorkKey = (String, String);

/// What the index knows about one owner.
#[derive(Debug)]
pub(super) struct OwnerEntry {
    /// API group of the owner (from its reference's `apiVersion`; `""` for the core group).
    pub(super) group: String,
    /// Kind of the owner.
    pub(super) kind: String,
    /// Name of the owner.
    pub(super) name: String,
    /// The works referencing it.
    pub(super) works: HashSet<WorkKey>,
}

#[derive(Debug, Default)]
pub(super) struct OwnerIndex {
    owners: HashMap<String, OwnerEntry>,
    /// The owner UIDs of each indexed work.
    works: HashMap<WorkKey, Vec<String>>,
}

/// The group of an `apiVersion` (`"apps/v1"` → `"apps"`, `"v1"` → `""`).
pub(super) fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

impl OwnerIndex {
    /// Applies a change of the work store.
    pub(super) fn apply(&mut self, event: &WatchEvent) {
        match event {
            WatchEvent::Added(w) | WatchEvent::Modified(w) => self.upsert(w),
            WatchEvent::Deleted(w) => self.remove(&(w.namespace_str().to_owned(), w.name().to_owned())),
            WatchEvent::Relisted(all) => self.replace(all.iter().map(|w| &**w)),
        }
    }

    /// Replaces the whole content.
    pub(super) fn replace<'a>(&mut self, works: impl IntoIterator<Item = &'a ManifestWork>) {
        *self = Self::default();
        for w in works {
            self.upsert(w);
        }
    }

    /// Indexes `work` under the UIDs of its owner references.
    pub(super) fn upsert(&mut self, work: &ManifestWork) {
        let key = (work.namespace_str().to_owned(), work.name().to_owned());
        let refs = work.metadata.owner_references.as_deref().unwrap_or_default();
        let mut uids: Vec<String> = refs
            .iter()
            .filter(|r| !r.uid.is_empty())
            .map(|r| r.uid.clone())
            .collect();
        uids.sort_unstable();
        uids.dedup();
        if self.works.get(&key).is_some_and(|old| *old == uids) {
            // Most changes are statuses: the owners stay the same.
            return;
        }
        self.remove(&key);
        if uids.is_empty() {
            return;
        }
        for r in refs.iter().filter(|r| !r.uid.is_empty()) {
            let entry = self.owners.entry(r.uid.clone()).or_insert_with(|| OwnerEntry {
                group: group_of(&r.api_version).to_owned(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                works: HashSet::new(),
            });
            entry.works.insert(key.clone());
        }
        self.works.insert(key, uids);
    }

    /// Forgets the work `key`.
    pub(super) fn remove(&mut self, key: &WorkKey) {
        let Some(uids) = self.works.remove(key) else {
            return;
        };
        for uid in uids {
            if let Entry::Occupied(mut e) = self.owners.entry(uid) {
                e.get_mut().works.remove(key);
                if e.get().works.is_empty() {
                    e.remove();
                }
            }
        }
    }

    /// The owner with this UID, if any indexed work references it.
    pub(super) fn owner(&self, uid: &str) -> Option<&OwnerEntry> {
        self.owners.get(uid)
    }

    /// The indexed owners of kind `group`/`kind` (any version), with their UIDs.
    pub(super) fn owners_of_kind<'a>(
        &'a self,
        group: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a OwnerEntry)> + 'a {
        self.owners
            .iter()
            .filter(move |(_, o)| o.group == group && o.kind == kind)
    }

    /// Number of indexed works that have owners.
    pub(super) fn len(&self) -> usize {
        self.works.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    pub(crate) fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("cm-{uid}"),
            uid: uid.into(),
            ..Default::default()
        }
    }

    fn work(name: &str, owners: &[&str]) -> Arc<ManifestWork> {
        let mut w = ManifestWork::new("ns1", name, Vec::new());
        w.metadata.owner_references = Some(owners.iter().map(|u| owner(u)).collect());
        Arc::new(w)
    }

    fn owned_by(index: &OwnerIndex, uid: &str) -> Vec<String> {
        let mut out: Vec<String> = index
            .owner(uid)
            .map(|o| o.works.iter().map(|(ns, n)| format!("{ns}/{n}")).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Go's TestProcessManifestWorkEvent.
    #[test]
    fn adding_and_updating_works_indexes_them_by_owner_uid() {
        let mut index = OwnerIndex::default();
        index.apply(&WatchEvent::Added(work("work1", &["1"])));
        index.apply(&WatchEvent::Added(work("work2", &["1"])));
        index.apply(&WatchEvent::Added(work("work3", &["4"])));
        index.apply(&WatchEvent::Modified(work("work2", &["1", "2"])));
        index.apply(&WatchEvent::Modified(work("work3", &["3"])));
        assert_eq!(owned_by(&index, "1"), ["ns1/work1", "ns1/work2"]);
        assert_eq!(owned_by(&index, "2"), ["ns1/work2"]);
        assert_eq!(owned_by(&index, "3"), ["ns1/work3"]);
        assert!(index.owner("4").is_none(), "an owner no work references is forgotten");
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn deleting_and_relisting_works_updates_the_index() {
        let mut index = OwnerIndex::default();
        index.apply(&WatchEvent::Added(work("work1", &["1"])));
        index.apply(&WatchEvent::Added(work("work2", &["1", "2"])));
        index.apply(&WatchEvent::Deleted(work("work2", &["1", "2"])));
        assert_eq!(owned_by(&index, "1"), ["ns1/work1"]);
        assert!(index.owner("2").is_none());
        index.apply(&WatchEvent::Relisted(vec![work("work9", &["9"])]));
        assert!(index.owner("1").is_none());
        assert_eq!(owned_by(&index, "9"), ["ns1/work9"]);
        index.apply(&WatchEvent::Modified(work("work9", &[])));
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn owners_are_found_by_group_and_kind_whatever_the_version() {
        let mut index = OwnerIndex::default();
        let mut w = ManifestWork::new("ns1", "w", Vec::new());
        w.metadata.owner_references = Some(vec![
            owner("1"),
            OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "d".into(),
                uid: "2".into(),
                ..Default::default()
            },
        ]);
        index.upsert(&w);
        let cms: Vec<&String> = index.owners_of_kind("", "ConfigMap").map(|(uid, _)| uid).collect();
        assert_eq!(cms, ["1"]);
        let deps: Vec<&String> = index.owners_of_kind("apps", "Deployment").map(|(uid, _)| uid).collect();
        assert_eq!(deps, ["2"]);
        assert_eq!(group_of("apps/v1beta1"), "apps");
        assert_eq!(group_of("v1"), "");
    }
}
