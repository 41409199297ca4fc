//! The worker against a recording work client (Go's TestAttemptToDeleteItem and friends).

use std::convert::Infallible;
use std::sync::Mutex;

use http::{Request, Response, StatusCode};
use kube::client::Body;

use super::*;
use crate::store::{Writer, store_from};

/// A work client that records every call and applies deletes and patches to its store.
struct Recorder {
    store: Store,
    writer: Writer,
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(works: Vec<ManifestWork>) -> Self {
        let (store, writer) = store_from(works);
        Self {
            store,
            writer,
            calls: Mutex::default(),
        }
    }

    fn log(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl WorkApi for Recorder {
    fn store(&self) -> &Store {
        &self.store
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Arc<ManifestWork>> {
        self.log(format!("GET {namespace}/{name}"));
        self.store.get(namespace, name).ok_or_else(|| Error::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    async fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        data: &[u8],
    ) -> Result<Arc<ManifestWork>> {
        self.log(format!(
            "PATCH {namespace}/{name} {patch_type} {}",
            String::from_utf8_lossy(data)
        ));
        let current = self.get(namespace, name)?;
        let patched = crate::patch::patch(&current, patch_type, data)?;
        Ok(self.writer.upsert(patched))
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<()> {
        self.log(format!("DELETE {namespace}/{name}"));
        self.writer.remove(namespace, name);
        Ok(())
    }
}

/// A Kubernetes client whose API server answers every request with 500.
fn failing_kube() -> kube::Client {
    let service = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Body::from(br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"boom","reason":"InternalError","code":500}"#.to_vec()))
                .unwrap(),
        )
    });
    kube::Client::new(service, "default")
}

fn owner(uid: &str, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: kind.into(),
        name: format!("owner-{uid}"),
        uid: uid.into(),
        ..Default::default()
    }
}

fn work(name: &str, owners: Vec<OwnerReference>) -> ManifestWork {
    let mut w = ManifestWork::new("ns1", name, Vec::new());
    w.metadata.uid = Some(format!("uid-{name}"));
    w.metadata.resource_version = Some("3".into());
    w.metadata.owner_references = Some(owners);
    w
}

fn item(owner_uid: &str, name: &str) -> Item {
    Item {
        owner_uid: owner_uid.into(),
        namespace: "ns1".into(),
        name: name.into(),
        verify: None,
    }
}

fn configmaps() -> Vec<OwnerFilter> {
    vec![OwnerFilter::of::<k8s_openapi::api::core::v1::ConfigMap>()]
}

#[tokio::test]
async fn a_work_whose_only_owner_is_gone_is_fetched_then_deleted() {
    let client = Recorder::new(vec![work("ToBeDeletedWork", vec![owner("456", "ConfigMap")])]);
    let outcome = attempt(&client, &failing_kube(), &configmaps(), &item("456", "ToBeDeletedWork")).await;
    assert_eq!(outcome.unwrap(), Outcome::Deleted);
    assert_eq!(
        client.calls(),
        ["GET ns1/ToBeDeletedWork", "DELETE ns1/ToBeDeletedWork"]
    );
    assert!(client.store.is_empty());
}

#[tokio::test]
async fn a_work_with_other_owners_loses_only_the_gone_owners_reference() {
    let client = Recorder::new(vec![work("w", vec![owner("123", "ConfigMap"), owner("456", "Secret")])]);
    let outcome = attempt(&client, &failing_kube(), &configmaps(), &item("123", "w")).await;
    assert_eq!(outcome.unwrap(), Outcome::OwnerReferenceRemoved);
    let calls = client.calls();
    assert_eq!(calls[0], "GET ns1/w");
    assert_eq!(
        calls[1],
        r#"PATCH ns1/w application/merge-patch+json {"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"Secret","name":"owner-456","uid":"456"}],"resourceVersion":"3"}}"#
    );
    let patched = client.store.get("ns1", "w").unwrap();
    assert_eq!(patched.metadata.owner_references, Some(vec![owner("456", "Secret")]));
}

#[tokio::test]
async fn nothing_happens_to_a_missing_deleting_or_unowned_work() {
    let mut deleting = work("deleting", vec![owner("1", "ConfigMap")]);
    deleting.metadata.deletion_timestamp = Some(crate::api::time_from_chrono(chrono::Utc::now()));
    let client = Recorder::new(vec![deleting, work("other", vec![owner("2", "ConfigMap")])]);
    let kube = failing_kube();
    for (uid, name) in [("1", "missing"), ("1", "deleting"), ("1", "other")] {
        let outcome = attempt(&client, &kube, &configmaps(), &item(uid, name)).await;
        assert_eq!(outcome.unwrap(), Outcome::NothingToDo, "{name}");
    }
    assert!(
        client.calls().iter().all(|c| c.starts_with("GET")),
        "{:?}",
        client.calls()
    );
    assert_eq!(client.store.len(), 2);
}

#[tokio::test]
async fn an_inferred_deletion_is_not_acted_on_when_the_owner_lookup_fails() {
    let client = Recorder::new(vec![work("w", vec![owner("1", "ConfigMap")])]);
    let mut it = item("1", "w");
    it.verify = Some(OwnerLookup {
        filter: 0,
        name: "owner-1".into(),
    });
    let err = attempt(&client, &failing_kube(), &configmaps(), &it).await.unwrap_err();
    assert!(matches!(err, Error::OwnerLookup { .. }), "{err}");
    assert_eq!(client.store.len(), 1, "kept; the item is retried");
}

#[test]
fn the_collector_future_is_send() {
    fn require_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _guard = rt.enter();
    let gc = GarbageCollector::new(Recorder::new(Vec::new()), failing_kube(), configmaps());
    let run = gc.run(std::future::pending());
    require_send(&run);
}
