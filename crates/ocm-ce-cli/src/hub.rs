//! `ocm-ce hub --kubeconfig PATH`: serves the ManifestWorks of a Kubernetes API server (the hub)
//! to agents as a source, with `ocm-ce-kube`'s [`Hub`]: a ManifestWork created there with any
//! Kubernetes client ends up applied by the agent of its namespace (the cluster), its status is
//! written back into it, and deleting it deletes what it applied before the object goes.

use std::process::ExitCode;

use anyhow::{Context, Result};
use ocm_ce_client::{AnyTransport, RateLimit};
use ocm_ce_kube::{Hub, HubConfig, client_from_kubeconfig, hub_works, rate_limited};
use ocm_ce_work::client::SourceWorkClient;

use crate::cli::HubArgs;
use crate::commands::{FLUSH_ON_EXIT, Shutdown, client_options, load_config};

/// Runs the hub until SIGINT or SIGTERM.
pub(crate) async fn run(args: HubArgs) -> Result<ExitCode> {
    let mut shutdown = Shutdown::install()?;
    let config = load_config(args.transport.transport.kind(), &args.transport.config)?;
    let kube = client_from_kubeconfig(args.kubeconfig.as_deref())
        .await
        .context("cannot reach the hub cluster")?;
    let kube = rate_limited(
        kube,
        RateLimit {
            qps: args.kube_api_qps,
            burst: args.kube_api_burst,
        },
    );
    let mut hub_config = HubConfig::default().resync_interval(args.resync_interval);
    if let Some(selector) = &args.selector {
        hub_config = hub_config.label_selector(selector);
    }
    // What the hub served before it stopped: specs, statuses, deletions in progress.
    let initial = hub_works(&kube, &args.source_id, &hub_config)
        .await
        .context("cannot list the ManifestWorks of the hub (is the ManifestWork CRD installed?)")?;
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("{}-client", args.source_id));
    let transport = AnyTransport::source(&config, &args.source_id, &client_id).map_err(anyhow::Error::msg)?;
    eprintln!(
        "hub {} serving the ManifestWorks of {} ({} there)",
        args.source_id,
        args.kubeconfig
            .as_ref()
            .map_or_else(|| "its own cluster".to_owned(), |p| p.display().to_string()),
        initial.len()
    );
    let source = SourceWorkClient::start(transport, &args.source_id, initial, client_options(args.rate));
    Hub::new(kube, source.clone(), hub_config).run(shutdown.recv()).await;
    source.close(FLUSH_ON_EXIT).await;
    eprintln!("hub stopped");
    Ok(ExitCode::SUCCESS)
}
