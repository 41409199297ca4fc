//! The generic source client (Go `CloudEventSourceClient`): publishes specs, receives statuses,
//! requests status resyncs and answers agents' spec resync requests.

use std::fmt;
use std::sync::Arc;

use chrono::Utc;
use cloudevents::{AttributesReader, Event};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resync::{SpecResyncReply, source_spec_resync};
use ocm_ce_core::{
    Codec, EventBuilder, EventExt, EventType, ListOptions, ResourceAction, ResourceObject, ResourceStatusHash,
    ResourceStatusHashList, ResourceVersionList, SubResource,
};
use tokio::time::Instant;

use crate::client::{Base, ClientEvent, ClientOptions, ClientStream, Handled, PublishTurn, Side};
use crate::error::{Error, Result};
use crate::lister::{Lister, StatusHasher};
use crate::transport::{PublishTarget, Transport};

/// A source: sends resource specs to agents and receives their statuses.
#[doc(alias = "CloudEventSourceClient")]
pub struct SourceClient<T, Tr: Transport> {
    inner: Arc<Inner<T, Tr>>,
}

struct Inner<T, Tr: Transport> {
    base: Base<T, Tr>,
    source_id: String,
}

impl<T, Tr: Transport> Clone for SourceClient<T, Tr> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T, Tr: Transport> fmt::Debug for SourceClient<T, Tr> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceClient")
            .field("source_id", &self.inner.source_id)
            .finish_non_exhaustive()
    }
}

impl<T, Tr> SourceClient<T, Tr>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
{
    /// A source client with id `source_id` over `transport` (built for this source). Nothing is
    /// connected until [`subscribe`](Self::subscribe)'s stream is polled.
    pub fn new(
        transport: Tr,
        source_id: impl Into<String>,
        codec: impl Codec<T> + 'static,
        lister: impl Lister<T> + 'static,
        status_hash: impl StatusHasher<T> + 'static,
        options: ClientOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                base: Base::new(
                    transport,
                    Arc::new(codec),
                    Arc::new(lister),
                    Arc::new(status_hash),
                    options,
                ),
                source_id: source_id.into(),
            }),
        }
    }

    /// The source id.
    pub fn source_id(&self) -> &str {
        &self.inner.source_id
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.base.is_connected()
    }

    /// The metrics of this client.
    pub fn metrics(&self) -> &crate::ClientMetrics {
        &self.inner.base.options.metrics
    }

    /// Publishes a spec event for `resource` (`event_type` must be a spec type), routed to the
    /// cluster in its `clustername`. Fails with a retryable error while disconnected.
    ///
    /// Takes a [`PublishTurn`] of its own: an agent's resync answer is never sent around it. A
    /// caller that reads `resource` from a store the resync answers list should take the turn
    /// before reading ([`turn`](Self::turn), then [`publish_in_turn`](Self::publish_in_turn)).
    pub async fn publish(&self, event_type: &EventType, resource: &T) -> Result<()> {
        let turn = self.turn().await;
        self.publish_in_turn(&turn, event_type, resource).await
    }

    /// A turn to publish: while it is held no resync answer of this client is built or sent
    /// (see [`PublishTurn`]). Waits while one is.
    pub async fn turn(&self) -> PublishTurn {
        self.inner.base.publish_turn().await
    }

    /// [`publish`](Self::publish) within a turn taken with [`turn`](Self::turn) (of this client:
    /// another's fails with [`Error::ForeignTurn`]).
    pub async fn publish_in_turn(&self, turn: &PublishTurn, event_type: &EventType, resource: &T) -> Result<()> {
        self.inner.base.check_turn(turn)?;
        if event_type.sub_resource != SubResource::Spec {
            return Err(Error::UnsupportedEventType {
                event_type: event_type.to_string(),
            });
        }
        let event = self.inner.encode(event_type, resource)?;
        self.inner.send(&event).await
    }

    /// Asks the agents of `cluster_name` (`""` = all clusters) for the statuses that differ from
    /// the ones this source holds. Large hash lists are split over several events.
    pub async fn resync(&self, cluster_name: &str) -> Result<()> {
        self.inner.resync(cluster_name).await
    }

    /// The subscription stream (statuses as [`ResourceAction::StatusModified`]). Only one per
    /// client; a second call yields [`Error::AlreadySubscribed`].
    pub fn subscribe(&self) -> ClientStream<T> {
        ClientStream::drive(self.clone())
    }

    /// Shuts the client down gracefully: its subscription stream ends, and the connection is
    /// closed the way the transport closes cleanly (MQTT DISCONNECT; Kafka: producer flushed,
    /// consumer leaves its group with its handled offsets committed, so a successor in the same
    /// group starts at once instead of after the session timeout). Call it before the process
    /// exits; dropping the client instead closes the connection in the background, which an
    /// exiting process may cut short. Publishing afterwards fails with [`Error::NotConnected`].
    pub async fn close(&self) {
        self.inner.base.close().await;
    }
}

impl<T, Tr> Inner<T, Tr>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
{
    fn encode(&self, event_type: &EventType, resource: &T) -> Result<Event> {
        self.base.encode(&self.source_id, event_type, resource)
    }

    async fn send(&self, event: &Event) -> Result<()> {
        let target = PublishTarget::for_source_event(event)?;
        self.base.send(&target, event).await
    }

    async fn resync(&self, cluster_name: &str) -> Result<()> {
        for data_type in self.base.codec.data_types().to_vec() {
            let options = ListOptions {
                cluster_name: cluster_name.to_owned(),
                source: self.source_id.clone(),
                data_type: data_type.clone(),
            };
            let resources = self.base.lister.list(&options).map_err(Error::List)?;
            let mut hashes = ResourceStatusHashList::default();
            for r in &resources {
                let status_hash = self.base.hasher.status_hash(r).map_err(|source| Error::StatusHash {
                    resource_id: r.resource_id().to_owned(),
                    source,
                })?;
                hashes.hashes.push(ResourceStatusHash {
                    resource_id: r.resource_id().to_owned(),
                    status_hash,
                });
            }
            let ty = EventType::new(data_type, SubResource::Status, action::RESYNC_REQUEST);
            for part in hashes.split(self.base.max_resync_data()) {
                let mut event = EventBuilder::new(&self.source_id, ty.clone())
                    .cluster_name(cluster_name)
                    .build()?;
                event.set_data("application/json", part.to_json());
                let target = PublishTarget::for_source_event(&event)?;
                self.base.send_resync_part(&target, &event).await?;
            }
        }
        Ok(())
    }

    /// Answers an agent's spec resync request (Go `respondResyncSpecRequest`).
    async fn respond_spec_resync(&self, event_type: &EventType, event: &Event) -> Result<()> {
        let Ok(cluster) = event.cluster_name() else {
            tracing::warn!(source = %self.source_id, "spec resync request without clustername, ignore");
            return Ok(());
        };
        let started = Instant::now();
        let result = self.spec_resync_answer(event_type, event, &cluster).await;
        self.base.options.metrics.observe_spec_resync(
            &self.source_id,
            &cluster,
            &event_type.data_type.to_string(),
            started.elapsed().as_secs_f64(),
        );
        result
    }

    async fn spec_resync_answer(&self, event_type: &EventType, event: &Event, cluster: &str) -> Result<()> {
        let request = ResourceVersionList::decode(&data_bytes(event))?;
        let options = ListOptions {
            cluster_name: cluster.to_owned(),
            source: self.source_id.clone(),
            data_type: event_type.data_type.clone(),
        };
        // The exclusive turn, from the list to the last answer sent: a spec published meanwhile
        // could otherwise reach the agent before an older one of this answer. (An agent ignores
        // a spec older than the one it holds, but not after it removed the work: the old spec
        // of a work it has just deleted would be new to it, and re-create it.)
        let _turn = self.base.answer_turn().await;
        let own = self.base.lister.list(&options).map_err(Error::List)?;
        let reply_type = EventType::new(event_type.data_type.clone(), SubResource::Spec, action::RESYNC_RESPONSE);
        let answers: Vec<Result<Event>> = source_spec_resync(&own, &request)
            .into_iter()
            .map(|reply| match reply {
                SpecResyncReply::Resend(r) => self.encode(&reply_type, r),
                SpecResyncReply::Delete {
                    resource_id,
                    resource_version,
                } => Ok(EventBuilder::new(&self.source_id, reply_type.clone())
                    .cluster_name(cluster)
                    .resource_id(resource_id)
                    .resource_version(resource_version)
                    .deletion_timestamp(Utc::now())
                    .build()?),
            })
            .collect();
        self.base
            .send_answers(answers.into_iter(), PublishTarget::for_source_event)
            .await
    }
}

/// The data of a received event as bytes (empty when absent).
pub(crate) fn data_bytes(event: &Event) -> Vec<u8> {
    match event.data() {
        Some(cloudevents::Data::Binary(b)) => b.clone(),
        Some(cloudevents::Data::String(s)) => s.clone().into_bytes(),
        Some(cloudevents::Data::Json(v)) => serde_json::to_vec(v).unwrap_or_default(),
        None => Vec::new(),
    }
}

impl<T, Tr> Side<T> for SourceClient<T, Tr>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
{
    type Tr = Tr;

    fn base(&self) -> &Base<T, Tr> {
        &self.inner.base
    }

    fn describe(&self) -> String {
        format!("source {}", self.inner.source_id)
    }

    async fn resync_all(&self) -> Result<()> {
        self.inner.resync("").await
    }

    async fn answer(&self, request: Event) {
        let inner = &self.inner;
        let Ok(event_type) = request.ty().parse::<EventType>() else {
            return;
        };
        if let Err(e) = inner.respond_spec_resync(&event_type, &request).await {
            if matches!(e, Error::Payload(_)) {
                inner.base.options.metrics.dropped("bad_resync_payload");
            }
            tracing::warn!(error = %crate::Report(&e), "failed to resync resources spec");
        }
        if let Ok(cluster) = request.cluster_name()
            && inner.base.should_answer_resync(&cluster)
            && let Err(e) = inner.resync(&cluster).await
        {
            tracing::warn!(error = %crate::Report(&e), cluster, "failed to request a status resync");
        }
    }

    fn handle(&self, event: Event) -> Handled<T> {
        let metrics = &self.inner.base.options.metrics;
        let event_type: EventType = match event.ty().parse() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, id = event.id(), "dropping event with a malformed type");
                metrics.dropped("malformed_type");
                return Handled::Nothing;
            }
        };
        if event_type.is_resync_request() {
            if event_type.sub_resource != SubResource::Spec {
                tracing::debug!(%event_type, "unsupported event type, ignore");
                return Handled::Nothing;
            }
            if let Err(e) = ResourceVersionList::decode(&data_bytes(&event)) {
                tracing::warn!(error = %e, id = event.id(), "dropping a spec resync request with a bad payload");
                metrics.dropped("bad_resync_payload");
                return Handled::Nothing;
            }
            // Answered per cluster; a request without one is answered (and refused) once.
            let peer = event.cluster_name().unwrap_or_default();
            return Handled::Answer {
                peer,
                request: Box::new(event),
            };
        }
        if event_type.sub_resource != SubResource::Status {
            tracing::debug!(%event_type, "unsupported event type, ignore");
            return Handled::Nothing;
        }
        if !self.inner.base.codec.handles(&event_type.data_type) {
            tracing::warn!(data_type = %event_type.data_type, "failed to find the codec for event, ignore");
            metrics.dropped("unknown_data_type");
            return Handled::Nothing;
        }
        // A status names the cluster it comes from (what a broker authorizes its sender for);
        // the work layer applies it only to a work of that cluster.
        if !event.cluster_name().is_ok_and(|c| !c.is_empty()) {
            tracing::warn!(id = event.id(), "dropping a status event without a clustername");
            metrics.dropped("missing_cluster");
            return Handled::Nothing;
        }
        // A status is for this source only: whatever a transport routes (a shared topic, a
        // broadcast, a misbehaving peer), one addressed to another source is not ours to apply.
        match event.original_source() {
            Ok(to) if to == self.inner.source_id => {}
            other => {
                tracing::warn!(
                    id = event.id(),
                    originalsource = other.as_deref().unwrap_or("<invalid>"),
                    "dropping a status event addressed to another source"
                );
                metrics.dropped("wrong_source");
                return Handled::Nothing;
            }
        }
        match self.inner.base.codec.decode(&event) {
            Ok(resource) => Handled::Yield(ClientEvent::Resource {
                action: ResourceAction::StatusModified,
                resource,
            }),
            Err(e) => {
                crate::client::log_undecodable("status", &event, &e, metrics);
                Handled::Nothing
            }
        }
    }
}
