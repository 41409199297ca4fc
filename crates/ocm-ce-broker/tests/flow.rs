//! Flow control (a subscriber that stops reading) and bad input, over real sockets.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use cloudevents::AttributesReader;
use common::*;
use futures::StreamExt;
use ocm_ce_broker::{Broker, DropReason, SubscriberRole};
use ocm_ce_client::{Connection, PublishTarget};
use ocm_ce_proto::pb::cloud_event::Data;
use ocm_ce_proto::pb::cloud_event_attribute_value::Attr;
use ocm_ce_proto::pb::{CloudEvent, CloudEventAttributeValue, CloudEventServiceClient, PublishRequest};
use prost::Message;

fn with_bytes(mut e: cloudevents::Event, n: usize) -> cloudevents::Event {
    e.set_data("application/json", vec![b'x'; n]);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_holds_back_only_its_own_publishers_until_it_is_disconnected() {
    const CAPACITY: usize = 32;
    const PER_CLUSTER: usize = 1000;
    const STALL: std::time::Duration = std::time::Duration::from_secs(8);
    let broker = Running::start(
        Broker::builder()
            .insecure(true)
            .queue_capacity(CAPACITY)
            .stall_timeout(STALL),
    )
    .await;
    let (_slow_conn, mut slow) = subscribe(&broker, agent_role("cluster2")).await;
    let (_fast_conn, mut fast) = subscribe(&broker, agent_role("cluster1")).await;
    let reader = tokio::spawn(async move {
        let mut ids = Vec::with_capacity(PER_CLUSTER);
        while ids.len() < PER_CLUSTER {
            ids.push(next_event(&mut fast).await.id().to_owned());
        }
        (ids, fast)
    });

    // One publisher per cluster, as the source's outbox lanes do.
    let source = std::sync::Arc::new(broker.connect(source_role("source1")).await);
    let publisher = |cluster: &'static str| {
        let source = source.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            for i in 0..PER_CLUSTER {
                // 8 KiB: more than the HTTP/2 buffers of a stream that is not read hold.
                let event = with_bytes(spec("source1", cluster, "w"), 8 * 1024);
                publish_as(&source, event, &format!("{cluster}-{i}")).await.unwrap();
            }
            started.elapsed()
        })
    };
    let (to_fast, to_slow) = (publisher("cluster1"), publisher("cluster2"));
    let fast_took = tokio::time::timeout(WAIT, to_fast).await.unwrap().unwrap();
    let (fast_ids, _fast) = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    let want: Vec<String> = (0..PER_CLUSTER).map(|i| format!("cluster1-{i}")).collect();
    assert_eq!(fast_ids, want, "the fast agent got everything, in order");
    assert!(
        fast_took < STALL,
        "the stalled agent did not slow cluster1 down: {fast_took:?}"
    );

    let slow_took = tokio::time::timeout(WAIT + STALL, to_slow).await.unwrap().unwrap();
    assert!(
        slow_took >= STALL,
        "cluster2's publisher was held back, not dropped: {slow_took:?}"
    );
    let m = broker.handle.metrics();
    assert!(m.backpressure() >= 1);
    assert_eq!(
        m.slow_subscribers_disconnected(),
        1,
        "disconnected only once really stuck"
    );
    assert_eq!(m.dropped(DropReason::QueueFull), 1);
    assert_eq!(m.subscribers(SubscriberRole::Agent), 1, "the stuck one is gone");
    assert!(
        m.queue_depth() <= CAPACITY as i64,
        "memory stays bounded: at most {CAPACITY} queued, saw {}",
        m.queue_depth()
    );
    assert!(
        m.undelivered() > 0,
        "events for cluster2 after the disconnect had no subscriber"
    );

    // The stuck agent finds out when it reads again: what was buffered, then an error.
    let mut received = 0;
    let end = loop {
        match tokio::time::timeout(WAIT, slow.next()).await.unwrap() {
            Some(Ok(_)) => received += 1,
            Some(Err(e)) => break e,
            None => panic!("the subscription must end with an error"),
        }
    };
    assert!(end.is_disconnected(), "{end}");
    assert!(received < PER_CLUSTER, "{received}");
    assert!(tokio::time::timeout(WAIT, slow.next()).await.unwrap().is_none());

    // and recovers by subscribing again
    let (_again_conn, mut again) = subscribe(&broker, agent_role("cluster2")).await;
    publish_as(&source, spec("source1", "cluster2", "w"), "after")
        .await
        .unwrap();
    assert_eq!(next_event(&mut again).await.id(), "after");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_of_4_mb_events_holds_at_most_its_byte_budget() {
    const QUEUE_BYTES: usize = 16 * 1024 * 1024;
    let broker = Running::start(
        Broker::builder()
            .insecure(true)
            .queue_bytes(QUEUE_BYTES)
            .stall_timeout(std::time::Duration::from_secs(2)),
    )
    .await;
    let (_conn, _stalled) = subscribe(&broker, agent_role("cluster1")).await;
    let source = broker.connect(source_role("source1")).await;
    let mut peak = 0;
    for i in 0..12 {
        let mut e = spec("source1", "cluster1", "w");
        e.set_data("application/json", vec![b'x'; 4_000_000]);
        publish_as(&source, e, &format!("big-{i}")).await.unwrap();
        peak = peak.max(broker.handle.metrics().queued_bytes());
    }
    let m = broker.handle.metrics();
    assert!(
        peak <= QUEUE_BYTES as i64,
        "the queue never held more than its budget: {peak} bytes"
    );
    assert!(peak >= 3 * 4_000_000, "it did fill up: {peak}");
    assert_eq!(m.slow_subscribers_disconnected(), 1);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_forever_for_a_client_that_reads_nothing() {
    let broker = Running::start(
        Broker::builder()
            .insecure(true)
            .queue_capacity(4)
            .stall_timeout(std::time::Duration::from_secs(60)),
    )
    .await;
    let (_conn, _never_read) = subscribe(&broker, agent_role("cluster1")).await;
    let source = broker.connect(source_role("source1")).await;
    for i in 0..64 {
        let mut e = spec("source1", "cluster1", "w");
        e.set_data("application/json", vec![b'x'; 64 * 1024]);
        // Some of these wait for room; that is fine, the broker is shut down under them.
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            publish_as(&source, e, &i.to_string()),
        )
        .await;
    }
    let started = std::time::Instant::now();
    broker.stop().await;
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}

fn pb_event(ty: &str, attributes: &[(&str, &str)]) -> CloudEvent {
    CloudEvent {
        id: "1".into(),
        source: "source1".into(),
        spec_version: "1.0".into(),
        r#type: ty.into(),
        attributes: attributes
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    CloudEventAttributeValue {
                        attr: Some(Attr::CeString((*v).to_owned())),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        data: None,
    }
}

#[tokio::test]
async fn bad_input_is_refused_counted_and_harms_nothing_else() {
    let broker = Running::start(Broker::builder().insecure(true).max_message_size(64 * 1024)).await;
    let (_c, mut agent) = subscribe(&broker, agent_role("cluster1")).await;
    let channel = broker.channel().await;
    let mut client = CloudEventServiceClient::new(channel.clone());
    let code = |r: Result<tonic::Response<()>, tonic::Status>| r.unwrap_err().code();
    let spec_type = format!("{WORKS}.spec.create_request");

    // not protobuf at all
    let status = raw_publish(channel.clone(), vec![0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // no event, no attributes, an unparsable type, a spec without clustername
    assert_eq!(
        code(client.publish(PublishRequest { event: None }).await),
        tonic::Code::InvalidArgument
    );
    let bare = pb_event(&spec_type, &[]);
    assert_eq!(
        code(client.publish(PublishRequest { event: Some(bare) }).await),
        tonic::Code::InvalidArgument
    );
    let nonsense = pb_event("nonsense", &[("ce-clustername", "cluster1")]);
    assert_eq!(
        code(client.publish(PublishRequest { event: Some(nonsense) }).await),
        tonic::Code::InvalidArgument
    );
    let no_cluster = pb_event(&spec_type, &[("ce-originalsource", "")]);
    assert_eq!(
        code(
            client
                .publish(PublishRequest {
                    event: Some(no_cluster)
                })
                .await
        ),
        tonic::Code::InvalidArgument
    );
    // over the size limit
    let mut big = pb_event(&spec_type, &[("ce-clustername", "cluster1")]);
    big.data = Some(Data::BinaryData(vec![0; 100 * 1024]));
    let big_request = PublishRequest { event: Some(big) };
    assert!(big_request.encoded_len() > 64 * 1024);
    assert_eq!(code(client.publish(big_request).await), tonic::Code::ResourceExhausted);
    // the transport reports it as too large
    let source = broker.connect(source_role("source1")).await;
    let mut huge = spec("source1", "cluster1", "w");
    huge.set_data("application/json", vec![b'x'; 100 * 1024]);
    let err = source.publish(&PublishTarget::AllClusters, &huge).await.unwrap_err();
    assert!(err.is_too_large(), "{err}");

    let m = broker.handle.metrics();
    assert_eq!(m.dropped(DropReason::Malformed), 1);
    assert_eq!(m.dropped(DropReason::InvalidEvent), 4);
    assert_eq!(m.dropped(DropReason::TooLarge), 2);
    assert_eq!(m.published(), 0);

    // the same connection and the open subscription carry on
    let good = pb_event(&spec_type, &[("ce-clustername", "cluster1")]);
    client.publish(PublishRequest { event: Some(good) }).await.unwrap();
    assert_eq!(next_event(&mut agent).await.id(), "1", "the first thing the agent sees");
    spec_reaches(&source, &mut agent, "via-transport").await;
    broker.stop().await;
}

#[tokio::test]
async fn metrics_are_served_over_http() {
    let builder = Broker::builder()
        .insecure(true)
        .metrics_addr("127.0.0.1:0".parse().unwrap());
    let broker = builder.build().unwrap();
    let metrics_addr = broker.metrics_local_addr().unwrap();
    let handle = broker.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let task = tokio::spawn(broker.serve(listener));

    let get = |path: &'static str| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut body = String::new();
        tcp.read_to_string(&mut body).await.unwrap();
        body
    };
    let text = get("/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for name in [
        "ocm_ce_broker_subscribers",
        "ocm_ce_broker_events_routed_total",
        "ocm_ce_broker_events_undelivered_total",
        "ocm_ce_broker_queue_depth",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    assert!(get("/other").await.starts_with("HTTP/1.1 404"));
    handle.shutdown();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}
