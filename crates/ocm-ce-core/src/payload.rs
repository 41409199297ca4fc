//! Resync payloads: the JSON data of spec and status resync requests (Go `generic/payload`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::PayloadError;

/// Upper bound for the data of one status resync request; larger hash lists are split
/// (upstream hit a 512 KB broker limit with a single event).
pub const MAX_RESYNC_PAYLOAD_BYTES: usize = 256 * 1024;

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// One resource and the version its holder has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceVersion {
    /// Resource UID.
    #[serde(rename = "resourceID")]
    pub resource_id: String,
    /// Its resource version.
    #[serde(rename = "resourceVersion")]
    pub resource_version: i64,
}

/// Payload of an agent's spec resync request: what the agent has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceVersionList {
    /// Always serialized as an array (`[]` when empty); `null` reads as empty.
    #[serde(rename = "resourceVersions", default, deserialize_with = "null_as_empty")]
    pub versions: Vec<ResourceVersion>,
}

/// One resource and the hash of the status its holder has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStatusHash {
    /// Resource UID.
    #[serde(rename = "resourceID")]
    pub resource_id: String,
    /// Hex SHA-256 of the status.
    #[serde(rename = "statusHash")]
    pub status_hash: String,
}

/// Payload of a source's status resync request: the statuses the source has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStatusHashList {
    /// Always serialized as an array (`[]` when empty); `null` reads as empty.
    #[serde(rename = "statusHashes", default, deserialize_with = "null_as_empty")]
    pub hashes: Vec<ResourceStatusHash>,
}

/// Decodes the data of a resync request; `error` makes the error of its kind from the data (as
/// text) and the reason.
fn decode<T: DeserializeOwned>(data: &[u8], error: fn(String, String) -> PayloadError) -> Result<T, PayloadError> {
    serde_json::from_slice(data).map_err(|e| error(String::from_utf8_lossy(data).into_owned(), e.to_string()))
}

/// The JSON data of a payload (serializing its plain strings and integers cannot fail).
fn to_json(payload: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(payload).unwrap_or_default()
}

impl ResourceVersionList {
    /// Decodes a spec resync request's data (empty data is an error, as in Go).
    pub fn decode(data: &[u8]) -> Result<Self, PayloadError> {
        decode(data, |data, reason| PayloadError::SpecResyncRequest { data, reason })
    }

    /// The JSON data.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }
}

impl ResourceStatusHashList {
    /// Decodes a status resync request's data (empty data is an error, as in Go).
    pub fn decode(data: &[u8]) -> Result<Self, PayloadError> {
        decode(data, |data, reason| PayloadError::StatusResyncRequest { data, reason })
    }

    /// The JSON data.
    pub fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }

    /// Splits the list into lists whose JSON is at most `max_bytes` each (at least one list,
    /// and at least one entry per list). An agent answers each part on its own; the union of
    /// the answers equals the answer to the whole list.
    pub fn split(self, max_bytes: usize) -> Vec<Self> {
        const ENVELOPE: usize = r#"{"statusHashes":[]}"#.len();
        let mut parts = Vec::new();
        let mut current = Self::default();
        let mut size = ENVELOPE;
        for h in self.hashes {
            // The entry's JSON as written (strings escaped) plus a separating comma; writing
            // two strings cannot fail.
            let entry = serde_json::to_vec(&h).map_or(0, |json| json.len()) + 1;
            if !current.hashes.is_empty() && size + entry > max_bytes {
                parts.push(std::mem::take(&mut current));
                size = ENVELOPE;
            }
            size += entry;
            current.hashes.push(h);
        }
        parts.push(current);
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_resync_request_decodes() {
        let l =
            ResourceVersionList::decode(br#"{"resourceVersions":[{"resourceID":"123","resourceVersion":3}]}"#).unwrap();
        assert_eq!(
            l.versions,
            vec![ResourceVersion {
                resource_id: "123".into(),
                resource_version: 3
            }]
        );
    }

    #[test]
    fn a_status_resync_request_decodes() {
        let l =
            ResourceStatusHashList::decode(br#"{"statusHashes":[{"resourceID":"123","statusHash":"1a2b"}]}"#).unwrap();
        assert_eq!(l.hashes.len(), 1);
    }

    #[test]
    fn empty_lists_encode_as_arrays_and_null_reads_as_empty() {
        assert_eq!(ResourceVersionList::default().to_json(), br#"{"resourceVersions":[]}"#);
        assert_eq!(ResourceStatusHashList::default().to_json(), br#"{"statusHashes":[]}"#);
        assert!(
            ResourceStatusHashList::decode(br#"{"statusHashes":null}"#)
                .unwrap()
                .hashes
                .is_empty()
        );
        assert!(
            ResourceVersionList::decode(br#"{"resourceVersions":null}"#)
                .unwrap()
                .versions
                .is_empty()
        );
    }

    #[test]
    fn empty_data_is_an_error() {
        let err = ResourceStatusHashList::decode(b"").unwrap_err().to_string();
        assert!(
            err.starts_with("failed to unmarshal status resync request payload , "),
            "{err}"
        );
    }

    /// `n` entries, the `i`-th of `resource_id(i)`, all with `status_hash`.
    fn hash_list(n: usize, resource_id: impl Fn(usize) -> String, status_hash: &str) -> ResourceStatusHashList {
        ResourceStatusHashList {
            hashes: (0..n)
                .map(|i| ResourceStatusHash {
                    resource_id: resource_id(i),
                    status_hash: status_hash.to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_large_hash_list_splits_into_parts_within_the_bound() {
        let list = hash_list(5000, |i| format!("{i:036}"), &"f".repeat(64));
        let parts = list.clone().split(MAX_RESYNC_PAYLOAD_BYTES);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.to_json().len() <= MAX_RESYNC_PAYLOAD_BYTES);
        }
        let rejoined: Vec<_> = parts.into_iter().flat_map(|p| p.hashes).collect();
        assert_eq!(rejoined, list.hashes);
        assert_eq!(ResourceStatusHashList::default().split(10).len(), 1);
    }

    #[test]
    fn the_split_bound_counts_escaped_characters() {
        // Found by fuzzing (fuzz/corpus/resync_status_hashes): tabs, quotes and backslashes are
        // written escaped, two bytes each, so counting raw string bytes let parts overflow.
        let list = hash_list(40, |i| format!("uid-{i}\\t\"\u{1}"), &"a\tb".repeat(8));
        for max in [100, 150, 230, 1000] {
            let parts = list.clone().split(max);
            for p in &parts {
                assert!(
                    p.hashes.len() == 1 || p.to_json().len() <= max,
                    "{} > {max}",
                    p.to_json().len()
                );
            }
            let rejoined: Vec<_> = parts.into_iter().flat_map(|p| p.hashes).collect();
            assert_eq!(rejoined, list.hashes);
        }
    }
}
