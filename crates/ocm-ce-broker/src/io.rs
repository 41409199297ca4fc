//! Accepted connections: plain TCP, or TLS 1.3 through a rustls acceptor. Handshakes run as
//! futures inside the incoming stream (no spawned tasks), bounded in number and time; the
//! verified client certificate's subject CN travels with the connection to the handlers.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;
use tonic::transport::server::Connected;

use crate::ServerTlsConfig;
use crate::auth::subject_common_name;
use crate::error::{Error, Result};
use crate::metrics::BrokerMetrics;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PENDING_HANDSHAKES: usize = 1024;
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What the handlers learn about the connection of a call.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnInfo {
    pub(crate) remote: Option<SocketAddr>,
    /// Subject CN of the verified client certificate, if one was presented.
    pub(crate) certificate_cn: Option<String>,
}

/// One accepted connection.
pub(crate) struct BrokerIo {
    inner: Either<TcpStream, TlsStream<TcpStream>>,
    info: ConnInfo,
}

impl fmt::Debug for BrokerIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerIo")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Connected for BrokerIo {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for BrokerIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for BrokerIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The stream of accepted (and handshaken) connections tonic serves.
pub(crate) struct Incoming {
    listener: TcpListener,
    tls: Arc<RwLock<Option<TlsAcceptor>>>,
    handshakes: FuturesUnordered<BoxFuture<'static, Option<BrokerIo>>>,
    metrics: BrokerMetrics,
    /// After an accept error (e.g. out of file descriptors), wait before accepting again.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Incoming {
    pub(crate) fn new(listener: TcpListener, tls: Arc<RwLock<Option<TlsAcceptor>>>, metrics: BrokerMetrics) -> Self {
        Self {
            listener,
            tls,
            handshakes: FuturesUnordered::new(),
            metrics,
            pause: None,
        }
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
    metrics: BrokerMetrics,
) -> Option<BrokerIo> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let certificate_cn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| subject_common_name(leaf));
            Some(BrokerIo {
                inner: Either::Right(tls),
                info: ConnInfo {
                    remote: Some(remote),
                    certificate_cn,
                },
            })
        }
        Ok(Err(e)) => {
            metrics.inc_handshake_failures();
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.inc_handshake_failures();
            tracing::debug!(%remote, "TLS handshake timed out");
            None
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<BrokerIo>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(pause) = &mut this.pause
            && pause.as_mut().poll(cx).is_ready()
        {
            this.pause = None;
        }
        loop {
            if this.pause.is_none() && this.handshakes.len() < MAX_PENDING_HANDSHAKES {
                match this.listener.poll_accept(cx) {
                    Poll::Ready(Ok((tcp, remote))) => {
                        // Small frames (one event) should not wait for Nagle.
                        let _ = tcp.set_nodelay(true);
                        let acceptor = this.tls.read().unwrap_or_else(PoisonError::into_inner).clone();
                        match acceptor {
                            None => {
                                return Poll::Ready(Some(Ok(BrokerIo {
                                    inner: Either::Left(tcp),
                                    info: ConnInfo {
                                        remote: Some(remote),
                                        certificate_cn: None,
                                    },
                                })));
                            }
                            Some(acceptor) => {
                                this.handshakes
                                    .push(Box::pin(handshake(acceptor, tcp, remote, this.metrics.clone())));
                                continue;
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::warn!(error = %e, "accept failed; pausing accepts for 100 ms");
                        let mut pause = Box::pin(tokio::time::sleep(ACCEPT_ERROR_PAUSE));
                        // Registers the wake-up; the sleep has just started.
                        let _ = pause.as_mut().poll(cx);
                        this.pause = Some(pause);
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            return match this.handshakes.poll_next_unpin(cx) {
                Poll::Ready(Some(Some(io))) => Poll::Ready(Some(Ok(io))),
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            };
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::tls(format!("{}: no certificate found", path.display())));
    }
    Ok(certs)
}

/// The rustls acceptor of `config`: TLS 1.3 only, ALPN `h2`, client certificates verified
/// against the client CA when one is set (optional at the TLS level: a client without one
/// may still authenticate with a bearer token, and is refused by the handlers otherwise).
pub(crate) fn acceptor(config: &ServerTlsConfig) -> Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&config.cert_file)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&config.key_file)?)
        .map_err(|e| Error::tls(format!("{}: {e}", config.key_file.display())))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::tls(e.to_string()))?;
    let builder = match &config.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certificates(ca)?);
            if added == 0 {
                return Err(Error::tls(format!("{}: no usable CA certificate", ca.display())));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| Error::tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::tls(format!("{}: {e}", config.key_file.display())))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}
