//! Embeds the ocm-ce gRPC broker in a program: serve it on a free loopback port, connect a
//! source and an agent to it, and shut it down.
//!
//! `cargo run -p ocm-ce-examples --example embedded_broker`

use std::time::Duration;

use ocm_ce::client::transport::grpc::{GrpcConfig, GrpcTransport};
use ocm_ce::client::{Connection, Role, Transport};
use ocm_ce_examples::{EmbeddedBroker, wait_for};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start().await?;
    println!("broker listening on {}", broker.addr);

    // A transport is a recipe for connections of one role; a connection subscribes once.
    let config = GrpcConfig::new(broker.addr.to_string());
    let source = GrpcTransport::new(
        config.clone(),
        Role::Source {
            source_id: "source1".to_owned(),
        },
    )?;
    let agent = GrpcTransport::new(
        config,
        Role::Agent {
            cluster_name: "cluster1".to_owned(),
            agent_id: "cluster1-agent".to_owned(),
        },
    )?;
    let source_connection = source.connect().await?;
    let agent_connection = agent.connect().await?;
    let _source_events = source_connection.subscribe().await?;
    let _agent_events = agent_connection.subscribe().await?;
    wait_for("two subscriptions", Duration::from_secs(5), || {
        broker.subscriber_count() == 2
    })
    .await?;
    println!("{} subscriptions", broker.subscriber_count());

    broker.stop().await?;
    println!("broker stopped");
    Ok(())
}
