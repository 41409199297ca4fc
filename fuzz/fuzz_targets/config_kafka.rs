//! A Kafka transport config file (YAML or JSON, Go's `KafkaConfig` with librdkafka keys):
//! `KafkaConfig::from_str` (`TransportConfig::load` without the file read: parse, then Go's
//! validation), then building a source transport from it, which hands every property to
//! librdkafka's own config check (no connection is made).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_client::transport::kafka::{KafkaConfig, KafkaTransport};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = text.parse::<KafkaConfig>() {
        let _ = KafkaTransport::source(config, "source1");
    }
});
