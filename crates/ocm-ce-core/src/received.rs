//! Go's rules for a CloudEvent read off the wire, shared by every binding (gRPC in
//! `ocm-ce-proto`, MQTT and Kafka in `ocm-ce-client`): sdk-go's `binding.ToEvent` (how
//! attributes and extensions are set, which values are refused) and `EventContextV1.Validate`
//! (which events are dropped), with Go's error texts. No I/O: a binding reads its message into an
//! [`EventDraft`] and [`finish`](EventDraft::finish)es it, or hands a structured-mode payload to
//! [`decode_structured_json`].

mod go_url;
mod media_type;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, AttributesWriter, Data, Event, EventBuilder, EventBuilderV03, EventBuilderV10};
use serde_json::{Map, Value};

pub use crate::error::ReceiveError;

/// Checks `raw` the way Go's `net/url.Parse` does (a `source`, a `ce_uri` / `ce_uri_ref`
/// value); the error is Go's reason.
pub fn check_uri_reference(raw: &str) -> Result<(), String> {
    go_url::check(raw)
}

/// Checks a `datacontenttype` like Go's `mime.ParseMediaType`; the error is Go's reason.
pub fn check_media_type(value: &str) -> Result<(), String> {
    media_type::check(value)
}

/// Context attribute names of CloudEvents 1.0; no extension may use them.
const V10_ATTRIBUTES: &[&str] = &[
    "id",
    "source",
    "type",
    "datacontenttype",
    "subject",
    "time",
    "specversion",
    "dataschema",
];

/// Context attribute names of CloudEvents 0.3; no extension may use them.
const V03_ATTRIBUTES: &[&str] = &[
    "type",
    "source",
    "subject",
    "id",
    "time",
    "schemaurl",
    "datacontenttype",
    "datacontentencoding",
];

/// Top-level keys of a JSON CloudEvent that are not extensions.
const JSON_RESERVED_KEYS: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "schemaurl",
    "subject",
    "time",
    "data",
    "data_base64",
    "datacontentencoding",
];

/// An extension name as Go's `SetExtension` takes it: ASCII letters and digits, not a context
/// attribute of `version`; returned lower-cased.
pub fn extension_name(name: &str, version: &SpecVersion) -> Result<String, ReceiveError> {
    let invalid = |reason| ReceiveError::ExtensionName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("must consist of ascii letters and digits"));
    }
    let lower = name.to_ascii_lowercase();
    let reserved = match version {
        SpecVersion::V10 => V10_ATTRIBUTES,
        SpecVersion::V03 => V03_ATTRIBUTES,
    };
    if reserved.contains(&lower.as_str()) {
        return Err(invalid("is a context attribute"));
    }
    Ok(lower)
}

/// The attributes CloudEvents validation looks at.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// `id`.
    pub id: &'a str,
    /// `source`.
    pub source: &'a str,
    /// `type`.
    pub ty: &'a str,
    /// `datacontenttype`, if present.
    pub datacontenttype: Option<&'a str>,
    /// `subject`, if present.
    pub subject: Option<&'a str>,
    /// `dataschema` (`schemaurl` in 0.3) as received, if present.
    pub dataschema: Option<&'a str>,
}

impl<'a> Attributes<'a> {
    /// The attributes of a built event (its `dataschema` is a parsed URL already, so it is not
    /// checked again).
    pub fn of(event: &'a Event) -> Self {
        Self {
            id: event.id(),
            source: event.source(),
            ty: event.ty(),
            datacontenttype: event.datacontenttype(),
            subject: event.subject(),
            dataschema: None,
        }
    }
}

const ABSOLUTE_URI: &str = "if present, MUST adhere to the format specified in RFC 3986, Section 4.3. Absolute URI";

/// Go's `EventContextV1.Validate` (the 0.3 rules are the same for what can be represented): the
/// failures as `attribute: reason`, sorted, one per line, as Go's `ValidationError` prints them.
pub fn validate(attributes: &Attributes<'_>) -> Result<(), ReceiveError> {
    let mut failures = Vec::new();
    if attributes.id.trim().is_empty() {
        failures.push("id: MUST be a non-empty string".to_owned());
    }
    if attributes.source.trim().is_empty() {
        failures.push("source: REQUIRED".to_owned());
    }
    if attributes.ty.trim().is_empty() {
        failures.push("type: MUST be a non-empty string".to_owned());
    }
    if let Some(content_type) = attributes.datacontenttype {
        let content_type = content_type.trim();
        if content_type.is_empty() {
            failures.push("datacontenttype: if present, MUST adhere to the format specified in RFC 2046".to_owned());
        } else if let Err(e) = check_media_type(content_type) {
            failures.push(format!("datacontenttype: failed to parse RFC 2046 media type {e}"));
        }
    }
    if attributes.dataschema.is_some_and(|s| url::Url::parse(s).is_err()) {
        failures.push(format!("dataschema: {ABSOLUTE_URI}"));
    }
    if attributes.subject.is_some_and(|s| s.trim().is_empty()) {
        failures.push("subject: if present, MUST be a non-empty string".to_owned());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        failures.sort();
        Err(ReceiveError::Invalid {
            reason: failures.join("\n"),
        })
    }
}

/// An event being read from a binary-mode message: the binding sets what the message carries
/// (with its own value conversions), then [`finish`](Self::finish) validates and builds it.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// The message's spec version.
    pub version: SpecVersion,
    /// `id` (trimmed by the binding).
    pub id: String,
    /// `source`.
    pub source: String,
    /// `type`.
    pub ty: String,
    /// `datacontenttype`.
    pub datacontenttype: Option<String>,
    /// `dataschema` / `schemaurl`, unparsed.
    pub dataschema: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `time` (`None` for Go's zero time).
    pub time: Option<DateTime<Utc>>,
    /// Extensions by lower-cased name.
    pub extensions: BTreeMap<String, ExtensionValue>,
    /// The data (`None`: no or empty data).
    pub data: Option<Vec<u8>>,
}

impl EventDraft {
    /// An empty draft of `version`.
    pub fn new(version: SpecVersion) -> Self {
        Self {
            version,
            id: String::new(),
            source: String::new(),
            ty: String::new(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// Sets the extension `name` (checked by [`extension_name`]; a later value replaces an
    /// earlier one).
    pub fn set_extension(&mut self, name: &str, value: impl Into<ExtensionValue>) -> Result<(), ReceiveError> {
        let name = extension_name(name, &self.version)?;
        self.extensions.insert(name, value.into());
        Ok(())
    }

    /// Validates ([`validate`]) and builds the event.
    pub fn finish(self) -> Result<Event, ReceiveError> {
        validate(&Attributes {
            id: &self.id,
            source: &self.source,
            ty: &self.ty,
            datacontenttype: self.datacontenttype.as_deref(),
            subject: self.subject.as_deref(),
            dataschema: self.dataschema.as_deref(),
        })?;
        let dataschema = self
            .dataschema
            .as_deref()
            .map(url::Url::parse)
            .transpose()
            .map_err(|_| ReceiveError::Invalid {
                reason: format!("dataschema: {ABSOLUTE_URI}"),
            })?;
        let built = match self.version {
            SpecVersion::V10 => EventBuilderV10::new()
                .id(self.id)
                .source(self.source)
                .ty(self.ty)
                .build(),
            SpecVersion::V03 => EventBuilderV03::new()
                .id(self.id)
                .source(self.source)
                .ty(self.ty)
                .build(),
        };
        let mut event = built.map_err(|e| ReceiveError::Invalid { reason: e.to_string() })?;
        event.set_time(self.time);
        event.set_subject(self.subject);
        event.set_datacontenttype(self.datacontenttype);
        event.set_dataschema(dataschema);
        for (name, value) in self.extensions {
            event.set_extension(&name, value);
        }
        if let Some(data) = self.data {
            event.set_data_unchecked(Data::Binary(data));
        }
        Ok(event)
    }
}

/// Go's structured-mode read with the JSON format (`application/cloudevents+json`): extension
/// names checked and lower-cased, JSON numbers in extensions become int32 (truncated; out of
/// range is an error), `null` extensions are dropped; then [`validate`].
pub fn decode_structured_json(payload: &[u8]) -> Result<Event, ReceiveError> {
    let invalid = |e: serde_json::Error| ReceiveError::Structured { reason: e.to_string() };
    let mut map: Map<String, Value> = serde_json::from_slice(payload).map_err(invalid)?;
    let version = match map.get("specversion").and_then(Value::as_str) {
        Some("0.3") => SpecVersion::V03,
        _ => SpecVersion::V10,
    };
    let keys: Vec<String> = map
        .keys()
        .filter(|k| !JSON_RESERVED_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut extensions = Map::new();
    for key in keys {
        let Some(value) = map.remove(&key) else {
            continue;
        };
        let name = extension_name(&key, &version)?;
        let value = match value {
            Value::Null => continue,
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&f) {
                    return Err(ReceiveError::ExtensionValue {
                        name,
                        reason: format!("cannot convert {n} to int32: out of range"),
                    });
                }
                // In range and not NaN, so the truncation is exact.
                #[allow(clippy::cast_possible_truncation)]
                Value::from(f.trunc() as i64)
            }
            other => other,
        };
        extensions.insert(name, value);
    }
    map.extend(extensions);
    let event: Event = serde_json::from_value(Value::Object(map)).map_err(invalid)?;
    validate(&Attributes::of(&event))?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_failures_are_sorted_one_per_line_as_go_prints_them() {
        let err = validate(&Attributes {
            id: " ",
            source: "",
            ty: "t",
            datacontenttype: Some("text/"),
            subject: Some(""),
            dataschema: Some("relative"),
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid event: datacontenttype: failed to parse RFC 2046 media type mime: expected token after slash\n\
             dataschema: if present, MUST adhere to the format specified in RFC 3986, Section 4.3. Absolute URI\n\
             id: MUST be a non-empty string\nsource: REQUIRED\nsubject: if present, MUST be a non-empty string"
        );
    }

    #[test]
    fn extension_names_follow_go() {
        assert_eq!(extension_name("ClusterName", &SpecVersion::V10).unwrap(), "clustername");
        for (name, version) in [
            ("", SpecVersion::V10),
            ("cluster-name", SpecVersion::V10),
            ("Time", SpecVersion::V10),
            ("schemaurl", SpecVersion::V03),
        ] {
            assert!(
                matches!(extension_name(name, &version), Err(ReceiveError::ExtensionName { .. })),
                "{name}"
            );
        }
        // `schemaurl` is no attribute of 1.0
        assert_eq!(extension_name("schemaurl", &SpecVersion::V10).unwrap(), "schemaurl");
    }

    #[test]
    fn a_draft_builds_the_event() {
        let mut draft = EventDraft::new(SpecVersion::V10);
        draft.id = "1".into();
        draft.source = "s".into();
        draft.ty = "t".into();
        draft.datacontenttype = Some("application/json".into());
        draft.set_extension("ResourceVersion", "2").unwrap();
        draft.data = Some(b"{}".to_vec());
        let event = draft.finish().unwrap();
        assert_eq!(
            event.extension("resourceversion").map(ToString::to_string).as_deref(),
            Some("2")
        );
        assert!(matches!(event.data(), Some(Data::Binary(b)) if b == b"{}"));
    }

    #[test]
    fn structured_json_numbers_become_int32_and_out_of_range_is_refused() {
        let ok = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","ResourceVersion":3.7,"gone":null}"#;
        let event = decode_structured_json(ok).unwrap();
        assert_eq!(event.extension("resourceversion"), Some(&ExtensionValue::Integer(3)));
        assert!(event.extension("gone").is_none());
        let big = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","n":3000000000}"#;
        assert!(matches!(
            decode_structured_json(big),
            Err(ReceiveError::ExtensionValue { .. })
        ));
        let invalid = br#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#;
        assert!(matches!(
            decode_structured_json(invalid),
            Err(ReceiveError::Invalid { .. })
        ));
    }
}
