//! The generic agent client (Go `CloudEventAgentClient`): receives specs, publishes statuses,
//! requests spec resyncs and answers sources' status resync requests.

use std::fmt;
use std::sync::Arc;

use cloudevents::{AttributesReader, Event};
use ocm_ce_core::event_type::action;
use ocm_ce_core::resource::parse_resource_version;
use ocm_ce_core::resync::{agent_status_resync, requested_status_hashes, spec_action};
use ocm_ce_core::{
    Codec, EventBuilder, EventType, ListOptions, ResourceObject, ResourceStatusHashList, ResourceVersion,
    ResourceVersionList, SubResource,
};
use tokio::time::Instant;

use crate::client::{Base, ClientEvent, ClientOptions, ClientStream, Handled, Side};
use crate::error::{Error, Result};
use crate::lister::{Lister, StatusHasher};
use crate::source::data_bytes;
use crate::transport::{PublishTarget, Transport};

/// An agent of one cluster: receives specs from sources and reports statuses.
#[doc(alias = "CloudEventAgentClient")]
pub struct AgentClient<T, Tr: Transport> {
    inner: Arc<Inner<T, Tr>>,
}

struct Inner<T, Tr: Transport> {
    base: Base<T, Tr>,
    agent_id: String,
    cluster_name: String,
}

impl<T, Tr: Transport> Clone for AgentClient<T, Tr> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T, Tr: Transport> fmt::Debug for AgentClient<T, Tr> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("agent_id", &self.inner.agent_id)
            .field("cluster_name", &self.inner.cluster_name)
            .finish_non_exhaustive()
    }
}

/// Why an agent resync could not be requested.
#[derive(Debug, thiserror::Error)]
#[error("failed to parse the resource version {version:?} of {resource_id}")]
pub struct VersionError {
    /// The resource.
    pub resource_id: String,
    /// Its version.
    pub version: String,
}

impl<T, Tr> AgentClient<T, Tr>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
{
    /// An agent client for `cluster_name`, sending as `agent_id`, over `transport` (built for
    /// this agent). Nothing is connected until [`subscribe`](Self::subscribe)'s stream is polled.
    pub fn new(
        transport: Tr,
        cluster_name: impl Into<String>,
        agent_id: impl Into<String>,
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
                agent_id: agent_id.into(),
                cluster_name: cluster_name.into(),
            }),
        }
    }

    /// The cluster this agent serves.
    pub fn cluster_name(&self) -> &str {
        &self.inner.cluster_name
    }

    /// The agent id.
    pub fn agent_id(&self) -> &str {
        &self.inner.agent_id
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.base.is_connected()
    }

    /// The metrics of this client.
    pub fn metrics(&self) -> &crate::ClientMetrics {
        &self.inner.base.options.metrics
    }

    /// Publishes a status event for `resource` (`event_type` must be a status type), routed to
    /// the source in its `originalsource`. Fails with a retryable error while disconnected.
    pub async fn publish(&self, event_type: &EventType, resource: &T) -> Result<()> {
        if event_type.sub_resource != SubResource::Status {
            return Err(Error::UnsupportedEventType {
                event_type: event_type.to_string(),
            });
        }
        let event = self.inner.encode(event_type, resource)?;
        self.inner.send(&event).await
    }

    /// Asks `source_id` (`""` = every source) for the specs that are newer than the ones this
    /// agent holds. One request per data type.
    pub async fn resync(&self, source_id: &str) -> Result<()> {
        self.inner.resync(source_id).await
    }

    /// The subscription stream (specs as `Added` / `Modified` / `Deleted`). Only one per client;
    /// a second call yields [`Error::AlreadySubscribed`].
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
        self.base.encode(&self.agent_id, event_type, resource)
    }

    async fn send(&self, event: &Event) -> Result<()> {
        let target = PublishTarget::for_agent_event(event)?;
        self.base.send(&target, event).await
    }

    async fn resync(&self, source_id: &str) -> Result<()> {
        for data_type in self.base.codec.data_types().to_vec() {
            let options = ListOptions {
                cluster_name: self.cluster_name.clone(),
                source: source_id.to_owned(),
                data_type: data_type.clone(),
            };
            let resources = self.base.lister.list(&options).map_err(Error::List)?;
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
            let mut event = EventBuilder::new(&self.agent_id, ty)
                .cluster_name(&self.cluster_name)
                .original_source(source_id)
                .build()?;
            event.set_data("application/json", versions.to_json());
            let target = PublishTarget::for_agent_event(&event)?;
            self.base.send_resync_part(&target, &event).await?;
        }
        Ok(())
    }

    /// Answers a source's status resync request (Go `respondResyncStatusRequest`).
    async fn respond_status_resync(&self, event_type: &EventType, event: &Event) -> Result<()> {
        let started = Instant::now();
        let result = self.status_resync_answer(event_type, event).await;
        self.base.options.metrics.observe_status_resync(
            event.source(),
            &self.cluster_name,
            &event_type.data_type.to_string(),
            started.elapsed().as_secs_f64(),
        );
        result
    }

    async fn status_resync_answer(&self, event_type: &EventType, event: &Event) -> Result<()> {
        let options = ListOptions {
            cluster_name: self.cluster_name.clone(),
            source: event.source().to_owned(),
            data_type: event_type.data_type.clone(),
        };
        let request = ResourceStatusHashList::decode(&data_bytes(event))?;
        let reply_type = EventType::new(
            event_type.data_type.clone(),
            SubResource::Status,
            action::RESYNC_RESPONSE,
        );
        let hasher = &self.base.hasher;
        let lister = &self.base.lister;
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
        self.base.send_answers(answers, PublishTarget::for_agent_event).await
    }
}

impl<T, Tr> Side<T> for AgentClient<T, Tr>
where
    T: ResourceObject + Send + Sync + 'static,
    Tr: Transport,
{
    type Tr = Tr;

    fn base(&self) -> &Base<T, Tr> {
        &self.inner.base
    }

    fn describe(&self) -> String {
        format!("agent {} of {}", self.inner.agent_id, self.inner.cluster_name)
    }

    async fn resync_all(&self) -> Result<()> {
        self.inner.resync("").await
    }

    async fn answer(&self, request: Event) {
        let inner = &self.inner;
        let Ok(event_type) = request.ty().parse::<EventType>() else {
            return;
        };
        if let Err(e) = inner.respond_status_resync(&event_type, &request).await {
            if matches!(e, Error::Payload(_)) {
                inner.base.options.metrics.dropped("bad_resync_payload");
            }
            tracing::warn!(error = %crate::Report(&e), source = request.source(), "failed to resync resources status");
        }
        if inner.base.should_answer_resync(request.source())
            && let Err(e) = inner.resync(request.source()).await
        {
            tracing::warn!(error = %crate::Report(&e), source = request.source(), "failed to request a spec resync");
        }
    }

    fn handle(&self, event: Event) -> Handled<T> {
        let inner = &self.inner;
        let metrics = &inner.base.options.metrics;
        let event_type: EventType = match event.ty().parse() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, id = event.id(), "dropping event with a malformed type");
                metrics.dropped("malformed_type");
                return Handled::Nothing;
            }
        };
        if event_type.is_resync_request() {
            if event_type.sub_resource != SubResource::Status {
                tracing::debug!(%event_type, "unsupported event type, ignore");
                return Handled::Nothing;
            }
            if let Err(e) = ResourceStatusHashList::decode(&data_bytes(&event)) {
                tracing::warn!(error = %e, id = event.id(), source = event.source(), "dropping a status resync request with a bad payload");
                metrics.dropped("bad_resync_payload");
                return Handled::Nothing;
            }
            return Handled::Answer {
                peer: event.source().to_owned(),
                request: Box::new(event),
            };
        }
        if event_type.sub_resource != SubResource::Spec {
            tracing::debug!(%event_type, "unsupported event type, ignore");
            return Handled::Nothing;
        }
        if !inner.base.codec.handles(&event_type.data_type) {
            tracing::warn!(data_type = %event_type.data_type, "failed to find the codec for event, ignore");
            metrics.dropped("unknown_data_type");
            return Handled::Nothing;
        }
        let resource = match inner.base.codec.decode(&event) {
            Ok(r) => r,
            Err(e) => {
                crate::client::log_undecodable("spec", &event, &e, metrics);
                return Handled::Nothing;
            }
        };
        let options = ListOptions {
            cluster_name: inner.cluster_name.clone(),
            source: event.source().to_owned(),
            data_type: event_type.data_type,
        };
        let local = match inner.base.lister.get(resource.resource_id(), &options) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "failed to list resources, drop the spec event");
                return Handled::Nothing;
            }
        };
        match spec_action(local.as_deref(), &resource) {
            Ok(Some(action)) => Handled::Yield(ClientEvent::Resource { action, resource }),
            Ok(None) => Handled::Nothing,
            Err(e) => {
                tracing::warn!(error = %e, "dropping spec event");
                metrics.dropped("bad_extension");
                Handled::Nothing
            }
        }
    }
}
