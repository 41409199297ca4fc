//! An in-memory broker and transport for tests (Go's `fake` options over `gochan`), scriptable:
//! take it down, drop every connection, hold subscription acknowledgements, lose deliveries,
//! and inspect everything published.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use cloudevents::Event;
use tokio::sync::{mpsc, watch};

use crate::error::TransportError;
use crate::transport::{Connection, PublishTarget, Role, Subscription, Transport};

/// One published event as the broker saw it.
#[derive(Debug, Clone)]
pub struct Published {
    /// Who sent it.
    pub from: Role,
    /// Where to.
    pub target: PublishTarget,
    /// The event.
    pub event: Event,
}

struct Sub {
    connection: u64,
    role: Role,
    tx: mpsc::UnboundedSender<Result<Event, TransportError>>,
}

#[derive(Default)]
struct Hub {
    down: bool,
    drop_deliveries: bool,
    next_id: u64,
    live: Vec<u64>,
    subscribers: Vec<Sub>,
    published: Vec<Published>,
    connects: usize,
    closes: usize,
    publish_delay: std::time::Duration,
}

/// The in-memory broker. Clones share state.
#[derive(Clone)]
pub struct FakeBroker {
    hub: Arc<Mutex<Hub>>,
    hold: Arc<watch::Sender<bool>>,
}

impl Default for FakeBroker {
    fn default() -> Self {
        Self {
            hub: Arc::default(),
            hold: Arc::new(watch::channel(false).0),
        }
    }
}

impl fmt::Debug for FakeBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hub = self.lock();
        f.debug_struct("FakeBroker")
            .field("subscribers", &hub.subscribers.len())
            .field("published", &hub.published.len())
            .finish_non_exhaustive()
    }
}

fn routes(from: &Role, target: &PublishTarget, to: &Role) -> bool {
    match (from, target, to) {
        (Role::Source { .. }, PublishTarget::Cluster(c), Role::Agent { cluster_name, .. }) => c == cluster_name,
        (Role::Source { .. }, PublishTarget::AllClusters, Role::Agent { .. }) => true,
        (Role::Agent { .. }, PublishTarget::Source(s), Role::Source { source_id }) => s == source_id,
        (Role::Agent { .. }, PublishTarget::AllSources, Role::Source { .. }) => true,
        _ => false,
    }
}

impl FakeBroker {
    /// A new, empty broker that is up.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A transport for source `source_id`.
    pub fn source(&self, source_id: &str) -> FakeTransport {
        FakeTransport {
            broker: self.clone(),
            role: Role::source(source_id),
        }
    }

    /// A transport for the agent `agent_id` of `cluster_name`.
    pub fn agent(&self, cluster_name: &str, agent_id: &str) -> FakeTransport {
        FakeTransport {
            broker: self.clone(),
            role: Role::agent(cluster_name, agent_id),
        }
    }

    /// Takes the broker down (`true`: connects fail) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Drops every connection: subscriptions end with an error, publishes on them fail.
    pub fn disconnect_all(&self) {
        let mut hub = self.lock();
        hub.live.clear();
        for sub in hub.subscribers.drain(..) {
            // The receiver may be gone already; then there is nobody to tell.
            let _ = sub
                .tx
                .send(Err(TransportError::disconnected("connection reset by the fake broker")));
        }
    }

    /// Holds (`true`) or releases subscription acknowledgements.
    pub fn hold_subscriptions(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    /// Accepts publishes but delivers nothing (`true`), like a broker discarding messages for a
    /// subscriber that fell behind.
    pub fn set_drop_deliveries(&self, drop: bool) {
        self.lock().drop_deliveries = drop;
    }

    /// Makes every publish take `delay` before it is accepted (to widen race windows).
    pub fn set_publish_delay(&self, delay: std::time::Duration) {
        self.lock().publish_delay = delay;
    }

    /// Everything published so far.
    pub fn published(&self) -> Vec<Published> {
        self.lock().published.clone()
    }

    /// Everything published so far, clearing the record.
    pub fn take_published(&self) -> Vec<Published> {
        std::mem::take(&mut self.lock().published)
    }

    /// Live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Successful connects so far.
    pub fn connect_count(&self) -> usize {
        self.lock().connects
    }

    /// Connections closed gracefully with [`Connection::close`] (not just dropped) so far.
    pub fn close_count(&self) -> usize {
        self.lock().closes
    }

    /// Delivers `event` as if `from` had published it to `target`, without recording it.
    pub fn inject(&self, from: &Role, target: &PublishTarget, event: Event) {
        let hub = self.lock();
        for sub in hub.subscribers.iter().filter(|s| routes(from, target, &s.role)) {
            let _ = sub.tx.send(Ok(event.clone()));
        }
    }
}

/// A transport of the [`FakeBroker`] for one role.
#[derive(Debug, Clone)]
pub struct FakeTransport {
    broker: FakeBroker,
    role: Role,
}

/// A connection to the [`FakeBroker`].
#[derive(Debug)]
pub struct FakeConnection {
    broker: FakeBroker,
    role: Role,
    id: u64,
}

impl Transport for FakeTransport {
    type Connection = FakeConnection;

    async fn connect(&self) -> Result<FakeConnection, TransportError> {
        let mut hub = self.broker.lock();
        if hub.down {
            return Err(TransportError::connect("the fake broker is down"));
        }
        hub.next_id += 1;
        let id = hub.next_id;
        hub.live.push(id);
        hub.connects += 1;
        Ok(FakeConnection {
            broker: self.broker.clone(),
            role: self.role.clone(),
            id,
        })
    }
}

impl FakeConnection {
    fn is_live(&self) -> bool {
        self.broker.lock().live.contains(&self.id)
    }
}

impl Connection for FakeConnection {
    async fn publish(&self, target: &PublishTarget, event: &Event) -> Result<(), TransportError> {
        let delay = self.broker.lock().publish_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut hub = self.broker.lock();
        if !hub.live.contains(&self.id) {
            return Err(TransportError::disconnected("the connection is closed"));
        }
        hub.published.push(Published {
            from: self.role.clone(),
            target: target.clone(),
            event: event.clone(),
        });
        if !hub.drop_deliveries {
            for sub in hub.subscribers.iter().filter(|s| routes(&self.role, target, &s.role)) {
                let _ = sub.tx.send(Ok(event.clone()));
            }
        }
        Ok(())
    }

    async fn subscribe(&self) -> Result<Subscription, TransportError> {
        let mut held = self.broker.hold.subscribe();
        // Wait while acknowledgements are held; an error means the broker is gone.
        if held.wait_for(|h| !*h).await.is_err() || !self.is_live() {
            return Err(TransportError::subscribe("the connection is closed"));
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.broker.lock().subscribers.push(Sub {
            connection: self.id,
            role: self.role.clone(),
            tx,
        });
        Ok(Subscription::from_stream(futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    async fn close(&self) {
        let mut hub = self.broker.lock();
        hub.closes += 1;
        hub.live.retain(|id| *id != self.id);
        hub.subscribers.retain(|s| s.connection != self.id);
    }
}

impl Drop for FakeConnection {
    fn drop(&mut self) {
        let mut hub = self.broker.lock();
        hub.live.retain(|id| *id != self.id);
        hub.subscribers.retain(|s| s.connection != self.id);
    }
}
