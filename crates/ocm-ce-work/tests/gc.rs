//! The garbage collector end to end: works of a source client over the in-memory broker, owners
//! served by an in-process mock Kubernetes API server (metadata-only list and watch of ConfigMaps
//! and Secrets, behind `kube::Client::new` + `tower::service_fn`). Go's "Garbage Collector Test",
//! TestProcessManifestWorkEvent and TestAttemptToDeleteItem, plus owners gone before the start,
//! verified deletions of filtered watches and retries.

#![cfg(feature = "gc")]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::AttributesReader;
use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::client::Body;
use ocm_ce_client::testing::{FakeBroker, FakeTransport};
use ocm_ce_client::{BackoffConfig, ClientOptions};
use ocm_ce_core::EventExt;
use ocm_ce_work::api::RESOURCE_VERSION_ANNOTATION;
use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, SourceWorkClient, WorkClientOptions};
use ocm_ce_work::gc::{Config, GarbageCollector, GcHandle, OwnerFilter};
use ocm_ce_work::{Manifest, ManifestWork, PatchType, work_uid};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

type Source = SourceWorkClient<FakeTransport>;
type Agent = AgentWorkClient<FakeTransport>;

const WAIT: Duration = Duration::from_secs(10);
/// How long the mock API server holds a watch request open without events.
const WATCH_POLL: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------------
// The mock Kubernetes API server.

#[derive(Debug, Clone)]
struct Object {
    uid: String,
    rv: u64,
}

#[derive(Debug)]
struct Recorded {
    rv: u64,
    plural: String,
    kind: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct ApiState {
    rv: u64,
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Object>,
    events: Vec<Recorded>,
    requests: Vec<String>,
}

/// Serves `GET /api/v1/{configmaps,secrets}` for all namespaces: metadata-only lists (with
/// `metadata.name`/`metadata.namespace` field selectors) and watches (newline-delimited watch
/// events since the requested resource version, held open up to [`WATCH_POLL`]). Anything that
/// is not a metadata request is refused with 406.
#[derive(Debug, Clone)]
struct FakeApiServer {
    state: Arc<Mutex<ApiState>>,
    changed: Arc<watch::Sender<u64>>,
}

fn partial(ns: &str, name: &str, obj: &Object) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": ns, "uid": obj.uid, "resourceVersion": obj.rv.to_string()},
    })
}

impl FakeApiServer {
    fn new() -> Self {
        Self {
            state: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    fn client(&self) -> kube::Client {
        let server = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.serve(req).await) }
        });
        kube::Client::new(service, "default")
    }

    fn create(&self, plural: &str, ns: &str, name: &str, uid: &str) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let obj = Object {
            uid: uid.to_owned(),
            rv: st.rv,
        };
        let object = partial(ns, name, &obj);
        st.objects
            .insert((plural.to_owned(), ns.to_owned(), name.to_owned()), obj);
        let rv = st.rv;
        st.events.push(Recorded {
            rv,
            plural: plural.to_owned(),
            kind: "ADDED",
            object,
        });
        self.changed.send_replace(rv);
    }

    /// Deletes an object (a `DELETED` watch event). With `keep`, the object stays: it only left
    /// the watch's selector.
    fn delete(&self, plural: &str, ns: &str, name: &str, keep: bool) {
        let mut st = self.state.lock().unwrap();
        let key = (plural.to_owned(), ns.to_owned(), name.to_owned());
        let mut obj = st.objects.get(&key).cloned().unwrap();
        if !keep {
            st.objects.remove(&key);
        }
        st.rv += 1;
        obj.rv = st.rv;
        let rv = st.rv;
        let object = partial(ns, name, &obj);
        st.events.push(Recorded {
            rv,
            plural: plural.to_owned(),
            kind: "DELETED",
            object,
        });
        self.changed.send_replace(rv);
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    async fn serve(&self, req: Request<Body>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.state
            .lock()
            .unwrap()
            .requests
            .push(format!("{} {path}?{query}", req.method()));
        if req.method() != http::Method::GET || !accept.contains("as=PartialObjectMetadata") {
            return status(
                StatusCode::NOT_ACCEPTABLE,
                "NotAcceptable",
                "only metadata requests are served",
            );
        }
        let Some(plural) = path
            .strip_prefix("/api/v1/")
            .filter(|p| matches!(*p, "configmaps" | "secrets"))
        else {
            return status(StatusCode::NOT_FOUND, "NotFound", "no such resource");
        };
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        if params.get("watch").map(String::as_str) == Some("true") {
            let since = params.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            self.watch(plural, since).await
        } else {
            self.list(plural, params.get("fieldSelector").map(String::as_str))
        }
    }

    fn list(&self, plural: &str, fields: Option<&str>) -> Response<Body> {
        let wanted: Vec<(&str, &str)> = fields
            .unwrap_or_default()
            .split(',')
            .filter_map(|f| f.split_once('='))
            .collect();
        let st = self.state.lock().unwrap();
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((p, ns, name), _)| {
                p == plural
                    && wanted.iter().all(|(k, v)| match *k {
                        "metadata.name" => name == v,
                        "metadata.namespace" => ns == v,
                        _ => true,
                    })
            })
            .map(|((_, ns, name), obj)| partial(ns, name, obj))
            .collect();
        let body = json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        });
        ok(serde_json::to_vec(&body).unwrap())
    }

    async fn watch(&self, plural: &str, since: u64) -> Response<Body> {
        let deadline = tokio::time::Instant::now() + WATCH_POLL;
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let mut body = Vec::new();
            {
                let st = self.state.lock().unwrap();
                for e in st.events.iter().filter(|e| e.rv > since && e.plural == plural) {
                    serde_json::to_writer(&mut body, &json!({"type": e.kind, "object": e.object})).unwrap();
                    body.push(b'\n');
                }
            }
            if !body.is_empty() || tokio::time::Instant::now() >= deadline {
                // The watch ends; the watcher watches again from the last version it saw.
                return ok(body);
            }
            let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
        }
    }
}

fn ok(body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

fn options() -> WorkClientOptions {
    WorkClientOptions::default().client(
        ClientOptions::default()
            .rate_limit(None)
            .backoff(BackoffConfig::constant(Duration::from_millis(50))),
    )
}

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

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A collector running on its own task until [`Running::stop`].
struct Running {
    handle: GcHandle,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(source: &Source, api: &FakeApiServer, filters: Vec<OwnerFilter>) -> Self {
        let gc = GarbageCollector::new(source.clone(), api.client(), filters).config(gc_config());
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
    let source = SourceWorkClient::start(broker.source("source1"), "source1", initial, options());
    tokio::time::timeout(WAIT, source.wait_until_connected()).await.unwrap();
    source
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
    let broker = FakeBroker::new();
    let api = FakeApiServer::new();
    api.create("configmaps", "default", "cm0", "0");
    let source = source_only(&broker, vec![stored("work0", vec![owner("ConfigMap", "cm0", "0")])]).await;
    let gc = Running::start(&source, &api, owner_filters()).synced().await;
    assert_eq!(
        gc.handle.works_owned_by("0"),
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
    let broker = FakeBroker::new();
    let api = FakeApiServer::new();
    api.create("configmaps", "default", "owner", "456");
    let source = source_only(&broker, vec![]).await;
    let created = source
        .create(
            "cluster1",
            work("to-be-deleted-work", vec![owner("ConfigMap", "owner", "456")]),
        )
        .await
        .unwrap();
    let gc = Running::start(&source, &api, owner_filters()).synced().await;
    assert!(source.get("cluster1", "to-be-deleted-work").is_ok(), "the owner exists");

    api.delete("configmaps", "default", "owner", false);
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
    assert_eq!(deletes[0].event.resource_id().unwrap(), created.uid());
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
                        .patch(w.uid(), PatchType::Merge, br#"{"metadata":{"finalizers":null}}"#)
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
    let broker = FakeBroker::new();
    let api = FakeApiServer::new();
    api.create("configmaps", "default", "test", "123");
    api.create("secrets", "default", "test", "456");
    let source = source_only(&broker, vec![]).await;
    let agent = AgentWorkClient::start(
        broker.agent("cluster1", "cluster1-agent"),
        "cluster1",
        "cluster1-agent",
        AgentCodecs::bundles(),
        options(),
    );
    tokio::time::timeout(WAIT, agent.wait_until_connected()).await.unwrap();

    let cm = owner("ConfigMap", "test", "123");
    let secret = owner("Secret", "test", "456");
    let mut uids = Vec::new();
    for (name, owners) in [("test1", vec![cm.clone()]), ("test2", vec![cm, secret.clone()])] {
        let created = source.create("cluster1", work(name, owners)).await.unwrap();
        uids.push(created.uid().to_owned());
    }
    // The agent applies both works: finalizer and status Created.
    for uid in &uids {
        eventually("the agent to get the work", || agent.get(uid).is_ok()).await;
        agent
            .patch(
                uid,
                PatchType::Merge,
                br#"{"metadata":{"finalizers":["cluster.open-cluster-management.io/manifest-work-cleanup"]}}"#,
            )
            .await
            .unwrap();
        agent
            .patch_status(
                uid,
                PatchType::Merge,
                br#"{"status":{"conditions":[{"type":"Applied","status":"True","reason":"Created","message":"","lastTransitionTime":"2024-10-01T12:00:00Z"}]}}"#,
            )
            .await
            .unwrap();
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

    api.delete("configmaps", "default", "test", false);
    eventually("test1 to be deleted", || source.get("cluster1", "test1").is_err()).await;
    eventually("test2 to keep only the Secret owner", || {
        owners_of(&source, "test2") == ["456"]
    })
    .await;
    assert_eq!(
        source.get("cluster1", "test2").unwrap().metadata.owner_references,
        Some(vec![secret])
    );
    assert!(!source.get("cluster1", "test2").unwrap().is_deleting());

    api.delete("secrets", "default", "test", false);
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
    let broker = FakeBroker::new();
    let api = FakeApiServer::new();
    api.create("configmaps", "default", "alive", "111");
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
            stored("orphan", vec![owner("ConfigMap", "gone", "999")]),
            stored(
                "mixed",
                vec![owner("ConfigMap", "gone", "999"), owner("ConfigMap", "alive", "111")],
            ),
            stored("kept", vec![owner("ConfigMap", "alive", "111")]),
            stored("unwatched-kind", vec![deployment]),
        ],
    )
    .await;
    let gc = Running::start(&source, &api, owner_filters()).synced().await;

    eventually("the orphan to be deleted", || source.get("cluster1", "orphan").is_err()).await;
    eventually("mixed to lose the missing owner", || {
        owners_of(&source, "mixed") == ["111"]
    })
    .await;
    assert_eq!(owners_of(&source, "kept"), ["111"]);
    assert_eq!(owners_of(&source, "unwatched-kind"), ["777"]);
    let metrics = gc.handle.metrics();
    assert_eq!(metrics.missing_owners(), 1, "only ConfigMap 999");
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
    let broker = FakeBroker::new();
    let api = FakeApiServer::new();
    api.create("configmaps", "default", "demo", "5");
    let source = source_only(&broker, vec![stored("w", vec![owner("ConfigMap", "demo", "5")])]).await;
    let filters = vec![OwnerFilter::of::<ConfigMap>().labels("app=demo")];
    let gc = Running::start(&source, &api, filters).synced().await;
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/configmaps?") && r.contains("labelSelector=app%3Ddemo")),
        "the selector narrows the owner watch"
    );

    // The owner's labels changed: the filtered watch reports it deleted, but it exists.
    api.delete("configmaps", "default", "demo", true);
    eventually("the owner lookup", || gc.handle.metrics().live_owners() == 1).await;
    assert!(source.get("cluster1", "w").is_ok());
    assert_eq!(gc.handle.metrics().works_deleted(), 0);

    api.delete("configmaps", "default", "demo", false);
    eventually("the work to be deleted", || source.get("cluster1", "w").is_err()).await;
    gc.stop().await;
}

#[tokio::test]
async fn a_deletion_while_the_broker_is_away_is_kept_and_sent_once_it_is_back() {
    let broker = FakeBroker::new();
    let api = FakeApiServer::new();
    api.create("secrets", "default", "s", "42");
    let source = source_only(&broker, vec![stored("w", vec![owner("Secret", "s", "42")])]).await;
    let gc = Running::start(&source, &api, owner_filters()).synced().await;

    broker.set_down(true);
    broker.disconnect_all();
    eventually("the source to notice", || !source.is_connected()).await;
    api.delete("secrets", "default", "s", false);
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
