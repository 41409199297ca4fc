//! Broker throughput: events/s routed from a source to an agent over loopback, 1 KiB events.
//!
//! `cargo bench -p ocm-ce-broker --bench throughput [-- EVENTS [PUBLISHERS]]`
//!
//! One agent subscribes for `cluster1`; `PUBLISHERS` concurrent unary `Publish` calls (one
//! HTTP/2 connection, like one source) send `EVENTS` spec events of 1 KiB data each. The clock
//! runs from the first publish to the last event received by the agent. Broker, source and
//! agent share one process and the machine's cores.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use ocm_ce_broker::{Broker, DropReason};
use ocm_ce_core::EventBuilder;
use ocm_ce_proto::pb::{CloudEventServiceClient, PublishRequest, SubscriptionRequest};
use tokio::net::TcpListener;
use tonic::transport::Channel;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let publishers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(events, publishers));
}

async fn run(events: usize, publishers: usize) {
    let broker = Broker::builder()
        .insecure(true)
        .queue_capacity(events.max(1))
        .build()
        .unwrap();
    let handle = broker.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(broker.serve(listener));
    let channel = || async move {
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap()
    };

    let mut agent = CloudEventServiceClient::new(channel().await);
    let mut stream = agent
        .subscribe(SubscriptionRequest {
            cluster_name: "cluster1".into(),
            ..SubscriptionRequest::default()
        })
        .await
        .unwrap()
        .into_inner();

    let mut event = EventBuilder::new(
        "source1",
        "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.update_request"
            .parse()
            .unwrap(),
    )
    .cluster_name("cluster1")
    .resource_id("0f8b7a2c-3d4e-4f50-8a1b-2c3d4e5f6a7b")
    .resource_version(1)
    .build()
    .unwrap();
    event.set_data("application/json", vec![b'x'; 1024]);
    let request = Arc::new(ocm_ce_proto::encode_publish_request(&event).unwrap());
    let wire = prost::Message::encoded_len(request.as_ref());

    let source = CloudEventServiceClient::new(channel().await);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..publishers {
        let mut client = source.clone();
        let request = request.clone();
        let share = events / publishers + usize::from(p < events % publishers);
        tasks.spawn(async move {
            for _ in 0..share {
                client.publish(PublishRequest::clone(&request)).await.unwrap();
            }
        });
    }
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
