//! Source → agent → status round trips through a real Kafka broker (`OCM_CE_TEST_KAFKA`), with
//! 1 KiB spec payloads, Go's librdkafka defaults (`acks=1`, `linger.ms` 5) and the rate limit
//! off.
//!
//! ```text
//! scripts/test-env.sh start DIR && source DIR/env
//! cargo bench -p ocm-ce-client --features kafka --bench kafka_roundtrip
//! OCM_CE_BENCH_KAFKA_PROPS=linger.ms=0 cargo bench …   # extra librdkafka properties, k=v,k=v
//! ```
//!
//! Two figures: *sequential* (one spec in flight, i.e. round-trip latency) and *pipelined*
//! (many specs in flight: the source publishes from `WINDOW` tasks, the agent answers from
//! spawned tasks). Each round trip is two Kafka records (spec and status), each publish waiting
//! for the broker's acknowledgement, each received event's offset stored once handled.
//! `OCM_CE_BENCH_N` sets the number of round trips.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/kafka_support/mod.rs"]
mod kafka_support;
#[path = "../tests/mock/mod.rs"]
mod mock;
mod support;

use std::time::Duration;

use ocm_ce_client::transport::kafka::{KafkaConfig, KafkaTransport};
use support::{Bench, WINDOW};

fn config(bootstrap: &str) -> KafkaConfig {
    let mut config = KafkaConfig::new(bootstrap)
        .property("session.timeout.ms", "6000")
        .property("message.max.bytes", "65536");
    if let Ok(props) = std::env::var("OCM_CE_BENCH_KAFKA_PROPS") {
        for pair in props.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("OCM_CE_BENCH_KAFKA_PROPS: k=v,k=v");
            config = config.property(k, v);
        }
    }
    config
}

async fn setup(bootstrap: String) -> Bench<KafkaTransport> {
    let (src, cluster) = support::names();
    kafka_support::create_topics(&bootstrap, &kafka_support::pair_topics(&src, &cluster)).await;
    let config = config(&bootstrap);
    let agent = KafkaTransport::agent(config.clone(), &cluster, "bench-agent").unwrap();
    let source = KafkaTransport::source(config, &src).unwrap();
    support::setup(agent, source, src, cluster, Duration::from_secs(60)).await
}

fn main() {
    support::run(
        "OCM_CE_TEST_KAFKA",
        20,
        setup,
        |seq_n, seq| {
            println!(
                "kafka_roundtrip sequential: {seq_n} round trips, {seq:.0} round trips/s ({:.1} ms each)",
                1e3 / seq
            );
        },
        |n, pipe| {
            println!(
                "kafka_roundtrip pipelined ({WINDOW} in flight): {n} round trips, {pipe:.0} round trips/s \
                 ({:.0} Kafka records/s through the broker)",
                pipe * 2.0
            );
        },
    );
}
