//! The real Kafka broker stopped and restarted under a running source and agent: both sides
//! notice, reconnect, resubscribe and resync, and converge with nothing lost. A test binary of
//! its own, because stopping the broker would disturb other tests running at the same time
//! (cargo runs test binaries one after another). Needs `OCM_CE_TEST_KAFKA`,
//! `OCM_CE_TEST_ENV_SCRIPT` and `OCM_CE_TEST_STATE_DIR`.

#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used)]

mod kafka_support;
mod mock;

use std::time::Duration;

use kafka_support::{
    Driven, Got, Pair, broker, config, connected_pair, pair_with_topics, put_and_send_spec, send_status, with_status,
    work,
};
use mock::Mock;
use ocm_ce_client::ClientEvent;
use ocm_ce_core::ResourceAction;
use ocm_ce_core::event_type::action;

const T: Duration = Duration::from_secs(90);

/// Runs `test-env.sh <command> <state dir>`.
async fn test_env(command: &'static str) {
    let script = std::env::var("OCM_CE_TEST_ENV_SCRIPT").expect("OCM_CE_TEST_ENV_SCRIPT");
    let state = std::env::var("OCM_CE_TEST_STATE_DIR").expect("OCM_CE_TEST_STATE_DIR");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script)
            .arg(command)
            .arg(state)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "test-env.sh {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn lost(d: &mut Driven, who: &str) {
    d.wait_for(&format!("{who} loses its connection"), T, Result::is_err)
        .await
        .unwrap_err();
}

async fn reconnected(d: &mut Driven, who: &str) {
    let _ = d
        .wait_for(&format!("{who} reconnects"), T, |e| {
            matches!(e, Ok(Got::Marker(ClientEvent::Reconnected)))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_reconverge_with_nothing_lost_after_the_broker_restarts() {
    let Some(b) = broker() else { return };
    let (src, cluster) = pair_with_topics(&b).await;
    let Pair {
        src_store,
        agt_store,
        src: source_client,
        agt: agent_client,
        mut s,
        mut a,
    } = connected_pair(config(&b), &src, &cluster, T).await;

    // mid-stream: one work applied and reported
    let w1 = work("w1", "1", &src, &cluster, "v1");
    put_and_send_spec(&source_client, &src_store, action::CREATE_REQUEST, &w1).await;
    let got = a.resource("w1", ResourceAction::Added, T).await;
    let reported = with_status(&got, "Created");
    agt_store.put(reported.clone());
    send_status(&agent_client, action::UPDATE_REQUEST, &reported).await;
    s.resource_where("w1", ResourceAction::StatusModified, T, |m| m.status == "Created")
        .await;

    test_env("kafka-stop").await;
    lost(&mut s, "the source").await;
    lost(&mut a, "the agent").await;

    // While the broker is down both sides change state; nothing can be sent.
    let w1v2 = Mock {
        status: "Created".into(),
        ..work("w1", "2", &src, &cluster, "v2")
    };
    src_store.put(w1v2.clone());
    let w2 = work("w2", "1", &src, &cluster, "new");
    src_store.put(w2.clone());
    let create = kafka_support::ty(ocm_ce_core::SubResource::Spec, action::CREATE_REQUEST);
    let err = source_client.publish(&create, &w2).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let mut applied = agt_store.get_mock("w1").unwrap();
    applied.status = "Applied".into();
    agt_store.put(applied);

    test_env("kafka-start").await;
    reconnected(&mut s, "the source").await;
    reconnected(&mut a, "the agent").await;

    // The resyncs after the reconnect bring both sides together. The events of one resync
    // answer are sent concurrently, so w1's update and w2 may come in either order.
    let (mut w1_v2, mut w2_added) = (None, false);
    while w1_v2.is_none() || !w2_added {
        let seen = a
            .wait_for("w1 at version 2 and w2", T, |s| {
                matches!(s, Ok(Got::Resource { action, resource })
                    if (*action == ResourceAction::Modified && resource.uid == "w1" && resource.rv == "2")
                        || (*action == ResourceAction::Added && resource.uid == "w2"))
            })
            .await;
        match seen {
            Ok(Got::Resource { resource, .. }) if resource.uid == "w1" => w1_v2 = Some(resource),
            Ok(Got::Resource { .. }) => w2_added = true,
            _ => unreachable!(),
        }
    }
    assert_eq!(w1_v2.unwrap().payload, "v2");
    s.resource_where("w1", ResourceAction::StatusModified, T, |m| m.status == "Applied")
        .await;
    assert_eq!(src_store.get_mock("w1").unwrap().status, "Applied");
    assert_eq!(agt_store.get_mock("w1").unwrap().payload, "v2");
    assert!(agt_store.get_mock("w2").is_some());

    // and the connections carry new events again
    let w3 = work("w3", "1", &src, &cluster, "after");
    put_and_send_spec(&source_client, &src_store, action::CREATE_REQUEST, &w3).await;
    a.resource("w3", ResourceAction::Added, T).await;
    s.stop().await;
    a.stop().await;
}
