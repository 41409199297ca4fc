//! The ManifestWork status hash (Go `work.ManifestWorkStatusHash`): lower-case hex SHA-256 of
//! Go's JSON of the status. Sources and agents compare these hashes during a status resync, so
//! the bytes hashed must be Go's exactly.

use std::convert::Infallible;

use sha2::{Digest, Sha256};

use crate::api::{ManifestWork, ManifestWorkStatus};

/// Go's JSON of a status, the bytes that are hashed.
pub fn status_json(status: &ManifestWorkStatus) -> Vec<u8> {
    // Invariant: these types serialize without custom errors (only strings, numbers, RFC 3339
    // times and nested structs), so serde_json cannot fail writing them to memory.
    ocm_ce_core::go_json::to_vec(status).expect("a ManifestWorkStatus always serializes")
}

/// The hash of a status: 64 lower-case hex digits.
pub fn status_hash(status: &ManifestWorkStatus) -> String {
    hex::encode(Sha256::digest(status_json(status)))
}

/// The hash of a work's status, in the shape the generic clients take as a status hasher
/// (`ocm_ce_client::StatusHasher` is implemented for such functions).
#[doc(alias = "ManifestWorkStatusHash")]
pub fn manifest_work_status_hash(work: &ManifestWork) -> Result<String, Infallible> {
    Ok(status_hash(&work.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_status_hashes_like_go() {
        let s = ManifestWorkStatus::default();
        assert_eq!(status_json(&s), br#"{"resourceStatus":{}}"#);
        assert_eq!(
            status_hash(&s),
            "3a4ba43801251ccdf889a3154674d23a35ab996aacfc00de92e61dbb2f5cf189"
        );
    }
}
