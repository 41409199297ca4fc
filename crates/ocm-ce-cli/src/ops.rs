//! `--metrics-addr` and `--health-addr` of the long-running `agent` and `source` commands:
//! the HTTP endpoints of `ocm_ce_broker::endpoints` (`/metrics`; `/healthz` and `/readyz`),
//! served until the command ends.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use ocm_ce_broker::endpoints::{Endpoints, serve};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::cli::OpsArgs;

/// The served endpoints; they stop when this is dropped.
#[derive(Debug)]
pub(crate) struct Ops {
    stop: CancellationToken,
}

impl Drop for Ops {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Ops {
    /// Binds the addresses of `args` (an address given to both flags serves everything) and
    /// serves `registry` on `/metrics` and `ready` on `/readyz`.
    pub(crate) async fn start(
        args: &OpsArgs,
        registry: Registry,
        ready: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Result<Self> {
        let stop = CancellationToken::new();
        let registry = std::sync::Arc::new(registry);
        let metrics = args.metrics_addr.map(|addr| {
            let registry = registry.clone();
            let endpoints = Endpoints::new().metrics(move || {
                let mut out = String::new();
                // Writing to a String cannot fail.
                let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                out
            });
            (addr, endpoints)
        });
        let health = args.health_addr.map(|addr| (addr, Endpoints::new().health(ready)));
        let listeners = match (metrics, health) {
            (Some((m, me)), Some((h, he))) if m == h => vec![(m, me.merge(he))],
            (metrics, health) => metrics.into_iter().chain(health).collect(),
        };
        for (addr, endpoints) in listeners {
            let listener = bind(addr).await?;
            eprintln!(
                "serving {} on http://{}",
                what(&args.metrics_addr, &args.health_addr, addr),
                listener.local_addr()?
            );
            tokio::spawn(serve(listener, endpoints, stop.clone()));
        }
        Ok(Self { stop })
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the metrics and health endpoints"))
}

fn what(metrics: &Option<SocketAddr>, health: &Option<SocketAddr>, addr: SocketAddr) -> &'static str {
    match (*metrics == Some(addr), *health == Some(addr)) {
        (true, true) => "/metrics, /healthz and /readyz",
        (true, false) => "/metrics",
        _ => "/healthz and /readyz",
    }
}

/// A work client's metrics: its counters and the generic client's resync histograms.
pub(crate) fn registry(work: &ocm_ce_work::metrics::WorkMetrics, generic: &ocm_ce_client::ClientMetrics) -> Registry {
    let mut registry = Registry::default();
    work.register(&mut registry);
    generic.register(&mut registry);
    registry
}
