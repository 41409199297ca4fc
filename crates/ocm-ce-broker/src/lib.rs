//! The gRPC broker of **ocm-ce**: a `CloudEventService` server (`io.cloudevents.v1`, the proto
//! of the Go SDK) that routes CloudEvents between sources and agents.
//!
//! Layer: `ocm-ce-core` (protocol) and `ocm-ce-proto` (wire) → **`ocm-ce-broker`**; the gRPC
//! transport of `ocm-ce-client` and Go's gRPC options are its clients, and the CLI runs it.
//!
//! * **Routing.** Spec events go to the agents subscribed for the event's `clustername`; status
//!   events to the sources subscribed as the event's `originalsource`; a source's status
//!   `resync_request` to the agents of `clustername` (all agents when empty); an agent's spec
//!   `resync_request` to the source named by `originalsource` (all sources when empty). Every
//!   subscriber with a matching key receives; a non-empty `SubscriptionRequest.data_type`
//!   restricts a subscriber to that data type. `Publish` answers `OK` once the event is
//!   accepted, even when no subscriber matched (counted as undelivered: the sender cannot act on
//!   it and Go's brokers answer the same; the resync protocol recovers).
//! * **Flow control.** Each subscriber has a bounded queue; fan-out never waits and never
//!   holds a lock while queueing. A full queue disconnects that subscriber (counted); it
//!   resubscribes and resyncs.
//! * **Acknowledgement and liveness.** A subscriber is registered before the response headers
//!   are sent, with a `subscription-id` header (what Go v1.2+ clients wait for); optional
//!   heartbeat events `io.open-cluster-management.cloudevents.heartbeat` (off by default).
//! * **Security.** TLS 1.3 only; authentication by client certificate (identity = subject CN)
//!   and/or bearer tokens from a tokens file; an authorization policy file maps identities to
//!   the source ids and clusters they may act as/for. Plaintext and no authentication only in
//!   explicit insecure mode. Formats: [`Tokens`], [`Policy`] and `docs/broker.md`.
//! * **Bad input** (invalid protobuf, invalid CloudEvent, missing routing extension, oversized
//!   message) is refused with `InvalidArgument` or `ResourceExhausted` and counted; other calls
//!   and streams are unaffected.
//! * **Metrics** ([`BrokerMetrics`], Prometheus) and an optional listener for `/metrics`,
//!   `/healthz` and `/readyz` ([`endpoints`]).
//!
//! ```no_run
//! use ocm_ce_broker::Broker;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::builder()
//!     .tls("certs/server.pem", "certs/server-key.pem", Some("certs/clients-ca.pem"))
//!     .tokens_file("tokens.yaml")
//!     .authorization_file("policy.yaml")
//!     .heartbeat_interval(Some(std::time::Duration::from_secs(10)))
//!     .metrics_addr("127.0.0.1:9090".parse()?)
//!     .build()?;
//! let handle = broker.handle();
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8090").await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = broker.serve_with_shutdown(listener, async {
//!     let _ = stopped.await;
//! });
//! # drop(stop);
//! server.await?;
//! println!("routed {} events", handle.metrics().routed());
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! None.
//!
//! # See also
//!
//! * `ocm_ce_client::transport::grpc`, the client side;
//! * `docs/broker.md` in the repository for the file formats and the metrics.

mod auth;
pub mod endpoints;
mod error;
mod io;
mod metrics;
mod router;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ocm_ce_proto::pb::CloudEventServiceServer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use auth::{Identity, Policy, Tokens};
pub use error::{Error, Result};
pub use metrics::{BrokerMetrics, DropReason, Operation, SubscriberRole};

use auth::Access;
use router::{Router, StreamSettings};
use service::{BrokerService, Core};

pub use ocm_ce_proto::{HEARTBEAT_EVENT_TYPE, SUBSCRIPTION_ID_HEADER};
/// Default queue capacity per subscriber, in events.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;
/// Default queue capacity per subscriber, in bytes of encoded events (64 MiB).
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Default byte budget of all subscriber queues together (512 MiB).
pub const DEFAULT_TOTAL_QUEUE_BYTES: usize = 512 * 1024 * 1024;
/// Default stall timeout: a subscriber whose queue stays full while it takes nothing this long
/// is disconnected.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a shutting-down broker waits for its connections to finish before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Default limit of concurrent calls (streams) per client connection.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 512;
/// Default maximum size of a received message (gRPC's default, 4 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The server certificate and, for mutual TLS, the CA that signs client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsConfig {
    /// PEM certificate chain of the broker.
    pub cert_file: PathBuf,
    /// PEM private key of the broker.
    pub key_file: PathBuf,
    /// PEM CA certificates that sign client certificates; enables client-certificate
    /// authentication.
    pub client_ca_file: Option<PathBuf>,
}

/// Configures a [`Broker`]; see [`Broker::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct BrokerBuilder {
    queue_capacity: usize,
    queue_bytes: usize,
    total_queue_bytes: usize,
    stall_timeout: Duration,
    max_concurrent_streams: u32,
    max_message_size: usize,
    heartbeat_interval: Option<Duration>,
    keep_alive: Option<(Duration, Duration)>,
    tls: Option<ServerTlsConfig>,
    tokens_file: Option<PathBuf>,
    authorization_file: Option<PathBuf>,
    insecure: bool,
    metrics_addr: Option<SocketAddr>,
    metrics: BrokerMetrics,
}

impl Default for BrokerBuilder {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            total_queue_bytes: DEFAULT_TOTAL_QUEUE_BYTES,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            heartbeat_interval: None,
            keep_alive: None,
            tls: None,
            tokens_file: None,
            authorization_file: None,
            insecure: false,
            metrics_addr: None,
            metrics: BrokerMetrics::new(),
        }
    }
}

impl BrokerBuilder {
    ocm_ce_core::builder_setters! {
        /// Events queued per subscriber; a publisher whose event does not fit waits. Default
        /// [`DEFAULT_QUEUE_CAPACITY`].
        fn queue_capacity(capacity: usize) => queue_capacity;
        /// Bytes (encoded events) queued per subscriber; a publisher whose event does not fit
        /// waits. An event larger than this is queued alone. Default [`DEFAULT_QUEUE_BYTES`].
        fn queue_bytes(bytes: usize) => queue_bytes;
        /// Bytes queued over all subscribers together. Default [`DEFAULT_TOTAL_QUEUE_BYTES`].
        fn total_queue_bytes(bytes: usize) => total_queue_bytes;
        /// How long a subscriber's queue may stay full while it takes nothing before it is
        /// disconnected as stuck (it resubscribes and resyncs). A slow subscriber that keeps
        /// taking is never disconnected. Default [`DEFAULT_STALL_TIMEOUT`].
        fn stall_timeout(timeout: Duration) => stall_timeout;
        /// Concurrent calls per client connection (a waiting `Publish` is one). Default
        /// [`DEFAULT_MAX_CONCURRENT_STREAMS`].
        fn max_concurrent_streams(streams: u32) => max_concurrent_streams;
        /// Largest accepted message in bytes; larger ones get `ResourceExhausted`. Default 4 MiB.
        fn max_message_size(bytes: usize) => max_message_size;
        /// Sends a heartbeat event on every subscription at this interval (`None`, the default:
        /// no heartbeats). Go's broker uses 10 s.
        fn heartbeat_interval(interval: Option<Duration>) => heartbeat_interval;
        /// Sets the TLS configuration.
        fn tls_config(config: Option<ServerTlsConfig>) => tls;
        /// Allows plaintext and unauthenticated clients. For loopback quick starts and tests only.
        fn insecure(insecure: bool) => insecure;
        /// Records into these metrics (clones share values) instead of fresh ones.
        fn metrics(metrics: BrokerMetrics) => metrics;
    }

    /// Server-side HTTP/2 keep-alive pings: interval and acknowledgement timeout (off by
    /// default).
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keep_alive = Some((interval, timeout));
        self
    }

    /// Serves TLS 1.3 with this certificate; with `client_ca_file`, verified client
    /// certificates authenticate their subject CN.
    pub fn tls(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
        client_ca_file: Option<impl Into<PathBuf>>,
    ) -> Self {
        self.tls = Some(ServerTlsConfig {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: client_ca_file.map(Into::into),
        });
        self
    }

    /// Accepts the bearer tokens of this file ([`Tokens`] format).
    pub fn tokens_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tokens_file = Some(path.into());
        self
    }

    /// Authorizes calls by this policy file ([`Policy`] format). Without one, every
    /// authenticated identity may do everything.
    pub fn authorization_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.authorization_file = Some(path.into());
        self
    }

    /// Serves `GET /metrics`, `GET /healthz` and `GET /readyz` on this address (bound by
    /// [`build`](Self::build); see [`endpoints`]).
    pub fn metrics_addr(mut self, addr: SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Validates the settings, loads TLS material, tokens and policy, and binds the metrics
    /// listener.
    pub fn build(self) -> Result<Broker> {
        if self.queue_capacity == 0 {
            return Err(Error::config("the queue capacity must be at least 1"));
        }
        if self.queue_bytes < 1024 || self.total_queue_bytes < self.queue_bytes {
            return Err(Error::config(
                "the queue byte budget must be at least 1 KiB, and the total at least one queue's",
            ));
        }
        if self.stall_timeout.is_zero() {
            return Err(Error::config("the stall timeout must not be zero"));
        }
        if self.max_message_size < 1024 {
            return Err(Error::config("the maximum message size must be at least 1 KiB"));
        }
        if self.heartbeat_interval.is_some_and(|d| d.is_zero()) {
            return Err(Error::config("the heartbeat interval must not be zero"));
        }
        if self.tls.is_none() && self.tokens_file.is_some() {
            return Err(Error::config(
                "bearer tokens need TLS (they must not travel in plaintext): set a server certificate and key",
            ));
        }
        if self.tls.is_none() && !self.insecure {
            return Err(Error::config(
                "TLS is not configured: set a server certificate, or insecure mode for plaintext",
            ));
        }
        let mtls = self.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
        let authenticates = mtls || self.tokens_file.is_some();
        if !authenticates && !self.insecure {
            return Err(Error::config(
                "no client authentication: set a client CA or a tokens file, or insecure mode",
            ));
        }
        if self.authorization_file.is_some() && !authenticates {
            return Err(Error::config(
                "an authorization policy needs authentication (a client CA or a tokens file)",
            ));
        }
        let access = Access::load(mtls, self.tokens_file.as_ref(), self.authorization_file.as_ref())?;
        let acceptor = self.tls.as_ref().map(io::acceptor).transpose()?;
        let metrics_listener = self
            .metrics_addr
            .map(|addr| {
                let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Io {
                    context: format!("failed to bind the metrics listener on {addr}"),
                    source,
                })?;
                listener.set_nonblocking(true).map_err(|source| Error::Io {
                    context: "failed to configure the metrics listener".to_owned(),
                    source,
                })?;
                Ok::<_, Error>(listener)
            })
            .transpose()?;
        let shutdown = CancellationToken::new();
        let router = Arc::new(Router::new(
            self.metrics.clone(),
            StreamSettings {
                queue_capacity: self.queue_capacity,
                queue_bytes: self.queue_bytes,
                total_bytes: self.total_queue_bytes,
                stall_timeout: self.stall_timeout,
                heartbeat_interval: self.heartbeat_interval,
            },
            shutdown.clone(),
        ));
        Ok(Broker {
            shared: Arc::new(Shared {
                router,
                access: Arc::new(RwLock::new(Arc::new(access))),
                tls: Arc::new(RwLock::new(acceptor)),
                metrics: self.metrics.clone(),
                shutdown,
                config: self,
            }),
            metrics_listener,
        })
    }
}

struct Shared {
    router: Arc<Router>,
    access: Arc<RwLock<Arc<Access>>>,
    tls: Arc<RwLock<Option<TlsAcceptor>>>,
    metrics: BrokerMetrics,
    shutdown: CancellationToken,
    config: BrokerBuilder,
}

/// A configured broker, ready to serve. See the [crate docs](crate) for an example.
pub struct Broker {
    shared: Arc<Shared>,
    metrics_listener: Option<std::net::TcpListener>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A builder with the defaults: queue 1000, 4 MiB messages, no heartbeats, and neither TLS
    /// nor authentication (which [`build`](BrokerBuilder::build) refuses unless
    /// [`insecure`](BrokerBuilder::insecure)).
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// A handle to observe and stop the broker.
    pub fn handle(&self) -> BrokerHandle {
        BrokerHandle {
            shared: self.shared.clone(),
        }
    }

    /// The bound address of the metrics listener, if any.
    pub fn metrics_local_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves on `listener` until [`BrokerHandle::shutdown`] is called.
    pub async fn serve(self, listener: TcpListener) -> Result<()> {
        let token = self.shared.shutdown.clone();
        self.serve_with_shutdown(listener, async move { token.cancelled().await })
            .await
    }

    /// Serves on `listener` until `shutdown` completes (or [`BrokerHandle::shutdown`] is
    /// called). Then it stops accepting, ends every subscription with `Unavailable` (clients
    /// reconnect elsewhere or later and resync), lets running calls finish and returns once
    /// every connection is closed. Nothing it started keeps running.
    pub async fn serve_with_shutdown(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<()> {
        let shared = self.shared;
        let token = shared.shutdown.clone();
        let metrics_server = match self.metrics_listener {
            Some(listener) => {
                let listener = TcpListener::from_std(listener).map_err(|source| Error::Io {
                    context: "failed to register the metrics listener".to_owned(),
                    source,
                })?;
                let metrics = shared.metrics.clone();
                let serving = token.clone();
                // Ready while it serves: once shutdown starts, a load balancer stops sending.
                let endpoints = endpoints::Endpoints::new()
                    .metrics(move || metrics.encode())
                    .health(move || !serving.is_cancelled());
                Some(endpoints::serve(listener, endpoints, token.clone()))
            }
            None => None,
        };
        let incoming = io::Incoming::new(listener, shared.tls.clone(), shared.metrics.clone());
        let core = Core {
            router: shared.router.clone(),
            access: shared.access.clone(),
            metrics: shared.metrics.clone(),
        };
        let service = BrokerService {
            inner: CloudEventServiceServer::new(core)
                .max_decoding_message_size(shared.config.max_message_size)
                .max_encoding_message_size(shared.config.max_message_size),
            metrics: shared.metrics.clone(),
        };
        // Each waiting Publish holds its event: bounding the calls per connection bounds what a
        // connection can make the broker hold besides its queues.
        let mut server =
            tonic::transport::Server::builder().max_concurrent_streams(Some(shared.config.max_concurrent_streams));
        if let Some((interval, timeout)) = shared.config.keep_alive {
            server = server
                .http2_keepalive_interval(Some(interval))
                .http2_keepalive_timeout(Some(timeout));
        }
        let signal_token = token.clone();
        let signal = async move {
            tokio::select! {
                () = shutdown => {}
                () = signal_token.cancelled() => {}
            }
            tracing::info!("the broker is shutting down");
            signal_token.cancel();
        };
        let grpc = server.serve_with_incoming_shutdown(service, incoming, signal);
        // A client that reads nothing would keep its stream (and the graceful shutdown) open
        // forever: after the grace period its connection is dropped.
        let grace = token.clone();
        let grpc = async move {
            tokio::pin!(grpc);
            tokio::select! {
                result = &mut grpc => result,
                () = async {
                    grace.cancelled().await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } => {
                    tracing::warn!(grace = ?SHUTDOWN_GRACE, "closing the connections that did not finish in time");
                    Ok(())
                }
            }
        };
        let result = match metrics_server {
            Some(metrics_server) => tokio::join!(grpc, metrics_server).0,
            None => grpc.await,
        };
        token.cancel();
        result.map_err(Error::Serve)
    }
}

/// Observes and controls a [`Broker`] (cheap to clone).
#[derive(Clone)]
pub struct BrokerHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHandle")
            .field("subscribers", &self.subscriber_count())
            .finish_non_exhaustive()
    }
}

impl BrokerHandle {
    /// Starts the graceful shutdown of the serving broker.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// True once shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// The broker's metrics.
    pub fn metrics(&self) -> &BrokerMetrics {
        &self.shared.metrics
    }

    /// Live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.shared.router.subscriber_count()
    }

    /// Reads the tokens file, the policy file and the TLS files again and uses them for new
    /// calls and connections. On error nothing changes.
    pub fn reload(&self) -> Result<()> {
        let config = &self.shared.config;
        let mtls = config.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
        let access = Access::load(mtls, config.tokens_file.as_ref(), config.authorization_file.as_ref())?;
        let acceptor = config.tls.as_ref().map(io::acceptor).transpose()?;
        *self.shared.access.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(access);
        *self.shared.tls.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
        Ok(())
    }
}
