//! TLS client configuration shared by the transports (Go `generic/options/cert`).
//!
//! [`client_config`] builds a [`rustls::ClientConfig`] (ring provider) from PEM files: the root
//! certificates are the system store plus an optional CA file, the TLS versions are chosen by
//! parameter, and the client certificate (for mutual TLS) is served by a
//! [`ReloadingClientCert`], which reads the certificate and key files again on **every
//! handshake**. A reconnect therefore always presents the files' current content, which is the
//! Rust form of Go's `GetClientCertificate` with its caching loader.
//!
//! Rotation of a live connection needs a reconnect; transports detect changed files with
//! [`ClientCertFiles::snapshot`] (Go polls every 5 minutes and closes the connection when the
//! certificate changed).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            Self::Tls12 => &rustls::version::TLS12,
            Self::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// A client certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientCertFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The raw content of a certificate/key pair at one moment; equal snapshots mean unchanged
/// files.
#[derive(Clone, PartialEq, Eq)]
pub struct CertSnapshot {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl fmt::Debug for CertSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSnapshot")
            .field("cert_bytes", &self.cert.len())
            .finish_non_exhaustive()
    }
}

impl ClientCertFiles {
    /// A pair of files.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        }
    }

    /// Reads and parses both files into a rustls certified key (the key must match the leaf
    /// certificate).
    pub fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        let chain = read_certs(&self.cert_file)?;
        let key_pem = read(&self.key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::InvalidKey {
            path: self.key_file.clone(),
            reason: e.to_string(),
        })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::InvalidKey {
            path: self.key_file.clone(),
            reason: e.to_string(),
        })
    }

    /// The files' current bytes, for change detection.
    pub fn snapshot(&self) -> Result<CertSnapshot, TlsError> {
        Ok(CertSnapshot {
            cert: read(&self.cert_file)?,
            key: read(&self.key_file)?,
        })
    }
}

/// What [`client_config`] builds from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ClientTlsOptions {
    /// PEM file with extra root certificates (added to the system store when
    /// [`system_roots`](Self::system_roots) is on).
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS, re-read on every handshake.
    pub client_cert: Option<ClientCertFiles>,
    /// Trust the platform's root store as well (Go's `x509.SystemCertPool`). Default: on.
    pub system_roots: bool,
    /// Lowest accepted version. Default: TLS 1.2 (Go's default).
    pub min_version: TlsVersion,
    /// Highest accepted version. Default: TLS 1.3.
    pub max_version: TlsVersion,
}

impl Default for ClientTlsOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            client_cert: None,
            system_roots: true,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        }
    }
}

impl ClientTlsOptions {
    /// Sets the CA file.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
    /// Sets the client certificate files.
    pub fn client_cert(mut self, files: ClientCertFiles) -> Self {
        self.client_cert = Some(files);
        self
    }
    /// Turns the platform root store on or off.
    pub fn system_roots(mut self, on: bool) -> Self {
        self.system_roots = on;
        self
    }
    /// Sets the accepted version range (`Tls13, Tls13` for TLS 1.3 only, as Go's gRPC options).
    pub fn versions(mut self, min: TlsVersion, max: TlsVersion) -> Self {
        self.min_version = min;
        self.max_version = max;
        self
    }
}

/// The ring crypto provider every config of this crate uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a rustls client config: roots from the system store and `ca_file`, versions in
/// `min_version..=max_version`, and a [`ReloadingClientCert`] when a client certificate is set.
///
/// The client certificate is loaded once here, so broken files fail early; afterwards every
/// handshake reads the files again.
pub fn client_config(options: &ClientTlsOptions) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    if options.system_roots {
        // Unreadable entries of the platform store are skipped, as Go's SystemCertPool does.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(ca) = &options.ca_file {
        let certs = read_certs(ca).map_err(|_| TlsError::InvalidCa { path: ca.clone() })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::InvalidCa { path: ca.clone() });
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    if options.min_version > options.max_version {
        return Err(TlsError::Versions);
    }
    let versions: Vec<&'static SupportedProtocolVersion> = [TlsVersion::Tls12, TlsVersion::Tls13]
        .into_iter()
        .filter(|v| (options.min_version..=options.max_version).contains(v))
        .map(TlsVersion::rustls)
        .collect();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots);
    Ok(match &options.client_cert {
        Some(files) => {
            files.load(&provider)?;
            builder.with_client_cert_resolver(Arc::new(ReloadingClientCert::new(files.clone(), provider)))
        }
        None => builder.with_no_client_auth(),
    })
}

/// Serves the client certificate, reading the files again on every handshake (so a rotated
/// certificate is used by the next connection without a restart).
pub struct ReloadingClientCert {
    files: ClientCertFiles,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ReloadingClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingClientCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingClientCert {
    /// A resolver over `files`, parsing keys with `provider`.
    pub fn new(files: ClientCertFiles, provider: Arc<CryptoProvider>) -> Self {
        Self { files, provider }
    }
}

impl ResolvesClientCert for ReloadingClientCert {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        match self.files.load(&self.provider) {
            Ok(key) => Some(Arc::new(key)),
            Err(e) => {
                tracing::warn!(error = %e, "failed to load the client certificate, continuing without one");
                None
            }
        }
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::InvalidCertificate {
            path: path.to_owned(),
            reason: "no certificate found".to_owned(),
        });
    }
    Ok(certs)
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate (Go: `invalid CA <file>`).
    #[error("invalid CA {}", path.display())]
    InvalidCa {
        /// The file.
        path: PathBuf,
    },
    /// A certificate file does not parse.
    #[error("invalid certificate file {}: {reason}", path.display())]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key file does not parse or does not match its certificate.
    #[error("invalid private key file {}: {reason}", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Neither the platform store nor the CA file gave a root certificate.
    #[error("no root certificates: the platform store is empty and no CA file is set")]
    NoRoots,
    /// The minimum version is above the maximum.
    #[error("the minimum TLS version is above the maximum")]
    Versions,
    /// rustls refused the configuration.
    #[error("invalid TLS configuration")]
    Rustls(#[source] rustls::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, content).unwrap();
        p
    }

    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_invalid_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "ca.pem", "not a certificate");
        let err = client_config(&ClientTlsOptions::default().ca_file(&ca)).unwrap_err();
        assert_eq!(err.to_string(), format!("invalid CA {}", ca.display()));
    }

    #[test]
    fn a_client_certificate_is_loaded_and_snapshots_notice_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, _) = self_signed();
        let ca = write(dir.path(), "ca.pem", &ca_pem);
        let (cert, key) = self_signed();
        let files = ClientCertFiles::new(write(dir.path(), "c.pem", &cert), write(dir.path(), "k.pem", &key));
        let config = client_config(
            &ClientTlsOptions::default()
                .ca_file(&ca)
                .system_roots(false)
                .client_cert(files.clone()),
        )
        .unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        let before = files.snapshot().unwrap();
        assert_eq!(before, files.snapshot().unwrap());
        let (cert2, key2) = self_signed();
        write(dir.path(), "c.pem", &cert2);
        write(dir.path(), "k.pem", &key2);
        assert_ne!(before, files.snapshot().unwrap());
        files.load(&provider()).unwrap();
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        let files = ClientCertFiles::new(
            write(dir.path(), "c.pem", &cert),
            write(dir.path(), "k.pem", &other_key),
        );
        assert!(matches!(files.load(&provider()), Err(TlsError::InvalidKey { .. })));
    }

    #[test]
    fn tls13_only_configs_offer_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, _) = self_signed();
        let ca = write(dir.path(), "ca.pem", &ca_pem);
        let options = ClientTlsOptions::default()
            .ca_file(&ca)
            .system_roots(false)
            .versions(TlsVersion::Tls13, TlsVersion::Tls13);
        assert!(client_config(&options).is_ok());
        let backwards = options.versions(TlsVersion::Tls13, TlsVersion::Tls12);
        assert!(matches!(client_config(&backwards), Err(TlsError::Versions)));
    }
}
