//! The subscription registry and the fan-out, with flow control.
//!
//! Each subscriber owns a queue bounded in events and in bytes, and all queues together are
//! bounded in bytes. A publisher whose event does not fit **waits** (the `Publish` call
//! returns when the event is queued): backpressure instead of loss, and per subscriber —
//! the publisher's events for other clusters are separate calls that do not wait. Publishing
//! collects the matching subscribers under a short read lock and never holds a lock while it
//! waits. A subscriber is disconnected only when it is really stuck: its queue full and
//! nothing taken from it for the stall timeout (its stream ends with `ResourceExhausted`; the
//! client resubscribes and resyncs).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::Stream;
use ocm_ce_core::DataType;
use ocm_ce_proto::pb::CloudEvent;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::HEARTBEAT_EVENT_TYPE;
use crate::metrics::{BrokerMetrics, DropReason, SubscriberRole};

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// The agents subscribed for this cluster.
    Cluster(String),
    /// Every agent.
    AllClusters,
    /// The sources subscribed as this source id.
    Source(String),
    /// Every source.
    AllSources,
}

/// Byte budgets are counted in these units (a semaphore has at most `u32::MAX` permits).
const UNIT: usize = 1024;

fn units(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).max(1)
}

/// One queued delivery: the event and the share of the byte budgets it holds until the
/// subscriber's stream takes it.
struct Queued {
    event: Arc<CloudEvent>,
    size: usize,
    _bytes: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

struct Subscriber {
    id: u64,
    role: SubscriberRole,
    key: String,
    data_type: Option<DataType>,
    tx: mpsc::Sender<Queued>,
    /// The byte budget of this subscriber's queue.
    bytes: Arc<Semaphore>,
    /// When its stream last took an event (milliseconds since the router started).
    last_taken: AtomicU64,
    kicked: CancellationToken,
}

impl Subscriber {
    fn accepts(&self, data_type: &DataType) -> bool {
        self.data_type.as_ref().is_none_or(|d| d == data_type)
    }
}

#[derive(Default)]
struct Registry {
    sources: HashMap<String, Vec<Arc<Subscriber>>>,
    agents: HashMap<String, Vec<Arc<Subscriber>>>,
}

impl Registry {
    fn map(&mut self, role: SubscriberRole) -> &mut HashMap<String, Vec<Arc<Subscriber>>> {
        match role {
            SubscriberRole::Source => &mut self.sources,
            SubscriberRole::Agent => &mut self.agents,
        }
    }
}

/// Settings of the subscriber streams.
#[derive(Debug, Clone)]
pub(crate) struct StreamSettings {
    /// Events queued per subscriber.
    pub(crate) queue_capacity: usize,
    /// Bytes (encoded events) queued per subscriber.
    pub(crate) queue_bytes: usize,
    /// Bytes queued over all subscribers.
    pub(crate) total_bytes: usize,
    /// A subscriber whose queue stays full without it taking anything this long is stuck.
    pub(crate) stall_timeout: Duration,
    pub(crate) heartbeat_interval: Option<Duration>,
}

pub(crate) struct Router {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    metrics: BrokerMetrics,
    settings: StreamSettings,
    /// The byte budget of all queues.
    total: Arc<Semaphore>,
    epoch: Instant,
    shutdown: CancellationToken,
}

/// What became of one delivery.
enum Delivery {
    Queued,
    /// The subscriber is gone or was disconnected meanwhile (it resyncs when it is back).
    Lost,
}

/// The stream handed to tonic for one subscriber.
pub(crate) type SubscriberStream = Pin<Box<dyn Stream<Item = Result<CloudEvent, Status>> + Send>>;

impl Router {
    pub(crate) fn new(metrics: BrokerMetrics, settings: StreamSettings, shutdown: CancellationToken) -> Self {
        Self {
            registry: RwLock::default(),
            next_id: AtomicU64::new(1),
            metrics,
            total: Arc::new(Semaphore::new(units(settings.total_bytes) as usize)),
            settings,
            epoch: Instant::now(),
            shutdown,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a subscriber; from now on it receives the events routed to it.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        role: SubscriberRole,
        key: String,
        data_type: Option<DataType>,
    ) -> SubscriberStream {
        let (tx, rx) = mpsc::channel(self.settings.queue_capacity);
        let subscriber = Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            role,
            key: key.clone(),
            data_type,
            tx,
            bytes: Arc::new(Semaphore::new(units(self.settings.queue_bytes) as usize)),
            last_taken: AtomicU64::new(self.now_ms()),
            kicked: CancellationToken::new(),
        });
        self.registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .map(role)
            .entry(key)
            .or_default()
            .push(subscriber.clone());
        self.metrics.subscriber_added(role);
        let heartbeat = self.settings.heartbeat_interval.map(|period| {
            let mut interval = tokio::time::interval_at(Instant::now() + period, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        let reader = Reader {
            router: self.clone(),
            subscriber,
            rx,
            heartbeat,
            done: false,
        };
        Box::pin(futures::stream::unfold(reader, |mut reader| async move {
            reader.next().await.map(|item| (item, reader))
        }))
    }

    /// Queues `event` for every subscriber of `destination` that takes `data_type`, waiting
    /// while a queue is full (see the module docs); returns how many got it.
    pub(crate) async fn route(
        &self,
        destination: &Destination,
        data_type: &DataType,
        event: &Arc<CloudEvent>,
    ) -> usize {
        let targets: Vec<Arc<Subscriber>> = {
            let registry = self.registry.read().unwrap_or_else(PoisonError::into_inner);
            let pick = |subs: &Vec<Arc<Subscriber>>| {
                subs.iter()
                    .filter(|s| s.accepts(data_type))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            match destination {
                Destination::Cluster(c) => registry.agents.get(c).map(pick).unwrap_or_default(),
                Destination::Source(s) => registry.sources.get(s).map(pick).unwrap_or_default(),
                Destination::AllClusters => registry.agents.values().flat_map(pick).collect(),
                Destination::AllSources => registry.sources.values().flat_map(pick).collect(),
            }
        };
        if targets.is_empty() {
            self.metrics.inc_undelivered();
            return 0;
        }
        let size = event.encoded_len();
        let mut delivered = 0;
        for target in targets {
            match self.enqueue(&target, event, size).await {
                Delivery::Queued => {
                    self.metrics.inc_routed();
                    delivered += 1;
                }
                Delivery::Lost => self.metrics.inc_dropped(DropReason::SubscriberGone),
            }
        }
        delivered
    }

    /// Queues `event` (`size` bytes) for `target`, waiting for room in its queue and in the
    /// total budget. An event larger than a budget takes all of it.
    async fn enqueue(&self, target: &Arc<Subscriber>, event: &Arc<CloudEvent>, size: usize) -> Delivery {
        let own = units(size).min(units(self.settings.queue_bytes));
        let all = units(size).min(units(self.settings.total_bytes));
        let reserve = async {
            let bytes = target.bytes.clone().acquire_many_owned(own).await.ok()?;
            let total = self.total.clone().acquire_many_owned(all).await.ok()?;
            let slot = target.tx.reserve().await.ok()?;
            slot.send(Queued {
                event: event.clone(),
                size,
                _bytes: bytes,
                _total: total,
            });
            Some(())
        };
        tokio::pin!(reserve);
        // Fast path: room right away.
        if let Some(done) = futures::FutureExt::now_or_never(&mut reserve) {
            return self.queued(done, size);
        }
        self.metrics.inc_backpressure();
        let waiting_since = self.now_ms();
        let check = (self.settings.stall_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::select! {
                done = &mut reserve => return self.queued(done, size),
                () = target.kicked.cancelled() => return Delivery::Lost,
                () = self.shutdown.cancelled() => return Delivery::Lost,
                () = tokio::time::sleep(check) => {
                    let progress = target.last_taken.load(Ordering::Relaxed).max(waiting_since);
                    let stall = u64::try_from(self.settings.stall_timeout.as_millis()).unwrap_or(u64::MAX);
                    if self.now_ms().saturating_sub(progress) >= stall {
                        self.kick(target);
                        return Delivery::Lost;
                    }
                }
            }
        }
    }

    fn queued(&self, done: Option<()>, size: usize) -> Delivery {
        match done {
            Some(()) => {
                self.metrics.queued(1, size);
                Delivery::Queued
            }
            None => Delivery::Lost,
        }
    }

    fn kick(&self, subscriber: &Subscriber) {
        if self.unregister(subscriber) {
            tracing::warn!(
                role = ?subscriber.role,
                key = %subscriber.key,
                stall_timeout = ?self.settings.stall_timeout,
                "disconnecting a stuck subscriber: its queue stayed full and it took nothing"
            );
            self.metrics.inc_slow_disconnects();
            self.metrics.inc_dropped(DropReason::QueueFull);
        }
        subscriber.kicked.cancel();
    }

    /// Removes `subscriber`; true when it was registered.
    fn unregister(&self, subscriber: &Subscriber) -> bool {
        let removed = {
            let mut registry = self.registry.write().unwrap_or_else(PoisonError::into_inner);
            let map = registry.map(subscriber.role);
            let mut removed = false;
            if let Some(list) = map.get_mut(&subscriber.key) {
                let before = list.len();
                list.retain(|s| s.id != subscriber.id);
                removed = list.len() != before;
                if list.is_empty() {
                    map.remove(&subscriber.key);
                }
            }
            removed
        };
        if removed {
            self.metrics.subscriber_removed(subscriber.role);
        }
        removed
    }

    /// Live subscribers.
    pub(crate) fn subscriber_count(&self) -> usize {
        let registry = self.registry.read().unwrap_or_else(PoisonError::into_inner);
        registry
            .sources
            .values()
            .chain(registry.agents.values())
            .map(Vec::len)
            .sum()
    }
}

/// One subscriber's side of its queue; unregisters when dropped.
struct Reader {
    router: Arc<Router>,
    subscriber: Arc<Subscriber>,
    rx: mpsc::Receiver<Queued>,
    heartbeat: Option<Interval>,
    done: bool,
}

async fn tick(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A heartbeat as Go's broker sends it: spec version, a fresh id and the type; nothing else.
fn heartbeat_event() -> CloudEvent {
    CloudEvent {
        id: uuid::Uuid::new_v4().to_string(),
        spec_version: "1.0".to_owned(),
        r#type: HEARTBEAT_EVENT_TYPE.to_owned(),
        ..CloudEvent::default()
    }
}

impl Reader {
    async fn next(&mut self) -> Option<Result<CloudEvent, Status>> {
        if self.done {
            return None;
        }
        let shutdown = self.router.shutdown.clone();
        let kicked = self.subscriber.kicked.clone();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                self.done = true;
                Some(Err(Status::unavailable("the broker is shutting down")))
            }
            () = kicked.cancelled() => {
                self.done = true;
                Some(Err(Status::resource_exhausted(format!(
                    "subscriber stuck: its queue stayed full and it took nothing for {:?}; resubscribe and resync",
                    self.router.settings.stall_timeout
                ))))
            }
            () = tick(&mut self.heartbeat) => Some(Ok(heartbeat_event())),
            queued = self.rx.recv() => match queued {
                Some(queued) => {
                    self.subscriber.last_taken.store(self.router.now_ms(), Ordering::Relaxed);
                    let event = queued.event.clone();
                    self.router.metrics.dequeued(1, queued.size);
                    // Dropping `queued` returns its bytes to the budgets.
                    drop(queued);
                    Some(Ok(Arc::unwrap_or_clone(event)))
                }
                None => {
                    self.done = true;
                    Some(Err(Status::unavailable("the subscription was closed")))
                }
            },
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(queued) = self.rx.try_recv() {
            self.router.metrics.dequeued(1, queued.size);
        }
        self.router.unregister(&self.subscriber);
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn router(capacity: usize, queue_bytes: usize, total_bytes: usize, stall: Duration) -> Arc<Router> {
        Arc::new(Router::new(
            BrokerMetrics::new(),
            StreamSettings {
                queue_capacity: capacity,
                queue_bytes,
                total_bytes,
                stall_timeout: stall,
                heartbeat_interval: None,
            },
            CancellationToken::new(),
        ))
    }

    fn works() -> DataType {
        "io.open-cluster-management.works.v1alpha1.manifestbundles"
            .parse()
            .unwrap()
    }

    fn event(id: &str) -> Arc<CloudEvent> {
        Arc::new(CloudEvent {
            id: id.to_owned(),
            ..CloudEvent::default()
        })
    }

    fn sized(id: &str, bytes: usize) -> Arc<CloudEvent> {
        Arc::new(CloudEvent {
            id: id.to_owned(),
            data: Some(ocm_ce_proto::pb::cloud_event::Data::BinaryData(vec![7; bytes])),
            ..CloudEvent::default()
        })
    }

    fn c(name: &str) -> Destination {
        Destination::Cluster(name.into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_holds_the_publisher_back_until_the_subscriber_takes_an_event() {
        let router = router(2, 1 << 20, 1 << 30, Duration::from_secs(30));
        let mut sub = router.subscribe(SubscriberRole::Agent, "c1".into(), None);
        assert_eq!(router.route(&c("c1"), &works(), &event("0")).await, 1);
        assert_eq!(router.route(&c("c1"), &works(), &event("1")).await, 1);
        let third = {
            let router = router.clone();
            tokio::spawn(async move { router.route(&c("c1"), &works(), &event("2")).await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!third.is_finished(), "the publisher waits instead of losing the event");
        assert_eq!(router.metrics.backpressure(), 1);
        assert_eq!(sub.next().await.unwrap().unwrap().id, "0");
        assert_eq!(third.await.unwrap(), 1);
        assert_eq!(sub.next().await.unwrap().unwrap().id, "1");
        assert_eq!(sub.next().await.unwrap().unwrap().id, "2");
        assert_eq!(router.metrics.slow_subscribers_disconnected(), 0);
        assert_eq!(router.metrics.dropped(DropReason::QueueFull), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_in_bytes_too() {
        let router = router(1000, 10 * 1024, 1 << 30, Duration::from_secs(30));
        let mut sub = router.subscribe(SubscriberRole::Agent, "c1".into(), None);
        for i in 0..2 {
            assert_eq!(router.route(&c("c1"), &works(), &sized(&i.to_string(), 4000)).await, 1);
        }
        let third = {
            let router = router.clone();
            tokio::spawn(async move { router.route(&c("c1"), &works(), &sized("2", 4000)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!third.is_finished(), "two 4 KB events fill a 10 KiB queue");
        assert!(router.metrics.queued_bytes() >= 8000);
        sub.next().await.unwrap().unwrap();
        assert_eq!(third.await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_full_queue_does_not_slow_the_others() {
        let router = router(1, 1 << 20, 1 << 30, Duration::from_secs(30));
        let _stalled = router.subscribe(SubscriberRole::Agent, "stalled".into(), None);
        let mut fast = router.subscribe(SubscriberRole::Agent, "fast".into(), None);
        router.route(&c("stalled"), &works(), &event("x")).await;
        let blocked = {
            let router = router.clone();
            tokio::spawn(async move { router.route(&c("stalled"), &works(), &event("y")).await })
        };
        for i in 0..100 {
            assert_eq!(router.route(&c("fast"), &works(), &event(&i.to_string())).await, 1);
            assert_eq!(fast.next().await.unwrap().unwrap().id, i.to_string());
        }
        assert!(!blocked.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_subscriber_is_disconnected_after_the_stall_timeout_and_the_publisher_released() {
        let router = router(2, 1 << 20, 1 << 30, Duration::from_secs(10));
        let mut stuck = router.subscribe(SubscriberRole::Agent, "c1".into(), None);
        router.route(&c("c1"), &works(), &event("0")).await;
        router.route(&c("c1"), &works(), &event("1")).await;
        let started = Instant::now();
        assert_eq!(router.route(&c("c1"), &works(), &event("2")).await, 0);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(12),
            "{waited:?}"
        );
        assert_eq!(router.metrics.slow_subscribers_disconnected(), 1);
        assert_eq!(router.metrics.dropped(DropReason::QueueFull), 1);
        assert_eq!(router.subscriber_count(), 0);
        let ended = stuck.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::ResourceExhausted);
        assert!(stuck.next().await.is_none());
        drop(stuck);
        assert_eq!(router.metrics.queue_depth(), 0);
        assert_eq!(router.metrics.queued_bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_subscriber_that_keeps_taking_is_never_disconnected() {
        let router = router(1, 1 << 20, 1 << 30, Duration::from_secs(2));
        let mut slow = router.subscribe(SubscriberRole::Agent, "c1".into(), None);
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while n < 20 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                slow.next().await.unwrap().unwrap();
                n += 1;
            }
        });
        for i in 0..20 {
            assert_eq!(router.route(&c("c1"), &works(), &event(&i.to_string())).await, 1);
        }
        reader.await.unwrap();
        assert_eq!(router.metrics.slow_subscribers_disconnected(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_budget_bounds_all_queues_together() {
        let router = router(1000, 8 * 1024, 12 * 1024, Duration::from_secs(30));
        let _a = router.subscribe(SubscriberRole::Agent, "a".into(), None);
        let mut b = router.subscribe(SubscriberRole::Agent, "b".into(), None);
        router.route(&c("a"), &works(), &sized("a0", 7000)).await;
        let waiting = {
            let router = router.clone();
            tokio::spawn(async move { router.route(&c("b"), &works(), &sized("b0", 7000)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "the total budget is spent");
        drop(_a);
        assert_eq!(waiting.await.unwrap(), 1);
        assert_eq!(b.next().await.unwrap().unwrap().id, "b0");
    }

    #[tokio::test]
    async fn data_type_filters_and_broadcasts_reach_every_matching_subscriber() {
        let router = router(8, 1 << 20, 1 << 30, Duration::from_secs(30));
        let _a = router.subscribe(SubscriberRole::Agent, "c1".into(), Some(works()));
        let _b = router.subscribe(SubscriberRole::Agent, "c2".into(), None);
        let _c = router.subscribe(
            SubscriberRole::Agent,
            "c3".into(),
            Some("io.x.v1.other".parse().unwrap()),
        );
        let _s = router.subscribe(SubscriberRole::Source, "s1".into(), None);
        assert_eq!(router.route(&Destination::AllClusters, &works(), &event("1")).await, 2);
        assert_eq!(router.route(&Destination::AllSources, &works(), &event("2")).await, 1);
        drop(_b);
        assert_eq!(router.subscriber_count(), 3);
        assert_eq!(router.metrics.subscribers(SubscriberRole::Agent), 2);
        assert_eq!(router.route(&c("nobody"), &works(), &event("3")).await, 0);
        assert_eq!(router.metrics.undelivered(), 1);
    }
}
