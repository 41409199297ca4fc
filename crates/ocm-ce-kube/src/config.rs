//! Configuration of the applier.

use std::time::Duration;

use ocm_ce_client::RateLimit;
use sha2::{Digest, Sha256};

/// The field manager of every write the applier makes, unless a work's server-side apply
/// settings name another one.
pub const DEFAULT_FIELD_MANAGER: &str = "ocm-ce-agent";

/// OCM's `HubHash`: the hex SHA-256 of a hub's address. It prefixes the names of the
/// AppliedManifestWorks an agent records, so that the works of two hubs never mix.
#[doc(alias = "HubHash")]
pub fn hub_hash(hub_server: &str) -> String {
    hex::encode(Sha256::digest(hub_server.as_bytes()))
}

/// How a [`KubeApplier`](crate::KubeApplier) works. Build it with [`new`](Self::new) and the
/// chainable setters.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct ApplierConfig {
    /// The hub hash of the agent's AppliedManifestWorks (see [`hub_hash`]).
    pub hub_hash: String,
    /// The agent id recorded in the AppliedManifestWorks (`spec.agentID`).
    pub agent_id: String,
    /// Field manager of the writes (default [`DEFAULT_FIELD_MANAGER`]).
    pub field_manager: String,
    /// Works reconciled at the same time (each work by one task at a time). Default 4; 0
    /// counts as 1.
    pub workers: usize,
    /// Client-side limit of requests to the API server. Default 50 per second, burst 100 (the
    /// OCM work agent's defaults).
    pub rate_limit: RateLimit,
    /// How often the status of every work is read again (resource availability and status
    /// feedback). Default 10 s (OCM's).
    pub status_sync_interval: Duration,
    /// How often every work is applied again even when its spec did not change, which repairs
    /// resources changed behind the agent's back. Default 5 minutes (OCM's).
    pub reapply_interval: Duration,
    /// How long to wait for a CustomResourceDefinition of a work to be established before its
    /// custom resources are applied. Default 60 s.
    pub crd_established_timeout: Duration,
    /// First retry delay of a work that failed, doubled per attempt. Default 100 ms.
    pub retry_base_delay: Duration,
    /// Longest retry delay. Default 30 s.
    pub retry_max_delay: Duration,
    /// How often a deletion waiting for resources to be finalized looks again (a steady
    /// interval, not the failure back-off: waiting is not failing). Default 1 s.
    pub deletion_recheck_interval: Duration,
    /// Report status feedback values that are objects, lists or floats as `JsonRaw` (OCM's
    /// `RawFeedbackJsonString` feature gate). Default off, as in OCM: such values are errors.
    pub raw_json_feedback: bool,
    /// Longest `JsonRaw` feedback value. Default 1024 (OCM's).
    pub max_json_raw_length: usize,
}

impl ApplierConfig {
    /// The defaults for the agent `agent_id` of the hub with hash `hub_hash`.
    pub fn new(hub_hash: impl Into<String>, agent_id: impl Into<String>) -> Self {
        Self {
            hub_hash: hub_hash.into(),
            agent_id: agent_id.into(),
            field_manager: DEFAULT_FIELD_MANAGER.to_owned(),
            workers: 4,
            rate_limit: RateLimit::default(),
            status_sync_interval: Duration::from_secs(10),
            reapply_interval: Duration::from_secs(300),
            crd_established_timeout: Duration::from_secs(60),
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(30),
            deletion_recheck_interval: Duration::from_secs(1),
            raw_json_feedback: false,
            max_json_raw_length: 1024,
        }
    }

    /// Sets [`field_manager`](Self::field_manager).
    pub fn field_manager(mut self, field_manager: impl Into<String>) -> Self {
        self.field_manager = field_manager.into();
        self
    }

    /// Sets the client-side request limit.
    pub fn rate_limit(mut self, qps: f32, burst: u32) -> Self {
        self.rate_limit = RateLimit { qps, burst };
        self
    }

    /// Sets the retry delays.
    pub fn retry(mut self, base_delay: Duration, max_delay: Duration) -> Self {
        self.retry_base_delay = base_delay;
        self.retry_max_delay = max_delay;
        self
    }

    ocm_ce_core::builder_setters! {
        /// Sets [`workers`](Self::workers).
        fn workers(workers: usize) => workers;
        /// Sets [`status_sync_interval`](Self::status_sync_interval).
        fn status_sync_interval(interval: Duration) => status_sync_interval;
        /// Sets [`reapply_interval`](Self::reapply_interval).
        fn reapply_interval(interval: Duration) => reapply_interval;
        /// Sets [`crd_established_timeout`](Self::crd_established_timeout).
        fn crd_established_timeout(timeout: Duration) => crd_established_timeout;
        /// Sets [`deletion_recheck_interval`](Self::deletion_recheck_interval).
        fn deletion_recheck_interval(interval: Duration) => deletion_recheck_interval;
        /// Sets [`raw_json_feedback`](Self::raw_json_feedback).
        fn raw_json_feedback(enabled: bool) => raw_json_feedback;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_hash_is_the_hex_sha256_of_the_address() {
        // The SHA-256 test vector of FIPS 180-2 ("abc").
        assert_eq!(
            hub_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
