//! Counters of the work clients (prometheus-client; clones share values).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// What the work clients count.
#[derive(Debug, Clone, Default)]
pub struct WorkMetrics {
    statuses_applied: Counter,
    statuses_dropped: Family<Labels, Counter>,
    works_removed: Counter,
    specs_applied: Counter,
    specs_dropped: Family<Labels, Counter>,
    specs_deferred: Counter,
    deletion_acks: Counter,
    deletion_ack_retries: Counter,
    publish_retries: Counter,
    publish_failures: Family<Labels, Counter>,
    statuses_resent_specs: Counter,
}

fn reason(r: &str) -> Labels {
    vec![("reason".to_owned(), r.to_owned())]
}

impl WorkMetrics {
    /// Registers the counters under `ocm_ce_work_*`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "ocm_ce_work_statuses_applied",
            "Statuses a source accepted",
            self.statuses_applied.clone(),
        );
        registry.register(
            "ocm_ce_work_statuses_dropped",
            "Statuses a source dropped, by reason",
            self.statuses_dropped.clone(),
        );
        registry.register(
            "ocm_ce_work_works_removed",
            "Works a source removed on a Deleted status",
            self.works_removed.clone(),
        );
        registry.register(
            "ocm_ce_work_specs_applied",
            "Specs an agent applied to its store",
            self.specs_applied.clone(),
        );
        registry.register(
            "ocm_ce_work_specs_dropped",
            "Specs an agent dropped, by reason",
            self.specs_dropped.clone(),
        );
        registry.register(
            "ocm_ce_work_specs_deferred",
            "Specs of a work created anew that an agent held until it had removed the deleting copy before it",
            self.specs_deferred.clone(),
        );
        registry.register(
            "ocm_ce_work_deletion_acks",
            "Deleted acknowledgements an agent published",
            self.deletion_acks.clone(),
        );
        registry.register(
            "ocm_ce_work_deletion_ack_retries",
            "Deleted acknowledgements that had to be retried",
            self.deletion_ack_retries.clone(),
        );
        registry.register(
            "ocm_ce_work_publish_retries",
            "Reports (statuses, specs) whose publish failed and was retried",
            self.publish_retries.clone(),
        );
        registry.register(
            "ocm_ce_work_publish_failures",
            "Reports that could not be sent as they were (too large, not encodable), by reason",
            self.publish_failures.clone(),
        );
        registry.register(
            "ocm_ce_work_specs_resent",
            "Specs a source sent again because an agent reported an older version",
            self.statuses_resent_specs.clone(),
        );
    }

    pub(crate) fn publish_retried(&self) {
        self.publish_retries.inc();
    }
    pub(crate) fn publish_failed(&self, why: &str) {
        self.publish_failures.get_or_create(&reason(why)).inc();
    }
    pub(crate) fn spec_resent(&self) {
        self.statuses_resent_specs.inc();
    }

    /// Reports whose publish failed and was retried.
    pub fn publish_retries(&self) -> u64 {
        self.publish_retries.get()
    }

    /// Reports that could not be sent, for `why` (`too_large`, `unsendable`).
    pub fn publish_failures(&self, why: &str) -> u64 {
        self.publish_failures.get_or_create(&reason(why)).get()
    }

    /// Specs a source sent again because an agent reported an older version of them.
    pub fn specs_resent(&self) -> u64 {
        self.statuses_resent_specs.get()
    }

    pub(crate) fn status_applied(&self) {
        self.statuses_applied.inc();
    }
    pub(crate) fn status_dropped(&self, why: &str) {
        self.statuses_dropped.get_or_create(&reason(why)).inc();
    }
    pub(crate) fn work_removed(&self) {
        self.works_removed.inc();
    }
    pub(crate) fn spec_dropped(&self, why: &str) {
        self.specs_dropped.get_or_create(&reason(why)).inc();
    }
    pub(crate) fn spec_applied(&self) {
        self.specs_applied.inc();
    }
    pub(crate) fn spec_deferred(&self) {
        self.specs_deferred.inc();
    }
    pub(crate) fn deletion_acked(&self) {
        self.deletion_acks.inc();
    }
    pub(crate) fn deletion_ack_retried(&self) {
        self.deletion_ack_retries.inc();
    }

    /// Statuses a source accepted (changed or unchanged).
    pub fn statuses_applied(&self) -> u64 {
        self.statuses_applied.get()
    }
    /// Statuses dropped for `why` (`stale_sequence`, `future_version`, `unknown_work`, ...).
    pub fn statuses_dropped(&self, why: &str) -> u64 {
        self.statuses_dropped.get_or_create(&reason(why)).get()
    }
    /// Works a source removed because an agent reported them deleted.
    pub fn works_removed(&self) -> u64 {
        self.works_removed.get()
    }
    /// Specs an agent dropped for `why` (`bad_version`: a version that cannot be compared with
    /// the one it holds).
    pub fn specs_dropped(&self, why: &str) -> u64 {
        self.specs_dropped.get_or_create(&reason(why)).get()
    }
    /// Specs an agent applied.
    pub fn specs_applied(&self) -> u64 {
        self.specs_applied.get()
    }
    /// Specs of a work created anew that an agent held until it had removed the deleting copy
    /// before it (same UID, newer version).
    pub fn specs_deferred(&self) -> u64 {
        self.specs_deferred.get()
    }
    /// `Deleted` acknowledgements an agent published.
    pub fn deletion_acks(&self) -> u64 {
        self.deletion_acks.get()
    }
    /// `Deleted` acknowledgements that needed a retry.
    pub fn deletion_ack_retries(&self) -> u64 {
        self.deletion_ack_retries.get()
    }
}
