//! `ocm-ce agent --kubeconfig PATH` (or in a pod): the agent applies its works to a Kubernetes
//! cluster with `ocm-ce-kube`, recording them in AppliedManifestWorks and starting from those
//! records, so that deletions made while it was down complete.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ocm_ce_client::{AnyTransport, TransportConfig};
use ocm_ce_kube::{ApplierConfig, KubeApplier, client_from_kubeconfig, hub_hash};
use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, WorkClientOptions};

use crate::cli::AgentArgs;
use crate::commands::{FLUSH_ON_EXIT, Shutdown};

/// Which cluster the agent applies to: `Some(Some(path))` with `--kubeconfig`, `Some(None)` (the
/// pod's own cluster) in a pod without `--apply-dir` or `--apply`, `None` for the file (or
/// memory) applier.
pub(crate) fn cluster_of(args: &AgentArgs) -> Option<Option<PathBuf>> {
    if let Some(path) = &args.kubeconfig {
        return Some(Some(path.clone()));
    }
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty());
    (in_pod && args.apply_dir.is_none() && args.apply.is_none()).then_some(None)
}

/// The address of the broker a transport config points at (what OCM hashes into the hub hash
/// is the hub's address).
fn broker_address(config: &TransportConfig) -> String {
    match config {
        TransportConfig::Grpc(c) => c.url.clone(),
        TransportConfig::Mqtt(c) => c.broker_host.clone(),
        #[cfg(feature = "kafka")]
        TransportConfig::Kafka(c) => c.bootstrap_server.clone(),
        other => other.kind().to_string(),
    }
}

/// Runs the agent of `args.cluster` against the cluster of `kubeconfig` (in-cluster when
/// `None`) until SIGINT or SIGTERM.
pub(crate) async fn run(
    args: &AgentArgs,
    config: &TransportConfig,
    agent_id: &str,
    kubeconfig: Option<PathBuf>,
    options: WorkClientOptions,
    shutdown: &mut Shutdown,
) -> Result<std::process::ExitCode> {
    let kube = client_from_kubeconfig(kubeconfig.as_deref())
        .await
        .context("cannot reach the managed cluster")?;
    let hub = args
        .hub_hash
        .clone()
        .unwrap_or_else(|| hub_hash(&broker_address(config)));
    let applier_config = ApplierConfig {
        rate_limit: args.kube_api.limit(),
        ..ApplierConfig::new(hub, agent_id).workers(args.workers)
    };
    let applier = KubeApplier::new(kube, applier_config);
    let recorded = applier
        .recorded_works(&args.cluster)
        .await
        .context("cannot read the AppliedManifestWorks of the managed cluster")?;
    let transport = AnyTransport::agent(config, &args.cluster, agent_id).map_err(anyhow::Error::msg)?;
    let client = AgentWorkClient::start_with_works(
        transport,
        &args.cluster,
        agent_id,
        AgentCodecs::bundles(),
        options,
        recorded.iter().cloned(),
    );
    eprintln!(
        "agent {agent_id} for cluster {} applying to {} ({} works recorded there)",
        args.cluster,
        kubeconfig.map_or_else(|| "its own cluster".to_owned(), |p| p.display().to_string()),
        recorded.len()
    );
    let mut registry = crate::ops::registry(client.metrics(), client.generic().metrics());
    applier.metrics().register(&mut registry);
    let connected = client.clone();
    let ops = crate::ops::Ops::start(&args.ops, registry, move || connected.is_connected()).await?;
    applier.run(&client, shutdown.recv()).await;
    drop(ops);
    client.close(FLUSH_ON_EXIT).await;
    Ok(std::process::ExitCode::SUCCESS)
}
