//! The error type of the ManifestWork layer. Messages reproduce the Go SDK's texts.

use thiserror::Error;

use crate::validation::{ManifestsError, ValidationErrors};

/// Any error of this crate (codec errors are [`ocm_ce_core::CodecError`]s).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A patch type other than JSON Patch and JSON Merge Patch.
    #[error("unsupported patch type: {patch_type}")]
    UnsupportedPatchType {
        /// The rejected type.
        patch_type: String,
    },
    /// The patch does not parse or does not apply.
    #[error("{reason}")]
    PatchFailed {
        /// Why.
        reason: String,
    },
    /// JSON that does not decode as a ManifestWork (Go's `encoding/json` error text).
    #[error("{reason}")]
    Decode {
        /// Go's error text.
        reason: String,
    },
    /// A work that fails Go's `utils.Validate`.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// Manifests that fail the manifest validator.
    #[error(transparent)]
    Manifests(#[from] ManifestsError),
    /// The work does not exist.
    #[error("manifestworks.work.open-cluster-management.io \"{name}\" not found")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The work exists already.
    #[error("manifestworks.work.open-cluster-management.io \"{name}\" already exists")]
    AlreadyExists {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Another work of this source has the same resource id (the UUID of source, namespace and
    /// name can collide, e.g. `prod-east/app` and `prod/east-app`): agents could not tell
    /// their statuses apart, so the second one is refused.
    #[error("work {namespace}/{name} would have the resource id {uid} of work {existing}; rename one of them")]
    IdCollision {
        /// Namespace of the refused work.
        namespace: String,
        /// Name of the refused work.
        name: String,
        /// The colliding resource id.
        uid: String,
        /// `namespace/name` of the work that has it.
        existing: String,
    },
    /// A ManifestWork file that cannot be read as works ([`crate::file::works_from_yaml`]).
    #[error("{reason}")]
    InvalidWorksFile {
        /// What is wrong, naming the document.
        reason: String,
    },
    /// The work changed since the caller read it.
    #[error("{reason}")]
    Conflict {
        /// Why.
        reason: String,
    },
    /// The event could not be published (Go's `PublishError`).
    #[error("failed to publish work {name}")]
    Publish {
        /// The work.
        name: String,
        /// Why.
        #[source]
        source: ocm_ce_client::Error,
    },
    /// A label or field selector that does not parse.
    #[error("invalid selector {selector:?}: {reason}")]
    InvalidSelector {
        /// The selector.
        selector: String,
        /// Why.
        reason: String,
    },
    /// An internal inconsistency (Go: 500 Internal), e.g. a work without a valid data type.
    #[error("{reason}")]
    Internal {
        /// What.
        reason: String,
    },
    /// A manifest of a work has neither raw JSON nor an object.
    #[error("the Object and Raw of the manifest[{index}] for the work ({namespace}/{name}) are both `nil`")]
    EmptyManifest {
        /// Index of the manifest.
        index: usize,
        /// Namespace of the work.
        namespace: String,
        /// Name of the work.
        name: String,
    },
    /// The garbage collector could not look up an owner through the Kubernetes API.
    #[cfg(feature = "gc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gc")))]
    #[error("failed to look up owner {kind} {name}")]
    OwnerLookup {
        /// Kind of the owner.
        kind: String,
        /// Name of the owner.
        name: String,
        /// Why.
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    /// True for validation failures (Go answers them with 422 Invalid).
    pub fn is_invalid(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::Manifests(_) | Self::InvalidSelector { .. }
        )
    }

    /// True when the work does not exist (Go: 404 NotFound).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True when the work already exists (Go: 409 AlreadyExists).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }

    /// True for conflicts (Go: 409 Conflict, and AlreadyExists).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::AlreadyExists { .. })
    }

    /// True when the event could not be published and a retry may succeed (Go's
    /// `IsPublishError`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Publish { source, .. } if source.is_retryable())
    }

    /// True for any failure to publish (Go's `PublishError`, 500).
    pub fn is_publish_error(&self) -> bool {
        matches!(self, Self::Publish { .. })
    }
}

/// Result with this crate's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;
