//! Source and agent work clients end to end over the in-memory broker: Go's integration
//! scenarios "ManifestWork Clients Test - Watch Only / Informer based / Resync", the deletion
//! flow, the delete-vs-patch race (upstream sdk-go#232), and a source restart that resumes from
//! its own list of works.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ocm_ce_client::testing::FakeBroker;
use ocm_ce_work::api::{RESOURCE_VERSION_ANNOTATION, SOURCE_FINALIZER};
use ocm_ce_work::store::WatchEvent;
use ocm_ce_work::{Manifest, ManifestWork, PatchType};
use support::clients::{
    Agent, Source, add_cleanup_finalizer, agent_applies, applied_status, connected_source, options, start_agent,
    start_source,
};

const WAIT: Duration = Duration::from_secs(10);

fn configmap(name: &str, data: &str) -> Manifest {
    Manifest::from_raw(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default"}},"data":{{"k":"{data}"}}}}"#
    ))
    .unwrap()
}

fn work(name: &str, versioned: bool) -> ManifestWork {
    let mut w = ManifestWork::new("cluster1", name, vec![configmap("cm1", "v1")]);
    if versioned {
        w.metadata.annotations = Some([(RESOURCE_VERSION_ANNOTATION.to_owned(), "1".to_owned())].into());
    }
    w
}

async fn eventually(what: &str, check: impl FnMut() -> bool) {
    support::clients::eventually(WAIT, what, check).await;
}

/// Source `source1` and the agent of `cluster1`.
fn start(broker: &FakeBroker, initial: Vec<ManifestWork>) -> (Source, Agent) {
    (
        start_source(broker, initial),
        start_agent(broker, "cluster1", options()),
    )
}

fn reason_of(w: &ManifestWork) -> Option<String> {
    w.status.conditions.first().map(|c| c.reason.clone())
}

/// Once both clients are connected, `work` is created and the agent has it. Returns its UID.
async fn created_on_agent(source: &Source, agent: &Agent, work: ManifestWork) -> String {
    source.wait_until_connected().await;
    agent.wait_until_connected().await;
    let namespace = work.metadata.namespace.clone().unwrap();
    let created = source.create(&namespace, work).await.unwrap();
    let uid = created.uid_str().to_owned();
    eventually("the agent to get the work", || agent.get(&uid).is_ok()).await;
    uid
}

/// Waits until the source has the status `reason` for work `name` of `cluster1`.
async fn source_sees_reason(source: &Source, name: &str, reason: &str) {
    eventually(&format!("the source to see {reason} on {name}"), || {
        source
            .get("cluster1", name)
            .is_ok_and(|w| reason_of(&w).as_deref() == Some(reason))
    })
    .await;
}

/// Waits until the agent has work `uid` marked deleting.
async fn agent_sees_deletion(agent: &Agent, uid: &str) {
    eventually("the agent to see the deletion", || {
        agent.get(uid).is_ok_and(|w| w.is_deleting())
    })
    .await;
}

/// Work `w` (version 1) is created, kept by a finalizer of the agent, and deleted by the
/// source; returns its UID once the agent holds it deleting.
async fn deleting_on_agent(source: &Source, agent: &Agent) -> String {
    let uid = created_on_agent(source, agent, work("w", true)).await;
    agent
        .set_finalizers(&uid, vec!["test/cleanup".to_owned()])
        .await
        .unwrap();
    source.delete("cluster1", "w").await.unwrap();
    agent_sees_deletion(agent, &uid).await;
    uid
}

/// Removes the agent's finalizers of work `uid`, as the OCM work agent does once it cleaned up.
async fn remove_finalizers(agent: &Agent, uid: &str) {
    agent
        .patch(uid, PatchType::Merge, br#"{"metadata":{"finalizers":null}}"#)
        .await
        .unwrap();
}

/// Sets the resource version of work `name` of `cluster1` to 2 (a spec update).
async fn bump_to_version_2(source: &Source, name: &str) {
    source
        .patch(
            "cluster1",
            name,
            PatchType::Merge,
            br#"{"metadata":{"annotations":{"cloudevents.open-cluster-management.io/resourceversion":"2"}}}"#,
        )
        .await
        .unwrap();
}

/// Takes the broker down and waits until `connected` (a client's `is_connected`) turns false.
async fn broker_down(broker: &FakeBroker, who: &str, connected: impl Fn() -> bool) {
    broker.set_down(true);
    broker.disconnect_all();
    eventually(&format!("{who} to notice"), || !connected()).await;
}

/// Once both clients are connected, `work1` is created, applied by the agent (reason
/// `Created`) and the source has that status. Returns its UID.
async fn created_and_applied(source: &Source, agent: &Agent, versioned: bool) -> String {
    let uid = created_on_agent(source, agent, work("work1", versioned)).await;
    agent_applies(agent, &uid, "Created").await;
    source_sees_reason(source, "work1", "Created").await;
    uid
}

async fn lifecycle(versioned: bool) {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    let mut watch = source.watch();
    let uid = created_and_applied(&source, &agent, versioned).await;
    assert!(matches!(watch.next().await, Some(WatchEvent::Added(_))));
    assert!(
        source
            .get("cluster1", "work1")
            .unwrap()
            .finalizers()
            .contains(&SOURCE_FINALIZER.to_owned())
    );

    let bump = if versioned {
        r#"{"metadata":{"annotations":{"cloudevents.open-cluster-management.io/resourceversion":"2"}},"spec":{"workload":{"manifests":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","namespace":"default"},"data":{"k":"v2"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm2","namespace":"default"}}]}}}"#
    } else {
        r#"{"spec":{"workload":{"manifests":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","namespace":"default"},"data":{"k":"v2"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm2","namespace":"default"}}]}}}"#
    };
    source
        .patch("cluster1", "work1", PatchType::Merge, bump.as_bytes())
        .await
        .unwrap();
    eventually("the agent to get two manifests", || {
        agent.get(&uid).is_ok_and(|w| w.spec.workload.manifests.len() == 2)
    })
    .await;
    agent
        .patch_status(&uid, PatchType::Merge, applied_status("Updated").as_bytes())
        .await
        .unwrap();
    source_sees_reason(&source, "work1", "Updated").await;

    source.delete("cluster1", "work1").await.unwrap();
    assert!(
        source.get("cluster1", "work1").unwrap().is_deleting(),
        "kept until the agent reports Deleted"
    );
    agent_sees_deletion(&agent, &uid).await;
    remove_finalizers(&agent, &uid).await;
    eventually("the agent to remove it after reporting Deleted", || {
        agent.get(&uid).is_err()
    })
    .await;
    eventually("the source to remove the work", || {
        source.get("cluster1", "work1").is_err()
    })
    .await;
    loop {
        match tokio::time::timeout(WAIT, watch.next()).await.unwrap() {
            Some(WatchEvent::Deleted(w)) => {
                assert_eq!(w.name(), "work1");
                break;
            }
            Some(_) => {}
            None => panic!("watch ended"),
        }
    }
    assert_eq!(agent.metrics().deletion_acks(), 1);
}

/// The typed forms of `patch` and `patch_status` (nothing encoded or decoded): the same kept
/// fields and the same reports.
#[tokio::test]
async fn typed_spec_and_status_updates_travel_like_patches() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    let uid = created_and_applied(&source, &agent, true).await;

    // A spec of another namespace is refused; the work's own is replaced, and the UID,
    // finalizers and status stay.
    let mut elsewhere = work("work1", true);
    elsewhere.metadata.namespace = Some("cluster2".to_owned());
    assert!(source.update("cluster1", elsewhere).await.is_err());
    let mut v2 = ManifestWork::new(
        "cluster1",
        "work1",
        vec![configmap("cm1", "v2"), configmap("cm2", "v2")],
    );
    v2.metadata.annotations = Some([(RESOURCE_VERSION_ANNOTATION.to_owned(), "2".to_owned())].into());
    let updated = source.update("cluster1", v2).await.unwrap();
    assert_eq!(updated.uid_str(), uid);
    assert_eq!(updated.resource_version_str(), "2");
    assert_eq!(reason_of(&updated).as_deref(), Some("Created"));
    assert!(updated.finalizers().contains(&SOURCE_FINALIZER.to_owned()));
    eventually("the agent to get version 2", || {
        agent
            .get(&uid)
            .is_ok_and(|w| w.spec.workload.manifests.len() == 2 && w.resource_version_str() == "2")
    })
    .await;

    // A status is stored as given and reported.
    let read = agent.get(&uid).unwrap();
    let mut status = read.status.clone();
    status.conditions[0].reason = "Updated".to_owned();
    let reported = agent.update_status(&uid, status.clone()).await.unwrap();
    assert_eq!(reported.status, status);
    source_sees_reason(&source, "work1", "Updated").await;
}

#[tokio::test]
async fn a_versioned_work_goes_through_create_status_update_and_delete() {
    lifecycle(true).await;
}

#[tokio::test]
async fn an_unversioned_work_goes_through_create_status_update_and_delete() {
    lifecycle(false).await;
}

#[tokio::test]
async fn without_an_agent_a_work_without_finalizers_is_deleted_at_once() {
    let broker = FakeBroker::new();
    let source = connected_source(&broker, vec![], WAIT).await;
    source.create("cluster1", work("w", true)).await.unwrap();
    let two = r#"{"metadata":{"annotations":{"cloudevents.open-cluster-management.io/resourceversion":"2"}},"spec":{"workload":{"manifests":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}]}}}"#;
    source
        .patch("cluster1", "w", PatchType::Merge, two.as_bytes())
        .await
        .unwrap();
    assert_eq!(source.get("cluster1", "w").unwrap().spec.workload.manifests.len(), 2);
    source.delete("cluster1", "w").await.unwrap();
    eventually("the deletion to be sent and the work removed", || {
        source.get("cluster1", "w").is_err_and(|e| e.is_not_found())
    })
    .await;
}

#[tokio::test]
async fn create_and_patch_enforce_gos_rules() {
    let broker = FakeBroker::new();
    let source = connected_source(&broker, vec![], WAIT).await;
    source.create("cluster1", work("w", true)).await.unwrap();
    assert!(
        source
            .create("cluster1", work("w", true))
            .await
            .unwrap_err()
            .is_already_exists()
    );
    let mut other = work("x", true);
    other.metadata.namespace = Some("cluster2".into());
    assert!(source.create("cluster1", other).await.unwrap_err().is_invalid());
    assert!(
        source
            .create("cluster1", work("Bad_Name", true))
            .await
            .unwrap_err()
            .is_invalid()
    );
    assert!(
        source
            .patch("cluster1", "nope", PatchType::Merge, b"{}")
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Two names whose UUIDs collide (the `-` separator is ambiguous, as in Go).
    source.create("prod-east", work_in("prod-east", "app")).await.unwrap();
    let err = source.create("prod", work_in("prod", "east-app")).await.unwrap_err();
    assert!(matches!(err, ocm_ce_work::Error::IdCollision { .. }), "{err}");
    assert!(err.to_string().contains("prod-east/app"), "{err}");
    assert!(source.get("prod", "east-app").is_err());
}

fn work_in(namespace: &str, name: &str) -> ManifestWork {
    let mut w = work(name, true);
    w.metadata.namespace = Some(namespace.to_owned());
    w
}

#[tokio::test]
async fn specs_made_while_the_broker_is_away_are_stored_and_sent_once_it_is_back() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    source.wait_until_connected().await;
    agent.wait_until_connected().await;
    let kept = source.create("cluster1", work("kept", true)).await.unwrap();
    let gone = source.create("cluster1", work("gone", true)).await.unwrap();
    eventually("the agent to get both", || agent.list(&Default::default()).len() == 2).await;

    broker_down(&broker, "the source", || source.is_connected()).await;
    let new = source.create("cluster1", work("new", true)).await.unwrap();
    bump_to_version_2(&source, "kept").await;
    source.delete("cluster1", "gone").await.unwrap();
    assert!(
        source.get("cluster1", "new").is_ok(),
        "the spec is state: stored at once"
    );
    assert_eq!(source.unsent(), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(source.unsent(), 3, "nothing is given up while the broker is away");

    broker.set_down(false);
    eventually("the agent to get the new work", || agent.get(new.uid_str()).is_ok()).await;
    eventually("the agent to get the update", || {
        agent.get(kept.uid_str()).is_ok_and(|w| w.resource_version_str() == "2")
    })
    .await;
    eventually("the agent to get the deletion", || {
        agent.get(gone.uid_str()).is_err() || agent.get(gone.uid_str()).is_ok_and(|w| w.is_deleting())
    })
    .await;
    eventually("everything acknowledged", || source.unsent() == 0).await;
}

#[tokio::test]
async fn a_status_reported_while_the_broker_is_away_reaches_the_source_once_it_is_back() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    let uid = created_on_agent(&source, &agent, work("w", true)).await;

    broker_down(&broker, "the agent", || agent.is_connected()).await;
    // Applying succeeds although nothing can be sent: the status is the agent's state.
    agent_applies(&agent, &uid, "AppliedWhileAway").await;
    assert_eq!(
        reason_of(&agent.get(&uid).unwrap()).as_deref(),
        Some("AppliedWhileAway")
    );
    assert_eq!(agent.unsent(), 1);

    broker.set_down(false);
    source_sees_reason(&source, "w", "AppliedWhileAway").await;
    eventually("the agent's outbox to empty", || agent.unsent() == 0).await;
}

/// The event type of an agent's `Deleted` status (`manifestbundles`, `delete_request`).
fn deleted_status_type() -> ocm_ce_core::EventType {
    "io.open-cluster-management.works.v1alpha1.manifestbundles.status.delete_request"
        .parse()
        .unwrap()
}

/// Publishes `gone` as `agent`'s `Deleted` status and waits until the source drops it for
/// `reason`.
async fn send_deleted_until_dropped(agent: &Agent, source: &Source, gone: &ManifestWork, reason: &str) {
    agent.generic().publish(&deleted_status_type(), gone).await.unwrap();
    eventually(&format!("the source to drop the Deleted status ({reason})"), || {
        source.metrics().statuses_dropped(reason) >= 1
    })
    .await;
}

#[tokio::test]
async fn an_agent_of_another_cluster_cannot_touch_a_work() {
    let broker = FakeBroker::new();
    let source = start_source(&broker, vec![]);
    let payroll = start_agent(&broker, "payroll", options());
    let uid = created_on_agent(&source, &payroll, work_in("payroll", "salaries")).await;

    // A rogue agent publishes a `Deleted` status carrying payroll's work id.
    let rogue = start_agent(&broker, "rogue", options());
    rogue.wait_until_connected().await;
    let mut forged = (*payroll.get(&uid).unwrap()).clone();
    forged.metadata.namespace = Some("rogue".into());
    forged.metadata.finalizers = None;
    forged.metadata.deletion_timestamp = Some(ocm_ce_work::api::time_from_chrono(chrono::Utc::now()));
    let ack = ocm_ce_work::client::AgentCodecs::bundles();
    let mut gone = forged.clone();
    ocm_ce_work::conditions::mark_manifests_deleted(&mut gone, chrono::Utc::now());
    let event = ocm_ce_core::Codec::encode(&ack, "rogue-agent", &deleted_status_type(), &gone).unwrap();
    assert_eq!(ocm_ce_core::EventExt::cluster_name(&event).unwrap(), "rogue");
    send_deleted_until_dropped(&rogue, &source, &gone, "wrong_cluster").await;
    let kept = source.get("payroll", "salaries").unwrap();
    assert!(!kept.is_deleting());
    assert_eq!(source.store().len(), 1);
}

#[tokio::test]
async fn an_old_deleted_status_delivered_again_does_not_remove_a_work_created_anew() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    let uid = deleting_on_agent(&source, &agent).await;
    // What the agent reports once it deleted the work, kept to be delivered again.
    let mut gone = (*agent.get(&uid).unwrap()).clone();
    gone.metadata.finalizers = None;
    ocm_ce_work::conditions::mark_manifests_deleted(&mut gone, chrono::Utc::now());
    remove_finalizers(&agent, &uid).await;
    eventually("the source to remove the work", || source.get("cluster1", "w").is_err()).await;
    eventually("the agent to remove the work", || agent.get(&uid).is_err()).await;

    // The same name again: the same UID.
    let again = created_on_agent(&source, &agent, work("w", true)).await;
    assert_eq!(again, uid);
    agent_applies(&agent, &uid, "Created").await;
    source_sees_reason(&source, "w", "Created").await;
    // The old `Deleted` arrives again (as a Kafka re-read or an MQTT redelivery would bring it).
    send_deleted_until_dropped(&agent, &source, &gone, "deleted_not_deleting").await;
    let kept = source.get("cluster1", "w").unwrap();
    assert!(!kept.is_deleting());
    assert_eq!(reason_of(&kept).as_deref(), Some("Created"));
    let held = agent.get(&uid);
    assert!(
        held.as_ref().is_ok_and(|w| !w.is_deleting()),
        "the agent keeps it too: {held:?}"
    );
}

#[tokio::test]
async fn a_work_created_anew_while_the_agent_still_deletes_the_old_one_follows_it() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    let uid = deleting_on_agent(&source, &agent).await;

    // The source restarts without its works and creates `w` again, at version 2, while the
    // agent still cleans up the old copy: the same UID.
    drop(source);
    let source = connected_source(&broker, vec![], WAIT).await;
    let mut anew = work("w", false);
    anew.spec.workload.manifests = vec![configmap("cm1", "v2")];
    anew.metadata.annotations = Some([(RESOURCE_VERSION_ANNOTATION.to_owned(), "2".to_owned())].into());
    source.create("cluster1", anew).await.unwrap();
    eventually("the agent to hold the new spec back", || {
        agent.metrics().specs_deferred() == 1
    })
    .await;
    let old = agent.get(&uid).unwrap();
    assert!(old.is_deleting(), "the old copy stays as it was: {old:?}");
    assert_eq!(old.resource_version_str(), "1");

    // The old copy is cleaned up and acknowledged `Deleted`; the new work follows it.
    remove_finalizers(&agent, &uid).await;
    eventually("the agent to take the new work", || {
        agent
            .get(&uid)
            .is_ok_and(|w| !w.is_deleting() && w.resource_version_str() == "2")
    })
    .await;
    assert_eq!(agent.metrics().deletion_acks(), 1);
    let taken = agent.get(&uid).unwrap();
    assert_eq!(taken.spec.workload.manifests, vec![configmap("cm1", "v2")]);
    assert!(taken.status.conditions.is_empty(), "nothing of the old copy: {taken:?}");
    agent_applies(&agent, &uid, "Created").await;
    source_sees_reason(&source, "w", "Created").await;
    // The old copy's `Deleted` did not remove the new work from the source.
    assert!(!source.get("cluster1", "w").unwrap().is_deleting());
}

#[tokio::test]
async fn a_status_that_arrives_before_its_work_is_retried_not_lost() {
    let broker = FakeBroker::new();
    // The agent already holds the work and a status (e.g. the source restarted and lost it).
    let (source, agent) = start(&broker, vec![]);
    let uid = created_on_agent(&source, &agent, work("w", true)).await;
    drop(source);
    agent_applies(&agent, &uid, "Created").await;

    // A new source starts empty; the agent's status arrives first (answer to the resync),
    // then the source learns about the work (here: it is created again).
    let source = connected_source(&broker, vec![], WAIT).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    source.create("cluster1", work("w", true)).await.unwrap();
    // The retried status lands.
    source_sees_reason(&source, "w", "Created").await;
}

#[tokio::test]
async fn a_restarted_source_resumes_from_its_works_and_converges_by_resync() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    let uid = created_on_agent(&source, &agent, work("w", true)).await;
    let saved: Vec<ManifestWork> = source
        .list("", &Default::default())
        .iter()
        .map(|w| (**w).clone())
        .collect();
    drop(source);

    // While no source runs, the agent changes the status.
    agent_applies(&agent, &uid, "ChangedWhileAway").await;

    let restarted = start_source(&broker, saved);
    // The restarted source gets the status by resync.
    source_sees_reason(&restarted, "w", "ChangedWhileAway").await;
}

#[tokio::test]
async fn a_restarted_agent_gets_its_works_back_by_spec_resync() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    source.wait_until_connected().await;
    agent.wait_until_connected().await;
    for i in 0..5 {
        source.create("cluster1", work(&format!("w{i}"), true)).await.unwrap();
    }
    eventually("the agent to get all works", || {
        agent.list(&Default::default()).len() == 5
    })
    .await;
    drop(agent);
    bump_to_version_2(&source, "w0").await;
    source.delete("cluster1", "w1").await.unwrap();

    let agent = start_agent(&broker, "cluster1", options());
    eventually("the new agent to get four works back", || {
        agent.list(&Default::default()).len() == 4
    })
    .await;
    let w0 = source.get("cluster1", "w0").unwrap();
    assert_eq!(agent.get(w0.uid_str()).unwrap().resource_version_str(), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_racing_a_status_patch_is_never_lost() {
    for round in 0..50 {
        let broker = FakeBroker::new();
        // Every publish takes a moment, so the deletion lands while status patches are in flight.
        broker.set_publish_delay(Duration::from_millis(1));
        let (source, agent) = start(&broker, vec![]);
        let uid = created_on_agent(&source, &agent, work("w", true)).await;
        add_cleanup_finalizer(&agent, &uid).await;

        let patcher = {
            let agent = agent.clone();
            let uid = uid.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let status = applied_status(&format!("r{i}"));
                    // A conflict is fine (the spec moved on); losing the deletion is not.
                    let _ = agent.patch_status(&uid, PatchType::Merge, status.as_bytes()).await;
                    tokio::task::yield_now().await;
                }
            })
        };
        source.delete("cluster1", "w").await.unwrap();
        patcher.await.unwrap();
        agent_sees_deletion(&agent, &uid).await;
        let w = agent.get(&uid).unwrap();
        assert!(w.is_deleting(), "round {round}: a status patch erased the deletion");
    }
}

#[tokio::test]
async fn the_deleted_acknowledgement_is_retried_until_published() {
    let broker = FakeBroker::new();
    let (source, agent) = start(&broker, vec![]);
    let uid = created_on_agent(&source, &agent, work("w", true)).await;
    agent_applies(&agent, &uid, "Created").await;
    eventually("the source to see the status", || {
        source.get("cluster1", "w").is_ok_and(|w| !w.finalizers().is_empty())
    })
    .await;
    source.delete("cluster1", "w").await.unwrap();
    agent_sees_deletion(&agent, &uid).await;

    broker_down(&broker, "the agent", || agent.is_connected()).await;
    remove_finalizers(&agent, &uid).await;
    assert_eq!(agent.unsent(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(agent.get(&uid).is_ok(), "kept until the acknowledgement is out");
    broker.set_down(false);
    eventually("the source to remove the work", || source.get("cluster1", "w").is_err()).await;
    eventually("the agent to remove it", || agent.get(&uid).is_err()).await;
    assert_eq!(agent.unsent(), 0);
}

#[tokio::test]
async fn several_watchers_see_the_same_changes_and_none_blocks_the_client() {
    let broker = FakeBroker::new();
    let source = connected_source(&broker, vec![], WAIT).await;
    let (mut a, _never_read) = (source.watch(), source.watch());
    for i in 0..20 {
        source.create("cluster1", work(&format!("w{i}"), true)).await.unwrap();
    }
    for i in 0..20 {
        match a.next().await {
            Some(WatchEvent::Added(w)) => assert_eq!(w.name(), format!("w{i}")),
            other => panic!("{other:?}"),
        }
    }
    let _ = Arc::strong_count(&source.get("cluster1", "w0").unwrap());
}

/// The agent work client, which owns the store, decides what a received spec means (the
/// generic client only decodes it): new works are added, newer versions replace the spec,
/// older or equal versions are ignored (a stale copy, e.g. a resync answer overtaken by an
/// update), and a deletion marks the work deleting.
#[tokio::test]
async fn the_agent_decides_what_a_received_spec_means_against_its_store() {
    use ocm_ce_client::{PublishTarget, Role};
    use ocm_ce_core::event_type::action;
    use ocm_ce_core::{Codec, EventType, SubResource};

    let broker = FakeBroker::new();
    let agent = start_agent(&broker, "cluster1", options().without_resync());
    agent.wait_until_connected().await;
    let codec = ocm_ce_work::SourceManifestBundleCodec::new();
    let send = |version: &str, data: &str, deleting: bool| {
        let mut w = ManifestWork::new("cluster1", "w1", vec![configmap("cm1", data)]);
        w.metadata.uid = Some("uid-w1".to_owned());
        w.metadata.resource_version = Some(version.to_owned());
        if deleting {
            w.metadata.deletion_timestamp = Some(ocm_ce_work::api::time_from_chrono(chrono::Utc::now()));
        }
        let ty = EventType::new(
            ocm_ce_work::payload::manifest_bundle_data_type(),
            SubResource::Spec,
            if deleting {
                action::DELETE_REQUEST
            } else {
                action::UPDATE_REQUEST
            },
        );
        let event = codec.encode("source1", &ty, &w).unwrap();
        broker.inject(
            &Role::source("source1"),
            &PublishTarget::Cluster("cluster1".into()),
            event,
        );
    };
    let data_of = |agent: &Agent| {
        agent
            .get("uid-w1")
            .ok()
            .map(|w| w.spec.workload.manifests[0].raw().contains("\"k\":\"v2\""))
    };

    send("2", "v2", false);
    eventually("the new work", || data_of(&agent) == Some(true)).await;
    assert_eq!(agent.metrics().specs_applied(), 1);
    // An older and an equal version change nothing; a newer one is taken.
    send("1", "v1", false);
    send("2", "v1", false);
    send("3", "v3", false);
    eventually("version 3", || {
        agent.get("uid-w1").is_ok_and(|w| w.resource_version_str() == "3")
    })
    .await;
    assert_eq!(agent.metrics().specs_applied(), 2, "the stale copies were not applied");
    assert!(
        agent.get("uid-w1").unwrap().spec.workload.manifests[0]
            .raw()
            .contains("v3")
    );
    // A deletion marks the work deleting; with finalizers of the agent's it stays until the
    // agent removes the last (typed `set_finalizers`; then it is acknowledged `Deleted` and
    // removed).
    let finalizers = |names: &[&str]| names.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>();
    let set = agent
        .set_finalizers("uid-w1", finalizers(&["test/cleanup", "test/other"]))
        .await
        .unwrap();
    assert_eq!(set.finalizers(), finalizers(&["test/cleanup", "test/other"]));
    assert_eq!(set.resource_version_str(), "3", "only the metadata changed");
    send("4", "v3", true);
    eventually("the deletion", || agent.get("uid-w1").is_ok_and(|w| w.is_deleting())).await;
    assert_eq!(agent.get("uid-w1").unwrap().resource_version_str(), "4");
    let left = agent
        .set_finalizers("uid-w1", finalizers(&["test/other"]))
        .await
        .unwrap();
    assert!(left.is_deleting(), "the deletion is kept");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(agent.get("uid-w1").is_ok(), "kept while a finalizer is left");
    agent.set_finalizers("uid-w1", Vec::new()).await.unwrap();
    eventually("the removal", || agent.get("uid-w1").is_err()).await;
    assert_eq!(agent.metrics().specs_dropped("bad_version"), 0);
}
