//! The source side (Go `CloudEventSourceClient`): publishes specs, receives statuses, requests
//! status resyncs and answers agents' spec resync requests.

use chrono::Utc;
use cloudevents::{AttributesReader, Event};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resync::{SpecResyncReply, source_spec_resync};
use ocm_ce_core::{
    Codec, EventBuilder, EventExt, EventType, ListOptions, PayloadError, ResourceObject, ResourceStatusHash,
    ResourceStatusHashList, ResourceVersionList, SubResource, TopicError,
};

use crate::client::{Client, ClientOptions, data_bytes};
use crate::error::{Error, Result};
use crate::lister::{Lister, StatusHasher};
use crate::metrics::ClientMetrics;
use crate::side::{Side, sealed::Sealed};
use crate::transport::{PublishTarget, Transport};

/// A source: sends resource specs to agents and receives their statuses.
#[doc(alias = "CloudEventSourceClient")]
pub type SourceClient<T, Tr> = Client<T, Tr, SourceSide>;

/// The source side of a [`Client`]: its source id.
#[derive(Debug)]
pub struct SourceSide {
    source_id: String,
}

impl Side for SourceSide {}

impl<T, Tr> Client<T, Tr, SourceSide>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
{
    /// A source client with id `source_id` over `transport` (built for this source). It answers
    /// agents' spec resync requests with what `lister` lists, and asks for status resyncs with
    /// the hashes `status_hash` makes of them. Nothing is connected until
    /// [`subscribe`](Self::subscribe)'s stream is polled.
    pub fn new(
        transport: Tr,
        source_id: impl Into<String>,
        codec: impl Codec<T> + 'static,
        lister: impl Lister<T> + 'static,
        status_hash: impl StatusHasher<T> + 'static,
        options: ClientOptions,
    ) -> Self {
        let side = SourceSide {
            source_id: source_id.into(),
        };
        Self::with_side(transport, side, codec, lister, status_hash, options)
    }

    /// The source id.
    pub fn source_id(&self) -> &str {
        &self.side().source_id
    }

    /// Answers an agent's spec resync request (Go `respondResyncSpecRequest`) for `cluster`.
    async fn spec_resync_answer(&self, event_type: &EventType, event: &Event, cluster: &str) -> Result<()> {
        let request = ResourceVersionList::decode(&data_bytes(event))?;
        let base = self.base();
        let options = ListOptions::new(cluster, self.source_id(), event_type.data_type.clone());
        // The exclusive turn, from the list to the last answer sent: a spec published meanwhile
        // could otherwise reach the agent before an older one of this answer. (An agent ignores
        // a spec older than the one it holds, but not after it removed the work: the old spec
        // of a work it has just deleted would be new to it, and re-create it.)
        let _turn = base.answer_turn().await;
        let own = base.lister.list(&options).map_err(Error::List)?;
        let reply_type = EventType::new(event_type.data_type.clone(), SubResource::Spec, action::RESYNC_RESPONSE);
        let answers: Vec<Result<Event>> = source_spec_resync(&own, &request)
            .into_iter()
            .map(|reply| match reply {
                SpecResyncReply::Resend(r) => self.encode(&reply_type, r),
                SpecResyncReply::Delete {
                    resource_id,
                    resource_version,
                } => Ok(EventBuilder::new(self.source_id(), reply_type.clone())
                    .cluster_name(cluster)
                    .resource_id(resource_id)
                    .resource_version(resource_version)
                    .deletion_timestamp(Utc::now())
                    .build()?),
            })
            .collect();
        base.send_answers(answers.into_iter(), SourceSide::target).await
    }
}

impl Sealed for SourceSide {
    const PUBLISHES: SubResource = SubResource::Spec;
    const RECEIVES: SubResource = SubResource::Status;

    fn sender_id(&self) -> &str {
        &self.source_id
    }

    fn describe(&self) -> String {
        format!("source {}", self.source_id)
    }

    fn target(event: &Event) -> std::result::Result<PublishTarget, TopicError> {
        PublishTarget::for_source_event(event)
    }

    fn check_request(data: &[u8]) -> std::result::Result<(), PayloadError> {
        ResourceVersionList::decode(data).map(drop)
    }

    fn request_peer(event: &Event) -> String {
        // Answered per cluster; a request without one is answered (and refused) once.
        event.cluster_name().unwrap_or_default()
    }

    fn accept(&self, event: &Event, metrics: &ClientMetrics) -> bool {
        // A status names the cluster it comes from (what a broker authorizes its sender for);
        // the work layer applies it only to a work of that cluster.
        if !event.cluster_name().is_ok_and(|c| !c.is_empty()) {
            tracing::warn!(id = event.id(), "dropping a status event without a clustername");
            metrics.dropped("missing_cluster");
            return false;
        }
        // A status is for this source only: whatever a transport routes (a shared topic, a
        // broadcast, a misbehaving peer), one addressed to another source is not ours to apply.
        match event.original_source() {
            Ok(to) if to == self.source_id => true,
            other => {
                tracing::warn!(
                    id = event.id(),
                    originalsource = other.as_deref().unwrap_or("<invalid>"),
                    "dropping a status event addressed to another source"
                );
                metrics.dropped("wrong_source");
                false
            }
        }
    }

    async fn request_resync<T, Tr>(client: &Client<T, Tr, Self>, cluster_name: &str) -> Result<()>
    where
        T: ResourceObject + Send + Sync + 'static,
        Tr: Transport,
    {
        let base = client.base();
        for data_type in base.codec.data_types().to_vec() {
            let options = ListOptions::new(cluster_name, client.source_id(), data_type.clone());
            let resources = base.lister.list(&options).map_err(Error::List)?;
            let mut hashes = ResourceStatusHashList::default();
            for r in &resources {
                let status_hash = base.hasher.status_hash(r).map_err(|source| Error::StatusHash {
                    resource_id: r.resource_id().to_owned(),
                    source,
                })?;
                hashes.hashes.push(ResourceStatusHash {
                    resource_id: r.resource_id().to_owned(),
                    status_hash,
                });
            }
            let ty = EventType::new(data_type, SubResource::Status, action::RESYNC_REQUEST);
            for part in hashes.split(base.max_resync_data()) {
                let mut event = EventBuilder::new(client.source_id(), ty.clone())
                    .cluster_name(cluster_name)
                    .build()?;
                event.set_data("application/json", part.to_json());
                let target = Self::target(&event)?;
                base.send_resync_part(&target, &event).await?;
            }
        }
        Ok(())
    }

    async fn answer_request<T, Tr>(client: &Client<T, Tr, Self>, event_type: &EventType, event: &Event) -> Result<()>
    where
        T: ResourceObject + Send + Sync + 'static,
        Tr: Transport,
    {
        let Ok(cluster) = event.cluster_name() else {
            tracing::warn!(source = %client.source_id(), "spec resync request without clustername, ignore");
            return Ok(());
        };
        let answer = client.spec_resync_answer(event_type, event, &cluster);
        client
            .timed_answer(client.source_id(), &cluster, event_type, answer)
            .await
    }

    fn asking_peer(request: &Event) -> Option<String> {
        request.cluster_name().ok()
    }
}
