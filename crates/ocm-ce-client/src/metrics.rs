//! Prometheus metrics of the clients: Go's two resync histograms (same names, labels, buckets),
//! plus counters Go lacks (dropped events by reason, reconnects). No global registry: each
//! client gets a [`ClientMetrics`] (cheap to clone, clones share values) that the caller may
//! register.

use ocm_ce_core::SubResource;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Go's histogram buckets, in seconds.
pub const RESYNC_BUCKETS: [f64; 7] = [0.1, 0.2, 0.5, 1.0, 2.0, 10.0, 30.0];

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn resync_histogram() -> Histogram {
    Histogram::new(RESYNC_BUCKETS)
}

/// The metrics one or more clients record.
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    spec_resync: HistogramFamily,
    status_resync: HistogramFamily,
    dropped: Family<Labels, Counter>,
    reconnects: Counter,
}

impl Default for ClientMetrics {
    fn default() -> Self {
        Self {
            spec_resync: Family::new_with_constructor(resync_histogram),
            status_resync: Family::new_with_constructor(resync_histogram),
            dropped: Family::default(),
            reconnects: Counter::default(),
        }
    }
}

fn labels(source: &str, cluster: &str, data_type: &str) -> Labels {
    vec![
        ("source".into(), source.into()),
        ("cluster".into(), cluster.into()),
        ("type".into(), data_type.into()),
    ]
}

impl ClientMetrics {
    /// Registers the metrics: `resources_spec_resync_duration_seconds`,
    /// `resources_status_resync_duration_seconds` (Go names), `cloudevents_dropped_events`
    /// (counter, label `reason`) and `cloudevents_reconnects` (counter).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "resources_spec_resync_duration_seconds",
            "The duration of the resource spec resync in seconds",
            self.spec_resync.clone(),
        );
        registry.register(
            "resources_status_resync_duration_seconds",
            "The duration of the resource status resync in seconds",
            self.status_resync.clone(),
        );
        registry.register(
            "cloudevents_dropped_events",
            "Received events dropped, by reason",
            self.dropped.clone(),
        );
        registry.register(
            "cloudevents_reconnects",
            "Connections re-established after a loss",
            self.reconnects.clone(),
        );
    }

    /// Records the time an answer to a resync request of `kind` (a spec or status resync) took.
    pub(crate) fn observe_resync(&self, kind: SubResource, source: &str, cluster: &str, data_type: &str, seconds: f64) {
        let family = match kind {
            SubResource::Spec => &self.spec_resync,
            SubResource::Status => &self.status_resync,
        };
        family
            .get_or_create(&labels(source, cluster, data_type))
            .observe(seconds);
    }

    pub(crate) fn dropped(&self, reason: &str) {
        self.dropped
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.inc();
    }

    /// How many received events were dropped for `reason` (e.g. `malformed_type`,
    /// `bad_extension`, `bad_data`, `unknown_data_type`, `invalid`, `bad_resync_payload`).
    pub fn dropped_count(&self, reason: &str) -> u64 {
        self.dropped
            .get_or_create(&vec![("reason".into(), reason.into())])
            .get()
    }

    /// How many reconnections happened.
    pub fn reconnect_count(&self) -> u64 {
        self.reconnects.get()
    }

    /// Count and sum of the spec resync histogram for the given labels.
    pub fn spec_resync_stats(&self, source: &str, cluster: &str, data_type: &str) -> (u64, f64) {
        stats(&self.spec_resync, &labels(source, cluster, data_type))
    }

    /// Count and sum of the status resync histogram for the given labels.
    pub fn status_resync_stats(&self, source: &str, cluster: &str, data_type: &str) -> (u64, f64) {
        stats(&self.status_resync, &labels(source, cluster, data_type))
    }
}

fn stats(family: &HistogramFamily, l: &Labels) -> (u64, f64) {
    let mut text = String::new();
    let mut reg = Registry::default();
    reg.register("h", "h", family.clone());
    if prometheus_client::encoding::text::encode(&mut text, &reg).is_err() {
        return (0, 0.0);
    }
    let want: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut count = 0;
    let mut sum = 0.0;
    for line in text.lines() {
        if !want.iter().all(|w| line.contains(w.as_str())) {
            continue;
        }
        let value = line.rsplit(' ').next().unwrap_or("0");
        if line.starts_with("h_count") {
            count = value.parse().unwrap_or(0);
        } else if line.starts_with("h_sum") {
            sum = value.parse().unwrap_or(0.0);
        }
    }
    (count, sum)
}
