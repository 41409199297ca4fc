//! The tower connector tonic dials through: TCP, then (with a CA file) a rustls TLS 1.3
//! handshake with ALPN `h2`. tonic's own TLS settings cannot pin the TLS version nor serve a
//! reloading client certificate, hence this connector.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use tonic::codegen::Service;
use tonic::codegen::http::Uri;

/// The connection tonic gets: plain TCP or TLS over TCP.
pub(crate) type Io = TokioIo<Either<TcpStream, TlsStream<TcpStream>>>;

/// Dials `host:port` (from the configured URL, not from the request URI) and optionally
/// handshakes TLS.
#[derive(Clone)]
pub(crate) struct Connector {
    host: String,
    port: u16,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    pub(crate) fn new(host: String, port: u16, tls: Option<(Arc<ClientConfig>, ServerName<'static>)>) -> Self {
        Self { host, port, tls }
    }
}

impl Service<Uri> for Connector {
    type Response = Io;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Io, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect((this.host.as_str(), this.port)).await?;
            tcp.set_nodelay(true)?;
            match this.tls {
                None => Ok(TokioIo::new(Either::Left(tcp))),
                Some((config, name)) => {
                    let tls = TlsConnector::from(config).connect(name, tcp).await?;
                    Ok(TokioIo::new(Either::Right(tls)))
                }
            }
        })
    }
}
