//! One Kafka connection: a producer and a consumer created from the same configuration, the
//! consumer's poll task, and the at-least-once subscription stream.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::binding::{self, RecordOrigin};
use super::config::TopicLayout;
use super::provision::Provisioner;
use super::topics;
use crate::error::TransportError;
use crate::transport::{Connection, PublishTarget, Role, Subscription};

/// How many received events the poll task reads ahead of the subscriber.
const READ_AHEAD: usize = 64;
/// How long a publish waits for room in librdkafka's local queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `close()` waits for the producer flush and the consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Topic discovery: the first and the longest pause between two topic list requests.
const DISCOVERY_PAUSE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// How long one topic list request of the discovery may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// What to do about a librdkafka error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Severity {
    /// Transient; librdkafka recovers by itself (logged at debug level).
    Benign,
    /// The connection is unusable: end the subscription, fail publishes, reconnect.
    Lost,
}

/// Classifies an error code. Benign: a single broker connection dropping or not resolving (with
/// every broker gone librdkafka reports `ALL_BROKERS_DOWN`), a subscribed topic that does not
/// exist yet, a partition end. Everything else ends the connection, as Go's error channel does.
pub(super) fn severity(code: RDKafkaErrorCode, fatal: bool) -> Severity {
    if fatal {
        return Severity::Lost;
    }
    match code {
        RDKafkaErrorCode::BrokerTransportFailure
        | RDKafkaErrorCode::Resolve
        | RDKafkaErrorCode::UnknownTopicOrPartition
        | RDKafkaErrorCode::UnknownTopic
        | RDKafkaErrorCode::UnknownPartition
        | RDKafkaErrorCode::PartitionEOF => Severity::Benign,
        _ => Severity::Lost,
    }
}

/// State shared by the clients' callbacks and the connection.
#[derive(Debug)]
struct Health {
    /// Why the connection is unusable; set once.
    lost: watch::Sender<Option<String>>,
    /// Partition count of the latest assignment (`None` before the first one).
    assigned: watch::Sender<Option<usize>>,
}

impl Health {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            lost: watch::channel(None).0,
            assigned: watch::channel(None).0,
        })
    }

    /// Marks the connection lost; true the first time.
    fn lose(&self, reason: String) -> bool {
        self.lost.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(reason);
                true
            } else {
                false
            }
        })
    }

    fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Resolves with the reason once the connection is lost.
    async fn wait_lost(&self) -> String {
        let mut rx = self.lost.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The sender lives in `self`, so it cannot be dropped while we wait.
            Err(_) => String::new(),
        }
    }
}

/// The librdkafka callbacks of the clients of a connection.
#[derive(Debug, Clone)]
pub(super) struct KafkaContext {
    health: Arc<Health>,
    client: &'static str,
}

impl KafkaContext {
    fn report(&self, code: RDKafkaErrorCode, fatal: bool, what: &str) {
        match severity(code, fatal) {
            Severity::Benign => tracing::debug!(client = self.client, error = what, "kafka: transient error"),
            Severity::Lost => {
                if self.health.lose(what.to_owned()) {
                    tracing::warn!(client = self.client, error = what, "kafka: connection lost");
                } else {
                    tracing::debug!(client = self.client, error = what, "kafka: error on a lost connection");
                }
            }
        }
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Producer and consumer share one property map (as in Go); librdkafka warns about every
        // property of the other kind.
        let level = if fac == "CONFWARN" && message.contains("will be ignored by this") {
            RDKafkaLogLevel::Debug
        } else {
            level
        };
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", client = self.client, fac, "{message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", client = self.client, fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", client = self.client, fac, "{message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", client = self.client, fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let fatal = matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal));
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        self.report(code, fatal, &format!("{error}: {reason}"));
    }
}

impl ConsumerContext for KafkaContext {
    fn post_rebalance(&self, _consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::debug!(partitions = tpl.count(), "kafka: partitions assigned");
                self.health.assigned.send_replace(Some(tpl.count()));
            }
            Rebalance::Revoke(tpl) => tracing::debug!(partitions = tpl.count(), "kafka: partitions revoked"),
            Rebalance::Error(e) => {
                if self.health.lose(format!("rebalance failed: {e}")) {
                    tracing::warn!(error = %e, "kafka: rebalance failed");
                }
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::trace!(partitions = offsets.count(), "kafka: offsets committed"),
            // Nothing stored since the last commit; not an error.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            // Expected while the brokers are gone; the offsets stay stored and are committed later
            // (or the records are read again: at-least-once).
            Err(e) if self.health.lost_reason().is_some() => tracing::debug!(error = %e, "kafka: commit failed"),
            Err(e) => tracing::warn!(error = %e, "kafka: committing offsets failed"),
        }
    }
}

pub(super) type KafkaConsumer = StreamConsumer<KafkaContext>;
type KafkaProducer = FutureProducer<KafkaContext>;

/// Destroys a librdkafka client on a thread of its own: destruction blocks (the consumer leaves
/// its group and commits, the producer flushes) and, with the brokers gone, can take long; it
/// must hold up neither the async threads nor a runtime shutdown. The receiver resolves when it
/// is done.
pub(super) fn destroy_in_background<T: Send + 'static>(client: T) -> oneshot::Receiver<()> {
    in_background(move || drop(client))
}

/// Destroys the consumer on a thread of its own once that thread holds the last reference (the
/// aborted poll task releases its own shortly); gives up waiting after a few seconds. It leaves
/// its consumer group first (`unsubscribe`), whoever destroys it in the end.
fn destroy_consumer(consumer: Arc<KafkaConsumer>) -> oneshot::Receiver<()> {
    in_background(move || {
        consumer.unsubscribe();
        let mut consumer = consumer;
        for _ in 0..500 {
            match Arc::try_unwrap(consumer) {
                Ok(last) => return drop(last),
                Err(shared) => consumer = shared,
            }
            std::thread::park_timeout(Duration::from_millis(10));
        }
    })
}

fn in_background(work: impl FnOnce() + Send + 'static) -> oneshot::Receiver<()> {
    let (done, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ocm-ce-kafka-close".into())
        .spawn(move || {
            work();
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        // The closure, and with it the client, was dropped on this thread.
        tracing::warn!(error = %e, "kafka: no thread for closing a client; closed inline");
    }
    rx
}

/// A received record, as the poll task hands it to the subscription: the position to store
/// once handled, and the event (`None` when it was not for us or not a CloudEvent; such records
/// count as handled at once).
struct Received {
    topic: String,
    partition: i32,
    offset: i64,
    /// The event, a dropped record (reported, counted), or nothing (another side's record).
    event: Option<Result<Event, TransportError>>,
}

/// A live Kafka connection (one producer, one consumer). Dropping it stops its poll task and
/// destroys both clients in the background.
///
/// Errors that end it (everything but these benign ones): a single broker's connection failing
/// or not resolving, a subscribed topic or partition not existing (yet), a partition end.
pub struct KafkaConnection {
    role: Role,
    layout: TopicLayout,
    subscribe_timeout: Duration,
    patterns: Vec<String>,
    auto_commit: bool,
    health: Arc<Health>,
    producer: KafkaProducer,
    consumer: Mutex<Option<Arc<KafkaConsumer>>>,
    /// The poll task and the topic discovery task.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    subscribed: std::sync::atomic::AtomicBool,
    /// Creates the topics this connection needs (`createTopics`).
    provisioner: Option<Provisioner>,
    /// Wakes the topic discovery (a topic our subscription matches was just created).
    nudge: Arc<Notify>,
    /// Whether the discovery keeps looking for new topics for a while even when some match.
    eager_discovery: bool,
}

/// How a connection is opened (from the transport's configuration).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// The side.
    pub(super) role: Role,
    /// The topic layout.
    pub(super) layout: TopicLayout,
    /// `connectTimeout`.
    pub(super) connect_timeout: Duration,
    /// `subscribeTimeout`.
    pub(super) subscribe_timeout: Duration,
    /// What the consumer subscribes to.
    pub(super) patterns: Vec<String>,
    /// `enable.auto.commit`.
    pub(super) auto_commit: bool,
    /// Partitions and replication factor of created topics; `None` when `createTopics` is off.
    pub(super) create_topics: Option<(i32, i32)>,
    /// True for the first connection of a transport: the peers may be starting right now, so
    /// the discovery keeps looking for their new topics for a while (see
    /// [`discover_topics`]).
    pub(super) eager_discovery: bool,
}

impl fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("role", &self.role)
            .field("layout", &self.layout)
            .field("lost", &self.health.lost_reason())
            .finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KafkaConnection {
    /// Creates the producer, waits until the brokers answer, creates the consumer, then the
    /// topics the side needs from the start ([`topics::connect_topics`]; their creation failing
    /// is reported, not fatal).
    pub(super) async fn open(config: ClientConfig, settings: Settings) -> Result<Self, TransportError> {
        let mut config = config;
        config.set_log_level(log_level());
        let health = Health::new();
        let context = |client| KafkaContext {
            health: health.clone(),
            client,
        };
        let producer: KafkaProducer = config
            .create_with_context(context("producer"))
            .map_err(|e| TransportError::connect("failed to create the Kafka producer").with_source(e))?;
        if let Err(e) = wait_for_brokers(&producer, &health, settings.connect_timeout).await {
            destroy_in_background(producer);
            return Err(e);
        }
        let consumer: KafkaConsumer = match config.create_with_context(context("consumer")) {
            Ok(c) => c,
            Err(e) => {
                destroy_in_background(producer);
                return Err(TransportError::connect("failed to create the Kafka consumer").with_source(e));
            }
        };
        let consumer = Arc::new(consumer);
        let provisioner = settings
            .create_topics
            .map(|(partitions, replication)| Provisioner::new(config, context("admin"), partitions, replication));
        if let Some(p) = &provisioner {
            let (layout, role) = (settings.layout, &settings.role);
            p.learn_existing(&consumer, |t| topics::provisioned_topic(layout, role, t))
                .await;
            p.ensure(&consumer, &topics::connect_topics(layout, role)).await;
        }
        Ok(Self {
            role: settings.role,
            layout: settings.layout,
            subscribe_timeout: settings.subscribe_timeout,
            patterns: settings.patterns,
            auto_commit: settings.auto_commit,
            health,
            producer,
            consumer: Mutex::new(Some(consumer)),
            tasks: Mutex::new(Vec::new()),
            subscribed: std::sync::atomic::AtomicBool::new(false),
            provisioner,
            nudge: Arc::new(Notify::new()),
            eager_discovery: settings.eager_discovery,
        })
    }

    /// Creates the topics of `target` before the first record goes there; wakes the topic
    /// discovery when one of them is ours to read.
    async fn provision(&self, target: &PublishTarget) {
        let Some(provisioner) = &self.provisioner else {
            return;
        };
        let topics = topics::target_topics(self.layout, &self.role, target);
        if provisioner.all_ready(&topics) {
            return;
        }
        let Some(consumer) = lock(&self.consumer).clone() else {
            return;
        };
        let found = provisioner.ensure(&consumer, &topics).await;
        if found.iter().any(|t| topics::topic_matches(self.layout, &self.role, t)) {
            self.nudge.notify_one();
        }
    }

    fn lost_error(reason: &str) -> TransportError {
        TransportError::disconnected(format!("the Kafka connection is lost: {reason}"))
    }

    /// Whether any existing topic matches the subscription (asks the brokers).
    async fn any_topic_matches(&self, consumer: &Arc<KafkaConsumer>) -> Result<bool, TransportError> {
        let consumer = consumer.clone();
        let timeout = self.subscribe_timeout;
        let metadata = tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, timeout))
            .await
            .map_err(|e| TransportError::subscribe("failed to list the Kafka topics").with_source(e))?
            .map_err(|e| TransportError::subscribe("failed to list the Kafka topics").with_source(e))?;
        Ok(metadata
            .topics()
            .iter()
            .any(|t| topics::topic_matches(self.layout, &self.role, t.name())))
    }

    fn route(&self, target: &PublishTarget) -> Result<topics::Route, topics::RouteError> {
        match &self.role {
            Role::Source { source_id } => topics::source_route(self.layout, source_id, target),
            Role::Agent { cluster_name, .. } => topics::agent_route(self.layout, cluster_name, target),
        }
    }
}

/// librdkafka's log level from what the `librdkafka` tracing target enables.
fn log_level() -> RDKafkaLogLevel {
    if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
        RDKafkaLogLevel::Debug
    } else if tracing::enabled!(target: "librdkafka", tracing::Level::INFO) {
        RDKafkaLogLevel::Info
    } else {
        RDKafkaLogLevel::Warning
    }
}

/// Waits until the brokers answer a metadata request (the cluster id is known), failing early
/// when librdkafka reports the connection lost (e.g. all brokers down).
async fn wait_for_brokers(producer: &KafkaProducer, health: &Health, timeout: Duration) -> Result<(), TransportError> {
    const STEP: Duration = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(reason) = health.lost_reason() {
            return Err(TransportError::connect(format!(
                "failed to reach the Kafka brokers: {reason}"
            )));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(TransportError::connect(format!(
                "failed to reach the Kafka brokers within {timeout:?}"
            )));
        }
        let step = STEP.min(deadline - now);
        let client = producer.clone();
        let found = tokio::task::spawn_blocking(move || client.client().fetch_cluster_id(step))
            .await
            .map_err(|e| TransportError::connect("failed to query the Kafka brokers").with_source(e))?;
        if found.is_some() {
            return Ok(());
        }
    }
}

impl Connection for KafkaConnection {
    async fn publish(&self, target: &PublishTarget, event: &Event) -> Result<(), TransportError> {
        if let Some(reason) = self.health.lost_reason() {
            return Err(Self::lost_error(&reason));
        }
        let route = self
            .route(target)
            .map_err(|e| TransportError::encoding("the event cannot be routed").with_source(e))?;
        let record = binding::encode(event)
            .map_err(|e| TransportError::encoding("the event cannot be written to Kafka").with_source(e))?;
        self.provision(target).await;
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_slice()),
            });
        }
        let mut message = FutureRecord::<str, [u8]>::to(&route.topic)
            .key(route.key.as_str())
            .headers(headers);
        if let Some(value) = &record.value {
            message = message.payload(value.as_slice());
        }
        let delivery = self.producer.send(message, QUEUE_TIMEOUT);
        tokio::select! {
            result = delivery => match result {
                Ok(_) => Ok(()),
                Err((e, _)) => Err(publish_error(&e, event.id(), &route.topic)),
            },
            reason = self.health.wait_lost() => Err(Self::lost_error(&reason)),
        }
    }

    async fn subscribe(&self) -> Result<Subscription, TransportError> {
        if self.subscribed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(TransportError::subscribe("the Kafka connection is already subscribed"));
        }
        if let Some(reason) = self.health.lost_reason() {
            return Err(Self::lost_error(&reason));
        }
        let consumer = lock(&self.consumer)
            .clone()
            .ok_or_else(|| TransportError::subscribe("the Kafka connection is closed"))?;
        let patterns: Vec<&str> = self.patterns.iter().map(String::as_str).collect();
        consumer
            .subscribe(&patterns)
            .map_err(|e| TransportError::subscribe("failed to subscribe the Kafka consumer").with_source(e))?;
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let task = tokio::spawn(poll_consumer(
            consumer.clone(),
            tx,
            self.health.clone(),
            self.role.clone(),
            self.layout,
        ));
        let discovery = tokio::spawn(discover_topics(
            Arc::downgrade(&consumer),
            self.role.clone(),
            self.layout,
            self.nudge.clone(),
            self.eager_discovery,
        ));
        lock(&self.tasks).extend([task, discovery]);

        let mut assigned = self.health.assigned.subscribe();
        let confirmed = tokio::time::timeout(self.subscribe_timeout, async {
            // librdkafka joins the group only once a topic matches; with none, nothing can be
            // missed: a topic created later is found on a metadata refresh and read from its
            // earliest offset.
            if !self.any_topic_matches(&consumer).await? {
                return Ok(());
            }
            tokio::select! {
                _ = assigned.wait_for(Option::is_some) => Ok(()),
                reason = self.health.wait_lost() => Err(Self::lost_error(&reason)),
            }
        })
        .await;
        match confirmed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(TransportError::subscribe(format!(
                    "no partition assignment from the Kafka consumer group within {:?}",
                    self.subscribe_timeout
                )));
            }
        }
        tracing::debug!(role = %self.role, patterns = ?self.patterns, "kafka: subscription confirmed");
        Ok(subscription(rx, Arc::downgrade(&consumer), self.auto_commit))
    }

    async fn close(&self) {
        let _ = self.health.lose("the connection is closed".to_owned());
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        let producer = self.producer.clone();
        let flush = tokio::task::spawn_blocking(move || producer.flush(CLOSE_TIMEOUT));
        if let Ok(Ok(Err(e))) = tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), flush).await {
            tracing::warn!(error = %e, "kafka: flushing the producer on close failed");
        }
        let consumer = lock(&self.consumer).take();
        if let Some(consumer) = consumer
            && tokio::time::timeout(CLOSE_TIMEOUT, destroy_consumer(consumer))
                .await
                .is_err()
        {
            tracing::warn!("kafka: the consumer did not leave its group in time; closing in the background");
        }
    }
}

impl Drop for KafkaConnection {
    fn drop(&mut self) {
        let _ = self.health.lose("the connection is closed".to_owned());
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        if let Some(consumer) = lock(&self.consumer).take() {
            destroy_consumer(consumer);
        }
        // The producer handle is cheap to clone; destroying the last one may block on librdkafka.
        destroy_in_background(self.producer.clone());
    }
}

/// Makes the consumer find new topics that match its subscription soon after they appear.
///
/// librdkafka matches a regex subscription against the topic list it re-reads every
/// `topic.metadata.refresh.interval.ms` (default 5 minutes): a peer's topic created after we
/// subscribed would be read that late. Any full topic list request makes librdkafka re-match
/// the subscription (and join the group with the new topics), so this task requests one after
/// a pause that starts at 1 s and doubles up to 30 s. The pause starts over whenever the
/// matching topics change and when [`KafkaConnection`] created a topic we read (`nudge`).
/// Once at the longest pause with some topic matching, the task leaves the rest to librdkafka's
/// own refresh; it goes on at the longest pause while nothing matches. Without `eager`
/// (reconnections, whose topics usually exist already) it starts at the longest pause.
async fn discover_topics(
    consumer: Weak<KafkaConsumer>,
    role: Role,
    layout: TopicLayout,
    nudge: Arc<Notify>,
    eager: bool,
) {
    let (shortest, longest) = DISCOVERY_PAUSE;
    let mut matched: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut pause = if eager { shortest } else { longest };
    let mut first = true;
    loop {
        let Some(strong) = consumer.upgrade() else {
            return;
        };
        let listed = tokio::task::spawn_blocking(move || strong.fetch_metadata(None, DISCOVERY_TIMEOUT)).await;
        match listed {
            Ok(Ok(metadata)) => {
                let now: std::collections::BTreeSet<String> = metadata
                    .topics()
                    .iter()
                    .map(|t| t.name())
                    .filter(|t| topics::topic_matches(layout, &role, t))
                    .map(str::to_owned)
                    .collect();
                if now != matched {
                    if !first {
                        tracing::debug!(role = %role, topics = ?now, "kafka: the subscribed topics changed");
                        pause = shortest;
                    }
                    matched = now;
                }
                if first && matched.is_empty() {
                    tracing::info!(
                        role = %role,
                        "kafka: no topic matches the subscription yet; waiting for the peers (or an administrator) to create one"
                    );
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "kafka: topic discovery request failed"),
            Err(_) => return,
        }
        first = false;
        let idle = pause >= longest && !matched.is_empty();
        tokio::select! {
            () = nudge.notified() => pause = shortest,
            () = tokio::time::sleep(pause), if !idle => pause = (pause * 2).min(longest),
        }
    }
}

fn publish_error(e: &KafkaError, id: &str, topic: &str) -> TransportError {
    let message = format!("failed to send event {id} to {topic}");
    let too_large = matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    );
    let base = if too_large {
        TransportError::too_large(message)
    } else {
        TransportError::publish(message)
    };
    base.with_source(e.clone())
}

/// Reads the consumer until the connection is lost or the subscription is dropped.
async fn poll_consumer(
    consumer: Arc<KafkaConsumer>,
    tx: mpsc::Sender<Result<Received, TransportError>>,
    health: Arc<Health>,
    role: Role,
    layout: TopicLayout,
) {
    loop {
        let received = tokio::select! {
            m = consumer.recv() => m,
            reason = health.wait_lost() => {
                let _ = tx.send(Err(KafkaConnection::lost_error(&reason))).await;
                return;
            }
        };
        let item = match received {
            Ok(m) => read_record(&m, &role, layout),
            Err(e) => {
                let (code, fatal) = match &e {
                    KafkaError::MessageConsumptionFatal(code) => (*code, true),
                    KafkaError::PartitionEOF(_) => (RDKafkaErrorCode::PartitionEOF, false),
                    other => (other.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail), false),
                };
                if severity(code, fatal) == Severity::Benign {
                    tracing::debug!(error = %e, "kafka: consumer notice");
                    continue;
                }
                if health.lose(e.to_string()) {
                    tracing::warn!(error = %e, "kafka: consumer error, the connection is lost");
                }
                let _ = tx.send(Err(KafkaConnection::lost_error(&e.to_string()))).await;
                return;
            }
        };
        if tx.send(Ok(item)).await.is_err() {
            return;
        }
    }
}

/// Decodes one record and applies the shared-layout filter.
fn read_record(m: &rdkafka::message::BorrowedMessage<'_>, role: &Role, layout: TopicLayout) -> Received {
    let origin = RecordOrigin {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key(),
    };
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key, h.value.unwrap_or_default()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let event = match binding::decode(headers, m.payload(), Some(origin)) {
        Ok(event) if topics::accepts(layout, role, &event) => Some(Ok(event)),
        Ok(event) => {
            tracing::trace!(
                id = event.id(),
                topic = m.topic(),
                "kafka: event for someone else, skipped"
            );
            None
        }
        Err(e) => Some(Err(TransportError::dropped(
            "malformed_message",
            format!(
                "a record of {} bytes on {} (offset {}) is not a valid CloudEvent: {e}",
                m.payload_len(),
                m.topic(),
                m.offset()
            ),
        ))),
    };
    Received {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        event,
    }
}

/// The subscription stream: yields events in order and stores the offset of each one when the
/// next one is requested (the previous one has been handled by then).
fn subscription(
    mut rx: mpsc::Receiver<Result<Received, TransportError>>,
    consumer: Weak<KafkaConsumer>,
    auto_commit: bool,
) -> Subscription {
    let mut handled: Option<(String, i32, i64)> = None;
    let store = move |(topic, partition, offset): (String, i32, i64)| {
        let Some(consumer) = consumer.upgrade() else {
            return;
        };
        // `rd_kafka_offset_store` stores `offset + 1`, the next record to read.
        if let Err(e) = consumer.store_offset(&topic, partition, offset) {
            // E.g. the partition was revoked meanwhile; its new owner reads the record again.
            tracing::debug!(error = %e, topic, partition, offset, "kafka: offset not stored");
            return;
        }
        if !auto_commit && let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(error = %e, "kafka: offset commit not queued");
        }
    };
    Subscription::from_stream(futures::stream::poll_fn(move |cx| {
        loop {
            if let Some(position) = handled.take() {
                store(position);
            }
            match std::task::ready!(rx.poll_recv(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(received)) => {
                    handled = Some((received.topic, received.partition, received.offset));
                    // A dropped record is reported (and counted) but does not end the stream.
                    if let Some(item) = received.event {
                        return Poll::Ready(Some(item));
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_benign_and_the_rest_end_the_connection() {
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::PartitionEOF,
        ] {
            assert_eq!(severity(code, false), Severity::Benign, "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::Authentication,
            RDKafkaErrorCode::GroupAuthorizationFailed,
            RDKafkaErrorCode::SaslAuthenticationFailed,
        ] {
            assert_eq!(severity(code, false), Severity::Lost, "{code:?}");
        }
        assert_eq!(severity(RDKafkaErrorCode::BrokerTransportFailure, true), Severity::Lost);
    }
}
