//! **ocm-ce**: Open Cluster Management's CloudEvents transport for ManifestWork, in Rust and
//! wire-compatible with the Go SDK (`open-cluster-management.io/sdk-go` v0.15.0).
//!
//! This facade re-exports the layers: [`core`] (sans-IO protocol: event types, extensions,
//! topics, resync payloads and decisions), [`client`] (generic source and agent clients over
//! MQTT 5, gRPC and Kafka), `work` (ManifestWork types, codecs, stores, typed clients, garbage
//! collector) and `broker` (the gRPC broker).
//!
//! ```no_run
//! # #[cfg(all(feature = "work", feature = "grpc"))]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ocm_ce::client::{AnyTransport, TransportConfig, TransportKind};
//! use ocm_ce::work::client::{SourceWorkClient, WorkClientOptions};
//! use ocm_ce::work::ManifestWork;
//!
//! let config = TransportConfig::load(TransportKind::Grpc, "grpc.yaml")?;
//! let transport = AnyTransport::source(&config, "source1", "source1-client")?;
//! let source = SourceWorkClient::start(transport, "source1", Vec::<ManifestWork>::new(), WorkClientOptions::default());
//! source.wait_until_connected().await;
//! for work in source.list("", &Default::default()) {
//!     println!("{}/{}", work.namespace_str(), work.name());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `mqtt` (default): the MQTT 5 transport.
//! - `grpc` (default): the gRPC transport.
//! - `kafka`: the Kafka transport (librdkafka, a C build; opt-in).
//! - `work` (default): the ManifestWork layer.
//! - `broker`: the gRPC broker library.
//! - `gc`: the ManifestWork garbage collector (kube client and runtime).
//! - `testing`: the in-memory broker (`client::testing`).
//!
//! # See also
//!
//! The repository README and `docs/`; the `ocm-ce` command in `ocm-ce-cli`.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "broker")]
#[cfg_attr(docsrs, doc(cfg(feature = "broker")))]
pub use ocm_ce_broker as broker;
pub use ocm_ce_client as client;
pub use ocm_ce_core as core;
#[cfg(feature = "work")]
#[cfg_attr(docsrs, doc(cfg(feature = "work")))]
pub use ocm_ce_work as work;

/// The most used items.
pub mod prelude {
    pub use ocm_ce_client::{AgentClient, ClientEvent, ClientOptions, SourceClient, Transport};
    pub use ocm_ce_core::{Codec, DataType, EventExt, EventType, ResourceAction, ResourceObject};
    #[cfg(feature = "work")]
    pub use ocm_ce_work::client::{AgentWorkClient, SourceWorkClient, WorkClientOptions};
}
