//! The gRPC wire of Open Cluster Management CloudEvents: the `io.cloudevents.v1` protobuf
//! messages and `CloudEventService` (generated with prost and tonic, checked in), plus the
//! binding between [`cloudevents::Event`] and [`pb::CloudEvent`] that Go's sdk-go v0.15.0 uses
//! (`generic/options/grpc/protobuf/v1` and `generic/options/grpc/protocol`).
//!
//! Layering: this crate sits on `ocm-ce-core` (extension names) and is used by the gRPC
//! transport of `ocm-ce-client` and by the broker. It has no I/O of its own: channels,
//! servers and TLS belong to those crates.
//!
//! ```no_run
//! use cloudevents::{EventBuilder, EventBuilderV10};
//! use prost::Message;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let event = EventBuilderV10::new()
//!     .id("0f8b7a2c-3d4e-4f50-8a1b-2c3d4e5f6a7b")
//!     .source("source1")
//!     .ty("io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request")
//!     .extension("clustername", "cluster1")
//!     .extension("resourceversion", 1_i64)
//!     .data("application/json", b"{\"manifests\":[]}".to_vec())
//!     .build()?;
//!
//! // What a Go peer's `Publish` receives …
//! let request = ocm_ce_proto::encode_publish_request(&event)?;
//! let bytes = request.encode_to_vec();
//!
//! // … and what we make of a `CloudEvent` streamed by `Subscribe`.
//! let received = ocm_ce_proto::pb::PublishRequest::decode(bytes.as_slice())?;
//! let decoded = ocm_ce_proto::decode(received.event.unwrap_or_default())?;
//! assert_eq!(decoded.extension("clustername"), event.extension("clustername"));
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! None. The generated client and server need only tonic's `codegen` feature, so both are
//! always compiled; tonic's transport is enabled by the crates that dial or serve.
//!
//! # See also
//!
//! * [`binding`] for the exact mapping and its Go quirks;
//! * `proto/io/cloudevents/v1/cloudevent.proto` in the repository, and `cargo xtask codegen`
//!   which regenerates `src/generated/` from it.

mod error;

pub mod binding;

#[rustfmt::skip]
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::restriction,
)]
mod generated {
    include!("generated/io.cloudevents.v1.rs");
}

pub use binding::{decode, encode, encode_publish_request, encode_structured, encoding};

/// The type of the heartbeat events a broker sends on subscription streams (Go v1.1+
/// `types.HeartbeatCloudEventsType`); clients consume them.
pub const HEARTBEAT_EVENT_TYPE: &str = "io.open-cluster-management.cloudevents.heartbeat";

/// The response header with which newer brokers acknowledge a subscription, carrying its id
/// (Go v1.2+ `constants.GRPCSubscriptionIDKey`).
pub const SUBSCRIPTION_ID_HEADER: &str = "subscription-id";
pub use error::{Error, Result};

/// The `io.cloudevents.v1` messages and `CloudEventService`, as generated from
/// `proto/io/cloudevents/v1/cloudevent.proto` (field names and numbers as in Go).
///
/// `google.protobuf.Empty` is `()`, `Timestamp` and `Any` are the [`prost_types`] ones. The
/// `attributes` map is a `BTreeMap`, so encoding is deterministic (sorted keys, the bytes of
/// Go's deterministic marshalling).
pub mod pb {
    pub use crate::generated::cloud_event_service_client::CloudEventServiceClient;
    pub use crate::generated::cloud_event_service_server::{CloudEventService, CloudEventServiceServer, SERVICE_NAME};
    pub use crate::generated::{CloudEvent, CloudEventAttributeValue, PublishRequest, SubscriptionRequest};
    pub use prost_types::{Any, Timestamp};

    /// The `data` oneof of [`CloudEvent`].
    pub mod cloud_event {
        pub use crate::generated::cloud_event::Data;
    }

    /// The `attr` oneof of [`CloudEventAttributeValue`].
    pub mod cloud_event_attribute_value {
        pub use crate::generated::cloud_event_attribute_value::Attr;
    }

    /// The encoded `FileDescriptorSet` of the proto (imports included, no source info), for
    /// gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("generated/io.cloudevents.v1.bin");
}
