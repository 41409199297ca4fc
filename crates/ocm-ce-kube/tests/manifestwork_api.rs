//! `ocm_ce_work::ManifestWork` through the upstream ManifestWork CRD (open-cluster-management.io/api
//! v0.15.0, installed by `scripts/test-env.sh`) with `kube::Api<ManifestWork>`: create, get,
//! list, watch and a status patch round-trip, checked against what was sent.

#![allow(clippy::unwrap_used)]

mod support;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use ocm_ce_work::api::{format_time, parse_time};
use ocm_ce_work::{
    Condition, DeletePropagationPolicy, FeedbackValue, FieldValue, ManifestCondition, ManifestConfigOption,
    ManifestResourceMeta, ManifestWork, ManifestWorkStatus, ResourceIdentifier, ServerSideApplyConfig,
    StatusFeedbackResult, UpdateStrategy, UpdateStrategyType, ValueType,
};
use serde_json::json;
use support::{
    WAIT, configmap, create_namespace, json_path_rule, manifest, orphaning_configmap, unique, well_known_status_rule,
};

fn work(ns: &str) -> ManifestWork {
    let mut w = ManifestWork::new(
        ns,
        "work1",
        vec![
            configmap("default", "cm1", json!({"k": "<v>"})),
            manifest(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": 1}}),
            ),
        ],
    );
    w.metadata.labels = Some([("app".to_owned(), "demo".to_owned())].into());
    w.spec.delete_option = Some(orphaning_configmap("default", "cm1"));
    w.spec.manifest_configs = vec![ManifestConfigOption {
        resource_identifier: ResourceIdentifier {
            group: "apps".into(),
            resource: "deployments".into(),
            name: "web".into(),
            namespace: "default".into(),
        },
        feedback_rules: vec![
            well_known_status_rule(),
            json_path_rule("ready", ".status.readyReplicas"),
        ],
        update_strategy: Some(UpdateStrategy {
            type_: UpdateStrategyType::ServerSideApply,
            server_side_apply: Some(ServerSideApplyConfig {
                force: true,
                field_manager: "work-agent-test".into(),
            }),
        }),
    }];
    w
}

fn condition(type_: &str, status: &str, reason: &str, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        observed_generation: generation,
        last_transition_time: parse_time("2026-01-02T03:04:05Z").unwrap(),
        reason: reason.into(),
        message: format!("{type_} is {status}"),
    }
}

fn status() -> ManifestWorkStatus {
    ManifestWorkStatus {
        conditions: vec![
            condition("Applied", "True", "AppliedManifestWorkComplete", Some(1)),
            condition("Available", "Unknown", "ResourcesStatusUnknown", Some(1)),
        ],
        resource_status: ocm_ce_work::ManifestResourceStatus {
            manifests: vec![
                ManifestCondition {
                    resource_meta: ManifestResourceMeta {
                        ordinal: 1,
                        group: "apps".into(),
                        version: "v1".into(),
                        kind: "Deployment".into(),
                        resource: "deployments".into(),
                        name: "web".into(),
                        namespace: "default".into(),
                    },
                    status_feedback: StatusFeedbackResult {
                        values: vec![
                            FeedbackValue {
                                name: "ready".into(),
                                field_value: FieldValue {
                                    type_: ValueType::Integer,
                                    integer: Some(1),
                                    ..FieldValue::default()
                                },
                            },
                            FeedbackValue {
                                name: "phase".into(),
                                field_value: FieldValue {
                                    type_: ValueType::String,
                                    string: Some("Running".into()),
                                    ..FieldValue::default()
                                },
                            },
                        ],
                    },
                    conditions: Some(vec![condition("Applied", "True", "AppliedManifestComplete", None)]),
                },
                // Go's nil conditions (written `null`): the schema does not allow null, the server
                // drops the field, and it reads back as nil.
                ManifestCondition {
                    resource_meta: ManifestResourceMeta {
                        ordinal: 0,
                        version: "v1".into(),
                        kind: "ConfigMap".into(),
                        resource: "configmaps".into(),
                        name: "cm1".into(),
                        namespace: "default".into(),
                        ..ManifestResourceMeta::default()
                    },
                    status_feedback: StatusFeedbackResult::default(),
                    conditions: None,
                },
            ],
        },
    }
}

/// The spec with every manifest as its JSON value: the API server keeps the objects, not their
/// bytes (it writes keys in its own order).
fn semantic(w: &ManifestWork) -> (serde_json::Value, Vec<serde_json::Value>) {
    let mut spec = w.spec.clone();
    let manifests = std::mem::take(&mut spec.workload.manifests);
    (
        serde_json::to_value(&spec).unwrap(),
        manifests.iter().map(|m| m.to_value().unwrap()).collect(),
    )
}

/// The ManifestWork API of a new namespace, and the namespace; `None` (the test skips) without
/// the test API server.
async fn works_in_a_new_namespace() -> Option<(Api<ManifestWork>, String)> {
    let kube = support::kube().await?;
    let ns = unique("mw");
    create_namespace(&kube, &ns).await;
    Some((Api::namespaced(kube, &ns), ns))
}

#[tokio::test]
async fn a_manifest_work_round_trips_through_the_upstream_crd() {
    let Some((api, ns)) = works_in_a_new_namespace().await else {
        return;
    };
    let sent = work(&ns);

    let created = api.create(&PostParams::default(), &sent).await.unwrap();
    assert!(!created.uid_str().is_empty());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(semantic(&created), semantic(&sent), "the spec is stored as sent");
    assert_eq!(created.label("app"), Some("demo"));
    assert_eq!(created.types.as_ref().unwrap().kind, "ManifestWork");

    let got = api.get("work1").await.unwrap();
    assert_eq!(semantic(&got), semantic(&sent));
    assert_eq!(got.resource_version_str(), created.resource_version_str());
    let listed = api.list(&ListParams::default().labels("app=demo")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].uid_str(), created.uid_str());
    assert!(
        api.list(&ListParams::default().labels("app=other"))
            .await
            .unwrap()
            .items
            .is_empty(),
        "the selector is applied by the server"
    );

    // Watch from the created version; the status patch arrives as a modification.
    let mut events = api
        .watch(&WatchParams::default().timeout(20), created.resource_version_str())
        .await
        .unwrap()
        .boxed();
    let patched = api
        .patch_status(
            "work1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status()})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status, status(), "the status subresource keeps every field");
    assert_eq!(
        semantic(&patched),
        semantic(&sent),
        "a status patch leaves the spec alone"
    );
    assert_eq!(patched.metadata.generation, Some(1), "nor does it bump the generation");
    let modified = tokio::time::timeout(WAIT, async {
        loop {
            match events.try_next().await.unwrap() {
                Some(WatchEvent::Modified(w)) => return w,
                Some(_) => {}
                None => panic!("the watch ended without the modification"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(modified.status, status());
    assert_eq!(
        format_time(&modified.status.conditions[0].last_transition_time).as_deref(),
        Some("2026-01-02T03:04:05Z")
    );
    // What Go writes for the status equals what we sent (field order, omissions).
    assert_eq!(
        ocm_ce_core::go_json::to_vec(&modified.status).unwrap(),
        ocm_ce_core::go_json::to_vec(&status()).unwrap()
    );

    // A spec change through the main resource bumps the generation; the status stays.
    let updated = api
        .patch(
            "work1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"deleteOption": {"propagationPolicy": "Orphan", "selectivelyOrphans": null}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(
        updated.spec.delete_option.as_ref().unwrap().propagation_policy,
        DeletePropagationPolicy::Orphan
    );
    assert_eq!(updated.status, status());

    api.delete("work1", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("work1").await.unwrap().is_none());
}

#[tokio::test]
async fn the_crd_refuses_what_the_upstream_schema_forbids() {
    let Some((api, ns)) = works_in_a_new_namespace().await else {
        return;
    };
    let mut bad = work(&ns);
    bad.spec.manifest_configs[0]
        .update_strategy
        .as_mut()
        .unwrap()
        .server_side_apply = Some(ServerSideApplyConfig {
        force: false,
        field_manager: "not-a-work-agent".into(),
    });
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("{err}") };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(status.message.contains("fieldManager"), "{}", status.message);
}
