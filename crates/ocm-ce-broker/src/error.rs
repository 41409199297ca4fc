//! The error of this crate.

use std::path::PathBuf;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the broker could not be configured or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A tokens or authorization file does not parse or holds invalid entries.
    #[error("invalid {what} {}: {reason}", path.display())]
    InvalidFile {
        /// Which kind of file (`tokens file`, `authorization policy`).
        what: &'static str,
        /// The file (empty when parsed from a string).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The TLS material is unusable (certificate, key or client CA).
    #[error("invalid TLS configuration: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// The builder's settings contradict each other or are unsafe.
    #[error("invalid broker configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Binding or serving a socket failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the grpc server failed")]
    Serve(#[source] tonic::transport::Error),
}

impl Error {
    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config { reason: reason.into() }
    }

    pub(crate) fn tls(reason: impl Into<String>) -> Self {
        Self::Tls { reason: reason.into() }
    }
}
