//! The subscription registry and the fan-out.
//!
//! Each subscriber owns a bounded queue. Publishing collects the matching subscribers under a
//! short read lock, releases it, and `try_send`s to each: a publisher never waits for a
//! subscriber and never holds a lock while queueing. A full queue disconnects that subscriber
//! (its stream ends with `ResourceExhausted`; the client resubscribes and resyncs).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::Stream;
use ocm_ce_core::DataType;
use ocm_ce_proto::pb::CloudEvent;
use tokio::sync::mpsc::{self, error::TrySendError};
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

struct Subscriber {
    id: u64,
    role: SubscriberRole,
    key: String,
    data_type: Option<DataType>,
    tx: mpsc::Sender<Arc<CloudEvent>>,
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
    pub(crate) queue_capacity: usize,
    pub(crate) heartbeat_interval: Option<Duration>,
}

pub(crate) struct Router {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    metrics: BrokerMetrics,
    settings: StreamSettings,
    shutdown: CancellationToken,
}

/// The stream handed to tonic for one subscriber.
pub(crate) type SubscriberStream = Pin<Box<dyn Stream<Item = Result<CloudEvent, Status>> + Send>>;

impl Router {
    pub(crate) fn new(metrics: BrokerMetrics, settings: StreamSettings, shutdown: CancellationToken) -> Self {
        Self {
            registry: RwLock::default(),
            next_id: AtomicU64::new(1),
            metrics,
            settings,
            shutdown,
        }
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

    /// Queues `event` for every subscriber of `destination` that takes `data_type`; returns
    /// how many got it.
    pub(crate) fn route(&self, destination: &Destination, data_type: &DataType, event: &Arc<CloudEvent>) -> usize {
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
        let mut delivered = 0;
        for target in targets {
            self.metrics.queued(1);
            match target.tx.try_send(event.clone()) {
                Ok(()) => {
                    self.metrics.inc_routed();
                    delivered += 1;
                }
                Err(TrySendError::Full(_)) => {
                    self.metrics.dequeued(1);
                    self.metrics.inc_dropped(DropReason::QueueFull);
                    self.kick(&target);
                }
                Err(TrySendError::Closed(_)) => {
                    self.metrics.dequeued(1);
                    self.metrics.inc_dropped(DropReason::SubscriberGone);
                    self.unregister(&target);
                }
            }
        }
        delivered
    }

    fn kick(&self, subscriber: &Subscriber) {
        if self.unregister(subscriber) {
            tracing::warn!(
                role = ?subscriber.role,
                key = %subscriber.key,
                capacity = self.settings.queue_capacity,
                "disconnecting a slow subscriber: its queue is full"
            );
            self.metrics.inc_slow_disconnects();
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
    rx: mpsc::Receiver<Arc<CloudEvent>>,
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
                    "subscriber too slow: its queue of {} events overflowed; resubscribe and resync",
                    self.router.settings.queue_capacity
                ))))
            }
            () = tick(&mut self.heartbeat) => Some(Ok(heartbeat_event())),
            event = self.rx.recv() => match event {
                Some(event) => {
                    self.router.metrics.dequeued(1);
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
        let mut left = 0;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        self.router.metrics.dequeued(left);
        self.router.unregister(&self.subscriber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(capacity: usize) -> Arc<Router> {
        Arc::new(Router::new(
            BrokerMetrics::new(),
            StreamSettings {
                queue_capacity: capacity,
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

    #[tokio::test]
    async fn a_full_queue_disconnects_only_that_subscriber() {
        use futures::StreamExt;
        let router = router(2);
        let mut slow = router.subscribe(SubscriberRole::Agent, "c1".into(), None);
        let mut fast = router.subscribe(SubscriberRole::Agent, "c2".into(), None);
        for i in 0..3 {
            router.route(&Destination::Cluster("c1".into()), &works(), &event(&i.to_string()));
            router.route(&Destination::Cluster("c2".into()), &works(), &event(&i.to_string()));
            assert_eq!(fast.next().await.unwrap().unwrap().id, i.to_string());
        }
        assert_eq!(router.metrics.dropped(DropReason::QueueFull), 1);
        assert_eq!(router.metrics.slow_subscribers_disconnected(), 1);
        assert_eq!(router.subscriber_count(), 1);
        let ended = slow.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::ResourceExhausted);
        assert!(slow.next().await.is_none());
        drop(slow);
        assert_eq!(router.metrics.queue_depth(), 0);
        // the next event for the slow cluster has nobody to go to
        assert_eq!(
            router.route(&Destination::Cluster("c1".into()), &works(), &event("x")),
            0
        );
        assert_eq!(router.metrics.undelivered(), 1);
    }

    #[tokio::test]
    async fn data_type_filters_and_broadcasts_reach_every_matching_subscriber() {
        let router = router(8);
        let _a = router.subscribe(SubscriberRole::Agent, "c1".into(), Some(works()));
        let _b = router.subscribe(SubscriberRole::Agent, "c2".into(), None);
        let _c = router.subscribe(
            SubscriberRole::Agent,
            "c3".into(),
            Some("io.x.v1.other".parse().unwrap()),
        );
        let _s = router.subscribe(SubscriberRole::Source, "s1".into(), None);
        assert_eq!(router.route(&Destination::AllClusters, &works(), &event("1")), 2);
        assert_eq!(router.route(&Destination::AllSources, &works(), &event("2")), 1);
        drop(_b);
        assert_eq!(router.subscriber_count(), 3);
        assert_eq!(router.metrics.subscribers(SubscriberRole::Agent), 2);
    }
}
