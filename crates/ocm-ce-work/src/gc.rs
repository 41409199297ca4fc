//! The garbage collector (Go `work/garbagecollector`): deletes the ManifestWorks whose owner
//! resources were deleted, through the source work client — that is, by publishing
//! `delete_request` events.
//!
//! It watches the metadata of the configured owner kinds through the Kubernetes API
//! (`PartialObjectMetadata` list and watch, optionally narrowed by label and field selectors)
//! and indexes the source's works by the UIDs of their owner references. When an owner is
//! deleted, every work it owns is queued: a work whose only owner it was is deleted, any other
//! loses that owner reference (a JSON Merge Patch
//! `{"metadata":{"resourceVersion":…,"ownerReferences":[the others]}}`). Only background
//! deletion exists, as in Go.
//!
//! Beyond Go:
//! - **Owners already gone are noticed.** After every (re)list of an owner kind, a work that
//!   references an owner of that kind which is not in the list is queued too, so owners deleted
//!   while the collector was not running (or while its watch was down) are collected.
//! - **Inferred deletions are verified.** Such an owner, and an owner a *filtered* watch
//!   reports as deleted (an object that merely stopped matching the selector is reported the
//!   same way), is looked up by name before anything is deleted; a live owner with that UID
//!   keeps its works.
//! - The queue is deduplicated and never runs one item twice at the same time; failures come
//!   back with a per-item exponential back-off; at most [`Config::workers`] items run at once.
//! - Everything runs inside the future [`GarbageCollector::run`] returns: no task is spawned,
//!   and it ends when the shutdown future completes (after finishing the items in flight).
//!
//! ```no_run
//! use k8s_openapi::api::core::v1::{ConfigMap, Secret};
//! use ocm_ce_client::testing::FakeBroker;
//! use ocm_ce_work::client::{SourceWorkClient, WorkClientOptions};
//! use ocm_ce_work::gc::{Config, GarbageCollector, OwnerFilter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let transport = FakeBroker::new().source("source1");
//! let works = SourceWorkClient::start(transport, "source1", Vec::new(), WorkClientOptions::default());
//! let kube = kube::Client::try_default().await?;
//! let gc = GarbageCollector::new(
//!     works,
//!     kube,
//!     [OwnerFilter::of::<ConfigMap>(), OwnerFilter::of::<Secret>().labels("app=demo")],
//! )
//! .config(Config::default().workers(4));
//! let metrics = gc.metrics().clone();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! gc.run(async move {
//!     let _ = stopped.await;
//! })
//! .await;
//! println!("{} works deleted", metrics.works_deleted());
//! # Ok(())
//! # }
//! ```

mod index;

use std::collections::HashSet;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{BoxStream, FuturesUnordered, SelectAll};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use self::index::OwnerIndex;
use crate::api::ManifestWork;
use crate::client::SourceWorkClient;
use crate::error::{Error, Result};
use crate::patch::PatchType;
use crate::queue::WorkQueue;
use crate::store::Store;

/// What the collector needs from a source work client. [`SourceWorkClient`] implements it;
/// tests can implement it over a plain [`Store`].
pub trait WorkApi: Send + Sync + 'static {
    /// The store whose content and changes the collector indexes.
    fn store(&self) -> &Store;

    /// The work `namespace/name` ([`Error::is_not_found`] when it does not exist).
    fn get(&self, namespace: &str, name: &str) -> Result<Arc<ManifestWork>>;

    /// Patches the work `namespace/name`.
    fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        data: &[u8],
    ) -> impl Future<Output = Result<Arc<ManifestWork>>> + Send;

    /// Deletes the work `namespace/name`.
    fn delete(&self, namespace: &str, name: &str) -> impl Future<Output = Result<()>> + Send;
}

impl<Tr: ocm_ce_client::Transport> WorkApi for SourceWorkClient<Tr> {
    fn store(&self) -> &Store {
        Self::store(self)
    }

    fn get(&self, namespace: &str, name: &str) -> Result<Arc<ManifestWork>> {
        Self::get(self, namespace, name)
    }

    fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        data: &[u8],
    ) -> impl Future<Output = Result<Arc<ManifestWork>>> + Send {
        Self::patch(self, namespace, name, patch_type, data)
    }

    fn delete(&self, namespace: &str, name: &str) -> impl Future<Output = Result<()>> + Send {
        Self::delete(self, namespace, name)
    }
}

/// One owner kind to watch (Go's `ownerGVRFilters` entry): its API resource and optional
/// selectors that narrow which owners count.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct OwnerFilter {
    /// Group, version, kind and plural of the owners.
    pub api_resource: ApiResource,
    /// A label selector, e.g. `app=demo`.
    pub label_selector: Option<String>,
    /// A field selector, e.g. `metadata.namespace=default`.
    pub field_selector: Option<String>,
}

impl OwnerFilter {
    /// Every owner of the kind `api_resource`.
    pub fn new(api_resource: ApiResource) -> Self {
        Self {
            api_resource,
            label_selector: None,
            field_selector: None,
        }
    }

    /// Every owner of the statically known kind `K` (e.g. k8s-openapi's `ConfigMap`).
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Self {
        Self::new(ApiResource::erase::<K>(&()))
    }

    /// Only owners matching this label selector.
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_owned());
        self
    }

    /// Only owners matching this field selector.
    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_owned());
        self
    }

    fn is_filtered(&self) -> bool {
        self.label_selector.is_some() || self.field_selector.is_some()
    }

    fn watcher_config(&self) -> watcher::Config {
        let mut config = watcher::Config::default();
        if let Some(labels) = &self.label_selector {
            config = config.labels(labels);
        }
        if let Some(fields) = &self.field_selector {
            config = config.fields(fields);
        }
        config
    }
}

/// Tuning of the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Config {
    /// Items processed at the same time (Go's `workers`). Default 1; 0 counts as 1.
    pub workers: usize,
    /// Back-off after the first failure of an item, doubled per further failure. Default 5 ms
    /// (client-go's default controller rate limiter).
    pub base_delay: Duration,
    /// Longest back-off. Default 1000 s (client-go's default).
    pub max_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            workers: 1,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(1000),
        }
    }
}

impl Config {
    /// Sets [`workers`](Self::workers).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets the back-off range of failed items.
    pub fn backoff(mut self, base_delay: Duration, max_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self.max_delay = max_delay;
        self
    }
}

/// Counters of a collector (prometheus-client; clones share values).
#[derive(Debug, Clone, Default)]
pub struct GcMetrics {
    works_deleted: Counter,
    owner_references_removed: Counter,
    errors: Counter,
    owner_deletions: Counter,
    missing_owners: Counter,
    live_owners: Counter,
    watch_errors: Counter,
}

impl GcMetrics {
    /// Registers the counters under `ocm_ce_gc_*`.
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "ocm_ce_gc_works_deleted",
                "Works deleted because their last owner is gone.",
                &self.works_deleted,
            ),
            (
                "ocm_ce_gc_owner_references_removed",
                "Owner references of deleted owners removed from works that have other owners.",
                &self.owner_references_removed,
            ),
            (
                "ocm_ce_gc_errors",
                "Failed attempts to process a work (retried with back-off).",
                &self.errors,
            ),
            (
                "ocm_ce_gc_owner_deletions",
                "Owner deletions seen on the owner watches.",
                &self.owner_deletions,
            ),
            (
                "ocm_ce_gc_missing_owners",
                "Referenced owners found missing from a (re)list of their kind.",
                &self.missing_owners,
            ),
            (
                "ocm_ce_gc_live_owners",
                "Owners believed deleted that a lookup found alive (their works were kept).",
                &self.live_owners,
            ),
            (
                "ocm_ce_gc_watch_errors",
                "Errors of the owner watches (retried with back-off).",
                &self.watch_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
    }

    /// Works deleted because their last owner was deleted.
    pub fn works_deleted(&self) -> u64 {
        self.works_deleted.get()
    }
    /// Owner references removed from works that still have other owners.
    pub fn owner_references_removed(&self) -> u64 {
        self.owner_references_removed.get()
    }
    /// Failed attempts to process a work (each one is retried with back-off).
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }
    /// Owner deletions seen on the owner watches (of owners some work references).
    pub fn owner_deletions(&self) -> u64 {
        self.owner_deletions.get()
    }
    /// Referenced owners that a (re)list of their kind did not contain.
    pub fn missing_owners(&self) -> u64 {
        self.missing_owners.get()
    }
    /// Owners believed deleted that a lookup found alive.
    pub fn live_owners(&self) -> u64 {
        self.live_owners.get()
    }
    /// Errors of the owner watches.
    pub fn watch_errors(&self) -> u64 {
        self.watch_errors.get()
    }
}

#[derive(Debug)]
struct Shared {
    index: RwLock<OwnerIndex>,
    metrics: GcMetrics,
    synced: watch::Sender<bool>,
}

impl Shared {
    fn index(&self) -> RwLockReadGuard<'_, OwnerIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn index_mut(&self) -> RwLockWriteGuard<'_, OwnerIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cheap, cloneable view of a collector: its owner index, counters and readiness. Stays
/// usable while (and after) [`GarbageCollector::run`] runs.
#[derive(Debug, Clone)]
pub struct GcHandle {
    shared: Arc<Shared>,
}

impl GcHandle {
    /// `(namespace, name)` of the works that reference the owner with this UID, sorted (Go's
    /// `manifestWorkByOwner` index). O(1) to find, plus the size of the answer.
    pub fn works_owned_by(&self, owner_uid: &str) -> Vec<(String, String)> {
        let mut works: Vec<(String, String)> = self
            .shared
            .index()
            .owner(owner_uid)
            .map(|o| o.works.iter().cloned().collect())
            .unwrap_or_default();
        works.sort_unstable();
        works
    }

    /// The counters.
    pub fn metrics(&self) -> &GcMetrics {
        &self.shared.metrics
    }

    /// True once the works are indexed and every owner kind was listed once.
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until [`is_synced`](Self::is_synced) (forever when the collector is not running).
    pub async fn wait_until_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives in `shared`, which `self` keeps alive.
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The garbage collector. Build it with [`new`](Self::new), then drive it with
/// [`run`](Self::run).
#[doc(alias = "NewGarbageCollector")]
pub struct GarbageCollector<C> {
    client: C,
    kube: kube::Client,
    filters: Vec<OwnerFilter>,
    config: Config,
    shared: Arc<Shared>,
}

impl<C> fmt::Debug for GarbageCollector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GarbageCollector")
            .field("filters", &self.filters)
            .field("config", &self.config)
            .field("metrics", &self.shared.metrics)
            .finish_non_exhaustive()
    }
}

/// A work to look at because the owner with `owner_uid` is (believed) gone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Item {
    owner_uid: String,
    namespace: String,
    name: String,
    /// Set when the owner's deletion is inferred: look it up before acting.
    verify: Option<OwnerLookup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OwnerLookup {
    /// Index of the owner's filter.
    filter: usize,
    /// Name of the owner (from the owner reference).
    name: String,
}

/// What processing an item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Deleted,
    OwnerReferenceRemoved,
    /// The work is gone, being deleted, or no longer references the owner.
    NothingToDo,
    /// The owner still exists.
    OwnerAlive,
}

type OwnerEvents = BoxStream<'static, (usize, Result<Event<PartialObjectMeta<DynamicObject>>, watcher::Error>)>;

impl<C: WorkApi> GarbageCollector<C> {
    /// A collector of the works of `client` whose owners, of the kinds in `filters`, are
    /// watched through `kube`.
    pub fn new(client: C, kube: kube::Client, filters: impl IntoIterator<Item = OwnerFilter>) -> Self {
        Self {
            client,
            kube,
            filters: filters.into_iter().collect(),
            config: Config::default(),
            shared: Arc::new(Shared {
                index: RwLock::default(),
                metrics: GcMetrics::default(),
                synced: watch::channel(false).0,
            }),
        }
    }

    /// Sets the tuning.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The counters.
    pub fn metrics(&self) -> &GcMetrics {
        &self.shared.metrics
    }

    /// A handle on the index, counters and readiness.
    pub fn handle(&self) -> GcHandle {
        GcHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs the collector until `shutdown` completes: indexes the works (once the store is
    /// ready), watches the owners, and processes the queue with [`Config::workers`] items at a
    /// time. On shutdown it stops taking new items and returns once the items in flight are
    /// done. Spawns nothing: dropping the future stops everything at once.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self {
            client,
            kube,
            filters,
            config,
            shared,
        } = self;
        let mut shutdown = pin!(shutdown);
        let store = client.store().clone();
        // Subscribe before reading the content, so nothing falls in between (replaying a change
        // the snapshot already holds is harmless: each event carries the whole work).
        let mut work_events = store.watch();
        tokio::select! {
            () = store.wait_until_ready() => {}
            () = &mut shutdown => return,
        }
        shared.index_mut().replace(store.all().iter().map(|w| &**w));
        tracing::info!(
            works = shared.index().len(),
            owner_kinds = filters.len(),
            "garbage collector started"
        );

        let mut owners: SelectAll<OwnerEvents> =
            futures::stream::select_all(filters.iter().enumerate().map(|(i, f)| owner_events(&kube, i, f)));
        let mut listing: Vec<Option<HashSet<String>>> = vec![None; filters.len()];
        let mut listed_once = vec![false; filters.len()];
        if filters.is_empty() {
            shared.synced.send_replace(true);
        }
        let mut queue = WorkQueue::new(config.base_delay, config.max_delay);
        let workers = config.workers.max(1);
        let mut in_flight = FuturesUnordered::new();

        loop {
            while in_flight.len() < workers {
                let Some(item) = queue.pop() else { break };
                in_flight.push(process(&client, &kube, &filters, item));
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some((item, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    let failed = record(&shared.metrics, &item, result);
                    queue.done(item, failed);
                }
                // Work changes before owner events: an owner deleted right after a work was
                // created must find that work in the index.
                Some(event) = work_events.next() => shared.index_mut().apply(&event),
                Some((i, event)) = owners.next(), if !filters.is_empty() => {
                    let filter = &filters[i];
                    match event {
                        Ok(Event::Delete(owner)) => {
                            let uid = owner.metadata.uid.unwrap_or_default();
                            on_owner_deleted(&shared, &mut queue, i, filter, &uid);
                        }
                        Ok(Event::Apply(_)) => {}
                        Ok(Event::Init) => listing[i] = Some(HashSet::new()),
                        Ok(Event::InitApply(owner)) => {
                            if let (Some(set), Some(uid)) = (&mut listing[i], owner.metadata.uid) {
                                set.insert(uid);
                            }
                        }
                        Ok(Event::InitDone) => {
                            let listed = listing[i].take().unwrap_or_default();
                            on_owners_listed(&shared, &mut queue, i, filter, &listed);
                            listed_once[i] = true;
                            if listed_once.iter().all(|l| *l) {
                                shared.synced.send_replace(true);
                            }
                        }
                        Err(e) => {
                            shared.metrics.watch_errors.inc();
                            tracing::warn!(error = %e, kind = %filter.api_resource.kind, "owner watch failed, retrying");
                        }
                    }
                }
                () = poll_fn(|cx| queue.poll_expired(cx)), if queue.has_delayed() => {}
            }
        }
        tracing::info!(
            in_flight = in_flight.len(),
            queued = queue.len(),
            "garbage collector stopping"
        );
        while let Some((item, result)) = in_flight.next().await {
            record(&shared.metrics, &item, result);
        }
    }
}

fn owner_events(kube: &kube::Client, i: usize, filter: &OwnerFilter) -> OwnerEvents {
    let api = Api::<PartialObjectMeta<DynamicObject>>::all_with(kube.clone(), &filter.api_resource);
    watcher::watcher(api, filter.watcher_config())
        .default_backoff()
        .map(move |event| (i, event))
        .boxed()
}

/// An owner watch reported a deletion: queue every work of that owner.
fn on_owner_deleted(shared: &Shared, queue: &mut WorkQueue<Item>, i: usize, filter: &OwnerFilter, uid: &str) {
    let index = shared.index();
    let Some(owner) = index.owner(uid) else {
        return;
    };
    shared.metrics.owner_deletions.inc();
    tracing::debug!(uid, kind = %owner.kind, name = %owner.name, works = owner.works.len(), "owner deleted");
    // A filtered watch also reports an owner that just stopped matching as deleted.
    let verify = filter.is_filtered().then(|| OwnerLookup {
        filter: i,
        name: owner.name.clone(),
    });
    for (namespace, name) in &owner.works {
        queue.add(Item {
            owner_uid: uid.to_owned(),
            namespace: namespace.clone(),
            name: name.clone(),
            verify: verify.clone(),
        });
    }
}

/// An owner kind was (re)listed: queue the works of the referenced owners of that kind that are
/// not in the list (deleted while nobody watched), to be verified before anything is deleted.
fn on_owners_listed(
    shared: &Shared,
    queue: &mut WorkQueue<Item>,
    i: usize,
    filter: &OwnerFilter,
    listed: &HashSet<String>,
) {
    let index = shared.index();
    let ar = &filter.api_resource;
    for (uid, owner) in index.owners_of_kind(&ar.group, &ar.kind) {
        if listed.contains(uid) {
            continue;
        }
        shared.metrics.missing_owners.inc();
        tracing::info!(uid = %uid, kind = %owner.kind, name = %owner.name, "referenced owner missing from the list");
        for (namespace, name) in &owner.works {
            queue.add(Item {
                owner_uid: uid.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                verify: Some(OwnerLookup {
                    filter: i,
                    name: owner.name.clone(),
                }),
            });
        }
    }
}

/// Counts and logs what processing `item` did; true when it failed.
fn record(metrics: &GcMetrics, item: &Item, result: Result<Outcome>) -> bool {
    let (ns, name, owner) = (&item.namespace, &item.name, &item.owner_uid);
    match result {
        Ok(Outcome::Deleted) => {
            metrics.works_deleted.inc();
            tracing::info!(namespace = %ns, name = %name, owner = %owner, "deleted a work whose owner is gone");
        }
        Ok(Outcome::OwnerReferenceRemoved) => {
            metrics.owner_references_removed.inc();
            tracing::info!(namespace = %ns, name = %name, owner = %owner, "removed the owner reference of a deleted owner");
        }
        Ok(Outcome::OwnerAlive) => {
            metrics.live_owners.inc();
            tracing::debug!(namespace = %ns, name = %name, owner = %owner, "the owner exists, keeping the work");
        }
        Ok(Outcome::NothingToDo) => {}
        Err(e) => {
            metrics.errors.inc();
            tracing::warn!(namespace = %ns, name = %name, owner = %owner, error = %e, "garbage collection failed, retrying");
            return true;
        }
    }
    false
}

/// Go's `attemptToDeleteItem` (background policy only).
async fn process<C: WorkApi>(
    client: &C,
    kube: &kube::Client,
    filters: &[OwnerFilter],
    item: Item,
) -> (Item, Result<Outcome>) {
    let result = attempt(client, kube, filters, &item).await;
    (item, result)
}

async fn attempt<C: WorkApi>(client: &C, kube: &kube::Client, filters: &[OwnerFilter], item: &Item) -> Result<Outcome> {
    let Some(work) = owned_work(client, item)? else {
        return Ok(Outcome::NothingToDo);
    };
    let work = match &item.verify {
        None => work,
        Some(lookup) => {
            let filter = filters.get(lookup.filter).ok_or_else(|| Error::Internal {
                reason: format!("no owner filter {}", lookup.filter),
            })?;
            if owner_exists(kube, &filter.api_resource, &lookup.name, &item.owner_uid).await? {
                return Ok(Outcome::OwnerAlive);
            }
            // Read again: the work may have changed during the lookup.
            match owned_work(client, item)? {
                Some(work) => work,
                None => return Ok(Outcome::NothingToDo),
            }
        }
    };
    let refs = work.metadata.owner_references.as_deref().unwrap_or_default();
    let others: Vec<&OwnerReference> = refs.iter().filter(|r| r.uid != item.owner_uid).collect();
    if others.is_empty() {
        client.delete(&item.namespace, &item.name).await?;
        return Ok(Outcome::Deleted);
    }
    // Go's ObjectMetaForOwnerRefsPatch. The source client applies it to its latest copy; the
    // resource version is the one read above, as in Go.
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": work.resource_version_str(),
            "ownerReferences": others,
        }
    });
    let data = serde_json::to_vec(&patch).map_err(|e| Error::Internal { reason: e.to_string() })?;
    client
        .patch(&item.namespace, &item.name, PatchType::Merge, &data)
        .await?;
    Ok(Outcome::OwnerReferenceRemoved)
}

/// The work of `item` if it exists, is not being deleted and still references the owner.
fn owned_work<C: WorkApi>(client: &C, item: &Item) -> Result<Option<Arc<ManifestWork>>> {
    let work = match client.get(&item.namespace, &item.name) {
        Ok(work) => work,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let owned = work
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| r.uid == item.owner_uid);
    Ok((owned && !work.is_deleting()).then_some(work))
}

/// True when an owner named `name` with this UID exists (in any namespace).
async fn owner_exists(kube: &kube::Client, ar: &ApiResource, name: &str, uid: &str) -> Result<bool> {
    if name.is_empty() {
        // A reference without a name cannot be checked; keep the work.
        return Ok(true);
    }
    let api = Api::<PartialObjectMeta<DynamicObject>>::all_with(kube.clone(), ar);
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    let list = api.list_metadata(&params).await.map_err(|source| Error::OwnerLookup {
        kind: ar.kind.clone(),
        name: name.to_owned(),
        source: Box::new(source),
    })?;
    Ok(list.items.iter().any(|o| o.metadata.uid.as_deref() == Some(uid)))
}

#[cfg(test)]
mod tests;
