//! The broker's bearer tokens file: `Tokens::from_yaml` (`ocm-ce-broker` `auth.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_broker::Tokens;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tokens) = Tokens::from_yaml(text) {
        let _ = tokens.len();
    }
});
