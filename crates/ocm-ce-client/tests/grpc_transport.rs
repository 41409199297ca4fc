//! The gRPC transport: Go's `TestBuildGRPCOptionsFromFlags`, and the generic
//! source and agent clients talking through the ocm-ce broker over real sockets: exchange,
//! broker restart on the same port, idle connections, heartbeat loss, a slow agent.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "grpc")]

mod mock;

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt;
use mock::{Mock, MockCodec, Side, Store, bundles, status_hash};
use ocm_ce_broker::{Broker, BrokerBuilder, BrokerHandle};
use ocm_ce_client::transport::grpc::{GrpcConfig, GrpcTransport, KeepAliveConfig};
use ocm_ce_client::{
    AgentClient, BackoffConfig, ClientEvent, ClientOptions, ClientStream, Error, Role, SourceClient, TlsFiles,
};
use ocm_ce_core::event_type::action;
use ocm_ce_core::{EventType, ResourceAction, SubResource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

const WAIT: Duration = Duration::from_secs(30);

// ---- Go TestBuildGRPCOptionsFromFlags ------------------------------------------------------------

fn config_from(text: &str) -> Result<GrpcConfig, ocm_ce_client::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grpc-config-test");
    std::fs::write(&file, text).unwrap();
    GrpcConfig::from_file(&file)
}

#[test]
fn grpc_config_files_validate_like_gos_build_grpc_options_from_flags() {
    let errors = [
        ("", "url is required"),
        (
            r#"{"url":"test","clientCertFile":"test"}"#,
            "either both or none of clientCertFile and clientKeyFile must be set",
        ),
        (
            r#"{"url":"test","clientCertFile":"test","clientKeyFile":"test"}"#,
            "setting clientCertFile and clientKeyFile requires caFile",
        ),
        (
            r#"{"url":"test","tokenFile":"test"}"#,
            "setting tokenFile requires caFile",
        ),
    ];
    for (text, want) in errors {
        let err = config_from(text).unwrap_err();
        assert_eq!(err.to_string(), want, "{text}");
        assert!(ocm_ce_client::TransportError::from(err).is_config(), "{text}");
    }

    let ok = [
        (r#"{"url":"test"}"#, GrpcConfig::new("test")),
        ("url: test", GrpcConfig::new("test")),
        (
            r#"{"url":"test","caFile":"test"}"#,
            GrpcConfig::new("test").tls(TlsFiles::new().ca_file("test")),
        ),
        (
            r#"{"url":"test","caFile":"test","clientCertFile":"test","clientKeyFile":"test"}"#,
            GrpcConfig::new("test").tls(TlsFiles::new().ca_file("test").client_cert("test", "test")),
        ),
        (
            r#"{"url":"test","caFile":"test","tokenFile":"test"}"#,
            GrpcConfig::new("test")
                .tls(TlsFiles::new().ca_file("test"))
                .token_file("test"),
        ),
    ];
    for (text, want) in ok {
        assert_eq!(config_from(text).unwrap(), want, "{text}");
    }
}

#[test]
fn grpc_config_reads_keep_alive_and_healthiness_settings_and_ignores_unknown_keys() {
    let config = GrpcConfig::from_str(
        "url: broker:8090\ncaFile: ''\nkeepAliveConfig:\n  enable: true\n  time: 1m\n  timeout: 5s\nserverHealthinessTimeout: 20s\nsomethingNew: 1\n",
    )
    .unwrap();
    assert_eq!(config.tls.ca_file, None, "an empty path is no path, as in Go");
    assert!(config.keep_alive_config.enable);
    assert_eq!(config.keep_alive_config.effective_time(), Duration::from_secs(60));
    assert_eq!(config.keep_alive_config.effective_timeout(), Duration::from_secs(5));
    assert_eq!(config.server_healthiness_timeout, Some(Duration::from_secs(20)));
    // our short aliases, and integer nanoseconds as Go's YAML decoder reads them
    let aliases = GrpcConfig::from_str("url: b:1\nkeepAlive: {enable: true}\nheartbeatTimeout: 1500000000\n").unwrap();
    assert_eq!(aliases.keep_alive_config.effective_time(), Duration::from_secs(30));
    assert_eq!(aliases.server_healthiness_timeout, Some(Duration::from_millis(1500)));
    assert!(matches!(
        GrpcConfig::from_str("url: b:1\nheartbeatTimeout: soon\n"),
        Err(ocm_ce_client::ConfigError::Parse { .. })
    ));
    // a transport also needs a host:port url
    assert!(GrpcTransport::new(GrpcConfig::new("test"), Role::source("s")).is_err());
}

#[tokio::test]
async fn connect_fails_when_nothing_listens() {
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let transport = GrpcTransport::new(GrpcConfig::new(addr.to_string()), Role::source("s")).unwrap();
    let err = ocm_ce_client::Transport::connect(&transport).await.unwrap_err();
    assert!(err.is_connect() && err.is_retryable(), "{err}");
}

// ---- generic clients through the broker ----------------------------------------------------------

type Source = SourceClient<Mock, GrpcTransport>;
type Agent = AgentClient<Mock, GrpcTransport>;

fn options() -> ClientOptions {
    ClientOptions::default()
        .rate_limit(None)
        .backoff(BackoffConfig::constant(Duration::from_millis(100)))
}

fn spec_type(act: &str) -> EventType {
    EventType::new(bundles(), SubResource::Spec, act)
}

fn status_type(act: &str) -> EventType {
    EventType::new(bundles(), SubResource::Status, act)
}

struct Served {
    addr: SocketAddr,
    handle: BrokerHandle,
    task: JoinHandle<ocm_ce_broker::Result<()>>,
}

async fn serve(builder: BrokerBuilder, addr: SocketAddr) -> Served {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let broker = builder.build().unwrap();
    let handle = broker.handle();
    Served {
        addr,
        handle,
        task: tokio::spawn(broker.serve(listener)),
    }
}

impl Served {
    async fn stop(self) {
        self.handle.shutdown();
        tokio::time::timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

fn source_client(config: GrpcConfig, store: &Store, opts: ClientOptions) -> Source {
    let transport = GrpcTransport::new(config, Role::source("source1")).unwrap();
    SourceClient::new(
        transport,
        "source1",
        MockCodec::new(Side::Source),
        store.clone(),
        status_hash,
        opts,
    )
}

fn agent_client(config: GrpcConfig, cluster: &str, store: &Store, opts: ClientOptions) -> Agent {
    let role = Role::Agent {
        cluster_name: cluster.into(),
        agent_id: format!("{cluster}-agent"),
    };
    let transport = GrpcTransport::new(config, role).unwrap();
    AgentClient::new(
        transport,
        cluster,
        format!("{cluster}-agent"),
        MockCodec::new(Side::Agent),
        store.clone(),
        status_hash,
        opts,
    )
}

/// What the application loops report.
#[derive(Debug, Clone, PartialEq)]
enum Note {
    Marker(&'static str, String),
    Changed,
    Error(&'static str, String),
}

/// The application loop `name` over `stream`: hands each received resource to `on_received` and
/// sends a note for every item, until the stream ends or nobody reads the notes.
async fn run_app<F: Future<Output = ()>>(
    name: &'static str,
    mut stream: ClientStream<Mock>,
    notes: mpsc::UnboundedSender<Note>,
    mut on_received: impl FnMut(Mock) -> F,
) {
    while let Some(item) = stream.next().await {
        let note = match item {
            Ok(ClientEvent::Received(resource)) => {
                on_received(resource).await;
                Note::Changed
            }
            Ok(marker) => Note::Marker(name, format!("{marker:?}")),
            Err(e) => Note::Error(name, error_chain(&e)),
        };
        if notes.send(note).is_err() {
            return;
        }
    }
}

/// An agent application: applies specs to its store and reports the status `applied-<payload>`.
async fn run_agent(name: &'static str, client: Agent, store: Store, notes: mpsc::UnboundedSender<Note>) {
    run_app(name, client.subscribe(), notes, |resource| {
        let applied = match store.receive(&resource) {
            None | Some(ResourceAction::Deleted) => None,
            Some(_) => {
                let mut applied = resource;
                applied.status = format!("applied-{}", applied.payload);
                store.put(applied.clone());
                Some(applied)
            }
        };
        let client = client.clone();
        async move {
            if let Some(applied) = applied {
                // A failure is recovered by the source's status resync.
                let _ = client.publish(&status_type(action::UPDATE_REQUEST), &applied).await;
            }
        }
    })
    .await;
}

/// A source application: records the statuses it receives.
async fn run_source(stream: ClientStream<Mock>, store: Store, notes: mpsc::UnboundedSender<Note>) {
    run_app("source", stream, notes, |resource| {
        if let Some(mut own) = store.get_mock(&resource.uid) {
            own.status = resource.status;
            store.put(own);
        }
        async {}
    })
    .await;
}

fn error_chain(e: &Error) -> String {
    let mut out = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// A test's application loops, the channel of their notes and the notes seen so far.
struct Apps {
    tx: mpsc::UnboundedSender<Note>,
    notes: mpsc::UnboundedReceiver<Note>,
    seen: Vec<Note>,
    tasks: JoinSet<()>,
}

impl Apps {
    fn new() -> Self {
        let (tx, notes) = mpsc::unbounded_channel();
        Self {
            tx,
            notes,
            seen: Vec::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Runs `source` as the application `source` (see [`run_source`]).
    fn source(&mut self, source: &Source, store: &Store) {
        self.tasks
            .spawn(run_source(source.subscribe(), store.clone(), self.tx.clone()));
    }

    /// Runs `agent` as the application `name` (see [`run_agent`]).
    fn agent(&mut self, name: &'static str, agent: &Agent, store: &Store) {
        self.tasks
            .spawn(run_agent(name, agent.clone(), store.clone(), self.tx.clone()));
    }

    /// Waits (driven by the applications' notes) until `done` holds; panics after [`WAIT`].
    async fn until(&mut self, mut done: impl FnMut(&[Note]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.notes.recv()).await {
                Ok(Some(note)) => self.seen.push(note),
                Ok(None) => panic!("the applications stopped"),
                Err(_) => panic!("condition not reached within {WAIT:?}; notes: {:?}", self.seen),
            }
        }
    }

    /// Waits until each of the applications `names` has reported `Connected` once.
    async fn connected(&mut self, names: &[&str]) {
        self.until(|s| names.iter().all(|name| markers(s, name, "Connected") == 1))
            .await;
    }
}

/// Source and agent agree: same works, same versions and payloads, statuses reported back.
fn in_sync(source: &Store, agent: &Store) -> bool {
    let src = source.items.lock().unwrap().clone();
    let agt = agent.items.lock().unwrap().clone();
    src.len() == agt.len()
        && src.iter().all(|(uid, s)| {
            agt.get(uid).is_some_and(|a| {
                a.rv == s.rv
                    && a.payload == s.payload
                    && a.status == format!("applied-{}", s.payload)
                    && s.status == a.status
            })
        })
}

fn work(uid: &str, rv: u32, payload: &str) -> Mock {
    Mock {
        payload: payload.into(),
        ..Mock::new(uid, &rv.to_string())
    }
}

fn markers(seen: &[Note], who: &str, what: &str) -> usize {
    seen.iter()
        .filter(|n| matches!(n, Note::Marker(w, m) if *w == who && m == what))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_and_agents_exchange_specs_statuses_and_resyncs_and_survive_a_broker_restart() {
    let broker = serve(Broker::builder().insecure(true), "127.0.0.1:0".parse().unwrap()).await;
    let addr = broker.addr;
    let config = GrpcConfig::new(addr.to_string());
    let (src_store, agent_store) = (Store::source(), Store::agent());
    for i in 1..=3 {
        src_store.put(work(&format!("w{i}"), 1, "v1"));
    }
    // The periodic resync covers the requests a side sends while its peer is not subscribed yet.
    let opts = || options().resync_interval(Some(Duration::from_secs(1)));
    let source = source_client(config.clone(), &src_store, opts());
    let agent = agent_client(config, "cluster1", &agent_store, opts());
    let mut apps = Apps::new();
    apps.source(&source, &src_store);
    apps.agent("agent", &agent, &agent_store);

    // initial resync: the agent gets the three works, the source their statuses
    apps.until(|_| in_sync(&src_store, &agent_store)).await;
    // a spec published live
    let w4 = work("w4", 1, "v1");
    src_store.put(w4.clone());
    source.publish(&spec_type(action::CREATE_REQUEST), &w4).await.unwrap();
    apps.until(|_| in_sync(&src_store, &agent_store)).await;

    // Mid-stream: updates in flight, the broker goes away, more updates while it is down.
    let w1 = work("w1", 2, "v2");
    src_store.put(w1.clone());
    source.publish(&spec_type(action::UPDATE_REQUEST), &w1).await.unwrap();
    broker.stop().await;
    apps.until(|s| {
        s.iter().any(|n| matches!(n, Note::Error("source", _)))
            && s.iter().any(|n| matches!(n, Note::Error("agent", _)))
    })
    .await;
    let w2 = work("w2", 2, "v2");
    src_store.put(w2.clone());
    let err = source
        .publish(&spec_type(action::UPDATE_REQUEST), &w2)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    src_store.put(work("w5", 1, "v1"));
    src_store.remove("w3");
    agent_store.remove("w3"); // as if the agent had deleted it on a delete spec it missed

    // back on the same port: reconnect, resubscribe, resync, converge
    let broker = serve(Broker::builder().insecure(true), addr).await;
    apps.until(|s| markers(s, "source", "Reconnected") >= 1 && markers(s, "agent", "Reconnected") >= 1)
        .await;
    apps.until(|_| in_sync(&src_store, &agent_store)).await;
    assert_eq!(agent_store.get_mock("w2").unwrap().payload, "v2");
    assert_eq!(agent_store.get_mock("w5").unwrap().status, "applied-v1");
    assert!(source.metrics().reconnect_count() >= 1 && agent.metrics().reconnect_count() >= 1);
    apps.tasks.shutdown().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_with_keep_alive_pings_stays_usable() {
    let broker = serve(
        Broker::builder()
            .insecure(true)
            .http2_keep_alive(Duration::from_millis(200), Duration::from_secs(1)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let config = GrpcConfig::new(broker.addr.to_string()).keep_alive(KeepAliveConfig::enabled());
    let (src_store, agent_store) = (Store::source(), Store::agent());
    let opts = || options().resync_interval(None);
    let source = source_client(config.clone(), &src_store, opts());
    let agent = agent_client(config, "cluster1", &agent_store, opts());
    let mut apps = Apps::new();
    apps.source(&source, &src_store);
    apps.agent("agent", &agent, &agent_store);
    apps.connected(&["source", "agent"]).await;

    // Idle for a while (this is what is being tested), with the broker pinging every 200 ms.
    let idle = tokio::time::timeout(Duration::from_secs(3), apps.notes.recv()).await;
    assert!(idle.is_err(), "nothing happens while idle: {idle:?}");

    let w = work("w1", 1, "v1");
    src_store.put(w.clone());
    source.publish(&spec_type(action::CREATE_REQUEST), &w).await.unwrap();
    apps.until(|_| in_sync(&src_store, &agent_store)).await;
    assert_eq!(source.metrics().reconnect_count(), 0);
    assert_eq!(agent.metrics().reconnect_count(), 0);
    let seen = &apps.seen;
    assert!(!seen.iter().any(|n| matches!(n, Note::Error(..))), "{seen:?}");
    apps.tasks.shutdown().await;
    broker.stop().await;
}

/// A TCP proxy that can stop forwarding without closing anything (a half-dead path).
struct Proxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    _tasks: JoinSet<()>,
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !*p).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (paused, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut pipes = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                pipes.spawn(forward(cr, sw, rx.clone()));
                pipes.spawn(forward(sr, cw, rx.clone()));
            }
        });
        Self {
            addr,
            paused,
            _tasks: tasks,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_heartbeats_ends_the_subscription_and_the_client_reconnects() {
    let broker = serve(
        Broker::builder()
            .insecure(true)
            .heartbeat_interval(Some(Duration::from_millis(100))),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let proxy = Proxy::start(broker.addr).await;
    let config = GrpcConfig::new(proxy.addr.to_string()).heartbeat_timeout(Some(Duration::from_secs(1)));
    let agent_store = Store::agent();
    let agent = agent_client(config, "cluster1", &agent_store, options().resync_interval(None));
    let mut apps = Apps::new();
    apps.agent("agent", &agent, &agent_store);
    apps.connected(&["agent"]).await;
    // heartbeats flow: no error for a while
    let quiet = tokio::time::timeout(Duration::from_millis(2500), apps.notes.recv()).await;
    assert!(quiet.is_err(), "{quiet:?}");

    proxy.paused.send_replace(true);
    apps.until(|s| {
        s.iter()
            .any(|n| matches!(n, Note::Error("agent", e) if e.contains("no event or heartbeat")))
    })
    .await;
    proxy.paused.send_replace(false);
    apps.until(|s| markers(s, "agent", "Reconnected") >= 1).await;
    assert!(agent.metrics().reconnect_count() >= 1);
    apps.tasks.shutdown().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_agent_is_disconnected_after_the_stall_timeout_and_recovers_by_resync() {
    const CAPACITY: usize = 64;
    const WORKS: usize = 2500;
    let broker = serve(
        Broker::builder()
            .insecure(true)
            .queue_capacity(CAPACITY)
            .stall_timeout(Duration::from_secs(2)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let config = GrpcConfig::new(broker.addr.to_string());
    let src_store = Store::source();
    let (fast_store, slow_store) = (Store::agent(), Store::agent());
    let opts = || options().resync_interval(None);
    let source = source_client(config.clone(), &src_store, opts());
    let fast = agent_client(config.clone(), "cluster1", &fast_store, opts());
    let slow = agent_client(config, "cluster2", &slow_store, opts());
    let mut apps = Apps::new();
    apps.source(&source, &src_store);
    apps.agent("fast", &fast, &fast_store);
    apps.connected(&["source", "fast"]).await;

    // The slow agent subscribes, then stops reading: its stream is not polled. The source
    // publishes one event at a time here, so it waits (backpressure) until the broker gives up
    // on the stuck agent.
    let mut slow_stream = slow.subscribe();
    match tokio::time::timeout(WAIT, slow_stream.next()).await.unwrap() {
        Some(Ok(ClientEvent::Connected)) => {}
        other => panic!("{other:?}"),
    }
    let payload = "x".repeat(1024);
    for i in 0..WORKS {
        for cluster in ["cluster1", "cluster2"] {
            let mut w = work(&format!("{cluster}-w{i}"), 1, &payload);
            w.namespace = cluster.into();
            src_store.put(w.clone());
            source.publish(&spec_type(action::CREATE_REQUEST), &w).await.unwrap();
        }
    }
    // cluster1 got everything meanwhile
    apps.until(|_| fast_store.items.lock().unwrap().len() == WORKS).await;
    let m = broker.handle.metrics();
    assert_eq!(m.slow_subscribers_disconnected(), 1);
    assert!(m.queue_depth() <= 2 * CAPACITY as i64, "bounded: {}", m.queue_depth());

    // The slow agent reads again: buffered specs, the disconnect, a resync that brings the rest.
    let slow_view = slow_store.clone();
    apps.tasks
        .spawn(run_app("slow", slow_stream, apps.tx.clone(), move |resource| {
            slow_store.put(resource);
            async {}
        }));
    apps.until(|s| markers(s, "slow", "Reconnected") >= 1).await;
    apps.until(|_| slow_view.items.lock().unwrap().len() == WORKS).await;
    let seen = &apps.seen;
    let why: Vec<&Note> = seen.iter().filter(|n| matches!(n, Note::Error(..))).collect();
    assert!(
        seen.iter()
            .any(|n| matches!(n, Note::Error("slow", e) if e.contains("subscriber stuck"))),
        "the broker told it why: {why:?}"
    );
    apps.tasks.shutdown().await;
    broker.stop().await;
}

#[test]
fn the_grpc_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<GrpcTransport>();
    send_sync::<GrpcConfig>();
    send_sync::<ocm_ce_client::transport::grpc::GrpcConnection>();
    send_sync::<Source>();
    send_sync::<Agent>();
}
