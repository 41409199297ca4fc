//! The Kubernetes side of an **ocm-ce** work agent: [`KubeApplier`] applies the ManifestWorks an
//! [`AgentWorkClient`](ocm_ce_work::client::AgentWorkClient) receives to a cluster through
//! kube-rs and reports their status back, the way OCM's work agent does (ManifestWork v1 API,
//! open-cluster-management.io/ocm v0.15.0).
//!
//! It sits on `ocm-ce-work` (the agent work client and the ManifestWork types) and kube-rs. What
//! it does, per work:
//!
//! - adds the agent finalizer, and records the work in an [`AppliedManifestWork`] named
//!   `<hub hash>-<work UID>` (OCM's record; resources the work owns carry an owner reference
//!   to it);
//! - applies every manifest, of any kind, namespaced or cluster-scoped, found by discovery
//!   (cached, refreshed on a miss); CustomResourceDefinitions first, waiting until they are
//!   established; with the update strategy of its `manifestConfigs` entry: `ServerSideApply`
//!   (field manager [`DEFAULT_FIELD_MANAGER`] or the configured one, `force` as configured),
//!   `Update` (the default), `CreateOnly` or `ReadOnly`;
//! - reports per-manifest `Applied` (with the API server's message when it fails), `Available`
//!   and `StatusFeedbackSynced` conditions and the status feedback values (JSONPaths, and the
//!   well-known status of Deployments, DaemonSets, Jobs and Pods), and work-level `Applied` and
//!   `Available` conditions with the observed generation; re-reads them every
//!   [`ApplierConfig::status_sync_interval`];
//! - deletes the resources of manifests dropped from the work, unless another work owns them
//!   too (then it only drops its owner reference);
//! - on deletion, deletes what the work owns (`Foreground`, the default) or leaves it
//!   (`Orphan`, and the orphaning rules of `SelectivelyOrphan`), waits until the resources are
//!   gone, deletes the record and removes the finalizer, so the agent reports `Deleted`.
//!
//! After a restart, [`KubeApplier::recorded_works`] rebuilds the agent's works from the
//! records; started with them
//! ([`AgentWorkClient::start_with_works`](ocm_ce_work::client::AgentWorkClient::start_with_works)),
//! the agent finishes the deletions sources made while it was down.
//!
//! ```no_run
//! use ocm_ce_client::{AnyTransport, TransportConfig, TransportKind};
//! use ocm_ce_kube::{ApplierConfig, KubeApplier, client_from_kubeconfig, hub_hash};
//! use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, WorkClientOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let kube = client_from_kubeconfig(Some("managed-cluster.kubeconfig".as_ref())).await?;
//! let config = ApplierConfig::new(hub_hash("broker.example:8090"), "cluster1-agent").workers(8);
//! let applier = KubeApplier::new(kube, config);
//! let recorded = applier.recorded_works("cluster1").await?;
//! let transport_config = TransportConfig::load(TransportKind::Grpc, "grpc.yaml")?;
//! let transport = AnyTransport::agent(&transport_config, "cluster1", "cluster1-agent")?;
//! let agent = AgentWorkClient::start_with_works(
//!     transport,
//!     "cluster1",
//!     "cluster1-agent",
//!     AgentCodecs::bundles(),
//!     WorkClientOptions::default(),
//!     recorded,
//! );
//! applier.run(&agent, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! agent.close(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! # The hub side
//!
//! [`Hub`] is the other end: it serves the ManifestWorks of a hub API server (the upstream CRD,
//! namespace = cluster) through a
//! [`SourceWorkClient`](ocm_ce_work::client::SourceWorkClient) — specs out, the statuses agents
//! report written into the status subresource, deletions finished through the finalizer
//! [`HUB_FINALIZER`] — and [`hub_works`] gives a restarted hub its initial works.
//!
//! # Kubernetes versions
//!
//! Like every library on k8s-openapi, this crate enables no `v1_*` feature of it: the binary
//! picks the Kubernetes version (this workspace sets `K8S_OPENAPI_ENABLED_VERSION`). It is
//! tested against kube-apiserver v1.37.
//!
//! # Not done (yet)
//!
//! - The executor (`spec.executor`): works are applied with the agent's own identity; OCM
//!   checks the executor's permissions with SubjectAccessReviews first.
//! - Records whose work is gone while the agent knows nothing of it are not evicted after a
//!   grace period (OCM's unmanaged AppliedManifestWork controller).
//!
//! # See also
//!
//! `ocm-ce-work` (the agent work client, the ManifestWork types and the garbage collector),
//! `ocm-ce-client` (transports).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod applied;
mod applier;
mod apply;
mod client;
mod config;
mod delete;
mod error;
mod feedback;
mod hub;
mod resolver;
mod status;

pub use applied::{
    AppliedManifestResourceMeta, AppliedManifestWork, AppliedManifestWorkSpec, AppliedManifestWorkStatus,
    CLUSTER_ANNOTATION, applied_manifest_work_name, applied_manifest_works, recorded_works,
};
pub use applier::{ApplierMetrics, KubeApplier};
pub use client::{client_from_kubeconfig, rate_limited};
pub use config::{ApplierConfig, DEFAULT_FIELD_MANAGER, hub_hash};
pub use error::{Error, Result};
pub use hub::{HUB_FINALIZER, Hub, HubConfig, hub_works};
pub use status::{STATUS_FEEDBACK_SYNCED, observed_generation};
