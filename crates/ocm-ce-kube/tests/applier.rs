//! The Kubernetes applier against a real API server (`OCM_CE_TEST_KUBECONFIG`; skipped when
//! unset): a source sends works through the in-memory broker, the agent applies them to the
//! cluster, and the source sees the status and the deletions. No controllers run next to the
//! API server, so the tests write the status a Deployment controller would, and finalize
//! deleted namespaces as the namespace controller would.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use ocm_ce_client::RateLimit;
use ocm_ce_kube::{AppliedManifestWork, DEFAULT_FIELD_MANAGER, applied_manifest_work_name, rate_limited};
use ocm_ce_work::{
    Condition, DeleteOption, DeletePropagationPolicy, ManifestConfigOption, ManifestWork, ResourceIdentifier,
    ServerSideApplyConfig, UpdateStrategy, UpdateStrategyType,
};
use serde_json::json;
use support::{
    Env, RunningAgent, applier_config, configmap, create_namespace, eventually, json_path_rule, manifest,
    orphaning_configmap, unique, well_known_status_rule,
};

fn cond<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn manifest_cond<'a>(work: &'a ManifestWork, ordinal: usize, type_: &str) -> Option<&'a Condition> {
    let m = work
        .status
        .resource_status
        .manifests
        .iter()
        .find(|m| m.resource_meta.ordinal as usize == ordinal)?;
    cond(m.conditions.as_deref().unwrap_or_default(), type_)
}

fn is_true(c: Option<&Condition>) -> bool {
    c.is_some_and(|c| c.status == "True")
}

fn all_applied(work: &ManifestWork, manifests: usize) -> bool {
    work.status.resource_status.manifests.len() == manifests
        && (0..manifests)
            .all(|i| is_true(manifest_cond(work, i, "Applied")) && is_true(manifest_cond(work, i, "Available")))
        && is_true(cond(&work.status.conditions, "Applied"))
        && is_true(cond(&work.status.conditions, "Available"))
}

fn config(resource: &str, group: &str, ns: &str, name: &str) -> ManifestConfigOption {
    ManifestConfigOption {
        resource_identifier: ResourceIdentifier {
            group: group.into(),
            resource: resource.into(),
            name: name.into(),
            namespace: ns.into(),
        },
        ..Default::default()
    }
}

fn strategy(type_: UpdateStrategyType, ssa: Option<ServerSideApplyConfig>) -> Option<UpdateStrategy> {
    Some(UpdateStrategy {
        type_,
        server_side_apply: ssa,
    })
}

async fn configmap_of(env: &Env, ns: &str, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(env.kube.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn record_owners(cm: &ConfigMap) -> Vec<String> {
    cm.metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.kind == "AppliedManifestWork")
        .map(|r| r.name.clone())
        .collect()
}

async fn wait_configmap_gone(env: &Env, ns: &str, name: &str) {
    eventually(&format!("configmap {ns}/{name} to be deleted"), || async {
        configmap_of(env, ns, name).await.is_none()
    })
    .await;
}

async fn record(env: &Env, uid: &str) -> Option<AppliedManifestWork> {
    Api::<AppliedManifestWork>::all(env.kube.clone())
        .get_opt(&applied_manifest_work_name(&env.hub, uid))
        .await
        .unwrap()
}

/// Removes the `kubernetes` finalizer of a deleted namespace, as the namespace controller does
/// once the namespace is empty.
async fn finalize_namespace(kube: &kube::Client, name: &str) {
    let api = Api::<Namespace>::all(kube.clone());
    eventually(&format!("namespace {name} to be terminating"), || async {
        api.get_opt(name)
            .await
            .unwrap()
            .is_none_or(|n| n.metadata.deletion_timestamp.is_some())
    })
    .await;
    if let Some(mut ns) = api.get_opt(name).await.unwrap() {
        ns.spec = Some(Default::default());
        api.replace_subresource("finalize", name, &PostParams::default(), &ns)
            .await
            .unwrap();
    }
}

async fn stop(agent: RunningAgent) {
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_configmaps_and_a_deployment_are_applied_reported_and_deleted() {
    let Some(env) = Env::new().await else { return };
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let ns2 = unique("t2");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": env.ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "example.invalid/web:1"}]}}
        }
    });
    let manifests = vec![
        manifest(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns2}})),
        configmap(&env.ns, "cm1", json!({"k": "v1"})),
        configmap(&ns2, "cm2", json!({"k": "v2"})),
        manifest(deployment),
    ];
    let ns = env.ns.clone();
    let uid = env
        .create_work("work1", manifests, |w| {
            let mut c = config("deployments", "apps", &ns, "web");
            c.feedback_rules = vec![
                well_known_status_rule(),
                json_path_rule("specReplicas", ".spec.replicas"),
            ];
            w.spec.manifest_configs = vec![c];
        })
        .await;

    let work = env
        .wait_work("work1", "every manifest applied and available", |w| all_applied(w, 4))
        .await;
    let applied = cond(&work.status.conditions, "Applied").unwrap();
    assert_eq!(
        (applied.reason.as_str(), applied.observed_generation),
        ("AppliedManifestWorkComplete", Some(1))
    );
    assert_eq!(
        cond(&work.status.conditions, "Available").unwrap().reason,
        "ResourcesAvailable"
    );
    let metas: Vec<_> = work
        .status
        .resource_status
        .manifests
        .iter()
        .map(|m| {
            (
                m.resource_meta.ordinal,
                m.resource_meta.resource.as_str(),
                m.resource_meta.namespace.as_str(),
            )
        })
        .collect();
    assert_eq!(
        metas,
        [
            (0, "namespaces", ""),
            (1, "configmaps", ns.as_str()),
            (2, "configmaps", ns2.as_str()),
            (3, "deployments", ns.as_str())
        ]
    );

    // In the cluster, owned by the work's record, written by our field manager.
    let cm1 = configmap_of(&env, &env.ns, "cm1").await.unwrap();
    assert_eq!(data(&cm1)["k"], "v1");
    let record_name = applied_manifest_work_name(&env.hub, &uid);
    assert_eq!(record_owners(&cm1), std::slice::from_ref(&record_name));
    let managers: Vec<_> = cm1
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(managers.iter().any(|m| m == DEFAULT_FIELD_MANAGER), "{managers:?}");
    assert_eq!(data(&configmap_of(&env, &ns2, "cm2").await.unwrap())["k"], "v2");
    let amw = record(&env, &uid).await.unwrap();
    assert_eq!(amw.spec.manifest_work_name, uid);
    assert_eq!(amw.spec.agent_id, "agent1");
    assert_eq!(amw.applied_resources().len(), 4);

    // The Deployment's status, as its controller would write it, comes back as feedback.
    let deployments = Api::<Deployment>::namespaced(env.kube.clone(), &env.ns);
    deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 1}})),
        )
        .await
        .unwrap();
    let work = env
        .wait_work("work1", "the deployment's status feedback", |w| {
            w.status.resource_status.manifests[3].status_feedback.values.len() == 4
        })
        .await;
    let values: BTreeMap<_, _> = work.status.resource_status.manifests[3]
        .status_feedback
        .values
        .iter()
        .map(|v| (v.name.as_str(), v.field_value.integer))
        .collect();
    assert_eq!(
        values,
        BTreeMap::from([
            ("AvailableReplicas", Some(1)),
            ("ReadyReplicas", Some(2)),
            ("Replicas", Some(2)),
            ("specReplicas", Some(2))
        ])
    );
    assert!(is_true(manifest_cond(&work, 3, "StatusFeedbackSynced")));

    // Deletion: everything goes (the namespace once "its controller" finalized it), then the
    // record, then the work.
    env.source.delete(&env.cluster, "work1").await.unwrap();
    wait_configmap_gone(&env, &env.ns, "cm1").await;
    eventually("the deployment to be deleted", || async {
        deployments.get_opt("web").await.unwrap().is_none()
    })
    .await;
    finalize_namespace(&env.kube, &ns2).await;
    env.wait_work_gone("work1").await;
    assert!(
        Api::<Namespace>::all(env.kube.clone())
            .get_opt(&ns2)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        record(&env, &uid).await.is_none(),
        "the record is deleted with the work"
    );
    assert_eq!(agent.metrics.works_deleted(), 1);
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_is_applied_before_its_custom_resource_in_the_same_work() {
    let Some(env) = Env::new().await else { return };
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let group = format!("{}.ocm-ce.test", unique("g"));
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    });
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w1", "namespace": env.ns}, "spec": {"size": 3}});
    // The custom resource comes first in the work.
    let uid = env
        .create_work("crd-work", vec![manifest(widget), manifest(crd)], |_| {})
        .await;
    let work = env
        .wait_work("crd-work", "the CRD and the widget applied", |w| all_applied(w, 2))
        .await;
    assert_eq!(
        work.status.resource_status.manifests[0].resource_meta.resource,
        "widgets"
    );
    assert_eq!(
        agent.metrics.manifest_failures(),
        0,
        "the widget never failed: its CRD was applied and established first"
    );
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "widgets");
    let widgets = Api::<DynamicObject>::namespaced_with(env.kube.clone(), &env.ns, &ar);
    let w1 = widgets.get("w1").await.unwrap();
    assert_eq!(w1.data["spec"]["size"], 3);
    assert_eq!(record(&env, &uid).await.unwrap().applied_resources().len(), 2);

    env.source.delete(&env.cluster, "crd-work").await.unwrap();
    // A CRD goes only after the API server's cleanup of its custom resources; the agent looks
    // again with its back-off (100 ms doubling to 30 s), so under load this takes longer than
    // the usual bound (seen: over 30 s in a CI run while 11 tests shared the API server).
    env.wait_work_gone_within("crd-work", std::time::Duration::from_secs(120))
        .await;
    let crds = Api::<CustomResourceDefinition>::all(env.kube.clone());
    assert!(crds.get_opt(&format!("widgets.{group}")).await.unwrap().is_none());
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_update_strategy_does_what_ocm_does() {
    let Some(env) = Env::new().await else { return };
    let cms = Api::<ConfigMap>::namespaced(env.kube.clone(), &env.ns);
    // What the cluster has before the work: one object per strategy.
    let other = PatchParams::apply("other-manager");
    cms.patch(
        "ssa",
        &other,
        &Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "theirs"}}),
        ),
    )
    .await
    .unwrap();
    for (name, labels, data) in [
        ("upd", json!({"keep": "yes"}), json!({"k": "old", "extra": "x"})),
        ("co", json!({}), json!({"k": "original"})),
        ("ro", json!({}), json!({"k": "read"})),
    ] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let ns = env.ns.clone();
    let upd = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "upd", "namespace": ns, "labels": {"added": "yes"}}, "data": {"k": "new"}}));
    let manifests = vec![
        configmap(&ns, "ssa", json!({"k": "ours"})),
        upd,
        configmap(&ns, "co", json!({"k": "ignored"})),
        configmap(&ns, "ro", json!({"k": "write-attempt"})),
    ];
    let configs = |force: bool| {
        let mut ssa = config("configmaps", "", &ns, "ssa");
        ssa.update_strategy = strategy(
            UpdateStrategyType::ServerSideApply,
            Some(ServerSideApplyConfig {
                force,
                field_manager: String::new(),
            }),
        );
        let mut upd = config("configmaps", "", &ns, "upd");
        upd.update_strategy = strategy(UpdateStrategyType::Update, None);
        let mut co = config("configmaps", "", &ns, "co");
        co.update_strategy = strategy(UpdateStrategyType::CreateOnly, None);
        let mut ro = config("configmaps", "", &ns, "ro");
        ro.update_strategy = strategy(UpdateStrategyType::ReadOnly, None);
        ro.feedback_rules = vec![json_path_rule("k", ".data.k")];
        vec![ssa, upd, co, ro]
    };
    let record_name = applied_manifest_work_name(
        &env.hub,
        &env.create_work("strategies", manifests, |w| w.spec.manifest_configs = configs(false))
            .await,
    );

    let work = env
        .wait_work("strategies", "the strategies applied", |w| {
            w.status.resource_status.manifests.len() == 4
                && manifest_cond(w, 0, "Applied").is_some_and(|c| c.status == "False")
                && (1..4).all(|i| is_true(manifest_cond(w, i, "Applied")))
                && !w.status.resource_status.manifests[3].status_feedback.values.is_empty()
        })
        .await;
    // Server-side apply without force: the API server's conflict, not retried, on the manifest.
    let conflict = manifest_cond(&work, 0, "Applied").unwrap();
    assert_eq!(conflict.reason, "AppliedManifestFailed");
    assert!(
        conflict
            .message
            .starts_with("Failed to apply manifest: Apply failed with 1 conflict: conflict with \"other-manager\""),
        "{}",
        conflict.message
    );
    assert_eq!(cond(&work.status.conditions, "Applied").unwrap().status, "False");
    assert_eq!(data(&cms.get("ssa").await.unwrap())["k"], "theirs");
    // Not retried on every status sync (every 500 ms here): only a spec change or the periodic
    // re-apply tries again. (Nothing to wait for: this checks that nothing happens.)
    let applies = agent.metrics.applies();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(agent.metrics.applies(), applies, "the conflict was retried");
    // Update: the content is replaced, labels are merged, the record owns it.
    let upd = cms.get("upd").await.unwrap();
    assert_eq!(data(&upd), BTreeMap::from([("k".to_owned(), "new".to_owned())]));
    let labels = upd.metadata.labels.clone().unwrap();
    assert_eq!((labels["keep"].as_str(), labels["added"].as_str()), ("yes", "yes"));
    assert_eq!(record_owners(&upd), std::slice::from_ref(&record_name));
    // CreateOnly: an existing object is only adopted.
    let co = cms.get("co").await.unwrap();
    assert_eq!(data(&co)["k"], "original");
    assert_eq!(record_owners(&co), std::slice::from_ref(&record_name));
    // ReadOnly: untouched and not owned; its value is fed back.
    let ro = cms.get("ro").await.unwrap();
    assert_eq!(data(&ro)["k"], "read");
    assert!(record_owners(&ro).is_empty());
    let fed = &work.status.resource_status.manifests[3].status_feedback.values[0];
    assert_eq!(
        (fed.name.as_str(), fed.field_value.string.as_deref()),
        ("k", Some("read"))
    );

    // With force, server-side apply takes the field over.
    env.update_work("strategies", |w| w.spec.manifest_configs = configs(true))
        .await;
    env.wait_work("strategies", "the forced apply", |w| all_applied(w, 4))
        .await;
    let ssa = cms.get("ssa").await.unwrap();
    assert_eq!(data(&ssa)["k"], "ours");
    let apply_managers: Vec<_> = ssa
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.operation.as_deref() == Some("Apply"))
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(
        apply_managers.contains(&DEFAULT_FIELD_MANAGER.to_owned()),
        "{apply_managers:?}"
    );

    env.source.delete(&env.cluster, "strategies").await.unwrap();
    env.wait_work_gone("strategies").await;
    for name in ["ssa", "upd", "co"] {
        assert!(
            cms.get_opt(name).await.unwrap().is_none(),
            "{name} is deleted with the work"
        );
    }
    assert!(
        cms.get_opt("ro").await.unwrap().is_some(),
        "a read-only object is never deleted"
    );
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_error_reports_the_api_servers_message_and_is_retried() {
    let Some(env) = Env::new().await else { return };
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let missing = unique("missing");
    let manifests = vec![
        configmap(&missing, "cm", json!({"k": "v"})),
        configmap(&env.ns, "bad", json!({"k": 1})),
        manifest(
            json!({"apiVersion": "example.invalid/v1", "kind": "Gizmo", "metadata": {"name": "g", "namespace": env.ns}}),
        ),
        configmap(&env.ns, "good", json!({"k": "v"})),
    ];
    env.create_work("errors", manifests, |_| {}).await;
    let work = env
        .wait_work("errors", "the failures reported", |w| {
            w.status.resource_status.manifests.len() == 4 && cond(&w.status.conditions, "Applied").is_some()
        })
        .await;
    let message = |i| manifest_cond(&work, i, "Applied").unwrap().message.clone();
    assert_eq!(
        message(0),
        format!("Failed to apply manifest: namespaces \"{missing}\" not found")
    );
    assert!(
        message(1)
            .starts_with("Failed to apply manifest: ConfigMap in version \"v1\" cannot be handled as a ConfigMap"),
        "{}",
        message(1)
    );
    assert_eq!(
        message(2),
        "Failed to apply manifest: the server doesn't have a resource type \"Gizmo\""
    );
    assert!(is_true(manifest_cond(&work, 3, "Applied")));
    let applied = cond(&work.status.conditions, "Applied").unwrap();
    assert_eq!(
        (applied.status.as_str(), applied.reason.as_str()),
        ("False", "AppliedManifestWorkFailed")
    );
    assert!(configmap_of(&env, &env.ns, "good").await.is_some());
    assert!(agent.metrics.manifest_failures() >= 3);

    // The failed manifests are retried: once the namespace exists, the first one applies.
    create_namespace(&env.kube, &missing).await;
    env.wait_work("errors", "the retried manifest applied", |w| {
        is_true(manifest_cond(w, 0, "Applied"))
    })
    .await;
    assert!(configmap_of(&env, &missing, "cm").await.is_some());
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_resources_outlive_their_deleted_work() {
    let Some(env) = Env::new().await else { return };
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let ns = env.ns.clone();
    env.create_work("orphan", vec![configmap(&ns, "o1", json!({"k": "v"}))], |w| {
        w.spec.delete_option = Some(DeleteOption {
            propagation_policy: DeletePropagationPolicy::Orphan,
            selectively_orphan: None,
        });
    })
    .await;
    env.create_work(
        "selective",
        vec![configmap(&ns, "keep", json!({})), configmap(&ns, "drop", json!({}))],
        |w| w.spec.delete_option = Some(orphaning_configmap(&ns, "keep")),
    )
    .await;
    env.wait_work("orphan", "orphan applied", |w| all_applied(w, 1)).await;
    env.wait_work("selective", "selective applied", |w| all_applied(w, 2))
        .await;
    assert!(
        record_owners(&configmap_of(&env, &ns, "o1").await.unwrap()).is_empty(),
        "orphans are not owned"
    );
    assert!(record_owners(&configmap_of(&env, &ns, "keep").await.unwrap()).is_empty());
    assert_eq!(record_owners(&configmap_of(&env, &ns, "drop").await.unwrap()).len(), 1);

    env.source.delete(&env.cluster, "orphan").await.unwrap();
    env.source.delete(&env.cluster, "selective").await.unwrap();
    env.wait_work_gone("orphan").await;
    env.wait_work_gone("selective").await;
    assert!(configmap_of(&env, &ns, "o1").await.is_some());
    assert!(configmap_of(&env, &ns, "keep").await.is_some());
    assert!(configmap_of(&env, &ns, "drop").await.is_none());
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_manifest_is_deleted_unless_another_work_still_applies_it() {
    let Some(env) = Env::new().await else { return };
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let ns = env.ns.clone();
    env.create_work(
        "a",
        vec![
            configmap(&ns, "a1", json!({})),
            configmap(&ns, "shared", json!({"k": "v"})),
        ],
        |_| {},
    )
    .await;
    let b = env
        .create_work(
            "b",
            vec![
                configmap(&ns, "shared", json!({"k": "v"})),
                configmap(&ns, "b1", json!({})),
            ],
            |_| {},
        )
        .await;
    env.wait_work("a", "a applied", |w| all_applied(w, 2)).await;
    env.wait_work("b", "b applied", |w| all_applied(w, 2)).await;
    assert_eq!(
        record_owners(&configmap_of(&env, &ns, "shared").await.unwrap()).len(),
        2
    );

    env.update_work("a", |w| {
        w.spec.workload.manifests = vec![configmap(&ns, "a2", json!({}))]
    })
    .await;
    wait_configmap_gone(&env, &ns, "a1").await;
    env.wait_work("a", "a with its new manifest", |w| {
        all_applied(w, 1) && w.status.resource_status.manifests[0].resource_meta.name == "a2"
    })
    .await;
    eventually("shared to keep only b's owner reference", || async {
        record_owners(&configmap_of(&env, &ns, "shared").await.unwrap()) == [applied_manifest_work_name(&env.hub, &b)]
    })
    .await;

    env.source.delete(&env.cluster, "b").await.unwrap();
    env.wait_work_gone("b").await;
    assert!(
        configmap_of(&env, &ns, "shared").await.is_none(),
        "its last owner is gone"
    );
    assert!(configmap_of(&env, &ns, "b1").await.is_none());
    assert!(configmap_of(&env, &ns, "a2").await.is_some());
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_made_while_the_agent_was_down_completes_after_a_restart() {
    let Some(env) = Env::new().await else { return };
    let ns = env.ns.clone();
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let gone_uid = env
        .create_work(
            "gone",
            vec![configmap(&ns, "g1", json!({})), configmap(&ns, "g2", json!({}))],
            |_| {},
        )
        .await;
    let kept_uid = env
        .create_work("kept", vec![configmap(&ns, "k1", json!({"k": "v"}))], |_| {})
        .await;
    env.wait_work("gone", "gone applied", |w| all_applied(w, 2)).await;
    env.wait_work("kept", "kept applied", |w| all_applied(w, 1)).await;
    stop(agent).await;

    // While no agent runs, the source deletes one work (it waits for the agent's answer).
    env.source.delete(&env.cluster, "gone").await.unwrap();
    assert!(env.work("gone").unwrap().is_deleting());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(configmap_of(&env, &ns, "g1").await.is_some(), "nobody deleted it yet");

    // A finalizer of someone else's holds g1 once deleted.
    Api::<ConfigMap>::namespaced(env.kube.clone(), &ns)
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["ocm-ce.test/hold"]}})),
        )
        .await
        .unwrap();

    // The new agent starts from its records: the deletion completes, the other work stays.
    let agent = env.start_agent(applier_config(&env.hub)).await;
    eventually("g1 to be deleted and held", || async {
        configmap_of(&env, &ns, "g1")
            .await
            .is_some_and(|cm| cm.metadata.deletion_timestamp.is_some())
    })
    .await;
    wait_configmap_gone(&env, &ns, "g2").await;
    // Not reported deleted while one of its resources is being finalized.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.work("gone").is_some_and(|w| w.is_deleting()));
    assert!(record(&env, &gone_uid).await.is_some());
    Api::<ConfigMap>::namespaced(env.kube.clone(), &ns)
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    env.wait_work_gone("gone").await;
    assert!(configmap_of(&env, &ns, "g1").await.is_none());
    assert!(configmap_of(&env, &ns, "g2").await.is_none());
    assert!(record(&env, &gone_uid).await.is_none());
    // The kept work was rebuilt without its spec; the source sent it again.
    eventually("the kept work's spec to be back", || async {
        agent
            .agent
            .get(&kept_uid)
            .is_ok_and(|w| w.spec.workload.manifests.len() == 1)
    })
    .await;
    env.wait_work("kept", "kept still applied", |w| all_applied(w, 1)).await;
    assert_eq!(data(&configmap_of(&env, &ns, "k1").await.unwrap())["k"], "v");
    assert_eq!(agent.metrics.works_deleted(), 1);
    stop(agent).await;
}

/// The agent reports the works it recorded in its first resync; a source that no longer has
/// one answers with a deletion, and the recorded resources go. (An agent started empty reports
/// nothing, and the resources would stay forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_the_source_forgot_while_the_agent_was_down_is_deleted_from_its_record() {
    let Some(mut env) = Env::new().await else { return };
    let ns = env.ns.clone();
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let forgotten = env
        .create_work("forgotten", vec![configmap(&ns, "f1", json!({}))], |_| {})
        .await;
    env.create_work("kept", vec![configmap(&ns, "k1", json!({}))], |_| {})
        .await;
    env.wait_work("forgotten", "forgotten applied", |w| all_applied(w, 1))
        .await;
    env.wait_work("kept", "kept applied", |w| all_applied(w, 1)).await;
    stop(agent).await;

    // The source comes back without the work (its database lost it): it will never send a
    // deletion of its own.
    env.restart_source(|w| w.name() != "forgotten").await;
    assert!(env.work("forgotten").is_none());

    let agent = env.start_agent(applier_config(&env.hub)).await;
    wait_configmap_gone(&env, &ns, "f1").await;
    eventually("the record to be deleted", || async {
        record(&env, &forgotten).await.is_none()
    })
    .await;
    eventually("the agent to forget the work", || {
        let gone = agent.agent.get(&forgotten).is_err();
        async move { gone }
    })
    .await;
    env.wait_work("kept", "kept still applied", |w| all_applied(w, 1)).await;
    assert!(configmap_of(&env, &ns, "k1").await.is_some());
    assert_eq!(agent.metrics.works_deleted(), 1);
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_are_applied_concurrently_within_the_bound_and_the_latest_spec_wins() {
    let Some(env) = Env::new().await else { return };
    let agent = env.start_agent(applier_config(&env.hub).workers(3)).await;
    let ns = env.ns.clone();
    for i in 0..12 {
        env.create_work(
            &format!("w{i}"),
            vec![configmap(&ns, &format!("cm{i}"), json!({"i": i.to_string()}))],
            |_| {},
        )
        .await;
    }
    for i in 0..12 {
        env.wait_work(&format!("w{i}"), "every work applied", |w| all_applied(w, 1))
            .await;
    }
    let peak = agent.metrics.peak_in_flight();
    assert!((2..=3).contains(&peak), "peak concurrency {peak}");

    // Several quick spec changes of one work: the cluster ends with the last one.
    for v in 1..=5 {
        env.update_work("w0", |w| {
            w.spec.workload.manifests = vec![configmap(&ns, "cm0", json!({"v": v.to_string()}))]
        })
        .await;
    }
    env.wait_work("w0", "the last spec applied", |w| {
        cond(&w.status.conditions, "Applied").is_some_and(|c| c.observed_generation == Some(6))
    })
    .await;
    assert_eq!(
        data(&configmap_of(&env, &ns, "cm0").await.unwrap()),
        BTreeMap::from([("v".to_owned(), "5".to_owned())])
    );
    stop(agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_the_api_server_are_rate_limited() {
    let Some(kube) = support::kube().await else { return };
    let limited = rate_limited(kube, RateLimit { qps: 5.0, burst: 1 });
    let started = Instant::now();
    for _ in 0..11 {
        limited.apiserver_version().await.unwrap();
    }
    let elapsed = started.elapsed();
    // One token at once, then one per 200 ms: ten waits.
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

/// RBAC through the API server's own authorizer: an agent whose identity may not create
/// ConfigMaps reports the server's Forbidden message on the manifest, and applies it once a
/// Role allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_manifest_reports_the_authorizers_message_until_a_role_allows_it() {
    let Some(env) = Env::new().await else { return };
    let (limited, user) = support::limited_kube().await;
    let subject = json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]);
    let records = unique("ocm-ce-records");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": records},
        "rules": [{"apiGroups": ["work.open-cluster-management.io"],
            "resources": ["appliedmanifestworks", "appliedmanifestworks/status"], "verbs": ["*"]}]
    }))
    .unwrap();
    Api::<ClusterRole>::all(env.kube.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": records},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": records},
        "subjects": subject,
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(env.kube.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let roles = Api::<Role>::namespaced(env.kube.clone(), &env.ns);
    let read_only: Role = serde_json::from_value(json!({
        "metadata": {"name": "configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    }))
    .unwrap();
    roles.create(&PostParams::default(), &read_only).await.unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmaps"},
        "subjects": subject,
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(env.kube.clone(), &env.ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let agent = env.start_agent_as(limited, applier_config(&env.hub)).await;
    env.create_work("rbac", vec![configmap(&env.ns, "cm", json!({"k": "v"}))], |_| {})
        .await;
    let work = env
        .wait_work("rbac", "the forbidden manifest reported", |w| {
            manifest_cond(w, 0, "Applied").is_some()
        })
        .await;
    let applied = manifest_cond(&work, 0, "Applied").unwrap();
    assert_eq!(applied.status, "False");
    assert_eq!(
        applied.message,
        format!(
            "Failed to apply manifest: configmaps is forbidden: User \"{user}\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"{}\"",
            env.ns
        )
    );

    let mut writer = roles.get("configmaps").await.unwrap();
    writer.rules.as_mut().unwrap()[0].verbs.push("create".into());
    roles
        .replace("configmaps", &PostParams::default(), &writer)
        .await
        .unwrap();
    env.wait_work("rbac", "the manifest applied once allowed", |w| all_applied(w, 1))
        .await;
    assert!(configmap_of(&env, &env.ns, "cm").await.is_some());
    stop(agent).await;
}
