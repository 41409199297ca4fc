//! The agent work client (Go `ManifestWorkAgentClient` + `AgentInformerWatcherStore`).

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::StreamExt;
use ocm_ce_client::{AgentClient, ClientEvent, Transport};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resource::parse_resource_version;
use ocm_ce_core::{Codec, CodecError, CodecErrorKind, DataType, Event, EventType, ResourceAction, SubResource};
use tokio::sync::watch;

use super::{Connected, Guard, LastError, TaskGuard, WorkClientOptions};
use crate::api::{DATA_TYPE_ANNOTATION, ManifestWork};
use crate::codec::{AgentManifestBundleCodec, AgentManifestCodec};
use crate::conditions::mark_manifests_deleted;
use crate::error::{Error, Result};
use crate::lister::AgentLister;
use crate::metrics::WorkMetrics;
use crate::patch::{PatchType, patch};
use crate::selector::ListParams;
use crate::status_hash::manifest_work_status_hash;
use crate::store::{Store, WatchStream, Writer, store_from};

/// The agent codecs: ManifestBundle, plus the single-manifest codec when configured.
#[derive(Debug)]
pub struct AgentCodecs {
    bundle: AgentManifestBundleCodec,
    manifest: Option<AgentManifestCodec>,
    data_types: Vec<DataType>,
}

impl AgentCodecs {
    /// The ManifestBundle codec only (what the OCM work agent uses).
    pub fn bundles() -> Self {
        let bundle = AgentManifestBundleCodec::new();
        let data_types = bundle.data_types().to_vec();
        Self {
            bundle,
            manifest: None,
            data_types,
        }
    }

    /// Both codecs.
    pub fn with_manifests(manifest: AgentManifestCodec) -> Self {
        let mut codecs = Self::bundles();
        codecs.data_types.extend(manifest.data_types().iter().cloned());
        codecs.manifest = Some(manifest);
        codecs
    }

    fn pick(&self, data_type: &DataType) -> std::result::Result<&dyn Codec<ManifestWork>, CodecError> {
        if self.bundle.handles(data_type) {
            return Ok(&self.bundle);
        }
        match &self.manifest {
            Some(m) if m.handles(data_type) => Ok(m),
            _ => Err(CodecError::new(
                CodecErrorKind::UnknownDataType,
                format!("unsupported cloudevents data type {data_type}"),
            )),
        }
    }
}

impl Codec<ManifestWork> for AgentCodecs {
    fn data_types(&self) -> &[DataType] {
        &self.data_types
    }

    fn encode(
        &self,
        source: &str,
        event_type: &EventType,
        work: &ManifestWork,
    ) -> std::result::Result<Event, CodecError> {
        self.pick(&event_type.data_type)?.encode(source, event_type, work)
    }

    fn decode(&self, event: &Event) -> std::result::Result<ManifestWork, CodecError> {
        use cloudevents::AttributesReader;
        let ty: EventType = event.ty().parse().map_err(|e| {
            CodecError::new(
                CodecErrorKind::MalformedType,
                format!("failed to parse cloud event type {}, {e}", event.ty()),
            )
        })?;
        self.pick(&ty.data_type)?.decode(event)
    }
}

/// An agent's ManifestWork client: the works sources sent to its cluster, with status and
/// finalizer patches that are reported back.
#[doc(alias = "ManifestWorkAgentClient")]
pub struct AgentWorkClient<Tr: Transport> {
    inner: Arc<Inner<Tr>>,
    _task: Guard,
}

impl<Tr: Transport> Clone for AgentWorkClient<Tr> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _task: self._task.clone(),
        }
    }
}

impl<Tr: Transport> fmt::Debug for AgentWorkClient<Tr> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentWorkClient")
            .field("cluster_name", &self.inner.cluster_name)
            .field("works", &self.inner.store.len())
            .finish_non_exhaustive()
    }
}

struct Inner<Tr: Transport> {
    client: AgentClient<ManifestWork, Tr>,
    cluster_name: String,
    store: Store,
    writer: Writer,
    connected: Connected,
    last_error: LastError,
    metrics: WorkMetrics,
    /// UIDs of deleting works without finalizers whose `Deleted` status is not published yet.
    pending_acks: Mutex<HashSet<String>>,
}

impl<Tr: Transport> AgentWorkClient<Tr> {
    /// Starts the agent client of `cluster_name` over `transport` (built for this agent),
    /// sending as `agent_id`. The store starts empty and ready; the first spec resync fills it.
    /// Must be called inside a tokio runtime. To start with works recorded earlier, see
    /// [`start_with_works`](Self::start_with_works).
    pub fn start(
        transport: Tr,
        cluster_name: impl Into<String>,
        agent_id: impl Into<String>,
        codecs: AgentCodecs,
        options: WorkClientOptions,
    ) -> Self {
        Self::start_with_works(transport, cluster_name, agent_id, codecs, options, Vec::new())
    }

    /// Like [`start`](Self::start), but the store starts with `works` instead of empty: what
    /// the agent recorded before it stopped (e.g. rebuilt from the AppliedManifestWorks on its
    /// cluster by `ocm-ce-kube`), so that it finishes what the sources did while it was down.
    ///
    /// Each work must be named by its UID in the agent's cluster (the namespace) and carry the
    /// data type annotation ([`DATA_TYPE_ANNOTATION`]) it was received with; its original
    /// source label, finalizers and status are kept. The works take part in the first spec
    /// resync like received ones: give them resource version `"0"` to have every source resend
    /// its current spec (sources answer an agent-reported `0` with the spec, and with a delete
    /// for a work they no longer have), or the recorded version to be sent only newer specs.
    /// A recorded work whose source deletes it arrives as a deletion of a work that still has
    /// its finalizers, so it is not acknowledged `Deleted` before the caller removed them.
    pub fn start_with_works(
        transport: Tr,
        cluster_name: impl Into<String>,
        agent_id: impl Into<String>,
        codecs: AgentCodecs,
        options: WorkClientOptions,
        works: impl IntoIterator<Item = ManifestWork>,
    ) -> Self {
        let cluster_name = cluster_name.into();
        let (store, writer) = store_from(works);
        let client = AgentClient::new(
            transport,
            cluster_name.clone(),
            agent_id,
            codecs,
            AgentLister::new(store.clone()),
            manifest_work_status_hash,
            options.client.clone(),
        );
        let (connected_tx, connected) = Connected::channel();
        let inner = Arc::new(Inner {
            client,
            cluster_name,
            store,
            writer,
            connected,
            last_error: LastError::default(),
            metrics: WorkMetrics::default(),
            pending_acks: Mutex::default(),
        });
        let task = tokio::spawn(drive(inner.clone(), options, connected_tx));
        Self {
            inner,
            _task: Arc::new(TaskGuard(task)),
        }
    }

    /// The cluster this agent serves (the namespace of its works).
    pub fn cluster_name(&self) -> &str {
        &self.inner.cluster_name
    }

    /// The store (read handle) behind this client.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Counters of this client.
    pub fn metrics(&self) -> &WorkMetrics {
        &self.inner.metrics
    }

    /// The generic client underneath.
    pub fn generic(&self) -> &AgentClient<ManifestWork, Tr> {
        &self.inner.client
    }

    /// True while the subscription is confirmed.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.is_connected()
    }

    /// The last connection or subscription error, with its causes.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.get()
    }

    /// Waits until the subscription is confirmed (and the initial resync was sent).
    pub async fn wait_until_connected(&self) {
        self.inner.connected.wait().await;
    }

    /// Shuts the client down gracefully before the process exits: the store stops receiving,
    /// and the connection is closed cleanly (see [`ocm_ce_client::AgentClient::close`]; for Kafka the
    /// consumer leaves its group with its handled offsets committed). Operations that publish
    /// fail afterwards; the store stays readable.
    pub async fn close(&self) {
        self.inner.client.close().await;
    }

    /// The work `name` (agent-side works are named by their UID).
    pub fn get(&self, name: &str) -> Result<Arc<ManifestWork>> {
        let ns = &self.inner.cluster_name;
        self.inner.store.get(ns, name).ok_or_else(|| Error::NotFound {
            namespace: ns.clone(),
            name: name.to_owned(),
        })
    }

    /// The works matching `params`.
    pub fn list(&self, params: &ListParams) -> Vec<Arc<ManifestWork>> {
        self.inner.store.list(&self.inner.cluster_name, params)
    }

    /// The changes of the works from now on.
    pub fn watch(&self) -> WatchStream {
        self.inner.store.watch()
    }

    /// Patches the status of work `name` and reports it (`update_request`). The status event is
    /// sent first (as Go does); the store then takes the patched status on top of its latest
    /// copy, so a deletion or spec update that arrived meanwhile is kept. Fails with a conflict
    /// when the spec changed since the patch was computed (the event was sent all the same).
    pub async fn patch_status(&self, name: &str, patch_type: PatchType, data: &[u8]) -> Result<Arc<ManifestWork>> {
        let ns = self.inner.cluster_name.clone();
        let base = self.get(name)?;
        let patched = patch(&base, patch_type, data)?;
        let event_type = status_event_type(&patched, action::UPDATE_REQUEST)?;
        self.inner
            .client
            .publish(&event_type, &patched)
            .await
            .map_err(|source| Error::Publish {
                name: name.to_owned(),
                source,
            })?;
        let base_rv = parse_resource_version(base.resource_version()).unwrap_or(0);
        let updated = self.inner.writer.update(&ns, name, |latest| {
            if parse_resource_version(latest.resource_version()).unwrap_or(0) > base_rv {
                return Err(Error::Conflict {
                    reason: "the resource version of the work is outdated".to_owned(),
                });
            }
            let mut w = latest.clone();
            w.status = patch(latest, patch_type, data)?.status;
            Ok(Some(w))
        })?;
        updated.ok_or_else(|| Error::NotFound {
            namespace: ns,
            name: name.to_owned(),
        })
    }

    /// Patches the metadata of work `name` (e.g. its finalizers). Applied atomically to the
    /// latest copy, so it cannot undo a concurrent deletion. When the result is a deleting work
    /// without finalizers, the agent reports it `Deleted` (retried until published) and
    /// removes it.
    pub async fn patch(&self, name: &str, patch_type: PatchType, data: &[u8]) -> Result<Arc<ManifestWork>> {
        let ns = self.inner.cluster_name.clone();
        let updated = self.inner.writer.update(&ns, name, |latest| {
            let mut w = patch(latest, patch_type, data)?;
            // Only metadata is patchable here; the spec comes from the source, the status from
            // `patch_status`.
            w.spec = latest.spec.clone();
            w.status = latest.status.clone();
            w.metadata.deletion_timestamp = latest.metadata.deletion_timestamp.clone();
            if w.is_deleting() && w.finalizers().is_empty() {
                mark_manifests_deleted(&mut w, Utc::now());
            }
            Ok::<_, Error>(Some(w))
        })?;
        let work = updated.ok_or_else(|| Error::NotFound {
            namespace: ns,
            name: name.to_owned(),
        })?;
        if work.is_deleting() && work.finalizers().is_empty() {
            self.inner.acknowledge_deletion(&work).await;
        }
        Ok(work)
    }

    /// How many `Deleted` acknowledgements wait to be published.
    pub fn pending_deletion_acks(&self) -> usize {
        self.inner.pending_acks.lock().map(|p| p.len()).unwrap_or(0)
    }
}

fn status_event_type(work: &ManifestWork, act: &str) -> Result<EventType> {
    let dt = work.annotation(DATA_TYPE_ANNOTATION).unwrap_or_default();
    let data_type: DataType = dt.parse().map_err(|e| Error::Internal { reason: format!("{e}") })?;
    Ok(EventType::new(data_type, SubResource::Status, act))
}

impl<Tr: Transport> Inner<Tr> {
    /// Publishes the `Deleted` status of a deleting, finalizer-free work and removes it; on
    /// failure the work stays pending and the driver retries.
    async fn acknowledge_deletion(&self, work: &ManifestWork) {
        let mut w = work.clone();
        mark_manifests_deleted(&mut w, Utc::now());
        let published = match status_event_type(&w, action::DELETE_REQUEST) {
            Ok(ty) => self.client.publish(&ty, &w).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match published {
            Ok(()) => {
                self.writer.remove(w.namespace(), w.name());
                self.metrics.deletion_acked();
                if let Ok(mut p) = self.pending_acks.lock() {
                    p.remove(w.uid());
                }
            }
            Err(e) => {
                tracing::warn!(uid = w.uid(), error = %e, "failed to report the work deleted, will retry");
                self.metrics.deletion_ack_retried();
                if let Ok(mut p) = self.pending_acks.lock() {
                    p.insert(w.uid().to_owned());
                }
            }
        }
    }

    async fn retry_pending_acks(&self) {
        let pending: Vec<String> = self
            .pending_acks
            .lock()
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default();
        for uid in pending {
            match self.store.get_by_uid(&uid) {
                Some(w) if w.is_deleting() && w.finalizers().is_empty() => self.acknowledge_deletion(&w).await,
                _ => {
                    if let Ok(mut p) = self.pending_acks.lock() {
                        p.remove(&uid);
                    }
                }
            }
        }
    }

    /// Applies a received spec (Go `AgentInformerWatcherStore.HandleReceivedWork`).
    async fn apply_spec(&self, action: ResourceAction, received: ManifestWork) {
        let (ns, name) = (received.namespace().to_owned(), received.name().to_owned());
        let result = match action {
            ResourceAction::Added => {
                let w = self.writer.upsert(received);
                Some(w)
            }
            ResourceAction::Modified => self
                .writer
                .update(&ns, &name, |local| {
                    if local.is_deleting() {
                        tracing::warn!(work = %name, "the work is being deleted, ignore the update");
                        return Ok::<_, Error>(None);
                    }
                    let mut w = received.clone();
                    w.metadata.labels = local.metadata.labels.clone();
                    w.metadata.annotations = local.metadata.annotations.clone();
                    w.metadata.finalizers = local.metadata.finalizers.clone();
                    w.status = local.status.clone();
                    Ok(Some(w))
                })
                .unwrap_or_default(),
            ResourceAction::Deleted => self
                .writer
                .update(&ns, &name, |local| {
                    let mut w = local.clone();
                    w.metadata.deletion_timestamp = received.metadata.deletion_timestamp.clone();
                    // Always take the versions of the newest event.
                    w.metadata.resource_version = received.metadata.resource_version.clone();
                    if received.metadata.generation.is_some() {
                        w.metadata.generation = received.metadata.generation;
                    }
                    Ok::<_, Error>(Some(w))
                })
                .unwrap_or_default(),
            ResourceAction::StatusModified => {
                tracing::warn!("unsupported resource action on an agent, ignore");
                None
            }
        };
        if let Some(w) = result {
            self.metrics.spec_applied();
            if w.is_deleting() && w.finalizers().is_empty() {
                self.acknowledge_deletion(&w).await;
            }
        }
    }
}

async fn drive<Tr: Transport>(inner: Arc<Inner<Tr>>, options: WorkClientOptions, connected: watch::Sender<bool>) {
    let mut stream = inner.client.subscribe();
    let mut acks = tokio::time::interval(options.deletion_ack_interval);
    acks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(ClientEvent::Connected | ClientEvent::Reconnected)) => { connected.send_replace(true); }
                Some(Ok(ClientEvent::Resource { action, resource })) => inner.apply_spec(action, resource).await,
                Some(Err(e)) => {
                    inner.last_error.set(&e);
                    connected.send_replace(inner.client.is_connected());
                    tracing::debug!(error = %e, cluster = %inner.cluster_name, "agent subscription");
                }
                None => return,
            },
            _ = acks.tick() => inner.retry_pending_acks().await,
        }
    }
}
