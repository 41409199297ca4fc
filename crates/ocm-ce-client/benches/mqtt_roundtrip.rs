//! Source → agent → status round trips through a real Mosquitto (`OCM_CE_TEST_MQTT`), with
//! 1 KiB spec payloads, QoS 1 and the rate limit off.
//!
//! ```text
//! scripts/test-env.sh start DIR --no-kafka && source DIR/env
//! cargo bench -p ocm-ce-client --features mqtt --bench mqtt_roundtrip
//! crates/ocm-ce-client/benches/mqtt_mosquitto_baseline.sh   # mosquitto_pub → mosquitto_sub
//! ```
//!
//! Two figures: *sequential* (one spec in flight, i.e. round-trip latency) and *pipelined*
//! (many specs in flight: the source publishes from `WINDOW` tasks, the agent answers from
//! spawned tasks). Each round trip is two MQTT messages through the broker (spec and status),
//! each acknowledged with a PUBACK. `OCM_CE_BENCH_N` sets the number of round trips.
//!
//! The sequential figure depends on the broker's `set_tcp_nodelay` (Mosquitto's default is
//! off): with Nagle's algorithm on the broker side each small reply can wait for a delayed ACK
//! (~40 ms on Linux loopback). Our client disables Nagle, as Go's dialer does.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/mock/mod.rs"]
mod mock;
mod support;

use std::time::Duration;

use ocm_ce_client::transport::mqtt::{MqttConfig, MqttTransport};
use ocm_ce_core::Topics;
use support::{Bench, WINDOW};

fn topics(source: &str) -> Topics {
    Topics {
        source_events: format!("sources/{source}/clusters/+/sourceevents"),
        agent_events: format!("sources/{source}/clusters/+/agentevents"),
        source_broadcast: "sources/+/sourcebroadcast".into(),
        agent_broadcast: "clusters/+/agentbroadcast".into(),
    }
}

async fn setup(host: String) -> Bench<MqttTransport> {
    let (src, cluster) = support::names();
    let config = MqttConfig::new(host, topics(&src)).max_packet_size(64 * 1024);
    let agent = MqttTransport::agent(config.clone(), &cluster, "bench-agent").unwrap();
    let source = MqttTransport::source(config, &src, format!("{src}-client")).unwrap();
    support::setup(agent, source, src, cluster, Duration::from_secs(30)).await
}

fn main() {
    support::run(
        "OCM_CE_TEST_MQTT",
        10,
        setup,
        |seq_n, seq| {
            println!(
                "mqtt_roundtrip sequential: {seq_n} round trips, {seq:.0} round trips/s ({:.0} µs each)",
                1e6 / seq
            );
        },
        |n, pipe| {
            println!(
                "mqtt_roundtrip pipelined ({WINDOW} in flight): {n} round trips, {pipe:.0} round trips/s \
                 ({:.0} MQTT messages/s through the broker)",
                pipe * 2.0
            );
        },
    );
}
