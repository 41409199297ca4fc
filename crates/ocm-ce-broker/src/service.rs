//! `CloudEventService`: authentication, validation, authorization and routing of each call.

use std::convert::Infallible;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use cloudevents::{AttributesReader, Event};
use futures::future::BoxFuture;
use ocm_ce_core::{EventExt, EventType, SubResource, extensions};
use ocm_ce_proto::pb::{CloudEventService, CloudEventServiceServer, PublishRequest, SubscriptionRequest};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::{Code, Request, Response, Status};

use crate::SUBSCRIPTION_ID_HEADER;
use crate::auth::{Access, Identity};
use crate::io::ConnInfo;
use crate::metrics::{BrokerMetrics, DropReason, Operation, SubscriberRole};
use crate::router::{Destination, Router, SubscriberStream};

/// The handlers.
pub(crate) struct Core {
    pub(crate) router: Arc<Router>,
    pub(crate) access: Arc<RwLock<Arc<Access>>>,
    pub(crate) metrics: BrokerMetrics,
}

/// Who sent an event, by its type: a source (as the `source` attribute) or an agent (for the
/// `clustername` extension).
enum Sender {
    Source(String),
    Agent(String),
}

fn extension(event: &Event, name: &'static str, required: bool) -> Result<String, String> {
    if event.extension(name).is_none() {
        return if required {
            Err(format!("missing extension {name}"))
        } else {
            Ok(String::new())
        };
    }
    let value = match name {
        extensions::CLUSTER_NAME => event.cluster_name(),
        _ => event.original_source(),
    };
    value.map_err(|e| format!("invalid extension {name}: {e}"))
}

/// The sender and destination of an event, from its type and extensions:
/// * spec events (not resync requests) come from sources and go to the agents of `clustername`;
/// * status resync requests come from sources and go to the agents of `clustername` (all when
///   empty);
/// * status events come from agents and go to the source named by `originalsource`;
/// * spec resync requests come from agents and go to the source named by `originalsource` (all
///   when empty).
fn classify(ty: &EventType, event: &Event) -> Result<(Sender, Destination), String> {
    let source = || event.source().to_string();
    Ok(match (ty.sub_resource, ty.is_resync_request()) {
        (SubResource::Spec, false) => {
            let cluster = extension(event, extensions::CLUSTER_NAME, true)?;
            (Sender::Source(source()), Destination::Cluster(cluster))
        }
        (SubResource::Status, true) => {
            let cluster = extension(event, extensions::CLUSTER_NAME, false)?;
            let destination = if cluster.is_empty() {
                Destination::AllClusters
            } else {
                Destination::Cluster(cluster)
            };
            (Sender::Source(source()), destination)
        }
        (SubResource::Status, false) => {
            let cluster = extension(event, extensions::CLUSTER_NAME, true)?;
            let to = extension(event, extensions::ORIGINAL_SOURCE, true)?;
            (Sender::Agent(cluster), Destination::Source(to))
        }
        (SubResource::Spec, true) => {
            let cluster = extension(event, extensions::CLUSTER_NAME, true)?;
            let to = extension(event, extensions::ORIGINAL_SOURCE, false)?;
            let destination = if to.is_empty() {
                Destination::AllSources
            } else {
                Destination::Source(to)
            };
            (Sender::Agent(cluster), destination)
        }
    })
}

impl Core {
    fn access(&self) -> Arc<Access> {
        self.access.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn authenticate<T>(&self, access: &Access, request: &Request<T>) -> Result<Identity, Status> {
        let info = request.extensions().get::<ConnInfo>();
        let cn = info.and_then(|info| info.certificate_cn.as_deref());
        access.authenticate(cn, request.metadata()).inspect_err(|status| {
            let remote = info.and_then(|info| info.remote);
            tracing::info!(?remote, reason = status.message(), "unauthenticated call");
            self.metrics.inc_dropped(DropReason::Unauthenticated);
        })
    }

    fn invalid(&self, message: String) -> Status {
        self.metrics.inc_dropped(DropReason::InvalidEvent);
        Status::invalid_argument(message)
    }

    fn denied(&self, operation: Operation, status: Status, identity: &Identity) -> Status {
        tracing::info!(%identity, ?operation, reason = status.message(), "request denied");
        self.metrics.inc_denied(operation);
        status
    }
}

#[tonic::async_trait]
impl CloudEventService for Core {
    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<()>, Status> {
        let access = self.access();
        let identity = self.authenticate(&access, &request)?;
        let Some(message) = request.into_inner().event else {
            return Err(self.invalid("invalid publish request: missing event".to_owned()));
        };
        let event =
            ocm_ce_proto::decode(message.clone()).map_err(|e| self.invalid(format!("invalid cloudevent: {e}")))?;
        let ty: EventType = event
            .ty()
            .parse()
            .map_err(|e| self.invalid(format!("unsupported event type {:?}: {e}", event.ty())))?;
        let (sender, destination) =
            classify(&ty, &event).map_err(|e| self.invalid(format!("invalid event {}: {e}", event.id())))?;
        match &sender {
            Sender::Source(source) => access.check_source(&identity, source),
            Sender::Agent(cluster) => access.check_cluster(&identity, cluster),
        }
        .map_err(|s| self.denied(Operation::Publish, s, &identity))?;
        self.metrics.inc_published();
        let delivered = self.router.route(&destination, &ty.data_type, &Arc::new(message)).await;
        tracing::trace!(id = event.id(), ty = event.ty(), ?destination, delivered, "routed");
        Ok(Response::new(()))
    }

    type SubscribeStream = SubscriberStream;

    async fn subscribe(&self, request: Request<SubscriptionRequest>) -> Result<Response<SubscriberStream>, Status> {
        let access = self.access();
        let identity = self.authenticate(&access, &request)?;
        let request = request.into_inner();
        // Go v1 agents send `source: "+"` with their cluster name: the cluster decides.
        let (role, key) = if !request.cluster_name.is_empty() {
            (SubscriberRole::Agent, request.cluster_name)
        } else if !request.source.is_empty() {
            (SubscriberRole::Source, request.source)
        } else {
            return Err(self.invalid("invalid subscription request: missing source or cluster name".to_owned()));
        };
        let data_type = if request.data_type.is_empty() {
            None
        } else {
            Some(request.data_type.parse().map_err(|e| {
                self.invalid(format!(
                    "invalid subscription request: invalid data type {:?}: {e}",
                    request.data_type
                ))
            })?)
        };
        match role {
            SubscriberRole::Source => access.check_source(&identity, &key),
            SubscriberRole::Agent => access.check_cluster(&identity, &key),
        }
        .map_err(|s| self.denied(Operation::Subscribe, s, &identity))?;
        let id = uuid::Uuid::new_v4().to_string();
        tracing::debug!(%identity, ?role, %key, subscription_id = %id, "subscribed");
        // Registered before the response (and so its headers) goes out: the headers confirm
        // the subscription.
        let stream = self.router.subscribe(role, key, data_type);
        let mut response = Response::new(stream);
        if let Ok(value) = id.parse() {
            response.metadata_mut().insert(SUBSCRIPTION_ID_HEADER, value);
        }
        Ok(response)
    }
}

/// The generated server, with the statuses tonic gives to undecodable or oversized requests
/// made Go-like and counted: `Internal` (invalid protobuf, truncated body) → `InvalidArgument`,
/// `OutOfRange` (over the size limit) → `ResourceExhausted`. The handlers never return those two
/// codes themselves.
#[derive(Clone)]
pub(crate) struct BrokerService {
    pub(crate) inner: CloudEventServiceServer<Core>,
    pub(crate) metrics: BrokerMetrics,
}

impl Service<http::Request<Body>> for BrokerService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<http::Request<Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let mut response = response.await?;
            rewrite_status(&mut response, &metrics);
            Ok(response)
        })
    }
}

fn rewrite_status<B>(response: &mut http::Response<B>, metrics: &BrokerMetrics) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32);
    let (code, reason) = match code {
        Some(Code::Internal) => (Code::InvalidArgument, DropReason::Malformed),
        Some(Code::OutOfRange) => (Code::ResourceExhausted, DropReason::TooLarge),
        _ => return,
    };
    metrics.inc_dropped(reason);
    response
        .headers_mut()
        .insert("grpc-status", http::HeaderValue::from(code as i32));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocm_ce_core::EventBuilder;

    fn ty(s: &str) -> EventType {
        format!("io.open-cluster-management.works.v1alpha1.manifestbundles.{s}")
            .parse()
            .unwrap()
    }

    fn event(t: &EventType, cluster: &str, original: &str) -> Event {
        EventBuilder::new("src", t.clone())
            .cluster_name(cluster)
            .original_source(original)
            .build()
            .unwrap()
    }

    #[test]
    fn events_are_classified_by_type_and_routing_extensions() {
        let spec = ty("spec.create_request");
        let (from, to) = classify(&spec, &event(&spec, "c1", "")).unwrap();
        assert!(matches!(from, Sender::Source(s) if s == "src"));
        assert_eq!(to, Destination::Cluster("c1".into()));

        let status_resync = ty("status.resync_request");
        let (_, to) = classify(&status_resync, &event(&status_resync, "", "")).unwrap();
        assert_eq!(to, Destination::AllClusters);

        let status = ty("status.update_request");
        let (from, to) = classify(&status, &event(&status, "c1", "s1")).unwrap();
        assert!(matches!(from, Sender::Agent(c) if c == "c1"));
        assert_eq!(to, Destination::Source("s1".into()));

        let spec_resync = ty("spec.resync_request");
        let (_, to) = classify(&spec_resync, &event(&spec_resync, "c1", "")).unwrap();
        assert_eq!(to, Destination::AllSources);
        let (_, to) = classify(&spec_resync, &event(&spec_resync, "c1", "s2")).unwrap();
        assert_eq!(to, Destination::Source("s2".into()));

        let mut no_cluster = event(&spec, "c1", "");
        no_cluster.remove_extension(extensions::CLUSTER_NAME);
        assert_eq!(
            classify(&spec, &no_cluster).err().unwrap(),
            "missing extension clustername"
        );
    }
}
