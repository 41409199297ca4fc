//! What the generic clients need to know about a resource, and the actions handed to handlers.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::event_type::DataType;

/// A resource carried by CloudEvents: a UID, a resource version (a decimal int64 held as a
/// string, `"0"` = unversioned) and an optional deletion timestamp (Go `generic.ResourceObject`).
pub trait ResourceObject {
    /// The resource UID (`resourceid`).
    fn resource_id(&self) -> &str;
    /// The resource version as a decimal string.
    fn resource_version(&self) -> &str;
    /// Set when the resource is being deleted.
    fn deletion_timestamp(&self) -> Option<DateTime<Utc>>;
}

impl<T: ResourceObject + ?Sized> ResourceObject for Arc<T> {
    fn resource_id(&self) -> &str {
        (**self).resource_id()
    }
    fn resource_version(&self) -> &str {
        (**self).resource_version()
    }
    fn deletion_timestamp(&self) -> Option<DateTime<Utc>> {
        (**self).deletion_timestamp()
    }
}

/// Parses a resource version as Go's `strconv.ParseInt(v, 10, 64)`.
pub fn parse_resource_version(v: &str) -> Result<i64, std::num::ParseIntError> {
    v.parse()
}

/// What happened to a received resource (Go `types.ResourceAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceAction {
    /// An agent received a spec it did not have.
    Added,
    /// An agent received a newer spec.
    Modified,
    /// A source received a status.
    StatusModified,
    /// An agent received a deletion for a resource it has.
    Deleted,
}

impl ResourceAction {
    /// The Go name: `ADDED`, `MODIFIED`, `STATUSMODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::StatusModified => "STATUSMODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

impl fmt::Display for ResourceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which resources a lister returns (Go `types.ListOptions`). Empty strings mean "all".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Cluster (namespace) filter; `""` = all clusters.
    pub cluster_name: String,
    /// Source filter; `""` = all sources.
    pub source: String,
    /// Data type of the resources.
    pub data_type: DataType,
}

impl ListOptions {
    /// The resources of `data_type` of `cluster_name` from `source`.
    pub fn new(cluster_name: impl Into<String>, source: impl Into<String>, data_type: DataType) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            source: source.into(),
            data_type,
        }
    }
}
