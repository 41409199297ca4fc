//! The data of a source's status resync request, as an agent reads it:
//! `ResourceStatusHashList::decode` (`ocm-ce-core` `payload.rs`); a decoded list must read back
//! from its JSON and survive the split into parts: none over the bound unless it holds a single
//! entry, no entry lost or duplicated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocm_ce_core::ResourceStatusHashList;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = ResourceStatusHashList::decode(data) {
        let again = ResourceStatusHashList::decode(&list.to_json()).expect("written JSON reads back");
        assert_eq!(list, again);
        // A small bound (from the input length, so it varies) makes lists split into parts.
        let max = 50 + data.len() % 200;
        let parts = list.clone().split(max);
        for part in &parts {
            assert!(
                part.hashes.len() == 1 || part.to_json().len() <= max,
                "a part of {} entries is {} bytes of JSON, over the bound of {max}",
                part.hashes.len(),
                part.to_json().len()
            );
        }
        let joined: Vec<_> = parts.into_iter().flat_map(|p| p.hashes).collect();
        assert_eq!(joined, list.hashes);
    }
});
