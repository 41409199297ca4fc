//! The agent side (Go `CloudEventAgentClient`): receives specs, publishes statuses, requests
//! spec resyncs and answers sources' status resync requests.

use cloudevents::{AttributesReader, Event};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resource::parse_resource_version;
use ocm_ce_core::resync::{agent_status_resync, requested_status_hashes};
use ocm_ce_core::{
    Codec, EventBuilder, EventType, ListOptions, PayloadError, ResourceObject, ResourceStatusHashList, ResourceVersion,
    ResourceVersionList, SubResource, TopicError,
};

use crate::client::{Client, ClientOptions, data_bytes};
use crate::error::{Error, Result};
use crate::lister::{Lister, StatusHasher};
use crate::metrics::ClientMetrics;
use crate::side::{Side, sealed::Sealed};
use crate::transport::{PublishTarget, Transport};

/// An agent of one cluster: receives specs from sources and reports statuses.
#[doc(alias = "CloudEventAgentClient")]
pub type AgentClient<T, Tr> = Client<T, Tr, AgentSide>;

/// The agent side of a [`Client`]: its agent id and the cluster it serves.
#[derive(Debug)]
pub struct AgentSide {
    agent_id: String,
    cluster_name: String,
}

impl Side for AgentSide {}

/// Why an agent resync could not be requested.
#[derive(Debug, thiserror::Error)]
#[error("failed to parse the resource version {version:?} of {resource_id}")]
pub struct VersionError {
    /// The resource.
    pub resource_id: String,
    /// Its version.
    pub version: String,
}

impl<T, Tr> Client<T, Tr, AgentSide>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
{
    /// An agent client for `cluster_name`, sending as `agent_id`, over `transport` (built for
    /// this agent). It asks for spec resyncs with the versions of what `lister` lists, and
    /// answers sources' status resync requests with what it lists whose `status_hash` differs.
    /// Nothing is connected until [`subscribe`](Self::subscribe)'s stream is polled.
    pub fn new(
        transport: Tr,
        cluster_name: impl Into<String>,
        agent_id: impl Into<String>,
        codec: impl Codec<T> + 'static,
        lister: impl Lister<T> + 'static,
        status_hash: impl StatusHasher<T> + 'static,
        options: ClientOptions,
    ) -> Self {
        let side = AgentSide {
            agent_id: agent_id.into(),
            cluster_name: cluster_name.into(),
        };
        Self::with_side(transport, side, codec, lister, status_hash, options)
    }

    /// The cluster this agent serves.
    pub fn cluster_name(&self) -> &str {
        &self.side().cluster_name
    }

    /// The agent id.
    pub fn agent_id(&self) -> &str {
        &self.side().agent_id
    }

    /// Answers a source's status resync request (Go `respondResyncStatusRequest`).
    async fn status_resync_answer(&self, event_type: &EventType, event: &Event) -> Result<()> {
        let base = self.base();
        let options = ListOptions::new(self.cluster_name(), event.source(), event_type.data_type.clone());
        let request = ResourceStatusHashList::decode(&data_bytes(event))?;
        let reply_type = EventType::new(
            event_type.data_type.clone(),
            SubResource::Status,
            action::RESYNC_RESPONSE,
        );
        let (hasher, lister) = (&base.hasher, &base.lister);
        // Each answer carries the resource as it is when it is sent, not as it was when the
        // list was taken: its sequence id is made then, so an older status with a newer
        // sequence id could overwrite a status sent meanwhile (answers take time under load).
        let ids: Vec<String> = if request.hashes.is_empty() {
            let local = lister.list(&options).map_err(Error::List)?;
            agent_status_resync(&local, &request, |r, hash| hasher.same_status(r, hash))
                .into_iter()
                .map(|r| r.resource_id().to_owned())
                .collect()
        } else {
            // Only what the request names can be resent: looked up one by one, not listed.
            let mut ids = Vec::new();
            for (id, hash) in requested_status_hashes(&request) {
                if let Some(local) = lister.get(id, &options).map_err(Error::List)?
                    && hasher.same_status(&local, hash).is_ok_and(|same| !same)
                {
                    ids.push(id.to_owned());
                }
            }
            ids
        };
        let answers = ids
            .into_iter()
            .filter_map(|id: String| match lister.get(&id, &options) {
                Ok(Some(current)) => Some(self.encode(&reply_type, &current)),
                Ok(None) => None,
                Err(e) => Some(Err(Error::List(e))),
            });
        base.send_answers(answers, AgentSide::target).await
    }
}

impl Sealed for AgentSide {
    const PUBLISHES: SubResource = SubResource::Status;
    const RECEIVES: SubResource = SubResource::Spec;

    fn sender_id(&self) -> &str {
        &self.agent_id
    }

    fn describe(&self) -> String {
        format!("agent {} of {}", self.agent_id, self.cluster_name)
    }

    fn target(event: &Event) -> std::result::Result<PublishTarget, TopicError> {
        PublishTarget::for_agent_event(event)
    }

    fn check_request(data: &[u8]) -> std::result::Result<(), PayloadError> {
        ResourceStatusHashList::decode(data).map(drop)
    }

    fn request_peer(event: &Event) -> String {
        event.source().to_owned()
    }

    fn accept(&self, _event: &Event, _metrics: &ClientMetrics) -> bool {
        // The transport delivers only this cluster's specs; what they mean (new, newer, older,
        // a deletion) is for the owner of the works to decide.
        true
    }

    async fn request_resync<T, Tr>(client: &Client<T, Tr, Self>, source_id: &str) -> Result<()>
    where
        T: ResourceObject + Send + Sync + 'static,
        Tr: Transport,
    {
        let base = client.base();
        for data_type in base.codec.data_types().to_vec() {
            let options = ListOptions::new(client.cluster_name(), source_id, data_type.clone());
            let resources = base.lister.list(&options).map_err(Error::List)?;
            let mut versions = ResourceVersionList::default();
            for r in &resources {
                let resource_version = parse_resource_version(r.resource_version()).map_err(|_| {
                    Error::List(Box::new(VersionError {
                        resource_id: r.resource_id().to_owned(),
                        version: r.resource_version().to_owned(),
                    }))
                })?;
                versions.versions.push(ResourceVersion {
                    resource_id: r.resource_id().to_owned(),
                    resource_version,
                });
            }
            let ty = EventType::new(data_type, SubResource::Spec, action::RESYNC_REQUEST);
            let mut event = EventBuilder::new(client.agent_id(), ty)
                .cluster_name(client.cluster_name())
                .original_source(source_id)
                .build()?;
            event.set_data("application/json", versions.to_json());
            let target = Self::target(&event)?;
            base.send_resync_part(&target, &event).await?;
        }
        Ok(())
    }

    async fn answer_request<T, Tr>(client: &Client<T, Tr, Self>, event_type: &EventType, event: &Event) -> Result<()>
    where
        T: ResourceObject + Send + Sync + 'static,
        Tr: Transport,
    {
        let answer = client.status_resync_answer(event_type, event);
        client
            .timed_answer(event.source(), client.cluster_name(), event_type, answer)
            .await
    }

    fn asking_peer(request: &Event) -> Option<String> {
        Some(request.source().to_owned())
    }
}
