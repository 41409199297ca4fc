//! The agent work client (Go `ManifestWorkAgentClient` + `AgentInformerWatcherStore`).

use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use ocm_ce_client::{AgentClient, ClientEvent, Transport};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resource::parse_resource_version;
use ocm_ce_core::resync::spec_action;
use ocm_ce_core::{Codec, CodecError, DataType, Event, EventType, ResourceAction, SubResource};

use super::outbox::{Outbox, Send, Sent};
use super::{Guard, TaskGuard, WorkClientOptions, publish_outcome};
use crate::api::{DATA_TYPE_ANNOTATION, ManifestWork, ManifestWorkStatus, ORIGINAL_SOURCE_LABEL};
use crate::codec::{AgentManifestBundleCodec, AgentManifestCodec, parse_type, unsupported_data_type};
use crate::conditions::mark_manifests_deleted;
use crate::error::{Error, Result};
use crate::lister::{AgentLister, agent_matches};
use crate::metrics::WorkMetrics;
use crate::patch::{PatchType, patched_metadata, patched_status};
use crate::selector::ListParams;
use crate::status_hash::WorkStatusHasher;
use crate::store::{Map, Store, WatchStream, Writer, store_from};

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
            _ => Err(unsupported_data_type(data_type)),
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
        self.pick(&parse_type(event)?.data_type)?.decode(event)
    }
}

/// An agent's ManifestWork client: the works sources sent to its cluster, with status and
/// finalizer patches that are reported back.
#[doc(alias = "ManifestWorkAgentClient")]
pub struct AgentWorkClient<Tr: Transport> {
    inner: Arc<Inner<Tr>>,
    _task: Guard,
}

super::work_client_common!(
    AgentWorkClient,
    AgentClient,
    cluster_name,
    "status and `Deleted` acknowledgement",
    "closing with statuses not yet acknowledged; the sources get them from the next agent's resync"
);

struct Inner<Tr: Transport> {
    client: AgentClient<ManifestWork, Tr>,
    cluster_name: String,
    store: Store,
    writer: Writer,
    metrics: WorkMetrics,
    /// The works whose status (or `Deleted` acknowledgement) is not acknowledged by the
    /// transport yet.
    outbox: Outbox,
    /// Per UID, the latest spec of a work created anew while this agent still held the
    /// deleting copy before it (a UID is made from the name, so both share it): applied once
    /// that copy is acknowledged `Deleted` and removed.
    successors: std::sync::Mutex<Map<String, ManifestWork>>,
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
    /// the agent applied before it stopped, as it recorded them (the CLI's file applier in its
    /// apply directory; `ocm-ce-kube` in the AppliedManifestWorks on its cluster), so that it
    /// finishes what the sources did while it was down.
    ///
    /// Each work must be named by its UID in the agent's cluster (the namespace; works of other
    /// namespaces are ignored) and carry the data type annotation ([`DATA_TYPE_ANNOTATION`]) it
    /// was received with; its original source label, finalizers and status are kept. The works
    /// take part in the first spec resync like received ones: give them resource version `"0"`
    /// to have every source resend its current spec (sources answer an agent-reported `0` with
    /// the spec, and with a delete for a work they no longer have), or the recorded version to
    /// be sent only newer specs. A recorded work whose source deletes it arrives as a deletion
    /// of a work that still has its finalizers, so it is not acknowledged `Deleted` before the
    /// caller removed them. Recorded statuses are reported again (the sources may have missed
    /// them).
    pub fn start_with_works(
        transport: Tr,
        cluster_name: impl Into<String>,
        agent_id: impl Into<String>,
        codecs: AgentCodecs,
        options: WorkClientOptions,
        works: impl IntoIterator<Item = ManifestWork>,
    ) -> Self {
        let cluster_name = cluster_name.into();
        let outbox = Outbox::default();
        let works: Vec<ManifestWork> = works
            .into_iter()
            .filter(|w| w.namespace_str() == cluster_name)
            .collect();
        for w in &works {
            if w.is_deleting() || !w.status.conditions.is_empty() {
                outbox.mark(w.uid_str(), source_lane(w), false);
            }
        }
        let (store, writer) = store_from(works);
        let client = AgentClient::new(
            transport,
            cluster_name.clone(),
            agent_id,
            codecs,
            AgentLister::new(store.clone()),
            WorkStatusHasher,
            options.client,
        );
        let inner = Arc::new(Inner {
            client,
            cluster_name,
            store,
            writer,
            metrics: WorkMetrics::default(),
            outbox,
            successors: Default::default(),
        });
        let task = tokio::spawn(drive(inner.clone()));
        Self {
            inner,
            _task: Arc::new(TaskGuard(task)),
        }
    }

    /// The cluster this agent serves (the namespace of its works).
    pub fn cluster_name(&self) -> &str {
        &self.inner.cluster_name
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

    /// Patches the status of work `name` and reports it (`update_request`). The status is
    /// state: it is written to the store first (on top of the latest copy, so a deletion or
    /// spec update that arrived meanwhile is kept), then reported, and the report is retried
    /// until the transport acknowledges it — also across reconnections. Fails with a conflict,
    /// storing and sending nothing, when the spec changed since the patch was computed.
    pub async fn patch_status(&self, name: &str, patch_type: PatchType, data: &[u8]) -> Result<Arc<ManifestWork>> {
        self.write_status(name, |latest| patched_status(latest, patch_type, data))
    }

    /// Replaces the status of work `name` with `status`: [`patch_status`](Self::patch_status)
    /// with a typed status instead of a patch (nothing encoded or decoded), with the same
    /// conflict check and the same report.
    pub async fn update_status(&self, name: &str, status: ManifestWorkStatus) -> Result<Arc<ManifestWork>> {
        self.write_status(name, |_| Ok(status))
    }

    /// Stores the status `f` makes of the latest work `name` and reports it; a conflict when the
    /// spec moved on between this call's read of the work and its write.
    fn write_status(
        &self,
        name: &str,
        f: impl FnOnce(&ManifestWork) -> Result<ManifestWorkStatus>,
    ) -> Result<Arc<ManifestWork>> {
        let ns = self.inner.cluster_name.clone();
        let base = self.get(name)?;
        let base_rv = parse_resource_version(base.resource_version_str()).unwrap_or(0);
        let updated = self.inner.writer.update(&ns, name, |latest| {
            if parse_resource_version(latest.resource_version_str()).unwrap_or(0) > base_rv {
                return Err(Error::Conflict {
                    reason: "the resource version of the work is outdated".to_owned(),
                });
            }
            let w = ManifestWork {
                types: latest.types.clone(),
                metadata: latest.metadata.clone(),
                spec: latest.spec.clone(),
                status: f(latest)?,
            };
            // Checked before anything is stored, so a status that can never be sent is an
            // error to the caller, not a report retried forever.
            status_event_type(&w, action::UPDATE_REQUEST)?;
            Ok(Some(w))
        })?;
        let work = updated.ok_or_else(|| Error::NotFound {
            namespace: ns,
            name: name.to_owned(),
        })?;
        self.inner.outbox.mark(work.uid_str(), source_lane(&work), false);
        Ok(work)
    }

    /// Patches the metadata of work `name` (e.g. its finalizers). Applied atomically to the
    /// latest copy, so it cannot undo a concurrent deletion. When the result is a deleting work
    /// without finalizers, the agent reports it `Deleted` (retried until the transport
    /// acknowledges it) and then removes it.
    pub async fn patch(&self, name: &str, patch_type: PatchType, data: &[u8]) -> Result<Arc<ManifestWork>> {
        // Only metadata is patchable here; the spec comes from the source, the status from
        // `patch_status`.
        self.write_metadata(name, |latest| patched_metadata(latest, patch_type, data))
    }

    /// Replaces the finalizers of work `name` (none: `finalizers` empty): [`patch`](Self::patch)
    /// of `{"metadata":{"finalizers":…}}` with a typed list instead of a patch (nothing encoded
    /// or decoded), with the same atomic write and the same `Deleted` report once a deleting
    /// work has none left.
    pub async fn set_finalizers(&self, name: &str, finalizers: Vec<String>) -> Result<Arc<ManifestWork>> {
        self.write_metadata(name, |latest| {
            let mut w = latest.clone();
            w.metadata.finalizers = Some(finalizers).filter(|f| !f.is_empty());
            Ok(w)
        })
    }

    /// Stores the work `f` makes of the latest work `name`, its deletion kept (only metadata
    /// changes here), and reports it `Deleted` when it is deleting without finalizers.
    fn write_metadata(
        &self,
        name: &str,
        f: impl FnOnce(&ManifestWork) -> Result<ManifestWork>,
    ) -> Result<Arc<ManifestWork>> {
        let ns = self.inner.cluster_name.clone();
        let updated = self.inner.writer.update(&ns, name, |latest| {
            let mut w = f(latest)?;
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
            self.inner.outbox.mark(work.uid_str(), source_lane(&work), false);
        }
        Ok(work)
    }
}

/// The outbox lane of a work: the source it reports to.
fn source_lane(work: &ManifestWork) -> &str {
    work.label(ORIGINAL_SOURCE_LABEL).unwrap_or_default()
}

fn status_event_type(work: &ManifestWork, act: &str) -> Result<EventType> {
    let dt = work.annotation(DATA_TYPE_ANNOTATION).unwrap_or_default();
    let data_type: DataType = dt.parse().map_err(|e| Error::Internal { reason: format!("{e}") })?;
    Ok(EventType::new(data_type, SubResource::Status, act))
}

impl<Tr: Transport> Inner<Tr> {
    /// Reports the current state of work `uid`: a deleting work without finalizers is
    /// acknowledged `Deleted` and then removed; any other its status.
    async fn send(&self, send: &Send) -> Sent {
        let Some(work) = self.store.get_by_uid(&send.uid) else {
            // Removed meanwhile: nothing left to report.
            return Sent::Done;
        };
        let deleted = work.is_deleting() && work.finalizers().is_empty();
        // A copy only for the `Deleted` acknowledgement, whose manifests are marked deleted.
        let (w, act) = if deleted {
            let mut w = (*work).clone();
            mark_manifests_deleted(&mut w, Utc::now());
            (std::borrow::Cow::Owned(w), action::DELETE_REQUEST)
        } else {
            (std::borrow::Cow::Borrowed(&*work), action::UPDATE_REQUEST)
        };
        let result = match status_event_type(&w, act) {
            Ok(ty) => self.client.publish(&ty, &w).await,
            Err(e) => {
                tracing::warn!(uid = %send.uid, error = %e, "cannot report the status of a work");
                return Sent::Failed;
            }
        };
        let outcome = publish_outcome(&result, "status", &send.uid, &self.metrics);
        if deleted {
            match outcome {
                Sent::Done => {
                    self.writer.remove_by_uid(&send.uid);
                    self.metrics.deletion_acked();
                    // Taken before it is received: receiving may hold it back again.
                    let next = self.successors().remove(&send.uid);
                    if let Some(next) = next {
                        self.receive_spec(next);
                    }
                }
                _ => self.metrics.deletion_ack_retried(),
            }
        }
        outcome
    }

    /// Takes a received spec: decides what it means against the work this agent holds (the
    /// generic agent client's choice in Go: new, newer, a deletion, or older and ignored, by
    /// `ocm_ce_core::resync::spec_action`) and writes it (Go
    /// `AgentInformerWatcherStore.HandleReceivedWork`). Only this task writes received specs,
    /// so the work it decided on is the one it writes to.
    fn receive_spec(&self, received: ManifestWork) {
        let local = self.store.get_by_uid(received.uid_str()).filter(|w| {
            agent_matches(
                w,
                &self.cluster_name,
                source_lane(&received),
                received.annotation(DATA_TYPE_ANNOTATION).unwrap_or_default(),
            )
        });
        if let Some(local) = local.as_deref().filter(|l| l.is_deleting())
            && self.defer_successor(local, &received)
        {
            return;
        }
        match spec_action(local.as_deref(), &received) {
            Ok(Some(action)) => self.apply_spec(action, received),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, uid = %received.uid_str(), "dropping a spec whose version cannot be compared");
                self.metrics.spec_dropped("bad_version");
            }
        }
    }

    fn successors(&self) -> std::sync::MutexGuard<'_, Map<String, ManifestWork>> {
        self.successors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `received` back when it belongs to a work created anew after `deleting`, the copy
    /// this agent is still deleting: a deleting work never comes back, so a spec that is not
    /// deleting and newer than it (or newer than a successor already held) is the next
    /// incarnation. Go drops it ("the work is being deleted, ignore the update"), and the new
    /// work then reaches the agent only at its next spec resync. Returns true when held.
    fn defer_successor(&self, deleting: &ManifestWork, received: &ManifestWork) -> bool {
        let version = |w: &ManifestWork| parse_resource_version(w.resource_version_str()).ok().filter(|v| *v > 0);
        let Some(new) = version(received) else {
            return false;
        };
        let mut successors = self.successors();
        let held = successors.get(received.uid_str());
        let newer = match held {
            Some(held) => version(held).is_none_or(|v| new > v),
            None => !received.is_deleting() && version(deleting).is_some_and(|v| new > v),
        };
        if held.is_some() || newer {
            if newer {
                successors.insert(received.uid_str().to_owned(), received.clone());
                self.metrics.spec_deferred();
            }
            return true;
        }
        false
    }

    /// Writes a received spec as `action` says.
    fn apply_spec(&self, action: ResourceAction, received: ManifestWork) {
        let (ns, name) = (received.namespace_str().to_owned(), received.name().to_owned());
        let result = match action {
            ResourceAction::Added => {
                let w = self.writer.upsert(received);
                Some(w)
            }
            ResourceAction::Modified => self
                .writer
                .update(&ns, &name, |local| {
                    if local.is_deleting() {
                        tracing::warn!(work = %local.name(), "the work is being deleted, ignore the update");
                        return Ok::<_, Error>(None);
                    }
                    let mut w = received;
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
                self.outbox.mark(w.uid_str(), source_lane(&w), false);
            }
        }
    }
}

async fn drive<Tr: Transport>(inner: Arc<Inner<Tr>>) {
    let mut stream = inner.client.subscribe();
    let mut sending = futures::stream::FuturesUnordered::new();
    loop {
        for send in inner.outbox.take_ready() {
            let inner = inner.clone();
            sending.push(async move {
                let outcome = inner.send(&send).await;
                (send, outcome)
            });
        }
        let next_retry = inner.outbox.next_retry();
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(ClientEvent::Connected | ClientEvent::Reconnected)) => inner.outbox.retry_now(),
                Some(Ok(ClientEvent::Received(spec))) => inner.receive_spec(spec),
                Some(Err(e)) => {
                    tracing::debug!(error = %ocm_ce_client::Report(&e), cluster = %inner.cluster_name, "agent subscription");
                }
                None => return,
            },
            Some((send, outcome)) = sending.next(), if !sending.is_empty() => inner.outbox.done(&send, &outcome),
            () = inner.outbox.changed() => {}
            () = super::sleep_until_opt(next_retry) => inner.outbox.promote_due(),
        }
    }
}
