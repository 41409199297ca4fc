//! The routing table over real sockets: several sources and clusters, broadcast resync
//! requests, several subscribers per key, data-type filters, undelivered events, heartbeats
//! and the subscription acknowledgement.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use cloudevents::{AttributesReader, AttributesWriter};
use common::*;
use futures::StreamExt;
use ocm_ce_broker::{Broker, HEARTBEAT_EVENT_TYPE, SUBSCRIPTION_ID_HEADER, SubscriberRole};
use ocm_ce_client::Connection;
use ocm_ce_client::Transport;
use ocm_ce_client::transport::grpc::GrpcTransport;
use ocm_ce_proto::pb::{CloudEventServiceClient, SubscriptionRequest};

#[tokio::test]
async fn events_reach_exactly_the_subscribers_the_routing_table_names() {
    let broker = Running::start(Broker::builder().insecure(true)).await;
    let (_s1c, mut s1) = subscribe(&broker, source_role("source1")).await;
    let (_s2c, mut s2) = subscribe(&broker, source_role("source2")).await;
    let (_a1c, mut c1a) = subscribe(&broker, agent_role("cluster1")).await;
    let (_a1bc, mut c1b) = subscribe(&broker, agent_role("cluster1")).await; // a second agent of cluster1
    let (_a2c, mut c2) = subscribe(&broker, agent_role("cluster2")).await;
    assert_eq!(broker.handle.metrics().subscribers(SubscriberRole::Agent), 3);
    assert_eq!(broker.handle.metrics().subscribers(SubscriberRole::Source), 2);

    let source1 = broker.connect(source_role("source1")).await;
    let source2 = broker.connect(source_role("source2")).await;
    let agent1 = broker.connect(agent_role("cluster1")).await;
    let agent2 = broker.connect(agent_role("cluster2")).await;

    for (from, event, id) in [
        (&source1, spec("source1", "cluster1", "w1"), "spec-s1-c1"),
        (&source2, spec("source2", "cluster2", "w2"), "spec-s2-c2"),
        (&source1, status_resync("source1", ""), "status-resync-all"),
        (&source2, status_resync("source2", "cluster2"), "status-resync-c2"),
        (&agent1, status("cluster1", "source2", "w3"), "status-c1-s2"),
        (&agent2, status("cluster2", "source1", "w4"), "status-c2-s1"),
        (&agent2, spec_resync("cluster2", ""), "spec-resync-all"),
        (&agent1, spec_resync("cluster1", "source1"), "spec-resync-s1"),
        // nobody subscribed for cluster3: accepted, counted as undelivered
        (&source1, spec("source1", "cluster3", "w5"), "spec-s1-c3"),
    ] {
        publish_as(from, event, id).await.unwrap();
    }
    assert_eq!(broker.handle.metrics().undelivered(), 1);

    // markers close every stream
    publish_as(&source1, status_resync("source1", ""), "end").await.unwrap();
    publish_as(&agent1, spec_resync("cluster1", ""), "end").await.unwrap();

    assert_eq!(ids_until(&mut c1a, "end").await, ["spec-s1-c1", "status-resync-all"]);
    assert_eq!(ids_until(&mut c1b, "end").await, ["spec-s1-c1", "status-resync-all"]);
    assert_eq!(
        ids_until(&mut c2, "end").await,
        ["spec-s2-c2", "status-resync-all", "status-resync-c2"]
    );
    assert_eq!(
        ids_until(&mut s1, "end").await,
        ["status-c2-s1", "spec-resync-all", "spec-resync-s1"]
    );
    assert_eq!(ids_until(&mut s2, "end").await, ["status-c1-s2", "spec-resync-all"]);

    let m = broker.handle.metrics();
    assert_eq!(m.published(), 11);
    // 2 + 1 + 3 + 1 + 1 + 1 + 2 + 1 + 0 deliveries, plus the markers (3 + 2)
    assert_eq!(m.routed(), 17);
    assert_eq!(m.queue_depth(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn a_data_type_subscription_receives_only_that_data_type() {
    let broker = Running::start(Broker::builder().insecure(true)).await;
    let filtered = GrpcTransport::new(broker.plain(), agent_role("cluster1"))
        .unwrap()
        .data_type("io.open-cluster-management.v1.managedclusters")
        .connect()
        .await
        .unwrap();
    let mut only_clusters = filtered.subscribe().await.unwrap();
    let (_c, mut everything) = subscribe(&broker, agent_role("cluster1")).await;
    let source = broker.connect(source_role("source1")).await;
    publish_as(&source, spec("source1", "cluster1", "w"), "work")
        .await
        .unwrap();
    let mut cluster_event = spec("source1", "cluster1", "mc");
    cluster_event.set_type("io.open-cluster-management.v1.managedclusters.spec.update_request");
    publish_as(&source, cluster_event, "cluster").await.unwrap();
    assert_eq!(next_event(&mut everything).await.id(), "work");
    assert_eq!(next_event(&mut everything).await.id(), "cluster");
    assert_eq!(next_event(&mut only_clusters).await.id(), "cluster");
    broker.stop().await;
}

#[tokio::test]
async fn subscriptions_are_acknowledged_with_a_subscription_id_and_bad_ones_refused() {
    let broker = Running::start(Broker::builder().insecure(true)).await;
    let mut client = CloudEventServiceClient::new(broker.channel().await);
    let response = client
        .subscribe(SubscriptionRequest {
            cluster_name: "cluster1".into(),
            source: "+".into(), // what Go v1 agents send
            ..Default::default()
        })
        .await
        .unwrap();
    let id = response
        .metadata()
        .get(SUBSCRIPTION_ID_HEADER)
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    // registered before the headers went out
    assert_eq!(broker.handle.metrics().subscribers(SubscriberRole::Agent), 1);

    let empty = client.subscribe(SubscriptionRequest::default()).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let bad_type = client
        .subscribe(SubscriptionRequest {
            source: "source1".into(),
            data_type: "nodots".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_type.code(), tonic::Code::InvalidArgument);
    drop(response);
    broker.stop().await;
}

#[tokio::test]
async fn heartbeats_have_gos_shape_and_the_transport_consumes_them() {
    let broker = Running::start(
        Broker::builder()
            .insecure(true)
            .heartbeat_interval(Some(Duration::from_millis(50))),
    )
    .await;
    let mut client = CloudEventServiceClient::new(broker.channel().await);
    let mut raw = client
        .subscribe(SubscriptionRequest {
            source: "source1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let heartbeat = tokio::time::timeout(WAIT, raw.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(heartbeat.r#type, HEARTBEAT_EVENT_TYPE);
    assert_eq!(heartbeat.spec_version, "1.0");
    assert!(!heartbeat.id.is_empty() && heartbeat.source.is_empty());
    assert!(heartbeat.attributes.is_empty() && heartbeat.data.is_none());

    // Over the transport: heartbeats keep a 700 ms healthiness timeout happy and are not
    // handed out.
    let config = broker.plain().heartbeat_timeout(Some(Duration::from_millis(700)));
    let conn = GrpcTransport::new(config, agent_role("cluster1"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut sub = conn.subscribe().await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(1500), sub.next()).await;
    assert!(quiet.is_err(), "nothing handed out: {quiet:?}");
    let source = broker.connect(source_role("source1")).await;
    spec_reaches(&source, &mut sub, "after-heartbeats").await;
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_ends_every_subscription_with_an_error_and_frees_the_port() {
    let broker = Running::start(Broker::builder().insecure(true)).await;
    let addr = broker.addr;
    let (conn, mut sub) = subscribe(&broker, agent_role("cluster1")).await;
    broker.stop().await;
    match tokio::time::timeout(WAIT, sub.next()).await.unwrap() {
        Some(Err(e)) => assert!(e.is_disconnected(), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(tokio::time::timeout(WAIT, sub.next()).await.unwrap().is_none());
    let err = conn
        .publish(&ocm_ce_client::PublishTarget::AllClusters, &spec("s", "c", "w"))
        .await
        .unwrap_err();
    assert!(err.is_disconnected(), "publish fails fast after the loss: {err}");
    // the same port can be served again at once
    let again = Running::start_on(Broker::builder().insecure(true), addr).await;
    let (_c, _s) = subscribe(&again, agent_role("cluster1")).await;
    again.stop().await;
}

#[test]
fn the_public_types_and_the_server_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Broker>();
    send_sync::<ocm_ce_broker::BrokerHandle>();
    send_sync::<ocm_ce_broker::BrokerMetrics>();
    send_sync::<ocm_ce_broker::BrokerBuilder>();
    send_sync::<ocm_ce_broker::Error>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let broker = Broker::builder().insecure(true).build().unwrap();
    let serve = broker.serve(listener);
    send(&serve);
}
