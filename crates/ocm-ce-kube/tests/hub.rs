//! [`Hub`] on the real API server of `scripts/test-env.sh`, which plays both the hub (the
//! ManifestWorks, namespace = cluster) and the managed cluster (a [`KubeApplier`] agent through
//! the in-memory broker): what a hub that was down missed is done when it starts again, and a
//! work the hub stops serving is cleaned up.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use ocm_ce_client::testing::FakeTransport;
use ocm_ce_kube::{HUB_FINALIZER, Hub, HubConfig, hub_works};
use ocm_ce_work::ManifestWork;
use ocm_ce_work::client::SourceWorkClient;
use ocm_ce_work::gc::OwnerFilter;
use serde_json::json;
use support::{Env, WAIT, applier_config, client_options, configmap, create_namespace, eventually};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running hub of source `hub1` serving the works labelled `test=<cluster>`.
struct RunningHub {
    source: SourceWorkClient<FakeTransport>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningHub {
    async fn start(env: &Env) -> Self {
        Self::start_with(env, HubConfig::default()).await
    }

    async fn start_with(env: &Env, config: HubConfig) -> Self {
        let config = config
            .label_selector(format!("test={}", env.cluster))
            .resync_interval(Duration::from_millis(300));
        let initial = hub_works(&env.kube, "hub1", &config).await.unwrap();
        let source = SourceWorkClient::start(env.broker.source("hub1"), "hub1", initial, client_options());
        tokio::time::timeout(WAIT, source.wait_until_connected()).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let hub = Hub::new(env.kube.clone(), source.clone(), config);
        let task = tokio::spawn(hub.run(async move {
            let _ = stopped.await;
        }));
        Self { source, stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WAIT, self.task).await.unwrap().unwrap();
        self.source.close(Duration::from_secs(5)).await;
    }
}

fn work(env: &Env, name: &str, value: &str) -> ManifestWork {
    let mut w = ManifestWork::new(
        &env.cluster,
        name,
        vec![configmap(&env.ns, &format!("cm-{name}"), json!({"k": value}))],
    );
    w.metadata.labels = Some([("test".to_owned(), env.cluster.clone())].into());
    w
}

fn applied(w: &ManifestWork) -> bool {
    w.status
        .conditions
        .iter()
        .any(|c| c.type_ == "Applied" && c.status == "True" && c.observed_generation == w.metadata.generation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_finishes_what_happened_while_it_was_down() {
    let Some(env) = Env::new().await else { return };
    create_namespace(&env.kube, &env.cluster).await;
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let works = Api::<ManifestWork>::namespaced(env.kube.clone(), &env.cluster);
    let cms = Api::<ConfigMap>::namespaced(env.kube.clone(), &env.ns);
    let get = |name: &'static str| {
        let works = works.clone();
        async move { works.get_opt(name).await.unwrap() }
    };

    let hub = RunningHub::start(&env).await;
    works
        .create(&PostParams::default(), &work(&env, "w1", "a"))
        .await
        .unwrap();
    works
        .create(&PostParams::default(), &work(&env, "w2", "b"))
        .await
        .unwrap();
    for name in ["w1", "w2"] {
        eventually("Applied on the hub objects", || async {
            get(name).await.is_some_and(|w| applied(&w))
        })
        .await;
    }
    assert!(
        get("w1")
            .await
            .unwrap()
            .finalizers()
            .contains(&HUB_FINALIZER.to_owned())
    );
    hub.stop().await;

    // While the hub is down: w1 is deleted (it stays, the hub's finalizer holds it), w3 is
    // created, and w2's status is lost (overwritten).
    works.delete("w1", &DeleteParams::default()).await.unwrap();
    assert!(get("w1").await.unwrap().is_deleting());
    works
        .create(&PostParams::default(), &work(&env, "w3", "c"))
        .await
        .unwrap();
    works
        .patch_status(
            "w2",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": null, "resourceStatus": {"manifests": null}}})),
        )
        .await
        .unwrap();
    assert!(get("w2").await.unwrap().status.conditions.is_empty());
    let hub = RunningHub::start(&env).await;
    eventually("w1's ConfigMap deleted", || async {
        cms.get_opt("cm-w1").await.unwrap().is_none()
    })
    .await;
    eventually("w1 gone from the hub (the finalizer removed)", || async {
        get("w1").await.is_none()
    })
    .await;
    eventually("w3 applied", || async { get("w3").await.is_some_and(|w| applied(&w)) }).await;
    assert_eq!(
        cms.get("cm-w3").await.unwrap().data.unwrap()["k"],
        "c",
        "w3's ConfigMap on the managed cluster"
    );
    eventually("w2's status written again (status resync)", || async {
        get("w2").await.is_some_and(|w| applied(&w))
    })
    .await;
    assert_eq!(get("w2").await.unwrap().status.resource_status.manifests.len(), 1);

    // A work that stops matching the hub's selector is no longer served: deleted on the
    // managed cluster, and the object keeps no finalizer of the hub.
    works
        .patch(
            "w3",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"test": null}}})),
        )
        .await
        .unwrap();
    eventually("w3's ConfigMap deleted", || async {
        cms.get_opt("cm-w3").await.unwrap().is_none()
    })
    .await;
    eventually("w3 without the hub's finalizer", || async {
        get("w3")
            .await
            .is_some_and(|w| !w.finalizers().contains(&HUB_FINALIZER.to_owned()))
    })
    .await;
    hub.stop().await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_garbage_collector_runs_against_the_hub_api() {
    let Some(env) = Env::new().await else { return };
    create_namespace(&env.kube, &env.cluster).await;
    let agent = env.start_agent(applier_config(&env.hub)).await;
    let works = Api::<ManifestWork>::namespaced(env.kube.clone(), &env.cluster);
    let owners = Api::<ConfigMap>::namespaced(env.kube.clone(), &env.cluster);
    let cms = Api::<ConfigMap>::namespaced(env.kube.clone(), &env.ns);
    let hub = RunningHub::start_with(&env, HubConfig::default().gc_owner(OwnerFilter::of::<ConfigMap>())).await;

    let mut refs = Vec::new();
    for name in ["owner-a", "owner-b"] {
        let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let owner = owners.create(&PostParams::default(), &owner).await.unwrap();
        refs.push(OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            uid: owner.metadata.uid.unwrap(),
            ..OwnerReference::default()
        });
    }
    let mut owned = work(&env, "owned", "o");
    owned.metadata.owner_references = Some(refs);
    works.create(&PostParams::default(), &owned).await.unwrap();
    eventually("the owned work applied", || async {
        works.get_opt("owned").await.unwrap().is_some_and(|w| applied(&w))
    })
    .await;

    // One owner gone: the work loses its reference and stays.
    owners.delete("owner-a", &DeleteParams::default()).await.unwrap();
    eventually("the reference to owner-a removed", || async {
        works.get_opt("owned").await.unwrap().is_some_and(|w| {
            let refs = w.metadata.owner_references.unwrap_or_default();
            refs.len() == 1 && refs[0].name == "owner-b"
        })
    })
    .await;
    assert!(cms.get_opt("cm-owned").await.unwrap().is_some(), "still applied");

    // The last owner gone: the work is deleted, on the managed cluster first.
    owners.delete("owner-b", &DeleteParams::default()).await.unwrap();
    eventually("the owned work gone from the hub", || async {
        works.get_opt("owned").await.unwrap().is_none()
    })
    .await;
    assert!(
        cms.get_opt("cm-owned").await.unwrap().is_none(),
        "deleted before the work went"
    );
    hub.stop().await;
    agent.stop().await;
}
