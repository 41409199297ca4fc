//! The data of an agent's spec resync request, as a source reads it:
//! `ResourceVersionList::decode` (`ocm-ce-core` `payload.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_core::ResourceVersionList;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = ResourceVersionList::decode(data) {
        let again = ResourceVersionList::decode(&list.to_json()).expect("written JSON reads back");
        assert_eq!(list, again);
    }
});
