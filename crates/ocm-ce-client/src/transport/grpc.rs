//! The gRPC transport (Go `generic/options/grpc`): `CloudEventService` over tonic, with the
//! Go-compatible protobuf binding of `ocm-ce-proto`.
//!
//! * [`GrpcConfig`] reads Go's `GRPCConfig` file (`url`, `caFile`, `clientCertFile`,
//!   `clientKeyFile`, `tokenFile`, plus `keepAliveConfig` and `serverHealthinessTimeout`).
//! * [`GrpcTransport::connect`] dials eagerly, so an unreachable broker fails the connect: plain
//!   HTTP/2 without `caFile`; with it TLS **1.3 only** (roots = system store + `caFile`, ALPN
//!   `h2`, server name = the URL's host), mutual TLS with a client certificate, otherwise the
//!   token file's content as `authorization: Bearer <token>` on every call. Files are read
//!   again on every connect, so rotated certificates and tokens are used without a restart.
//! * [`Connection::subscribe`] opens one `Subscribe` stream (`source` = source id for sources,
//!   `cluster_name` for agents) and resolves once the broker's response headers arrived: the
//!   ocm-ce broker (and Go's v1 broker, which adds a `subscription-id` header) registers the
//!   subscriber before sending them, so the headers confirm the subscription. Heartbeat events
//!   (`io.open-cluster-management.cloudevents.heartbeat`) are consumed here; with a
//!   [`server_healthiness_timeout`](GrpcConfig::server_healthiness_timeout), silence longer than
//!   it ends the subscription. The subscription always ends **with an error** (stream error,
//!   server shutdown, normal end, silence), so the client reconnects, resubscribes and resyncs.
//! * [`Connection::publish`] is one unary `Publish` call; routing is the broker's job. Status
//!   codes map to [`TransportError`] kinds: `Unavailable`/`Cancelled`/`DeadlineExceeded`/
//!   `Aborted` → disconnected (retryable), `PermissionDenied`/`Unauthenticated` → rejected,
//!   `InvalidArgument`/`FailedPrecondition`/`Unimplemented` → encoding (not retryable),
//!   `ResourceExhausted`/`OutOfRange` → too large, anything else → a retryable publish failure.
//!
//! Differences from Go v0.15.0: disconnects are detected from the stream itself (Go polled the
//! connection state and missed broken streams); the token's trailing line break is dropped when
//! the raw content is not a valid header value (HTTP/2 forbids it, Go peers reject it too).

mod config;
mod connector;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use ocm_ce_proto::pb::{CloudEvent, CloudEventServiceClient, SubscriptionRequest};
use rustls_pki_types::ServerName;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status, Streaming};

pub use self::config::{
    DEFAULT_KEEP_ALIVE_TIME, DEFAULT_KEEP_ALIVE_TIMEOUT, GrpcConfig, KeepAliveConfig, MIN_KEEP_ALIVE_TIME,
};
use self::connector::Connector;
use crate::error::TransportError;
use crate::tls::{self, ClientCertFiles, ClientTlsOptions, TlsVersion};
use crate::transport::{Connection, PublishTarget, Role, Subscription, Transport};

pub use ocm_ce_proto::{HEARTBEAT_EVENT_TYPE, SUBSCRIPTION_ID_HEADER};

/// Default wait for the response headers of `Subscribe`; see
/// [`GrpcTransport::subscribe_ack_timeout`].
pub const DEFAULT_SUBSCRIBE_ACK_TIMEOUT: Duration = Duration::from_secs(5);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC transport for one [`Role`].
#[doc(alias = "GRPCOptions")]
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    config: GrpcConfig,
    role: Role,
    data_type: String,
    subscribe_ack_timeout: Duration,
}

impl GrpcTransport {
    /// A transport for `role` (validates `config`; nothing is dialed yet).
    pub fn new(config: GrpcConfig, role: Role) -> Result<Self, TransportError> {
        config.validate()?;
        config::host_port(&config.url)?;
        Ok(Self {
            config,
            role,
            data_type: String::new(),
            subscribe_ack_timeout: DEFAULT_SUBSCRIBE_ACK_TIMEOUT,
        })
    }

    /// A transport for `role` from a Go `GRPCConfig` file.
    pub fn from_file(path: impl AsRef<std::path::Path>, role: Role) -> Result<Self, TransportError> {
        Self::new(GrpcConfig::from_file(path)?, role)
    }

    /// Subscribes for one data type only (`SubscriptionRequest.data_type`, e.g.
    /// `io.open-cluster-management.works.v1alpha1.manifestbundles`). Default: empty, i.e. every
    /// data type (Go v0.15.0 behaviour); Go's v1 broker requires it.
    #[must_use]
    pub fn data_type(mut self, data_type: impl Into<String>) -> Self {
        self.data_type = data_type.into();
        self
    }

    /// How long `subscribe` waits for the response headers (the acknowledgement). A broker in
    /// the style of Go v0.15.0's test servers sends them only with the first event; after this
    /// time the subscription is handed out unconfirmed and keeps waiting. Default 5 s.
    #[must_use]
    pub fn subscribe_ack_timeout(mut self, timeout: Duration) -> Self {
        self.subscribe_ack_timeout = timeout;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &GrpcConfig {
        &self.config
    }

    /// The role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    fn subscription_request(&self) -> SubscriptionRequest {
        let (source, cluster_name) = match &self.role {
            Role::Source { source_id } => (source_id.clone(), String::new()),
            Role::Agent { cluster_name, .. } => (String::new(), cluster_name.clone()),
        };
        SubscriptionRequest {
            source,
            cluster_name,
            data_type: self.data_type.clone(),
        }
    }

    /// TLS settings and the authorization header, read from the files now.
    fn credentials(&self, host: &str) -> Result<Credentials, TransportError> {
        let Some(ca_file) = &self.config.tls.ca_file else {
            return Ok((None, None));
        };
        let mut options = ClientTlsOptions::default()
            .ca_file(ca_file)
            .versions(TlsVersion::Tls13, TlsVersion::Tls13);
        let client_cert = match (&self.config.tls.client_cert_file, &self.config.tls.client_key_file) {
            (Some(cert), Some(key)) => Some(ClientCertFiles::new(cert, key)),
            _ => None,
        };
        if let Some(files) = &client_cert {
            options = options.client_cert(files.clone());
        }
        let mut tls_config = tls::client_config(&options).map_err(|e| TransportError::config(chain(&e)))?;
        tls_config.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| TransportError::config(format!("invalid server name {host:?}: {e}")))?;
        let auth = match (&client_cert, &self.config.token_file) {
            (None, Some(token_file)) => Some(bearer(token_file)?),
            _ => None,
        };
        Ok((Some((Arc::new(tls_config), name)), auth))
    }
}

type Credentials = (
    Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    Option<MetadataValue<Ascii>>,
);

/// `Bearer <file content>`: verbatim when that is a valid header value, else without the
/// trailing line break.
fn bearer(path: &std::path::Path) -> Result<MetadataValue<Ascii>, TransportError> {
    let content = std::fs::read(path)
        .map_err(|e| TransportError::config(format!("failed to read token file {}, {e}", path.display())))?;
    let header = |token: &[u8]| {
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(token);
        MetadataValue::try_from(value)
    };
    header(&content)
        .or_else(|_| header(content.trim_ascii_end()))
        .map_err(|_| {
            TransportError::config(format!(
                "the token in {} cannot be sent as a header value",
                path.display()
            ))
        })
}

/// An error and its sources, joined with `: `.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let s_text = s.to_string();
        if !out.ends_with(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        next = s.source();
    }
    out
}

#[derive(Clone, Copy)]
enum Op {
    Publish,
    Subscribe,
}

/// Maps a gRPC status to a transport error kind (see the module docs).
fn status_error(op: Op, context: &str, status: &Status) -> TransportError {
    let message = format!("{context}: {:?}: {}", status.code(), status.message());
    match (status.code(), op) {
        (Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted, _) => {
            TransportError::disconnected(message)
        }
        (Code::PermissionDenied | Code::Unauthenticated, _) => TransportError::rejected(message),
        (Code::InvalidArgument | Code::FailedPrecondition | Code::Unimplemented, Op::Publish) => {
            TransportError::encoding(message)
        }
        (Code::InvalidArgument | Code::FailedPrecondition | Code::Unimplemented, Op::Subscribe) => {
            TransportError::config(message)
        }
        (Code::ResourceExhausted | Code::OutOfRange, Op::Publish) => TransportError::too_large(message),
        (_, Op::Publish) => TransportError::publish(message),
        (_, Op::Subscribe) => TransportError::subscribe(message),
    }
}

impl Transport for GrpcTransport {
    type Connection = GrpcConnection;

    /// A client of exactly one data type subscribes for it (sdk-go v1.x brokers serve one data
    /// type per subscription and refuse an empty one); one that decodes several keeps the empty
    /// data type, i.e. all of them, as v0.15 peers expect. A data type set with
    /// [`GrpcTransport::data_type`] stays.
    fn set_data_types(&mut self, data_types: &[ocm_ce_core::DataType]) {
        if let ([only], true) = (data_types, self.data_type.is_empty()) {
            self.data_type = only.to_string();
        }
    }

    async fn connect(&self) -> Result<GrpcConnection, TransportError> {
        let url = self.config.url.clone();
        let (host, port) = config::host_port(&url)?;
        let (tls, auth) = self.credentials(&host)?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        // Always `http://`: TLS is done by our connector, whatever tonic's features are.
        let mut endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| TransportError::config(format!("invalid grpc url {url:?}: {}", chain(&e))))?
            .connect_timeout(CONNECT_TIMEOUT);
        let keep_alive = &self.config.keep_alive_config;
        if keep_alive.enable {
            endpoint = endpoint
                .http2_keep_alive_interval(keep_alive.effective_time())
                .keep_alive_timeout(keep_alive.effective_timeout())
                .keep_alive_while_idle(keep_alive.permit_without_stream);
        }
        let channel = endpoint
            .connect_with_connector(Connector::new(host, port, tls))
            .await
            .map_err(|e| TransportError::connect(format!("failed to connect to grpc server {url}, {}", chain(&e))))?;
        tracing::debug!(%url, role = %self.role, "grpc is connected");
        Ok(GrpcConnection {
            client: CloudEventServiceClient::new(channel),
            auth,
            subscription: self.subscription_request(),
            url,
            heartbeat_timeout: self.config.server_healthiness_timeout,
            ack_timeout: self.subscribe_ack_timeout,
            closed: CancellationToken::new(),
        })
    }
}

/// A live gRPC connection (one HTTP/2 connection, shared by its calls).
pub struct GrpcConnection {
    client: CloudEventServiceClient<Channel>,
    auth: Option<MetadataValue<Ascii>>,
    subscription: SubscriptionRequest,
    url: String,
    heartbeat_timeout: Option<Duration>,
    ack_timeout: Duration,
    /// Cancelled by `close` and when the subscription ends: later calls fail fast.
    closed: CancellationToken,
}

impl fmt::Debug for GrpcConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcConnection")
            .field("url", &self.url)
            .field("subscription", &self.subscription)
            .field("closed", &self.closed.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl GrpcConnection {
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(auth) = &self.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        request
    }

    fn closed_error(&self) -> TransportError {
        TransportError::disconnected(format!("the grpc connection to {} is closed", self.url))
    }

    /// True once closed or once its subscription ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

type SubscribeCall = Pin<Box<dyn Future<Output = Result<Response<Streaming<CloudEvent>>, Status>> + Send>>;

impl Connection for GrpcConnection {
    async fn publish(&self, target: &PublishTarget, event: &Event) -> Result<(), TransportError> {
        if self.closed.is_cancelled() {
            return Err(self.closed_error());
        }
        let message = ocm_ce_proto::encode_publish_request(event)
            .map_err(|e| TransportError::encoding(format!("failed to encode event {}: {e}", event.id())))?;
        tracing::trace!(id = event.id(), ty = event.ty(), ?target, "publishing over grpc");
        let mut client = self.client.clone();
        let request = self.request(message);
        tokio::select! {
            biased;
            () = self.closed.cancelled() => Err(self.closed_error()),
            result = client.publish(request) => result
                .map(|_| ())
                .map_err(|s| status_error(Op::Publish, &format!("failed to send event {}", event.id()), &s)),
        }
    }

    async fn subscribe(&self) -> Result<Subscription, TransportError> {
        if self.closed.is_cancelled() {
            return Err(self.closed_error());
        }
        let mut client = self.client.clone();
        let request = self.request(self.subscription.clone());
        let mut call: SubscribeCall = Box::pin(async move { client.subscribe(request).await });
        let first = tokio::select! {
            biased;
            () = self.closed.cancelled() => return Err(self.closed_error()),
            first = tokio::time::timeout(self.ack_timeout, &mut call) => first,
        };
        let state = match first {
            Ok(Ok(response)) => {
                let id = response
                    .metadata()
                    .get(SUBSCRIPTION_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info!(url = %self.url, subscription = ?self.subscription, subscription_id = id, "subscribed to grpc server");
                ReadState::Open(Box::new(response.into_inner()))
            }
            Ok(Err(status)) => return Err(status_error(Op::Subscribe, "failed to subscribe", &status)),
            Err(_) => {
                tracing::warn!(
                    url = %self.url,
                    timeout = ?self.ack_timeout,
                    "no subscription acknowledgement yet; assuming a broker that answers with the first event"
                );
                ReadState::Pending(call)
            }
        };
        let reader = Reader {
            state,
            closed: self.closed.clone(),
            heartbeat_timeout: self.heartbeat_timeout,
            url: self.url.clone(),
        };
        Ok(Subscription::from_stream(futures::stream::unfold(
            reader,
            |mut reader| async move { reader.next().await.map(|item| (item, reader)) },
        )))
    }

    async fn close(&self) {
        self.closed.cancel();
    }
}

impl Drop for GrpcConnection {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

enum ReadState {
    /// The call has not been acknowledged yet.
    Pending(SubscribeCall),
    Open(Box<Streaming<CloudEvent>>),
    Done,
}

/// Reads one subscription; ends with an error whatever the reason.
struct Reader {
    state: ReadState,
    closed: CancellationToken,
    heartbeat_timeout: Option<Duration>,
    url: String,
}

/// `fut` bounded by `limit` (`None` = unbounded); `None` when the time ran out.
async fn within<F: Future>(limit: Option<Duration>, fut: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

impl Reader {
    fn end(&mut self, error: TransportError) -> Option<Result<Event, TransportError>> {
        self.state = ReadState::Done;
        self.closed.cancel();
        Some(Err(error))
    }

    async fn next(&mut self) -> Option<Result<Event, TransportError>> {
        loop {
            let closed = self.closed.clone();
            match &mut self.state {
                ReadState::Done => return None,
                ReadState::Pending(call) => {
                    let limit = self.heartbeat_timeout;
                    let result = tokio::select! {
                        biased;
                        () = closed.cancelled() => {
                            return self.end(TransportError::disconnected("the grpc connection was closed"));
                        }
                        result = within(limit, call) => result,
                    };
                    match result {
                        None => {
                            return self.end(TransportError::disconnected(format!(
                                "no subscription acknowledgement from {} within {:?}",
                                self.url,
                                limit.unwrap_or_default()
                            )));
                        }
                        Some(Ok(response)) => {
                            tracing::info!(url = %self.url, "subscription acknowledged");
                            self.state = ReadState::Open(Box::new(response.into_inner()));
                        }
                        Some(Err(status)) => {
                            return self.end(status_error(Op::Subscribe, "failed to subscribe", &status));
                        }
                    }
                }
                ReadState::Open(stream) => {
                    let limit = self.heartbeat_timeout;
                    let received = tokio::select! {
                        biased;
                        () = closed.cancelled() => {
                            return self.end(TransportError::disconnected("the grpc connection was closed"));
                        }
                        received = within(limit, stream.message()) => received,
                    };
                    match received {
                        None => {
                            let limit = limit.unwrap_or_default();
                            return self.end(TransportError::disconnected(format!(
                                "no event or heartbeat received from {} within {limit:?}",
                                self.url
                            )));
                        }
                        Some(Ok(Some(message))) => {
                            if message.r#type == HEARTBEAT_EVENT_TYPE {
                                tracing::trace!(url = %self.url, "heartbeat");
                                continue;
                            }
                            match ocm_ce_proto::decode(message) {
                                Ok(event) => return Some(Ok(event)),
                                Err(e) => tracing::warn!(url = %self.url, error = %e, "dropping an invalid event"),
                            }
                        }
                        Some(Ok(None)) => {
                            return self.end(TransportError::disconnected(format!(
                                "the subscribe stream from {} ended",
                                self.url
                            )));
                        }
                        Some(Err(status)) => {
                            let context = format!("the subscribe stream from {} failed", self.url);
                            return self.end(TransportError::disconnected(format!(
                                "{context}: {:?}: {}",
                                status.code(),
                                status.message()
                            )));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_transport_error_kinds() {
        let publish = |code| status_error(Op::Publish, "x", &Status::new(code, "m"));
        assert!(publish(Code::Unavailable).is_disconnected());
        assert!(publish(Code::Unavailable).is_retryable());
        assert!(publish(Code::Cancelled).is_disconnected());
        assert!(publish(Code::PermissionDenied).is_rejected());
        assert!(publish(Code::Unauthenticated).is_rejected());
        assert!(!publish(Code::InvalidArgument).is_retryable());
        assert!(publish(Code::ResourceExhausted).is_too_large());
        assert!(publish(Code::Internal).is_retryable());
        let subscribe = status_error(Op::Subscribe, "x", &Status::invalid_argument("m"));
        assert!(subscribe.is_config());
        assert_eq!(publish(Code::PermissionDenied).to_string(), "x: PermissionDenied: m");
    }

    #[test]
    fn the_bearer_header_keeps_the_token_verbatim_and_drops_only_an_invalid_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "abc def").unwrap();
        assert_eq!(bearer(&plain).unwrap(), "Bearer abc def");
        let newline = dir.path().join("newline");
        std::fs::write(&newline, "abc\n").unwrap();
        assert_eq!(bearer(&newline).unwrap(), "Bearer abc");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "a\nb").unwrap();
        assert!(bearer(&bad).unwrap_err().is_config());
    }

    #[test]
    fn sources_subscribe_by_source_and_agents_by_cluster() {
        let config = GrpcConfig::new("127.0.0.1:1");
        let source = GrpcTransport::new(config.clone(), Role::source("s1")).unwrap();
        let request = source.subscription_request();
        assert_eq!((request.source.as_str(), request.cluster_name.as_str()), ("s1", ""));
        let agent = GrpcTransport::new(config, Role::agent("c1", "a"))
            .unwrap()
            .data_type("io.x.v1.things");
        let request = agent.subscription_request();
        assert_eq!(
            (
                request.source.as_str(),
                request.cluster_name.as_str(),
                request.data_type.as_str()
            ),
            ("", "c1", "io.x.v1.things")
        );
    }

    #[test]
    fn a_client_of_one_data_type_subscribes_for_it_and_of_several_for_all() {
        let bundles = ocm_ce_core::DataType::new("io.open-cluster-management.works", "v1alpha1", "manifestbundles");
        let manifests = ocm_ce_core::DataType::new("io.open-cluster-management.works", "v1alpha1", "manifests");
        let agent = || GrpcTransport::new(GrpcConfig::new("127.0.0.1:1"), Role::agent("c1", "a")).unwrap();
        let mut one = agent();
        one.set_data_types(std::slice::from_ref(&bundles));
        assert_eq!(
            one.subscription_request().data_type,
            "io.open-cluster-management.works.v1alpha1.manifestbundles"
        );
        let mut several = agent();
        several.set_data_types(&[bundles.clone(), manifests]);
        assert_eq!(several.subscription_request().data_type, "");
        let mut chosen = agent().data_type("io.x.v1.things");
        chosen.set_data_types(&[bundles]);
        assert_eq!(chosen.subscription_request().data_type, "io.x.v1.things");
    }
}
