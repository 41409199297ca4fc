//! The generated service matches Go's: names, method paths, message shapes.

// Helpers outside `#[test]` functions panic on bad vectors too.
#![allow(clippy::unwrap_used)]

use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use ocm_ce_proto::pb::{self, CloudEventServiceClient};
use prost::Message as _;
use prost_types::FileDescriptorSet;
use prost_types::field_descriptor_proto::Type;
use tonic::body::Body;
use tonic::codegen::{Service, http};

/// Polls `future` to completion; everything under test here completes without waiting.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("future did not complete");
}

#[test]
fn the_descriptor_set_describes_gos_cloud_event_service() {
    let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let file = set.file.iter().find(|f| f.package() == "io.cloudevents.v1").unwrap();
    assert_eq!(file.name(), "io/cloudevents/v1/cloudevent.proto");
    assert!(
        set.file.iter().any(|f| f.name() == "google/protobuf/timestamp.proto"),
        "imports are included"
    );

    let service = &file.service[0];
    assert_eq!(service.name(), "CloudEventService");
    let methods: Vec<_> = service
        .method
        .iter()
        .map(|m| {
            (
                format!("/{}.{}/{}", file.package(), service.name(), m.name()),
                m.input_type(),
                m.output_type(),
                m.server_streaming(),
                m.client_streaming(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            (
                "/io.cloudevents.v1.CloudEventService/Publish".to_owned(),
                ".io.cloudevents.v1.PublishRequest",
                ".google.protobuf.Empty",
                false,
                false
            ),
            (
                "/io.cloudevents.v1.CloudEventService/Subscribe".to_owned(),
                ".io.cloudevents.v1.SubscriptionRequest",
                ".io.cloudevents.v1.CloudEvent",
                true,
                false
            ),
        ]
    );

    let fields = |message: &str| -> Vec<(String, i32, Type)> {
        let message = file.message_type.iter().find(|m| m.name() == message).unwrap();
        message
            .field
            .iter()
            .map(|f| (f.name().to_owned(), f.number(), f.r#type()))
            .collect()
    };
    let owned = |fields: &[(&str, i32, Type)]| -> Vec<(String, i32, Type)> {
        fields
            .iter()
            .map(|(name, number, ty)| ((*name).to_owned(), *number, *ty))
            .collect()
    };
    assert_eq!(
        fields("CloudEvent"),
        owned(&[
            ("id", 1, Type::String),
            ("source", 2, Type::String),
            ("spec_version", 3, Type::String),
            ("type", 4, Type::String),
            ("attributes", 5, Type::Message),
            ("binary_data", 6, Type::Bytes),
            ("text_data", 7, Type::String),
            ("proto_data", 8, Type::Message),
        ])
    );
    assert_eq!(
        fields("CloudEventAttributeValue"),
        owned(&[
            ("ce_boolean", 1, Type::Bool),
            ("ce_integer", 2, Type::Int32),
            ("ce_string", 3, Type::String),
            ("ce_bytes", 4, Type::Bytes),
            ("ce_uri", 5, Type::String),
            ("ce_uri_ref", 6, Type::String),
            ("ce_timestamp", 7, Type::Message),
        ])
    );
    assert_eq!(fields("PublishRequest"), owned(&[("event", 1, Type::Message)]));
    assert_eq!(
        fields("SubscriptionRequest"),
        owned(&[
            ("source", 1, Type::String),
            ("cluster_name", 2, Type::String),
            ("data_type", 3, Type::String),
        ])
    );
}

#[test]
fn the_server_is_named_like_gos_service() {
    assert_eq!(pb::SERVICE_NAME, "io.cloudevents.v1.CloudEventService");
}

/// A channel stand-in that records the request paths and answers `Unimplemented`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Service<http::Request<Body>> for Recorder {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.0
            .lock()
            .expect("recorder lock")
            .push(request.uri().path().to_owned());
        let response = http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "12")
            .body(Body::empty())
            .expect("static response");
        ready(Ok(response))
    }
}

#[test]
fn the_generated_client_calls_gos_method_paths() {
    let recorder = Recorder::default();
    let mut client =
        CloudEventServiceClient::with_origin(recorder.clone(), http::Uri::from_static("http://broker.invalid"));

    let status = run(client.publish(pb::PublishRequest::default())).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let status = run(client.subscribe(pb::SubscriptionRequest {
        source: String::new(),
        cluster_name: "cluster1".to_owned(),
        data_type: String::new(),
    }))
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            "/io.cloudevents.v1.CloudEventService/Publish",
            "/io.cloudevents.v1.CloudEventService/Subscribe",
        ]
    );
}
