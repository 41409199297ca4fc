//! What the source and agent clients share: options, the connection slot, publishing, and the
//! subscription driver that (re)connects, subscribes, resyncs and decodes.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use cloudevents::Event;
use futures::{Stream, StreamExt};
use ocm_ce_core::{Codec, EventType, ResourceAction};
use tokio::time::Instant;

use crate::backoff::{Backoff, BackoffConfig};
use crate::error::{Error, Result, TransportError};
use crate::lister::{Lister, StatusHasher};
use crate::metrics::ClientMetrics;
use crate::rate_limit::{Limiter, RateLimit};
use crate::transport::{Connection, PublishTarget, Subscription, Transport};

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
    subscribed: AtomicBool,
    session: std::sync::Mutex<Session>,
    /// Set once by [`Base::close`]; ends the subscription stream and keeps it from reconnecting.
    closed: tokio::sync::watch::Sender<bool>,
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
        transport: Tr,
        codec: Arc<dyn Codec<T>>,
        lister: Arc<dyn Lister<T>>,
        hasher: Arc<dyn StatusHasher<T>>,
        options: ClientOptions,
    ) -> Self {
        Self {
            transport,
            codec,
            lister,
            hasher,
            limiter: options.rate_limit.map(Limiter::new),
            options,
            connection: RwLock::new(None),
            subscribed: AtomicBool::new(false),
            session: std::sync::Mutex::new(Session {
                since: Instant::now(),
                answered: Default::default(),
            }),
            closed: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Closes the client for good: the subscription stream ends (it neither reconnects nor
    /// yields an error for the lost connection) and the current connection is closed
    /// gracefully (the transport flushes what it sends and leaves its consumer group, so a
    /// successor starts at once). Publishing afterwards fails with [`Error::NotConnected`].
    pub(crate) async fn close(&self) {
        // Take the connection before the stream can see `closed`: the stream's driver, once it
        // ends, clears the slot and drops its own handle (a drop, not a graceful close).
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
        if let Some(conn) = conn {
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

    /// Claims the single subscription of this client.
    pub(crate) fn claim_subscription(&self) -> bool {
        !self.subscribed.swap(true, Ordering::SeqCst)
    }
}

/// The side-specific behaviour the driver needs.
pub(crate) trait Side<T>: Send + Sync + 'static {
    type Tr: Transport;
    fn base(&self) -> &Base<T, Self::Tr>;
    /// Handles one received event; `Some` is yielded to the subscriber.
    fn handle(&self, event: Event) -> impl Future<Output = Option<ClientEvent<T>>> + Send;
    /// Resyncs everything (on connect and periodically).
    fn resync_all(&self) -> impl Future<Output = Result<()>> + Send;
    /// A label for logs.
    fn describe(&self) -> String;
}

use std::future::Future;

enum State<C> {
    Disconnected { retry_at: Option<Instant> },
    Connected { conn: Arc<C>, events: Subscription },
}

struct Driver<T, S: Side<T>> {
    side: S,
    state: State<<S::Tr as Transport>::Connection>,
    backoff: Backoff,
    connected_once: bool,
    next_resync: Option<Instant>,
    pending: VecDeque<Result<ClientEvent<T>>>,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<T: Send + 'static, S: Side<T>> Driver<T, S> {
    async fn connect(
        side: &S,
    ) -> std::result::Result<(<S::Tr as Transport>::Connection, Subscription), TransportError> {
        let conn = side.base().transport.connect().await?;
        match conn.subscribe().await {
            Ok(events) => Ok((conn, events)),
            Err(e) => {
                conn.close().await;
                Err(e)
            }
        }
    }

    async fn resync(&mut self) {
        let options = &self.side.base().options;
        let (interval, retry) = (options.resync_interval, options.resync_retry);
        match self.side.resync_all().await {
            Ok(()) => self.next_resync = interval.map(|i| Instant::now() + i),
            Err(e) => {
                tracing::warn!(client = %self.side.describe(), error = %e, "resync failed");
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

    fn lost(&mut self, reason: TransportError) -> Error {
        self.side.base().set_current(None);
        let delay = self.backoff.next_delay();
        tracing::warn!(client = %self.side.describe(), error = %reason, ?delay, "the cloudevents client is disconnected");
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
                            let conn = Arc::new(conn);
                            self.side.base().set_current(Some(conn.clone()));
                            self.side.base().new_session();
                            self.state = State::Connected { conn, events };
                            let marker = if self.connected_once {
                                self.side.base().options.metrics.reconnected();
                                ClientEvent::Reconnected
                            } else {
                                ClientEvent::Connected
                            };
                            self.connected_once = true;
                            tracing::info!(client = %self.side.describe(), "subscription confirmed");
                            self.pending.push_back(Ok(marker));
                            if self.side.base().options.resync_on_connect {
                                self.resync().await;
                            } else {
                                self.next_resync = self.side.base().options.resync_interval.map(|i| Instant::now() + i);
                            }
                        }
                        Err(e) => {
                            let delay = self.backoff.next_delay();
                            tracing::warn!(client = %self.side.describe(), error = %e, ?delay, "the cloudevents client reconnect failed");
                            self.state = State::Disconnected {
                                retry_at: Some(Instant::now() + delay),
                            };
                            return Err(Error::Transport(e));
                        }
                    }
                }
                State::Connected { conn, events } => {
                    let next_resync = self.next_resync;
                    let received = tokio::select! {
                        biased;
                        ev = events.next() => Some(ev),
                        () = sleep_until_opt(next_resync) => None,
                    };
                    match received {
                        None => self.resync().await,
                        Some(Some(Ok(event))) => {
                            if let Some(out) = self.side.handle(event).await {
                                return Ok(out);
                            }
                        }
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
            next_resync: None,
            pending: VecDeque::new(),
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
        base.subscribed.store(false, Ordering::SeqCst);
    }
}
