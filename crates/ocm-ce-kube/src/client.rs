//! Building the Kubernetes client of an agent: from a kubeconfig file or the in-cluster
//! environment, and limited to a rate of requests.

use std::path::Path;
use std::sync::Arc;

use http::Request;
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_ce_client::{Limiter, RateLimit};

use crate::error::{Error, Result};

/// A client of the cluster that `kubeconfig` (its current context) names, or, without a path,
/// of the cluster the process runs in (the service account of its pod), falling back to the
/// default kubeconfig (`$KUBECONFIG`, `~/.kube/config`).
pub async fn client_from_kubeconfig(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| config_error(format!("failed to read the kubeconfig {}", path.display()), e))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| config_error(format!("failed to load the kubeconfig {}", path.display()), e))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| config_error("failed to find a Kubernetes configuration".to_owned(), e))?,
    };
    kube::Client::try_from(config).map_err(|e| Error::kube("failed to build the Kubernetes client", e))
}

fn config_error(what: String, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Config {
        what,
        source: Box::new(source),
    }
}

/// `client` with a client-side limit of `limit.qps` requests per second (bursts of
/// `limit.burst`), as client-go's `QPS`/`Burst`: every request (a watch counts once) waits for a
/// token first. Clones of the result share the limit.
pub fn rate_limited(client: kube::Client, limit: RateLimit) -> kube::Client {
    let limiter = Arc::new(Limiter::new(limit));
    let default_namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |request: Request<Body>| {
        let client = client.clone();
        let limiter = limiter.clone();
        async move {
            limiter.acquire().await;
            client.send(request).await
        }
    });
    kube::Client::new(service, default_namespace)
}
