//! One MQTT session: the rumqttc client handle, the pump task that owns the event loop, and
//! the bookkeeping that matches PUBACKs and SUBACKs to the calls waiting for them.
//!
//! rumqttc does not return packet ids to callers. It does report, in order, one
//! `Outgoing::Publish(pkid)` per publish request it writes (and `Outgoing::Subscribe(pkid)` per
//! subscribe), and it takes requests from its channel in order. So each call enqueues a waiter
//! and sends its request under one lock; the pump pairs the next outgoing event with the
//! oldest waiter, then the incoming acknowledgement with that packet id resolves it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Filter, Packet, PubAckReason, PubCompReason, PubRecReason, Publish, PublishProperties,
    SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event as MqttEvent, EventLoop, MqttOptions, StateError};
use rumqttc::{NetworkOptions, Outgoing, TlsConfiguration};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Settings;
use super::binding;
use crate::error::TransportError;
use crate::tls::{self, CertSnapshot, ClientCertFiles, ClientTlsOptions};
use crate::transport::{Connection, PublishTarget, Subscription};

/// Capacity of rumqttc's request channel.
const REQUEST_CHANNEL: usize = 64;
/// The smallest Maximum Packet Size announced in CONNECT (16 MiB).
const ANNOUNCED_MAX_PACKET_SIZE: u32 = 16 * 1024 * 1024;
/// How long `close` waits for the DISCONNECT to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Dial allowance when `dialTimeout` is 0 (no dial timeout configured).
const UNBOUNDED_DIAL: Duration = Duration::from_secs(120);

type Reply<T> = oneshot::Sender<Result<T, TransportError>>;

/// What the pump hands to the subscription. Messages are acknowledged when the subscriber
/// takes them (manual acks), so the broker never has more than the Receive Maximum of them in
/// flight to us: the queue stays bounded without the pump ever waiting for the subscriber.
enum Delivery {
    /// A received event and how to acknowledge its message.
    Event(Box<Event>, Ack),
    /// A message that was dropped (not a valid CloudEvent, or over the size limit):
    /// acknowledged, then reported to the subscriber, which counts it.
    Dropped(TransportError, Ack),
    /// The session ended.
    Failed(TransportError),
}

/// The packet id and QoS of a received message, enough for its PUBACK / PUBREC.
#[derive(Clone, Copy)]
struct Ack {
    pkid: u16,
    qos: QoS,
}

struct Deliveries {
    tx: mpsc::UnboundedSender<Delivery>,
    /// A source checks that an agent's event names the cluster of the topic it came on.
    check_cluster: bool,
    /// Received messages larger than this are dropped (`maxPacketSize`).
    max_event_bytes: usize,
    /// Deliveries not yet taken by the subscriber.
    queued: Arc<AtomicUsize>,
    /// QoS 0 messages are not flow-controlled by the broker; beyond this many queued ones they
    /// are dropped (with a warning), as QoS 0 allows.
    qos0_limit: usize,
}

struct PendingPublish {
    qos: QoS,
    reply: Reply<()>,
}

/// Waiters of one session.
#[derive(Default)]
struct Waiters {
    closed: Option<String>,
    publishes: VecDeque<PendingPublish>,
    inflight: HashMap<u16, Reply<()>>,
    collided: Option<(u16, Reply<()>)>,
    subscribes: VecDeque<Reply<Vec<SubscribeReasonCode>>>,
    subscribing: HashMap<u16, Reply<Vec<SubscribeReasonCode>>>,
}

struct Shared {
    closed: AtomicBool,
    waiters: Mutex<Waiters>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Marks the session dead and fails every waiter with `reason`.
    fn fail_all(&self, reason: &str) {
        let mut w = self.lock();
        self.closed.store(true, Ordering::SeqCst);
        if w.closed.is_none() {
            w.closed = Some(reason.to_owned());
        }
        let err = || TransportError::disconnected(reason.to_owned());
        for p in w.publishes.drain(..) {
            let _ = p.reply.send(Err(err()));
        }
        for (_, r) in w.inflight.drain() {
            let _ = r.send(Err(err()));
        }
        if let Some((_, r)) = w.collided.take() {
            let _ = r.send(Err(err()));
        }
        for r in w.subscribes.drain(..) {
            let _ = r.send(Err(err()));
        }
        for (_, r) in w.subscribing.drain() {
            let _ = r.send(Err(err()));
        }
    }

    fn closed_error(w: &Waiters) -> TransportError {
        TransportError::disconnected(
            w.closed
                .clone()
                .unwrap_or_else(|| "the MQTT connection is closed".to_owned()),
        )
    }
}

/// A live MQTT session. Dropping it stops its pump (the TCP connection is closed without a
/// DISCONNECT); [`close`](Connection::close) sends a DISCONNECT first.
pub struct MqttConnection {
    settings: Arc<Settings>,
    client: AsyncClient,
    shared: Arc<Shared>,
    /// Serialises "enqueue waiter + send request" so waiters and requests share one order.
    send_lock: tokio::sync::Mutex<()>,
    subscription: Mutex<Option<mpsc::UnboundedReceiver<Delivery>>>,
    queued: Arc<AtomicUsize>,
    pump: Mutex<Option<JoinHandle<()>>>,
    watcher: Option<JoinHandle<()>>,
    max_packet_size: u32,
    max_qos: u8,
}

impl fmt::Debug for MqttConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConnection")
            .field("client_id", &self.settings.client_id)
            .field("closed", &self.shared.is_closed())
            .finish_non_exhaustive()
    }
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn refusal(code: ConnectReturnCode) -> &'static str {
    use ConnectReturnCode as C;
    match code {
        C::Success => "success",
        C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => "unsupported protocol version",
        C::BadClientId | C::ClientIdentifierNotValid => "client identifier not valid",
        C::ServiceUnavailable | C::ServerUnavailable => "server unavailable",
        C::UnspecifiedError => "unspecified error",
        C::MalformedPacket => "malformed packet",
        C::ProtocolError => "protocol error",
        C::ImplementationSpecificError => "implementation specific error",
        C::BadUserNamePassword => "bad user name or password",
        C::NotAuthorized => "not authorized",
        C::ServerBusy => "server busy",
        C::Banned => "banned",
        C::BadAuthenticationMethod => "bad authentication method",
        C::TopicNameInvalid => "topic name invalid",
        C::PacketTooLarge => "packet too large",
        C::QuotaExceeded => "quota exceeded",
        C::PayloadFormatInvalid => "payload format invalid",
        C::RetainNotSupported => "retain not supported",
        C::QoSNotSupported => "QoS not supported",
        C::UseAnotherServer => "use another server",
        C::ServerMoved => "server moved",
        C::ConnectionRateExceeded => "connection rate exceeded",
    }
}

/// A short description of why the event loop stopped.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => format!(
            "server initiated disconnect ({reason_code:?}{})",
            reason_string.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        ConnectionError::MqttState(StateError::AwaitPingResp) => "PINGRESP timed out".to_owned(),
        other => format!("the MQTT connection failed: {other}"),
    }
}

impl MqttConnection {
    pub(super) async fn open(settings: Arc<Settings>) -> Result<Self, TransportError> {
        let config = &settings.config;
        let mut options = MqttOptions::new(settings.client_id.clone(), settings.host.clone(), settings.port);
        options.set_clean_start(true);
        options.set_keep_alive(Duration::from_secs(u64::from(config.keep_alive.max(5))));
        if !config.username.is_empty() || !config.password.is_empty() {
            options.set_credentials(config.username.clone(), config.password.clone());
        }
        // The broker may send us up to this much: more than `maxPacketSize`, so an oversized
        // event reaches us and is dropped, logged and counted here instead of vanishing in
        // the broker; the announcement still bounds what one packet can make us hold.
        options.set_max_packet_size(Some(config.max_packet_size.max(ANNOUNCED_MAX_PACKET_SIZE)));
        // The broker keeps at most this many unacknowledged messages in flight to us; beyond
        // that it queues (and past its queue limit drops), as for a slow Go client.
        options.set_receive_maximum(Some(u16::try_from(settings.receive_buffer).unwrap_or(u16::MAX)));
        options.set_manual_acks(true);
        let mut network = NetworkOptions::new();
        // Go's dialer turns Nagle off too.
        network.set_tcp_nodelay(true);
        options.set_network_options(network);

        let cert_files = match (&config.tls.client_cert_file, &config.tls.client_key_file) {
            (Some(cert), Some(key)) => Some(ClientCertFiles::new(cert, key)),
            _ => None,
        };
        // Taken before the handshake reads the files, so a rotation in between is noticed.
        let cert_snapshot = match &cert_files {
            Some(files) => Some(files.snapshot().map_err(|e| TransportError::config(e.to_string()))?),
            None => None,
        };
        if config.uses_tls() {
            let tls_options = ClientTlsOptions {
                ca_file: config.tls.ca_file.clone(),
                client_cert: cert_files.clone(),
                ..ClientTlsOptions::default()
            };
            let tls_config = tls::client_config(&tls_options).map_err(|e| TransportError::config(e.to_string()))?;
            options.set_transport(rumqttc::Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(
                tls_config,
            ))));
        }

        let dial = if config.dial_timeout.is_zero() {
            UNBOUNDED_DIAL
        } else {
            config.dial_timeout
        };
        let limit = dial + settings.connack_timeout;
        // rumqttc's own connect timeout (whole seconds) stays out of the way of ours.
        options.set_connection_timeout(limit.as_secs() + 2);

        let (client, mut event_loop) = AsyncClient::new(options, REQUEST_CHANNEL);
        let broker = format!("{}:{}", settings.host, settings.port);
        let connack = match tokio::time::timeout(limit, first_event(&mut event_loop)).await {
            Err(_) => {
                return Err(TransportError::connect(format!(
                    "timed out after {limit:?} connecting to MQTT broker {broker} (no CONNACK)"
                )));
            }
            Ok(Err(ConnectionError::ConnectionRefused(code))) => {
                return Err(TransportError::rejected(format!(
                    "the MQTT broker {broker} refused the connection: {}",
                    refusal(code)
                )));
            }
            Ok(Err(e)) => {
                return Err(
                    TransportError::connect(format!("failed to connect to MQTT broker {broker}")).with_source(e),
                );
            }
            Ok(Ok(connack)) => connack,
        };
        let (broker_max_packet, broker_max_qos) = connack
            .properties
            .map_or((None, None), |p| (p.max_packet_size, p.max_qos));
        let max_packet_size = broker_max_packet.map_or(config.max_packet_size, |m| m.min(config.max_packet_size));
        let max_qos = broker_max_qos.unwrap_or(2);

        let shared = Arc::new(Shared {
            closed: AtomicBool::new(false),
            waiters: Mutex::new(Waiters::default()),
        });
        let (events_tx, subscription) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let deliveries = Deliveries {
            tx: events_tx.clone(),
            check_cluster: matches!(settings.role, crate::transport::Role::Source { .. }),
            max_event_bytes: usize::try_from(config.max_packet_size).unwrap_or(usize::MAX),
            queued: queued.clone(),
            qos0_limit: settings.receive_buffer,
        };
        let pump = tokio::spawn(pump(event_loop, shared.clone(), deliveries));
        let watcher = match (cert_files, cert_snapshot) {
            (Some(files), Some(snapshot)) if !config.cert_check_interval.is_zero() => Some(tokio::spawn(watch_cert(
                files,
                snapshot,
                config.cert_check_interval,
                shared.clone(),
                events_tx.downgrade(),
                pump.abort_handle(),
            ))),
            _ => None,
        };
        tracing::debug!(client_id = %settings.client_id, %broker, "MQTT connection established");
        Ok(Self {
            settings,
            client,
            shared,
            send_lock: tokio::sync::Mutex::new(()),
            subscription: Mutex::new(Some(subscription)),
            queued,
            pump: Mutex::new(Some(pump)),
            watcher,
            max_packet_size,
            max_qos,
        })
    }

    /// The largest packet this connection sends: `maxPacketSize`, or less if the broker said so.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// True once the session is gone (the broker closed it, a keep-alive failed, the client
    /// certificate changed, or it was closed).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    fn abort_tasks(&self) {
        if let Some(p) = self.pump.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            p.abort();
        }
        if let Some(w) = &self.watcher {
            w.abort();
        }
    }

    async fn await_reply<T>(
        &self,
        rx: oneshot::Receiver<Result<T, TransportError>>,
        what: &str,
    ) -> Result<T, TransportError> {
        match tokio::time::timeout(self.settings.ack_timeout, rx).await {
            Err(_) => Err(TransportError::publish(format!(
                "timed out after {:?} waiting for the {what}",
                self.settings.ack_timeout
            ))),
            Ok(Err(_)) => Err(Shared::closed_error(&self.shared.lock())),
            Ok(Ok(result)) => result,
        }
    }
}

/// Polls until the CONNACK (the first event of a fresh event loop).
async fn first_event(event_loop: &mut EventLoop) -> Result<rumqttc::v5::mqttbytes::v5::ConnAck, ConnectionError> {
    loop {
        if let MqttEvent::Incoming(Packet::ConnAck(connack)) = event_loop.poll().await? {
            return Ok(connack);
        }
    }
}

/// Drives the event loop until it fails: forwards received events, resolves acknowledgements.
async fn pump(mut event_loop: EventLoop, shared: Arc<Shared>, events: Deliveries) {
    loop {
        let event = match event_loop.poll().await {
            Ok(event) => event,
            Err(e) => {
                let reason = describe(&e);
                if !shared.is_closed() {
                    tracing::warn!(error = %e, "MQTT connection lost");
                }
                shared.fail_all(&reason);
                let _ = events.tx.send(Delivery::Failed(TransportError::disconnected(reason)));
                return;
            }
        };
        match event {
            MqttEvent::Incoming(Packet::Publish(publish)) => {
                let ack = Ack {
                    pkid: publish.pkid,
                    qos: publish.qos,
                };
                let delivery = match receive(&publish, events.max_event_bytes, events.check_cluster) {
                    Ok(event) => Delivery::Event(Box::new(event), ack),
                    Err(dropped) => Delivery::Dropped(dropped, ack),
                };
                if ack.qos == QoS::AtMostOnce && events.queued.load(Ordering::SeqCst) >= events.qos0_limit {
                    tracing::warn!(
                        topic = %String::from_utf8_lossy(&publish.topic),
                        "the subscriber is behind, dropping a QoS 0 message"
                    );
                    continue;
                }
                events.queued.fetch_add(1, Ordering::SeqCst);
                // No subscriber (any more): nothing to deliver to.
                let _ = events.tx.send(delivery);
            }
            MqttEvent::Incoming(Packet::PubAck(ack)) => {
                let result = match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                    reason => Err(TransportError::publish(format!(
                        "the MQTT broker refused the event: {reason:?}"
                    ))),
                };
                resolve_publish(&shared, ack.pkid, result);
            }
            MqttEvent::Incoming(Packet::PubRec(rec))
                if !matches!(rec.reason, PubRecReason::Success | PubRecReason::NoMatchingSubscribers) =>
            {
                let err = TransportError::publish(format!("the MQTT broker refused the event: {:?}", rec.reason));
                resolve_publish(&shared, rec.pkid, Err(err));
            }
            MqttEvent::Incoming(Packet::PubComp(comp)) => {
                let result = match comp.reason {
                    PubCompReason::Success => Ok(()),
                    reason => Err(TransportError::publish(format!(
                        "the MQTT broker did not complete the event: {reason:?}"
                    ))),
                };
                resolve_publish(&shared, comp.pkid, result);
            }
            MqttEvent::Incoming(Packet::SubAck(ack)) => {
                if let Some(reply) = shared.lock().subscribing.remove(&ack.pkid) {
                    let _ = reply.send(Ok(ack.return_codes));
                }
            }
            MqttEvent::Outgoing(Outgoing::Publish(pkid)) => {
                let mut w = shared.lock();
                if let Some((collided, _)) = &w.collided
                    && *collided == pkid
                    && let Some((_, reply)) = w.collided.take()
                {
                    w.inflight.insert(pkid, reply);
                } else if let Some(p) = w.publishes.pop_front() {
                    if p.qos == QoS::AtMostOnce {
                        let _ = p.reply.send(Ok(()));
                    } else {
                        w.inflight.insert(pkid, p.reply);
                    }
                }
            }
            MqttEvent::Outgoing(Outgoing::AwaitAck(pkid)) => {
                // The packet id is still in flight: rumqttc holds this publish and sends it
                // with the same id once the older one is acknowledged.
                let mut w = shared.lock();
                if let Some(p) = w.publishes.pop_front() {
                    w.collided = Some((pkid, p.reply));
                }
            }
            MqttEvent::Outgoing(Outgoing::Disconnect) => {
                // `close` asked for it; dropping the event loop closes the socket.
                shared.fail_all("the MQTT connection is closed");
                return;
            }
            MqttEvent::Outgoing(Outgoing::Subscribe(pkid)) => {
                let mut w = shared.lock();
                if let Some(reply) = w.subscribes.pop_front() {
                    w.subscribing.insert(pkid, reply);
                }
            }
            _ => {}
        }
    }
}

fn resolve_publish(shared: &Shared, pkid: u16, result: Result<(), TransportError>) {
    if let Some(reply) = shared.lock().inflight.remove(&pkid) {
        let _ = reply.send(result);
    }
}

/// Turns a received PUBLISH into an event. A message over `max_bytes`, that is not a valid
/// CloudEvent, or (for a source, `check_cluster`) whose `clustername` is not the cluster of the
/// agent events topic it came on, is dropped (Go drops malformed ones too): the error names
/// the topic, the size and why, never the payload.
fn receive(publish: &Publish, max_bytes: usize, check_cluster: bool) -> Result<Event, TransportError> {
    use ocm_ce_core::EventExt;
    let topic = String::from_utf8_lossy(&publish.topic);
    let size = publish.size();
    if size > max_bytes {
        return Err(TransportError::dropped(
            "too_large",
            format!(
                "a message of {size} bytes on {topic} is over the maximum packet size of {max_bytes} bytes (maxPacketSize)"
            ),
        ));
    }
    let (content_type, user_properties) = match &publish.properties {
        Some(p) => (p.content_type.as_deref(), p.user_properties.as_slice()),
        None => (None, &[][..]),
    };
    let event = binding::decode(content_type, user_properties, &publish.payload).map_err(|e| {
        TransportError::dropped(
            "malformed_message",
            format!("a message of {size} bytes on {topic} is not a valid CloudEvent: {e}"),
        )
    })?;
    if check_cluster
        && let Some(cluster) = ocm_ce_core::topics::cluster_of_agent_events_topic(&topic)
        && event.cluster_name().ok().as_deref() != Some(cluster)
    {
        return Err(TransportError::dropped(
            "wrong_cluster",
            format!(
                "event {} on {topic} names cluster {:?}, not the topic's",
                event.id(),
                event.cluster_name().unwrap_or_default()
            ),
        ));
    }
    Ok(event)
}

/// Ends the session when the client certificate files change, so the next connection
/// presents the new certificate (Go's cert rotation closes the connection the same way). It
/// holds the subscription channel weakly: once the pump is gone the subscription ends.
async fn watch_cert(
    files: ClientCertFiles,
    connected_with: CertSnapshot,
    every: Duration,
    shared: Arc<Shared>,
    events: mpsc::WeakUnboundedSender<Delivery>,
    pump: tokio::task::AbortHandle,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match files.snapshot() {
            Ok(now) if now != connected_with => {
                tracing::info!(cert_file = %files.cert_file.display(), "the client certificate changed, reconnecting");
                let reason = "the client certificate changed";
                shared.fail_all(reason);
                pump.abort();
                if let Some(events) = events.upgrade() {
                    let _ = events.send(Delivery::Failed(TransportError::disconnected(reason)));
                }
                return;
            }
            Ok(_) => {}
            // A file being rewritten right now; look again at the next tick.
            Err(e) => tracing::debug!(error = %e, "cannot read the client certificate files"),
        }
    }
}

impl Connection for MqttConnection {
    async fn publish(&self, target: &PublishTarget, event: &Event) -> Result<(), TransportError> {
        if self.shared.is_closed() {
            return Err(Shared::closed_error(&self.shared.lock()));
        }
        let topic = self.settings.publish_topic(target, event)?;
        let level = self.settings.config.pub_qos;
        if level > self.max_qos {
            return Err(TransportError::config(format!(
                "pubQoS {level} is above the broker's maximum QoS {}",
                self.max_qos
            )));
        }
        let message = binding::encode(event).map_err(|e| TransportError::encoding(e.to_string()))?;
        let properties = PublishProperties {
            content_type: message.content_type,
            user_properties: message.user_properties,
            ..PublishProperties::default()
        };
        let qos = qos(level);
        let packet = Publish::new(&topic, qos, message.payload, Some(properties));
        let size = packet.size();
        if size > self.max_packet_size as usize {
            let whose = if self.max_packet_size < self.settings.config.max_packet_size {
                "the broker's Maximum Packet Size"
            } else {
                "maxPacketSize"
            };
            return Err(TransportError::too_large(format!(
                "event {} needs an MQTT packet of {size} bytes, more than the limit of {} bytes ({whose})",
                event.id(),
                self.max_packet_size
            )));
        }
        let (reply, rx) = oneshot::channel();
        {
            let _order = self.send_lock.lock().await;
            {
                let mut w = self.shared.lock();
                if self.shared.is_closed() {
                    return Err(Shared::closed_error(&w));
                }
                w.publishes.push_back(PendingPublish { qos, reply });
            }
            let sent = self
                .client
                .publish_bytes_with_properties(topic, qos, false, packet.payload, packet.properties.unwrap_or_default())
                .await;
            if sent.is_err() {
                let mut w = self.shared.lock();
                w.publishes.pop_back();
                return Err(Shared::closed_error(&w));
            }
        }
        self.await_reply(rx, "PUBACK").await
    }

    async fn subscribe(&self) -> Result<Subscription, TransportError> {
        let deliveries = self
            .subscription
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| TransportError::subscribe("this MQTT connection is already subscribed"))?;
        let level = qos(self.settings.config.sub_qos);
        let filters: Vec<Filter> = self.settings.filters.iter().map(|f| Filter::new(f, level)).collect();
        let (reply, rx) = oneshot::channel();
        {
            let _order = self.send_lock.lock().await;
            {
                let mut w = self.shared.lock();
                if self.shared.is_closed() {
                    return Err(Shared::closed_error(&w));
                }
                w.subscribes.push_back(reply);
            }
            if self.client.subscribe_many(filters).await.is_err() {
                let mut w = self.shared.lock();
                w.subscribes.pop_back();
                return Err(Shared::closed_error(&w));
            }
        }
        let codes = self.await_reply(rx, "SUBACK").await.map_err(|e| {
            if e.is_disconnected() {
                e
            } else {
                TransportError::subscribe(e.to_string())
            }
        })?;
        for (filter, code) in self.settings.filters.iter().zip(&codes) {
            match code {
                SubscribeReasonCode::Success(_) => {}
                SubscribeReasonCode::NotAuthorized => {
                    return Err(TransportError::rejected(format!(
                        "the MQTT broker refused the subscription to {filter:?}: not authorized"
                    )));
                }
                other => {
                    return Err(TransportError::subscribe(format!(
                        "the MQTT broker refused the subscription to {filter:?}: {other:?}"
                    )));
                }
            }
        }
        tracing::debug!(client_id = %self.settings.client_id, filters = ?self.settings.filters, "subscribed");
        Ok(subscription(deliveries, self.client.clone(), self.queued.clone()))
    }

    fn max_event_bytes(&self) -> Option<usize> {
        usize::try_from(self.max_packet_size).ok()
    }

    async fn close(&self) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            // Best effort: a full request channel means the session is stuck anyway.
            let _ = self.client.try_disconnect();
            let pump = self.pump.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(mut pump) = pump
                && tokio::time::timeout(CLOSE_GRACE, &mut pump).await.is_err()
            {
                pump.abort();
            }
        }
        self.shared.fail_all("the MQTT connection is closed");
        self.abort_tasks();
    }
}

/// The subscriber's side: takes deliveries in order, acknowledges each message as it is taken
/// (Go's paho acknowledges once the message is handed to the receiver), and ends after a
/// failure. A dropped message is acknowledged and reported as a `dropped` error.
fn subscription(rx: mpsc::UnboundedReceiver<Delivery>, client: AsyncClient, queued: Arc<AtomicUsize>) -> Subscription {
    let stream = futures::stream::unfold(Some((rx, client, queued)), |state| async move {
        let (mut rx, client, queued) = state?;
        let (item, ack) = match rx.recv().await? {
            Delivery::Failed(e) => return Some((Err(e), None)),
            Delivery::Event(event, ack) => (Ok(*event), ack),
            Delivery::Dropped(e, ack) => (Err(e), ack),
        };
        queued.fetch_sub(1, Ordering::SeqCst);
        if ack.qos != QoS::AtMostOnce {
            let publish = Publish {
                pkid: ack.pkid,
                qos: ack.qos,
                ..Publish::default()
            };
            // Fails only when the session is gone, which the stream reports next.
            let _ = client.ack(&publish).await;
        }
        Some((item, Some((rx, client, queued))))
    });
    Subscription::from_stream(stream)
}

impl Drop for MqttConnection {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.abort_tasks();
    }
}
