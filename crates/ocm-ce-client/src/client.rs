//! What the source and agent clients share: options, the connection slot, publishing, and the
//! subscription driver that (re)connects, subscribes, resyncs and decodes.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use futures::{Stream, StreamExt};
use ocm_ce_core::{Codec, EventType, ResourceAction};
use tokio::time::Instant;

use crate::backoff::{Backoff, BackoffConfig};
use crate::error::{Error, Result, TransportError};
use crate::lister::{Lister, StatusHasher};
use crate::metrics::ClientMetrics;
use crate::rate_limit::{Limiter, RateLimit};
use crate::transport::{Connection, PublishTarget, Subscription, Transport};

/// Events of one resync answer in flight at a time.
const ANSWER_WINDOW: usize = 32;
/// Resync requests of one peer that may wait while an earlier one is answered.
const QUEUED_ANSWERS: usize = 64;
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
    /// Sets the rate limit (`None` = unlimited).
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }
    /// Sets the reconnect back-off.
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }
    /// Turns the resync after each confirmed subscription on or off.
    pub fn resync_on_connect(mut self, on: bool) -> Self {
        self.resync_on_connect = on;
        self
    }
    /// Sets the periodic resync interval (`None` = off).
    pub fn resync_interval(mut self, interval: Option<Duration>) -> Self {
        self.resync_interval = interval;
        self
    }
    /// Sets the window in which a peer's resync request is answered with our own (`None` = off).
    pub fn answer_resync_window(mut self, window: Option<Duration>) -> Self {
        self.answer_resync_window = window;
        self
    }

    /// Sets the metrics sink.
    pub fn metrics(mut self, metrics: ClientMetrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// What a subscription stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent<T> {
    /// The first subscription was confirmed (and, when enabled, the resync request sent).
    Connected,
    /// The subscription was confirmed again after a connection loss (and resync sent).
    Reconnected,
    /// A received resource: specs on agents (`Added`, `Modified`, `Deleted`), statuses on
    /// sources (`StatusModified`).
    Resource {
        /// What happened.
        action: ResourceAction,
        /// The decoded resource.
        resource: T,
    },
}

/// The state both client kinds share.
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
    connecting: std::sync::Mutex<Option<Arc<Tr::Connection>>>,
    subscribed: AtomicBool,
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
/// older can overtake it. [`SourceClient::publish`](crate::SourceClient::publish) and
/// [`AgentClient::publish`](crate::AgentClient::publish) take a turn of their own.
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

    fn new_session(&self) {
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

    pub(crate) fn is_connected(&self) -> bool {
        self.connection.read().map(|c| c.is_some()).unwrap_or(false)
    }

    fn current(&self) -> Option<Arc<Tr::Connection>> {
        self.connection.read().ok().and_then(|c| c.clone())
    }

    fn set_current(&self, conn: Option<Arc<Tr::Connection>>) {
        if let Ok(mut slot) = self.connection.write() {
            // Checked under the lock `close` sets the flag under: a connection that comes up
            // while the client closes is never installed (its driver drops it).
            if conn.is_some() && self.is_closed() {
                return;
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
                Err(e) if e.is_retryable() && attempt < RESYNC_PART_ATTEMPTS && self.is_connected() => {
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
    let data = crate::source::data_bytes(event);
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

/// The side-specific behaviour the driver needs.
pub(crate) trait Side<T>: Clone + Send + Sync + 'static {
    type Tr: Transport;
    fn base(&self) -> &Base<T, Self::Tr>;
    /// Handles one received event.
    fn handle(&self, event: Event) -> Handled<T>;
    /// Answers a peer's resync request (runs concurrently with receiving).
    fn answer(&self, request: Event) -> impl Future<Output = ()> + Send;
    /// Resyncs everything (on connect and periodically).
    fn resync_all(&self) -> impl Future<Output = Result<()>> + Send;
    /// A label for logs.
    fn describe(&self) -> String;
}

use std::future::Future;

use tracing::Instrument;

/// The span of a received event (and of the answer to a resync request): who sent it, the
/// cluster it is for, the resource it is about and its type.
fn event_span(event: &Event) -> tracing::Span {
    use ocm_ce_core::EventExt;
    tracing::info_span!(
        "cloudevent",
        source = %event.source(),
        cluster = %event.cluster_name().unwrap_or_default(),
        resource_id = %event.resource_id().unwrap_or_default(),
        event_type = %event.ty(),
    )
}

/// The span of a client's own resync request (to every peer).
fn resync_span(client: &str) -> tracing::Span {
    tracing::info_span!("resync_request", client = %client)
}

enum State<C> {
    Disconnected { retry_at: Option<Instant> },
    Connected { conn: Arc<C>, events: Subscription },
}

/// Work the driver runs beside receiving.
enum Task {
    Resync(Result<()>),
    Answered(String),
}

struct Driver<T, S: Side<T>> {
    side: S,
    state: State<<S::Tr as Transport>::Connection>,
    backoff: Backoff,
    connected_once: bool,
    /// When the current connection's subscription was confirmed (a loss soon after it counts
    /// as a failed attempt for the back-off).
    since: Option<Instant>,
    next_resync: Option<Instant>,
    resyncing: bool,
    pending: VecDeque<Result<ClientEvent<T>>>,
    tasks: futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, Task>>,
    /// Peers whose resync request is being answered, with the requests that arrived
    /// meanwhile (answered next, in order: a large request comes in several parts).
    answering: std::collections::HashMap<String, VecDeque<Box<Event>>>,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A connection that stayed up at least this long is re-established at once after a loss
/// (Go waits its back-off first): a broker restart or a disconnect as a slow consumer is
/// repaired within about a second. Faster losses go through the back-off.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(10);
/// The delay before re-establishing a healthy connection: up to this long, jittered so the
/// clients of a restarted broker do not all come back in the same instant.
const QUICK_RECONNECT: Duration = Duration::from_millis(500);

impl<T: Send + 'static, S: Side<T>> Driver<T, S> {
    /// Connects and subscribes. While the subscription is pending the connection sits in the
    /// `connecting` slot, where `close` finds it: a client closed meanwhile (this future is
    /// then dropped) still closes it gracefully.
    async fn connect(
        side: &S,
    ) -> std::result::Result<(Arc<<S::Tr as Transport>::Connection>, Subscription), TransportError> {
        let base = side.base();
        let conn = Arc::new(base.transport.connect().await?);
        let registered = match base.connecting.lock() {
            Ok(mut slot) if !base.is_closed() => {
                *slot = Some(conn.clone());
                true
            }
            _ => false,
        };
        if !registered {
            conn.close().await;
            return Err(TransportError::disconnected("the client is closed"));
        }
        let subscribed = conn.subscribe().await;
        if let Ok(mut slot) = base.connecting.lock() {
            slot.take();
        }
        match subscribed {
            Ok(events) => Ok((conn, events)),
            Err(e) => {
                conn.close().await;
                Err(e)
            }
        }
    }

    /// Starts a resync beside receiving (at most one at a time).
    fn start_resync(&mut self) {
        if self.resyncing {
            return;
        }
        self.resyncing = true;
        let side = self.side.clone();
        let span = resync_span(&side.describe());
        self.tasks.push(Box::pin(
            async move { Task::Resync(side.resync_all().await) }.instrument(span),
        ));
    }

    fn resync_done(&mut self, result: Result<()>) {
        self.resyncing = false;
        let options = &self.side.base().options;
        let (interval, retry) = (options.resync_interval, options.resync_retry);
        match result {
            Ok(()) => self.next_resync = interval.map(|i| Instant::now() + i),
            Err(e) => {
                tracing::warn!(client = %self.side.describe(), error = %crate::Report(&e), "resync failed");
                let delay = if e.is_retryable() {
                    retry
                } else {
                    interval.unwrap_or(retry)
                };
                self.next_resync = Some(Instant::now() + interval.map_or(delay, |i| i.min(delay)));
                self.pending.push_back(Err(e));
            }
        }
    }

    /// Answers `request` from `peer` beside receiving; a request from a peer already being
    /// answered waits for that answer (at most [`QUEUED_ANSWERS`] wait per peer).
    fn start_answer(&mut self, peer: String, request: Box<Event>) {
        if let Some(waiting) = self.answering.get_mut(&peer) {
            if waiting.len() >= QUEUED_ANSWERS {
                // A peer that keeps asking faster than we answer: the oldest waiting request
                // is dropped; any later one covers what it asked for again.
                tracing::warn!(client = %self.side.describe(), peer, "too many resync requests from one peer; dropping the oldest");
                self.side.base().options.metrics.dropped("resync_backlog");
                waiting.pop_front();
            }
            waiting.push_back(request);
            return;
        }
        self.answering.insert(peer.clone(), VecDeque::new());
        self.spawn_answer(peer, request);
    }

    fn spawn_answer(&mut self, peer: String, request: Box<Event>) {
        let side = self.side.clone();
        let span = event_span(&request);
        self.tasks.push(Box::pin(
            async move {
                side.answer(*request).await;
                Task::Answered(peer)
            }
            .instrument(span),
        ));
    }

    fn answered(&mut self, peer: String) {
        match self.answering.get_mut(&peer).and_then(VecDeque::pop_front) {
            Some(request) => self.spawn_answer(peer, request),
            None => {
                self.answering.remove(&peer);
            }
        }
    }

    fn finished(&mut self, task: Task) {
        match task {
            Task::Resync(result) => self.resync_done(result),
            Task::Answered(peer) => self.answered(peer),
        }
    }

    fn lost(&mut self, reason: TransportError) -> Error {
        self.side.base().set_current(None);
        // What ran on the lost connection fails or is moot; the next connection resyncs.
        self.tasks = futures::stream::FuturesUnordered::new();
        self.answering.clear();
        self.resyncing = false;
        let healthy = self.since.take().is_some_and(|s| s.elapsed() >= HEALTHY_CONNECTION);
        let delay = if healthy {
            QUICK_RECONNECT.mul_f64(rand::random::<f64>())
        } else {
            self.backoff.next_delay()
        };
        tracing::warn!(client = %self.side.describe(), error = %crate::Report(&reason), ?delay, "the cloudevents client is disconnected");
        self.state = State::Disconnected {
            retry_at: Some(Instant::now() + delay),
        };
        Error::Transport(reason)
    }

    async fn step(&mut self) -> Result<ClientEvent<T>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            match &mut self.state {
                State::Disconnected { retry_at } => {
                    if let Some(at) = retry_at.take() {
                        tokio::time::sleep_until(at).await;
                    }
                    match Self::connect(&self.side).await {
                        Ok((conn, events)) => {
                            self.side.base().set_current(Some(conn.clone()));
                            self.side.base().new_session();
                            self.state = State::Connected { conn, events };
                            self.since = Some(Instant::now());
                            let marker = if self.connected_once {
                                self.side.base().options.metrics.reconnected();
                                ClientEvent::Reconnected
                            } else {
                                ClientEvent::Connected
                            };
                            self.connected_once = true;
                            tracing::info!(client = %self.side.describe(), "subscription confirmed");
                            // The request goes out before the marker, so a subscriber that sees
                            // `Connected` knows the peers were asked.
                            if self.side.base().options.resync_on_connect {
                                self.resyncing = true;
                                let span = resync_span(&self.side.describe());
                                let result = self.side.resync_all().instrument(span).await;
                                self.resync_done(result);
                            } else {
                                self.next_resync = self.side.base().options.resync_interval.map(|i| Instant::now() + i);
                            }
                            self.pending.push_front(Ok(marker));
                        }
                        Err(e) => {
                            let delay = self.backoff.next_delay();
                            tracing::warn!(client = %self.side.describe(), error = %crate::Report(&e), ?delay, "the cloudevents client reconnect failed");
                            self.state = State::Disconnected {
                                retry_at: Some(Instant::now() + delay),
                            };
                            return Err(Error::Transport(e));
                        }
                    }
                }
                State::Connected { conn, events } => {
                    let next_resync = if self.resyncing { None } else { self.next_resync };
                    let received = tokio::select! {
                        biased;
                        ev = events.next() => Some(ev),
                        Some(task) = self.tasks.next(), if !self.tasks.is_empty() => {
                            self.finished(task);
                            continue;
                        }
                        () = sleep_until_opt(next_resync) => None,
                    };
                    match received {
                        None => self.start_resync(),
                        Some(Some(Err(e))) if e.dropped_reason().is_some() => {
                            let reason = e.dropped_reason().unwrap_or_default();
                            tracing::warn!(client = %self.side.describe(), reason, error = %e, "dropped a received message");
                            self.side.base().options.metrics.dropped(reason);
                        }
                        Some(Some(Ok(event))) => match event_span(&event).in_scope(|| self.side.handle(event)) {
                            Handled::Yield(out) => return Ok(out),
                            Handled::Answer { peer, request } => self.start_answer(peer, request),
                            Handled::Nothing => {}
                        },
                        Some(end) => {
                            let conn = conn.clone();
                            let reason = match end {
                                Some(Err(e)) => e,
                                _ => TransportError::disconnected("the subscription ended"),
                            };
                            let err = self.lost(reason);
                            conn.close().await;
                            return Err(err);
                        }
                    }
                }
            }
        }
    }
}

/// The subscription of a client: a stream of [`ClientEvent`]s and errors. Polling it drives the
/// connection: it connects, subscribes, resyncs after each confirmed subscription, answers the
/// peer's resync requests, and reconnects with back-off after a loss. Errors are yielded as
/// items and the stream carries on; it never ends by itself. Dropping it closes the connection.
pub struct ClientStream<T> {
    inner: Pin<Box<dyn Stream<Item = Result<ClientEvent<T>>> + Send>>,
}

impl<T> fmt::Debug for ClientStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream").finish_non_exhaustive()
    }
}

impl<T> Stream for ClientStream<T> {
    type Item = Result<ClientEvent<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T: Send + 'static> ClientStream<T> {
    pub(crate) fn drive<S: Side<T>>(side: S) -> Self {
        if !side.base().claim_subscription() {
            return Self {
                inner: Box::pin(futures::stream::once(async { Err(Error::AlreadySubscribed) })),
            };
        }
        let backoff = Backoff::new(side.base().options.backoff.clone());
        let closed = side.base().closed.subscribe();
        let driver = Driver {
            side,
            state: State::Disconnected { retry_at: None },
            backoff,
            connected_once: false,
            since: None,
            next_resync: None,
            resyncing: false,
            pending: VecDeque::new(),
            tasks: futures::stream::FuturesUnordered::new(),
            answering: std::collections::HashMap::new(),
        };
        let stream = futures::stream::unfold(driver, move |mut d| {
            let mut closed = closed.clone();
            async move {
                // A step cut short by `close` loses nothing: what it was handling was not
                // acknowledged to the transport (Kafka redelivers it to the successor).
                tokio::select! {
                    biased;
                    _ = closed.wait_for(|c| *c) => None,
                    item = d.step() => Some((item, d)),
                }
            }
        });
        Self {
            inner: Box::pin(stream),
        }
    }
}

impl<T, S: Side<T>> Drop for Driver<T, S> {
    fn drop(&mut self) {
        let base = self.side.base();
        base.set_current(None);
        if let Ok(mut slot) = base.connecting.lock() {
            slot.take();
        }
        base.subscribed.store(false, Ordering::SeqCst);
    }
}
