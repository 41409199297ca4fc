//! The HTTP endpoints of a long-running process for its operators: `GET /metrics` (the
//! OpenMetrics text of a registry), `GET /healthz` (liveness: 200 while the process serves) and
//! `GET /readyz` (readiness: 200 when the process says it is ready, 503 otherwise). The broker
//! serves them on its metrics address; `ocm-ce agent` and `ocm-ce source` on theirs.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type Text = Arc<dyn Fn() -> String + Send + Sync>;
type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// What one listener serves; a path whose part is not set answers 404.
#[derive(Clone, Default)]
pub struct Endpoints {
    metrics: Option<Text>,
    ready: Option<Check>,
}

impl fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("metrics", &self.metrics.is_some())
            .field("health", &self.ready.is_some())
            .finish()
    }
}

impl Endpoints {
    /// Nothing served yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `GET /metrics` with the text `encode` returns (OpenMetrics).
    #[must_use]
    pub fn metrics(mut self, encode: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(encode));
        self
    }

    /// Serves `GET /healthz` (always 200: the process answers) and `GET /readyz` (200 when
    /// `ready` returns true, else 503).
    #[must_use]
    pub fn health(mut self, ready: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.ready = Some(Arc::new(ready));
        self
    }

    /// Also serves what `other` serves (for two flags naming one address).
    #[must_use]
    pub fn merge(mut self, other: Self) -> Self {
        self.metrics = self.metrics.or(other.metrics);
        self.ready = self.ready.or(other.ready);
        self
    }

    fn respond(&self, method: &http::Method, path: &str) -> http::Response<String> {
        let (status, body, content_type) = match (method == http::Method::GET, path, &self.metrics, &self.ready) {
            (true, "/metrics", Some(encode), _) => (
                http::StatusCode::OK,
                encode(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (true, "/healthz", _, Some(_)) => (http::StatusCode::OK, "ok\n".to_owned(), "text/plain; charset=utf-8"),
            (true, "/readyz", _, Some(ready)) if ready() => {
                (http::StatusCode::OK, "ready\n".to_owned(), "text/plain; charset=utf-8")
            }
            (true, "/readyz", _, Some(_)) => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                "not ready\n".to_owned(),
                "text/plain; charset=utf-8",
            ),
            _ => (
                http::StatusCode::NOT_FOUND,
                "not found\n".to_owned(),
                "text/plain; charset=utf-8",
            ),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
        response
    }
}

/// Serves `endpoints` on `listener` (HTTP/1.1) until `shutdown` is cancelled. Connections are
/// tasks of a local `JoinSet`, aborted at shutdown.
pub async fn serve(listener: TcpListener, endpoints: Endpoints, shutdown: CancellationToken) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "endpoints listener: accept failed");
                continue;
            }
        };
        let endpoints = endpoints.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let response = endpoints.respond(request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %e, "endpoints connection failed");
            }
        });
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn each_path_answers_only_when_its_part_is_served() {
        let ready = Arc::new(AtomicBool::new(false));
        let flag = ready.clone();
        let both = Endpoints::new()
            .metrics(|| "# EOF\n".to_owned())
            .health(move || flag.load(Ordering::SeqCst));
        let get = http::Method::GET;
        assert_eq!(both.respond(&get, "/metrics").body(), "# EOF\n");
        assert_eq!(both.respond(&get, "/healthz").status(), 200);
        assert_eq!(both.respond(&get, "/readyz").status(), 503);
        ready.store(true, Ordering::SeqCst);
        assert_eq!(both.respond(&get, "/readyz").status(), 200);
        assert_eq!(both.respond(&http::Method::POST, "/metrics").status(), 404);
        assert_eq!(both.respond(&get, "/other").status(), 404);
        let metrics_only = Endpoints::new().metrics(String::new);
        assert_eq!(metrics_only.respond(&get, "/readyz").status(), 404);
        let merged = metrics_only.merge(Endpoints::new().health(|| true));
        assert_eq!(merged.respond(&get, "/readyz").status(), 200);
        assert_eq!(merged.respond(&get, "/metrics").status(), 200);
    }
}
