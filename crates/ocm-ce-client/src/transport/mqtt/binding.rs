//! The CloudEvents MQTT 5 binding of the Go SDK (`protocol/mqtt_paho/v2`, spec §5.2).
//!
//! Sending is always **binary mode**: the PUBLISH Content Type property is the event's
//! `datacontenttype` (absent when it has none); every other attribute is a user property
//! `ce-<name>` in the order `ce-id`, `ce-source`, `ce-specversion`, `ce-type`, (`ce-dataschema`,
//! `ce-subject` when set), `ce-time`, then one `ce-<name>` per extension (sorted by name; Go's
//! order is random) in canonical string form: strings verbatim, integers in decimal, booleans
//! `true`/`false`, times as UTC RFC 3339 without trailing fractional zeros. The payload is the
//! data.
//!
//! Receiving accepts **structured mode** (Content Type `application/cloudevents+json`, a JSON
//! event in the payload) and binary mode (a `ce-specversion` user property naming `1.0` or
//! `0.3`): `ce-*` properties fill the attributes (`time` parsed as RFC 3339), every other `ce-*`
//! property becomes a **string** extension with a lower-cased name, the Content Type becomes
//! `datacontenttype` and the payload the data. Anything else is not a CloudEvent
//! ([`BindingError::UnknownEncoding`]). Decoded events then pass CloudEvents validation as in
//! the SDK's receiver ([`BindingError::Invalid`]).

use chrono::{DateTime, Datelike, Timelike, Utc};
use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, AttributesWriter, Data, Event, EventBuilder, EventBuilderV03, EventBuilderV10};
use ocm_ce_core::extensions::{format_time, parse_time};
use serde_json::{Map, Value};

/// Prefix of the attribute user properties.
pub const PREFIX: &str = "ce-";

/// Content type of a structured-mode message.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";

/// The parts of an MQTT 5 PUBLISH that carry an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MqttMessage {
    /// The Content Type property (`None` = absent).
    pub content_type: Option<String>,
    /// The user properties, in order.
    pub user_properties: Vec<(String, String)>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why an event could not be written to or read from an MQTT message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The message is neither structured nor binary mode (Go: `unknown Message encoding`).
    #[error("unknown Message encoding")]
    UnknownEncoding,
    /// A structured-mode payload that is not a JSON CloudEvent.
    #[error("invalid structured event: {reason}")]
    Structured {
        /// What the parser said.
        reason: String,
    },
    /// An attribute user property with an unusable value (Go: `invalid value for time: "…"`).
    #[error("invalid value for {name}: {value:?}")]
    InvalidAttribute {
        /// The attribute.
        name: &'static str,
        /// The value received.
        value: String,
    },
    /// An extension name CloudEvents does not allow (ASCII letters and digits only).
    #[error("invalid extension name {name:?}: must consist of ascii letters and digits")]
    ExtensionName {
        /// The name.
        name: String,
    },
    /// An integer extension outside the int32 range (Go refuses to send it).
    #[error("extension:{name}: cannot convert {value} to int32: out of range")]
    IntegerRange {
        /// The extension.
        name: String,
        /// The value.
        value: i64,
    },
    /// The event fails CloudEvents validation (Go's texts, e.g. `id: MUST be a non-empty
    /// string`); the SDK drops such events on receipt and refuses to send them.
    #[error("{reason}")]
    Invalid {
        /// The failures, `attribute: reason`, one per line.
        reason: String,
    },
}

impl BindingError {
    /// True for failures of CloudEvents validation (after the message was read).
    pub fn is_validation(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

/// Writes `event` in binary mode.
#[doc(alias = "WritePubMessage")]
pub fn encode(event: &Event) -> Result<MqttMessage, BindingError> {
    validate(&Draft::of(event))?;
    let version = event.specversion();
    let mut props: Vec<(String, String)> = Vec::with_capacity(8 + event.iter_extensions().count());
    let mut put = |name: &str, value: String| props.push((format!("{PREFIX}{name}"), value));
    put("id", event.id().to_owned());
    put("source", event.source().clone());
    put("specversion", version.to_string());
    put("type", event.ty().to_owned());
    if let Some(schema) = event.dataschema() {
        let name = if version == SpecVersion::V03 {
            "schemaurl"
        } else {
            "dataschema"
        };
        put(name, schema.to_string());
    }
    if let Some(subject) = event.subject() {
        put("subject", subject.to_owned());
    }
    if let Some(time) = event.time() {
        put("time", format_time(time));
    }
    let mut extensions: Vec<(&str, &ExtensionValue)> = event.iter_extensions().collect();
    extensions.sort_by_key(|(name, _)| *name);
    for (name, value) in extensions {
        let name = extension_name(name)?;
        let value = match value {
            ExtensionValue::String(s) => s.clone(),
            ExtensionValue::Boolean(b) => b.to_string(),
            ExtensionValue::Integer(i) => {
                if i32::try_from(*i).is_err() {
                    return Err(BindingError::IntegerRange { name, value: *i });
                }
                i.to_string()
            }
        };
        put(&name, value);
    }
    let payload = match event.data() {
        None => Vec::new(),
        Some(Data::Binary(b)) => b.clone(),
        Some(Data::String(s)) => s.clone().into_bytes(),
        // Go's encoder writes `<`, `>`, `&` escaped; codecs needing exact bytes use Binary.
        Some(Data::Json(v)) => ocm_ce_core::go_json::to_vec(v).map_err(|e| BindingError::Invalid {
            reason: format!("data: {e}"),
        })?,
    };
    Ok(MqttMessage {
        content_type: event.datacontenttype().map(str::to_owned),
        user_properties: props,
        payload,
    })
}

/// Reads a received PUBLISH (Go `NewMessage` + `binding.ToEvent` + the receiver's validation).
pub fn decode(
    content_type: Option<&str>,
    user_properties: &[(String, String)],
    payload: &[u8],
) -> Result<Event, BindingError> {
    let content_type = content_type.filter(|c| !c.is_empty());
    if let Some(ct) = content_type {
        // Go's `format.IsFormat`: parameters dropped, trimmed, lower-cased, a known format.
        let media_type = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media_type == STRUCTURED_JSON {
            return decode_structured(payload);
        }
    }
    let version = user_properties
        .iter()
        .find(|(k, _)| k == "ce-specversion")
        .map(|(_, v)| v.as_str());
    let version = match version {
        Some("1.0") => SpecVersion::V10,
        Some("0.3") => SpecVersion::V03,
        _ => return Err(BindingError::UnknownEncoding),
    };
    let mut draft = Draft {
        version,
        ..Draft::default()
    };
    for (key, value) in user_properties {
        let key = key.to_lowercase();
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        draft.set(name, value)?;
    }
    if let Some(ct) = content_type {
        draft.datacontenttype = Some(ct.trim().to_owned()).filter(|c| !c.is_empty());
    }
    draft.data = (!payload.is_empty()).then(|| payload.to_vec());
    validate(&draft)?;
    draft.build()
}

/// Attributes and extensions of an event being read (or checked before sending).
#[derive(Debug)]
struct Draft {
    version: SpecVersion,
    id: String,
    source: String,
    ty: String,
    datacontenttype: Option<String>,
    dataschema: Option<String>,
    subject: Option<String>,
    time: Option<DateTime<Utc>>,
    extensions: Vec<(String, String)>,
    data: Option<Vec<u8>>,
}

impl Default for Draft {
    fn default() -> Self {
        Self {
            version: SpecVersion::V10,
            id: String::new(),
            source: String::new(),
            ty: String::new(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: Vec::new(),
            data: None,
        }
    }
}

impl Draft {
    fn of(event: &Event) -> Self {
        Self {
            version: event.specversion(),
            id: event.id().to_owned(),
            source: event.source().clone(),
            ty: event.ty().to_owned(),
            datacontenttype: event.datacontenttype().map(str::to_owned),
            dataschema: event.dataschema().map(ToString::to_string),
            subject: event.subject().map(str::to_owned),
            ..Self::default()
        }
    }

    /// One `ce-<name>` property (name already lower-cased, prefix removed).
    fn set(&mut self, name: &str, value: &str) -> Result<(), BindingError> {
        let trimmed = || Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        let v03 = self.version == SpecVersion::V03;
        match name {
            "id" => {
                self.id = trimmed().ok_or_else(|| BindingError::InvalidAttribute {
                    name: "id",
                    value: value.to_owned(),
                })?;
            }
            "source" => {
                if value.chars().any(char::is_control) {
                    return Err(BindingError::InvalidAttribute {
                        name: "source",
                        value: value.to_owned(),
                    });
                }
                value.clone_into(&mut self.source);
            }
            "specversion" => {}
            "type" => self.ty = trimmed().unwrap_or_default(),
            "datacontenttype" => self.datacontenttype = trimmed(),
            "subject" => self.subject = trimmed(),
            "dataschema" if !v03 => self.dataschema = trimmed(),
            "schemaurl" if v03 => self.dataschema = trimmed(),
            "time" => {
                let time = parse_time(value).map_err(|_| BindingError::InvalidAttribute {
                    name: "time",
                    value: value.to_owned(),
                })?;
                self.time = (!is_go_zero(&time)).then_some(time);
            }
            _ => {
                let name = extension_name(name)?;
                self.extensions.retain(|(n, _)| n != &name);
                self.extensions.push((name, value.to_owned()));
            }
        }
        Ok(())
    }

    fn build(self) -> Result<Event, BindingError> {
        let dataschema = self
            .dataschema
            .as_deref()
            .map(url::Url::parse)
            .transpose()
            .map_err(|_| BindingError::Invalid {
                reason: format!("dataschema: {ABSOLUTE_URI}"),
            })?;
        let built = match self.version {
            SpecVersion::V03 => EventBuilderV03::new()
                .id(self.id)
                .source(self.source)
                .ty(self.ty)
                .build(),
            SpecVersion::V10 => EventBuilderV10::new()
                .id(self.id)
                .source(self.source)
                .ty(self.ty)
                .build(),
        };
        let mut event = built.map_err(|e| BindingError::Invalid { reason: e.to_string() })?;
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

const ABSOLUTE_URI: &str = "if present, MUST adhere to the format specified in RFC 3986, Section 4.3. Absolute URI";

/// Go's `EventContextV1.Validate`, failures sorted by attribute, one per line.
fn validate(d: &Draft) -> Result<(), BindingError> {
    let mut failures: Vec<String> = Vec::new();
    if d.id.trim().is_empty() {
        failures.push("id: MUST be a non-empty string".to_owned());
    }
    if d.source.trim().is_empty() {
        failures.push("source: REQUIRED".to_owned());
    }
    if d.ty.trim().is_empty() {
        failures.push("type: MUST be a non-empty string".to_owned());
    }
    if let Some(ct) = &d.datacontenttype {
        if ct.trim().is_empty() {
            failures.push("datacontenttype: if present, MUST adhere to the format specified in RFC 2046".to_owned());
        } else if let Err(reason) = check_media_type(ct) {
            failures.push(format!("datacontenttype: failed to parse RFC 2046 media type {reason}"));
        }
    }
    if d.dataschema.as_deref().is_some_and(|s| url::Url::parse(s).is_err()) {
        failures.push(format!("dataschema: {ABSOLUTE_URI}"));
    }
    if d.subject.as_deref().is_some_and(|s| s.trim().is_empty()) {
        failures.push("subject: if present, MUST be a non-empty string".to_owned());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        failures.sort();
        Err(BindingError::Invalid {
            reason: failures.join("\n"),
        })
    }
}

/// The type/subtype part of Go's `mime.ParseMediaType` (parameters are not checked).
fn check_media_type(value: &str) -> Result<(), &'static str> {
    let base = value.split(';').next().unwrap_or_default().trim();
    let is_token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c > ' ' && c < '\u{7f}' && !"()<>@,;:\\\"/[]?=".contains(c))
    };
    match base.split_once('/') {
        None if is_token(base) => Ok(()),
        None if base.is_empty() => Err("mime: no media type"),
        None => Err("mime: expected slash after first token"),
        Some((main, _)) if !is_token(main) => Err("mime: no media type"),
        Some((_, sub)) if !is_token(sub) => Err("mime: expected token after slash"),
        Some(_) => Ok(()),
    }
}

/// An extension name as the SDK takes it: ASCII letters and digits, lower-cased.
fn extension_name(name: &str) -> Result<String, BindingError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BindingError::ExtensionName { name: name.to_owned() });
    }
    Ok(name.to_ascii_lowercase())
}

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`) means "no time".
fn is_go_zero(t: &DateTime<Utc>) -> bool {
    t.year() == 1 && t.month() == 1 && t.day() == 1 && t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0
}

/// Top-level keys of a JSON CloudEvent that are not extensions.
const JSON_RESERVED: &[&str] = &[
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

/// Go's structured-mode read with the JSON format: JSON numbers in extensions become int32
/// (truncated; out of range is an error), `null` extensions are dropped, names lower-cased.
fn decode_structured(payload: &[u8]) -> Result<Event, BindingError> {
    let invalid = |e: serde_json::Error| BindingError::Structured { reason: e.to_string() };
    let mut map: Map<String, Value> = serde_json::from_slice(payload).map_err(invalid)?;
    let keys: Vec<String> = map
        .keys()
        .filter(|k| !JSON_RESERVED.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut extensions = Map::new();
    for key in keys {
        let Some(value) = map.remove(&key) else {
            continue;
        };
        let name = extension_name(&key)?;
        let value = match value {
            Value::Null => continue,
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&f) {
                    return Err(BindingError::Structured {
                        reason: format!("extension {name}: cannot convert {n} to int32: out of range"),
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
    validate(&Draft::of(&event))?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn event() -> Event {
        let mut e = EventBuilderV10::new()
            .id("1")
            .source("source1")
            .ty("a.b.c.spec.create_request")
            .time(Utc.with_ymd_and_hms(2024, 10, 1, 12, 0, 0).unwrap())
            .extension("resourceversion", 3_i64)
            .extension("clustername", "cluster1")
            .extension("flag", true)
            .build()
            .unwrap();
        e.set_data("application/json", b"{}".to_vec());
        e
    }

    #[test]
    fn events_are_written_in_binary_mode_with_go_attribute_order() {
        let m = encode(&event()).unwrap();
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        let keys: Vec<&str> = m.user_properties.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ce-id",
                "ce-source",
                "ce-specversion",
                "ce-type",
                "ce-time",
                "ce-clustername",
                "ce-flag",
                "ce-resourceversion"
            ]
        );
        assert_eq!(m.user_properties[4].1, "2024-10-01T12:00:00Z");
        assert_eq!(m.user_properties[6].1, "true");
        assert_eq!(m.user_properties[7].1, "3");
        assert_eq!(m.payload, b"{}");
    }

    #[test]
    fn a_written_event_reads_back_with_string_extensions() {
        let m = encode(&event()).unwrap();
        let back = decode(m.content_type.as_deref(), &m.user_properties, &m.payload).unwrap();
        assert_eq!(back.id(), "1");
        assert_eq!(back.time(), event().time());
        assert_eq!(
            back.extension("resourceversion"),
            Some(&ExtensionValue::String("3".into()))
        );
        assert_eq!(back.data(), Some(&Data::Binary(b"{}".to_vec())));
    }

    #[test]
    fn integers_beyond_int32_are_not_sent() {
        let mut e = event();
        e.set_extension("resourceversion", 3_000_000_000_i64);
        assert_eq!(
            encode(&e).unwrap_err().to_string(),
            "extension:resourceversion: cannot convert 3000000000 to int32: out of range"
        );
    }

    #[test]
    fn messages_without_specversion_are_not_events() {
        let props = vec![("ce-id".to_owned(), "1".to_owned())];
        assert_eq!(decode(None, &props, b""), Err(BindingError::UnknownEncoding));
        let props = vec![("ce-specversion".to_owned(), "2.0".to_owned())];
        assert_eq!(decode(None, &props, b""), Err(BindingError::UnknownEncoding));
    }

    #[test]
    fn a_malformed_time_drops_the_message_and_names_are_lower_cased() {
        let mut props: Vec<(String, String)> = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "s"),
            ("ce-type", "t"),
            ("ce-ResourceID", "abc"),
            ("other", "ignored"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let e = decode(None, &props, b"").unwrap();
        assert_eq!(e.extension("resourceid"), Some(&ExtensionValue::String("abc".into())));
        assert!(e.extension("other").is_none());
        assert!(e.data().is_none());
        props.push(("ce-time".into(), "yesterday".into()));
        assert_eq!(
            decode(None, &props, b"").unwrap_err().to_string(),
            "invalid value for time: \"yesterday\""
        );
    }

    #[test]
    fn invalid_events_are_refused_both_ways() {
        let props: Vec<(String, String)> = [("ce-specversion", "1.0"), ("ce-source", "s")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let err = decode(Some("application/json"), &props, b"{}").unwrap_err();
        assert!(err.is_validation());
        assert_eq!(
            err.to_string(),
            "id: MUST be a non-empty string\ntype: MUST be a non-empty string"
        );
        let mut e = event();
        e.set_datacontenttype(Some("a/b/c"));
        assert!(encode(&e).unwrap_err().is_validation());
    }

    #[test]
    fn structured_messages_turn_json_numbers_into_integers() {
        let json = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","ResourceVersion":7.9,"x":null}"#;
        let e = decode(Some("application/cloudevents+json; charset=utf-8"), &[], json).unwrap();
        assert_eq!(e.extension("resourceversion"), Some(&ExtensionValue::Integer(7)));
        assert!(e.extension("x").is_none());
    }
}
