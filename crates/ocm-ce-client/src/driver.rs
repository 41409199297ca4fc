//! The subscription driver: (re)connects, subscribes, resyncs after each confirmed
//! subscription and periodically, hands received events to the client and answers the peers'
//! resync requests beside receiving.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use futures::{Stream, StreamExt};
use ocm_ce_core::ResourceObject;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::client::{Client, ClientEvent, Handled, QUEUED_ANSWERS};
use crate::error::{Error, Result, TransportError};
use crate::side::Side;
use crate::transport::{Connection, Subscription, Transport};

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

struct Driver<T, Tr: Transport, S> {
    client: Client<T, Tr, S>,
    state: State<Tr::Connection>,
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

impl<T, Tr, S> Driver<T, Tr, S>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
    S: Side,
{
    /// Connects and subscribes. While the subscription is pending the connection sits in the
    /// `connecting` slot, where `close` finds it: a client closed meanwhile (this future is
    /// then dropped) still closes it gracefully.
    async fn connect(
        client: &Client<T, Tr, S>,
    ) -> std::result::Result<(Arc<Tr::Connection>, Subscription), TransportError> {
        let base = client.base();
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
        let client = self.client.clone();
        let span = resync_span(&client.describe());
        self.tasks.push(Box::pin(
            async move { Task::Resync(client.resync_all().await) }.instrument(span),
        ));
    }

    fn resync_done(&mut self, result: Result<()>) {
        self.resyncing = false;
        let options = &self.client.base().options;
        let (interval, retry) = (options.resync_interval, options.resync_retry);
        match result {
            Ok(()) => self.next_resync = interval.map(|i| Instant::now() + i),
            Err(e) => {
                tracing::warn!(client = %self.client.describe(), error = %crate::Report(&e), "resync failed");
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
                tracing::warn!(client = %self.client.describe(), peer, "too many resync requests from one peer; dropping the oldest");
                self.client.base().options.metrics.dropped("resync_backlog");
                waiting.pop_front();
            }
            waiting.push_back(request);
            return;
        }
        self.answering.insert(peer.clone(), VecDeque::new());
        self.spawn_answer(peer, request);
    }

    fn spawn_answer(&mut self, peer: String, request: Box<Event>) {
        let client = self.client.clone();
        let span = event_span(&request);
        self.tasks.push(Box::pin(
            async move {
                client.answer(*request).await;
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
        self.client.base().set_current(None);
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
        tracing::warn!(client = %self.client.describe(), error = %crate::Report(&reason), ?delay, "the cloudevents client is disconnected");
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
                    match Self::connect(&self.client).await {
                        Ok((conn, events)) => {
                            self.client.base().set_current(Some(conn.clone()));
                            self.client.base().new_session();
                            self.state = State::Connected { conn, events };
                            self.since = Some(Instant::now());
                            let marker = if self.connected_once {
                                self.client.base().options.metrics.reconnected();
                                ClientEvent::Reconnected
                            } else {
                                ClientEvent::Connected
                            };
                            self.connected_once = true;
                            tracing::info!(client = %self.client.describe(), "subscription confirmed");
                            // The request goes out before the marker, so a subscriber that sees
                            // `Connected` knows the peers were asked.
                            if self.client.base().options.resync_on_connect {
                                self.resyncing = true;
                                let span = resync_span(&self.client.describe());
                                let result = self.client.resync_all().instrument(span).await;
                                self.resync_done(result);
                            } else {
                                self.next_resync =
                                    self.client.base().options.resync_interval.map(|i| Instant::now() + i);
                            }
                            self.pending.push_front(Ok(marker));
                        }
                        Err(e) => {
                            let delay = self.backoff.next_delay();
                            tracing::warn!(client = %self.client.describe(), error = %crate::Report(&e), ?delay, "the cloudevents client reconnect failed");
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
                            tracing::warn!(client = %self.client.describe(), reason, error = %e, "dropped a received message");
                            self.client.base().options.metrics.dropped(reason);
                        }
                        Some(Some(Ok(event))) => match event_span(&event).in_scope(|| self.client.handle(event)) {
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

impl<T: ResourceObject + Send + Sync + 'static> ClientStream<T> {
    pub(crate) fn drive<Tr: Transport, S: Side>(client: Client<T, Tr, S>) -> Self {
        if !client.base().claim_subscription() {
            return Self {
                inner: Box::pin(futures::stream::once(async { Err(Error::AlreadySubscribed) })),
            };
        }
        let backoff = Backoff::new(client.base().options.backoff.clone());
        let closed = client.base().closed_signal();
        let driver = Driver {
            client,
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
                let item = tokio::select! {
                    biased;
                    _ = closed.wait_for(|c| *c) => return None,
                    item = d.step() => item,
                };
                d.client.base().observe(&item);
                Some((item, d))
            }
        });
        Self {
            inner: Box::pin(stream),
        }
    }
}

impl<T, Tr: Transport, S> Drop for Driver<T, Tr, S> {
    fn drop(&mut self) {
        self.client.base().stream_dropped();
    }
}
