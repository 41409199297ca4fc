//! The works file of `ocm-ce source apply -f`: the same library calls as the CLI's (private)
//! `read_works` — UTF-8 text → `serde_saphyr::from_multiple` into JSON values → a `kind` check →
//! `serde_json::from_value::<ManifestWork>` per non-null document — then what `apply` does with
//! a work before sending it: validation and its Go JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_work::{ManifestWork, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = serde_saphyr::from_multiple::<serde_json::Value>(text) else {
        return;
    };
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc
            .get("kind")
            .and_then(|k| k.as_str())
            .is_some_and(|k| k != "ManifestWork")
        {
            return;
        }
        let Ok(work) = serde_json::from_value::<ManifestWork>(doc) else {
            return;
        };
        let _ = validate(&work);
        let _ = ocm_ce_core::go_json::to_vec(&work);
    }
});
