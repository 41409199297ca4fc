//! A gRPC transport config file (YAML or JSON, Go's `GRPCConfig`): `GrpcConfig::from_str`
//! (`TransportConfig::load` without the file read: parse, then Go's validation), then building a
//! transport from it (the URL is split into host and port; nothing is dialed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_client::Role;
use ocm_ce_client::transport::grpc::{GrpcConfig, GrpcTransport};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = text.parse::<GrpcConfig>() {
        let role = Role::Source {
            source_id: "source1".to_owned(),
        };
        let _ = GrpcTransport::new(config, role);
    }
});
