//! Validation of works (Go `utils.Validate`) and of manifests (the manifest validator the codecs
//! and `Validate` use), with Go's messages.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use thiserror::Error;

use crate::api::{Manifest, ManifestWork};
use crate::decoding::kind_of;
use crate::encoding::go_quote;

/// Default limit of the manifest validator: the summed protobuf size of a work's manifests.
pub const DEFAULT_MANIFESTS_LIMIT: usize = 500 * 1024;
/// Limit of the summed length of annotation keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Why a list of manifests is rejected (Go's texts).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManifestsError {
    /// No manifest.
    #[error("Workload manifests should not be empty")]
    Empty,
    /// The manifests are too large together.
    #[error("the size of manifests is {size} bytes which exceeds the {limit} limit")]
    TooLarge {
        /// Summed protobuf size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A manifest is not a Kubernetes object with a kind and a name (`Object 'Kind' is missing
    /// in '…'`, `name must be set in manifest`, `generateName must not be set in manifest`, or
    /// a JSON error).
    #[error("{reason}")]
    Invalid {
        /// Go's text.
        reason: String,
    },
}

/// Go's manifest validator: the manifests must not be empty, must fit the size limit (summed
/// protobuf size, see [`Manifest::proto_size`]) and each must decode as a Kubernetes object
/// with a kind, a name and no `generateName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestValidator {
    limit: usize,
}

impl Default for ManifestValidator {
    fn default() -> Self {
        Self {
            limit: DEFAULT_MANIFESTS_LIMIT,
        }
    }
}

impl ManifestValidator {
    /// A validator with the default limit (512000 bytes).
    pub fn new() -> Self {
        Self::default()
    }

    /// A validator with another size limit.
    #[must_use]
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The size limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Validates a work's manifests.
    pub fn validate(&self, manifests: &[Manifest]) -> Result<(), ManifestsError> {
        if manifests.is_empty() {
            return Err(ManifestsError::Empty);
        }
        let size: usize = manifests.iter().map(Manifest::proto_size).sum();
        if size > self.limit {
            return Err(ManifestsError::TooLarge {
                size,
                limit: self.limit,
            });
        }
        for m in manifests {
            validate_manifest(m).map_err(|reason| ManifestsError::Invalid { reason })?;
        }
        Ok(())
    }
}

/// The missing-kind error of apimachinery's unstructured decoder.
pub(crate) fn missing_kind(raw: &str) -> String {
    format!("Object 'Kind' is missing in '{raw}'")
}

/// True when an object has no usable kind, as `Unstructured.GroupVersionKind()` sees it: no
/// non-empty string `kind`, or an `apiVersion` with more than one `/` (which voids the whole
/// group-version-kind).
pub(crate) fn lacks_kind(object: &serde_json::Map<String, Value>) -> bool {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    kind.is_empty() || (api_version != "/" && api_version.matches('/').count() > 1)
}

/// Decodes a raw manifest as apimachinery's `Unstructured.UnmarshalJSON` does and checks its
/// name.
fn validate_manifest(m: &Manifest) -> Result<(), String> {
    if m.is_null() {
        // Go's nil `Raw`: decoding empty input.
        return Err("unexpected end of JSON input".to_owned());
    }
    let raw = m.raw();
    // Go's scanner only to word a failure: what serde_json reads, Go's grammar accepts.
    let value: Value = serde_json::from_str(raw).map_err(|e| {
        crate::decoding::check_syntax(raw.as_bytes())
            .err()
            .unwrap_or_else(|| e.to_string())
    })?;
    let object = match &value {
        Value::Object(o) => o,
        Value::Null => return Err(missing_kind(raw)),
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                kind_of(other)
            ));
        }
    };
    if lacks_kind(object) {
        return Err(missing_kind(raw));
    }
    let meta = object.get("metadata").and_then(Value::as_object);
    let field = |name: &str| {
        meta.and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if field("name").is_empty() {
        return Err("name must be set in manifest".to_owned());
    }
    if !field("generateName").is_empty() {
        return Err("generateName must not be set in manifest".to_owned());
    }
    Ok(())
}

/// Kind of a field error (apimachinery `field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldErrorType {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Too long`.
    TooLong,
}

impl FieldErrorType {
    /// Go's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::TooLong => "Too long",
        }
    }
}

/// The rejected value of a field error, printed as Go prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadValue {
    /// No value is printed.
    None,
    /// A string, printed quoted.
    String(String),
    /// A list of strings, printed as Go's `%#v` of a `[]string`.
    Strings(Vec<String>),
}

/// One field error (apimachinery `field.Error`), displayed as Go does:
/// `metadata.name: Required value: field not set`,
/// `metadata.name: Invalid value: "Bad": a lowercase RFC 1123 label must …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Kind of error.
    pub error_type: FieldErrorType,
    /// The field path (`metadata.name`).
    pub field: String,
    /// The rejected value.
    pub bad_value: BadValue,
    /// Details.
    pub detail: String,
}

impl FieldError {
    pub(crate) fn required(field: &str, detail: &str) -> Self {
        Self {
            error_type: FieldErrorType::Required,
            field: field.to_owned(),
            bad_value: BadValue::None,
            detail: detail.to_owned(),
        }
    }

    pub(crate) fn invalid(field: &str, value: &str, detail: impl Into<String>) -> Self {
        Self {
            error_type: FieldErrorType::Invalid,
            field: field.to_owned(),
            bad_value: BadValue::String(value.to_owned()),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.error_type.as_str())?;
        if self.error_type == FieldErrorType::Invalid {
            match &self.bad_value {
                BadValue::None => {}
                BadValue::String(s) => write!(f, ": {}", go_quote(s))?,
                BadValue::Strings(v) => {
                    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
                    write!(f, ": []string{{{}}}", items.join(", "))?;
                }
            }
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// The field errors of a work, displayed as Go's aggregate: the single message, or
/// `[msg1, msg2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// The errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// True when there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                let msgs: Vec<String> = many.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", msgs.join(", "))
            }
        }
    }
}

impl std::error::Error for ValidationErrors {}

/// Validates a work as Go's `utils.Validate` (what a source checks on create and patch):
/// uid, resource version, name and namespace are required, name and namespace must be RFC 1123
/// labels, annotation and label keys qualified names (annotations at most 256 KiB in total),
/// label values valid label values, finalizers qualified names (not both `orphan` and
/// `foregroundDeletion`), and the manifests must pass [`ManifestValidator`]. Map entries are
/// checked in key order (Go's order is random).
#[doc(alias = "Validate")]
pub fn validate(work: &ManifestWork) -> Result<(), ValidationErrors> {
    validate_with(work, &ManifestValidator::default())
}

/// [`validate`] with a given manifest validator.
pub fn validate_with(work: &ManifestWork, manifests: &ManifestValidator) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    let meta = &work.metadata;
    if work.uid_str().is_empty() {
        errs.push(FieldError::required("metadata.uid", "field not set"));
    }
    if work.resource_version_str().is_empty() {
        errs.push(FieldError::required("metadata.resourceVersion", "field not set"));
    }
    for (field, value) in [
        ("metadata.name", work.name()),
        ("metadata.namespace", work.namespace_str()),
    ] {
        if value.is_empty() {
            errs.push(FieldError::required(field, "field not set"));
        }
        for msg in dns1123_label(value) {
            errs.push(FieldError::invalid(field, value, msg));
        }
    }
    let empty = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    for key in annotations.keys() {
        for msg in qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid("metadata.annotations", key, msg));
        }
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError {
            error_type: FieldErrorType::TooLong,
            field: "metadata.annotations".to_owned(),
            bad_value: BadValue::String(String::new()),
            detail: format!("must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        });
    }
    let finalizers = work.finalizers();
    for f in finalizers {
        for msg in qualified_name(f) {
            errs.push(FieldError::invalid("metadata.finalizers", f, msg));
        }
    }
    if finalizers.iter().any(|f| f == "orphan") && finalizers.iter().any(|f| f == "foregroundDeletion") {
        errs.push(FieldError {
            error_type: FieldErrorType::Invalid,
            field: "metadata.finalizers".to_owned(),
            bad_value: BadValue::Strings(finalizers.to_vec()),
            detail: "finalizer orphan and foregroundDeletion cannot be both set".to_owned(),
        });
    }
    for (k, v) in meta.labels.as_ref().unwrap_or(&empty) {
        for msg in qualified_name(k) {
            errs.push(FieldError::invalid("metadata.labels", k, msg));
        }
        for msg in label_value(v) {
            errs.push(FieldError::invalid("metadata.labels", v, msg));
        }
    }
    if let Err(e) = manifests.validate(&work.spec.workload.manifests) {
        errs.push(FieldError::invalid("spec", "spec", e.to_string()));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

fn regex_error(msg: &str, format: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{format}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-'),
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(is_dns1123_label)
}

/// Go's `IsDNS1123Label` messages.
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_dns1123_label(s) {
        if is_dns1123_subdomain(s) {
            errs.push("must not contain dots".to_owned());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !is_dns1123_subdomain(s) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    errs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

/// Go's `IsQualifiedName` messages.
pub(crate) fn qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Go's `IsValidLabelValue` messages.
pub(crate) fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Manifest {
        Manifest::from_raw(format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default"}}}}"#
        ))
        .unwrap()
    }

    fn valid_work() -> ManifestWork {
        let mut w = ManifestWork::new("cluster1", "work1", vec![cm("cm1")]);
        w.metadata.uid = Some("u".into());
        w.metadata.resource_version = Some("0".into());
        w
    }

    #[test]
    fn a_valid_work_passes() {
        assert_eq!(validate(&valid_work()), Ok(()));
    }

    #[test]
    fn missing_metadata_is_reported_field_by_field_like_go() {
        let w = ManifestWork::default();
        let errs = validate(&w).unwrap_err();
        let msgs: Vec<String> = errs.errors().iter().map(ToString::to_string).collect();
        let label_msg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
        assert_eq!(
            msgs,
            vec![
                "metadata.uid: Required value: field not set".to_owned(),
                "metadata.resourceVersion: Required value: field not set".to_owned(),
                "metadata.name: Required value: field not set".to_owned(),
                format!("metadata.name: Invalid value: \"\": {label_msg}"),
                "metadata.namespace: Required value: field not set".to_owned(),
                format!("metadata.namespace: Invalid value: \"\": {label_msg}"),
                "spec: Invalid value: \"spec\": Workload manifests should not be empty".to_owned(),
            ]
        );
    }

    #[test]
    fn names_with_dots_and_bad_keys_are_invalid() {
        let mut w = valid_work();
        w.metadata.name = Some("a.b".into());
        w.metadata.labels = Some([("bad key".to_owned(), "-x".to_owned())].into());
        w.metadata.finalizers = Some(vec!["orphan".into(), "foregroundDeletion".into()]);
        let msgs: Vec<String> = validate(&w).unwrap_err().0.iter().map(ToString::to_string).collect();
        assert_eq!(msgs[0], "metadata.name: Invalid value: \"a.b\": must not contain dots");
        assert_eq!(
            msgs[1],
            "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set"
        );
        assert!(msgs[2].starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of"));
        assert!(msgs[3].starts_with("metadata.labels: Invalid value: \"-x\": a valid label must be"));
    }

    #[test]
    fn qualified_names_follow_go() {
        assert!(qualified_name("cloudevents.open-cluster-management.io/originalsource").is_empty());
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty".to_owned()]);
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert!(label_value("").is_empty());
    }

    #[test]
    fn manifests_need_a_kind_and_a_name() {
        let v = ManifestValidator::new();
        let err = |raw: &str| v.validate(&[Manifest::from_raw(raw).unwrap()]).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"apiVersion":"v1","metadata":{"name":"cm1"}}"#),
            r#"Object 'Kind' is missing in '{"apiVersion":"v1","metadata":{"name":"cm1"}}'"#
        );
        assert_eq!(err(r#"{"kind":"A","metadata":{}}"#), "name must be set in manifest");
        assert_eq!(
            err(r#"{"kind":"A","metadata":{"name":"a","generateName":"b"}}"#),
            "generateName must not be set in manifest"
        );
        assert_eq!(
            err("[1]"),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        assert_eq!(err("null\n"), "Object 'Kind' is missing in 'null\n'");
        assert_eq!(
            v.validate(&[Manifest::null()]).unwrap_err().to_string(),
            "unexpected end of JSON input"
        );
    }
}
