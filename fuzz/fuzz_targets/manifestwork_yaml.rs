//! The works file of `ocm-ce source apply -f` and `source sync`: `ocm_ce_work::file::works_from_yaml`
//! (what the CLI's `read_works` calls), then what `apply` does with a work before sending it:
//! validation and its Go JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_work::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(works) = ocm_ce_work::file::works_from_yaml(text) else {
        return;
    };
    for work in works {
        let _ = validate(&work);
        let _ = ocm_ce_core::go_json::to_vec(&work);
    }
});
