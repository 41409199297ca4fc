//! The applier: drives an agent work client's works to the cluster.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::{Future, poll_fn};
use std::hash::{Hash, Hasher};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use ocm_ce_client::Transport;
use ocm_ce_work::api::{MANIFEST_WORK_FINALIZER, condition_type};
use ocm_ce_work::client::AgentWorkClient;
use ocm_ce_work::conditions::set_status_condition;
use ocm_ce_work::queue::WorkQueue;
use ocm_ce_work::store::WatchEvent;
use ocm_ce_work::{
    DeletePropagationPolicy, ManifestCondition, ManifestConfigOption, ManifestResourceMeta, ManifestWork,
    ManifestWorkStatus, StatusFeedbackResult, UpdateStrategyType,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::applied::{AppliedManifestResourceMeta, AppliedManifestWork, applied_manifest_work_name, recorded_works};
use crate::apply::{ParseError, Parsed, Target, Writer, parse};
use crate::client::rate_limited;
use crate::config::ApplierConfig;
use crate::delete::delete_applied_resources;
use crate::error::{Error, Result};
use crate::feedback::{Gvk, Reader};
use crate::resolver::Resolver;
use crate::status::{
    Availability, applied_condition, available_condition, feedback_condition, merge_manifest_conditions, now,
    observed_generation, work_applied_condition, work_available_condition,
};

/// Counters of an applier (prometheus-client; clones share values).
#[derive(Debug, Clone, Default)]
pub struct ApplierMetrics {
    applies: Counter,
    manifest_failures: Counter,
    status_updates: Counter,
    resources_deleted: Counter,
    works_deleted: Counter,
    errors: Counter,
    in_flight: Arc<AtomicUsize>,
    peak_in_flight: Arc<AtomicUsize>,
}

impl ApplierMetrics {
    /// Registers the counters under `ocm_ce_kube_*`.
    pub fn register(&self, registry: &mut Registry) {
        for (name, help, counter) in [
            (
                "ocm_ce_kube_applies",
                "Works applied to the cluster (all their manifests)",
                &self.applies,
            ),
            (
                "ocm_ce_kube_manifest_failures",
                "Manifests whose apply failed (reported Applied=False)",
                &self.manifest_failures,
            ),
            (
                "ocm_ce_kube_status_updates",
                "Work statuses reported",
                &self.status_updates,
            ),
            (
                "ocm_ce_kube_resources_deleted",
                "Applied resources deleted (dropped from a work or of a deleted work)",
                &self.resources_deleted,
            ),
            (
                "ocm_ce_kube_works_deleted",
                "Deleted works whose resources were cleaned up and whose finalizer was removed",
                &self.works_deleted,
            ),
            (
                "ocm_ce_kube_errors",
                "Reconciles that failed (retried with back-off)",
                &self.errors,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
    }

    /// Works applied (every manifest of the work, once per spec change and periodically).
    pub fn applies(&self) -> u64 {
        self.applies.get()
    }
    /// Manifests whose apply failed.
    pub fn manifest_failures(&self) -> u64 {
        self.manifest_failures.get()
    }
    /// Work statuses reported.
    pub fn status_updates(&self) -> u64 {
        self.status_updates.get()
    }
    /// Applied resources deleted.
    pub fn resources_deleted(&self) -> u64 {
        self.resources_deleted.get()
    }
    /// Deleted works finished (resources cleaned up, finalizer removed).
    pub fn works_deleted(&self) -> u64 {
        self.works_deleted.get()
    }
    /// Reconciles that failed.
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }
    /// Works being reconciled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
    /// The most works ever reconciled at the same time.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::Relaxed)
    }

    fn start(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
    }

    fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a reconcile asks of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Nothing until the work changes or the next status sync.
    Done,
    /// Look again after the back-off (a manifest failed).
    Retry,
    /// Look again after the deletion recheck interval (resources are being finalized).
    Waiting,
}

/// What the applier remembers of a work it applied.
#[derive(Debug, Clone, Copy)]
struct Applied {
    spec: u64,
    at: Instant,
    /// Every manifest applied, or failed only with a server-side apply conflict.
    clean: bool,
}

/// One manifest's apply result.
struct ManifestResult {
    meta: ManifestResourceMeta,
    /// The target, once the kind resolved.
    target: Option<Target>,
    /// The object as the server has it after the write (none for ReadOnly, or on failure).
    object: Option<Value>,
    error: Option<Error>,
    /// A server-side apply conflict: reported, not retried (OCM's rule).
    conflict: bool,
}

impl ManifestResult {
    /// A manifest that failed before it was written (it did not parse, or its kind did not
    /// resolve).
    fn failed(meta: ManifestResourceMeta, error: Error) -> Self {
        Self {
            meta,
            target: None,
            object: None,
            error: Some(error),
            conflict: false,
        }
    }
}

/// Applies the ManifestWorks of an agent to a Kubernetes cluster, as OCM's work agent does.
///
/// [`run`](Self::run) watches the works of an [`AgentWorkClient`] and, for each, adds the agent
/// finalizer, records the work in an [`AppliedManifestWork`], applies every manifest (any kind,
/// found by discovery; CustomResourceDefinitions first, waiting until they are established)
/// with its update strategy, and reports the status (per-manifest `Applied`, `Available`,
/// `StatusFeedbackSynced` and feedback values; work-level `Applied` and `Available`). Manifests
/// dropped from a work are deleted unless another work still owns them; a deleted work's
/// resources are deleted (or orphaned, per its delete option) before the finalizer is removed,
/// which makes the agent client report the work `Deleted`.
///
/// Works are reconciled concurrently, up to [`ApplierConfig::workers`] at a time and each by
/// one task at a time; a work changed while it is reconciled is reconciled again afterwards
/// with its latest spec. Requests to the API server are limited to
/// [`ApplierConfig::rate_limit`].
///
/// ```no_run
/// use ocm_ce_client::testing::FakeBroker;
/// use ocm_ce_kube::{ApplierConfig, KubeApplier, client_from_kubeconfig, hub_hash};
/// use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, WorkClientOptions};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// # let transport = FakeBroker::new().agent("cluster1", "agent1");
/// let kube = client_from_kubeconfig(None).await?;
/// let applier = KubeApplier::new(kube, ApplierConfig::new(hub_hash("broker.example:8090"), "agent1"));
/// // Works recorded before a restart, so that deletions made meanwhile complete.
/// let recorded = applier.recorded_works("cluster1").await?;
/// let agent = AgentWorkClient::start_with_works(
///     transport,
///     "cluster1",
///     "agent1",
///     AgentCodecs::bundles(),
///     WorkClientOptions::default(),
///     recorded,
/// );
/// applier.run(&agent, async { let _ = tokio::signal::ctrl_c().await; }).await;
/// # Ok(())
/// # }
/// ```
#[doc(alias = "ManifestWorkController")]
pub struct KubeApplier {
    client: kube::Client,
    config: ApplierConfig,
    resolver: Resolver,
    reader: Reader,
    applied: Mutex<HashMap<String, Applied>>,
    metrics: ApplierMetrics,
}

impl fmt::Debug for KubeApplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeApplier")
            .field("config", &self.config)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl KubeApplier {
    /// An applier writing to the cluster of `client` (its requests limited to
    /// [`ApplierConfig::rate_limit`]).
    pub fn new(client: kube::Client, config: ApplierConfig) -> Self {
        let client = rate_limited(client, config.rate_limit);
        Self {
            resolver: Resolver::new(client.clone()),
            reader: Reader {
                raw_json: config.raw_json_feedback,
                max_json_raw_length: config.max_json_raw_length,
            },
            client,
            config,
            applied: Mutex::default(),
            metrics: ApplierMetrics::default(),
        }
    }

    /// The counters.
    pub fn metrics(&self) -> &ApplierMetrics {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &ApplierConfig {
        &self.config
    }

    /// The (rate-limited) client the applier writes with.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The works of `cluster_name` this agent (hub hash and agent id of the configuration)
    /// recorded in the cluster (see [`recorded_works`]): start the agent work client with them
    /// so that deletions made while the agent was down complete.
    pub async fn recorded_works(&self, cluster_name: &str) -> Result<Vec<ManifestWork>> {
        recorded_works(&self.client, &self.config.hub_hash, &self.config.agent_id, cluster_name).await
    }

    fn writer(&self) -> Writer<'_> {
        Writer {
            client: &self.client,
            field_manager: &self.config.field_manager,
        }
    }

    fn applied_state(&self) -> std::sync::MutexGuard<'_, HashMap<String, Applied>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies the works of `agent` and every change until `shutdown` completes, then finishes
    /// the reconciles in flight and returns. Spawns nothing: dropping the future stops
    /// everything at once.
    pub async fn run<Tr: Transport>(self, agent: &AgentWorkClient<Tr>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut events = agent.watch();
        let mut queue = WorkQueue::new(self.config.retry_base_delay, self.config.retry_max_delay);
        let mut seen: HashMap<String, u64> = HashMap::new();
        for work in agent.list(&Default::default()) {
            seen.insert(work.name().to_owned(), trigger_key(&work));
            queue.add(work.name().to_owned());
        }
        let mut status_sync = tokio::time::interval_at(
            Instant::now() + self.config.status_sync_interval,
            self.config.status_sync_interval,
        );
        status_sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let workers = self.config.workers.max(1);
        let mut in_flight = FuturesUnordered::new();
        tracing::info!(works = seen.len(), workers, "kube applier started");
        loop {
            while in_flight.len() < workers {
                let Some(uid) = queue.pop() else { break };
                in_flight.push(self.reconcile(agent, uid));
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some((uid, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                    match outcome {
                        Outcome::Done => queue.done(uid, false),
                        Outcome::Retry => queue.done(uid, true),
                        Outcome::Waiting => queue.done_after(uid, self.config.deletion_recheck_interval),
                    }
                }
                event = events.next() => match event {
                    Some(WatchEvent::Added(w) | WatchEvent::Modified(w)) => {
                        let key = trigger_key(&w);
                        if seen.insert(w.name().to_owned(), key) != Some(key) {
                            queue.add(w.name().to_owned());
                        }
                    }
                    Some(WatchEvent::Deleted(w)) => {
                        seen.remove(w.name());
                        queue.add(w.name().to_owned());
                    }
                    Some(WatchEvent::Relisted(all)) => {
                        let mut gone: HashSet<String> = seen.keys().cloned().collect();
                        for w in &all {
                            gone.remove(w.name());
                            let key = trigger_key(w);
                            if seen.insert(w.name().to_owned(), key) != Some(key) {
                                queue.add(w.name().to_owned());
                            }
                        }
                        for uid in gone {
                            seen.remove(&uid);
                            queue.add(uid);
                        }
                    }
                    None => break,
                },
                _ = status_sync.tick() => {
                    for uid in seen.keys() {
                        queue.add(uid.clone());
                    }
                }
                () = poll_fn(|cx| queue.poll_expired(cx)), if queue.has_delayed() => {}
            }
        }
        tracing::info!(
            in_flight = in_flight.len(),
            queued = queue.len(),
            "kube applier stopping"
        );
        while in_flight.next().await.is_some() {}
    }

    /// Brings work `uid` to its desired state; never fails (errors are logged, counted and
    /// retried).
    async fn reconcile<Tr: Transport>(&self, agent: &AgentWorkClient<Tr>, uid: String) -> (String, Outcome) {
        self.metrics.start();
        let result = self.reconcile_work(agent, &uid).await;
        self.metrics.end();
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                self.metrics.errors.inc();
                tracing::warn!(work = %uid, error = %e.condition_message(), "reconcile failed, retrying");
                Outcome::Retry
            }
        };
        (uid, outcome)
    }

    async fn reconcile_work<Tr: Transport>(&self, agent: &AgentWorkClient<Tr>, uid: &str) -> Result<Outcome> {
        let Ok(work) = agent.get(uid) else {
            // Gone from the agent: a record left behind (the work was acknowledged deleted
            // without us) still owns resources; delete them.
            return self.delete_record(uid).await;
        };
        if work.is_deleting() {
            return self.delete_work(agent, &work).await;
        }
        if is_recorded_only(&work, &self.config) {
            // Rebuilt from its record at start-up: wait for the source's spec (or deletion).
            return Ok(Outcome::Done);
        }
        let work = if work.finalizers().iter().any(|f| f == MANIFEST_WORK_FINALIZER) {
            work
        } else {
            let mut finalizers = work.finalizers().to_vec();
            finalizers.push(MANIFEST_WORK_FINALIZER.to_owned());
            set_finalizers(agent, uid, finalizers).await?
        };
        self.apply_work(agent, &work).await
    }

    async fn apply_work<Tr: Transport>(&self, agent: &AgentWorkClient<Tr>, work: &ManifestWork) -> Result<Outcome> {
        let uid = work.name();
        let spec = spec_key(work);
        let due = match self.applied_state().get(uid) {
            Some(a) => a.spec != spec || !a.clean || a.at.elapsed() >= self.config.reapply_interval,
            None => true,
        };
        let generation = observed_generation(work);
        let mut status = work.status.clone();
        let mut objects: HashMap<i32, Value> = HashMap::new();
        let mut outcome = Outcome::Done;
        let mut record = None;
        if due {
            let amw = self.ensure_record(work).await?;
            let owner = amw.owner_reference();
            let results = self.apply_manifests(work, &owner).await;
            self.metrics.applies.inc();
            let now = now();
            let fresh: Vec<ManifestCondition> = results
                .iter()
                .map(|r| ManifestCondition {
                    resource_meta: r.meta.clone(),
                    status_feedback: StatusFeedbackResult::default(),
                    conditions: Some(vec![applied_condition(
                        r.error.as_ref().map(Error::condition_message).as_deref(),
                    )]),
                })
                .collect();
            status.resource_status.manifests = merge_manifest_conditions(&status.resource_status.manifests, fresh, now);
            if let Some(c) = work_applied_condition(&status.resource_status.manifests, generation) {
                set_status_condition(&mut status.conditions, c, now);
            }
            let failed = results.iter().filter(|r| r.error.is_some()).count();
            self.metrics.manifest_failures.inc_by(failed as u64);
            for r in &results {
                if let Some(e) = &r.error {
                    tracing::info!(work = %uid, ordinal = r.meta.ordinal, error = %e.condition_message(), "manifest not applied");
                }
                if let Some(o) = &r.object {
                    objects.insert(r.meta.ordinal, o.clone());
                }
            }
            // Server-side apply conflicts wait for the next spec change or periodic re-apply
            // (OCM's rule: retrying cannot resolve them); other failures are retried.
            let retry = results.iter().any(|r| r.error.is_some() && !r.conflict);
            if retry {
                outcome = Outcome::Retry;
            }
            self.applied_state().insert(
                uid.to_owned(),
                Applied {
                    spec,
                    at: Instant::now(),
                    clean: !retry,
                },
            );
            record = Some((amw, owner, results));
        }
        // Record what was applied before reporting it: the record is what a deletion (also
        // after a restart) goes by.
        let recorded = match record {
            Some((amw, owner, results)) => Some(self.update_record(&amw, &owner, &results).await),
            None => None,
        };
        self.refresh_status(work, &mut status, &objects, generation).await;
        if status != work.status {
            agent.update_status(uid, status).await.map_err(|source| Error::Work {
                name: uid.to_owned(),
                source: Box::new(source),
            })?;
            self.metrics.status_updates.inc();
        }
        // A failure's back-off comes before a wait for finalizers.
        if let Some(recorded) = recorded.transpose()?
            && outcome == Outcome::Done
        {
            outcome = recorded;
        }
        Ok(outcome)
    }

    /// Applies every manifest of `work`: CustomResourceDefinitions first (then waits until they
    /// are established), the others in order.
    async fn apply_manifests(&self, work: &ManifestWork, owner: &OwnerReference) -> Vec<ManifestResult> {
        let manifests = &work.spec.workload.manifests;
        let parsed: Vec<_> = manifests
            .iter()
            .enumerate()
            .map(|(i, m)| parse(i32::try_from(i).unwrap_or(i32::MAX), m))
            .collect();
        let is_crd = |p: &std::result::Result<Parsed, _>| matches!(p, Ok(p) if p.gvk.group == "apiextensions.k8s.io" && p.gvk.kind == "CustomResourceDefinition");
        let mut results: Vec<Option<ManifestResult>> = (0..parsed.len()).map(|_| None).collect();
        let mut crds = Vec::new();
        for (i, p) in parsed.iter().enumerate().filter(|(_, p)| is_crd(p)) {
            let result = self.apply_one(work, i, p, owner).await;
            if result.error.is_none() {
                crds.push(result.meta.name.clone());
            }
            results[i] = Some(result);
        }
        for name in crds {
            if let Err(e) = self.wait_established(&name).await {
                tracing::warn!(crd = %name, error = %e, "custom resources of this CRD will fail until it is established");
            }
        }
        for (i, p) in parsed.iter().enumerate().filter(|(_, p)| !is_crd(p)) {
            results[i] = Some(self.apply_one(work, i, p, owner).await);
        }
        results.into_iter().flatten().collect()
    }

    async fn wait_established(&self, name: &str) -> Result<()> {
        let api = Api::<CustomResourceDefinition>::all(self.client.clone());
        let waited = self.config.crd_established_timeout;
        match tokio::time::timeout(waited, await_condition(api, name, conditions::is_crd_established())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::CrdNotEstablished {
                name: format!("{name} ({e})"),
                waited,
            }),
            Err(_) => Err(Error::CrdNotEstablished {
                name: name.to_owned(),
                waited,
            }),
        }
    }

    async fn apply_one(
        &self,
        work: &ManifestWork,
        index: usize,
        parsed: &std::result::Result<Parsed, ParseError>,
        owner: &OwnerReference,
    ) -> ManifestResult {
        let parsed = match parsed {
            Ok(p) => p,
            Err(failed) => {
                let (meta, e) = &**failed;
                return ManifestResult::failed(meta.clone(), Error::InvalidManifest { reason: e.to_string() });
            }
        };
        let mut meta = ManifestResourceMeta {
            ordinal: i32::try_from(index).unwrap_or(i32::MAX),
            group: parsed.gvk.group.clone(),
            version: parsed.gvk.version.clone(),
            kind: parsed.gvk.kind.clone(),
            resource: String::new(),
            name: parsed.name.clone(),
            namespace: parsed.namespace.clone(),
        };
        let resolved = match self.resolver.resolve(&parsed.gvk).await {
            Ok(r) => r,
            Err(e) => {
                return ManifestResult::failed(meta, e);
            }
        };
        meta.resource.clone_from(&resolved.api_resource.plural);
        if !resolved.namespaced {
            meta.namespace.clear();
        }
        let target = match Target::of(parsed, &resolved) {
            Ok(t) => t,
            Err(e) => {
                return ManifestResult::failed(meta, e);
            }
        };
        let config = find_config(&meta, &work.spec.manifest_configs);
        let strategy = config.and_then(|c| c.update_strategy.as_ref());
        let owned = owned_by_the_work(&meta, work);
        let result = self
            .writer()
            .apply(&target, parsed.object.clone(), strategy, owner, owned)
            .await;
        let is_ssa = strategy.is_some_and(|s| s.type_ == UpdateStrategyType::ServerSideApply);
        match result {
            Ok(object) => ManifestResult {
                meta,
                object: object.and_then(|o| serde_json::to_value(o).ok()),
                target: Some(target),
                error: None,
                conflict: false,
            },
            Err(e) => {
                if e.is_not_found() && !resolved.namespaced {
                    // A cluster-scoped write answered 404: the resource type itself may be gone.
                    self.resolver.forget(&parsed.gvk);
                }
                ManifestResult {
                    meta,
                    object: None,
                    target: Some(target),
                    conflict: is_ssa && e.is_conflict(),
                    error: Some(e),
                }
            }
        }
    }

    /// Reads every manifest's resource (from the write's answer when there was one) and sets
    /// its `Available` and `StatusFeedbackSynced` conditions and feedback values, then the
    /// work's `Available` condition (OCM's available-status controller).
    async fn refresh_status(
        &self,
        work: &ManifestWork,
        status: &mut ManifestWorkStatus,
        objects: &HashMap<i32, Value>,
        generation: Option<i64>,
    ) {
        let now = now();
        for manifest in &mut status.resource_status.manifests {
            let meta = manifest.resource_meta.clone();
            let (availability, object) = if meta.resource.is_empty() || meta.version.is_empty() || meta.name.is_empty()
            {
                (Availability::Incomplete, None)
            } else if let Some(o) = objects.get(&meta.ordinal) {
                (Availability::Available, Some(o.clone()))
            } else {
                let target =
                    Target::from_parts(&meta.group, &meta.version, &meta.resource, &meta.namespace, &meta.name);
                match target.get(&self.client).await {
                    Ok(Some(o)) => (Availability::Available, serde_json::to_value(o).ok()),
                    Ok(None) => (Availability::Missing, None),
                    Err(e) => (Availability::Failed(e.condition_message()), None),
                }
            };
            let conditions = manifest.conditions.get_or_insert_with(Vec::new);
            set_status_condition(conditions, available_condition(&availability), now);
            let Some(object) = object else { continue };
            let rules = find_config(&meta, &work.spec.manifest_configs).map_or(&[][..], |c| &c.feedback_rules[..]);
            let gvk = Gvk {
                group: &meta.group,
                version: &meta.version,
                kind: &meta.kind,
            };
            let mut values = Vec::new();
            let mut errors = Vec::new();
            for rule in rules {
                let (v, e) = self.reader.values(&object, gvk, rule);
                values.extend(v);
                errors.extend(e);
            }
            set_status_condition(conditions, feedback_condition(!rules.is_empty(), &errors), now);
            manifest.status_feedback.values = values;
        }
        let available = work_available_condition(&status.resource_status.manifests, generation);
        set_status_condition(&mut status.conditions, available, now);
        // The manifest conditions may have been set before the Available one; keep Go's
        // order of work conditions stable (Applied first) for readers.
        status
            .conditions
            .sort_by_key(|c| usize::from(c.type_ != condition_type::APPLIED));
    }

    /// The work's record: created when missing, its spec and identity annotations repaired.
    async fn ensure_record(&self, work: &ManifestWork) -> Result<AppliedManifestWork> {
        let desired = AppliedManifestWork::for_work(work, &self.config.hub_hash, &self.config.agent_id);
        let name = desired.metadata.name.clone().unwrap_or_default();
        let api = Api::<AppliedManifestWork>::all(self.client.clone());
        let existing = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube(format!("failed to get appliedmanifestwork {name}"), e))?;
        let Some(existing) = existing else {
            let params = PostParams {
                dry_run: false,
                field_manager: Some(self.config.field_manager.clone()),
            };
            return api
                .create(&params, &desired)
                .await
                .map_err(|e| Error::kube(format!("failed to create appliedmanifestwork {name}"), e));
        };
        let annotations_missing = desired
            .metadata
            .annotations
            .iter()
            .flatten()
            .any(|(k, v)| existing.metadata.annotations.as_ref().and_then(|a| a.get(k)) != Some(v));
        if existing.spec == desired.spec && !annotations_missing {
            return Ok(existing);
        }
        let patch = json!({
            "metadata": {"annotations": desired.metadata.annotations, "labels": desired.metadata.labels},
            "spec": desired.spec,
        });
        api.patch(&name, &self.patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube(format!("failed to update appliedmanifestwork {name}"), e))
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.config.field_manager.clone()),
            ..PatchParams::default()
        }
    }

    /// Records what the work applied now, and deletes what it applied before but no longer
    /// does (OCM's AppliedManifestWork controller). Nothing is deleted while a manifest's
    /// resource is unknown (its kind unresolved): it may be one of them.
    async fn update_record(
        &self,
        amw: &AppliedManifestWork,
        owner: &OwnerReference,
        results: &[ManifestResult],
    ) -> Result<Outcome> {
        let mut applied = BTreeSet::new();
        let mut complete = true;
        for r in results {
            let Some(target) = &r.target else {
                complete = false;
                continue;
            };
            let uid = match r.object.as_ref().and_then(|o| o["metadata"]["uid"].as_str()) {
                Some(uid) => Some(uid.to_owned()),
                None => target.get(&self.client).await?.and_then(|o| o.metadata.uid),
            };
            let Some(uid) = uid else { continue };
            applied.insert(AppliedManifestResourceMeta {
                group: r.meta.group.clone(),
                version: r.meta.version.clone(),
                resource: r.meta.resource.clone(),
                namespace: r.meta.namespace.clone(),
                name: r.meta.name.clone(),
                uid,
            });
        }
        let before = amw.applied_resources();
        let mut outcome = Outcome::Done;
        if complete {
            let kept: HashSet<_> = applied.iter().map(AppliedManifestResourceMeta::identifier).collect();
            let untracked: Vec<_> = before
                .iter()
                .filter(|r| !kept.contains(&r.identifier()))
                .cloned()
                .collect();
            if !untracked.is_empty() {
                let deletion = delete_applied_resources(self.writer(), &untracked, owner).await;
                self.metrics.resources_deleted.inc_by(deletion.deleted as u64);
                if !deletion.pending.is_empty() {
                    outcome = Outcome::Waiting;
                }
                applied.extend(deletion.pending);
                if let Some(e) = deletion.errors.into_iter().next() {
                    self.patch_record(amw, applied.into_iter().collect()).await?;
                    return Err(e);
                }
            }
        } else {
            applied.extend(before.iter().cloned());
        }
        self.patch_record(amw, applied.into_iter().collect()).await?;
        Ok(outcome)
    }

    async fn patch_record(&self, amw: &AppliedManifestWork, applied: Vec<AppliedManifestResourceMeta>) -> Result<()> {
        if amw.applied_resources() == applied.as_slice() {
            return Ok(());
        }
        let name = amw.metadata.name.clone().unwrap_or_default();
        let patch = json!({"status": {"appliedResources": applied}});
        Api::<AppliedManifestWork>::all(self.client.clone())
            .patch_status(&name, &self.patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube(format!("failed to update the status of appliedmanifestwork {name}"), e))?;
        Ok(())
    }

    /// Deletes what a record owns; once nothing is left, deletes the record. `Retry` while
    /// resources are being finalized.
    async fn delete_record(&self, uid: &str) -> Result<Outcome> {
        self.applied_state().remove(uid);
        let name = applied_manifest_work_name(&self.config.hub_hash, uid);
        let api = Api::<AppliedManifestWork>::all(self.client.clone());
        let Some(amw) = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube(format!("failed to get appliedmanifestwork {name}"), e))?
        else {
            return Ok(Outcome::Done);
        };
        let deletion = delete_applied_resources(self.writer(), amw.applied_resources(), &amw.owner_reference()).await;
        self.metrics.resources_deleted.inc_by(deletion.deleted as u64);
        if let Some(e) = deletion.errors.into_iter().next() {
            self.patch_record(&amw, deletion.pending).await?;
            return Err(e);
        }
        if !deletion.pending.is_empty() {
            self.patch_record(&amw, deletion.pending).await?;
            return Ok(Outcome::Waiting);
        }
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("failed to delete appliedmanifestwork {name}"), e)),
        }
        Ok(Outcome::Done)
    }

    /// A deleting work: delete its resources (those it owns), then its record, then remove the
    /// finalizer (the agent client then reports the work `Deleted`).
    async fn delete_work<Tr: Transport>(&self, agent: &AgentWorkClient<Tr>, work: &ManifestWork) -> Result<Outcome> {
        if !work.finalizers().iter().any(|f| f == MANIFEST_WORK_FINALIZER) {
            return Ok(Outcome::Done);
        }
        let record = self.delete_record(work.name()).await?;
        if record != Outcome::Done {
            return Ok(record);
        }
        let others: Vec<String> = work
            .finalizers()
            .iter()
            .filter(|f| *f != MANIFEST_WORK_FINALIZER)
            .cloned()
            .collect();
        set_finalizers(agent, work.name(), others).await?;
        self.metrics.works_deleted.inc();
        Ok(Outcome::Done)
    }
}

async fn set_finalizers<Tr: Transport>(
    agent: &AgentWorkClient<Tr>,
    uid: &str,
    finalizers: Vec<String>,
) -> Result<Arc<ManifestWork>> {
    agent
        .set_finalizers(uid, finalizers)
        .await
        .map_err(|source| Error::Work {
            name: uid.to_owned(),
            source: Box::new(source),
        })
}

/// What makes a watch event worth a reconcile: the spec, version, deletion and finalizers (not
/// the status the applier itself reports).
fn trigger_key(work: &ManifestWork) -> u64 {
    let mut h = DefaultHasher::new();
    spec_key(work).hash(&mut h);
    work.resource_version_str().hash(&mut h);
    work.is_deleting().hash(&mut h);
    work.finalizers().hash(&mut h);
    h.finish()
}

/// A hash of the spec (manifests as their JSON values, configuration, delete option).
fn spec_key(work: &ManifestWork) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&work.spec).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// True for a work exactly as [`AppliedManifestWork::recorded_work`] rebuilt it at start-up:
/// its spec is unknown until a source sends it.
fn is_recorded_only(work: &ManifestWork, config: &ApplierConfig) -> bool {
    work.resource_version_str() == "0"
        && work.spec.workload.manifests.is_empty()
        && work.status == ManifestWorkStatus::default()
        && AppliedManifestWork::for_work(work, &config.hub_hash, &config.agent_id)
            .recorded_work()
            .is_some_and(|recorded| recorded == *work)
}

/// The configuration of a manifest's resource (OCM's `FindManifestConiguration`).
fn find_config<'a>(
    meta: &ManifestResourceMeta,
    configs: &'a [ManifestConfigOption],
) -> Option<&'a ManifestConfigOption> {
    configs.iter().find(|c| {
        let id = &c.resource_identifier;
        id.group == meta.group && id.resource == meta.resource && id.namespace == meta.namespace && id.name == meta.name
    })
}

/// True when the work owns the manifest's resource: its delete option does not orphan it
/// (OCM's `OwnedByTheWork`).
fn owned_by_the_work(meta: &ManifestResourceMeta, work: &ManifestWork) -> bool {
    let Some(option) = &work.spec.delete_option else {
        return true;
    };
    match option.propagation_policy {
        DeletePropagationPolicy::Orphan => false,
        DeletePropagationPolicy::SelectivelyOrphan => !option.selectively_orphan.as_ref().is_some_and(|s| {
            s.orphaning_rules.iter().any(|r| {
                r.group == meta.group
                    && r.resource == meta.resource
                    && r.name == meta.name
                    && r.namespace == meta.namespace
            })
        }),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use ocm_ce_work::{DeleteOption, Manifest, OrphaningRule, SelectivelyOrphan};

    use super::*;

    fn meta(name: &str) -> ManifestResourceMeta {
        ManifestResourceMeta {
            version: "v1".into(),
            kind: "ConfigMap".into(),
            resource: "configmaps".into(),
            name: name.into(),
            namespace: "ns".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_delete_option_decides_what_the_work_owns() {
        let mut work = ManifestWork::new("c", "w", vec![]);
        assert!(owned_by_the_work(&meta("a"), &work), "Foreground by default");
        work.spec.delete_option = Some(DeleteOption {
            propagation_policy: DeletePropagationPolicy::Orphan,
            selectively_orphan: None,
        });
        assert!(!owned_by_the_work(&meta("a"), &work));
        work.spec.delete_option = Some(DeleteOption {
            propagation_policy: DeletePropagationPolicy::SelectivelyOrphan,
            selectively_orphan: Some(SelectivelyOrphan {
                orphaning_rules: vec![OrphaningRule {
                    group: String::new(),
                    resource: "configmaps".into(),
                    name: "keep".into(),
                    namespace: "ns".into(),
                }],
            }),
        });
        assert!(!owned_by_the_work(&meta("keep"), &work));
        assert!(owned_by_the_work(&meta("drop"), &work));
    }

    #[test]
    fn only_an_untouched_rebuilt_work_waits_for_its_spec() {
        let config = ApplierConfig::new("h", "a");
        let mut work = ManifestWork::new("c", "uid1", vec![]);
        work.metadata.uid = Some("uid1".into());
        let recorded = AppliedManifestWork::for_work(&work, "h", "a").recorded_work().unwrap();
        assert!(is_recorded_only(&recorded, &config));
        let mut received = recorded.clone();
        received.metadata.resource_version = Some("3".into());
        assert!(!is_recorded_only(&received, &config));
        let mut with_spec = recorded;
        with_spec
            .spec
            .workload
            .manifests
            .push(Manifest::from_raw("{}").unwrap());
        assert!(!is_recorded_only(&with_spec, &config));
    }

    #[test]
    fn status_patches_do_not_trigger_a_reconcile_but_spec_changes_do() {
        let work = ManifestWork::new("c", "w", vec![Manifest::from_raw(r#"{"a":1}"#).unwrap()]);
        let mut with_status = work.clone();
        with_status.status.conditions.push(applied_condition(None));
        assert_eq!(trigger_key(&work), trigger_key(&with_status));
        let mut changed = work.clone();
        changed.spec.workload.manifests[0] = Manifest::from_raw(r#"{"a":2}"#).unwrap();
        assert_ne!(trigger_key(&work), trigger_key(&changed));
        let mut finalized = work.clone();
        finalized.metadata.finalizers = Some(vec![MANIFEST_WORK_FINALIZER.into()]);
        assert_ne!(trigger_key(&work), trigger_key(&finalized));
    }
}
