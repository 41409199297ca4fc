//! Shared helpers of the broker tests: a test PKI (rcgen), a broker on `127.0.0.1:0`, gRPC
//! transports for sources and agents, event builders and raw gRPC calls.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Buf, BufMut};
use cloudevents::{AttributesReader, AttributesWriter, Event};
use futures::StreamExt;
use ocm_ce_broker::{Broker, BrokerBuilder, BrokerHandle};
use ocm_ce_client::transport::grpc::{GrpcConfig, GrpcConnection, GrpcTransport};
use ocm_ce_client::{Connection, Role, Subscription, Transport, TransportError};
use ocm_ce_core::{EventBuilder, EventType};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const WORKS: &str = "io.open-cluster-management.works.v1alpha1.manifestbundles";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn ty(rest: &str) -> EventType {
    format!("{WORKS}.{rest}").parse().unwrap()
}

/// A spec event of `source` for `cluster`.
pub fn spec(source: &str, cluster: &str, id: &str) -> Event {
    EventBuilder::new(source, ty("spec.create_request"))
        .cluster_name(cluster)
        .resource_id(id)
        .resource_version(1)
        .build()
        .unwrap()
}

/// A status event of the agent of `cluster` for `source`.
pub fn status(cluster: &str, source: &str, id: &str) -> Event {
    EventBuilder::new(format!("{cluster}-agent"), ty("status.update_request"))
        .cluster_name(cluster)
        .original_source(source)
        .resource_id(id)
        .resource_version(1)
        .sequence_id("1")
        .build()
        .unwrap()
}

/// A status resync request of `source` for `cluster` (`""` = all).
pub fn status_resync(source: &str, cluster: &str) -> Event {
    let mut e = EventBuilder::new(source, ty("status.resync_request"))
        .cluster_name(cluster)
        .build()
        .unwrap();
    e.set_data("application/json", br#"{"statusHashes":[]}"#.to_vec());
    e
}

/// A spec resync request of the agent of `cluster` for `source` (`""` = all).
pub fn spec_resync(cluster: &str, source: &str) -> Event {
    let mut e = EventBuilder::new(format!("{cluster}-agent"), ty("spec.resync_request"))
        .cluster_name(cluster)
        .original_source(source)
        .build()
        .unwrap();
    e.set_data("application/json", br#"{"resourceVersions":[]}"#.to_vec());
    e
}

pub fn source_role(id: &str) -> Role {
    Role::source(id)
}

pub fn agent_role(cluster: &str) -> Role {
    Role::agent(cluster, format!("{cluster}-agent"))
}

/// A broker served on `127.0.0.1:0` in a test task.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: BrokerHandle,
    pub task: JoinHandle<ocm_ce_broker::Result<()>>,
}

impl Running {
    pub async fn start(builder: BrokerBuilder) -> Self {
        Self::start_on(builder, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(builder: BrokerBuilder, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let broker: Broker = builder.build().unwrap();
        let handle = broker.handle();
        let task = tokio::spawn(broker.serve(listener));
        Self { addr, handle, task }
    }

    /// Shuts the broker down and waits until it stopped.
    pub async fn stop(self) {
        self.handle.shutdown();
        tokio::time::timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }

    pub fn url(&self) -> String {
        self.addr.to_string()
    }

    pub fn plain(&self) -> GrpcConfig {
        GrpcConfig::new(self.url())
    }

    /// A plaintext connection for `role`.
    pub async fn connect(&self, role: Role) -> GrpcConnection {
        GrpcTransport::new(self.plain(), role).unwrap().connect().await.unwrap()
    }

    /// A raw tonic channel (plaintext).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

/// Subscribes on a new plaintext connection; keeps the connection alive with the subscription.
pub async fn subscribe(broker: &Running, role: Role) -> (GrpcConnection, Subscription) {
    let conn = broker.connect(role).await;
    let sub = conn.subscribe().await.unwrap();
    (conn, sub)
}

/// The next event of `sub` (panics after [`WAIT`]).
pub async fn next_event(sub: &mut Subscription) -> Event {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(e))) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// The ids of the events received up to (excluding) the event with id `marker`.
pub async fn ids_until(sub: &mut Subscription, marker: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..10_000 {
        let e = next_event(sub).await;
        if e.id() == marker {
            return ids;
        }
        ids.push(e.id().to_owned());
    }
    panic!("marker {marker} never arrived");
}

/// Publishes `event` with an explicit id.
pub async fn publish_as(conn: &GrpcConnection, mut event: Event, id: &str) -> Result<(), TransportError> {
    event.set_id(id);
    conn.publish(&ocm_ce_client::PublishTarget::AllClusters, &event).await
}

/// Publishes a spec of source1 for cluster1 with id `id` as `from`: it is the next event of `sub`.
pub async fn spec_reaches(from: &GrpcConnection, sub: &mut Subscription, id: &str) {
    publish_as(from, spec("source1", "cluster1", "w"), id).await.unwrap();
    assert_eq!(next_event(sub).await.id(), id);
}

// ---- PKI ------------------------------------------------------------------------------------------

/// A CA, a server certificate for 127.0.0.1/localhost, and client certificates on demand, all
/// written as PEM files into a temporary directory.
pub struct Pki {
    pub dir: TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(DnType::CommonName, "ocm-ce test CA");
        let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).unwrap();
        let pki = Self {
            server_cert: dir.path().join("server.pem"),
            server_key: dir.path().join("server-key.pem"),
            dir,
            issuer,
            ca_file,
        };
        let (cert, key) = pki.issue(&["127.0.0.1", "localhost"], "broker");
        std::fs::write(&pki.server_cert, cert).unwrap();
        std::fs::write(&pki.server_key, key).unwrap();
        pki
    }

    fn issue(&self, sans: &[&str], cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a client certificate with subject CN `cn` to `<file>.pem` / `<file>-key.pem`.
    pub fn client(&self, file: &str, cn: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue(&[], cn);
        let cert_file = self.dir.path().join(format!("{file}.pem"));
        let key_file = self.dir.path().join(format!("{file}-key.pem"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        (cert_file, key_file)
    }

    pub fn write(&self, file: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, content).unwrap();
        path
    }
}

// ---- raw gRPC calls ------------------------------------------------------------------------------

/// Sends raw bytes as the request message; ignores the response message.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug)]
pub struct RawEncoder;

#[derive(Debug)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let out = src.chunk().to_vec();
        src.advance(out.len());
        Ok(Some(out))
    }
}

/// A unary Publish with `body` as the raw request message.
pub async fn raw_publish(channel: Channel, body: Vec<u8>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/io.cloudevents.v1.CloudEventService/Publish");
    grpc.unary(Request::new(body), path, RawCodec).await.map(|_| ())
}
