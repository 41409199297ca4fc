//! The source work client (Go `ManifestWorkSourceClient` + `SourceLocalWatcherStore`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use ocm_ce_client::{BackoffConfig, ClientEvent, SourceClient, Transport};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resource::parse_resource_version;
use ocm_ce_core::sequence;
use ocm_ce_core::{EventType, SubResource};
use tokio::time::Instant;
use tokio_util::time::DelayQueue;

use super::outbox::{Outbox, Send, Sent};
use super::{Guard, TaskGuard, WorkClientOptions, publish_outcome};
use crate::api::{
    ManifestWork, ManifestWorkStatus, SEQUENCE_ID_ANNOTATION, SOURCE_FINALIZER, STATUS_HASH_ANNOTATION,
    time_from_chrono,
};
use crate::codec::SourceManifestBundleCodec;
use crate::conditions::is_deleted;
use crate::error::{Error, Result};
use crate::lister::SourceLister;
use crate::metrics::WorkMetrics;
use crate::patch::{PatchType, patch};
use crate::payload::manifest_bundle_data_type;
use crate::selector::ListParams;
use crate::status_hash::WorkStatusHasher;
use crate::store::{Map, Store, WatchStream, Writer, store_from};
use crate::uid::work_uid;
use crate::validation::{FieldError, ValidationErrors, validate};

/// A source's ManifestWork client: publishes spec events for the works it creates, patches and
/// deletes, and keeps their statuses as agents report them.
#[doc(alias = "ManifestWorkSourceClient")]
pub struct SourceWorkClient<Tr: Transport> {
    inner: Arc<Inner<Tr>>,
    _task: Guard,
}

super::work_client_common!(
    SourceWorkClient,
    SourceClient,
    source_id,
    "spec and deletion",
    "closing with specs not yet acknowledged by the transport; they are sent when this source starts again"
);

struct Inner<Tr: Transport> {
    client: SourceClient<ManifestWork, Tr>,
    source_id: String,
    store: Store,
    writer: Writer,
    metrics: WorkMetrics,
    /// The works whose spec (or deletion) the transport has not acknowledged yet.
    outbox: Outbox,
    /// When the transport last acknowledged each work's spec, to tell an agent that is still
    /// catching up from one that missed the spec.
    sent_at: Mutex<Map<String, Instant>>,
}

/// An agent that reports an older version of a work this long after its newer spec was
/// acknowledged by the transport has missed it (a broker dropped it): it is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(10);

fn spec_type(act: &str) -> EventType {
    EventType::new(manifest_bundle_data_type(), SubResource::Spec, act)
}

impl<Tr: Transport> SourceWorkClient<Tr> {
    /// Starts a source client over `transport` (built for `source_id`), its store holding
    /// `initial` (the works a restarted source loads from its own storage; Go's
    /// `SourceLocalWatcherStore` list function). Every initial work's spec is sent once more
    /// (agents ignore a version they have), because a source that stopped may not have sent
    /// its last changes. The initial resync runs once the subscription is confirmed. Must be
    /// called inside a tokio runtime.
    pub fn start(
        transport: Tr,
        source_id: impl Into<String>,
        initial: impl IntoIterator<Item = ManifestWork>,
        options: WorkClientOptions,
    ) -> Self {
        let source_id = source_id.into();
        let (store, writer) = store_from(initial);
        let outbox = Outbox::default();
        for w in store.all() {
            outbox.mark(w.uid_str(), w.namespace_str(), w.status.conditions.is_empty());
        }
        let client = SourceClient::new(
            transport,
            source_id.clone(),
            StatusFromCluster(SourceManifestBundleCodec::new()),
            SourceLister::new(store.clone()),
            WorkStatusHasher,
            options.client.clone(),
        );
        let inner = Arc::new(Inner {
            client,
            source_id,
            store,
            writer,
            metrics: WorkMetrics::default(),
            outbox,
            sent_at: Mutex::default(),
        });
        let task = tokio::spawn(drive(inner.clone(), options));
        Self {
            inner,
            _task: Arc::new(TaskGuard(task)),
        }
    }

    /// The source id.
    pub fn source_id(&self) -> &str {
        &self.inner.source_id
    }

    /// Creates `work` in `namespace` (the cluster): sets its UID (UUIDv5 of source, namespace,
    /// name) and resource version (annotation, else the given one, else `"0"`), validates it,
    /// stores it and sends `create_request`. The spec is state: once stored it is sent, and
    /// retried until the transport acknowledges it (also across reconnections), so the call
    /// does not fail because the broker is away. Refused when the name exists or another work
    /// has the same resource id.
    pub async fn create(&self, namespace: &str, work: ManifestWork) -> Result<Arc<ManifestWork>> {
        let mut work = work;
        if !work.namespace_str().is_empty() && work.namespace_str() != namespace {
            return Err(Error::Invalid(ValidationErrors(vec![FieldError::invalid(
                "metadata.namespace",
                work.namespace_str(),
                format!("does not match the namespace {namespace}"),
            )])));
        }
        if self.inner.store.get(namespace, work.name()).is_some() {
            return Err(Error::AlreadyExists {
                namespace: namespace.to_owned(),
                name: work.name().to_owned(),
            });
        }
        work.metadata.namespace = Some(namespace.to_owned());
        let uid = work_uid(&self.inner.source_id, namespace, work.name());
        if let Some(other) = self.inner.store.get_by_uid(&uid) {
            return Err(Error::IdCollision {
                namespace: namespace.to_owned(),
                name: work.name().to_owned(),
                uid,
                existing: format!("{}/{}", other.namespace_str(), other.name()),
            });
        }
        work.metadata.uid = Some(uid);
        work.metadata.resource_version = Some(work.source_resource_version());
        validate(&work)?;
        self.check_encodable(&work)?;
        let stored = self.inner.writer.insert(work)?;
        self.inner.outbox.mark(stored.uid_str(), namespace, true);
        Ok(stored)
    }

    /// Patches `namespace/name` with a JSON Patch or JSON Merge Patch, validates the result,
    /// stores it and sends `update_request` (retried like [`create`](Self::create)'s). The
    /// patch applies to the latest stored copy atomically; statuses the agents reported and a
    /// deletion in progress are kept.
    pub async fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        data: &[u8],
    ) -> Result<Arc<ManifestWork>> {
        self.write_spec(namespace, name, |latest| patch(latest, patch_type, data))
    }

    /// Replaces the spec, labels and annotations (and the resource version, when `work` has one)
    /// of the work named like `work` in `namespace` with `work`'s: [`patch`](Self::patch) with a
    /// typed work instead of a patch (nothing encoded or decoded), with the same checks, the same
    /// kept fields (UID, deletion, finalizers, status) and the same `update_request`.
    pub async fn update(&self, namespace: &str, work: ManifestWork) -> Result<Arc<ManifestWork>> {
        if !work.namespace_str().is_empty() && work.namespace_str() != namespace {
            return Err(Error::Invalid(ValidationErrors(vec![FieldError::invalid(
                "metadata.namespace",
                work.namespace_str(),
                format!("does not match the namespace {namespace}"),
            )])));
        }
        let name = work.name().to_owned();
        self.write_spec(namespace, &name, |latest| {
            let mut updated = ManifestWork {
                types: latest.types.clone(),
                metadata: latest.metadata.clone(),
                spec: work.spec,
                status: ManifestWorkStatus::default(),
            };
            updated.metadata.labels = work.metadata.labels;
            updated.metadata.annotations = work.metadata.annotations;
            if work.metadata.resource_version.is_some() {
                updated.metadata.resource_version = work.metadata.resource_version;
            }
            Ok(updated)
        })
    }

    /// Stores the work `f` makes of the latest `namespace/name` (keeping its UID, deletion,
    /// finalizers and status, taking the resource version from the result), validated, and
    /// sends it.
    fn write_spec(
        &self,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&ManifestWork) -> Result<ManifestWork>,
    ) -> Result<Arc<ManifestWork>> {
        let updated = self.inner.writer.update(namespace, name, |latest| {
            let mut work = f(latest)?;
            work.metadata.resource_version = Some(work.source_resource_version());
            work.metadata.uid = latest.metadata.uid.clone();
            work.metadata.deletion_timestamp = latest.metadata.deletion_timestamp.clone();
            work.metadata.finalizers = latest.metadata.finalizers.clone();
            work.status = latest.status.clone();
            validate(&work)?;
            self.check_encodable(&work)?;
            Ok::<_, Error>(Some(work))
        })?;
        let work = updated.ok_or_else(|| Error::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
        self.inner.outbox.mark(work.uid_str(), namespace, false);
        Ok(work)
    }

    /// Deletes `namespace/name`: marks it deleting and sends `delete_request` (retried like
    /// [`create`](Self::create)'s); the work stays (deleting) until the agent reports
    /// `Deleted`, or goes once the request is acknowledged when no agent ever reported on it.
    /// Deleting a work that does not exist succeeds.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<()> {
        let now = time_from_chrono(Utc::now());
        let updated = self.inner.writer.update(namespace, name, |latest| {
            if latest.metadata.deletion_timestamp.is_some() {
                return Ok::<_, Error>(None);
            }
            let mut w = latest.clone();
            w.metadata.deletion_timestamp = Some(now);
            Ok(Some(w))
        })?;
        if let Some(work) = updated {
            self.inner.outbox.mark(work.uid_str(), namespace, false);
        }
        Ok(())
    }

    /// Fails when `work`'s spec event cannot be built (checked before it is stored, so an
    /// unsendable work is the caller's error, not a report given up later).
    fn check_encodable(&self, work: &ManifestWork) -> Result<()> {
        SourceManifestBundleCodec::new()
            .check(&self.inner.source_id, &spec_type(action::UPDATE_REQUEST), work)
            .map_err(|e| Error::Publish {
                name: work.name().to_owned(),
                source: e.into(),
            })
    }

    /// The work `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Arc<ManifestWork>> {
        self.inner.store.get(namespace, name).ok_or_else(|| Error::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The works of `namespace` (`""` = all) matching `params`.
    pub fn list(&self, namespace: &str, params: &ListParams) -> Vec<Arc<ManifestWork>> {
        self.inner.store.list(namespace, params)
    }
}

impl<Tr: Transport> Inner<Tr> {
    /// Sends the current state of work `uid`: `delete_request` when it is deleting (and removes
    /// it once acknowledged if no agent ever reported on it), otherwise `create_request` until
    /// a first send succeeded and `update_request` after.
    async fn send(&self, send: &Send) -> Sent {
        // The turn before the read: an agent's resync answer, which lists this store, is then
        // either sent before this (and older) or lists what this sends.
        let turn = self.client.turn().await;
        let Some(work) = self.store.get_by_uid(&send.uid) else {
            return Sent::Done;
        };
        let act = if work.is_deleting() {
            action::DELETE_REQUEST
        } else if send.new {
            action::CREATE_REQUEST
        } else {
            action::UPDATE_REQUEST
        };
        let result = self.client.publish_in_turn(&turn, &spec_type(act), &work).await;
        drop(turn);
        let outcome = publish_outcome(&result, "spec", &send.uid, &self.metrics);
        if matches!(outcome, Sent::Done) {
            if work.is_deleting() && work.finalizers().is_empty() {
                self.writer.remove_by_uid(&send.uid);
                self.forget(&send.uid);
            } else if let Ok(mut sent) = self.sent_at.lock() {
                sent.insert(send.uid.clone(), Instant::now());
            }
        }
        outcome
    }

    fn forget(&self, uid: &str) {
        self.sent_at.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }

    /// After a status reporting version `reported` of work `uid`: when the source holds a newer
    /// spec that the transport acknowledged a while ago, the agent missed it; send it again.
    fn resend_if_missed(&self, uid: &str, reported: i64) {
        let Some(work) = self.store.get_by_uid(uid) else {
            return;
        };
        let Ok(current) = parse_resource_version(work.resource_version_str()) else {
            return;
        };
        if current == 0 || reported >= current || self.outbox.contains(uid) {
            return;
        }
        let sent_long_ago = self
            .sent_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .is_none_or(|at| at.elapsed() >= RESEND_AFTER);
        if sent_long_ago {
            tracing::info!(
                uid,
                reported,
                current,
                "an agent reports an older version of a work; sending its spec again"
            );
            self.metrics.spec_resent();
            self.outbox.mark(uid, work.namespace_str(), false);
        }
    }
}

/// The source codec, with the cluster a status comes from (its `clustername`, the routing
/// attribute a broker authorizes the sender for) as the namespace of the decoded work, where
/// Go's codec keeps the namespace the agent wrote into the work's metadata. The store then
/// applies a status only to a work of that cluster.
#[derive(Debug)]
struct StatusFromCluster(SourceManifestBundleCodec);

impl ocm_ce_core::Codec<ManifestWork> for StatusFromCluster {
    fn data_types(&self) -> &[ocm_ce_core::DataType] {
        self.0.data_types()
    }

    fn encode(
        &self,
        source: &str,
        event_type: &EventType,
        work: &ManifestWork,
    ) -> std::result::Result<ocm_ce_core::Event, ocm_ce_core::CodecError> {
        self.0.encode(source, event_type, work)
    }

    fn decode(&self, event: &ocm_ce_core::Event) -> std::result::Result<ManifestWork, ocm_ce_core::CodecError> {
        let mut work = self.0.decode(event)?;
        work.metadata.namespace = ocm_ce_core::EventExt::cluster_name(event)
            .ok()
            .filter(|c| !c.is_empty());
        Ok(work)
    }
}

/// What became of a received status.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Applied,
    Unchanged,
    Removed,
    Retry,
    Dropped(&'static str),
}

/// Applies a received status to the store (Go `SourceLocalWatcherStore` status handling): a
/// `Deleted` status removes the work; a status for an agent version newer than the source's,
/// or with a sequence id that is not newer than the last kept one, is dropped; an unknown work
/// is retried (it may not be created or loaded yet).
fn apply_status(writer: &Writer, received: &ManifestWork) -> Outcome {
    let deleted = is_deleted(&received.status);
    let result = writer.update_by_uid(received.uid_str(), |last| {
        // Only the agents of a work's cluster report on it: a status from another cluster
        // (a forged or misrouted one, or a work whose id collides) is not applied.
        if received.namespace_str() != last.namespace_str() {
            return Err(Outcome::Dropped("wrong_cluster"));
        }
        if deleted {
            // Go removes the work on any `Deleted` status. But an agent reports `Deleted` only
            // for a work this source is deleting: one for a work that is not deleting belongs
            // to an earlier work of the same name (a UID is made from the name), delivered
            // again (a Kafka re-read, an MQTT redelivery) after it was created anew, and would
            // make this source forget a live work.
            return Err(if last.is_deleting() {
                Outcome::Removed
            } else {
                Outcome::Dropped("deleted_not_deleting")
            });
        }
        let (Ok(last_rv), Ok(rv)) = (
            parse_resource_version(last.resource_version_str()),
            parse_resource_version(received.resource_version_str()),
        ) else {
            return Err(Outcome::Dropped("unparsable_version"));
        };
        if last_rv != 0 && rv > last_rv {
            // Go drops it. But a source stores a patched work only after publishing it, so an
            // agent's status for the new version can arrive first: retry (bounded) instead.
            return Err(Outcome::Retry);
        }
        let last_seq = last.annotation(SEQUENCE_ID_ANNOTATION).unwrap_or_default();
        let seq = received.annotation(SEQUENCE_ID_ANNOTATION).unwrap_or_default();
        match sequence::is_newer(last_seq, seq) {
            Ok(true) => {}
            Ok(false) => return Err(Outcome::Dropped("stale_sequence")),
            Err(_) => return Err(Outcome::Dropped("bad_sequence")),
        }
        let hash = received.annotation(STATUS_HASH_ANNOTATION);
        if last.status == received.status && last.annotation(STATUS_HASH_ANNOTATION) == hash {
            return Err(Outcome::Unchanged);
        }
        // The last work's parts but its status, which is replaced: not copied only to be dropped.
        let mut w = ManifestWork {
            types: last.types.clone(),
            metadata: last.metadata.clone(),
            spec: last.spec.clone(),
            status: received.status.clone(),
        };
        let finalizers = w.metadata.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == SOURCE_FINALIZER) {
            finalizers.push(SOURCE_FINALIZER.to_owned());
        }
        let annotations = w.metadata.annotations.get_or_insert_with(Default::default);
        annotations.insert(SEQUENCE_ID_ANNOTATION.to_owned(), seq.to_owned());
        match hash {
            Some(hash) => annotations.insert(STATUS_HASH_ANNOTATION.to_owned(), hash.to_owned()),
            None => annotations.remove(STATUS_HASH_ANNOTATION),
        };
        Ok(Some(w))
    });
    match result {
        Ok(Some(_)) => Outcome::Applied,
        Ok(None) if deleted => Outcome::Dropped("deleted_unknown"),
        Ok(None) | Err(Outcome::Retry) => Outcome::Retry,
        Err(Outcome::Removed) => {
            writer.remove_by_uid(received.uid_str());
            Outcome::Removed
        }
        Err(other) => other,
    }
}

async fn drive<Tr: Transport>(inner: Arc<Inner<Tr>>, options: WorkClientOptions) {
    let mut stream = inner.client.subscribe();
    let mut retries: DelayQueue<(ManifestWork, u32)> = DelayQueue::new();
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
                Some(Ok(ClientEvent::Received(status))) => handle(&inner, &options, &mut retries, status, 0),
                Some(Err(e)) => {
                    tracing::debug!(error = %ocm_ce_client::Report(&e), source = %inner.source_id, "source subscription");
                }
                None => return,
            },
            Some(expired) = retries.next(), if !retries.is_empty() => {
                let (work, attempt) = expired.into_inner();
                handle(&inner, &options, &mut retries, work, attempt);
            }
            Some((send, outcome)) = sending.next(), if !sending.is_empty() => inner.outbox.done(&send, &outcome),
            () = inner.outbox.changed() => {}
            () = super::sleep_until_opt(next_retry) => inner.outbox.promote_due(),
        }
    }
}

fn handle<Tr: Transport>(
    inner: &Inner<Tr>,
    options: &WorkClientOptions,
    retries: &mut DelayQueue<(ManifestWork, u32)>,
    work: ManifestWork,
    attempt: u32,
) {
    match apply_status(&inner.writer, &work) {
        Outcome::Applied | Outcome::Unchanged => {
            inner.metrics.status_applied();
            if let Ok(reported) = parse_resource_version(work.resource_version_str()) {
                inner.resend_if_missed(work.uid_str(), reported);
            }
        }
        Outcome::Removed => {
            inner.forget(work.uid_str());
            inner.metrics.work_removed();
        }
        Outcome::Dropped("wrong_cluster") => {
            tracing::warn!(
                uid = work.uid_str(),
                cluster = work.namespace_str(),
                "dropping a status from a cluster the work does not belong to"
            );
            inner.metrics.status_dropped("wrong_cluster");
        }
        Outcome::Dropped(reason) => {
            tracing::debug!(uid = work.uid_str(), reason, "dropping status");
            inner.metrics.status_dropped(reason);
        }
        Outcome::Retry => {
            if attempt >= options.status_retry_attempts {
                tracing::warn!(
                    uid = work.uid_str(),
                    "the work does not exist, dropping its status after retries"
                );
                inner.metrics.status_dropped("unknown_work");
            } else if retries.len() >= options.status_retry_capacity {
                tracing::warn!(uid = work.uid_str(), "status retry queue full, dropping a status");
                inner.metrics.status_dropped("retry_queue_full");
            } else {
                let delay =
                    BackoffConfig::exponential(options.status_retry_delay, Duration::from_secs(30)).delay(attempt + 1);
                retries.insert((work, attempt + 1), delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::condition;
    use crate::conditions::deleted_condition;
    use crate::store::store;

    fn cached(rv: &str, seq: Option<&str>) -> ManifestWork {
        let mut w = ManifestWork::new("c1", "w1", Vec::new());
        w.metadata.uid = Some("u1".into());
        w.metadata.resource_version = Some(rv.into());
        if let Some(s) = seq {
            w.metadata.annotations = Some([(SEQUENCE_ID_ANNOTATION.to_owned(), s.to_owned())].into());
        }
        w
    }

    fn status(rv: &str, seq: &str, reason: &str) -> ManifestWork {
        let mut w = ManifestWork::default();
        w.metadata.namespace = Some("c1".into());
        w.metadata.uid = Some("u1".into());
        w.metadata.resource_version = Some(rv.into());
        w.metadata.annotations = Some([(SEQUENCE_ID_ANNOTATION.to_owned(), seq.to_owned())].into());
        w.status.conditions.push(condition("Applied", "True", reason, "", None));
        w
    }

    #[test]
    fn a_newer_status_is_kept_with_the_source_finalizer_and_its_sequence_id() {
        let (s, w) = store();
        w.insert(cached("1", None)).unwrap();
        assert_eq!(
            apply_status(&w, &status("1", "1841085652792250368", "a")),
            Outcome::Applied
        );
        let got = s.get_by_uid("u1").unwrap();
        assert_eq!(got.finalizers(), [SOURCE_FINALIZER]);
        assert_eq!(got.annotation(SEQUENCE_ID_ANNOTATION), Some("1841085652792250368"));
        assert_eq!(
            apply_status(&w, &status("1", "1841085652792250368", "b")),
            Outcome::Dropped("stale_sequence")
        );
        assert_eq!(
            apply_status(&w, &status("1", "1841085652796444672", "a")),
            Outcome::Unchanged
        );
        assert_eq!(
            apply_status(&w, &status("1", "1841085652796444673", "b")),
            Outcome::Applied
        );
        assert_eq!(
            s.get_by_uid("u1").unwrap().finalizers().len(),
            1,
            "the finalizer is added once"
        );
    }

    /// A v1.x agent's `statushash` (the codec keeps it as an annotation) is what the source
    /// lists in its status resync requests; once an agent stops sending it, the source computes
    /// the hash again.
    #[test]
    fn the_status_hash_an_agent_reported_is_kept_with_its_status() {
        use ocm_ce_client::StatusHasher;
        let (s, w) = store();
        w.insert(cached("1", None)).unwrap();
        let mut v1 = status("1", "1841085652792250368", "a");
        let reported = crate::status_hash::status_hash_v1(&v1.status);
        v1.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(STATUS_HASH_ANNOTATION.to_owned(), reported.clone());
        assert_eq!(apply_status(&w, &v1), Outcome::Applied);
        let got = s.get_by_uid("u1").unwrap();
        assert_eq!(WorkStatusHasher.status_hash(&got).unwrap(), reported);
        assert_ne!(reported, crate::status_hash::status_hash(&got.status));
        // the same status without the hash: applied, so the annotation goes
        assert_eq!(
            apply_status(&w, &status("1", "1841085652796444672", "a")),
            Outcome::Applied
        );
        let got = s.get_by_uid("u1").unwrap();
        assert_eq!(got.annotation(STATUS_HASH_ANNOTATION), None);
        assert_eq!(
            WorkStatusHasher.status_hash(&got).unwrap(),
            crate::status_hash::status_hash(&got.status)
        );
        // an agent takes either function's hash as the same status
        assert!(WorkStatusHasher.same_status(&got, &reported).unwrap());
        assert!(!WorkStatusHasher.same_status(&got, "0").unwrap());
    }

    #[test]
    fn a_status_for_a_newer_agent_version_waits_for_the_source_unless_unversioned() {
        let (_, w) = store();
        w.insert(cached("1", None)).unwrap();
        assert_eq!(
            apply_status(&w, &status("2", "1841085652792250368", "a")),
            Outcome::Retry
        );
        let (_, w0) = store();
        w0.insert(cached("0", None)).unwrap();
        assert_eq!(
            apply_status(&w0, &status("5", "1841085652792250368", "a")),
            Outcome::Applied
        );
    }

    #[test]
    fn a_deleted_status_removes_a_deleting_work_and_an_unknown_one_is_retried() {
        let (s, w) = store();
        let unknown = status("1", "1", "a");
        assert_eq!(apply_status(&w, &unknown), Outcome::Retry);
        w.insert(cached("1", Some("1841085652796444672"))).unwrap();
        let mut gone = status("1", "1", "a");
        gone.status.conditions.push(deleted_condition("c1"));
        // A work of the same name created anew: an old `Deleted` delivered again is not its.
        assert_eq!(apply_status(&w, &gone), Outcome::Dropped("deleted_not_deleting"));
        assert_eq!(s.len(), 1, "the live work is kept");
        w.update_by_uid("u1", |last| {
            let mut deleting = last.clone();
            deleting.metadata.deletion_timestamp = Some(crate::api::time_from_chrono(chrono::Utc::now()));
            Ok::<_, ()>(Some(deleting))
        })
        .unwrap();
        assert_eq!(
            apply_status(&w, &gone),
            Outcome::Removed,
            "no version or sequence check"
        );
        assert!(s.is_empty());
        assert_eq!(apply_status(&w, &gone), Outcome::Dropped("deleted_unknown"));
    }

    #[test]
    fn a_status_from_another_cluster_is_dropped_even_a_deleted_one() {
        let (s, w) = store();
        w.insert(cached("1", None)).unwrap();
        let mut forged = status("1", "1841085652792250368", "a");
        forged.metadata.namespace = Some("rogue".into());
        assert_eq!(apply_status(&w, &forged), Outcome::Dropped("wrong_cluster"));
        forged.status.conditions.push(deleted_condition("rogue"));
        assert_eq!(apply_status(&w, &forged), Outcome::Dropped("wrong_cluster"));
        assert_eq!(s.len(), 1, "the work is still there");
        assert!(s.get_by_uid("u1").unwrap().status.conditions.is_empty());
    }
}
