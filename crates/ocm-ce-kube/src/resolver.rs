//! Resolving the kind of a manifest to its resource through discovery, with a cache that is
//! refreshed on a miss (and when a write reports the resource gone).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Scope, oneshot};

use crate::error::{Error, Result};

/// A resolved kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// Group, version, kind and plural.
    pub(crate) api_resource: ApiResource,
    /// True for namespaced resources.
    pub(crate) namespaced: bool,
}

/// The discovery cache of one cluster.
pub(crate) struct Resolver {
    client: kube::Client,
    cache: RwLock<HashMap<GroupVersionKind, Resolved>>,
}

impl Resolver {
    pub(crate) fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: RwLock::default(),
        }
    }

    /// The resource of `gvk`: from the cache, or asked from the server (its group version's
    /// resource list) on a miss. Kinds the server does not serve are not cached.
    pub(crate) async fn resolve(&self, gvk: &GroupVersionKind) -> Result<Resolved> {
        if let Some(r) = self.cache.read().unwrap_or_else(PoisonError::into_inner).get(gvk) {
            return Ok(r.clone());
        }
        let unknown = || Error::UnknownKind {
            group: gvk.group.clone(),
            version: gvk.version.clone(),
            kind: gvk.kind.clone(),
        };
        let (api_resource, caps) = match oneshot::pinned_kind(&self.client, gvk).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => return Err(unknown()),
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(unknown()),
            Err(e) => return Err(Error::kube(format!("failed to discover {}", gvk.api_version()), e)),
        };
        let resolved = Resolved {
            api_resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(gvk.clone(), resolved.clone());
        Ok(resolved)
    }

    /// Drops `gvk` from the cache (its resource may be gone, e.g. a deleted CRD).
    pub(crate) fn forget(&self, gvk: &GroupVersionKind) {
        self.cache.write().unwrap_or_else(PoisonError::into_inner).remove(gvk);
    }
}
