//! An MQTT transport config file (YAML or JSON, Go's `MQTTConfig`): `MqttConfig::from_str`
//! (`TransportConfig::load` without the file read: parse, then Go's validation), then building
//! a source and an agent transport from it (broker address, topic subscriptions; nothing is
//! dialed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_client::Role;
use ocm_ce_client::transport::mqtt::{MqttConfig, MqttTransport};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = text.parse::<MqttConfig>() {
        let source = Role::Source {
            source_id: "source1".to_owned(),
        };
        let _ = MqttTransport::new(config.clone(), source, "source1-client");
        let agent = Role::Agent {
            cluster_name: "cluster1".to_owned(),
            agent_id: "cluster1-work-agent".to_owned(),
        };
        let _ = MqttTransport::new(config, agent, "");
    }
});
