//! Patching works (Go `utils.Patch`): a JSON Patch (RFC 6902) or a JSON Merge Patch (RFC 7386)
//! applied to the Go JSON form of a work, then decoded back.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::api::ManifestWork;
use crate::decoding::{GoType, from_slice, schema};
use crate::error::{Error, Result};

/// A supported patch type (Kubernetes `types.PatchType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
}

impl PatchType {
    /// The media type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "application/json-patch+json",
            Self::Merge => "application/merge-patch+json",
        }
    }
}

impl fmt::Display for PatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchType {
    type Err = Error;

    /// Parses a media type; anything else (strategic merge, apply) is
    /// `unsupported patch type: <t>`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            other => Err(Error::UnsupportedPatchType {
                patch_type: other.to_owned(),
            }),
        }
    }
}

/// Applies `data` to the JSON of `work` and decodes the result.
///
/// Like Go, the work goes through its JSON form, so times keep whole seconds and manifests come
/// back with sorted keys.
pub fn patch(work: &ManifestWork, patch_type: PatchType, data: &[u8]) -> Result<ManifestWork> {
    let mut doc = serde_json::to_value(work).map_err(|e| Error::PatchFailed { reason: e.to_string() })?;
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch =
                serde_json::from_slice(data).map_err(|e| Error::PatchFailed { reason: e.to_string() })?;
            json_patch::patch(&mut doc, &ops).map_err(|e| Error::PatchFailed { reason: e.to_string() })?;
        }
        PatchType::Merge => {
            let merge: Value = serde_json::from_slice(data).map_err(|_| Error::PatchFailed {
                reason: "Invalid JSON Patch".to_owned(),
            })?;
            json_patch::merge(&mut doc, &merge);
        }
    }
    let bytes = ocm_ce_core::go_json::to_vec(&doc).map_err(|e| Error::PatchFailed { reason: e.to_string() })?;
    from_slice(&bytes, &GoType::Struct(&schema::MANIFEST_WORK)).map_err(|reason| Error::Decode { reason })
}

/// The status `patch(work, patch_type, data)` gives `work`, computed from the status alone when
/// `data` is a merge patch object (each top-level key of a merge patch applies on its own: the
/// status part is all that matters), without encoding and decoding the whole work. Any other
/// patch, and any failure (so that the error reads as Go's for the whole work), take
/// [`patch`]'s way.
pub(crate) fn patched_status(
    work: &ManifestWork,
    patch_type: PatchType,
    data: &[u8],
) -> Result<crate::api::ManifestWorkStatus> {
    if let Some(mut parts) = merge_parts(patch_type, data)
        && let Some(status) = merged(&work.status, parts.remove("status"))
    {
        return Ok(status);
    }
    Ok(patch(work, patch_type, data)?.status)
}

/// `work` with the metadata `patch(work, patch_type, data)` gives it and its own spec and status:
/// computed from the metadata alone when `data` is a merge patch object that changes nothing but
/// the metadata, spec and status; otherwise (and on any failure) by [`patch`].
pub(crate) fn patched_metadata(work: &ManifestWork, patch_type: PatchType, data: &[u8]) -> Result<ManifestWork> {
    if let Some(mut parts) = merge_parts(patch_type, data)
        && parts
            .keys()
            .all(|k| matches!(k.as_str(), "metadata" | "spec" | "status"))
        && let Some(metadata) = merged(&work.metadata, parts.remove("metadata"))
    {
        let mut w = work.clone();
        w.metadata = metadata;
        return Ok(w);
    }
    let mut w = patch(work, patch_type, data)?;
    w.spec = work.spec.clone();
    w.status = work.status.clone();
    Ok(w)
}

/// The top-level parts of a merge patch object; `None` for any other patch.
fn merge_parts(patch_type: PatchType, data: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match (patch_type, serde_json::from_slice::<Value>(data)) {
        (PatchType::Merge, Ok(Value::Object(parts))) => Some(parts),
        _ => None,
    }
}

/// `current` through its JSON form (as a part of the work's, so times keep whole seconds), with
/// the merge patch `part` applied when there is one; `None` when the result does not decode.
fn merged<T: serde::Serialize + serde::de::DeserializeOwned>(current: &T, part: Option<Value>) -> Option<T> {
    let mut doc = serde_json::to_value(current).ok()?;
    if let Some(part) = part {
        json_patch::merge(&mut doc, &part);
    }
    let bytes = ocm_ce_core::go_json::to_vec(&doc).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Manifest;

    fn work() -> ManifestWork {
        let m = Manifest::from_raw(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm1"}}"#).unwrap();
        ManifestWork::new("cluster1", "work1", vec![m])
    }

    #[test]
    fn the_status_of_a_patch_is_the_same_computed_alone() {
        let base = patch(
            &work(),
            PatchType::Merge,
            br#"{"status":{"conditions":[{"type":"Applied","status":"True","reason":"r","message":"m","lastTransitionTime":"2024-01-02T03:04:05Z","observedGeneration":2}]}}"#,
        )
        .unwrap();
        let cases: &[(PatchType, &[u8])] = &[
            (
                PatchType::Merge,
                br#"{"status":{"conditions":[{"type":"Available","status":"False","reason":"x","message":"","lastTransitionTime":"2024-01-02T03:04:05.999Z"}]}}"#,
            ),
            (PatchType::Merge, br#"{"status":{"resourceStatus":{"manifests":[]}}}"#),
            (PatchType::Merge, br#"{"metadata":{"labels":{"a":"b"}}}"#),
            (PatchType::Merge, br#"{"status":null}"#),
            (PatchType::Merge, br#"{"status":{"conditions":null},"spec":{}}"#),
            (PatchType::Json, br#"[{"op":"remove","path":"/status/conditions"}]"#),
        ];
        for (ty, data) in cases {
            let alone = patched_status(&base, *ty, data).unwrap();
            let whole = patch(&base, *ty, data).unwrap().status;
            assert_eq!(alone, whole, "{}", String::from_utf8_lossy(data));
        }
        for (ty, data) in cases {
            let alone = patched_metadata(&base, *ty, data).unwrap();
            let mut whole = patch(&base, *ty, data).unwrap();
            whole.spec = base.spec.clone();
            whole.status = base.status.clone();
            assert_eq!(alone, whole, "{}", String::from_utf8_lossy(data));
        }
        let finalizers: &[u8] = br#"{"metadata":{"finalizers":["a/b"],"resourceVersion":"7"}}"#;
        let w = patched_metadata(&base, PatchType::Merge, finalizers).unwrap();
        assert_eq!(
            (w.finalizers(), w.metadata.resource_version.as_deref()),
            (&["a/b".to_owned()][..], Some("7"))
        );
        // errors are the whole work's, as Go words them
        let bad: &[u8] = br#"{"status":{"conditions":"no"}}"#;
        assert_eq!(
            patched_status(&base, PatchType::Merge, bad).unwrap_err().to_string(),
            patch(&base, PatchType::Merge, bad).unwrap_err().to_string()
        );
    }

    #[test]
    fn a_json_patch_replaces_the_name() {
        let p = br#"[{"op":"replace","path":"/metadata/name","value":"test1"}]"#;
        let w = patch(&work(), PatchType::Json, p).unwrap();
        assert_eq!(w.name(), "test1");
        assert_eq!(
            w.spec.workload.manifests[0].raw(),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1"}}"#
        );
    }

    #[test]
    fn a_merge_patch_changes_name_and_namespace() {
        let p = br#"{"metadata":{"name":"test2","namespace":"ns2"}}"#;
        let w = patch(&work(), PatchType::Merge, p).unwrap();
        assert_eq!((w.name(), w.namespace_str()), ("test2", "ns2"));
    }

    #[test]
    fn other_patch_types_are_unsupported() {
        let err = "application/strategic-merge-patch+json"
            .parse::<PatchType>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported patch type: application/strategic-merge-patch+json"
        );
    }

    #[test]
    fn a_patch_producing_a_bad_work_fails_with_go_text() {
        let p = br#"{"metadata":{"labels":"x"}}"#;
        let err = patch(&work(), PatchType::Merge, p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type map[string]string"
        );
    }
}
