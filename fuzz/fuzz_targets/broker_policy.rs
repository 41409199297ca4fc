//! The broker's authorization policy file: `Policy::from_yaml` (`ocm-ce-broker` `auth.rs`), then
//! the two questions the broker asks it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_broker::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::from_yaml(text) {
        let _ = policy.allows_source("hub-controller", "source1");
        let _ = policy.allows_cluster("cluster1-agent", "cluster1");
    }
});
