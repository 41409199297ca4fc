//! ManifestWork JSON as the CLI's state database (`ocm-ce-cli` `state.rs`) reads it back:
//! `serde_json` → `ManifestWork`; an accepted work must survive the store/load cycle (its JSON,
//! read again, gives the same JSON) and can be validated, hashed and written as Go JSON. The
//! same bytes also go through `ocm_ce_work::patch` as a JSON merge patch and a JSON patch, whose
//! result is decoded with Go's schema-checked decoding (`decoding.rs`, the `ManifestWork` type).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_work::{ManifestWork, PatchType, patch, status_hash, validate};

fuzz_target!(|data: &[u8]| {
    if let Ok(work) = serde_json::from_slice::<ManifestWork>(data) {
        let _ = validate(&work);
        let _ = status_hash(&work.status);
        let _ = ocm_ce_core::go_json::to_vec(&work);
        let stored = serde_json::to_string(&work).expect("a decoded work serializes");
        let loaded: ManifestWork = serde_json::from_str(&stored).expect("a stored work loads again");
        let restored = serde_json::to_string(&loaded).expect("a loaded work serializes");
        assert_eq!(stored, restored, "a work changed in a store/load cycle");
    }
    let base = ManifestWork::default();
    let _ = patch(&base, PatchType::Merge, data);
    let _ = patch(&base, PatchType::Json, data);
});
