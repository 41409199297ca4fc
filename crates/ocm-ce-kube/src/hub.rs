//! The hub side: the ManifestWorks of a Kubernetes API server served through a source work
//! client ([`Hub`]).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store as Reflected};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use ocm_ce_client::Transport;
use ocm_ce_work::api::{RESOURCE_VERSION_ANNOTATION, SEQUENCE_ID_ANNOTATION, SOURCE_FINALIZER};
use ocm_ce_work::client::SourceWorkClient;
use ocm_ce_work::gc::{GarbageCollector, OwnerFilter, WorkApi};
use ocm_ce_work::store::{Store, WatchEvent};
use ocm_ce_work::{ManifestWork, ManifestWorkStatus, ObjectMeta, PatchType, status_hash, work_uid};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The finalizer the hub puts on the ManifestWorks it serves: the object stays until the agent
/// acknowledged its deletion. Named after the Go SDK's finalizers of hub-side cloudevents
/// stores (`cloudevents.open-cluster-management.io/<resource>-cleanup`, e.g. its CSR store's),
/// and distinct from the work agent's `cluster.open-cluster-management.io/manifest-work-cleanup`
/// so a Kubernetes-native work agent and this hub never remove each other's.
pub const HUB_FINALIZER: &str = "cloudevents.open-cluster-management.io/source-cleanup";

/// Options of a [`Hub`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct HubConfig {
    /// Serve only the ManifestWorks matching this label selector (all by default).
    pub label_selector: Option<String>,
    /// Every work is reconciled at least this often (failed requests are retried then).
    /// Default 5 s; at least 10 ms.
    pub resync_interval: Duration,
    /// Owner kinds of the garbage collector ([`ocm_ce_work::gc`]): a ManifestWork whose owners
    /// (owner references of these kinds) are all deleted is deleted from the hub API; one that
    /// loses some of its owners loses their references. None by default (no collector runs). A
    /// full cluster's own garbage collector (kube-controller-manager) does the same for owners
    /// in the hub API; this one also serves API servers without it, as the Go SDK's does.
    pub gc_owners: Vec<OwnerFilter>,
    /// At most this many works are reconciled at the same time (each one's requests in order).
    /// Default 8.
    pub workers: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            label_selector: None,
            resync_interval: Duration::from_secs(5),
            gc_owners: Vec::new(),
            workers: 8,
        }
    }
}

impl HubConfig {
    /// Sets [`label_selector`](Self::label_selector).
    pub fn label_selector(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    ocm_ce_core::builder_setters! {
        /// Sets [`resync_interval`](Self::resync_interval).
        fn resync_interval(interval: Duration) => resync_interval;
        /// Sets [`workers`](Self::workers).
        fn workers(workers: usize) => workers;
    }

    /// Adds an owner kind of the garbage collector ([`gc_owners`](Self::gc_owners)).
    pub fn gc_owner(mut self, owner: OwnerFilter) -> Self {
        self.gc_owners.push(owner);
        self
    }

    fn list_params(&self) -> ListParams {
        match &self.label_selector {
            Some(s) => ListParams::default().labels(s),
            None => ListParams::default(),
        }
    }

    fn watcher_config(&self) -> watcher::Config {
        match &self.label_selector {
            Some(s) => watcher::Config::default().labels(s),
            None => watcher::Config::default(),
        }
    }
}

/// The ManifestWorks of the hub as the initial works of the source client of `source_id`
/// ([`SourceWorkClient::start`]): their specs, the statuses written into them, and the
/// deletions in progress, so a restarted hub resumes where it stopped. Works whose deletion the
/// hub already finished (no [`HUB_FINALIZER`] left) are left out.
pub async fn hub_works(kube: &kube::Client, source_id: &str, config: &HubConfig) -> Result<Vec<ManifestWork>> {
    let api = Api::<ManifestWork>::all(kube.clone());
    let listed = api
        .list(&config.list_params())
        .await
        .map_err(|e| Error::kube("failed to list the ManifestWorks of the hub", e))?;
    Ok(listed
        .items
        .iter()
        .filter(|w| !w.is_deleting() || has_finalizer(w))
        .map(|w| {
            let mut work = source_copy(w, None);
            work.metadata.uid = Some(work_uid(source_id, w.namespace_str(), w.name()));
            work.metadata.resource_version = Some(generation(w));
            work.metadata.deletion_timestamp = w.metadata.deletion_timestamp.clone();
            work.status = w.status.clone();
            if status_reported(&w.status) {
                // An agent reported on it: a deletion waits for its acknowledgement.
                work.metadata.finalizers = Some(vec![SOURCE_FINALIZER.to_owned()]);
            }
            work
        })
        .collect())
}

/// The hub side: serves the ManifestWorks kept in a Kubernetes API server (the hub) to agents
/// through a [`SourceWorkClient`], the way OCM's hub serves them to its work agents.
///
/// [`run`](Self::run) watches the ManifestWorks of the hub (all namespaces; a namespace is a
/// cluster) through a kube-rs reflector — the Go SDK's informer-backed source store — and keeps the
/// source client's works equal to them:
///
/// - a ManifestWork that appears is created in the source (its spec is published), after the
///   hub's finalizer [`HUB_FINALIZER`] was added to it; a change of it (spec, labels,
///   annotations, owner references) patches the source's copy (an `update_request` when the
///   spec changed). The resource version the agents see is the object's `metadata.generation`,
///   so the `observedGeneration` they report is the hub object's generation;
/// - every status the agents report is written into the object's `status` subresource, unless
///   the object already has it (their status hashes are compared, and the hash last written is
///   remembered, so a status is never rewritten needlessly);
/// - a ManifestWork being deleted (a `deletionTimestamp`) is deleted in the source (a
///   `delete_request`); the finalizer is removed once the agent acknowledged the deletion
///   (`Deleted`), or at once when the work was never sent. A ManifestWork removed from the API
///   without the finalizer is deleted in the source too, and so is one that stops matching
///   [`HubConfig::label_selector`] (it loses the finalizer: the hub no longer serves it).
///
/// Up to [`HubConfig::workers`] works are reconciled at a time; with [`HubConfig::gc_owners`],
/// the garbage collector of `ocm-ce-work` runs alongside, deleting works from the hub API when
/// their owners are gone.
///
/// The loop is level-triggered: each change of an API object or of a source work reconciles that
/// work from both sides, and every [`HubConfig::resync_interval`] all works are (so a failed
/// request is retried and a missed event repaired). On a restart, [`hub_works`] lists the
/// API's ManifestWorks with their statuses as the source client's initial works
/// ([`SourceWorkClient::start`]): specs are sent again (agents ignore versions they have), the
/// status resync asks agents only for statuses whose hash changed, and deletions in progress
/// complete.
///
/// ```no_run
/// use ocm_ce_client::{AnyTransport, TransportConfig, TransportKind};
/// use ocm_ce_kube::{Hub, HubConfig, client_from_kubeconfig, hub_works};
/// use ocm_ce_work::client::{SourceWorkClient, WorkClientOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let kube = client_from_kubeconfig(Some("hub.kubeconfig".as_ref())).await?;
/// let config = HubConfig::default();
/// let initial = hub_works(&kube, "source1", &config).await?;
/// let transport_config = TransportConfig::load(TransportKind::Grpc, "grpc.yaml")?;
/// let transport = AnyTransport::source(&transport_config, "source1", "source1-client")?;
/// let source = SourceWorkClient::start(transport, "source1", initial, WorkClientOptions::default());
/// Hub::new(kube, source.clone(), config)
///     .run(async { let _ = tokio::signal::ctrl_c().await; })
///     .await;
/// source.close(std::time::Duration::from_secs(5)).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Hub<Tr: Transport> {
    api: Api<ManifestWork>,
    source: SourceWorkClient<Tr>,
    config: HubConfig,
    /// The status hash last written into each object, by (namespace, name).
    written: Mutex<HashMap<Key, String>>,
}

type Key = (String, String);

/// What woke the hub up.
enum Wake {
    /// A change of one work (its API object or its source copy).
    Work(Key),
    /// The first or a new complete list of the API objects.
    Listed,
    /// Time (or a reason) to reconcile every work.
    All,
    /// Nothing happened (a watch restart, a watch error that was logged).
    Nothing,
    /// A stream ended: the hub stops.
    Ended,
}

impl Wake {
    fn object(ev: Option<Result<Event<ManifestWork>, watcher::Error>>) -> Self {
        match ev {
            None => Self::Ended,
            Some(Ok(Event::Apply(w) | Event::Delete(w) | Event::InitApply(w))) => Self::Work(key_of(&w)),
            Some(Ok(Event::InitDone)) => Self::Listed,
            Some(Ok(Event::Init)) => Self::Nothing,
            Some(Err(e)) => {
                tracing::warn!(error = %ocm_ce_client::Report(&e), "watching the ManifestWorks of the hub");
                Self::Nothing
            }
        }
    }

    fn change(ev: Option<WatchEvent>) -> Self {
        match ev {
            None => Self::Ended,
            Some(WatchEvent::Added(w) | WatchEvent::Modified(w) | WatchEvent::Deleted(w)) => Self::Work(key_of(&w)),
            Some(WatchEvent::Relisted(_)) => Self::All,
        }
    }
}

/// The shortest resync interval (a zero one would reconcile without a pause).
const MIN_RESYNC_INTERVAL: Duration = Duration::from_millis(10);

/// At most this many events are gathered into one batch of reconciliations.
const MAX_BATCH: usize = 1024;

fn key_of(w: &ManifestWork) -> Key {
    (w.namespace_str().to_owned(), w.name().to_owned())
}

fn has_finalizer(w: &ManifestWork) -> bool {
    w.finalizers().iter().any(|f| f == HUB_FINALIZER)
}

fn status_reported(status: &ManifestWorkStatus) -> bool {
    !status.conditions.is_empty() || !status.resource_status.manifests.is_empty()
}

/// The resource version agents see: the object's generation.
fn generation(w: &ManifestWork) -> String {
    w.metadata.generation.unwrap_or(0).to_string()
}

/// What the source holds of hub object `w`: name, namespace, labels, annotations (with the
/// generation as the cloudevents resource version, and `sequence_id`, the sequence id of the
/// last status the source accepted), owner references, spec.
fn source_copy(w: &ManifestWork, sequence_id: Option<&str>) -> ManifestWork {
    let mut annotations = w.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(SEQUENCE_ID_ANNOTATION);
    annotations.insert(RESOURCE_VERSION_ANNOTATION.to_owned(), generation(w));
    if let Some(seq) = sequence_id {
        annotations.insert(SEQUENCE_ID_ANNOTATION.to_owned(), seq.to_owned());
    }
    ManifestWork {
        types: None,
        metadata: ObjectMeta {
            name: w.metadata.name.clone(),
            namespace: w.metadata.namespace.clone(),
            labels: w.metadata.labels.clone().filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            owner_references: w.metadata.owner_references.clone().filter(|o| !o.is_empty()),
            creation_timestamp: w.metadata.creation_timestamp.clone(),
            ..ObjectMeta::default()
        },
        spec: w.spec.clone(),
        status: ManifestWorkStatus::default(),
    }
}

/// True when the source's copy `stored` differs from `desired` in what the hub keeps equal.
fn differs(desired: &ManifestWork, stored: &ManifestWork) -> bool {
    desired.spec != stored.spec
        || desired.metadata.labels.clone().unwrap_or_default() != stored.metadata.labels.clone().unwrap_or_default()
        || desired.metadata.annotations != stored.metadata.annotations
        || desired.metadata.owner_references.clone().unwrap_or_default()
            != stored.metadata.owner_references.clone().unwrap_or_default()
}

/// A JSON Merge Patch that makes an object's status exactly `status` (fields it lacks are
/// removed, not kept).
fn status_patch(status: &ManifestWorkStatus) -> Result<Value> {
    let mut value = serde_json::to_value(status).map_err(|e| Error::InvalidManifest {
        reason: format!("failed to encode a status: {e}"),
    })?;
    if let Some(map) = value.as_object_mut() {
        map.entry("conditions").or_insert(Value::Null);
        let resource_status = map.entry("resourceStatus").or_insert_with(|| json!({}));
        if let Some(rs) = resource_status.as_object_mut() {
            rs.entry("manifests").or_insert(Value::Null);
        }
    }
    Ok(json!({ "status": value }))
}

impl<Tr: Transport> Hub<Tr> {
    /// A hub serving the ManifestWorks of `kube` through `source` (started with [`hub_works`]).
    pub fn new(kube: kube::Client, source: SourceWorkClient<Tr>, config: HubConfig) -> Self {
        Self {
            api: Api::all(kube),
            source,
            config,
            written: Mutex::default(),
        }
    }

    /// Runs until `shutdown` completes (the source client stays open: close it after), with the
    /// garbage collector when [`HubConfig::gc_owners`] names owner kinds.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let owners = std::mem::take(&mut self.config.gc_owners);
        if owners.is_empty() {
            return self.serve(shutdown).await;
        }
        let works = HubWorks {
            api: self.api.clone(),
            source: self.source.clone(),
        };
        let gc = GarbageCollector::new(works, self.api.clone().into_client(), owners);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let collect = gc.run(async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
        });
        let serve = async {
            self.serve(shutdown).await;
            stop.send_replace(true);
        };
        tokio::join!(collect, serve);
    }

    async fn serve(&self, shutdown: impl Future<Output = ()>) {
        let (reader, writer) = reflector::store::<ManifestWork>();
        let mut objects = pin!(reflector(
            writer,
            watcher(self.api.clone(), self.config.watcher_config()).default_backoff()
        ));
        let mut changes = self.source.watch();
        let mut ticks = tokio::time::interval(self.config.resync_interval.max(MIN_RESYNC_INTERVAL));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = pin!(shutdown);
        // Nothing is reconciled before the first complete list: an object not listed yet is not
        // an object deleted.
        let mut listed = false;
        let mut dirty = BTreeSet::new();
        // The last error of each work that failed, so a lasting one is logged once.
        let mut failing: HashMap<Key, String> = HashMap::new();
        loop {
            let mut wake = tokio::select! {
                ev = objects.next() => Wake::object(ev),
                ev = changes.next() => Wake::change(ev),
                _ = ticks.tick() => Wake::All,
                () = &mut shutdown => return,
            };
            // Whatever else is ready joins the same batch (bounded, so a flood cannot starve
            // the reconciliation).
            for _ in 0..MAX_BATCH {
                match wake {
                    Wake::Ended => return,
                    Wake::Work(key) => {
                        dirty.insert(key);
                    }
                    Wake::Listed => {
                        listed = true;
                        self.all_keys(&reader, &mut dirty);
                    }
                    Wake::All => self.all_keys(&reader, &mut dirty),
                    Wake::Nothing => {}
                }
                wake = if let Some(ev) = objects.next().now_or_never() {
                    Wake::object(ev)
                } else if let Some(ev) = changes.next().now_or_never() {
                    Wake::change(ev)
                } else {
                    break;
                };
            }
            if listed {
                // A batch of distinct works at a time, so one work's reconciliations never
                // overlap.
                let batch: Vec<Key> = std::mem::take(&mut dirty).into_iter().collect();
                let results: Vec<(Key, Result<()>)> = futures::stream::iter(batch)
                    .map(|key| {
                        let reader = &reader;
                        async move {
                            let result = self.reconcile(reader, &key).await;
                            (key, result)
                        }
                    })
                    .buffer_unordered(self.config.workers.max(1))
                    .collect()
                    .await;
                for (key, result) in results {
                    match result {
                        Ok(()) => {
                            failing.remove(&key);
                        }
                        // Retried at the next resync; logged once until it changes.
                        Err(e) => {
                            let error = ocm_ce_client::Report(&e).to_string();
                            if failing.get(&key) != Some(&error) {
                                tracing::warn!(work = %format!("{}/{}", key.0, key.1), %error, "cannot reconcile a ManifestWork of the hub");
                                failing.insert(key, error);
                            }
                        }
                    }
                }
            }
        }
    }

    fn all_keys(&self, reader: &Reflected<ManifestWork>, dirty: &mut BTreeSet<Key>) {
        dirty.extend(reader.state().iter().map(|w| key_of(w)));
        dirty.extend(self.source.store().all().iter().map(|w| key_of(w)));
    }

    fn written(&self) -> MutexGuard<'_, HashMap<Key, String>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn namespaced(&self, namespace: &str) -> Api<ManifestWork> {
        Api::namespaced(self.api.clone().into_client(), namespace)
    }

    /// Brings the source's copy of `key` and the hub object to agree.
    async fn reconcile(&self, reader: &Reflected<ManifestWork>, key: &Key) -> Result<()> {
        let (ns, name) = (key.0.as_str(), key.1.as_str());
        let object = reader.get(&ObjectRef::new(name).within(ns));
        let stored = self.source.store().get(ns, name);
        let Some(object) = object else {
            // Gone from the API (deleted without the finalizer), or it no longer matches the
            // selector: the hub no longer serves it.
            self.written().remove(key);
            if stored.is_some_and(|s| !s.is_deleting()) {
                tracing::info!(work = %format!("{ns}/{name}"), "the ManifestWork is no longer served; deleting it");
                self.source.delete(ns, name).await.map_err(work_error(name))?;
                // An object that stopped matching must not keep a finalizer nobody removes.
                let unserved = self
                    .namespaced(ns)
                    .get_opt(name)
                    .await
                    .map_err(|e| Error::kube(format!("failed to get ManifestWork {ns}/{name}"), e))?;
                if let Some(unserved) = unserved.filter(has_finalizer) {
                    self.set_finalizer(&unserved, false).await?;
                }
            }
            return Ok(());
        };
        if object.is_deleting() {
            return match stored {
                Some(s) if !s.is_deleting() => {
                    tracing::info!(work = %format!("{ns}/{name}"), "deleting");
                    self.source.delete(ns, name).await.map_err(work_error(name))
                }
                // The agent has not acknowledged the deletion yet; what it reports meanwhile
                // is shown.
                Some(s) => self.write_status(&object, &s.status).await,
                None if has_finalizer(&object) => {
                    tracing::info!(work = %format!("{ns}/{name}"), "deleted on the managed cluster; removing the finalizer");
                    self.written().remove(key);
                    self.set_finalizer(&object, false).await
                }
                None => Ok(()),
            };
        }
        if !has_finalizer(&object) {
            // Before anything is sent: a deletion from now on waits for the agent.
            return self.set_finalizer(&object, true).await;
        }
        match stored {
            None => {
                let created = self
                    .source
                    .create(ns, source_copy(&object, None))
                    .await
                    .map_err(work_error(name))?;
                tracing::info!(work = %format!("{ns}/{name}"), version = %created.resource_version_str(), "created");
                Ok(())
            }
            // An earlier object of this name is still being deleted; created once it is gone.
            Some(s) if s.is_deleting() => Ok(()),
            Some(s) => {
                let desired = source_copy(&object, s.annotation(SEQUENCE_ID_ANNOTATION));
                if differs(&desired, &s) {
                    self.update(&desired).await?;
                }
                self.write_status(&object, &s.status).await
            }
        }
    }

    /// Patches the source's copy to `desired` (an `update_request` to the agent).
    async fn update(&self, desired: &ManifestWork) -> Result<()> {
        let patch = json!([
            {"op": "add", "path": "/spec", "value": desired.spec},
            {"op": "add", "path": "/metadata/labels", "value": desired.metadata.labels.clone().unwrap_or_default()},
            {"op": "add", "path": "/metadata/annotations", "value": desired.metadata.annotations},
            {"op": "add", "path": "/metadata/ownerReferences", "value": desired.metadata.owner_references.clone().unwrap_or_default()},
        ]);
        let updated = self
            .source
            .patch(
                desired.namespace_str(),
                desired.name(),
                PatchType::Json,
                patch.to_string().as_bytes(),
            )
            .await
            .map_err(work_error(desired.name()))?;
        tracing::info!(work = %format!("{}/{}", desired.namespace_str(), desired.name()), version = %updated.resource_version_str(), "updated");
        Ok(())
    }

    /// Writes `status` (what the agent reported) into `object`'s status subresource unless it
    /// has it already.
    async fn write_status(&self, object: &ManifestWork, status: &ManifestWorkStatus) -> Result<()> {
        if !status_reported(status) {
            return Ok(());
        }
        let hash = status_hash(status);
        let key = key_of(object);
        if status_hash(&object.status) == hash || self.written().get(&key) == Some(&hash) {
            return Ok(());
        }
        self.namespaced(object.namespace_str())
            .patch_status(
                object.name(),
                &PatchParams::default(),
                &Patch::Merge(status_patch(status)?),
            )
            .await
            .map_err(|e| {
                Error::kube(
                    format!(
                        "failed to write the status of ManifestWork {}/{}",
                        object.namespace_str(),
                        object.name()
                    ),
                    e,
                )
            })?;
        tracing::debug!(work = %format!("{}/{}", key.0, key.1), hash, "status written");
        self.written().insert(key, hash);
        Ok(())
    }

    /// Adds or removes [`HUB_FINALIZER`] (optimistically: a stale object is a conflict, retried).
    async fn set_finalizer(&self, object: &ManifestWork, present: bool) -> Result<()> {
        let mut finalizers: Vec<&str> = object
            .finalizers()
            .iter()
            .map(String::as_str)
            .filter(|f| *f != HUB_FINALIZER)
            .collect();
        if present {
            finalizers.push(HUB_FINALIZER);
        }
        let patch = json!({"metadata": {"resourceVersion": object.resource_version_str(), "finalizers": finalizers}});
        match self
            .namespaced(object.namespace_str())
            .patch(object.name(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            // Gone meanwhile: nothing to finish.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::kube(
                format!(
                    "failed to {} the finalizer of ManifestWork {}/{}",
                    if present { "add" } else { "remove" },
                    object.namespace_str(),
                    object.name()
                ),
                e,
            )),
        }
    }
}

/// The hub's works as the garbage collector sees them: read from the source's copies (which carry
/// the objects' owner references), changed and deleted in the hub API (the hub then does the
/// rest, as for any other change).
#[derive(Debug)]
struct HubWorks<Tr: Transport> {
    /// The hub's ManifestWorks (all namespaces).
    api: Api<ManifestWork>,
    source: SourceWorkClient<Tr>,
}

fn api_error(namespace: &str, name: &str, e: kube::Error) -> ocm_ce_work::Error {
    match &e {
        kube::Error::Api(s) if s.code == 404 => ocm_ce_work::Error::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
        kube::Error::Api(s) if s.code == 409 => ocm_ce_work::Error::Conflict {
            reason: s.message.clone(),
        },
        _ => ocm_ce_work::Error::Internal {
            reason: format!(
                "ManifestWork {namespace}/{name} in the hub API: {}",
                ocm_ce_client::Report(&e)
            ),
        },
    }
}

impl<Tr: Transport> WorkApi for HubWorks<Tr> {
    fn store(&self) -> &Store {
        self.source.store()
    }

    fn get(&self, namespace: &str, name: &str) -> ocm_ce_work::Result<Arc<ManifestWork>> {
        self.source.get(namespace, name)
    }

    fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        data: &[u8],
    ) -> impl Future<Output = ocm_ce_work::Result<Arc<ManifestWork>>> + Send {
        let api = Api::<ManifestWork>::namespaced(self.api.clone().into_client(), namespace);
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        let parsed = serde_json::from_slice::<Value>(data);
        async move {
            let mut value = parsed.map_err(|e| ocm_ce_work::Error::PatchFailed { reason: e.to_string() })?;
            // The collector's precondition is the source's version (the generation), not the
            // API's resource version.
            if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("resourceVersion");
            }
            let patch = match patch_type {
                PatchType::Merge => Patch::Merge(value),
                PatchType::Json => {
                    return Err(ocm_ce_work::Error::UnsupportedPatchType {
                        patch_type: patch_type.to_string(),
                    });
                }
            };
            api.patch(&name, &PatchParams::default(), &patch)
                .await
                .map(Arc::new)
                .map_err(|e| api_error(&namespace, &name, e))
        }
    }

    fn delete(&self, namespace: &str, name: &str) -> impl Future<Output = ocm_ce_work::Result<()>> + Send {
        let api = Api::<ManifestWork>::namespaced(self.api.clone().into_client(), namespace);
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        async move {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(api_error(&namespace, &name, e)),
            }
        }
    }
}

fn work_error(name: &str) -> impl FnOnce(ocm_ce_work::Error) -> Error + '_ {
    move |e| Error::Work {
        name: name.to_owned(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use ocm_ce_work::api::condition;

    fn object() -> ManifestWork {
        let mut w = ManifestWork::new("cluster1", "work1", Vec::new());
        w.metadata.generation = Some(3);
        w.metadata.uid = Some("api-uid".into());
        w.metadata.resource_version = Some("12345".into());
        w.metadata.finalizers = Some(vec![HUB_FINALIZER.to_owned()]);
        w.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "demo".to_owned())]));
        w.metadata.annotations = Some(BTreeMap::from([(SEQUENCE_ID_ANNOTATION.to_owned(), "7".to_owned())]));
        w
    }

    #[test]
    fn the_source_copy_carries_the_generation_as_its_version_and_none_of_the_api_bookkeeping() {
        let copy = source_copy(&object(), Some("42"));
        assert_eq!(copy.source_resource_version(), "3");
        assert_eq!(
            copy.annotation(SEQUENCE_ID_ANNOTATION),
            Some("42"),
            "the source's, not the object's"
        );
        assert_eq!(copy.label("app"), Some("demo"));
        assert!(copy.uid_str().is_empty() && copy.resource_version_str().is_empty());
        assert!(copy.finalizers().is_empty());
        assert!(!differs(&copy, &copy));
        let mut newer = object();
        newer.metadata.generation = Some(4);
        assert!(differs(&source_copy(&newer, Some("42")), &copy));
    }

    #[test]
    fn a_status_patch_removes_what_the_new_status_lacks() {
        let patch = status_patch(&ManifestWorkStatus::default()).unwrap();
        assert_eq!(
            patch,
            json!({"status": {"conditions": null, "resourceStatus": {"manifests": null}}})
        );
        let mut status = ManifestWorkStatus::default();
        let mut applied = condition("Applied", "True", "AppliedManifestWorkComplete", "", None);
        applied.observed_generation = Some(3);
        status.conditions.push(applied);
        let patch = status_patch(&status).unwrap();
        assert_eq!(patch["status"]["conditions"][0]["observedGeneration"], 3);
        assert_eq!(patch["status"]["resourceStatus"]["manifests"], Value::Null);
        assert!(status_reported(&status));
    }
}
