//! Broker throughput: events/s routed from a source to an agent over loopback, 1 KiB events,
//! then the broker's routing cost per event against the number of subscribed clusters.
//!
//! `cargo bench -p ocm-ce-broker --bench throughput [-- EVENTS [PUBLISHERS]]`
//!
//! One agent subscribes for `cluster1`; `PUBLISHERS` concurrent unary `Publish` calls (one
//! HTTP/2 connection, like one source) send `EVENTS` spec events of 1 KiB data each. The clock
//! runs from the first publish to the last event received by the agent. Broker, source and
//! agent share one process and the machine's cores.
//!
//! Routing: K = 1, 100 and 1 000 agents subscribe (one cluster each, one HTTP/2 connection) and
//! the same publishers send `ROUTED_EVENTS` events round-robin over the K clusters; the time per
//! event (publish to delivery, gRPC included) must not grow with K: the broker finds the
//! subscribers of an event's cluster without scanning the others.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ocm_ce_broker::{Broker, BrokerHandle, DropReason};
use ocm_ce_core::EventBuilder;
use ocm_ce_proto::pb::{CloudEventServiceClient, PublishRequest, SubscriptionRequest};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Events routed per K in the routing measurement.
const ROUTED_EVENTS: usize = 20_000;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let publishers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(events, publishers));
    println!("{:>12} {:>16} {:>14}", "subscribers", "per event (us)", "events/s");
    for k in [1, 100, 1_000] {
        let per_event = runtime.block_on(routing(k, ROUTED_EVENTS, publishers));
        println!("{k:>12} {:>16.1} {:>14.0}", per_event * 1e6, 1.0 / per_event);
    }
}

type Server = JoinHandle<Result<(), ocm_ce_broker::Error>>;

/// A broker on a loopback port with room for `queue` events per subscriber and `streams`
/// subscriptions on one connection.
async fn start(queue: usize, streams: u32) -> (BrokerHandle, SocketAddr, Server) {
    let broker = Broker::builder()
        .insecure(true)
        .queue_capacity(queue.max(1))
        .max_concurrent_streams(streams)
        .build()
        .unwrap();
    let handle = broker.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (handle, addr, tokio::spawn(broker.serve(listener)))
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

/// A spec event of 1 KiB data for `cluster`, encoded once.
fn request(cluster: &str) -> PublishRequest {
    let mut event = EventBuilder::new(
        "source1",
        "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.update_request"
            .parse()
            .unwrap(),
    )
    .cluster_name(cluster)
    .resource_id("0f8b7a2c-3d4e-4f50-8a1b-2c3d4e5f6a7b")
    .resource_version(1)
    .build()
    .unwrap();
    event.set_data("application/json", vec![b'x'; 1024]);
    ocm_ce_proto::encode_publish_request(&event).unwrap()
}

async fn subscribe(
    client: &mut CloudEventServiceClient<Channel>,
    cluster: &str,
) -> tonic::Streaming<ocm_ce_proto::pb::CloudEvent> {
    client
        .subscribe(SubscriptionRequest {
            cluster_name: cluster.into(),
            ..SubscriptionRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// `publishers` tasks sending `events` of `requests` (round-robin) on one connection.
fn publish(
    source: &CloudEventServiceClient<Channel>,
    requests: &Arc<Vec<PublishRequest>>,
    events: usize,
    publishers: usize,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..publishers {
        let mut client = source.clone();
        let requests = requests.clone();
        tasks.spawn(async move {
            for i in (p..events).step_by(publishers) {
                client.publish(requests[i % requests.len()].clone()).await.unwrap();
            }
        });
    }
    tasks
}

async fn run(events: usize, publishers: usize) {
    let (handle, addr, server) = start(events, ocm_ce_broker::DEFAULT_MAX_CONCURRENT_STREAMS).await;
    let mut agent = CloudEventServiceClient::new(channel(addr).await);
    let mut stream = subscribe(&mut agent, "cluster1").await;
    let requests = Arc::new(vec![request("cluster1")]);
    let wire = prost::Message::encoded_len(&requests[0]);

    let source = CloudEventServiceClient::new(channel(addr).await);
    let started = Instant::now();
    let mut tasks = publish(&source, &requests, events, publishers);
    let mut received = 0;
    while received < events {
        stream.message().await.unwrap().unwrap();
        received += 1;
    }
    let elapsed = started.elapsed();
    while tasks.join_next().await.is_some() {}

    let m = handle.metrics();
    assert_eq!(m.routed(), events as u64);
    assert_eq!(m.dropped(DropReason::QueueFull), 0);
    let rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "broker throughput: {events} events of {wire} bytes ({publishers} concurrent publishers) in {:.2?}: {rate:.0} events/s, {:.1} MiB/s",
        elapsed,
        rate * wire as f64 / (1024.0 * 1024.0)
    );
    handle.shutdown();
    drop(stream);
    server.await.unwrap().unwrap();
}

/// Seconds per event routed to one of `k` subscribed clusters.
async fn routing(k: usize, events: usize, publishers: usize) -> f64 {
    let streams = u32::try_from(k + 16)
        .unwrap()
        .max(ocm_ce_broker::DEFAULT_MAX_CONCURRENT_STREAMS);
    let (handle, addr, server) = start(events, streams).await;
    let agents = CloudEventServiceClient::new(channel(addr).await);
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for c in 0..k {
        let mut client = agents.clone();
        let mut stream = subscribe(&mut client, &format!("cluster{c}")).await;
        let received = received.clone();
        readers.spawn(async move {
            while let Ok(Some(_)) = stream.message().await {
                received.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while handle.subscriber_count() < k {
        assert!(Instant::now() < deadline, "{k} subscriptions were not registered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let requests = Arc::new((0..k).map(|c| request(&format!("cluster{c}"))).collect::<Vec<_>>());
    let source = CloudEventServiceClient::new(channel(addr).await);
    let started = Instant::now();
    let mut tasks = publish(&source, &requests, events, publishers);
    while tasks.join_next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < events {
        assert!(Instant::now() < deadline, "not every event was delivered");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let per_event = started.elapsed().as_secs_f64() / events as f64;
    assert_eq!(handle.metrics().routed(), events as u64);
    assert_eq!(handle.metrics().dropped(DropReason::QueueFull), 0);
    handle.shutdown();
    readers.shutdown().await;
    server.await.unwrap().unwrap();
    per_event
}
