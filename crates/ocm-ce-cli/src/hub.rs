//! `ocm-ce hub --kubeconfig PATH`: serves the ManifestWorks of a Kubernetes API server (the hub)
//! to agents as a source, with `ocm-ce-kube`'s [`Hub`]: a ManifestWork created there with any
//! Kubernetes client ends up applied by the agent of its namespace (the cluster), its status is
//! written back into it, and deleting it deletes what it applied before the object goes.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kube::core::{ApiResource, GroupVersionKind};
use ocm_ce_kube::{Hub, HubConfig, client_from_kubeconfig, hub_works, rate_limited};
use ocm_ce_work::gc::OwnerFilter;

use crate::cli::HubArgs;
use crate::commands::{FLUSH_ON_EXIT, Shutdown, source_transport, start_source};

/// An owner kind of the garbage collector from `[GROUP/]VERSION/KIND`.
fn owner_filter(spec: &str) -> Result<OwnerFilter> {
    let parts: Vec<&str> = spec.split('/').collect();
    let (group, version, kind) = match parts[..] {
        [version, kind] => ("", version, kind),
        [group, version, kind] => (group, version, kind),
        _ => bail!("--gc-owner {spec:?}: expected [GROUP/]VERSION/KIND, e.g. v1/ConfigMap or apps/v1/Deployment"),
    };
    if version.is_empty() || kind.is_empty() {
        bail!("--gc-owner {spec:?}: expected [GROUP/]VERSION/KIND, e.g. v1/ConfigMap or apps/v1/Deployment");
    }
    Ok(OwnerFilter::new(ApiResource::from_gvk(&GroupVersionKind::gvk(
        group, version, kind,
    ))))
}

/// Runs the hub until SIGINT or SIGTERM.
pub(crate) async fn run(args: HubArgs) -> Result<ExitCode> {
    let mut shutdown = Shutdown::install()?;
    // The config is checked before anything else.
    let transport = source_transport(&args.client)?;
    let kube = client_from_kubeconfig(args.kubeconfig.as_deref())
        .await
        .context("cannot reach the hub cluster")?;
    let kube = rate_limited(kube, args.kube_api.limit());
    let mut hub_config = HubConfig::default()
        .resync_interval(args.resync_interval)
        .workers(args.workers);
    if let Some(selector) = &args.selector {
        hub_config = hub_config.label_selector(selector);
    }
    for owner in &args.gc_owners {
        hub_config = hub_config.gc_owner(owner_filter(owner)?);
    }
    // What the hub served before it stopped: specs, statuses, deletions in progress.
    let initial = hub_works(&kube, &args.client.source_id, &hub_config)
        .await
        .context("cannot list the ManifestWorks of the hub (is the ManifestWork CRD installed?)")?;
    eprintln!(
        "hub {} serving the ManifestWorks of {} ({} there)",
        args.client.source_id,
        args.kubeconfig
            .as_ref()
            .map_or_else(|| "its own cluster".to_owned(), |p| p.display().to_string()),
        initial.len()
    );
    let (source, ops) = start_source(&args.client, transport, initial).await;
    let ops = ops?;
    Hub::new(kube, source.clone(), hub_config).run(shutdown.recv()).await;
    drop(ops);
    source.close(FLUSH_ON_EXIT).await;
    eprintln!("hub stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_owners_are_group_version_kind_with_the_plural_guessed() {
        let core = owner_filter("v1/ConfigMap").unwrap();
        assert_eq!(
            (core.api_resource.group.as_str(), core.api_resource.api_version.as_str()),
            ("", "v1")
        );
        assert_eq!(core.api_resource.plural, "configmaps");
        let apps = owner_filter("apps/v1/Deployment").unwrap();
        assert_eq!(apps.api_resource.api_version, "apps/v1");
        assert_eq!(apps.api_resource.plural, "deployments");
        assert!(owner_filter("ConfigMap").is_err());
        assert!(owner_filter("a/b/c/d").is_err());
        assert!(owner_filter("v1/").is_err());
    }
}
