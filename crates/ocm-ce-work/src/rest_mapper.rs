//! Resolving an object's kind to its resource, for the manifests codec (Go `meta.RESTMapper`).

use std::collections::HashMap;

/// Maps a group/version/kind to its resource (plural).
pub trait RestMapper: Send + Sync {
    /// The resource of `kind` in `group`/`version`, or `None` when unknown.
    fn resource_for(&self, group: &str, version: &str, kind: &str) -> Option<String>;
}

/// A fixed table of kinds, e.g. for tests or agents that handle a known set of kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticRestMapper {
    entries: HashMap<(String, String, String), String>,
}

impl StaticRestMapper {
    /// An empty mapper.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `kind` of `group`/`version` served as `resource`.
    #[must_use]
    pub fn with(mut self, group: &str, version: &str, kind: &str, resource: &str) -> Self {
        self.entries.insert(
            (group.to_owned(), version.to_owned(), kind.to_owned()),
            resource.to_owned(),
        );
        self
    }
}

impl RestMapper for StaticRestMapper {
    fn resource_for(&self, group: &str, version: &str, kind: &str) -> Option<String> {
        self.entries
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
            .cloned()
    }
}
