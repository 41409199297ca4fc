//! The MQTT transport against real Mosquitto brokers (started by `scripts/test-env.sh`, or by a
//! test itself on a free port): the generic source and agent clients exchanging specs and
//! statuses, shared subscriptions, broadcast resync, TLS, certificate rotation, refusals,
//! size limits, a broker restart mid-stream and a broker that drops messages.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "mqtt")]

mod mock;
mod mqtt_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use cloudevents::{AttributesReader, AttributesWriter, Event, EventBuilder, EventBuilderV10};
use futures::StreamExt;
use mock::{Mock, MockCodec, Side, Store, bundles, status_hash};
use mqtt_support::{OwnBroker, eventually, unique};
use ocm_ce_client::transport::mqtt::{MqttConfig, MqttTransport};
use ocm_ce_client::{
    AgentClient, BackoffConfig, ClientEvent, ClientOptions, Connection, PublishTarget, SourceClient, TlsFiles,
    Transport, TransportError,
};
use ocm_ce_core::event_type::action;
use ocm_ce_core::{Codec, CodecError, DataType, EventType, ResourceAction, SubResource};
use tokio::task::JoinHandle;

type Source = SourceClient<Mock, MqttTransport>;
type Agent = AgentClient<Mock, MqttTransport>;

const WAIT: Duration = Duration::from_secs(60);

fn options() -> ClientOptions {
    ClientOptions::default()
        .rate_limit(None)
        .backoff(BackoffConfig::constant(Duration::from_millis(500)))
}

fn ty(sub: SubResource, act: &str) -> EventType {
    EventType::new(bundles(), sub, act)
}

fn work(uid: &str, rv: u32, cluster: &str, source: &str, payload: &str) -> Mock {
    Mock {
        namespace: cluster.into(),
        source_label: source.into(),
        payload: payload.into(),
        ..Mock::new(uid, &rv.to_string())
    }
}

/// What a running client saw besides resources.
#[derive(Debug, Default)]
struct Log {
    connected: usize,
    reconnected: usize,
    errors: Vec<String>,
}

struct Running {
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Running {
    fn reconnected(&self) -> usize {
        self.log.lock().unwrap().reconnected
    }
    fn connected(&self) -> bool {
        let l = self.log.lock().unwrap();
        l.connected + l.reconnected > 0
    }
    async fn wait_connected(&self) {
        eventually("the subscription", WAIT, || self.connected()).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn note(log: &Mutex<Log>, item: &ocm_ce_client::Result<ClientEvent<Mock>>) {
    let mut l = log.lock().unwrap();
    match item {
        Ok(ClientEvent::Connected) => l.connected += 1,
        Ok(ClientEvent::Reconnected) => l.reconnected += 1,
        Err(e) => l.errors.push(e.to_string()),
        Ok(ClientEvent::Received(_)) => {}
    }
}

/// A source whose stream records statuses in its store; a `deleted` status removes the work
/// (like the work client's finalizer handling).
fn run_source(source: &Source, store: &Store) -> Running {
    let log = Arc::new(Mutex::new(Log::default()));
    let (mut stream, store, l) = (source.subscribe(), store.clone(), log.clone());
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            note(&l, &item);
            if let Ok(ClientEvent::Received(resource)) = item {
                let mut items = store.items.lock().unwrap();
                if resource.status == "deleted" {
                    items.remove(&resource.uid);
                } else if let Some(w) = items.get_mut(&resource.uid) {
                    w.status = resource.status;
                }
            }
        }
    });
    Running { log, task }
}

/// An agent that applies specs to its store and, when `report` is on, answers each with a
/// status `applied-<rv>` (or `deleted`).
fn run_agent(agent: &Agent, store: &Store, report: bool) -> Running {
    let log = Arc::new(Mutex::new(Log::default()));
    let (mut stream, store, l, agent) = (agent.subscribe(), store.clone(), log.clone(), agent.clone());
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            note(&l, &item);
            let Ok(ClientEvent::Received(mut resource)) = item else {
                continue;
            };
            let Some(action) = store.receive(&resource) else {
                continue;
            };
            match action {
                ResourceAction::Added | ResourceAction::Modified => {
                    resource.status = format!("applied-{}", resource.rv);
                    store.put(resource.clone());
                    if report {
                        let _ = agent
                            .publish(&ty(SubResource::Status, action::UPDATE_REQUEST), &resource)
                            .await;
                    }
                }
                ResourceAction::Deleted => {
                    resource.status = "deleted".into();
                    if report {
                        let _ = agent
                            .publish(&ty(SubResource::Status, action::DELETE_REQUEST), &resource)
                            .await;
                    }
                }
                ResourceAction::StatusModified => {}
            }
        }
    });
    Running { log, task }
}

fn source_client(config: MqttConfig, source_id: &str, client_id: &str, store: &Store, opts: ClientOptions) -> Source {
    SourceClient::new(
        MqttTransport::source(config, source_id, client_id).unwrap(),
        source_id,
        MockCodec::new(Side::Source),
        store.clone(),
        status_hash,
        opts,
    )
}

fn agent_client(transport: MqttTransport, cluster: &str, agent_id: &str, store: &Store, opts: ClientOptions) -> Agent {
    AgentClient::new(
        transport,
        cluster,
        agent_id,
        MockCodec::new(Side::Agent),
        store.clone(),
        status_hash,
        opts,
    )
}

/// Runs `source` and a reporting agent (see [`run_agent`]) and waits until both are subscribed.
async fn run_both(source: &Source, src_store: &Store, agent: &Agent, agent_store: &Store) -> (Running, Running) {
    let s = run_source(source, src_store);
    let a = run_agent(agent, agent_store, true);
    s.wait_connected().await;
    a.wait_connected().await;
    (s, a)
}

/// Puts `w` into the source's store and publishes it as a spec `act`.
async fn put_and_publish(source: &Source, src_store: &Store, act: &str, w: &Mock) {
    src_store.put(w.clone());
    source.publish(&ty(SubResource::Spec, act), w).await.unwrap();
}

/// Waits until the source's store holds status `status` for `uid`.
async fn source_sees_status(src_store: &Store, uid: &str, status: &str) {
    eventually(&format!("the source to see {status} for {uid}"), WAIT, || {
        status_of(src_store, uid).as_deref() == Some(status)
    })
    .await;
}

fn spec_of(store: &Store) -> HashMap<String, (String, String)> {
    store
        .items
        .lock()
        .unwrap()
        .values()
        .map(|m| (m.uid.clone(), (m.rv.clone(), m.payload.clone())))
        .collect()
}

fn status_of(store: &Store, uid: &str) -> Option<String> {
    store.get_mock(uid).map(|m| m.status)
}

// ---- exchange -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_and_an_agent_exchange_specs_and_statuses_through_mosquitto() {
    let host = require_env!("OCM_CE_TEST_MQTT");
    let (src, cluster) = (unique("src"), unique("cluster"));
    let (src_store, agent_store) = (Store::source(), Store::agent());
    let source = source_client(
        mqtt_support::config(&host, &src),
        &src,
        &format!("{src}-client"),
        &src_store,
        options(),
    );
    let transport =
        MqttTransport::agent(mqtt_support::config(&host, &src), &cluster, format!("{cluster}-agent")).unwrap();
    let agent = agent_client(
        transport,
        &cluster,
        &format!("{cluster}-agent"),
        &agent_store,
        options(),
    );
    let (s, a) = run_both(&source, &src_store, &agent, &agent_store).await;

    // Create, then update.
    for (rv, payload, act) in [(1, "one", action::CREATE_REQUEST), (2, "two", action::UPDATE_REQUEST)] {
        let w = work("w1", rv, &cluster, &src, payload);
        put_and_publish(&source, &src_store, act, &w).await;
        eventually(&format!("the agent to get w1 rv {rv}"), WAIT, || {
            agent_store.get_mock("w1").is_some_and(|m| m.payload == payload)
        })
        .await;
        source_sees_status(&src_store, "w1", &format!("applied-{rv}")).await;
        let got = agent_store.get_mock("w1").unwrap();
        assert_eq!(
            (got.namespace.as_str(), got.source_label.as_str()),
            (cluster.as_str(), src.as_str())
        );
    }

    // Delete.
    let w = Mock {
        deleting: Some(Utc::now()),
        ..work("w1", 2, &cluster, &src, "two")
    };
    put_and_publish(&source, &src_store, action::DELETE_REQUEST, &w).await;
    eventually("the agent to delete w1", WAIT, || agent_store.get_mock("w1").is_none()).await;
    eventually("the source to drop w1 after `deleted`", WAIT, || {
        src_store.get_mock("w1").is_none()
    })
    .await;

    assert_eq!(s.reconnected() + a.reconnected(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_status_resync_reaches_the_agent() {
    let host = require_env!("OCM_CE_TEST_MQTT");
    let (src, cluster) = (unique("src"), unique("cluster"));
    let (src_store, agent_store) = (Store::source(), Store::agent());
    for i in 0..3 {
        let uid = format!("w{i}");
        src_store.put(work(&uid, 1, &cluster, &src, "p"));
        agent_store.put(Mock {
            status: "from-the-agent".into(),
            ..work(&uid, 1, &cluster, &src, "p")
        });
    }
    let quiet = options().resync_on_connect(false);
    let source = source_client(
        mqtt_support::config(&host, &src),
        &src,
        &format!("{src}-c"),
        &src_store,
        quiet.clone(),
    );
    let transport = MqttTransport::agent(mqtt_support::config(&host, &src), &cluster, "agent").unwrap();
    let agent = agent_client(transport, &cluster, "agent", &agent_store, quiet);
    let (_s, _a) = run_both(&source, &src_store, &agent, &agent_store).await;

    // To every cluster: goes to sources/<src>/sourcebroadcast.
    source.resync("").await.unwrap();
    eventually("every status through the broadcast resync", WAIT, || {
        (0..3).all(|i| status_of(&src_store, &format!("w{i}")).as_deref() == Some("from-the-agent"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_subscription_hands_each_status_to_exactly_one_of_two_sources() {
    let host = require_env!("OCM_CE_TEST_MQTT");
    let (src, cluster) = (unique("src"), unique("cluster"));
    let group = unique("group");
    let mut shared = mqtt_support::topics(&src);
    shared.agent_events = format!("$share/{group}/{}", shared.agent_events);
    shared.agent_broadcast = format!("$share/{group}/{}", shared.agent_broadcast);

    // Each source instance counts the statuses it handles.
    let counts: Vec<Arc<Mutex<HashMap<String, usize>>>> = vec![Arc::default(), Arc::default()];
    let mut running = Vec::new();
    let mut sources = Vec::new();
    for (i, count) in counts.iter().enumerate() {
        let source = source_client(
            MqttConfig::new(&host, shared.clone()),
            &src,
            &format!("{src}-{i}"),
            &Store::source(),
            options().resync_on_connect(false),
        );
        let (mut stream, count) = (source.subscribe(), count.clone());
        let log = Arc::new(Mutex::new(Log::default()));
        let l = log.clone();
        running.push(Running {
            log,
            task: tokio::spawn(async move {
                while let Some(item) = stream.next().await {
                    note(&l, &item);
                    if let Ok(ClientEvent::Received(resource)) = item {
                        *count.lock().unwrap().entry(resource.uid).or_default() += 1;
                    }
                }
            }),
        });
        sources.push(source);
    }
    for r in &running {
        r.wait_connected().await;
    }
    let agent_store = Store::agent();
    let transport = MqttTransport::agent(mqtt_support::config(&host, &src), &cluster, "agent").unwrap();
    let agent = agent_client(
        transport,
        &cluster,
        "agent",
        &agent_store,
        options().resync_on_connect(false),
    );
    let a = run_agent(&agent, &agent_store, false);
    a.wait_connected().await;

    let n = 40;
    for i in 0..n {
        let w = Mock {
            status: format!("s{i}"),
            ..work(&format!("w{i}"), 1, &cluster, &src, "")
        };
        agent
            .publish(&ty(SubResource::Status, action::UPDATE_REQUEST), &w)
            .await
            .unwrap();
    }
    let total = || {
        counts
            .iter()
            .map(|c| c.lock().unwrap().values().sum::<usize>())
            .sum::<usize>()
    };
    eventually("every status", WAIT, || total() >= n).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(total(), n, "each status is handled exactly once overall");
    for i in 0..n {
        let uid = format!("w{i}");
        let seen: usize = counts
            .iter()
            .map(|c| c.lock().unwrap().get(&uid).copied().unwrap_or(0))
            .sum();
        assert_eq!(seen, 1, "{uid}");
    }
    let per_instance: Vec<usize> = counts.iter().map(|c| c.lock().unwrap().len()).collect();
    assert!(
        per_instance.iter().all(|c| *c > 0),
        "the broker shares the load: {per_instance:?}"
    );
}

// ---- TLS ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_works_against_the_tls_broker() {
    let host = require_env!("OCM_CE_TEST_MQTT_TLS");
    let certs = require_env!("OCM_CE_TEST_CERTS");
    let certs = Path::new(&certs);
    let (src, cluster) = (unique("src"), unique("cluster"));
    let tls = |c: MqttConfig| {
        c.tls(
            TlsFiles::new()
                .ca_file(certs.join("ca.pem"))
                .client_cert(certs.join("client.pem"), certs.join("client-key.pem")),
        )
    };
    let (src_store, agent_store) = (Store::source(), Store::agent());
    let source = source_client(
        tls(mqtt_support::config(&host, &src)),
        &src,
        &format!("{src}-c"),
        &src_store,
        options(),
    );
    let transport = MqttTransport::agent(tls(mqtt_support::config(&host, &src)), &cluster, "agent").unwrap();
    let agent = agent_client(transport, &cluster, "agent", &agent_store, options());
    let (_s, _a) = run_both(&source, &src_store, &agent, &agent_store).await;
    let w = work("w1", 1, &cluster, &src, "over-tls");
    put_and_publish(&source, &src_store, action::CREATE_REQUEST, &w).await;
    source_sees_status(&src_store, "w1", "applied-1").await;

    // Without a client certificate the broker refuses the handshake.
    let no_cert = mqtt_support::config(&host, &src).tls(TlsFiles::new().ca_file(certs.join("ca.pem")));
    let err = connect_agent(no_cert, &cluster, "other").await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_alone_gives_server_verified_tls() {
    let Some((broker, certs)) = own_tls_broker(false).await else {
        return;
    };
    let certs = certs.as_path();
    let src = unique("src");
    let config = mqtt_support::config(&broker.host(), &src).tls(TlsFiles::new().ca_file(certs.join("ca.pem")));
    let conn = connect_agent(config, "cluster1", "agent").await.unwrap();
    conn.subscribe().await.unwrap();
    conn.close().await;

    // Plain TCP to a TLS listener, or TLS with the wrong roots, fails.
    let plain = mqtt_support::config(&broker.host(), &src);
    assert!(connect_agent(plain, "cluster1", "agent").await.is_err());
    let dir = tempfile::tempdir().unwrap();
    let other_ca = rcgen::CertificateParams::new(vec!["other".to_owned()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(dir.path().join("other.pem"), other_ca.pem()).unwrap();
    let wrong = mqtt_support::config(&broker.host(), &src).tls(TlsFiles::new().ca_file(dir.path().join("other.pem")));
    let err = connect_agent(wrong, "cluster1", "agent").await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

/// An own Mosquitto with a TLS listener (see [`tls_listener`]), and the test certificates'
/// directory; `None` (the test skips) without the test environment.
async fn own_tls_broker(require_client_cert: bool) -> Option<(OwnBroker, PathBuf)> {
    let bin = mqtt_support::env("OCM_CE_MOSQUITTO_BIN")?;
    let certs = PathBuf::from(mqtt_support::env("OCM_CE_TEST_CERTS")?);
    let broker = OwnBroker::start(&bin, &tls_listener(&certs, require_client_cert)).await;
    Some((broker, certs))
}

/// Connects an agent transport with `config`.
async fn connect_agent(
    config: MqttConfig,
    cluster: &str,
    agent_id: &str,
) -> Result<<MqttTransport as Transport>::Connection, TransportError> {
    MqttTransport::agent(config, cluster, agent_id).unwrap().connect().await
}

fn tls_listener(certs: &Path, require_client_cert: bool) -> Vec<String> {
    let mut lines = vec![
        format!("cafile {}", certs.join("ca.pem").display()),
        format!("certfile {}", certs.join("server.pem").display()),
        format!("keyfile {}", certs.join("server-key.pem").display()),
    ];
    if require_client_cert {
        lines.push("require_certificate true".into());
        lines.push("use_identity_as_username true".into());
    } else {
        lines.push("allow_anonymous true".into());
    }
    lines
}

/// Writes a client certificate with common name `cn`, signed by the test CA, over `dir`'s
/// `client.pem` / `client-key.pem`.
fn write_client_cert(certs: &Path, dir: &Path, cn: &str) {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca-key.pem")).unwrap()).unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(certs.join("ca.pem")).unwrap(), ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    // Key first: a handshake between the two writes fails and is retried.
    std::fs::write(dir.join("client-key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("client.pem"), cert.pem()).unwrap();
}

fn connected_as(log: &str, client_id: &str, user: &str) -> bool {
    log.lines()
        .any(|l| l.contains(&format!(" as {client_id} ")) && l.contains(&format!("u'{user}'")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_certificate_is_picked_up_without_a_restart() {
    let Some((broker, certs)) = own_tls_broker(true).await else {
        return;
    };
    let certs = certs.as_path();
    let dir = tempfile::tempdir().unwrap();
    write_client_cert(certs, dir.path(), "ocm-ce-rotation-a");

    let (src, cluster) = (unique("src"), unique("cluster"));
    let agent_config = mqtt_support::config(&broker.host(), &src)
        .tls(
            TlsFiles::new()
                .ca_file(certs.join("ca.pem"))
                .client_cert(dir.path().join("client.pem"), dir.path().join("client-key.pem")),
        )
        .cert_check_interval(Duration::from_millis(500));
    let transport = MqttTransport::agent(agent_config, &cluster, "agent").unwrap();
    let client_id = transport.client_id().to_owned();
    let agent_store = Store::agent();
    let agent = agent_client(transport, &cluster, "agent", &agent_store, options());
    let a = run_agent(&agent, &agent_store, true);
    a.wait_connected().await;
    assert!(
        connected_as(&broker.log(), &client_id, "ocm-ce-rotation-a"),
        "{}",
        broker.log()
    );

    write_client_cert(certs, dir.path(), "ocm-ce-rotation-b");
    eventually("a reconnect after the rotation", WAIT, || a.reconnected() >= 1).await;
    eventually("a connection with the new certificate", WAIT, || {
        connected_as(&broker.log(), &client_id, "ocm-ce-rotation-b")
    })
    .await;

    // The new connection works end to end.
    let src_store = Store::source();
    let source_config = mqtt_support::config(&broker.host(), &src).tls(
        TlsFiles::new()
            .ca_file(certs.join("ca.pem"))
            .client_cert(certs.join("client.pem"), certs.join("client-key.pem")),
    );
    let source = source_client(source_config, &src, &format!("{src}-c"), &src_store, options());
    let s = run_source(&source, &src_store);
    s.wait_connected().await;
    let w = work("w1", 1, &cluster, &src, "after-rotation");
    put_and_publish(&source, &src_store, action::CREATE_REQUEST, &w).await;
    source_sees_status(&src_store, "w1", "applied-1").await;
}

// ---- refusals and limits -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_a_clear_error() {
    let host = require_env!("OCM_CE_TEST_MQTT_AUTH");
    let user = require_env!("OCM_CE_TEST_MQTT_USER");
    let password = require_env!("OCM_CE_TEST_MQTT_PASSWORD");
    let config = mqtt_support::config(&host, "source1");
    let err = connect_agent(config.clone().credentials(&user, "wrong"), "cluster1", "a")
        .await
        .unwrap_err();
    assert!(err.is_rejected() && !err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("bad user name or password") || err.to_string().contains("not authorized"),
        "{err}"
    );
    let conn = connect_agent(config.credentials(&user, &password), "cluster1", "a")
        .await
        .unwrap();
    conn.subscribe().await.unwrap();
    conn.close().await;
}

fn spec_event(src: &str, cluster: &str, data: Vec<u8>) -> Event {
    let mut e = EventBuilderV10::new()
        .id(unique("id"))
        .source(src)
        .ty(ty(SubResource::Spec, action::CREATE_REQUEST).to_string())
        .time(Utc::now())
        .extension("clustername", cluster)
        .extension("originalsource", "")
        .extension("resourceid", "w1")
        .extension("resourceversion", 1_i64)
        .build()
        .unwrap();
    e.set_data("application/json", data);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_event_is_refused_before_sending() {
    let host = require_env!("OCM_CE_TEST_MQTT");
    let src = unique("src");
    let config = mqtt_support::config(&host, &src).max_packet_size(2048);
    let conn = MqttTransport::source(config, &src, unique("c"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let target = PublishTarget::Cluster("cluster1".into());
    let big = spec_event(&src, "cluster1", vec![b'x'; 4096]);
    let err = conn.publish(&target, &big).await.unwrap_err();
    assert!(err.is_too_large() && !err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("packet of 4") && err.to_string().contains("limit of 2048 bytes (maxPacketSize)"),
        "names both sizes: {err}"
    );
    // The connection is still fine.
    conn.publish(&target, &spec_event(&src, "cluster1", b"{}".to_vec()))
        .await
        .unwrap();
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_event_over_the_limit_is_reported_counted_and_the_subscription_goes_on() {
    let host = require_env!("OCM_CE_TEST_MQTT");
    let src = unique("src");
    let cluster = unique("cluster");
    let small = mqtt_support::config(&host, &src).max_packet_size(2048);
    let agent = MqttTransport::agent(small, &cluster, "agent")
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut sub = agent.subscribe().await.unwrap();
    let source = MqttTransport::source(mqtt_support::config(&host, &src), &src, unique("c"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let target = PublishTarget::Cluster(cluster.clone());
    // The broker delivers it (the agent announced a larger Maximum Packet Size) ...
    source
        .publish(&target, &spec_event(&src, &cluster, vec![b'x'; 4096]))
        .await
        .unwrap();
    source
        .publish(&target, &spec_event(&src, &cluster, b"{}".to_vec()))
        .await
        .unwrap();
    // ... and the agent reports it as dropped, with its size, then carries on.
    let dropped = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(dropped.dropped_reason(), Some("too_large"), "{dropped}");
    assert!(
        dropped.to_string().contains("over the maximum packet size of 2048"),
        "{dropped}"
    );
    assert!(!dropped.to_string().contains("xxxx"), "never the payload: {dropped}");
    let next = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.data().map(|_| ()), Some(()));
    agent.close().await;
    source.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_while_disconnected_fails_at_once_with_a_retryable_error() {
    let bin = require_env!("OCM_CE_MOSQUITTO_BIN");
    let mut broker = OwnBroker::start(&bin, &["allow_anonymous true"]).await;
    let src = unique("src");
    let conn = MqttTransport::source(mqtt_support::config(&broker.host(), &src), &src, "c")
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut events = conn.subscribe().await.unwrap();
    let target = PublishTarget::Cluster("cluster1".into());
    conn.publish(&target, &spec_event(&src, "cluster1", b"{}".to_vec()))
        .await
        .unwrap();

    broker.kill();
    let end = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Err(ref e)) if e.is_disconnected()), "{end:?}");
    let started = Instant::now();
    let err = conn
        .publish(&target, &spec_event(&src, "cluster1", b"{}".to_vec()))
        .await
        .unwrap_err();
    assert!(err.is_disconnected() && err.is_retryable(), "{err}");
    assert!(started.elapsed() < Duration::from_millis(200));

    // Through the generic client: not connected → retryable at once.
    let store = Store::source();
    let source = source_client(
        mqtt_support::config(&broker.host(), &src),
        &src,
        "c2",
        &store,
        options(),
    );
    let _s = run_source(&source, &store);
    let started = Instant::now();
    let err = source
        .publish(
            &ty(SubResource::Spec, action::CREATE_REQUEST),
            &work("w", 1, "cluster1", &src, ""),
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_sends_a_disconnect_and_drop_stops_the_connection() {
    let bin = require_env!("OCM_CE_MOSQUITTO_BIN");
    let broker = OwnBroker::start(&bin, &["allow_anonymous true"]).await;
    let transport =
        MqttTransport::agent(mqtt_support::config(&broker.host(), "source1"), "cluster1", "closing").unwrap();
    let conn = transport.connect().await.unwrap();
    conn.close().await;
    eventually("a clean DISCONNECT", WAIT, || {
        broker.log().contains("Client closing-client disconnected.")
    })
    .await;
    assert!(conn.is_closed());

    let dropped = transport.with_client_id("dropping").connect().await.unwrap();
    drop(dropped);
    eventually("the socket to close", WAIT, || {
        broker.log().contains("Client dropping closed its connection.")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_can_still_publish_and_loses_nothing_the_broker_queues() {
    let host = require_env!("OCM_CE_TEST_MQTT");
    let (src, cluster) = (unique("src"), unique("cluster"));
    let source = MqttTransport::source(mqtt_support::config(&host, &src), &src, unique("c"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let agent = MqttTransport::agent(mqtt_support::config(&host, &src), &cluster, "agent")
        .unwrap()
        .with_receive_buffer(4)
        .with_ack_timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap();
    let mut events = agent.subscribe().await.unwrap();
    let n = 50;
    let target = PublishTarget::Cluster(cluster.clone());
    for i in 0..n {
        let mut e = spec_event(&src, &cluster, b"{}".to_vec());
        e.set_extension("resourceid", format!("w{i:02}"));
        source.publish(&target, &e).await.unwrap();
    }
    // Nobody reads `events`, yet the agent's own publishes are acknowledged.
    let mut status = spec_event(&src, &cluster, b"{}".to_vec());
    status.set_type(ty(SubResource::Status, action::UPDATE_REQUEST).to_string());
    status.set_extension("originalsource", src.clone());
    agent
        .publish(&PublishTarget::Source(src.clone()), &status)
        .await
        .unwrap();
    // Then every spec arrives, in order.
    for i in 0..n {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            e.extension("resourceid").map(ToString::to_string),
            Some(format!("w{i:02}"))
        );
    }
    source.close().await;
    agent.close().await;
}

// ---- reconnects and lost messages ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_mid_stream_loses_nothing() {
    let bin = require_env!("OCM_CE_MOSQUITTO_BIN");
    let mut broker = OwnBroker::start(&bin, &["allow_anonymous true", "max_queued_messages 100000"]).await;
    let (src, cluster) = (unique("src"), unique("cluster"));
    let (src_store, agent_store) = (Store::source(), Store::agent());
    let opts = options().resync_interval(Some(Duration::from_secs(3)));
    let source = source_client(
        mqtt_support::config(&broker.host(), &src),
        &src,
        "src-c",
        &src_store,
        opts.clone(),
    );
    let transport = MqttTransport::agent(mqtt_support::config(&broker.host(), &src), &cluster, "agent").unwrap();
    let agent = agent_client(transport, &cluster, "agent", &agent_store, opts);
    let (s, a) = run_both(&source, &src_store, &agent, &agent_store).await;

    let n = 150;
    let mut failed = 0;
    for i in 0..n {
        if i == 50 {
            broker.kill();
        }
        if i == 100 {
            broker.restart().await;
        }
        let w = work(&format!("w{i:03}"), 1 + i % 3, &cluster, &src, &format!("p{i}"));
        src_store.put(w.clone());
        // A controller would leave failed sends to the resync, as here.
        if let Err(e) = source.publish(&ty(SubResource::Spec, action::CREATE_REQUEST), &w).await {
            assert!(e.is_retryable(), "{e}");
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("{failed} of {n} publishes failed while the broker was down");
    assert!(failed > 0, "the broker was down for a while");
    eventually("both sides to reconnect", WAIT, || {
        s.reconnected() >= 1 && a.reconnected() >= 1
    })
    .await;
    eventually("the agent to hold every spec", WAIT, || {
        spec_of(&agent_store) == spec_of(&src_store)
    })
    .await;
    eventually("the source to hold every status", WAIT, || {
        src_store
            .items
            .lock()
            .unwrap()
            .values()
            .all(|m| m.status == format!("applied-{}", m.rv))
    })
    .await;
    assert_eq!(spec_of(&src_store).len(), n as usize);
}

/// The agent codec, counting the decoded events per action.
#[derive(Debug)]
struct CountingCodec {
    inner: MockCodec,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Codec<Mock> for CountingCodec {
    fn data_types(&self) -> &[DataType] {
        self.inner.data_types()
    }
    fn encode(&self, source: &str, ty: &EventType, m: &Mock) -> Result<Event, CodecError> {
        self.inner.encode(source, ty, m)
    }
    fn decode(&self, e: &Event) -> Result<Mock, CodecError> {
        let action = e.ty().rsplit('.').next().unwrap_or_default().to_owned();
        *self.counts.lock().unwrap().entry(action).or_default() += 1;
        self.inner.decode(e)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_falls_behind_loses_messages_and_the_periodic_resync_recovers_them() {
    let host = require_env!("OCM_CE_TEST_MQTT_SMALLQ");
    let (src, cluster) = (unique("src"), unique("cluster"));
    let (src_store, agent_store) = (Store::source(), Store::agent());
    let opts = options().resync_interval(Some(Duration::from_secs(2)));
    let source = source_client(
        mqtt_support::config(&host, &src),
        &src,
        "src-c",
        &src_store,
        opts.clone(),
    );
    let s = run_source(&source, &src_store);
    s.wait_connected().await;

    // The agent reads one event at a time and stops reading while `paused`.
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let transport = MqttTransport::agent(mqtt_support::config(&host, &src), &cluster, "agent")
        .unwrap()
        .with_receive_buffer(1);
    let agent = AgentClient::new(
        transport,
        &cluster,
        "agent",
        CountingCodec {
            inner: MockCodec::new(Side::Agent),
            counts: counts.clone(),
        },
        agent_store.clone(),
        status_hash,
        opts,
    );
    let paused = Arc::new(tokio::sync::watch::channel(false).0);
    let connected = Arc::new(Mutex::new(false));
    let task = {
        let (mut stream, store, paused, connected) = (
            agent.subscribe(),
            agent_store.clone(),
            paused.subscribe(),
            connected.clone(),
        );
        tokio::spawn(async move {
            let mut paused = paused;
            loop {
                let _ = paused.wait_for(|p| !*p).await;
                let Some(item) = stream.next().await else { return };
                match item {
                    Ok(ClientEvent::Connected | ClientEvent::Reconnected) => *connected.lock().unwrap() = true,
                    Ok(ClientEvent::Received(resource)) => {
                        store.receive(&resource);
                    }
                    Err(_) => {}
                }
            }
        })
    };
    eventually("the agent subscription", WAIT, || *connected.lock().unwrap()).await;

    paused.send_replace(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = 100;
    for i in 0..n {
        let w = work(&format!("w{i:03}"), 1, &cluster, &src, "p");
        put_and_publish(&source, &src_store, action::CREATE_REQUEST, &w).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    paused.send_replace(false);

    eventually("every spec at the agent", WAIT, || {
        agent_store.items.lock().unwrap().len() == n
    })
    .await;
    let counts = counts.lock().unwrap().clone();
    let created = counts.get(action::CREATE_REQUEST).copied().unwrap_or(0);
    let resent = counts.get(action::RESYNC_RESPONSE).copied().unwrap_or(0);
    eprintln!("decoded by the agent per action: {counts:?}");
    assert!(
        created < n,
        "the broker dropped messages for the slow subscriber: {counts:?}"
    );
    assert!(resent >= n - created, "the resync resent what was dropped: {counts:?}");
    task.abort();
}
