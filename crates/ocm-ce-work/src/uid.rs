//! Work UIDs (Go `utils.UID`).

use uuid::Uuid;

use crate::api::GROUP_RESOURCE;

/// The UID a source gives its work `name` in `namespace`: a name-based UUID (version 5, SHA-1)
/// in the OID namespace of `<source_id>-manifestworks.work.open-cluster-management.io-<namespace>-<name>`.
///
/// The `-` separator is ambiguous, as in Go: `("s", "a-b", "c")` and `("s", "a", "b-c")` collide.
#[doc(alias = "UID")]
pub fn work_uid(source_id: &str, namespace: &str, name: &str) -> String {
    let id = format!("{source_id}-{GROUP_RESOURCE}-{namespace}-{name}");
    Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_matches_go() {
        assert_eq!(
            work_uid("source1", "cluster1", "work1"),
            "607b1d19-af88-5844-bab6-6d88adb07e64"
        );
    }
}
