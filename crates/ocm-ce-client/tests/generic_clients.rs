//! The generic source and agent clients over the in-memory transport: the Go unit tests of
//! `generic/{source,agent}client_test.go` and `metrics_collector_test.go`, every case of the
//! golden `agent_spec_action.json`, and the reconnect and resync scenarios.

#![allow(clippy::unwrap_used)]

mod mock;

use std::time::Duration;

use chrono::Utc;
use cloudevents::{AttributesReader, Event};
use futures::StreamExt;
use mock::{BUNDLES, Mock, MockCodec, Side, Store, bundles, status_hash};
use ocm_ce_client::testing::{FakeBroker, Published};
use ocm_ce_client::{
    AgentClient, BackoffConfig, ClientEvent, ClientOptions, ClientStream, Error, PublishTarget, Role, SourceClient,
};
use ocm_ce_core::event_type::action;
use ocm_ce_core::{EventBuilder, EventExt, EventType, ResourceAction, SubResource, Topics, golden};
use serde_json::Value;

type Source = SourceClient<Mock, ocm_ce_client::testing::FakeTransport>;
type Agent = AgentClient<Mock, ocm_ce_client::testing::FakeTransport>;

/// Go's behaviour (no answering resync requests with our own), no rate limit, quick retries.
fn options() -> ClientOptions {
    ClientOptions::default()
        .rate_limit(None)
        .backoff(BackoffConfig::constant(Duration::from_secs(2)))
        .answer_resync_window(None)
}

fn source(broker: &FakeBroker, store: &Store, opts: ClientOptions) -> Source {
    SourceClient::new(
        broker.source("source1"),
        "source1",
        MockCodec::new(Side::Source),
        store.clone(),
        status_hash,
        opts,
    )
}

fn agent(broker: &FakeBroker, store: &Store, opts: ClientOptions) -> Agent {
    AgentClient::new(
        broker.agent("cluster1", "cluster1-agent"),
        "cluster1",
        "cluster1-agent",
        MockCodec::new(Side::Agent),
        store.clone(),
        status_hash,
        opts,
    )
}

/// A source over `broker` reading `store` that does not resync on connect, once connected.
async fn quiet_source(broker: &FakeBroker, store: &Store) -> (Source, ClientStream<Mock>) {
    let client = source(broker, store, options().resync_on_connect(false));
    let stream = connected(client.subscribe()).await;
    (client, stream)
}

/// An agent over `broker` reading `store` that does not resync on connect, once connected.
async fn quiet_agent(broker: &FakeBroker, store: &Store) -> (Agent, ClientStream<Mock>) {
    let client = agent(broker, store, options().resync_on_connect(false));
    let stream = connected(client.subscribe()).await;
    (client, stream)
}

fn ty(sub: SubResource, act: &str) -> EventType {
    EventType::new(bundles(), sub, act)
}

/// The next item, or `None` when nothing arrives within `d` of (paused) time.
async fn next_within<T>(s: &mut ClientStream<T>, d: Duration) -> Option<ocm_ce_client::Result<ClientEvent<T>>> {
    tokio::time::timeout(d, s.next()).await.ok().flatten()
}

async fn expect_marker<T: std::fmt::Debug>(s: &mut ClientStream<T>, want: &ClientEvent<T>)
where
    ClientEvent<T>: PartialEq,
{
    loop {
        match next_within(s, Duration::from_secs(120)).await {
            Some(Ok(e)) if &e == want => return,
            Some(Err(_)) => continue,
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
}

/// `stream` once it has reported `Connected`.
async fn connected(mut stream: ClientStream<Mock>) -> ClientStream<Mock> {
    expect_marker(&mut stream, &ClientEvent::Connected).await;
    stream
}

/// Subscribes both clients, then waits for the source's `Connected` and the agent's.
async fn both_connected(src: &Source, agt: &Agent) -> (ClientStream<Mock>, ClientStream<Mock>) {
    let (s1, s2) = (src.subscribe(), agt.subscribe());
    (connected(s1).await, connected(s2).await)
}

async fn idle<T: std::fmt::Debug>(s: &mut ClientStream<T>) {
    let got = next_within(s, Duration::from_secs(1)).await;
    assert!(got.is_none(), "expected nothing, got {got:?}");
}

fn of_type<'a>(published: &'a [Published], sub: SubResource, act: &str) -> Vec<&'a Published> {
    let want = ty(sub, act).to_string();
    published.iter().filter(|p| p.event.ty() == want).collect()
}

// ---- Go generic/sourceclient_test.go and agentclient_test.go ---------------------------------

#[tokio::test(start_paused = true)]
async fn a_source_resync_publishes_one_event_with_every_status_hash() {
    let broker = FakeBroker::new();
    let store = Store::source();
    let (client, _stream) = quiet_source(&broker, &store).await;

    client.resync("cluster1").await.unwrap();
    let body = only_event_of_cluster1(&broker, PublishTarget::Cluster("cluster1".into()));
    assert_eq!(body["statusHashes"], serde_json::json!([]));

    store.put(Mock {
        status: "s1".into(),
        ..Mock::new("test1", "1")
    });
    store.put(Mock {
        status: "s2".into(),
        ..Mock::new("test2", "1")
    });
    client.resync("cluster1").await.unwrap();
    let body = json_data(&broker.take_published()[0].event);
    assert_eq!(body["statusHashes"].as_array().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_agent_resync_publishes_its_versions_for_its_cluster() {
    let broker = FakeBroker::new();
    let store = Store::agent();
    let (client, _stream) = quiet_agent(&broker, &store).await;

    client.resync("").await.unwrap();
    let body = only_event_of_cluster1(&broker, PublishTarget::AllSources);
    assert_eq!(body, serde_json::json!({"resourceVersions": []}));

    store.put(Mock::new("test1", "1"));
    store.put(Mock::new("test2", "2"));
    client.resync("").await.unwrap();
    let body = json_data(&broker.take_published()[0].event);
    assert_eq!(body["resourceVersions"].as_array().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn published_specs_and_statuses_carry_the_routing_extensions() {
    let broker = FakeBroker::new();
    let (src_store, agent_store) = (Store::source(), Store::agent());
    let src = source(&broker, &src_store, options().resync_on_connect(false));
    let agt = agent(&broker, &agent_store, options().resync_on_connect(false));
    let (_s1, _s2) = both_connected(&src, &agt).await;

    src.publish(
        &ty(SubResource::Spec, action::CREATE_REQUEST),
        &Mock::new("test1", "13"),
    )
    .await
    .unwrap();
    let spec = broker.take_published().remove(0).event;
    assert_eq!(spec.resource_id().unwrap(), "test1");
    assert_eq!(spec.resource_version().unwrap(), 13);

    agt.publish(
        &ty(SubResource::Status, action::UPDATE_REQUEST),
        &Mock::new("test1", "13"),
    )
    .await
    .unwrap();
    let status = broker.take_published().remove(0);
    assert_eq!(status.event.resource_id().unwrap(), "test1");
    assert_eq!(status.event.resource_version().unwrap(), 13);
    assert_eq!(status.event.cluster_name().unwrap(), "cluster1");
    assert_eq!(status.target, PublishTarget::Source("source1".into()));

    assert!(matches!(
        src.publish(&ty(SubResource::Status, action::UPDATE_REQUEST), &Mock::new("x", "1"))
            .await,
        Err(Error::UnsupportedEventType { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_source_hands_statuses_to_its_subscriber_and_ignores_the_rest() {
    let broker = FakeBroker::new();
    let (client, mut stream) = quiet_source(&broker, &Store::source()).await;
    let agent_role = Role::agent("cluster1", "a");
    let to_source = PublishTarget::Source("source1".into());

    // a spec event and an event of an unknown data type are not handed over
    let spec = EventBuilder::new("a", ty(SubResource::Spec, action::CREATE_REQUEST))
        .resource_id("test1")
        .resource_version(1)
        .build()
        .unwrap();
    broker.inject(&agent_role, &to_source, spec);
    let other = EventBuilder::new("a", "io.x.v1.things.status.update_request".parse().unwrap())
        .build()
        .unwrap();
    broker.inject(&agent_role, &to_source, other);
    idle(&mut stream).await;
    assert_eq!(client.metrics().dropped_count("unknown_data_type"), 1);

    let status = MockCodec::new(Side::Agent).encode_status(&Mock {
        status: "ok".into(),
        ..Mock::new("test1", "1")
    });
    broker.inject(&agent_role, &to_source, status);
    match next_within(&mut stream, Duration::from_secs(1)).await {
        Some(Ok(ClientEvent::Received(resource))) => {
            assert_eq!(resource.uid, "test1");
            assert_eq!(resource.status, "ok");
        }
        other => panic!("{other:?}"),
    }
}

trait EncodeStatus {
    fn encode_status(&self, m: &Mock) -> Event;
}

impl EncodeStatus for MockCodec {
    fn encode_status(&self, m: &Mock) -> Event {
        use ocm_ce_core::Codec;
        self.encode("a", &ty(SubResource::Status, action::UPDATE_REQUEST), m)
            .unwrap()
    }
}

/// The event's data parsed as JSON.
fn json_data(e: &Event) -> Value {
    serde_json::from_slice(&data(e)).unwrap()
}

/// Takes what `broker` got: exactly one event, of cluster `cluster1`, sent to `target`; its JSON data.
#[track_caller]
fn only_event_of_cluster1(broker: &FakeBroker, target: PublishTarget) -> Value {
    let sent = broker.take_published();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].event.cluster_name().unwrap(), "cluster1");
    assert_eq!(sent[0].target, target);
    json_data(&sent[0].event)
}

fn data(e: &Event) -> Vec<u8> {
    match e.data() {
        Some(cloudevents::Data::Binary(b)) => b.clone(),
        Some(cloudevents::Data::String(s)) => s.clone().into_bytes(),
        Some(cloudevents::Data::Json(v)) => serde_json::to_vec(v).unwrap(),
        None => Vec::new(),
    }
}

// ---- golden: agent_spec_action.json -----------------------------------------------------------

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn local_work(v: &Value) -> Mock {
    Mock {
        uid: s(&v["uid"]).into(),
        rv: s(&v["resourceVersion"]).into(),
        namespace: s(&v["namespace"]).into(),
        source_label: s(&v["originalsource_label"]).into(),
        data_type: s(&v["datatype_annotation"]).into(),
        deleting: v["deleting"].as_bool().unwrap_or(false).then(Utc::now),
        status: v.get("status_hash").map(|h| s(h).to_owned()).unwrap_or_default(),
        payload: String::new(),
    }
}

/// An agent store holding the case's `local` works.
fn local_store(c: &Value) -> Store {
    let store = Store::agent();
    for l in c["local"].as_array().unwrap() {
        store.put(local_work(l));
    }
    store
}

/// Waits until the client is idle; then what it published, sorted by resource id, paired with the
/// case's `sent` entries, whose count, resource ids, types and versions it has.
async fn sent_as_in_case<'c>(
    name: &str,
    c: &'c Value,
    broker: &FakeBroker,
    stream: &mut ClientStream<Mock>,
) -> Vec<(Event, &'c Value)> {
    idle(stream).await;
    let mut sent: Vec<Event> = broker.published().into_iter().map(|p| p.event).collect();
    sent.sort_by_key(|e| e.resource_id().unwrap());
    let want = c["sent"].as_array().unwrap();
    assert_eq!(sent.len(), want.len(), "{name}: {sent:?}");
    for (e, w) in sent.iter().zip(want) {
        assert_eq!(e.resource_id().unwrap(), s(&w["resourceid"]), "{name}");
        assert_eq!(e.ty(), s(&w["type"]), "{name}");
        assert_eq!(
            i64::from(e.resource_version().unwrap()),
            w["resourceversion"].as_i64().unwrap(),
            "{name}"
        );
    }
    sent.into_iter().zip(want).collect()
}

fn mqtt_topics() -> Topics {
    Topics {
        source_events: "sources/source1/clusters/+/sourceevents".into(),
        agent_events: "sources/source1/clusters/+/agentevents".into(),
        source_broadcast: "sources/+/sourcebroadcast".into(),
        agent_broadcast: "clusters/+/agentbroadcast".into(),
    }
}

/// Makes an event look as it does after an MQTT hop: every extension a string.
fn over_mqtt(mut e: Event) -> Event {
    let exts: Vec<(String, String)> = e
        .iter_extensions()
        .map(|(k, v)| {
            (
                k.to_owned(),
                match v {
                    cloudevents::event::ExtensionValue::String(s) => s.clone(),
                    other => other.to_string(),
                },
            )
        })
        .collect();
    for (k, v) in exts {
        e.set_extension(&k, v);
    }
    e
}

#[tokio::test(start_paused = true)]
async fn every_golden_agent_spec_action_case_matches_go() {
    let mut ran = 0;
    for c in golden::cases("agent_spec_action.json") {
        let name = s(&c["name"]).to_owned();
        match s(&c["kind"]) {
            "agent_spec_action" => golden_spec_action(&name, &c).await,
            "source_spec_resync" => golden_source_spec_resync(&name, &c).await,
            "agent_status_resync" => golden_agent_status_resync(&name, &c).await,
            other => panic!("{name}: unknown kind {other}"),
        }
        ran += 1;
    }
    assert_eq!(ran, 32);
}

async fn golden_spec_action(name: &str, c: &Value) {
    let broker = FakeBroker::new();
    let store = local_store(c);
    let (_client, mut stream) = quiet_agent(&broker, &store).await;
    let from = s(&c["event_source"]);
    let event = if c["incoming"].is_object() {
        let inc = &c["incoming"];
        let m = Mock {
            uid: s(&inc["uid"]).into(),
            rv: s(&inc["resourceVersion"]).into(),
            namespace: s(&inc["namespace"]).into(),
            deleting: inc["deleting"].as_bool().unwrap().then(Utc::now),
            ..Mock::default()
        };
        use ocm_ce_core::Codec;
        MockCodec::new(Side::Source)
            .encode(from, &ty(SubResource::Spec, action::CREATE_REQUEST), &m)
            .unwrap()
    } else {
        serde_json::from_str(s(&c["incoming_event"]["structured_json"])).unwrap()
    };
    broker.inject(
        &Role::source(from),
        &PublishTarget::Cluster("cluster1".into()),
        over_mqtt(event),
    );
    // The client hands the decoded spec up (or drops it); what it means is decided by its
    // receiver against what it holds, with core's rule.
    let action = match next_within(&mut stream, Duration::from_secs(1)).await {
        None => None,
        Some(Ok(ClientEvent::Received(spec))) => store.spec_action("cluster1", &spec),
        other => panic!("{name}: {other:?}"),
    };
    match (&c["action"], action) {
        (Value::Null, None) => {}
        (Value::String(want), Some(action)) => assert_eq!(action.as_str(), want, "{name}"),
        (want, got) => panic!("{name}: want {want}, got {got:?}"),
    }
}

async fn golden_source_spec_resync(name: &str, c: &Value) {
    let broker = FakeBroker::new();
    let store = Store::source();
    for w in c["source_works"].as_array().unwrap() {
        store.put(Mock {
            source_label: String::new(),
            data_type: BUNDLES.into(),
            ..local_work(w)
        });
    }
    let (_client, mut stream) = quiet_source(&broker, &store).await;
    let mut request = EventBuilder::new("cluster1-work-agent", s(&c["request_type"]).parse().unwrap())
        .cluster_name(s(&c["request_cluster"]))
        .build()
        .unwrap();
    if c["request_cluster"].is_null() {
        request.remove_extension("clustername");
    }
    request.set_data("application/json", s(&c["request_payload"]).as_bytes().to_vec());
    broker.inject(
        &Role::agent("cluster1", "cluster1-work-agent"),
        &PublishTarget::Source("source1".into()),
        request,
    );
    for (e, w) in sent_as_in_case(name, c, &broker, &mut stream).await {
        assert_eq!(e.cluster_name().unwrap(), s(&w["clustername"]), "{name}");
        assert_eq!(
            e.deletion_timestamp().unwrap().is_some(),
            w["has_deletiontimestamp"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(
            e.extension("metadata").is_none(),
            w["synthetic_delete"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(e.data().is_some(), w["has_data"].as_bool().unwrap(), "{name}");
        assert_eq!(
            mqtt_topics().source_publish_topic("source1", &e, None).unwrap(),
            s(&w["topic"]),
            "{name}"
        );
    }
}

async fn golden_agent_status_resync(name: &str, c: &Value) {
    let broker = FakeBroker::new();
    let store = local_store(c);
    let (_client, mut stream) = quiet_agent(&broker, &store).await;
    let from = s(&c["event_source"]);
    let mut request = EventBuilder::new(from, s(&c["request_type"]).parse().unwrap())
        .cluster_name(s(&c["request_cluster"]))
        .build()
        .unwrap();
    request.set_data("application/json", s(&c["request_payload"]).as_bytes().to_vec());
    broker.inject(&Role::source(from), &PublishTarget::AllClusters, request);
    for (e, w) in sent_as_in_case(name, c, &broker, &mut stream).await {
        assert_eq!(e.original_source().unwrap(), s(&w["originalsource"]), "{name}");
        let (topic, _) = mqtt_topics().agent_publish_topic("cluster1", &e, None).unwrap();
        assert_eq!(topic, s(&w["topic"]), "{name}");
    }
}

// ---- metrics (Go metrics_collector_test.go) ---------------------------------------------------

#[tokio::test]
async fn handling_resync_requests_observes_the_resync_histograms() {
    let broker = FakeBroker::new();
    let (src_store, agent_store) = (Store::source(), Store::agent());
    src_store.put(Mock::new("w1", "1"));
    agent_store.put(Mock {
        status: "h".into(),
        ..Mock::new("w1", "1")
    });
    let agt = agent(&broker, &agent_store, options());
    let mut s2 = connected(agt.subscribe()).await; // its spec resync request reaches no source
    let src = source(&broker, &src_store, options());
    let mut s1 = connected(src.subscribe()).await; // its status resync request reaches the agent
    idle(&mut s2).await;
    let (count, sum) = agt.metrics().status_resync_stats("source1", "cluster1", BUNDLES);
    assert_eq!(count, 1);
    assert!(sum > 0.0 && sum < 1.0, "{sum}");
    assert_eq!(src.metrics().spec_resync_stats("source1", "cluster1", BUNDLES).0, 0);

    agt.resync("").await.unwrap();
    while next_within(&mut s1, Duration::from_secs(1)).await.is_some() {}
    let (count, sum) = src.metrics().spec_resync_stats("source1", "cluster1", BUNDLES);
    assert_eq!(count, 1);
    assert!(sum > 0.0 && sum < 1.0, "{sum}");
}

// ---- connection supervision -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn resync_is_sent_only_after_the_subscription_is_confirmed() {
    let broker = FakeBroker::new();
    broker.hold_subscriptions(true);
    let client = agent(&broker, &Store::agent(), options());
    let mut stream = client.subscribe();
    assert!(next_within(&mut stream, Duration::from_secs(30)).await.is_none());
    assert!(
        broker.published().is_empty(),
        "no resync before the subscription is confirmed"
    );
    broker.hold_subscriptions(false);
    expect_marker(&mut stream, &ClientEvent::Connected).await;
    let sent = broker.published();
    assert_eq!(of_type(&sent, SubResource::Spec, action::RESYNC_REQUEST).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_re_established_resubscribed_and_resynced() {
    let broker = FakeBroker::new();
    let src_store = Store::source();
    let client = source(&broker, &src_store, options());
    let mut stream = connected(client.subscribe()).await;
    assert_eq!(
        of_type(&broker.take_published(), SubResource::Status, action::RESYNC_REQUEST).len(),
        1
    );

    broker.set_down(true);
    broker.disconnect_all();
    assert!(matches!(
        next_within(&mut stream, Duration::from_secs(1)).await,
        Some(Err(Error::Transport(_)))
    ));
    assert!(!client.is_connected());
    let lost = client.last_error().expect("the loss is recorded");
    assert!(!lost.is_empty());
    // while down: reconnect attempts fail and are reported, publishing fails fast
    let err = client
        .publish(&ty(SubResource::Spec, action::CREATE_REQUEST), &Mock::new("w", "1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotConnected) && err.is_retryable(), "{err:?}");
    assert!(matches!(
        next_within(&mut stream, Duration::from_secs(10)).await,
        Some(Err(Error::Transport(_)))
    ));

    broker.set_down(false);
    expect_marker(&mut stream, &ClientEvent::Reconnected).await;
    assert!(client.is_connected());
    tokio::time::timeout(Duration::from_secs(1), client.wait_until_connected())
        .await
        .expect("connected");
    assert_eq!(broker.subscriber_count(), 1);
    assert_eq!(
        of_type(&broker.take_published(), SubResource::Status, action::RESYNC_REQUEST).len(),
        1
    );
    assert_eq!(client.metrics().reconnect_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_subscription_that_ends_by_itself_is_restarted() {
    let broker = FakeBroker::new();
    let client = agent(&broker, &Store::agent(), options());
    let mut stream = connected(client.subscribe()).await;
    for _ in 0..3 {
        broker.disconnect_all();
        expect_marker(&mut stream, &ClientEvent::Reconnected).await;
    }
    assert_eq!(broker.connect_count(), 4);
    assert_eq!(broker.subscriber_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_closes_the_connection_and_leaves_nothing_running() {
    let broker = FakeBroker::new();
    let client = agent(&broker, &Store::agent(), options());
    let stream = connected(client.subscribe()).await;
    assert_eq!(broker.subscriber_count(), 1);
    drop(stream);
    assert_eq!(broker.subscriber_count(), 0);
    assert!(!client.is_connected());
    // a new subscription may be opened once the old one is gone
    let _again = connected(client.subscribe()).await;
}

#[tokio::test(start_paused = true)]
async fn close_ends_the_stream_closes_the_connection_gracefully_and_never_reconnects() {
    let broker = FakeBroker::new();
    let client = agent(&broker, &Store::agent(), options());
    let mut stream = connected(client.subscribe()).await;
    assert!(client.is_connected());
    client.close().await;
    assert_eq!(broker.close_count(), 1, "the connection is closed, not just dropped");
    assert!(!client.is_connected());
    tokio::time::timeout(Duration::from_secs(1), client.wait_until_connected())
        .await
        .expect("waiting for a connection of a closed client returns");
    // the stream ends without an error for the lost connection
    assert!(next_within(&mut stream, Duration::from_secs(1)).await.is_none());
    drop(stream);
    assert_eq!(broker.subscriber_count(), 0);
    let status = ty(SubResource::Status, action::UPDATE_REQUEST);
    let err = client.publish(&status, &Mock::new("w1", "1")).await.unwrap_err();
    assert!(matches!(err, Error::NotConnected), "{err}");
    // a closed client stays closed: no reconnect, and a new subscription ends at once
    let mut again = client.subscribe();
    assert!(next_within(&mut again, Duration::from_secs(600)).await.is_none());
    assert_eq!(broker.connect_count(), 1);
    // closing twice is harmless
    client.close().await;
    assert_eq!(broker.close_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_also_closes_a_connection_whose_subscription_is_pending() {
    // Kafka: a consumer that joined its group while `subscribe` waited for the assignment must
    // leave it when the client closes, not linger until its session times out.
    let broker = FakeBroker::new();
    broker.hold_subscriptions(true);
    let client = agent(&broker, &Store::agent(), options());
    let mut stream = client.subscribe();
    assert!(next_within(&mut stream, Duration::from_secs(5)).await.is_none());
    assert_eq!(broker.connect_count(), 1, "connected, subscription pending");
    assert!(!client.is_connected());
    client.close().await;
    assert_eq!(
        broker.close_count(),
        1,
        "the pending connection is closed, not just dropped"
    );
    assert!(next_within(&mut stream, Duration::from_secs(1)).await.is_none());
    assert_eq!(broker.connect_count(), 1, "no reconnect after close");
}

#[tokio::test(start_paused = true)]
async fn a_second_subscription_on_one_client_is_refused() {
    let broker = FakeBroker::new();
    let client = agent(&broker, &Store::agent(), options());
    let _first = client.subscribe();
    let mut second = client.subscribe();
    assert!(matches!(second.next().await, Some(Err(Error::AlreadySubscribed))));
}

#[tokio::test(start_paused = true)]
async fn periodic_resync_recovers_events_the_broker_dropped_silently() {
    let broker = FakeBroker::new();
    let (src_store, agent_store) = (Store::source(), Store::agent());
    let opts = || options().resync_interval(Some(Duration::from_secs(300)));
    let src = source(&broker, &src_store, opts());
    let agt = agent(&broker, &agent_store, opts());
    let (mut s1, mut s2) = both_connected(&src, &agt).await;

    broker.set_drop_deliveries(true);
    let work = Mock {
        payload: "v1".into(),
        ..Mock::new("w1", "1")
    };
    src_store.put(work.clone());
    src.publish(&ty(SubResource::Spec, action::CREATE_REQUEST), &work)
        .await
        .unwrap();
    idle(&mut s2).await;
    assert!(agent_store.get_mock("w1").is_none(), "the broker dropped it");
    broker.set_drop_deliveries(false);

    // Drive both sides until the agent's periodic spec resync brings the work back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(400);
    let mut added = None;
    while added.is_none() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(item) = s2.next() => if let Ok(ClientEvent::Received(resource)) = item {
                added = Some((agent_store.spec_action("cluster1", &resource), resource));
            },
            Some(_) = s1.next() => {},
        }
    }
    let (action, resource) = added.expect("the periodic resync recovered the work");
    assert_eq!(action, Some(ResourceAction::Added));
    assert_eq!(resource.payload, "v1");
}

#[tokio::test(start_paused = true)]
async fn in_sync_a_periodic_resync_costs_one_request_and_no_answers() {
    let broker = FakeBroker::new();
    let (src_store, agent_store) = (Store::source(), Store::agent());
    for i in 0..50 {
        src_store.put(Mock {
            status: "s".into(),
            ..Mock::new(&format!("w{i}"), "1")
        });
        agent_store.put(Mock {
            status: "s".into(),
            ..Mock::new(&format!("w{i}"), "1")
        });
    }
    let opts = || {
        options()
            .resync_on_connect(false)
            .resync_interval(Some(Duration::from_secs(300)))
    };
    let src = source(&broker, &src_store, opts());
    let agt = agent(&broker, &agent_store, opts());
    let (mut s1, mut s2) = both_connected(&src, &agt).await;
    broker.take_published();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(301);
    while tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = s1.next() => {},
            _ = s2.next() => {},
            () = tokio::time::sleep_until(deadline) => {},
        }
    }
    idle(&mut s1).await;
    idle(&mut s2).await;
    let sent = broker.take_published();
    assert_eq!(
        sent.len(),
        2,
        "one status resync request and one spec resync request: {sent:?}"
    );
    assert_eq!(of_type(&sent, SubResource::Status, action::RESYNC_REQUEST).len(), 1);
    assert_eq!(of_type(&sent, SubResource::Spec, action::RESYNC_REQUEST).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_large_status_resync_request_is_split_into_bounded_events() {
    let broker = FakeBroker::new();
    let store = Store::source();
    for i in 0..5000 {
        store.put(Mock {
            status: "f".repeat(64),
            ..Mock::new(&format!("{i:036}"), "1")
        });
    }
    let (client, _stream) = quiet_source(&broker, &store).await;
    client.resync("").await.unwrap();
    let sent = broker.take_published();
    assert!(sent.len() > 1);
    let mut total = 0;
    for p in &sent {
        let d = data(&p.event);
        assert!(d.len() <= 256 * 1024);
        total += serde_json::from_slice::<Value>(&d).unwrap()["statusHashes"]
            .as_array()
            .unwrap()
            .len();
    }
    assert_eq!(total, 5000);
}

// ---- bad input --------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn malformed_events_are_dropped_counted_and_do_not_stop_the_subscription() {
    let broker = FakeBroker::new();
    let (client, mut stream) = quiet_agent(&broker, &Store::agent()).await;
    let from = Role::source("source1");
    let to = PublishTarget::Cluster("cluster1".into());
    let bad_type: Event = serde_json::from_value(serde_json::json!({
        "specversion": "1.0", "id": "1", "source": "source1", "type": "nonsense"
    }))
    .unwrap();
    broker.inject(&from, &to, bad_type);
    let no_version = EventBuilder::new("source1", ty(SubResource::Spec, action::CREATE_REQUEST))
        .cluster_name("cluster1")
        .resource_id("w")
        .build()
        .unwrap();
    broker.inject(&from, &to, no_version);
    let mut bad_resync = EventBuilder::new("source1", ty(SubResource::Status, action::RESYNC_REQUEST))
        .build()
        .unwrap();
    bad_resync.set_data("application/json", b"{not json".to_vec());
    broker.inject(&from, &to, bad_resync);
    let good = EventBuilder::new("source1", ty(SubResource::Spec, action::CREATE_REQUEST))
        .cluster_name("cluster1")
        .resource_id("w")
        .resource_version(1)
        .build()
        .unwrap();
    broker.inject(&from, &to, good);
    match next_within(&mut stream, Duration::from_secs(1)).await {
        Some(Ok(ClientEvent::Received(resource))) => assert_eq!(resource.uid, "w"),
        other => panic!("{other:?}"),
    }
    let m = client.metrics();
    assert_eq!(m.dropped_count("malformed_type"), 1);
    assert_eq!(m.dropped_count("bad_extension"), 1);
    assert_eq!(m.dropped_count("bad_resync_payload"), 1);
}

#[tokio::test(start_paused = true)]
async fn events_for_one_resource_are_handled_in_order() {
    let broker = FakeBroker::new();
    let store = Store::agent();
    let (_client, mut stream) = quiet_agent(&broker, &store).await;
    let from = Role::source("source1");
    let to = PublishTarget::Cluster("cluster1".into());
    for rv in 1..=50 {
        let e = EventBuilder::new("source1", ty(SubResource::Spec, action::UPDATE_REQUEST))
            .cluster_name("cluster1")
            .resource_id("w")
            .resource_version(rv)
            .build()
            .unwrap();
        broker.inject(&from, &to, e);
    }
    for rv in 1..=50 {
        match next_within(&mut stream, Duration::from_secs(1)).await {
            Some(Ok(ClientEvent::Received(resource))) => {
                assert_eq!(resource.rv, rv.to_string());
                assert_eq!(
                    store.spec_action("cluster1", &resource),
                    Some(if rv == 1 {
                        ResourceAction::Added
                    } else {
                        ResourceAction::Modified
                    })
                );
                store.put(resource);
            }
            other => panic!("{rv}: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_side_that_subscribed_first_gets_the_other_sides_data_without_waiting() {
    let broker = FakeBroker::new();
    let (src_store, agent_store) = (Store::source(), Store::agent());
    src_store.put(Mock {
        payload: "spec".into(),
        ..Mock::new("w1", "1")
    });
    let opts = || {
        options()
            .resync_interval(None)
            .answer_resync_window(Some(Duration::from_secs(60)))
    };
    // The agent comes first: its spec resync request reaches no source.
    let agt = agent(&broker, &agent_store, opts());
    let mut s2 = connected(agt.subscribe()).await;
    let src = source(&broker, &src_store, opts());
    let mut s1 = connected(src.subscribe()).await;
    // The source's status resync request makes the agent repeat its spec resync request once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut got = None;
    while got.is_none() && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(Ok(ClientEvent::Received(resource))) = s2.next() => got = Some((agent_store.spec_action("cluster1", &resource), resource)),
            _ = s1.next() => {},
            () = tokio::time::sleep_until(deadline) => {},
        }
    }
    let (action, resource) = got.expect("the agent got the source's work without a periodic resync");
    assert_eq!(action, Some(ResourceAction::Added));
    assert_eq!(resource.payload, "spec");
    // ... and the exchange stops: within the window each side answers a peer only once.
    idle(&mut s1).await;
    idle(&mut s2).await;
    let resyncs = broker
        .published()
        .iter()
        .filter(|p| p.event.ty().ends_with("resync_request"))
        .count();
    assert!(resyncs <= 4, "{resyncs} resync requests");
}

/// The names and fields of the spans opened while it is the thread's subscriber.
#[derive(Clone, Default)]
struct SpanLog(std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanLog {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let mut fields = Fields(String::new());
        attrs.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((attrs.metadata().name().to_owned(), fields.0));
    }
}

/// Every received event, and the answer to a resync request, runs in a span naming its source,
/// cluster, resource and type; the client's own resync request in one naming the client.
#[tokio::test(flavor = "current_thread")]
async fn received_events_and_resyncs_run_in_spans_with_their_identity() {
    use tracing_subscriber::layer::SubscriberExt;
    let log = SpanLog::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(log.clone()));
    let broker = FakeBroker::new();
    let store = Store::agent();
    let client = agent(&broker, &store, options());
    let mut stream = connected(client.subscribe()).await;
    let request = EventBuilder::new("source1", ty(SubResource::Status, action::RESYNC_REQUEST))
        .cluster_name("cluster1")
        .build()
        .unwrap();
    broker.inject(&Role::source("source1"), &PublishTarget::AllClusters, request);
    idle(&mut stream).await;
    let spans = log.0.lock().unwrap().clone();
    let has = |name: &str, fields: &[&str]| {
        spans
            .iter()
            .any(|(n, f)| n == name && fields.iter().all(|want| f.contains(want)))
    };
    let resync_type = format!("event_type={}", ty(SubResource::Status, action::RESYNC_REQUEST));
    assert!(
        has(
            "cloudevent",
            &["source=source1", "cluster=cluster1", "resource_id= ", &resync_type]
        ),
        "{spans:?}"
    );
    assert!(has("resync_request", &["client="]), "{spans:?}");
}

// ---- ordering of resync answers and publishes -------------------------------------------------

/// A resync answer waits while a publish turn is held, and then lists what the turn published:
/// it can neither be overtaken by nor overtake a change (the old spec of a work deleted
/// meanwhile, arriving after the deletion, would re-create it at the agent).
#[tokio::test(start_paused = true)]
async fn a_resync_answer_waits_for_the_publish_turn_and_lists_what_it_published() {
    let broker = FakeBroker::new();
    let src_store = Store::source();
    src_store.put(Mock::new("w1", "1"));
    let src = source(&broker, &src_store, options().resync_on_connect(false));
    let mut src_stream = connected(src.subscribe()).await;
    broker.take_published();
    // the source reads its subscription (and so the agent's request) in the background
    let reader = tokio::spawn(async move { while src_stream.next().await.is_some() {} });

    let turn = src.turn().await;
    // the agent, holding version 1, connects and asks for newer specs: the source's answer
    // waits for the turn
    let agt_store = Store::agent();
    agt_store.put(Mock::new("w1", "1"));
    let agt = agent(&broker, &agt_store, options());
    let _agt_stream = connected(agt.subscribe()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = broker.published();
    assert_eq!(of_type(&sent, SubResource::Spec, action::RESYNC_REQUEST).len(), 1);
    assert!(
        of_type(&sent, SubResource::Spec, action::RESYNC_RESPONSE).is_empty(),
        "the answer was sent while the turn was held"
    );

    let deleting = Mock {
        deleting: Some(Utc::now()),
        ..Mock::new("w1", "2")
    };
    src_store.put(deleting.clone());
    src.publish_in_turn(&turn, &ty(SubResource::Spec, action::DELETE_REQUEST), &deleting)
        .await
        .unwrap();
    drop(turn);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let specs: Vec<Published> = broker
        .take_published()
        .into_iter()
        .filter(|p| p.event.ty().contains(".spec.") && !p.event.ty().ends_with("resync_request"))
        .collect();
    let kinds: Vec<String> = specs
        .iter()
        .map(|p| p.event.ty().rsplit('.').next().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["delete_request", "resync_response"], "{specs:#?}");
    let answer = &specs[1].event;
    assert_eq!(answer.resource_version().unwrap(), 2);
    assert!(
        answer.deletion_timestamp().unwrap().is_some(),
        "the answer lists the work as the turn left it: deleting"
    );

    // a turn of another client is refused
    let other = source(&broker, &Store::source(), options().resync_on_connect(false));
    let foreign = other.turn().await;
    let err = src
        .publish_in_turn(
            &foreign,
            &ty(SubResource::Spec, action::UPDATE_REQUEST),
            &Mock::new("w2", "1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ForeignTurn), "{err:?}");
    reader.abort();
}
