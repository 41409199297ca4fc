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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Manifest;

    fn work() -> ManifestWork {
        let m = Manifest::from_raw(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm1"}}"#).unwrap();
        ManifestWork::new("cluster1", "work1", vec![m])
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
