//! The ManifestWork status hash (Go `work.ManifestWorkStatusHash`): lower-case hex SHA-256 of
//! Go's JSON of the status. Sources and agents compare these hashes during a status resync, so
//! the bytes hashed must be Go's exactly.
//!
//! sdk-go v0.16 and later hash differently ([`status_hash_v1`], `clients/statushash`): the
//! status goes through Kubernetes' unstructured converter first, so the JSON has its object keys
//! sorted. Their agents stamp that hash on every status event (the `statushash` extension) and
//! compare a source's resync hashes with it; ours stamp it too, and take either hash as a match.

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

/// The sdk-go v1.x status hash (`statushash.StatusHash`, the `statushash` extension): SHA-256
/// of Go's JSON of the status with every object's keys in sorted order, 64 lower-case hex
/// digits.
pub fn status_hash_v1(status: &ManifestWorkStatus) -> String {
    WrittenStatus::new(status).hash_v1()
}

/// The bytes [`status_hash_v1`] hashes: Go's JSON of the status, object keys sorted.
pub fn status_json_v1(status: &ManifestWorkStatus) -> Vec<u8> {
    WrittenStatus::new(status).json_v1()
}

/// A status written once as Go's JSON, for the two things every status event of an agent
/// carries: its data (a `ManifestBundleStatus` without a bundle) and its v1.x hash.
///
/// The conditions and the manifest statuses are written once each; the event data and the
/// hashed JSON are put together from them. The hashed JSON has its objects' members reordered
/// on the bytes (no `serde_json::Value` of the status): the keys of a status are its field
/// names, never escaped; should one ever be, the value path sorts the decoded keys instead.
pub(crate) struct WrittenStatus<'a> {
    status: &'a ManifestWorkStatus,
    /// Go's JSON of the conditions (an array), empty when there are none.
    conditions: Vec<u8>,
    /// Go's JSON of the manifest statuses (an array), empty when there are none.
    manifests: Vec<u8>,
}

impl<'a> WrittenStatus<'a> {
    pub(crate) fn new(status: &'a ManifestWorkStatus) -> Self {
        // Invariant: these types serialize without custom errors (only strings, numbers,
        // RFC 3339 times and nested structs), so serde_json cannot fail writing them to memory.
        let conditions = if status.conditions.is_empty() {
            Vec::new()
        } else {
            let go: Vec<_> = status.conditions.iter().map(crate::api::GoCondition).collect();
            ocm_ce_core::go_json::to_vec(&go).expect("conditions always serialize")
        };
        let manifests = &status.resource_status.manifests;
        let manifests = if manifests.is_empty() {
            Vec::new()
        } else {
            ocm_ce_core::go_json::to_vec(manifests).expect("manifest statuses always serialize")
        };
        Self {
            status,
            conditions,
            manifests,
        }
    }

    /// The event data: Go's JSON of a `ManifestBundleStatus` with these conditions (`null`
    /// when none) and manifest statuses (left out when none), and no bundle.
    pub(crate) fn bundle_status_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.conditions.len() + self.manifests.len() + 40);
        out.extend_from_slice(b"{\"conditions\":");
        if self.conditions.is_empty() {
            out.extend_from_slice(b"null");
        } else {
            out.extend_from_slice(&self.conditions);
        }
        if !self.manifests.is_empty() {
            out.extend_from_slice(b",\"resourceStatus\":");
            out.extend_from_slice(&self.manifests);
        }
        out.push(b'}');
        out
    }

    /// The bytes the v1.x hash is taken of: Go's JSON of the `ManifestWorkStatus`
    /// (`{"conditions":…,"resourceStatus":{"manifests":…}}`, the empty parts left out, as
    /// [`status_json`] writes it) with every object's keys sorted. Its own two levels are
    /// already in order.
    pub(crate) fn json_v1(&self) -> Vec<u8> {
        self.sorted_json_v1().unwrap_or_else(|| self.json_v1_by_value())
    }

    /// [`json_v1`](Self::json_v1) made on the bytes; `None` when a key cannot be sorted there.
    fn sorted_json_v1(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.conditions.len() + self.manifests.len() + 48);
        out.push(b'{');
        if !self.conditions.is_empty() {
            out.extend_from_slice(br#""conditions":"#);
            sorted_value(&self.conditions, &mut 0, &mut out)?;
            out.push(b',');
        }
        out.extend_from_slice(br#""resourceStatus":{"#);
        if !self.manifests.is_empty() {
            out.extend_from_slice(br#""manifests":"#);
            sorted_value(&self.manifests, &mut 0, &mut out)?;
        }
        out.extend_from_slice(b"}}");
        Some(out)
    }

    /// The v1.x hash.
    pub(crate) fn hash_v1(&self) -> String {
        hex::encode(Sha256::digest(self.json_v1()))
    }

    fn json_v1_by_value(&self) -> Vec<u8> {
        // Invariant as in `new`: a status always serializes, to a value and then to bytes.
        let value = serde_json::to_value(self.status).expect("a ManifestWorkStatus always serializes");
        ocm_ce_core::go_json::to_vec(&SortedKeys(&value)).expect("a JSON value always serializes")
    }
}

/// Copies the compact JSON value at `json[*pos..]` to `out` with the members of every object in
/// sorted key order, moving `pos` past it. `None` for a key with an escape (its raw bytes may
/// sort differently from its text) or for anything that is not compact JSON.
fn sorted_value(json: &[u8], pos: &mut usize, out: &mut Vec<u8>) -> Option<()> {
    sort_into(json, pos, out, &mut Scratch::default())
}

/// What [`sort_into`] reuses across the objects of one value: the members of the objects being
/// written (a stack: an inner object's are above its parent's), and a copy of the object being
/// reordered.
#[derive(Default)]
struct Scratch {
    /// Per member, its range in `out`, key (with quotes) first.
    members: Vec<(usize, usize, usize)>,
    copy: Vec<u8>,
}

/// [`sorted_value`]'s walk: each object's members are copied in their order (their values
/// sorted in turn), then, unless their keys already are in order, the object's bytes are
/// copied aside and written back in key order. Each byte is read once and copied once per
/// level of objects around it.
fn sort_into(json: &[u8], pos: &mut usize, out: &mut Vec<u8>, scratch: &mut Scratch) -> Option<()> {
    match *json.get(*pos)? {
        b'{' => {
            *pos += 1;
            out.push(b'{');
            if json.get(*pos) == Some(&b'}') {
                *pos += 1;
                out.push(b'}');
                return Some(());
            }
            let (object, base) = (out.len(), scratch.members.len());
            loop {
                let start = *pos;
                skip_string(json, pos)?;
                let key = &json[start..*pos];
                if key.contains(&b'\\') || json.get(*pos) != Some(&b':') {
                    return None;
                }
                *pos += 1;
                if out.len() > object {
                    out.push(b',');
                }
                let member = out.len();
                out.extend_from_slice(key);
                out.push(b':');
                sort_into(json, pos, out, scratch)?;
                scratch.members.push((member, member + key.len(), out.len()));
                match json.get(*pos)? {
                    b',' => *pos += 1,
                    b'}' => {
                        *pos += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            reorder(out, object, base, scratch);
            out.push(b'}');
        }
        b'[' => {
            *pos += 1;
            out.push(b'[');
            if json.get(*pos) == Some(&b']') {
                *pos += 1;
                out.push(b']');
                return Some(());
            }
            loop {
                sort_into(json, pos, out, scratch)?;
                match json.get(*pos)? {
                    b',' => {
                        *pos += 1;
                        out.push(b',');
                    }
                    b']' => {
                        *pos += 1;
                        out.push(b']');
                        break;
                    }
                    _ => return None,
                }
            }
        }
        b'"' => {
            let start = *pos;
            skip_string(json, pos)?;
            out.extend_from_slice(&json[start..*pos]);
        }
        _ => {
            let start = *pos;
            skip_scalar(json, pos)?;
            out.extend_from_slice(&json[start..*pos]);
        }
    }
    Some(())
}

/// Puts the members `scratch.members[base..]`, written from `out[object..]` on, in key order
/// (keys compared without their quotes) and pops them.
fn reorder(out: &mut Vec<u8>, object: usize, base: usize, scratch: &mut Scratch) {
    let members = &mut scratch.members[base..];
    let in_order = members.windows(2).all(|w| {
        let (a, b) = (w[0], w[1]);
        out[a.0 + 1..a.1 - 1] <= out[b.0 + 1..b.1 - 1]
    });
    if !in_order {
        scratch.copy.clear();
        scratch.copy.extend_from_slice(&out[object..]);
        let copy = &scratch.copy;
        members.sort_by(|a, b| copy[a.0 + 1 - object..a.1 - 1 - object].cmp(&copy[b.0 + 1 - object..b.1 - 1 - object]));
        out.truncate(object);
        for (i, &(start, _, end)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&copy[start - object..end - object]);
        }
    }
    scratch.members.truncate(base);
}

/// Moves `pos` past a number, `true`, `false` or `null`: up to the next delimiter.
fn skip_scalar(json: &[u8], pos: &mut usize) -> Option<()> {
    let start = *pos;
    while let Some(&b) = json.get(*pos) {
        if matches!(b, b',' | b'}' | b']') {
            break;
        }
        if matches!(b, b'{' | b'[' | b'"' | b':') || b.is_ascii_whitespace() {
            return None;
        }
        *pos += 1;
    }
    (*pos != start).then_some(())
}

/// Moves `pos` past the JSON string that starts there (quotes included).
fn skip_string(json: &[u8], pos: &mut usize) -> Option<()> {
    if json.get(*pos) != Some(&b'"') {
        return None;
    }
    *pos += 1;
    loop {
        match *json.get(*pos)? {
            b'"' => {
                *pos += 1;
                return Some(());
            }
            b'\\' => *pos += 2,
            _ => *pos += 1,
        }
    }
}

/// Whether `hash` is the hash of `status` by either sdk-go's v0.15 or its v1.x function (a
/// source's resync request carries whichever its agents reported).
pub fn status_hash_matches(status: &ManifestWorkStatus, hash: &str) -> bool {
    // The v1.x hash first: it is the one agents stamp (ours too) and sources echo back.
    status_hash_v1(status) == hash || status_hash(status) == hash
}

/// The status hasher of the work clients. A source lists, for each work, the `statushash` its
/// agent reported with the status when it did (a v1.x agent compares with that function), and
/// otherwise the v0.15 hash it computes; an agent takes a source's hash as a match when it is the
/// status' hash by either function, so neither a v0.15 nor a v1.x source gets statuses resent
/// that did not change.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkStatusHasher;

impl ocm_ce_client::StatusHasher<ManifestWork> for WorkStatusHasher {
    fn status_hash(&self, work: &ManifestWork) -> Result<String, ocm_ce_client::BoxError> {
        Ok(match work.annotation(crate::api::STATUS_HASH_ANNOTATION) {
            Some(reported) => reported.to_owned(),
            None => status_hash(&work.status),
        })
    }

    fn same_status(&self, work: &ManifestWork, hash: &str) -> Result<bool, ocm_ce_client::BoxError> {
        Ok(status_hash_matches(&work.status, hash))
    }
}

/// A JSON value serialized with the keys of every object in sorted (byte) order, as Go's
/// `json.Marshal` writes a map.
struct SortedKeys<'a>(&'a serde_json::Value);

impl serde::Serialize for SortedKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &SortedKeys(value))?;
                }
                out.end()
            }
            serde_json::Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&SortedKeys(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
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
    fn members_are_sorted_at_every_depth_and_escaped_keys_are_refused() {
        let sort = |json: &str| {
            let mut out = Vec::new();
            let mut pos = 0;
            sorted_value(json.as_bytes(), &mut pos, &mut out).map(|()| (String::from_utf8(out).unwrap(), pos))
        };
        let json = r#"{"b":[{"z":1,"a":"x\"}"},[],{}],"a":{"d":true,"c":null},"aa":-1.5e3}"#;
        assert_eq!(
            sort(json),
            Some((
                r#"{"a":{"c":null,"d":true},"aa":-1.5e3,"b":[{"a":"x\"}","z":1},[],{}]}"#.to_owned(),
                json.len()
            ))
        );
        assert_eq!(sort(r#"{"a\u0062":1}"#), None);
        assert_eq!(sort(r#"{"a": 1}"#), None);
        assert_eq!(sort(r#"{"a":1"#), None);
    }

    #[test]
    fn a_status_written_once_gives_the_event_data_and_the_value_paths_hash_bytes() {
        let full: ManifestWorkStatus = serde_json::from_str(
            r#"{"conditions":[{"type":"Applied","status":"True","reason":"R","message":"<&>","lastTransitionTime":"2024-10-01T12:00:00Z","observedGeneration":2}],
                "resourceStatus":{"manifests":[{"resourceMeta":{"ordinal":0,"group":"apps","version":"v1","kind":"Deployment","resource":"deployments","name":"d","namespace":"n"},
                "statusFeedback":{"values":[{"name":"Replicas","fieldValue":{"type":"Integer","integer":1}},{"name":"raw","fieldValue":{"type":"JsonRaw","jsonRaw":"{\"b\":1,\"a\":[]}"}}]},
                "conditions":[{"type":"Available","status":"True","reason":"","message":"","lastTransitionTime":"2024-10-01T12:00:00Z"}]}]}}"#,
        )
        .unwrap();
        let conditions_only = ManifestWorkStatus {
            conditions: full.conditions.clone(),
            ..Default::default()
        };
        let manifests_only = ManifestWorkStatus {
            resource_status: full.resource_status.clone(),
            ..Default::default()
        };
        for status in [full, conditions_only, manifests_only, ManifestWorkStatus::default()] {
            let written = WrittenStatus::new(&status);
            let data = crate::payload::ManifestBundleStatusRef {
                manifest_bundle: None,
                conditions: &status.conditions,
                resource_status: &status.resource_status.manifests,
            };
            assert_eq!(
                String::from_utf8(written.bundle_status_json()).unwrap(),
                String::from_utf8(ocm_ce_core::go_json::to_vec(&data).unwrap()).unwrap()
            );
            let value = serde_json::to_value(&status).unwrap();
            let slow = ocm_ce_core::go_json::to_vec(&SortedKeys(&value)).unwrap();
            assert_eq!(
                String::from_utf8(written.json_v1()).unwrap(),
                String::from_utf8(slow).unwrap()
            );
            assert_eq!(
                String::from_utf8(written.json_v1_by_value()).unwrap(),
                String::from_utf8(written.json_v1()).unwrap()
            );
        }
    }

    /// Compact JSON text whose objects have unique keys, in sorted or reverse order.
    fn unsorted_json() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z\"\\\\{}:,]{0,4}".prop_map(|t| serde_json::to_string(&t).unwrap()),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(","))),
                (
                    proptest::collection::btree_map("[a-e !]{0,3}", inner, 0..5),
                    any::<bool>()
                )
                    .prop_map(|(members, reversed)| {
                        let mut members: Vec<String> = members.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                        if reversed {
                            members.reverse();
                        }
                        format!("{{{}}}", members.join(","))
                    }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn the_byte_path_sorts_any_compact_json_like_the_value_path(json in unsorted_json()) {
            let mut fast = Vec::new();
            let mut pos = 0;
            proptest::prop_assert_eq!(sorted_value(json.as_bytes(), &mut pos, &mut fast), Some(()));
            proptest::prop_assert_eq!(pos, json.len());
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            let slow = ocm_ce_core::go_json::to_vec(&SortedKeys(&value)).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap());
        }
    }

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
