//! JSON decoding with Go's `encoding/json` error texts.
//!
//! Decoding itself is serde's; when it fails, the error text is computed the way Go would
//! report it: a syntax error from a port of Go's scanner messages, or the first
//! `json: cannot unmarshal X into Go struct field S.f of type T` found by walking the input
//! against a description of the Go types ([`GoType`]). Errors of Go types with their own
//! `UnmarshalJSON` (times) abort Go's decoding and win over type errors, as in Go.

use ocm_ce_core::go_time::{Layout, parse_rfc3339};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::encoding::go_quote;

/// Decodes `data` into `T`; on failure returns the error text Go's `json.Unmarshal` into the Go
/// type described by `schema` would return.
///
/// The Go scanner runs only to word an error: what serde accepts, Go's grammar accepts too (both
/// are RFC 8259; serde is the stricter one, refusing invalid UTF-8), so on success the result is
/// the same, and a syntax error still wins over a type error, as in Go.
pub(crate) fn from_slice<T: DeserializeOwned>(data: &[u8], schema: &GoType) -> Result<T, String> {
    serde_json::from_slice(data).map_err(|e| {
        if let Err(syntax) = check_syntax(data) {
            return syntax;
        }
        serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| type_error(&v, schema))
            .unwrap_or_else(|| e.to_string())
    })
}

/// Checks the input against Go's JSON grammar; the error is Go's `SyntaxError` text.
pub(crate) fn check_syntax(data: &[u8]) -> Result<(), String> {
    let mut s = Scanner { data, pos: 0 };
    s.value()?;
    s.skip_ws();
    match s.peek() {
        None => Ok(()),
        Some(c) => Err(invalid(c, "after top-level value")),
    }
}

const EOF: &str = "unexpected end of JSON input";

fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        _ => {
            let q = go_quote(&char::from(c).to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

struct Scanner<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<(), String> {
        self.skip_ws();
        match self.next() {
            None => Err(EOF.to_owned()),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string(),
            Some(c @ (b'-' | b'0'..=b'9')) => self.number(c),
            Some(b't') => self.literal(b"rue", "true"),
            Some(b'f') => self.literal(b"alse", "false"),
            Some(b'n') => self.literal(b"ull", "null"),
            Some(c) => Err(invalid(c, "looking for beginning of value")),
        }
    }

    fn object(&mut self) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(b'"') => self.string()?,
                Some(c) => return Err(invalid(c, "looking for beginning of object key string")),
            }
            self.skip_ws();
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(b':') => {}
                Some(c) => return Err(invalid(c, "after object key")),
            }
            self.value()?;
            self.skip_ws();
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(b',') => {}
                Some(b'}') => return Ok(()),
                Some(c) => return Err(invalid(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.skip_ws();
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(b',') => {}
                Some(b']') => return Ok(()),
                Some(c) => return Err(invalid(c, "after array element")),
            }
        }
    }

    fn string(&mut self) -> Result<(), String> {
        loop {
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(b'"') => return Ok(()),
                Some(b'\\') => match self.next() {
                    None => return Err(EOF.to_owned()),
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                    Some(b'u') => {
                        for _ in 0..4 {
                            match self.next() {
                                None => return Err(EOF.to_owned()),
                                Some(c) if c.is_ascii_hexdigit() => {}
                                Some(c) => return Err(invalid(c, "in \\u hexadecimal character escape")),
                            }
                        }
                    }
                    Some(c) => return Err(invalid(c, "in string escape code")),
                },
                Some(c) if c < 0x20 => return Err(invalid(c, "in string literal")),
                Some(_) => {}
            }
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn number(&mut self, first: u8) -> Result<(), String> {
        let first = if first == b'-' {
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(c @ b'0'..=b'9') => c,
                Some(c) => return Err(invalid(c, "in numeric literal")),
            }
        } else {
            first
        };
        if first != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(b'0'..=b'9') => self.digits(),
                Some(c) => return Err(invalid(c, "after decimal point in numeric literal")),
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(b'0'..=b'9') => self.digits(),
                Some(c) => return Err(invalid(c, "in exponent of numeric literal")),
            }
        }
        Ok(())
    }

    fn literal(&mut self, rest: &[u8], name: &str) -> Result<(), String> {
        for &want in rest {
            match self.next() {
                None => return Err(EOF.to_owned()),
                Some(c) if c == want => {}
                Some(c) => {
                    return Err(invalid(
                        c,
                        &format!("in literal {name} (expecting {})", quote_char(want)),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A Go type, as far as decoding errors need it.
#[derive(Debug)]
pub(crate) enum GoType {
    /// A string kind; the name as Go prints it (`string`, `types.UID`, `v1.ValueType`).
    Str(&'static str),
    /// A signed integer: name, bit size.
    Int(&'static str, u32),
    /// `bool`.
    Bool,
    /// A struct.
    Struct(&'static GoStruct),
    /// A slice: its Go name and element type.
    Slice(&'static str, &'static Self),
    /// A map with string keys: its Go name and value type.
    Map(&'static str, &'static Self),
    /// `metav1.Time` (own `UnmarshalJSON`: `null` or an RFC 3339 string).
    Time,
    /// Anything (`RawExtension`, `FieldsV1`, `interface{}`).
    Raw,
}

/// A Go struct: the name Go uses in error contexts (`ObjectMeta`), the qualified type name
/// (`v1.ObjectMeta`) and its JSON fields.
#[derive(Debug)]
pub(crate) struct GoStruct {
    pub(crate) name: &'static str,
    pub(crate) type_name: &'static str,
    pub(crate) fields: &'static [(&'static str, GoType)],
}

#[derive(Default)]
struct Walk {
    /// The first error of a type with its own `UnmarshalJSON`; Go stops there.
    fatal: Option<String>,
    /// The first plain type mismatch; Go keeps decoding and reports it at the end.
    mismatch: Option<String>,
}

/// The error Go reports for decoding `value` into `schema`, if any.
pub(crate) fn type_error(value: &Value, schema: &GoType) -> Option<String> {
    let mut walk = Walk::default();
    walk.visit(value, schema, None, &mut Vec::new());
    walk.fatal.or(walk.mismatch)
}

/// The name Go's `UnmarshalTypeError` gives the JSON value `v` (`bool`, `number`, `object`, …).
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_name(t: &GoType) -> &'static str {
    match t {
        GoType::Str(n) | GoType::Int(n, _) | GoType::Slice(n, _) | GoType::Map(n, _) => n,
        GoType::Bool => "bool",
        GoType::Struct(s) => s.type_name,
        GoType::Time => "v1.Time",
        GoType::Raw => "interface {}",
    }
}

fn unmarshal_error(what: &str, go_type: &str, strukt: Option<&str>, path: &[String]) -> String {
    match strukt {
        Some(s) => format!(
            "json: cannot unmarshal {what} into Go struct field {s}.{} of type {go_type}",
            path.join(".")
        ),
        None => format!("json: cannot unmarshal {what} into Go value of type {go_type}"),
    }
}

impl Walk {
    fn done(&self) -> bool {
        self.fatal.is_some()
    }

    fn mismatch(&mut self, what: &str, t: &GoType, strukt: Option<&str>, path: &[String]) {
        if self.mismatch.is_none() {
            self.mismatch = Some(unmarshal_error(what, type_name(t), strukt, path));
        }
    }

    fn visit(&mut self, v: &Value, t: &GoType, strukt: Option<&str>, path: &mut Vec<String>) {
        if self.done() || v.is_null() {
            return;
        }
        match (t, v) {
            (GoType::Raw, _) | (GoType::Str(_), Value::String(_)) | (GoType::Bool, Value::Bool(_)) => {}
            (GoType::Int(_, bits), Value::Number(n)) => {
                let fits = n.as_i64().is_some_and(|i| {
                    let max = (1i128 << (bits - 1)) - 1;
                    (-max - 1..=max).contains(&i128::from(i))
                });
                if !fits {
                    self.mismatch(&format!("number {n}"), t, strukt, path);
                }
            }
            (GoType::Time, Value::String(s)) => {
                if let Err(e) = check_go_rfc3339(s) {
                    self.fatal = Some(e);
                }
            }
            (GoType::Time, other) => {
                // metav1.Time decodes a string first; the inner type error gets the outer context.
                self.fatal = Some(unmarshal_error(kind_of(other), "string", strukt, path));
            }
            (GoType::Slice(_, elem), Value::Array(items)) => {
                for item in items {
                    self.visit(item, elem, strukt, path);
                }
            }
            (GoType::Map(_, elem), Value::Object(map)) => {
                for (k, item) in map {
                    path.push(k.clone());
                    self.visit(item, elem, strukt, path);
                    path.pop();
                }
            }
            (GoType::Struct(s), Value::Object(map)) => {
                for (k, item) in map {
                    let field = s
                        .fields
                        .iter()
                        .find(|(name, _)| name == k)
                        .or_else(|| s.fields.iter().find(|(name, _)| name.eq_ignore_ascii_case(k)));
                    if let Some((name, ft)) = field {
                        path.push((*name).to_owned());
                        self.visit(item, ft, Some(s.name), path);
                        path.pop();
                    }
                }
            }
            (_, other) => self.mismatch(kind_of(other), t, strukt, path),
        }
    }
}

/// Checks a `metav1.Time` string as Go's `time.Parse(time.RFC3339, s)` does, with its error
/// texts (`parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"`, or a
/// range error).
pub(crate) fn check_go_rfc3339(s: &str) -> Result<(), String> {
    parse_rfc3339(s, Layout::Rfc3339).map(drop).map_err(|e| e.to_string())
}

/// Go type descriptions of the payloads and API types the codecs decode.
pub(crate) mod schema {
    use super::{GoStruct, GoType};

    const STRING: GoType = GoType::Str("string");
    const INT64: GoType = GoType::Int("int64", 64);

    const STRING_MAP: GoType = GoType::Map("map[string]string", &STRING);

    static OWNER_REFERENCE: GoStruct = GoStruct {
        name: "OwnerReference",
        type_name: "v1.OwnerReference",
        fields: &[
            ("apiVersion", STRING),
            ("kind", STRING),
            ("name", STRING),
            ("uid", GoType::Str("types.UID")),
            ("controller", GoType::Bool),
            ("blockOwnerDeletion", GoType::Bool),
        ],
    };

    static MANAGED_FIELDS: GoStruct = GoStruct {
        name: "ManagedFieldsEntry",
        type_name: "v1.ManagedFieldsEntry",
        fields: &[
            ("manager", STRING),
            ("operation", GoType::Str("v1.ManagedFieldsOperationType")),
            ("apiVersion", STRING),
            ("time", GoType::Time),
            ("fieldsType", STRING),
            ("fieldsV1", GoType::Raw),
            ("subresource", STRING),
        ],
    };

    /// `metav1.ObjectMeta`.
    pub(crate) static OBJECT_META: GoStruct = GoStruct {
        name: "ObjectMeta",
        type_name: "v1.ObjectMeta",
        fields: &[
            ("name", STRING),
            ("generateName", STRING),
            ("namespace", STRING),
            ("selfLink", STRING),
            ("uid", GoType::Str("types.UID")),
            ("resourceVersion", STRING),
            ("generation", INT64),
            ("creationTimestamp", GoType::Time),
            ("deletionTimestamp", GoType::Time),
            ("deletionGracePeriodSeconds", INT64),
            ("labels", STRING_MAP),
            ("annotations", STRING_MAP),
            (
                "ownerReferences",
                GoType::Slice("[]v1.OwnerReference", &GoType::Struct(&OWNER_REFERENCE)),
            ),
            ("finalizers", GoType::Slice("[]string", &STRING)),
            (
                "managedFields",
                GoType::Slice("[]v1.ManagedFieldsEntry", &GoType::Struct(&MANAGED_FIELDS)),
            ),
        ],
    };

    static CONDITION: GoStruct = GoStruct {
        name: "Condition",
        type_name: "v1.Condition",
        fields: &[
            ("type", STRING),
            ("status", GoType::Str("v1.ConditionStatus")),
            ("observedGeneration", INT64),
            ("lastTransitionTime", GoType::Time),
            ("reason", STRING),
            ("message", STRING),
        ],
    };

    const CONDITIONS: GoType = GoType::Slice("[]v1.Condition", &GoType::Struct(&CONDITION));

    static ORPHANING_RULE: GoStruct = GoStruct {
        name: "OrphaningRule",
        type_name: "v1.OrphaningRule",
        fields: &[
            ("group", STRING),
            ("resource", STRING),
            ("name", STRING),
            ("namespace", STRING),
        ],
    };

    static RESOURCE_IDENTIFIER: GoStruct = GoStruct {
        name: "ResourceIdentifier",
        type_name: "v1.ResourceIdentifier",
        fields: &[
            ("group", STRING),
            ("resource", STRING),
            ("name", STRING),
            ("namespace", STRING),
        ],
    };

    static SELECTIVELY_ORPHAN: GoStruct = GoStruct {
        name: "SelectivelyOrphan",
        type_name: "v1.SelectivelyOrphan",
        fields: &[(
            "orphaningRules",
            GoType::Slice("[]v1.OrphaningRule", &GoType::Struct(&ORPHANING_RULE)),
        )],
    };

    static DELETE_OPTION: GoStruct = GoStruct {
        name: "DeleteOption",
        type_name: "v1.DeleteOption",
        fields: &[
            ("propagationPolicy", GoType::Str("v1.DeletePropagationPolicyType")),
            ("selectivelyOrphans", GoType::Struct(&SELECTIVELY_ORPHAN)),
        ],
    };

    static JSON_PATH: GoStruct = GoStruct {
        name: "JsonPath",
        type_name: "v1.JsonPath",
        fields: &[("name", STRING), ("version", STRING), ("path", STRING)],
    };

    static FEEDBACK_RULE: GoStruct = GoStruct {
        name: "FeedbackRule",
        type_name: "v1.FeedbackRule",
        fields: &[
            ("type", GoType::Str("v1.FeedBackType")),
            ("jsonPaths", GoType::Slice("[]v1.JsonPath", &GoType::Struct(&JSON_PATH))),
        ],
    };

    const FEEDBACK_RULES: GoType = GoType::Slice("[]v1.FeedbackRule", &GoType::Struct(&FEEDBACK_RULE));

    static SERVER_SIDE_APPLY: GoStruct = GoStruct {
        name: "ServerSideApplyConfig",
        type_name: "v1.ServerSideApplyConfig",
        fields: &[("force", GoType::Bool), ("fieldManager", STRING)],
    };

    static UPDATE_STRATEGY: GoStruct = GoStruct {
        name: "UpdateStrategy",
        type_name: "v1.UpdateStrategy",
        fields: &[
            ("type", GoType::Str("v1.UpdateStrategyType")),
            ("serverSideApply", GoType::Struct(&SERVER_SIDE_APPLY)),
        ],
    };

    static MANIFEST_CONFIG_OPTION: GoStruct = GoStruct {
        name: "ManifestConfigOption",
        type_name: "v1.ManifestConfigOption",
        fields: &[
            ("resourceIdentifier", GoType::Struct(&RESOURCE_IDENTIFIER)),
            ("feedbackRules", FEEDBACK_RULES),
            ("updateStrategy", GoType::Struct(&UPDATE_STRATEGY)),
        ],
    };

    const MANIFESTS: GoType = GoType::Slice("[]v1.Manifest", &GoType::Raw);
    const MANIFEST_CONFIGS: GoType =
        GoType::Slice("[]v1.ManifestConfigOption", &GoType::Struct(&MANIFEST_CONFIG_OPTION));

    static MANIFEST_RESOURCE_META: GoStruct = GoStruct {
        name: "ManifestResourceMeta",
        type_name: "v1.ManifestResourceMeta",
        fields: &[
            ("ordinal", GoType::Int("int32", 32)),
            ("group", STRING),
            ("version", STRING),
            ("kind", STRING),
            ("resource", STRING),
            ("name", STRING),
            ("namespace", STRING),
        ],
    };

    static FIELD_VALUE: GoStruct = GoStruct {
        name: "FieldValue",
        type_name: "v1.FieldValue",
        fields: &[
            ("type", GoType::Str("v1.ValueType")),
            ("integer", INT64),
            ("string", STRING),
            ("boolean", GoType::Bool),
            ("jsonRaw", STRING),
        ],
    };

    static FEEDBACK_VALUE: GoStruct = GoStruct {
        name: "FeedbackValue",
        type_name: "v1.FeedbackValue",
        fields: &[("name", STRING), ("fieldValue", GoType::Struct(&FIELD_VALUE))],
    };

    static STATUS_FEEDBACK: GoStruct = GoStruct {
        name: "StatusFeedbackResult",
        type_name: "v1.StatusFeedbackResult",
        fields: &[(
            "values",
            GoType::Slice("[]v1.FeedbackValue", &GoType::Struct(&FEEDBACK_VALUE)),
        )],
    };

    static MANIFEST_CONDITION: GoStruct = GoStruct {
        name: "ManifestCondition",
        type_name: "v1.ManifestCondition",
        fields: &[
            ("resourceMeta", GoType::Struct(&MANIFEST_RESOURCE_META)),
            ("statusFeedback", GoType::Struct(&STATUS_FEEDBACK)),
            ("conditions", CONDITIONS),
        ],
    };

    const MANIFEST_CONDITIONS: GoType = GoType::Slice("[]v1.ManifestCondition", &GoType::Struct(&MANIFEST_CONDITION));

    /// `payload.ManifestBundle`.
    pub(crate) static MANIFEST_BUNDLE: GoStruct = GoStruct {
        name: "ManifestBundle",
        type_name: "payload.ManifestBundle",
        fields: &[
            ("manifests", MANIFESTS),
            ("deleteOption", GoType::Struct(&DELETE_OPTION)),
            ("manifestConfigs", MANIFEST_CONFIGS),
        ],
    };

    /// `payload.ManifestBundleStatus`.
    pub(crate) static MANIFEST_BUNDLE_STATUS: GoStruct = GoStruct {
        name: "ManifestBundleStatus",
        type_name: "payload.ManifestBundleStatus",
        fields: &[
            ("manifestBundle", GoType::Struct(&MANIFEST_BUNDLE)),
            ("conditions", CONDITIONS),
            ("resourceStatus", MANIFEST_CONDITIONS),
        ],
    };

    static PAYLOAD_CONFIG_OPTION: GoStruct = GoStruct {
        name: "ManifestConfigOption",
        type_name: "payload.ManifestConfigOption",
        fields: &[
            ("feedbackRules", FEEDBACK_RULES),
            ("updateStrategy", GoType::Struct(&UPDATE_STRATEGY)),
        ],
    };

    /// `payload.Manifest` (the `manifest` object is checked by the codec itself).
    pub(crate) static MANIFEST_PAYLOAD: GoStruct = GoStruct {
        name: "Manifest",
        type_name: "payload.Manifest",
        fields: &[
            ("manifest", GoType::Raw),
            ("deleteOption", GoType::Struct(&DELETE_OPTION)),
            ("configOption", GoType::Struct(&PAYLOAD_CONFIG_OPTION)),
        ],
    };

    static SERVICE_ACCOUNT: GoStruct = GoStruct {
        name: "ManifestWorkSubjectServiceAccount",
        type_name: "v1.ManifestWorkSubjectServiceAccount",
        fields: &[("namespace", STRING), ("name", STRING)],
    };

    static EXECUTOR_SUBJECT: GoStruct = GoStruct {
        name: "ManifestWorkExecutorSubject",
        type_name: "v1.ManifestWorkExecutorSubject",
        fields: &[
            ("type", GoType::Str("v1.ManifestWorkExecutorSubjectType")),
            ("serviceAccount", GoType::Struct(&SERVICE_ACCOUNT)),
        ],
    };

    static EXECUTOR: GoStruct = GoStruct {
        name: "ManifestWorkExecutor",
        type_name: "v1.ManifestWorkExecutor",
        fields: &[("subject", GoType::Struct(&EXECUTOR_SUBJECT))],
    };

    static MANIFESTS_TEMPLATE: GoStruct = GoStruct {
        name: "ManifestsTemplate",
        type_name: "v1.ManifestsTemplate",
        fields: &[("manifests", MANIFESTS)],
    };

    static SPEC: GoStruct = GoStruct {
        name: "ManifestWorkSpec",
        type_name: "v1.ManifestWorkSpec",
        fields: &[
            ("workload", GoType::Struct(&MANIFESTS_TEMPLATE)),
            ("deleteOption", GoType::Struct(&DELETE_OPTION)),
            ("manifestConfigs", MANIFEST_CONFIGS),
            ("executor", GoType::Struct(&EXECUTOR)),
        ],
    };

    static RESOURCE_STATUS: GoStruct = GoStruct {
        name: "ManifestResourceStatus",
        type_name: "v1.ManifestResourceStatus",
        fields: &[("manifests", MANIFEST_CONDITIONS)],
    };

    static STATUS: GoStruct = GoStruct {
        name: "ManifestWorkStatus",
        type_name: "v1.ManifestWorkStatus",
        fields: &[
            ("conditions", CONDITIONS),
            ("resourceStatus", GoType::Struct(&RESOURCE_STATUS)),
        ],
    };

    /// `workv1.ManifestWork`.
    pub(crate) static MANIFEST_WORK: GoStruct = GoStruct {
        name: "ManifestWork",
        type_name: "v1.ManifestWork",
        fields: &[
            ("kind", STRING),
            ("apiVersion", STRING),
            ("metadata", GoType::Struct(&OBJECT_META)),
            ("spec", GoType::Struct(&SPEC)),
            ("status", GoType::Struct(&STATUS)),
        ],
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(s: &str) -> String {
        check_syntax(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn syntax_errors_read_like_go() {
        assert_eq!(syntax(""), "unexpected end of JSON input");
        assert_eq!(syntax("{\"manifest\":"), "unexpected end of JSON input");
        assert_eq!(syntax("x"), "invalid character 'x' looking for beginning of value");
        assert_eq!(syntax("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(
            syntax("{\"a\":1 2}"),
            "invalid character '2' after object key:value pair"
        );
        assert_eq!(
            syntax("{,}"),
            "invalid character ',' looking for beginning of object key string"
        );
        assert_eq!(syntax("[1 2]"), "invalid character '2' after array element");
        assert_eq!(syntax("[1,]"), "invalid character ']' looking for beginning of value");
        assert_eq!(syntax("01"), "invalid character '1' after top-level value");
        assert_eq!(syntax("-x"), "invalid character 'x' in numeric literal");
        assert_eq!(
            syntax("1.x"),
            "invalid character 'x' after decimal point in numeric literal"
        );
        assert_eq!(syntax("1ex"), "invalid character 'x' in exponent of numeric literal");
        assert_eq!(syntax("tru"), "unexpected end of JSON input");
        assert_eq!(syntax("trUe"), "invalid character 'U' in literal true (expecting 'u')");
        assert_eq!(syntax("\"\\x\""), "invalid character 'x' in string escape code");
        assert_eq!(
            syntax("\"\\u12g4\""),
            "invalid character 'g' in \\u hexadecimal character escape"
        );
        assert_eq!(syntax("\"a\nb\""), "invalid character '\\n' in string literal");
        assert_eq!(syntax("{\"a\":1}'"), "invalid character '\\'' after top-level value");
        assert!(check_syntax(b" {\"a\":[1,-2.5e+3,true,false,null,\"\\u00e9\"]} ").is_ok());
    }

    #[test]
    fn type_errors_name_the_innermost_struct_and_the_field_path() {
        let v: Value = serde_json::from_str(r#"{"labels":"x"}"#).unwrap();
        assert_eq!(
            type_error(&v, &GoType::Struct(&schema::OBJECT_META)).unwrap(),
            "json: cannot unmarshal string into Go struct field ObjectMeta.labels of type map[string]string"
        );
        let v: Value = serde_json::from_str(r#"{"conditions":[{"status":5}]}"#).unwrap();
        assert_eq!(
            type_error(&v, &GoType::Struct(&schema::MANIFEST_BUNDLE_STATUS)).unwrap(),
            "json: cannot unmarshal number into Go struct field Condition.conditions.status of type v1.ConditionStatus"
        );
        let v: Value = serde_json::from_str(r#"[1]"#).unwrap();
        assert_eq!(
            type_error(&v, &GoType::Struct(&schema::MANIFEST_BUNDLE)).unwrap(),
            "json: cannot unmarshal array into Go value of type payload.ManifestBundle"
        );
        let v: Value = serde_json::from_str(r#"{"resourceStatus":[{"resourceMeta":{"ordinal":3000000000}}]}"#).unwrap();
        assert_eq!(
            type_error(&v, &GoType::Struct(&schema::MANIFEST_BUNDLE_STATUS)).unwrap(),
            "json: cannot unmarshal number 3000000000 into Go struct field ManifestResourceMeta.resourceStatus.resourceMeta.ordinal of type int32"
        );
        let v: Value = serde_json::from_str(r#"{"creationTimestamp":5,"labels":"x"}"#).unwrap();
        assert_eq!(
            type_error(&v, &GoType::Struct(&schema::OBJECT_META)).unwrap(),
            "json: cannot unmarshal number into Go struct field ObjectMeta.creationTimestamp of type string"
        );
    }

    #[test]
    fn time_strings_are_checked_like_go_rfc3339() {
        assert!(check_go_rfc3339("2024-10-01T12:00:00Z").is_ok());
        assert!(check_go_rfc3339("2024-10-01T12:00:00.123+02:00").is_ok());
        assert_eq!(
            check_go_rfc3339("yesterday").unwrap_err(),
            r#"parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006""#
        );
        assert_eq!(
            check_go_rfc3339("2024-13-01T12:00:00Z").unwrap_err(),
            r#"parsing time "2024-13-01T12:00:00Z": month out of range"#
        );
        assert_eq!(
            check_go_rfc3339("2024-10-01 12:00:00Z").unwrap_err(),
            r#"parsing time "2024-10-01 12:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 12:00:00Z" as "T""#
        );
    }
}
