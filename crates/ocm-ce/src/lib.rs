//! **ocm-ce**: Open Cluster Management's CloudEvents transport for ManifestWork, in Rust and
//! wire-compatible with the Go SDK (`open-cluster-management.io/sdk-go` v0.15.0).
//!
//! This facade re-exports the layers: [`core`] (sans-IO protocol: event types, extensions,
//! topics, resync payloads and decisions) and [`client`] (generic source and agent clients over
//! pluggable transports).
//!
//! ```no_run
//! use ocm_ce::core::EventType;
//!
//! let ty: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
//!     .parse()
//!     .expect("a valid event type");
//! assert_eq!(ty.data_type.resource, "manifestbundles");
//! ```
//!
//! # Feature flags
//!
//! - `testing`: the in-memory broker (`client::testing`).
//!
//! # See also
//!
//! The repository README and `docs/`.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use ocm_ce_client as client;
pub use ocm_ce_core as core;

/// The most used items.
pub mod prelude {
    pub use ocm_ce_client::{AgentClient, ClientEvent, ClientOptions, SourceClient, Transport};
    pub use ocm_ce_core::{Codec, DataType, EventExt, EventType, ResourceAction, ResourceObject};
}
