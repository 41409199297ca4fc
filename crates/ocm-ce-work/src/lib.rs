//! The ManifestWork layer of **ocm-ce**: Go-compatible `work.open-cluster-management.io/v1`
//! types, the status hash, validation, work UIDs, patching and the CloudEvents codecs of the
//! two ManifestWork data types — the Rust twin of sdk-go v0.15.0's `pkg/cloudevents/work`.
//!
//! It sits on `ocm-ce-core` (event types, extensions, the `Codec` trait) and is used with the
//! generic clients of `ocm-ce-client`. Everything here is synchronous and free of I/O.
//!
//! Wire compatibility is the point: `ocm_ce_core::go_json::to_vec` of a [`ManifestWork`] writes
//! the bytes Go writes, [`status_hash()`] is byte-identical to Go's `ManifestWorkStatusHash`, the
//! codecs produce and accept Go's events, and decoding errors carry Go's texts.
//!
//! ```no_run
//! use ocm_ce_core::{Codec, EventType};
//! use ocm_ce_work::{
//!     AgentManifestBundleCodec, Manifest, ManifestWork, SourceManifestBundleCodec, status_hash, validate, work_uid,
//! };
//!
//! // A source builds a work and its spec event.
//! let manifest = Manifest::from_raw(
//!     r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","namespace":"default"}}"#,
//! )?;
//! let mut work = ManifestWork::new("cluster1", "work1", vec![manifest]);
//! work.metadata.uid = Some(work_uid("source1", "cluster1", "work1"));
//! work.metadata.resource_version = Some("1".into());
//! validate(&work)?;
//! let create: EventType =
//!     "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request".parse()?;
//! let event = SourceManifestBundleCodec::new().encode("source1", &create, &work)?;
//!
//! // The agent decodes it: the agent-side work is named by its UID.
//! let received = AgentManifestBundleCodec::new().decode(&event)?;
//! assert_eq!(received.metadata.name.as_deref(), work.metadata.uid.as_deref());
//! println!("status hash {}", status_hash(&received.status));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! - [`api`]: the types and their well-known names (annotations, labels, finalizers).
//! - [`codec`]: source and agent codecs.
//! - [`payload`]: the event payloads.
//! - [`conditions`]: condition helpers and the agent's `Deleted` condition.
//! - [`validation`], [`patch`](mod@patch), [`uid`], [`status_hash`](mod@status_hash), [`rest_mapper`].
//! - [`queue`]: a deduplicating work queue with per-item back-off for controllers.
//!
//! # Feature flags
//!
//! - `gc`: the garbage collector (module `gc`), which deletes works whose owner resources are gone;
//!   pulls kube's client and runtime (rustls with ring) to watch the owners.
//!
//! # See also
//!
//! `ocm-ce-core` (protocol core), `ocm-ce-client` (generic clients and transports).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
pub mod client;
pub mod codec;
pub mod conditions;
mod decoding;
mod encoding;
mod error;
pub mod file;
#[cfg(feature = "gc")]
#[cfg_attr(docsrs, doc(cfg(feature = "gc")))]
pub mod gc;
pub mod lister;
pub mod metrics;
pub mod patch;
pub mod payload;
pub mod queue;
pub mod rest_mapper;
pub mod selector;
pub mod status_hash;
pub mod store;
pub mod uid;
pub mod validation;

pub use api::{
    Condition, DeleteOption, DeletePropagationPolicy, FeedbackRule, FeedbackType, FeedbackValue, FieldValue, JsonPath,
    Manifest, ManifestCondition, ManifestConfigOption, ManifestResourceMeta, ManifestResourceStatus, ManifestWork,
    ManifestWorkExecutor, ManifestWorkExecutorSubject, ManifestWorkList, ManifestWorkSpec, ManifestWorkStatus,
    ManifestWorkSubjectServiceAccount, ManifestsTemplate, ObjectMeta, OrphaningRule, ResourceIdentifier,
    SelectivelyOrphan, ServerSideApplyConfig, StatusFeedbackResult, Time, UpdateStrategy, UpdateStrategyType,
    ValueType,
};
pub use codec::{AgentManifestBundleCodec, AgentManifestCodec, SourceManifestBundleCodec};
pub use conditions::mark_manifests_deleted;
pub use error::{Error, Result};
pub use patch::{PatchType, patch};
pub use rest_mapper::{RestMapper, StaticRestMapper};
pub use status_hash::{WorkStatusHasher, manifest_work_status_hash, status_hash, status_hash_v1};
pub use uid::work_uid;
pub use validation::{ManifestValidator, ManifestsError, ValidationErrors, validate};
