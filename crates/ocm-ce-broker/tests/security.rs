//! TLS 1.3, client certificates, bearer tokens and the authorization policy, over real sockets
//! with the gRPC transport of `ocm-ce-client` as the client.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use ocm_ce_broker::{Broker, BrokerBuilder, DropReason, Operation};
use ocm_ce_client::tls::{ClientTlsOptions, TlsVersion};
use ocm_ce_client::transport::grpc::{GrpcConfig, GrpcConnection, GrpcTransport};
use ocm_ce_client::{Connection, PublishTarget, Role, TlsFiles, Transport, TransportError};
use rustls_pki_types::ServerName;

const POLICY: &str = "\
identities:
  source1-controller:
    sources: [source1]
  cluster1-agent:
    clusters: [cluster1]
  cluster2-agent:
    clusters: [cluster2]
";

fn tokens() -> String {
    "\
tokens:
  - token: agent1-token
    identity: cluster1-agent
  - token: expired-token
    identity: cluster1-agent
    expiresAt: \"2020-01-01T00:00:00Z\"
"
    .to_owned()
}

struct Setup {
    pki: Pki,
    tokens_file: PathBuf,
    broker: Running,
}

fn secure_builder(pki: &Pki, tokens_file: &PathBuf, policy_file: &PathBuf) -> BrokerBuilder {
    Broker::builder()
        .tls(&pki.server_cert, &pki.server_key, Some(&pki.ca_file))
        .tokens_file(tokens_file)
        .authorization_file(policy_file)
}

async fn setup() -> Setup {
    let pki = Pki::new();
    let tokens_file = pki.write("tokens.yaml", &tokens());
    let policy_file = pki.write("policy.yaml", POLICY);
    let broker = Running::start(secure_builder(&pki, &tokens_file, &policy_file)).await;
    Setup {
        pki,
        tokens_file,
        broker,
    }
}

impl Setup {
    fn tls(&self) -> GrpcConfig {
        GrpcConfig::new(self.broker.url()).tls(TlsFiles::new().ca_file(&self.pki.ca_file))
    }

    /// A TLS config presenting the client certificate `cert` with `key`.
    fn tls_with_cert(&self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> GrpcConfig {
        GrpcConfig::new(self.broker.url()).tls(TlsFiles::new().ca_file(&self.pki.ca_file).client_cert(cert, key))
    }

    /// A connection with a client certificate of subject `cn`.
    async fn with_cert(&self, cn: &str, role: Role) -> GrpcConnection {
        let (cert, key) = self.pki.client(cn, cn);
        GrpcTransport::new(self.tls_with_cert(cert, key), role)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A connection presenting `token`.
    async fn with_token(&self, token: &str, role: Role) -> GrpcConnection {
        let file = self.pki.write(&format!("{token}.token"), token);
        GrpcTransport::new(self.tls().token_file(file), role)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

fn rejected(result: Result<impl std::fmt::Debug, TransportError>) -> TransportError {
    let err = result.unwrap_err();
    assert!(err.is_rejected(), "expected a rejection, got {err}");
    err
}

#[tokio::test]
async fn an_agent_may_only_subscribe_and_publish_for_its_own_cluster() {
    let s = setup().await;
    let to_source = PublishTarget::Source("source1".into());

    let own = s.with_cert("cluster1-agent", agent_role("cluster1")).await;
    own.subscribe().await.unwrap();
    own.publish(&to_source, &status("cluster1", "source1", "w"))
        .await
        .unwrap();
    own.publish(&to_source, &spec_resync("cluster1", "")).await.unwrap();

    let err = rejected(
        s.with_cert("cluster1-agent", agent_role("cluster2"))
            .await
            .subscribe()
            .await,
    );
    assert!(err.to_string().contains("PermissionDenied"), "{err}");
    rejected(own.publish(&to_source, &spec("cluster1-agent", "cluster1", "w")).await);
    rejected(own.publish(&to_source, &status("cluster2", "source1", "w")).await);
    rejected(own.publish(&to_source, &spec_resync("cluster2", "")).await);

    let m = s.broker.handle.metrics();
    assert_eq!(m.denied(Operation::Subscribe), 1);
    assert_eq!(m.denied(Operation::Publish), 3);
    s.broker.stop().await;
}

#[tokio::test]
async fn a_source_may_only_act_as_its_own_source_id() {
    let s = setup().await;
    let to_cluster = PublishTarget::Cluster("cluster1".into());
    let source = s.with_cert("source1-controller", source_role("source1")).await;
    source.subscribe().await.unwrap();
    source
        .publish(&to_cluster, &spec("source1", "cluster1", "w"))
        .await
        .unwrap();
    source
        .publish(&to_cluster, &status_resync("source1", ""))
        .await
        .unwrap();

    rejected(
        s.with_cert("source1-controller", source_role("source2"))
            .await
            .subscribe()
            .await,
    );
    rejected(source.publish(&to_cluster, &spec("source2", "cluster1", "w")).await);
    rejected(source.publish(&to_cluster, &status("cluster1", "source1", "w")).await);
    // an identity the policy does not know may do nothing
    rejected(s.with_cert("stranger", source_role("source1")).await.subscribe().await);
    s.broker.stop().await;
}

#[tokio::test]
async fn unknown_expired_and_missing_tokens_are_refused() {
    let s = setup().await;
    let good = s.with_token("agent1-token", agent_role("cluster1")).await;
    good.subscribe().await.unwrap();

    for token in ["unknown-token", "expired-token"] {
        let err = rejected(s.with_token(token, agent_role("cluster1")).await.subscribe().await);
        assert!(err.to_string().contains("Unauthenticated"), "{token}: {err}");
    }
    // TLS without any credential
    let anonymous = GrpcTransport::new(s.tls(), agent_role("cluster1"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    rejected(anonymous.subscribe().await);
    rejected(
        anonymous
            .publish(&PublishTarget::AllSources, &status("cluster1", "source1", "w"))
            .await,
    );
    assert_eq!(s.broker.handle.metrics().dropped(DropReason::Unauthenticated), 4);

    // a token added to the file is accepted after a reload, no restart
    std::fs::write(
        &s.tokens_file,
        tokens() + "  - token: new-token\n    identity: cluster1-agent\n",
    )
    .unwrap();
    s.broker.handle.reload().unwrap();
    s.with_token("new-token", agent_role("cluster1"))
        .await
        .subscribe()
        .await
        .unwrap();
    s.broker.stop().await;
}

#[tokio::test]
async fn tls_1_2_and_plaintext_clients_are_refused() {
    let s = setup().await;
    let mut config = ocm_ce_client::tls::client_config(
        &ClientTlsOptions::default()
            .ca_file(&s.pki.ca_file)
            .system_roots(false)
            .versions(TlsVersion::Tls12, TlsVersion::Tls12),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(s.broker.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let handshake = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await;
    assert!(handshake.is_err(), "a TLS 1.2-only client must be refused");
    // single-threaded runtime: the broker counted the failure before its alert reached us
    assert!(s.broker.handle.metrics().tls_handshake_failures() >= 1);

    // the same CA with TLS 1.3 works
    let tls13 = s.with_token("agent1-token", agent_role("cluster1")).await;
    tls13.subscribe().await.unwrap();

    // plaintext against the TLS port: the call fails, nothing is served
    let plain = GrpcTransport::new(s.broker.plain(), agent_role("cluster1")).unwrap();
    let attempt = tokio::time::timeout(WAIT, async {
        let conn = plain.connect().await?;
        conn.subscribe().await.map(|_| ())
    })
    .await;
    // an error, or hanging until the handshake timeout: a refusal either way
    if let Ok(result) = attempt {
        assert!(result.is_err(), "plaintext must fail");
    }
    s.broker.stop().await;
}

#[tokio::test]
async fn a_rotated_client_certificate_is_used_on_the_next_connect_without_a_restart() {
    let s = setup().await;
    let (cert, key) = s.pki.client("agent", "cluster1-agent");
    let transport = GrpcTransport::new(s.tls_with_cert(&cert, &key), agent_role("cluster1")).unwrap();
    let first = transport.connect().await.unwrap();
    first.subscribe().await.unwrap();

    // new key and certificate, same files, same identity: accepted on reconnect
    let before = std::fs::read(&cert).unwrap();
    s.pki.client("agent", "cluster1-agent");
    assert_ne!(before, std::fs::read(&cert).unwrap());
    first.close().await;
    transport.connect().await.unwrap().subscribe().await.unwrap();

    // the files are really read again: a certificate of another identity changes the outcome
    s.pki.client("agent", "cluster2-agent");
    rejected(transport.connect().await.unwrap().subscribe().await);
    let as_cluster2 = GrpcTransport::new(s.tls_with_cert(&cert, &key), agent_role("cluster2")).unwrap();
    as_cluster2.connect().await.unwrap().subscribe().await.unwrap();
    s.broker.stop().await;
}

#[test]
fn unsafe_or_contradictory_configurations_are_refused() {
    let pki = Pki::new();
    let policy = pki.write("policy.yaml", POLICY);
    let err = |b: BrokerBuilder| b.build().unwrap_err().to_string();
    assert!(err(Broker::builder()).contains("TLS is not configured"));
    assert!(
        err(Broker::builder().tls(&pki.server_cert, &pki.server_key, None::<PathBuf>))
            .contains("no client authentication")
    );
    assert!(err(Broker::builder().insecure(true).authorization_file(&policy)).contains("needs authentication"));
    assert!(err(Broker::builder().insecure(true).queue_capacity(0)).contains("queue capacity"));
    let bad_policy = pki.write("bad.yaml", "identities:\n  x:\n    clusterz: [a]\n");
    assert!(
        err(Broker::builder()
            .tls(&pki.server_cert, &pki.server_key, Some(&pki.ca_file))
            .authorization_file(&bad_policy))
        .contains("invalid authorization policy")
    );
    // TLS with authentication, and plaintext in insecure mode, are fine
    Broker::builder()
        .tls(&pki.server_cert, &pki.server_key, Some(&pki.ca_file))
        .authorization_file(&policy)
        .build()
        .unwrap();
    Broker::builder().insecure(true).build().unwrap();
}
