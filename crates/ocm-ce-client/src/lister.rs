//! What the clients read their resources from: a [`Lister`] and a [`StatusHasher`].

use std::sync::Arc;

use ocm_ce_core::{ListOptions, ResourceObject};

use crate::error::BoxError;

/// Lists the resources a client holds (Go `generic.Lister`). Used to answer resync requests and,
/// on agents, to decide what a received spec means.
///
/// Resources are handed out as `Arc`s: a store that keeps them in `Arc`s (like the work store)
/// gives them without copying, also when a resync lists every one.
pub trait Lister<T>: Send + Sync {
    /// The resources matching `options` (empty strings mean "any").
    fn list(&self, options: &ListOptions) -> Result<Vec<Arc<T>>, BoxError>;

    /// The resource with UID `resource_id` that also matches `options`, if any. Called for every
    /// received spec; implement it with a map lookup so the cost does not grow with the number
    /// of resources (the default scans [`list`](Self::list)).
    fn get(&self, resource_id: &str, options: &ListOptions) -> Result<Option<Arc<T>>, BoxError>
    where
        T: ResourceObject,
    {
        Ok(self.list(options)?.into_iter().find(|r| r.resource_id() == resource_id))
    }
}

/// Computes the status hash of a resource (Go `StatusHashGetter`); sources and agents must use
/// the same function.
pub trait StatusHasher<T>: Send + Sync {
    /// The hash, usually lower-case hex SHA-256: what a source lists in its status resync
    /// request.
    fn status_hash(&self, resource: &T) -> Result<String, BoxError>;

    /// Whether `hash`, from a source's status resync request, is the hash of the resource's
    /// status: an agent resends the statuses for which it is not. Default: equal to
    /// [`status_hash`](Self::status_hash); a hasher that knows several hash functions (sdk-go
    /// changed its function in v0.16) accepts any of them.
    fn same_status(&self, resource: &T, hash: &str) -> Result<bool, BoxError> {
        Ok(self.status_hash(resource)? == hash)
    }
}

impl<T, F, E> StatusHasher<T> for F
where
    F: Fn(&T) -> Result<String, E> + Send + Sync,
    E: Into<BoxError>,
{
    fn status_hash(&self, resource: &T) -> Result<String, BoxError> {
        self(resource).map_err(Into::into)
    }
}
