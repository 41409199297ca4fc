//! Status feedback (OCM's `statusfeedback` package): the values a work's `feedbackRules` name,
//! read from the applied object with Kubernetes JSONPaths, and the well-known status of
//! Deployments, DaemonSets, Jobs and Pods.

use ocm_ce_work::{FeedbackRule, FeedbackType, FeedbackValue, FieldValue, ValueType};
use serde_json::Value;
use serde_json_path::JsonPath;

/// Group, version and kind of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gvk<'a> {
    pub(crate) group: &'a str,
    pub(crate) version: &'a str,
    pub(crate) kind: &'a str,
}

impl std::fmt::Display for Gvk<'_> {
    /// Go's `GroupVersionKind.String()`: `apps/v1, Kind=Deployment`, `/v1, Kind=Pod`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}, Kind={}", self.group, self.version, self.kind)
    }
}

/// The well-known status fields OCM collects per kind (`rules.DefaultWellKnownStatusRule`).
pub(crate) fn well_known_paths(gvk: Gvk<'_>) -> &'static [(&'static str, &'static str)] {
    match (gvk.group, gvk.version, gvk.kind) {
        ("apps", "v1", "Deployment") => &[
            ("ReadyReplicas", ".status.readyReplicas"),
            ("Replicas", ".status.replicas"),
            ("AvailableReplicas", ".status.availableReplicas"),
        ],
        ("apps", "v1", "DaemonSet") => &[
            ("NumberReady", ".status.numberReady"),
            ("DesiredNumberScheduled", ".status.desiredNumberScheduled"),
            ("NumberAvailable", ".status.numberAvailable"),
        ],
        ("batch", "v1", "Job") => &[
            ("JobComplete", r#".status.conditions[?(@.type=="Complete")].status"#),
            ("JobSucceeded", ".status.succeeded"),
        ],
        ("", "v1", "Pod") => &[
            ("PodReady", r#".status.conditions[?(@.type=="Ready")].status"#),
            ("PodPhase", ".status.phase"),
        ],
        _ => &[],
    }
}

/// How feedback values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reader {
    /// Objects, lists and floats become `JsonRaw` values (else they are errors).
    pub(crate) raw_json: bool,
    /// Longest `JsonRaw` value.
    pub(crate) max_json_raw_length: usize,
}

impl Reader {
    /// The values of `rule` on `object` (OCM's `GetValuesByRule`): every value found, and the
    /// errors of the paths that failed.
    pub(crate) fn values(
        &self,
        object: &Value,
        gvk: Gvk<'_>,
        rule: &FeedbackRule,
    ) -> (Vec<FeedbackValue>, Vec<String>) {
        let mut values = Vec::new();
        let mut errors = Vec::new();
        match &rule.type_ {
            FeedbackType::WellKnownStatus => {
                let paths = well_known_paths(gvk);
                if paths.is_empty() {
                    errors.push(format!(
                        "cannot find the wellknown statuses for resource with gvk {gvk}"
                    ));
                }
                for (name, path) in paths {
                    match self.value(name, path, object) {
                        Ok(Some(v)) => values.push(v),
                        Ok(None) => {}
                        Err(e) => errors.push(e),
                    }
                }
            }
            FeedbackType::JsonPaths => {
                for path in &rule.json_paths {
                    if !path.version.is_empty() && path.version != gvk.version {
                        errors.push(format!(
                            "version set in the path {} is not matched for the related resource",
                            path.name
                        ));
                        continue;
                    }
                    match self.value(&path.name, &path.path, object) {
                        Ok(Some(v)) => values.push(v),
                        Ok(None) => {}
                        Err(e) => errors.push(e),
                    }
                }
            }
            FeedbackType::Other(_) => {}
        }
        (values, errors)
    }

    /// The value at the Kubernetes JSONPath `path` (OCM's `getValueByJsonPath`): `None` when
    /// nothing (or `null`) is found; the first match, or with raw JSON on and several matches,
    /// all of them as one `JsonRaw` list.
    fn value(&self, name: &str, path: &str, object: &Value) -> Result<Option<FeedbackValue>, String> {
        let query = rfc9535_path(path);
        let parsed = JsonPath::parse(&query)
            .map_err(|e| format!("failed to parse json path {path} of {name} with error: {e}"))?;
        let nodes = parsed.query(object).all();
        let found = match nodes.as_slice() {
            [] => return Ok(None),
            [one] => (*one).clone(),
            [first, ..] if !self.raw_json => (*first).clone(),
            many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
        };
        let field_value = match found {
            Value::Null => return Ok(None),
            Value::Bool(b) => FieldValue {
                type_: ValueType::Boolean,
                boolean: Some(b),
                ..FieldValue::default()
            },
            Value::String(s) => FieldValue {
                type_: ValueType::String,
                string: Some(s),
                ..FieldValue::default()
            },
            Value::Number(n) if n.is_i64() => FieldValue {
                type_: ValueType::Integer,
                integer: n.as_i64(),
                ..FieldValue::default()
            },
            other if self.raw_json => {
                let raw = other.to_string();
                if raw.len() > self.max_json_raw_length {
                    return Err(format!(
                        "the length of returned json raw string for name {name} is larger than the maximum length {}",
                        self.max_json_raw_length
                    ));
                }
                FieldValue {
                    type_: ValueType::JsonRaw,
                    json_raw: Some(raw),
                    ..FieldValue::default()
                }
            }
            other => {
                return Err(format!(
                    "the type {} of the value for {name} is not found",
                    go_type_name(&other)
                ));
            }
        };
        Ok(Some(FeedbackValue {
            name: name.to_owned(),
            field_value,
        }))
    }
}

/// A Kubernetes JSONPath (`.status.replicas`, `{.status.replicas}`, `status.replicas`) as an
/// RFC 9535 query (`$.status.replicas`); filters such as `[?(@.type=="Ready")]` read the same.
fn rfc9535_path(path: &str) -> String {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path)
        .trim();
    if path.starts_with('$') {
        path.to_owned()
    } else if path.starts_with('.') || path.starts_with('[') {
        format!("${path}")
    } else {
        format!("$.{path}")
    }
}

/// The Go type an unstructured value decodes to (for OCM's error text).
fn go_type_name(value: &Value) -> &'static str {
    match value {
        // Integers that fit an int64 were taken before; Go decodes the others as floats.
        Value::Number(_) => "float64",
        Value::Object(_) => "map[string]interface {}",
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Null => "<nil>",
    }
}

#[cfg(test)]
mod tests {
    use ocm_ce_work::JsonPath as Path;
    use serde_json::json;

    use super::*;

    const fn gvk(group: &'static str, version: &'static str, kind: &'static str) -> Gvk<'static> {
        Gvk { group, version, kind }
    }

    const DEPLOYMENT: Gvk<'static> = gvk("apps", "v1", "Deployment");
    const CONFIG_MAP: Gvk<'static> = gvk("", "v1", "ConfigMap");
    const READER: Reader = Reader {
        raw_json: false,
        max_json_raw_length: 1024,
    };

    fn well_known_status() -> FeedbackRule {
        FeedbackRule {
            type_: FeedbackType::WellKnownStatus,
            json_paths: vec![],
        }
    }

    fn json_paths(paths: &[(&str, &str)]) -> FeedbackRule {
        FeedbackRule {
            type_: FeedbackType::JsonPaths,
            json_paths: paths
                .iter()
                .map(|(name, path)| Path {
                    name: (*name).to_owned(),
                    path: (*path).to_owned(),
                    version: String::new(),
                })
                .collect(),
        }
    }

    fn int(name: &str, v: i64) -> FeedbackValue {
        FeedbackValue {
            name: name.into(),
            field_value: FieldValue {
                type_: ValueType::Integer,
                integer: Some(v),
                ..FieldValue::default()
            },
        }
    }

    fn string(name: &str, v: &str) -> FeedbackValue {
        FeedbackValue {
            name: name.into(),
            field_value: FieldValue {
                type_: ValueType::String,
                string: Some(v.into()),
                ..FieldValue::default()
            },
        }
    }

    #[test]
    fn the_well_known_status_of_a_deployment_skips_missing_fields() {
        let obj = json!({"status": {"replicas": 3, "readyReplicas": 2}});
        let rule = well_known_status();
        let (values, errors) = READER.values(&obj, DEPLOYMENT, &rule);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(values, [int("ReadyReplicas", 2), int("Replicas", 3)]);
    }

    #[test]
    fn filters_select_the_condition_of_a_job_and_a_pod() {
        let job = json!({"status": {"succeeded": 1, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"}
        ]}});
        let rule = well_known_status();
        let (values, errors) = READER.values(&job, gvk("batch", "v1", "Job"), &rule);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(values, [string("JobComplete", "True"), int("JobSucceeded", 1)]);

        let pod = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
        let (values, _) = READER.values(&pod, gvk("", "v1", "Pod"), &rule);
        assert_eq!(values, [string("PodReady", "False"), string("PodPhase", "Running")]);
    }

    #[test]
    fn a_kind_without_well_known_status_is_an_error_with_ocm_text() {
        let rule = well_known_status();
        let (values, errors) = READER.values(&json!({}), CONFIG_MAP, &rule);
        assert!(values.is_empty());
        assert_eq!(
            errors,
            ["cannot find the wellknown statuses for resource with gvk /v1, Kind=ConfigMap"]
        );
    }

    #[test]
    fn json_paths_read_scalars_and_refuse_objects_unless_raw_json_is_on() {
        let obj = json!({"data": {"k": "v", "on": true}, "spec": {"ratio": 0.5, "nested": {"a": 1}}});
        let rule = json_paths(&[
            ("k", ".data.k"),
            ("on", "{.data.on}"),
            ("missing", ".data.nope"),
            ("nested", ".spec.nested"),
            ("ratio", "spec.ratio"),
        ]);
        let (values, errors) = READER.values(&obj, CONFIG_MAP, &rule);
        assert_eq!(values.len(), 2);
        assert_eq!(values[0], string("k", "v"));
        assert_eq!(values[1].field_value.boolean, Some(true));
        assert_eq!(
            errors,
            [
                "the type map[string]interface {} of the value for nested is not found",
                "the type float64 of the value for ratio is not found"
            ]
        );

        let raw = Reader {
            raw_json: true,
            max_json_raw_length: 1024,
        };
        let (values, errors) = raw.values(&obj, CONFIG_MAP, &rule);
        assert!(errors.is_empty(), "{errors:?}");
        let nested = values.iter().find(|v| v.name == "nested").unwrap();
        assert_eq!(nested.field_value.type_, ValueType::JsonRaw);
        assert_eq!(nested.field_value.json_raw.as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn a_path_for_another_version_and_a_bad_path_are_errors() {
        let mut rule = json_paths(&[("a", ".x"), ("b", ".status[")]);
        rule.json_paths[0].version = "v2".into();
        let (values, errors) = READER.values(&json!({"x": 1}), DEPLOYMENT, &rule);
        assert!(values.is_empty());
        assert_eq!(
            errors[0],
            "version set in the path a is not matched for the related resource"
        );
        assert!(
            errors[1].starts_with("failed to parse json path .status[ of b with error:"),
            "{}",
            errors[1]
        );
    }
}
