//! Prometheus metrics of the broker (served by [`crate::endpoints`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The role of a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum SubscriberRole {
    /// A source, subscribed by source id (receives statuses and spec resync requests).
    Source,
    /// An agent, subscribed by cluster name (receives specs and status resync requests).
    Agent,
}

/// Why a delivery or a request was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[non_exhaustive]
pub enum DropReason {
    /// A subscriber's queue stayed full and it took nothing for the stall timeout: the event
    /// was not queued and the subscriber was disconnected (it resubscribes and resyncs).
    QueueFull,
    /// The subscriber went away between routing and queueing.
    SubscriberGone,
    /// A request that is not valid protobuf.
    Malformed,
    /// A request whose CloudEvent is invalid (missing attributes, unparsable type, missing
    /// routing extension).
    InvalidEvent,
    /// A request over the maximum message size.
    TooLarge,
    /// A request without valid credentials.
    Unauthenticated,
}

/// The operation a denial concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Operation {
    /// `Publish`.
    Publish,
    /// `Subscribe`.
    Subscribe,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RoleLabel {
    role: SubscriberRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: DropReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabel {
    operation: Operation,
}

/// The broker's metrics (clones share values). Names start with `ocm_ce_broker_`:
///
/// | metric | type | labels |
/// |---|---|---|
/// | `subscribers` | gauge | `role` (`Source`, `Agent`) |
/// | `events_published_total` | counter | accepted `Publish` calls |
/// | `events_routed_total` | counter | deliveries queued to a subscriber |
/// | `events_undelivered_total` | counter | accepted events no subscriber matched |
/// | `events_dropped_total` | counter | `reason` (see [`DropReason`]) |
/// | `requests_denied_total` | counter | `operation` (`Publish`, `Subscribe`) |
/// | `slow_subscribers_disconnected_total` | counter | subscribers disconnected as stuck |
/// | `publish_backpressure_total` | counter | deliveries that waited for room in a queue |
/// | `queue_depth` | gauge | events queued over all subscribers |
/// | `queue_bytes` | gauge | bytes (encoded events) queued over all subscribers |
/// | `tls_handshake_failures_total` | counter | — |
#[derive(Clone)]
pub struct BrokerMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    subscribers: Family<RoleLabel, Gauge>,
    published: Counter,
    routed: Counter,
    undelivered: Counter,
    dropped: Family<ReasonLabel, Counter>,
    denied: Family<OperationLabel, Counter>,
    slow_disconnects: Counter,
    backpressure: Counter,
    queue_depth: Gauge<i64, AtomicI64>,
    queue_bytes: Gauge<i64, AtomicI64>,
    handshake_failures: Counter,
}

impl fmt::Debug for BrokerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerMetrics")
            .field("routed", &self.routed())
            .field("undelivered", &self.undelivered())
            .finish_non_exhaustive()
    }
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl BrokerMetrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let subscribers = Family::<RoleLabel, Gauge>::default();
        let published = Counter::default();
        let routed = Counter::default();
        let undelivered = Counter::default();
        let dropped = Family::<ReasonLabel, Counter>::default();
        let denied = Family::<OperationLabel, Counter>::default();
        let slow_disconnects = Counter::default();
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        let queue_bytes = Gauge::<i64, AtomicI64>::default();
        let backpressure = Counter::default();
        let handshake_failures = Counter::default();
        let mut registry = Registry::with_prefix("ocm_ce_broker");
        registry.register("subscribers", "Connected subscribers", subscribers.clone());
        registry.register("events_published", "Accepted Publish calls", published.clone());
        registry.register("events_routed", "Deliveries queued to a subscriber", routed.clone());
        registry.register(
            "events_undelivered",
            "Accepted events that matched no subscriber",
            undelivered.clone(),
        );
        registry.register(
            "events_dropped",
            "Deliveries and requests dropped, by reason",
            dropped.clone(),
        );
        registry.register(
            "requests_denied",
            "Calls refused by the authorization policy",
            denied.clone(),
        );
        registry.register(
            "slow_subscribers_disconnected",
            "Subscribers disconnected because their queue stayed full while they took nothing",
            slow_disconnects.clone(),
        );
        registry.register(
            "publish_backpressure",
            "Deliveries that waited for room in a subscriber's queue",
            backpressure.clone(),
        );
        registry.register("queue_depth", "Events queued for all subscribers", queue_depth.clone());
        registry.register(
            "queue_bytes",
            "Bytes of encoded events queued for all subscribers",
            queue_bytes.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Failed TLS handshakes",
            handshake_failures.clone(),
        );
        for role in [SubscriberRole::Source, SubscriberRole::Agent] {
            let _ = subscribers.get_or_create(&RoleLabel { role });
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                subscribers,
                published,
                routed,
                undelivered,
                dropped,
                denied,
                slow_disconnects,
                backpressure,
                queue_depth,
                queue_bytes,
                handshake_failures,
            }),
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// Connected subscribers of `role`.
    pub fn subscribers(&self, role: SubscriberRole) -> i64 {
        self.inner.subscribers.get_or_create(&RoleLabel { role }).get()
    }
    /// Accepted `Publish` calls.
    pub fn published(&self) -> u64 {
        self.inner.published.get()
    }
    /// Deliveries queued to subscribers.
    pub fn routed(&self) -> u64 {
        self.inner.routed.get()
    }
    /// Accepted events that matched no subscriber.
    pub fn undelivered(&self) -> u64 {
        self.inner.undelivered.get()
    }
    /// Drops for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.inner.dropped.get_or_create(&ReasonLabel { reason }).get()
    }
    /// Denied calls of `operation`.
    pub fn denied(&self, operation: Operation) -> u64 {
        self.inner.denied.get_or_create(&OperationLabel { operation }).get()
    }
    /// Subscribers disconnected as stuck (queue full, nothing taken for the stall timeout).
    pub fn slow_subscribers_disconnected(&self) -> u64 {
        self.inner.slow_disconnects.get()
    }
    /// Deliveries that had to wait for room in a subscriber's queue.
    pub fn backpressure(&self) -> u64 {
        self.inner.backpressure.get()
    }
    /// Events currently queued over all subscribers.
    pub fn queue_depth(&self) -> i64 {
        self.inner.queue_depth.get()
    }
    /// Bytes (encoded events) currently queued over all subscribers.
    pub fn queued_bytes(&self) -> i64 {
        self.inner.queue_bytes.get()
    }
    /// Failed TLS handshakes.
    pub fn tls_handshake_failures(&self) -> u64 {
        self.inner.handshake_failures.get()
    }

    pub(crate) fn subscriber_added(&self, role: SubscriberRole) {
        self.inner.subscribers.get_or_create(&RoleLabel { role }).inc();
    }
    pub(crate) fn subscriber_removed(&self, role: SubscriberRole) {
        self.inner.subscribers.get_or_create(&RoleLabel { role }).dec();
    }
    pub(crate) fn inc_published(&self) {
        self.inner.published.inc();
    }
    pub(crate) fn inc_routed(&self) {
        self.inner.routed.inc();
    }
    pub(crate) fn inc_undelivered(&self) {
        self.inner.undelivered.inc();
    }
    pub(crate) fn inc_dropped(&self, reason: DropReason) {
        self.inner.dropped.get_or_create(&ReasonLabel { reason }).inc();
    }
    pub(crate) fn inc_denied(&self, operation: Operation) {
        self.inner.denied.get_or_create(&OperationLabel { operation }).inc();
    }
    pub(crate) fn inc_slow_disconnects(&self) {
        self.inner.slow_disconnects.inc();
    }
    pub(crate) fn inc_backpressure(&self) {
        self.inner.backpressure.inc();
    }
    pub(crate) fn queued(&self, n: i64, bytes: usize) {
        self.inner.queue_depth.inc_by(n);
        self.inner.queue_bytes.inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    pub(crate) fn dequeued(&self, n: i64, bytes: usize) {
        self.inner.queue_depth.dec_by(n);
        self.inner.queue_bytes.dec_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    pub(crate) fn inc_handshake_failures(&self) {
        self.inner.handshake_failures.inc();
    }
}
