//! The garbage collector end to end: works of a source client over the in-memory broker, owners
//! (ConfigMaps and Secrets) in the real API server of `scripts/test-env.sh`
//! (`OCM_CE_TEST_KUBECONFIG`; the tests skip when it is unset). Go's "Garbage Collector Test",
//! TestProcessManifestWorkEvent and TestAttemptToDeleteItem, plus owners gone before the start,
//! verified deletions of filtered watches (an owner whose labels stop matching) and retries.
//! Faults a real API server does not produce (failing lookups) are covered by the unit tests in
//! `src/gc/tests.rs`.

#![cfg(feature = "gc")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::AttributesReader;
use http::Request;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_ce_client::testing::FakeBroker;
use ocm_ce_core::EventExt;
use ocm_ce_work::api::RESOURCE_VERSION_ANNOTATION;
use ocm_ce_work::gc::{Config, GarbageCollector, GcHandle, OwnerFilter};
use ocm_ce_work::{Manifest, ManifestWork, PatchType, work_uid};
use serde_json::{Value, json};
use support::clients::{Agent, Source, agent_applies, connected_source, options, start_agent};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The API server: the real one of scripts/test-env.sh, seen through a recording client.

/// A client of the test API server that records each request's method, path and query, and a
/// namespace of the test's own for the owners. `None` (the test skips) without a test server.
#[derive(Clone)]
struct ApiServer {
    client: kube::Client,
    requests: Arc<Mutex<Vec<String>>>,
    namespace: String,
}

impl ApiServer {
    async fn new() -> Option<Self> {
        let Some(path) = std::env::var_os("OCM_CE_TEST_KUBECONFIG").filter(|p| !p.is_empty()) else {
            eprintln!("skipped: OCM_CE_TEST_KUBECONFIG is unset (scripts/test-env.sh start DIR writes it)");
            return None;
        };
        let kubeconfig = Kubeconfig::read_from(path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        let real = kube::Client::try_from(config).unwrap();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = requests.clone();
        let inner = real.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            log.lock().unwrap().push(format!(
                "{} {}",
                req.method(),
                req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_default()
            ));
            let inner = inner.clone();
            async move { inner.send(req).await }
        });
        let namespace = format!("gc-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
        Api::<Namespace>::all(real)
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        Some(Self {
            client: kube::Client::new(service, "default"),
            requests,
            namespace,
        })
    }

    /// Creates owner `name` of `kind` (ConfigMap or Secret) with labels; returns its UID.
    async fn create(&self, kind: &str, name: &str, labels: Value) -> String {
        let object = json!({"metadata": {"name": name, "namespace": self.namespace, "labels": labels}});
        let uid = match kind {
            "ConfigMap" => {
                self.configmaps()
                    .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
                    .await
                    .unwrap()
                    .metadata
                    .uid
            }
            _ => {
                self.secrets()
                    .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
                    .await
                    .unwrap()
                    .metadata
                    .uid
            }
        };
        uid.unwrap()
    }

    async fn delete(&self, kind: &str, name: &str) {
        match kind {
            "ConfigMap" => drop(self.configmaps().delete(name, &DeleteParams::default()).await.unwrap()),
            _ => drop(self.secrets().delete(name, &DeleteParams::default()).await.unwrap()),
        }
    }

    /// Replaces the labels of ConfigMap `name`.
    async fn relabel(&self, name: &str, labels: Value) {
        self.configmaps()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": labels}})),
            )
            .await
            .unwrap();
    }

    fn configmaps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn gc_config() -> Config {
    Config::default()
        .workers(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(200))
}

fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        ..Default::default()
    }
}

fn work(name: &str, owners: Vec<OwnerReference>) -> ManifestWork {
    let manifest = Manifest::from_raw(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","namespace":"default"},"data":{"k":"v"}}"#,
    )
    .unwrap();
    let mut w = ManifestWork::new("cluster1", name, vec![manifest]);
    w.metadata.annotations = Some([(RESOURCE_VERSION_ANNOTATION.to_owned(), "1".to_owned())].into());
    w.metadata.owner_references = Some(owners);
    w
}

/// A work as a restarted source loads it from its own storage (created before: UID and version set).
fn stored(name: &str, owners: Vec<OwnerReference>) -> ManifestWork {
    let mut w = work(name, owners);
    w.metadata.uid = Some(work_uid("source1", "cluster1", name));
    w.metadata.resource_version = Some("1".into());
    w
}

fn owners_of(source: &Source, name: &str) -> Vec<String> {
    source
        .get("cluster1", name)
        .unwrap()
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|r| r.uid.clone())
        .collect()
}

async fn eventually(what: &str, check: impl FnMut() -> bool) {
    support::clients::eventually(WAIT, what, check).await;
}

/// A collector running on its own task until [`Running::stop`].
struct Running {
    handle: GcHandle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(source: &Source, api: &ApiServer, filters: Vec<OwnerFilter>) -> Self {
        let gc = GarbageCollector::new(source.clone(), api.client.clone(), filters).config(gc_config());
        let handle = gc.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gc.run(async move {
            let _ = stopped.await;
        }));
        Self { handle, stop, task }
    }

    async fn synced(self) -> Self {
        tokio::time::timeout(WAIT, self.handle.wait_until_synced())
            .await
            .expect("the collector to sync");
        self
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the collector to stop")
            .unwrap();
    }
}

fn owner_filters() -> Vec<OwnerFilter> {
    vec![OwnerFilter::of::<ConfigMap>(), OwnerFilter::of::<Secret>()]
}

async fn source_only(broker: &FakeBroker, initial: Vec<ManifestWork>) -> Source {
    connected_source(broker, initial, WAIT).await
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn the_collector_and_its_handle_are_send_and_sync() {
    fn require_send_sync<T: Send + Sync + 'static>() {}
    require_send_sync::<GarbageCollector<Source>>();
    require_send_sync::<GcHandle>();
    require_send_sync::<OwnerFilter>();
    require_send_sync::<Config>();
    require_send_sync::<ocm_ce_work::gc::GcMetrics>();
}

/// Go's TestProcessManifestWorkEvent, through the source client's store.
#[tokio::test]
async fn the_index_maps_each_owner_uid_to_the_works_it_owns() {
    let Some(api) = ApiServer::new().await else { return };
    let broker = FakeBroker::new();
    let uid0 = api.create("ConfigMap", "cm0", json!({})).await;
    let source = source_only(&broker, vec![stored("work0", vec![owner("ConfigMap", "cm0", &uid0)])]).await;
    let gc = Running::start(&source, &api, owner_filters()).synced().await;
    assert_eq!(
        gc.handle.works_owned_by(&uid0),
        [("cluster1".to_owned(), "work0".to_owned())]
    );

    source
        .create("cluster1", work("work1", vec![owner("ConfigMap", "cm1", "1")]))
        .await
        .unwrap();
    source
        .create("cluster1", work("work2", vec![owner("ConfigMap", "cm1", "1")]))
        .await
        .unwrap();
    source
        .create("cluster1", work("work3", vec![owner("ConfigMap", "cm4", "4")]))
        .await
        .unwrap();
    let refs = |owners: &[(&str, &str)]| {
        let refs: Vec<OwnerReference> = owners.iter().map(|(n, u)| owner("ConfigMap", n, u)).collect();
        serde_json::to_vec(&json!({"metadata": {"ownerReferences": refs}})).unwrap()
    };
    source
        .patch(
            "cluster1",
            "work2",
            PatchType::Merge,
            &refs(&[("cm1", "1"), ("cm2", "2")]),
        )
        .await
        .unwrap();
    source
        .patch("cluster1", "work3", PatchType::Merge, &refs(&[("cm3", "3")]))
        .await
        .unwrap();

    let key = |name: &str| ("cluster1".to_owned(), name.to_owned());
    eventually("the index to follow the works", || {
        gc.handle.works_owned_by("3") == [key("work3")]
    })
    .await;
    assert_eq!(gc.handle.works_owned_by("1"), [key("work1"), key("work2")]);
    assert_eq!(gc.handle.works_owned_by("2"), [key("work2")]);
    assert!(gc.handle.works_owned_by("4").is_empty());
    gc.stop().await;
}

/// Go's TestAttemptToDeleteItem, through the source client: a delete_request is published.
#[tokio::test]
async fn a_work_whose_only_owner_is_deleted_is_deleted_through_the_source_client() {
    let Some(api) = ApiServer::new().await else { return };
    let broker = FakeBroker::new();
    let uid = api.create("ConfigMap", "owner", json!({})).await;
    let source = source_only(&broker, vec![]).await;
    let created = source
        .create(
            "cluster1",
            work("to-be-deleted-work", vec![owner("ConfigMap", "owner", &uid)]),
        )
        .await
        .unwrap();
    let gc = Running::start(&source, &api, owner_filters()).synced().await;
    assert!(source.get("cluster1", "to-be-deleted-work").is_ok(), "the owner exists");

    api.delete("ConfigMap", "owner").await;
    eventually("the work to be deleted", || {
        source.get("cluster1", "to-be-deleted-work").is_err()
    })
    .await;
    let deletes: Vec<_> = broker
        .published()
        .into_iter()
        .filter(|p| p.event.ty().ends_with(".spec.delete_request"))
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].event.resource_id().unwrap(), created.uid_str());
    assert_eq!(gc.handle.metrics().works_deleted(), 1);
    assert_eq!(gc.handle.metrics().owner_deletions(), 1);
    assert_eq!(gc.handle.metrics().errors(), 0);
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /api/v1/configmaps?") && r.contains("watch=true")),
        "{requests:?}"
    );
    gc.stop().await;
}

/// Removes the finalizers of every deleting work, as the OCM work agent does once it cleaned up.
fn finalizer_remover(agent: &Agent) -> JoinHandle<()> {
    let agent = agent.clone();
    tokio::spawn(async move {
        loop {
            for w in agent.list(&Default::default()) {
                if w.is_deleting() && !w.finalizers().is_empty() {
                    let _ = agent
                        .patch(w.uid_str(), PatchType::Merge, br#"{"metadata":{"finalizers":null}}"#)
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// Go's integration "Garbage Collector Test".
#[tokio::test]
async fn deleting_owners_deletes_their_works_or_removes_their_references() {
    let Some(api) = ApiServer::new().await else { return };
    let broker = FakeBroker::new();
    let cm_uid = api.create("ConfigMap", "test", json!({})).await;
    let secret_uid = api.create("Secret", "test", json!({})).await;
    let source = source_only(&broker, vec![]).await;
    let agent = start_agent(&broker, "cluster1", options());
    tokio::time::timeout(WAIT, agent.wait_until_connected()).await.unwrap();

    let cm = owner("ConfigMap", "test", &cm_uid);
    let secret = owner("Secret", "test", &secret_uid);
    let mut uids = Vec::new();
    for (name, owners) in [("test1", vec![cm.clone()]), ("test2", vec![cm, secret.clone()])] {
        let created = source.create("cluster1", work(name, owners)).await.unwrap();
        uids.push(created.uid_str().to_owned());
    }
    // The agent applies both works: finalizer and status Created.
    for uid in &uids {
        eventually("the agent to get the work", || agent.get(uid).is_ok()).await;
        agent_applies(&agent, uid, "Created").await;
    }
    for name in ["test1", "test2"] {
        eventually("the source to see Created", || {
            source
                .get("cluster1", name)
                .is_ok_and(|w| w.status.conditions.iter().any(|c| c.reason == "Created"))
        })
        .await;
    }
    let remover = finalizer_remover(&agent);
    let gc = Running::start(&source, &api, owner_filters()).synced().await;

    api.delete("ConfigMap", "test").await;
    eventually("test1 to be deleted", || source.get("cluster1", "test1").is_err()).await;
    eventually("test2 to keep only the Secret owner", || {
        owners_of(&source, "test2") == [secret_uid.clone()]
    })
    .await;
    assert_eq!(
        source.get("cluster1", "test2").unwrap().metadata.owner_references,
        Some(vec![secret])
    );
    assert!(!source.get("cluster1", "test2").unwrap().is_deleting());

    api.delete("Secret", "test").await;
    eventually("test2 to be deleted", || source.get("cluster1", "test2").is_err()).await;
    let metrics = gc.handle.metrics().clone();
    assert_eq!(metrics.works_deleted(), 2);
    assert_eq!(metrics.owner_references_removed(), 1);
    gc.stop().await;
    remover.abort();
}

/// Go's known gap: owners deleted while no collector ran.
#[tokio::test]
async fn works_of_owners_deleted_before_the_start_are_collected() {
    let Some(api) = ApiServer::new().await else { return };
    let broker = FakeBroker::new();
    let alive = api.create("ConfigMap", "alive", json!({})).await;
    let gone = api.create("ConfigMap", "gone", json!({})).await;
    api.delete("ConfigMap", "gone").await;
    let deployment = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "d".into(),
        uid: "777".into(),
        ..Default::default()
    };
    let source = source_only(
        &broker,
        vec![
            stored("orphan", vec![owner("ConfigMap", "gone", &gone)]),
            stored(
                "mixed",
                vec![owner("ConfigMap", "gone", &gone), owner("ConfigMap", "alive", &alive)],
            ),
            stored("kept", vec![owner("ConfigMap", "alive", &alive)]),
            stored("unwatched-kind", vec![deployment]),
        ],
    )
    .await;
    let gc = Running::start(&source, &api, owner_filters()).synced().await;

    eventually("the orphan to be deleted", || source.get("cluster1", "orphan").is_err()).await;
    eventually("mixed to lose the missing owner", || {
        owners_of(&source, "mixed") == [alive.clone()]
    })
    .await;
    assert_eq!(owners_of(&source, "kept"), std::slice::from_ref(&alive));
    assert_eq!(owners_of(&source, "unwatched-kind"), ["777"]);
    let metrics = gc.handle.metrics();
    assert_eq!(metrics.missing_owners(), 1, "only the deleted ConfigMap");
    assert_eq!(metrics.works_deleted(), 1);
    assert_eq!(metrics.owner_references_removed(), 1);
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /api/v1/configmaps?") && r.contains("fieldSelector=metadata.name%3Dgone")),
        "the missing owner was looked up before deleting: {requests:?}"
    );
    gc.stop().await;
}

#[tokio::test]
async fn a_filtered_watch_deletion_of_an_owner_that_still_exists_keeps_its_works() {
    let Some(api) = ApiServer::new().await else { return };
    let broker = FakeBroker::new();
    let uid = api.create("ConfigMap", "demo", json!({"app": "demo"})).await;
    let source = source_only(&broker, vec![stored("w", vec![owner("ConfigMap", "demo", &uid)])]).await;
    let filters = vec![OwnerFilter::of::<ConfigMap>().labels("app=demo")];
    let gc = Running::start(&source, &api, filters).synced().await;
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/configmaps?") && r.contains("labelSelector=app%3Ddemo")),
        "the selector narrows the owner watch"
    );

    // The owner's labels change: the filtered watch reports it deleted, but it exists.
    api.relabel("demo", json!({"app": "other"})).await;
    eventually("the owner lookup", || gc.handle.metrics().live_owners() == 1).await;
    assert!(source.get("cluster1", "w").is_ok());
    assert_eq!(gc.handle.metrics().works_deleted(), 0);

    // Back in the selector, then deleted: the watch reports it, and the work goes.
    api.relabel("demo", json!({"app": "demo"})).await;
    api.delete("ConfigMap", "demo").await;
    eventually("the work to be deleted", || source.get("cluster1", "w").is_err()).await;
    assert_eq!(gc.handle.metrics().live_owners(), 1);
    gc.stop().await;
}

#[tokio::test]
async fn a_deletion_while_the_broker_is_away_is_kept_and_sent_once_it_is_back() {
    let Some(api) = ApiServer::new().await else { return };
    let broker = FakeBroker::new();
    let uid = api.create("Secret", "s", json!({})).await;
    let source = source_only(&broker, vec![stored("w", vec![owner("Secret", "s", &uid)])]).await;
    let gc = Running::start(&source, &api, owner_filters()).synced().await;

    broker.set_down(true);
    broker.disconnect_all();
    eventually("the source to notice", || !source.is_connected()).await;
    api.delete("Secret", "s").await;
    // The deletion is the source's state at once; it waits for the broker, never lost.
    eventually("the work to be marked deleting", || {
        source.get("cluster1", "w").is_ok_and(|w| w.is_deleting())
    })
    .await;
    assert_eq!(gc.handle.metrics().works_deleted(), 1);
    assert_eq!(gc.handle.metrics().errors(), 0);
    assert_eq!(source.unsent(), 1);

    broker.set_down(false);
    eventually("the work to be deleted", || source.get("cluster1", "w").is_err()).await;
    assert_eq!(source.unsent(), 0);
    gc.stop().await;
}
