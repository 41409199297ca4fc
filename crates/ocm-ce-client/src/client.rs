//! A client of either side: its options, the [`Client`] type with everything the two sides
//! share (publishing, receiving, the resync protocol's requests and answers), and the state it
//! keeps (the connection slot, the publish order, the connection state).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use futures::StreamExt;
use ocm_ce_core::{Codec, EventType, ResourceObject};
use tokio::time::Instant;

use crate::backoff::BackoffConfig;
use crate::driver::ClientStream;
use crate::error::{Error, Result};
use crate::lister::{Lister, StatusHasher};
use crate::metrics::ClientMetrics;
use crate::rate_limit::{Limiter, RateLimit};
use crate::side::Side;
use crate::transport::{Connection, PublishTarget, Transport};

/// Events of one resync answer in flight at a time.
const ANSWER_WINDOW: usize = 32;
/// Resync requests of one peer that may wait while an earlier one is answered.
pub(crate) const QUEUED_ANSWERS: usize = 64;
/// How often one part of a resync is tried before the resync fails.
pub(crate) const RESYNC_PART_ATTEMPTS: u32 = 5;
/// Bytes reserved for the topic, the attributes and the framing of an event whose data is a
/// resync payload, when a connection limits the size of what it sends.
const EVENT_HEADROOM: usize = 8 * 1024;

/// Options shared by source and agent clients. `Default` gives Go's behaviour plus the
/// improvements documented on each field.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientOptions {
    /// Publish rate limit; `None` turns it off. Default: 50 QPS, burst 100 (Go).
    pub rate_limit: Option<RateLimit>,
    /// Reconnect back-off. Default: Go's shape.
    pub backoff: BackoffConfig,
    /// Resync after every confirmed (re)subscription. Default: on. (Go leaves this to callers,
    /// who send it before the subscription is confirmed and can lose the answers.)
    pub resync_on_connect: bool,
    /// Periodic anti-entropy resync; `None` turns it off. Default: 5 minutes. Recovers events a
    /// broker dropped without a disconnect; in sync it costs one request and no answers.
    pub resync_interval: Option<Duration>,
    /// Delay before retrying a resync whose request could not be sent. Default: 5 seconds.
    pub resync_retry: Duration,
    /// Largest data of one status resync request; bigger hash lists are split. Default 256 KiB.
    pub max_resync_payload_bytes: usize,
    /// When a peer's resync request arrives within this window after our own subscription was
    /// confirmed, we send our resync request to that peer once more (once per peer and
    /// connection). After a broker restart the side that subscribed first sent its request
    /// before the other side was listening; this recovers it at once instead of at the next
    /// periodic resync. `None` turns it off. Default: 60 seconds.
    pub answer_resync_window: Option<Duration>,
    /// Where metrics are recorded (clones share values).
    pub metrics: ClientMetrics,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            rate_limit: Some(RateLimit::default()),
            backoff: BackoffConfig::default(),
            resync_on_connect: true,
            resync_interval: Some(Duration::from_secs(300)),
            resync_retry: Duration::from_secs(5),
            max_resync_payload_bytes: ocm_ce_core::payload::MAX_RESYNC_PAYLOAD_BYTES,
            answer_resync_window: Some(Duration::from_secs(60)),
            metrics: ClientMetrics::default(),
        }
    }
}

impl ClientOptions {
    ocm_ce_core::builder_setters! {
        /// Sets the rate limit (`None` = unlimited).
        fn rate_limit(limit: Option<RateLimit>) => rate_limit;
        /// Sets the reconnect back-off.
        fn backoff(backoff: BackoffConfig) => backoff;
        /// Turns the resync after each confirmed subscription on or off.
        fn resync_on_connect(on: bool) => resync_on_connect;
        /// Sets the periodic resync interval (`None` = off).
        fn resync_interval(interval: Option<Duration>) => resync_interval;
        /// Sets the window in which a peer's resync request is answered with our own (`None` = off).
        fn answer_resync_window(window: Option<Duration>) => answer_resync_window;
        /// Sets the metrics sink.
        fn metrics(metrics: ClientMetrics) => metrics;
    }
}

/// What a subscription stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent<T> {
    /// The first subscription was confirmed (and, when enabled, the resync request sent).
    Connected,
    /// The subscription was confirmed again after a connection loss (and resync sent).
    Reconnected,
    /// A received resource, decoded: a spec on agents, a status on sources. The client keeps
    /// no state of its own; the receiver, which holds the resources, decides what it means
    /// (for a spec: [`ocm_ce_core::resync::spec_action`] against the copy it holds).
    Received(T),
}

/// The connection state of a client (one record, see [`Client::is_connected`] and
/// [`Client::last_error`]).
#[derive(Debug, Default, Clone)]
struct ConnectionState {
    confirmed: bool,
    last_error: Option<String>,
}

/// A CloudEvents client of one side: a source ([`SourceClient`](crate::SourceClient), Go
/// `CloudEventSourceClient`) or an agent ([`AgentClient`](crate::AgentClient), Go
/// `CloudEventAgentClient`). It publishes what its side sends, hands up what it receives
/// through its subscription stream, and runs the resync protocol: requests after each
/// confirmed subscription and periodically, answers to the peers' requests. It reads what it
/// answers with through a [`Lister`] (and a source its requests' status hashes through a
/// [`StatusHasher`]); it never writes what its owner holds.
pub struct Client<T, Tr: Transport, S> {
    inner: Arc<Shared<T, Tr, S>>,
}

struct Shared<T, Tr: Transport, S> {
    base: Base<T, Tr>,
    side: S,
}

impl<T, Tr: Transport, S> Clone for Client<T, Tr, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T, Tr: Transport, S: Side> fmt::Debug for Client<T, Tr, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("side", &self.inner.side)
            .field("connected", &self.inner.base.is_connected())
            .finish_non_exhaustive()
    }
}

impl<T, Tr: Transport, S> Client<T, Tr, S> {
    pub(crate) fn base(&self) -> &Base<T, Tr> {
        &self.inner.base
    }

    pub(crate) fn side(&self) -> &S {
        &self.inner.side
    }
}

impl<T, Tr, S> Client<T, Tr, S>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
    S: Side,
{
    /// A client of `side`: `codec` is what it encodes and decodes with, `lister` and
    /// `status_hash` what it reads for the resync protocol.
    pub(crate) fn with_side(
        transport: Tr,
        side: S,
        codec: impl Codec<T> + 'static,
        lister: impl Lister<T> + 'static,
        status_hash: impl StatusHasher<T> + 'static,
        options: ClientOptions,
    ) -> Self {
        let base = Base::new(
            transport,
            Arc::new(codec),
            Arc::new(lister),
            Arc::new(status_hash),
            options,
        );
        Self {
            inner: Arc::new(Shared { base, side }),
        }
    }

    /// True while the subscription is confirmed (and the resync request after it was sent).
    pub fn is_connected(&self) -> bool {
        self.inner.base.is_connected()
    }

    /// Waits until the subscription is confirmed (and the resync request after it was sent);
    /// the subscription stream must be polled meanwhile. Returns when the client is closed.
    pub async fn wait_until_connected(&self) {
        self.inner.base.wait_until_connected().await;
    }

    /// The last error the subscription met (connecting, subscribing, resyncing), with its
    /// causes; kept after a reconnection, for diagnostics.
    pub fn last_error(&self) -> Option<String> {
        self.inner.base.last_error()
    }

    /// The metrics of this client.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.inner.base.options.metrics
    }

    /// Publishes an event of `event_type` for `resource`: a spec from a source, routed to the
    /// cluster in its `clustername`; a status from an agent, routed to the source in its
    /// `originalsource`. `event_type` must be of what this side sends. Fails with a retryable
    /// error while disconnected.
    ///
    /// Takes a [`PublishTurn`] of its own: a resync answer is never sent around it. A caller
    /// that reads `resource` from a store the resync answers list should take the turn before
    /// reading ([`turn`](Self::turn), then [`publish_in_turn`](Self::publish_in_turn)).
    pub async fn publish(&self, event_type: &EventType, resource: &T) -> Result<()> {
        let turn = self.turn().await;
        self.publish_in_turn(&turn, event_type, resource).await
    }

    /// A turn to publish: while it is held no resync answer of this client is built or sent
    /// (see [`PublishTurn`]). Waits while one is.
    pub async fn turn(&self) -> PublishTurn {
        self.inner.base.publish_turn().await
    }

    /// [`publish`](Self::publish) within a turn taken with [`turn`](Self::turn) (of this client:
    /// another's fails with [`Error::ForeignTurn`]).
    pub async fn publish_in_turn(&self, turn: &PublishTurn, event_type: &EventType, resource: &T) -> Result<()> {
        self.inner.base.check_turn(turn)?;
        if event_type.sub_resource != S::PUBLISHES {
            return Err(Error::UnsupportedEventType {
                event_type: event_type.to_string(),
            });
        }
        let event = self.encode(event_type, resource)?;
        let target = S::target(&event)?;
        self.inner.base.send(&target, &event).await
    }

    /// Sends this side's resync request to `peer`: a source asks the agents of cluster `peer`
    /// (`""` = all clusters) for the statuses that differ from the ones it holds (large hash
    /// lists are split over several events); an agent asks source `peer` (`""` = every
    /// source) for the specs newer than the ones it holds. One request per data type.
    pub async fn resync(&self, peer: &str) -> Result<()> {
        S::request_resync(self, peer).await
    }

    /// The subscription stream: [`ClientEvent::Received`] for each resource received, with the
    /// connection markers. Only one per client; a second call yields
    /// [`Error::AlreadySubscribed`].
    pub fn subscribe(&self) -> ClientStream<T> {
        ClientStream::drive(self.clone())
    }

    /// Shuts the client down gracefully: its subscription stream ends, and the connection is
    /// closed the way the transport closes cleanly (MQTT DISCONNECT; Kafka: producer flushed,
    /// consumer leaves its group with its handled offsets committed, so a successor in the same
    /// group starts at once instead of after the session timeout). Call it before the process
    /// exits; dropping the client instead closes the connection in the background, which an
    /// exiting process may cut short. Publishing afterwards fails with [`Error::NotConnected`].
    pub async fn close(&self) {
        self.inner.base.close().await;
    }

    /// Encodes `resource` as an event of `event_type` sent by this side.
    pub(crate) fn encode(&self, event_type: &EventType, resource: &T) -> Result<Event> {
        self.inner
            .base
            .encode(self.inner.side.sender_id(), event_type, resource)
    }

    /// A label for logs.
    pub(crate) fn describe(&self) -> String {
        self.inner.side.describe()
    }

    /// Waits for `answer`, this side's answer to a resync request of `event_type` between
    /// `source` and `cluster`, and records how long it took (Go's resync histograms).
    pub(crate) async fn timed_answer(
        &self,
        source: &str,
        cluster: &str,
        event_type: &EventType,
        answer: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        let started = Instant::now();
        let result = answer.await;
        self.metrics().observe_resync(
            S::PUBLISHES,
            source,
            cluster,
            &event_type.data_type.to_string(),
            started.elapsed().as_secs_f64(),
        );
        result
    }

    /// Resyncs with every peer (on connect and periodically).
    pub(crate) async fn resync_all(&self) -> Result<()> {
        S::request_resync(self, "").await
    }

    /// Answers a peer's resync request (runs beside receiving), then, within the
    /// `answer_resync_window`, sends that peer our own request once.
    pub(crate) async fn answer(&self, request: Event) {
        let Ok(event_type) = request.ty().parse::<EventType>() else {
            return;
        };
        let base = &self.inner.base;
        if let Err(e) = S::answer_request(self, &event_type, &request).await {
            if matches!(e, Error::Payload(_)) {
                base.options.metrics.dropped("bad_resync_payload");
            }
            tracing::warn!(error = %crate::Report(&e), peer = %S::request_peer(&request), "failed to answer a {} resync request", S::PUBLISHES);
        }
        if let Some(peer) = S::asking_peer(&request)
            && base.should_answer_resync(&peer)
            && let Err(e) = S::request_resync(self, &peer).await
        {
            tracing::warn!(error = %crate::Report(&e), peer, "failed to request a {} resync", S::RECEIVES);
        }
    }

    /// Handles one received event: a resync request is queued for an answer, a resource of what
    /// this side receives is decoded and handed up; anything else is dropped (and counted when
    /// it is malformed).
    pub(crate) fn handle(&self, event: Event) -> Handled<T> {
        let base = &self.inner.base;
        let metrics = &base.options.metrics;
        let event_type: EventType = match event.ty().parse() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, id = event.id(), "dropping event with a malformed type");
                metrics.dropped("malformed_type");
                return Handled::Nothing;
            }
        };
        if event_type.is_resync_request() {
            if event_type.sub_resource != S::PUBLISHES {
                tracing::debug!(%event_type, "unsupported event type, ignore");
                return Handled::Nothing;
            }
            if let Err(e) = S::check_request(&data_bytes(&event)) {
                tracing::warn!(error = %e, id = event.id(), source = event.source(), "dropping a resync request with a bad payload");
                metrics.dropped("bad_resync_payload");
                return Handled::Nothing;
            }
            return Handled::Answer {
                peer: S::request_peer(&event),
                request: Box::new(event),
            };
        }
        if event_type.sub_resource != S::RECEIVES {
            tracing::debug!(%event_type, "unsupported event type, ignore");
            return Handled::Nothing;
        }
        if !base.codec.handles(&event_type.data_type) {
            tracing::warn!(data_type = %event_type.data_type, "failed to find the codec for event, ignore");
            metrics.dropped("unknown_data_type");
            return Handled::Nothing;
        }
        if !self.inner.side.accept(&event, metrics) {
            return Handled::Nothing;
        }
        match base.codec.decode(&event) {
            Ok(resource) => Handled::Yield(ClientEvent::Received(resource)),
            Err(e) => {
                log_undecodable(S::RECEIVES.as_str(), &event, &e, metrics);
                Handled::Nothing
            }
        }
    }
}

/// The state of a client, whichever its side.
pub(crate) struct Base<T, Tr: Transport> {
    pub(crate) transport: Tr,
    pub(crate) codec: Arc<dyn Codec<T>>,
    pub(crate) lister: Arc<dyn Lister<T>>,
    pub(crate) hasher: Arc<dyn StatusHasher<T>>,
    pub(crate) options: ClientOptions,
    limiter: Option<Limiter>,
    connection: RwLock<Option<Arc<Tr::Connection>>>,
    /// A connection being subscribed (not usable yet): `close` closes it too, so that it does
    /// not linger (e.g. a Kafka consumer that joined its group while `subscribe` waited).
    pub(crate) connecting: std::sync::Mutex<Option<Arc<Tr::Connection>>>,
    subscribed: AtomicBool,
    /// The one record of the connection's state: whether the subscription is confirmed (and
    /// the resync request after it sent), and the last error the subscription met.
    state: tokio::sync::watch::Sender<ConnectionState>,
    session: std::sync::Mutex<Session>,
    /// Set once by [`Base::close`]; ends the subscription stream and keeps it from reconnecting.
    closed: tokio::sync::watch::Sender<bool>,
    /// Orders resync answers against publishes (see [`PublishTurn`]): publishes share it, an
    /// answer holds it alone from listing the resources until its last event is sent.
    order: Arc<tokio::sync::RwLock<()>>,
}

/// A client's turn to publish. While one is held, no resync answer of that client is being
/// built or sent; an answer that starts meanwhile waits until every turn is released, and then
/// lists the resources as they are after those publishes.
///
/// Without it a resync answer, listed before a change and sent after the change's own event,
/// reaches the peer last and undoes the change there: the old spec of a work an agent has just
/// deleted re-creates it, an old status overwrites a newer one at the source. Read what you
/// publish while holding the turn (`turn`, read your store, `publish_in_turn`), and nothing
/// older can overtake it. [`Client::publish`] takes a turn of its own.
#[must_use = "a turn orders only the publishes made while it is held"]
pub struct PublishTurn {
    guard: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl fmt::Debug for PublishTurn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishTurn").finish_non_exhaustive()
    }
}

/// The current subscription: when it was confirmed, and the peers we already answered a resync
/// request with one of our own.
#[derive(Debug)]
struct Session {
    since: Instant,
    answered: std::collections::HashSet<String>,
}

impl<T, Tr: Transport> fmt::Debug for Base<T, Tr> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Base")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl<T, Tr: Transport> Base<T, Tr> {
    pub(crate) fn new(
        mut transport: Tr,
        codec: Arc<dyn Codec<T>>,
        lister: Arc<dyn Lister<T>>,
        hasher: Arc<dyn StatusHasher<T>>,
        options: ClientOptions,
    ) -> Self {
        transport.set_data_types(codec.data_types());
        Self {
            transport,
            codec,
            lister,
            hasher,
            limiter: options.rate_limit.map(Limiter::new),
            options,
            connection: RwLock::new(None),
            connecting: std::sync::Mutex::new(None),
            subscribed: AtomicBool::new(false),
            state: tokio::sync::watch::Sender::new(ConnectionState::default()),
            session: std::sync::Mutex::new(Session {
                since: Instant::now(),
                answered: Default::default(),
            }),
            closed: tokio::sync::watch::Sender::new(false),
            order: Arc::new(tokio::sync::RwLock::new(())),
        }
    }

    /// A turn to publish (waits while a resync answer is built or sent).
    pub(crate) async fn publish_turn(&self) -> PublishTurn {
        PublishTurn {
            guard: self.order.clone().read_owned().await,
        }
    }

    /// Fails unless `turn` is one of this client's.
    pub(crate) fn check_turn(&self, turn: &PublishTurn) -> Result<()> {
        if Arc::ptr_eq(tokio::sync::OwnedRwLockReadGuard::rwlock(&turn.guard), &self.order) {
            Ok(())
        } else {
            Err(Error::ForeignTurn)
        }
    }

    /// The exclusive turn of a resync answer: held from listing the resources until the last
    /// event of the answer is sent, so that no publish of this client overtakes it or is
    /// overtaken by it.
    pub(crate) async fn answer_turn(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.order.clone().write_owned().await
    }

    /// Closes the client for good: the subscription stream ends (it neither reconnects nor
    /// yields an error for the lost connection) and the current connection, or the one being
    /// subscribed, is closed gracefully (the transport flushes what it sends and leaves its consumer group, so a
    /// successor starts at once). Publishing afterwards fails with [`Error::NotConnected`].
    pub(crate) async fn close(&self) {
        // Take the connection before the stream can see `closed`: the stream's driver, once it
        // ends, clears the slot and drops its own handle (a drop, not a graceful close).
        // The `connecting` lock is held while the flag is set: a driver registers a connection
        // only while the flag is unset, under that lock (see `Driver::connect`), and the slot
        // is emptied here before a driver that sees the flag can clear it.
        let (conn, connecting) = {
            let mut connecting = self
                .connecting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let conn = match self.connection.write() {
                Ok(mut slot) => {
                    self.closed.send_replace(true);
                    slot.take()
                }
                Err(_) => {
                    self.closed.send_replace(true);
                    None
                }
            };
            (conn, connecting.take())
        };
        self.state
            .send_if_modified(|s| std::mem::replace(&mut s.confirmed, false));
        for conn in [conn, connecting].into_iter().flatten() {
            conn.close().await;
        }
    }

    /// Encodes `resource` as an event of `event_type` sent by `sender` (a source id or an
    /// agent id), refusing data types the codec does not handle.
    pub(crate) fn encode(&self, sender: &str, event_type: &EventType, resource: &T) -> Result<Event> {
        if !self.codec.handles(&event_type.data_type) {
            return Err(Error::NoCodec {
                data_type: event_type.data_type.clone(),
            });
        }
        Ok(self.codec.encode(sender, event_type, resource)?)
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    pub(crate) fn new_session(&self) {
        if let Ok(mut s) = self.session.lock() {
            *s = Session {
                since: Instant::now(),
                answered: Default::default(),
            };
        }
    }

    /// True (once per peer and session) when a resync request from `peer` arrived soon enough
    /// after our subscription that our own request may have been sent before the peer listened.
    pub(crate) fn should_answer_resync(&self, peer: &str) -> bool {
        let Some(window) = self.options.answer_resync_window else {
            return false;
        };
        self.session
            .lock()
            .is_ok_and(|mut s| s.since.elapsed() <= window && s.answered.insert(peer.to_owned()))
    }

    /// True while a connection is installed (it may still be resyncing).
    pub(crate) fn has_connection(&self) -> bool {
        self.connection.read().map(|c| c.is_some()).unwrap_or(false)
    }

    /// True while the subscription is confirmed.
    pub(crate) fn is_connected(&self) -> bool {
        self.state.borrow().confirmed
    }

    /// Records what the subscription stream yields: a confirmation, or an error.
    pub(crate) fn observe<R>(&self, item: &Result<ClientEvent<R>>) {
        match item {
            Ok(ClientEvent::Connected | ClientEvent::Reconnected) => {
                // Unless the connection was lost or closed while the marker waited.
                if self.has_connection() {
                    self.state.send_modify(|s| s.confirmed = true);
                }
            }
            Ok(ClientEvent::Received(_)) => {}
            Err(e) => {
                let text = crate::Report(e).to_string();
                self.state.send_modify(|s| s.last_error = Some(text));
            }
        }
    }

    /// The last error of the subscription, with its causes.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.state.borrow().last_error.clone()
    }

    /// Waits until the subscription is confirmed, or the client is closed (it never will be
    /// then); returns at once when either is so.
    pub(crate) async fn wait_until_connected(&self) {
        let (mut state, mut closed) = (self.state.subscribe(), self.closed.subscribe());
        // Both senders live as long as `self`.
        tokio::select! {
            _ = state.wait_for(|s| s.confirmed) => {}
            _ = closed.wait_for(|c| *c) => {}
        }
    }

    /// A receiver of the closed flag, for the subscription stream.
    pub(crate) fn closed_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// The subscription stream is gone: its connection is dropped and a new one may start.
    pub(crate) fn stream_dropped(&self) {
        self.set_current(None);
        if let Ok(mut slot) = self.connecting.lock() {
            slot.take();
        }
        self.subscribed.store(false, Ordering::SeqCst);
    }

    fn current(&self) -> Option<Arc<Tr::Connection>> {
        self.connection.read().ok().and_then(|c| c.clone())
    }

    pub(crate) fn set_current(&self, conn: Option<Arc<Tr::Connection>>) {
        if let Ok(mut slot) = self.connection.write() {
            // Checked under the lock `close` sets the flag under: a connection that comes up
            // while the client closes is never installed (its driver drops it).
            if conn.is_some() && self.is_closed() {
                return;
            }
            if conn.is_none() {
                self.state
                    .send_if_modified(|s| std::mem::replace(&mut s.confirmed, false));
            }
            *slot = conn;
        }
    }

    /// Sends one event through the current connection, after the rate limiter.
    pub(crate) async fn send(&self, target: &PublishTarget, event: &Event) -> Result<()> {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        let conn = self.current().ok_or(Error::NotConnected)?;
        conn.publish(target, event).await.map_err(Error::Transport)
    }

    /// Sends one part of a resync (a request, or one event of an answer), retrying it on its own
    /// with a short back-off while the connection is up: a broker that pushes back or a lost
    /// acknowledgement does not abandon the rest of the resync. Gives up when the connection is
    /// gone (the next connection resyncs anyway) or after [`RESYNC_PART_ATTEMPTS`].
    pub(crate) async fn send_resync_part(&self, target: &PublishTarget, event: &Event) -> Result<()> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.send(target, event).await {
                Err(e) if e.is_retryable() && attempt < RESYNC_PART_ATTEMPTS && self.has_connection() => {
                    tracing::debug!(error = %crate::Report(&e), attempt, "retrying a part of a resync");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Sends the events of a resync answer, up to [`ANSWER_WINDOW`] at a time, each retried on
    /// its own ([`send_resync_part`](Self::send_resync_part)); the first error ends it. The
    /// events are built lazily, each just before it is sent.
    pub(crate) async fn send_answers(
        &self,
        events: impl Iterator<Item = Result<Event>>,
        target: fn(&Event) -> Result<PublishTarget, ocm_ce_core::TopicError>,
    ) -> Result<()> {
        let mut sends = futures::stream::iter(events)
            .map(|event| async move {
                let event = event?;
                let target = target(&event)?;
                self.send_resync_part(&target, &event).await
            })
            .buffer_unordered(ANSWER_WINDOW);
        while let Some(sent) = sends.next().await {
            sent?;
        }
        Ok(())
    }

    /// The largest resync data this client puts in one event: the configured maximum, or less
    /// when the current connection cannot carry that much (an MQTT broker's packet limit, with
    /// room for the topic and the event's attributes).
    pub(crate) fn max_resync_data(&self) -> usize {
        let configured = self.options.max_resync_payload_bytes;
        match self.current().and_then(|c| c.max_event_bytes()) {
            Some(limit) => configured.min(limit.saturating_sub(EVENT_HEADROOM).max(1024)),
            None => configured,
        }
    }

    /// Claims the single subscription of this client.
    pub(crate) fn claim_subscription(&self) -> bool {
        !self.subscribed.swap(true, Ordering::SeqCst)
    }
}

/// Logs and counts a received event whose data the codec could not decode. The log names the
/// event, the error kind, and the data's size and SHA-256, never the data itself (a payload
/// may be binary, huge, or confidential; Go's error texts quote it whole, twice).
pub(crate) fn log_undecodable(what: &str, event: &Event, e: &ocm_ce_core::CodecError, metrics: &ClientMetrics) {
    use sha2::Digest;
    let data = data_bytes(event);
    let digest = sha2::Sha256::digest(&data);
    let reason = match e.kind() {
        // Their texts quote the data or an agent-written extension.
        ocm_ce_core::CodecErrorKind::BadData | ocm_ce_core::CodecErrorKind::BadExtension => None,
        _ => Some(e.to_string()),
    };
    tracing::warn!(
        id = event.id(),
        ty = event.ty(),
        kind = e.kind().as_str(),
        reason = reason.as_deref().unwrap_or("see kind"),
        data_bytes = data.len(),
        data_sha256 = %hex::encode(&digest[..8]),
        "failed to decode a received {what} event; dropped"
    );
    metrics.dropped(e.kind().as_str());
}

/// What handling one received event produced.
pub(crate) enum Handled<T> {
    /// Yield this to the subscriber.
    Yield(ClientEvent<T>),
    /// A peer (a source id, or a cluster name) asked for a resync: answer it off the receive
    /// path, so a long answer never stops the client from reading its subscription (two peers
    /// answering each other inline under broker flow control would wait for each other).
    Answer {
        /// Who asked.
        peer: String,
        /// The request.
        request: Box<Event>,
    },
    /// Nothing to do (ignored, dropped and counted, or handled).
    Nothing,
}

/// The data of a received event as bytes (empty when absent).
pub(crate) fn data_bytes(event: &Event) -> Vec<u8> {
    match event.data() {
        Some(cloudevents::Data::Binary(b)) => b.clone(),
        Some(cloudevents::Data::String(s)) => s.clone().into_bytes(),
        Some(cloudevents::Data::Json(v)) => serde_json::to_vec(v).unwrap_or_default(),
        None => Vec::new(),
    }
}
