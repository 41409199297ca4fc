//! [`Lister`]s over a work [`Store`] for the generic clients (Go `work/{source,agent}/lister`),
//! with O(1) lookups by UID.

use std::sync::Arc;

use ocm_ce_client::{BoxError, Lister};
use ocm_ce_core::ListOptions;

use crate::api::{DATA_TYPE_ANNOTATION, ManifestWork, ORIGINAL_SOURCE_LABEL};
use crate::payload::manifest_bundle_data_type;
use crate::selector::ListParams;
use crate::store::Store;

/// The source's lister: the works of a cluster (`""` = all) for the manifestbundles data type.
/// Like Go's, it ignores the requested source: a source only holds its own works.
#[derive(Debug, Clone)]
pub struct SourceLister {
    store: Store,
}

impl SourceLister {
    /// A lister over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Lister<ManifestWork> for SourceLister {
    fn list(&self, options: &ListOptions) -> Result<Vec<Arc<ManifestWork>>, BoxError> {
        if options.data_type != manifest_bundle_data_type() {
            return Ok(Vec::new());
        }
        Ok(self.store.list(&options.cluster_name, &ListParams::default()))
    }

    fn get(&self, resource_id: &str, options: &ListOptions) -> Result<Option<Arc<ManifestWork>>, BoxError> {
        if options.data_type != manifest_bundle_data_type() {
            return Ok(None);
        }
        Ok(self
            .store
            .get_by_uid(resource_id)
            .filter(|w| options.cluster_name.is_empty() || w.namespace_str() == options.cluster_name))
    }
}

/// The agent's lister: works of the agent's cluster whose originalsource label is the
/// requested source (any when `""`) and whose data type annotation is the requested one.
#[derive(Debug, Clone)]
pub struct AgentLister {
    store: Store,
}

impl AgentLister {
    /// A lister over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Whether agent-side work `w` is of `cluster` (any when `""`), from `source` (any when `""`),
/// and received as `data_type`.
pub(crate) fn agent_matches(w: &ManifestWork, cluster: &str, source: &str, data_type: &str) -> bool {
    (cluster.is_empty() || w.namespace_str() == cluster)
        && (source.is_empty() || w.label(ORIGINAL_SOURCE_LABEL) == Some(source))
        && w.annotation(DATA_TYPE_ANNOTATION) == Some(data_type)
}

fn matches_options(w: &ManifestWork, options: &ListOptions, data_type: &str) -> bool {
    agent_matches(w, &options.cluster_name, &options.source, data_type)
}

impl Lister<ManifestWork> for AgentLister {
    fn list(&self, options: &ListOptions) -> Result<Vec<Arc<ManifestWork>>, BoxError> {
        let data_type = options.data_type.to_string();
        let mut works = self.store.list(&options.cluster_name, &ListParams::default());
        works.retain(|w| matches_options(w, options, &data_type));
        Ok(works)
    }

    fn get(&self, resource_id: &str, options: &ListOptions) -> Result<Option<Arc<ManifestWork>>, BoxError> {
        Ok(self
            .store
            .get_by_uid(resource_id)
            .filter(|w| matches_options(w, options, &options.data_type.to_string())))
    }
}
