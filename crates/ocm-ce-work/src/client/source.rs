//! The source work client (Go `ManifestWorkSourceClient` + `SourceLocalWatcherStore`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use ocm_ce_client::{ClientEvent, SourceClient, Transport};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resource::parse_resource_version;
use ocm_ce_core::sequence;
use ocm_ce_core::{EventType, ResourceAction, SubResource};
use tokio::sync::watch;
use tokio_util::time::DelayQueue;

use super::{Connected, Guard, LastError, TaskGuard, WorkClientOptions};
use crate::api::{ManifestWork, SEQUENCE_ID_ANNOTATION, SOURCE_FINALIZER, time_from_chrono};
use crate::codec::SourceManifestBundleCodec;
use crate::conditions::is_deleted;
use crate::error::{Error, Result};
use crate::lister::SourceLister;
use crate::metrics::WorkMetrics;
use crate::patch::{PatchType, patch};
use crate::payload::manifest_bundle_data_type;
use crate::selector::ListParams;
use crate::status_hash::manifest_work_status_hash;
use crate::store::{Store, WatchStream, Writer, store_from};
use crate::uid::work_uid;
use crate::validation::{FieldError, ValidationErrors, validate};

/// A source's ManifestWork client: publishes spec events for the works it creates, patches and
/// deletes, and keeps their statuses as agents report them.
#[doc(alias = "ManifestWorkSourceClient")]
pub struct SourceWorkClient<Tr: Transport> {
    inner: Arc<Inner<Tr>>,
    _task: Guard,
}

impl<Tr: Transport> Clone for SourceWorkClient<Tr> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _task: self._task.clone(),
        }
    }
}

impl<Tr: Transport> fmt::Debug for SourceWorkClient<Tr> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceWorkClient")
            .field("source_id", &self.inner.source_id)
            .field("works", &self.inner.store.len())
            .finish_non_exhaustive()
    }
}

struct Inner<Tr: Transport> {
    client: SourceClient<ManifestWork, Tr>,
    source_id: String,
    store: Store,
    writer: Writer,
    connected: Connected,
    last_error: LastError,
    metrics: WorkMetrics,
}

fn spec_type(act: &str) -> EventType {
    EventType::new(manifest_bundle_data_type(), SubResource::Spec, act)
}

impl<Tr: Transport> SourceWorkClient<Tr> {
    /// Starts a source client over `transport` (built for `source_id`), its store holding
    /// `initial` (the works a restarted source loads from its own storage; Go's
    /// `SourceLocalWatcherStore` list function). The initial resync runs once the store is
    /// loaded and the subscription confirmed. Must be called inside a tokio runtime.
    pub fn start(
        transport: Tr,
        source_id: impl Into<String>,
        initial: impl IntoIterator<Item = ManifestWork>,
        options: WorkClientOptions,
    ) -> Self {
        let source_id = source_id.into();
        let (store, writer) = store_from(initial);
        let client = SourceClient::new(
            transport,
            source_id.clone(),
            SourceManifestBundleCodec::new(),
            SourceLister::new(store.clone()),
            manifest_work_status_hash,
            options.client.clone(),
        );
        let (connected_tx, connected) = Connected::channel();
        let inner = Arc::new(Inner {
            client,
            source_id,
            store,
            writer,
            connected,
            last_error: LastError::default(),
            metrics: WorkMetrics::default(),
        });
        let task = tokio::spawn(drive(inner.clone(), options, connected_tx));
        Self {
            inner,
            _task: Arc::new(TaskGuard(task)),
        }
    }

    /// The source id.
    pub fn source_id(&self) -> &str {
        &self.inner.source_id
    }

    /// The store (read handle) behind this client.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Counters of this client.
    pub fn metrics(&self) -> &WorkMetrics {
        &self.inner.metrics
    }

    /// The generic client underneath (for its metrics, or an explicit resync).
    pub fn generic(&self) -> &SourceClient<ManifestWork, Tr> {
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
    /// and the connection is closed cleanly (see [`ocm_ce_client::SourceClient::close`]; for Kafka the
    /// consumer leaves its group with its handled offsets committed). Operations that publish
    /// fail afterwards; the store stays readable.
    pub async fn close(&self) {
        self.inner.client.close().await;
    }

    /// Creates `work` in `namespace` (the cluster): sets its UID (UUIDv5 of source, namespace,
    /// name) and resource version (annotation, else the given one, else `"0"`), validates it,
    /// publishes `create_request` and stores it. Nothing is stored when publishing fails.
    pub async fn create(&self, namespace: &str, work: ManifestWork) -> Result<Arc<ManifestWork>> {
        let mut work = work;
        if !work.namespace().is_empty() && work.namespace() != namespace {
            return Err(Error::Invalid(ValidationErrors(vec![FieldError::invalid(
                "metadata.namespace",
                work.namespace(),
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
        work.metadata.uid = Some(work_uid(&self.inner.source_id, namespace, work.name()));
        work.metadata.resource_version = Some(work.source_resource_version());
        validate(&work)?;
        self.publish(action::CREATE_REQUEST, &work).await?;
        self.inner.writer.insert(work)
    }

    /// Patches `namespace/name` with a JSON Patch or JSON Merge Patch, validates the result,
    /// publishes `update_request` and stores it.
    pub async fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        data: &[u8],
    ) -> Result<Arc<ManifestWork>> {
        let current = self.get(namespace, name)?;
        let mut work = patch(&current, patch_type, data)?;
        work.metadata.resource_version = Some(work.source_resource_version());
        validate(&work)?;
        self.publish(action::UPDATE_REQUEST, &work).await?;
        Ok(self.inner.writer.upsert(work))
    }

    /// Deletes `namespace/name`: publishes `delete_request`; the work stays (deleting) until the
    /// agent reports `Deleted`, or goes at once when no agent ever reported on it. Deleting a
    /// work that does not exist succeeds.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<()> {
        let Some(current) = self.inner.store.get(namespace, name) else {
            return Ok(());
        };
        let mut work = (*current).clone();
        if work.metadata.deletion_timestamp.is_none() {
            work.metadata.deletion_timestamp = Some(time_from_chrono(Utc::now()));
        }
        self.publish(action::DELETE_REQUEST, &work).await?;
        if work.finalizers().is_empty() {
            self.inner.writer.remove(namespace, name);
        } else {
            // Keep the status the agents reported meanwhile; only mark the work deleting.
            let at = work.metadata.deletion_timestamp.clone();
            self.inner.writer.update(namespace, name, |latest| {
                let mut w = latest.clone();
                w.metadata.deletion_timestamp = at;
                Ok::<_, Error>(Some(w))
            })?;
        }
        Ok(())
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

    /// The changes of the works from now on.
    pub fn watch(&self) -> WatchStream {
        self.inner.store.watch()
    }

    async fn publish(&self, act: &str, work: &ManifestWork) -> Result<()> {
        self.inner
            .client
            .publish(&spec_type(act), work)
            .await
            .map_err(|source| Error::Publish {
                name: work.name().to_owned(),
                source,
            })
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
    let result = writer.update_by_uid(received.uid(), |last| {
        if deleted {
            return Err(Outcome::Removed);
        }
        let (Ok(last_rv), Ok(rv)) = (
            parse_resource_version(last.resource_version()),
            parse_resource_version(received.resource_version()),
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
        if last.status == received.status {
            return Err(Outcome::Unchanged);
        }
        let mut w = last.clone();
        let finalizers = w.metadata.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == SOURCE_FINALIZER) {
            finalizers.push(SOURCE_FINALIZER.to_owned());
        }
        w.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SEQUENCE_ID_ANNOTATION.to_owned(), seq.to_owned());
        w.status = received.status.clone();
        Ok(Some(w))
    });
    match result {
        Ok(Some(_)) => Outcome::Applied,
        Ok(None) if deleted => Outcome::Dropped("deleted_unknown"),
        Ok(None) | Err(Outcome::Retry) => Outcome::Retry,
        Err(Outcome::Removed) => {
            writer.remove_by_uid(received.uid());
            Outcome::Removed
        }
        Err(other) => other,
    }
}

async fn drive<Tr: Transport>(inner: Arc<Inner<Tr>>, options: WorkClientOptions, connected: watch::Sender<bool>) {
    let mut stream = inner.client.subscribe();
    let mut retries: DelayQueue<(ManifestWork, u32)> = DelayQueue::new();
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(ClientEvent::Connected | ClientEvent::Reconnected)) => { connected.send_replace(true); }
                Some(Ok(ClientEvent::Resource { action: ResourceAction::StatusModified, resource })) => {
                    handle(&inner, &options, &mut retries, resource, 0);
                }
                Some(Ok(ClientEvent::Resource { action, .. })) => {
                    tracing::warn!(%action, "unsupported resource action on a source, ignore");
                }
                Some(Err(e)) => {
                    inner.last_error.set(&e);
                    if e.is_retryable() || matches!(e, ocm_ce_client::Error::Transport(_)) {
                        connected.send_replace(inner.client.is_connected());
                    }
                    tracing::debug!(error = %e, source = %inner.source_id, "source subscription");
                }
                None => return,
            },
            Some(expired) = retries.next(), if !retries.is_empty() => {
                let (work, attempt) = expired.into_inner();
                handle(&inner, &options, &mut retries, work, attempt);
            }
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
        Outcome::Applied | Outcome::Unchanged => inner.metrics.status_applied(),
        Outcome::Removed => inner.metrics.work_removed(),
        Outcome::Dropped(reason) => {
            tracing::debug!(uid = work.uid(), reason, "dropping status");
            inner.metrics.status_dropped(reason);
        }
        Outcome::Retry => {
            if attempt >= options.status_retry_attempts {
                tracing::warn!(
                    uid = work.uid(),
                    "the work does not exist, dropping its status after retries"
                );
                inner.metrics.status_dropped("unknown_work");
            } else if retries.len() >= options.status_retry_capacity {
                tracing::warn!(uid = work.uid(), "status retry queue full, dropping a status");
                inner.metrics.status_dropped("retry_queue_full");
            } else {
                let delay = options
                    .status_retry_delay
                    .saturating_mul(1 << attempt.min(16))
                    .min(Duration::from_secs(30));
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
    fn a_deleted_status_removes_the_work_and_an_unknown_one_is_retried() {
        let (s, w) = store();
        let unknown = status("1", "1", "a");
        assert_eq!(apply_status(&w, &unknown), Outcome::Retry);
        w.insert(cached("1", Some("1841085652796444672"))).unwrap();
        let mut gone = status("1", "1", "a");
        gone.status.conditions.push(deleted_condition("c1"));
        assert_eq!(
            apply_status(&w, &gone),
            Outcome::Removed,
            "no version or sequence check"
        );
        assert!(s.is_empty());
        assert_eq!(apply_status(&w, &gone), Outcome::Dropped("deleted_unknown"));
    }
}
