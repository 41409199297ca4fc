//! The error type of the Kubernetes applier.

use std::time::Duration;

use thiserror::Error;

/// Any error of this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A request to the Kubernetes API failed.
    #[error("{action}")]
    Kube {
        /// What was attempted, e.g. `failed to get configmaps default/cm1`.
        action: String,
        /// The client's error (for an API error, the server's `Status`).
        #[source]
        source: Box<kube::Error>,
    },
    /// The Kubernetes client configuration could not be loaded.
    #[error("{what}")]
    Config {
        /// What failed, e.g. `failed to read the kubeconfig PATH`.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A manifest that is not a Kubernetes object the applier can handle.
    #[error("{reason}")]
    InvalidManifest {
        /// Why.
        reason: String,
    },
    /// The cluster does not serve the kind of a manifest (OCM's text).
    #[error("the server doesn't have a resource type {kind:?}")]
    UnknownKind {
        /// API group (`""` for core).
        group: String,
        /// API version.
        version: String,
        /// Kind.
        kind: String,
    },
    /// A CustomResourceDefinition of a work was not established in time.
    #[error("the CustomResourceDefinition {name} is not established after {waited:?}")]
    CrdNotEstablished {
        /// Name of the CRD.
        name: String,
        /// How long the applier waited.
        waited: Duration,
    },
    /// The agent work client refused a status or finalizer patch.
    #[error("failed to update work {name}")]
    Work {
        /// The work (its UID).
        name: String,
        /// Why.
        #[source]
        source: Box<ocm_ce_work::Error>,
    },
    /// A status feedback rule could not be evaluated.
    #[error("{reason}")]
    Feedback {
        /// Why (OCM's text).
        reason: String,
    },
}

impl Error {
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source: Box::new(source),
        }
    }

    /// The HTTP code of an API error (`None` for other errors).
    pub fn api_code(&self) -> Option<u16> {
        match self {
            Self::Kube { source, .. } => match &**source {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            },
            _ => None,
        }
    }

    /// True for an API `404 Not Found`.
    pub fn is_not_found(&self) -> bool {
        self.api_code() == Some(404)
    }

    /// True for an API `409 Conflict` (a stale resource version, a server-side apply field
    /// conflict, or a failed UID precondition).
    pub fn is_conflict(&self) -> bool {
        self.api_code() == Some(409)
    }

    /// What a status condition says about this error: the API server's message for API errors
    /// (e.g. `namespaces "nope" not found`), this error's text followed by its causes otherwise.
    pub fn condition_message(&self) -> String {
        if let Self::Kube { source, .. } = self
            && let kube::Error::Api(status) = &**source
            && !status.message.is_empty()
        {
            return status.message.clone();
        }
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// Result with this crate's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;
