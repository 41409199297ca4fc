//! A source and an agent of ManifestWorks talking through an embedded broker, in one process:
//! the source creates three works, the agent acknowledges each with its finalizer and an
//! `Applied` status, the source sees the statuses, deletes the works, and the agent's removal
//! of its finalizer completes each deletion.
//!
//! `cargo run -p ocm-ce-examples --example source_and_agent`

use std::time::Duration;

use ocm_ce::client::Role;
use ocm_ce::client::transport::grpc::{GrpcConfig, GrpcTransport};
use ocm_ce::work::client::{AgentCodecs, AgentWorkClient, SourceWorkClient, WorkClientOptions};
use ocm_ce::work::{Manifest, ManifestWork, PatchType};
use ocm_ce_examples::{EmbeddedBroker, wait_for};

const CLUSTER: &str = "cluster1";
const WAIT: Duration = Duration::from_secs(10);
const WORK_FINALIZER: &str = "cluster.open-cluster-management.io/manifest-work-cleanup";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start().await?;
    let config = GrpcConfig::new(broker.addr.to_string());

    // The source: the hub side, which owns the specs.
    let source_transport = GrpcTransport::new(
        config.clone(),
        Role::Source {
            source_id: "source1".to_owned(),
        },
    )?;
    let source = SourceWorkClient::start(source_transport, "source1", Vec::new(), WorkClientOptions::default());

    // The agent: the managed cluster side, which applies the specs and reports statuses.
    let agent_transport = GrpcTransport::new(
        config,
        Role::Agent {
            cluster_name: CLUSTER.to_owned(),
            agent_id: "cluster1-agent".to_owned(),
        },
    )?;
    let agent = AgentWorkClient::start(
        agent_transport,
        CLUSTER,
        "cluster1-agent",
        AgentCodecs::bundles(),
        WorkClientOptions::default(),
    );
    source.wait_until_connected().await;
    agent.wait_until_connected().await;

    let names = ["web", "db", "cache"];
    for name in names {
        let manifest = Manifest::from_raw(format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default"}},"data":{{"tier":"{name}"}}}}"#
        ))?;
        let created = source
            .create(CLUSTER, ManifestWork::new(CLUSTER, name, vec![manifest]))
            .await?;
        println!("source: created {name} ({})", created.uid_str());
    }

    // A real agent would apply the manifests here (see ocm-ce-kube); this one only reports.
    for name in names {
        let uid = source.get(CLUSTER, name)?.uid_str().to_owned();
        wait_for("the agent to receive the work", WAIT, || agent.get(&uid).is_ok()).await?;
        agent.set_finalizers(&uid, vec![WORK_FINALIZER.to_owned()]).await?;
        let status = r#"{"status":{"conditions":[{"type":"Applied","status":"True","reason":"AppliedManifestWorkComplete","message":"","lastTransitionTime":"2024-10-01T12:00:00Z"}]}}"#;
        agent.patch_status(&uid, PatchType::Merge, status.as_bytes()).await?;
        println!("agent: applied {name}");
    }
    for name in names {
        wait_for("the source to see the status", WAIT, || {
            source.get(CLUSTER, name).is_ok_and(|w| !w.status.conditions.is_empty())
        })
        .await?;
        println!(
            "source: {name} is {}",
            source.get(CLUSTER, name)?.status.conditions[0].reason
        );
    }

    for name in names {
        let uid = source.get(CLUSTER, name)?.uid_str().to_owned();
        source.delete(CLUSTER, name).await?;
        wait_for("the agent to see the deletion", WAIT, || {
            agent.get(&uid).is_ok_and(|w| w.is_deleting())
        })
        .await?;
        agent.set_finalizers(&uid, Vec::new()).await?;
        wait_for("the source to forget the work", WAIT, || {
            source.get(CLUSTER, name).is_err()
        })
        .await?;
        println!("source: {name} deleted");
    }

    source.close(Duration::from_secs(1)).await;
    agent.close(Duration::from_secs(1)).await;
    broker.stop().await?;
    println!("done");
    Ok(())
}
