//! The CloudEvents Kafka binding of the Go SDK (`protocol/kafka_confluent/v2`, spec §7.3).
//!
//! Sending is always **binary mode**: headers `ce-id`, `ce-source`, `ce-specversion`,
//! `ce-type`, `content-type` (the `datacontenttype`, when set), `ce-dataschema` / `ce-subject`
//! (when set), `ce-time`, then one `ce-<name>` per extension (sorted by name; Go's order is
//! random), values in canonical string form: strings verbatim, integers in decimal (int32 range
//! only, as Go), booleans `true`/`false`, times as UTC RFC 3339 without trailing fractional
//! zeros. The record value is the data (none when the event has no data); the key is set by the
//! router.
//!
//! Receiving (Go `NewMessage` + `binding.ToEvent` + the receiver's validation): header names are
//! lower-cased; a `content-type` of `application/cloudevents+json` means **structured mode** (a
//! JSON event in the value); otherwise a `ce-specversion` header of `1.0` or `0.3` means binary
//! mode; anything else is not a CloudEvent. In binary mode `ce-*` headers fill the attributes and
//! every other `ce-*` header becomes a **string** extension; `content-type` becomes
//! `datacontenttype`. Like Go's SDK, every received event then gets the string extensions
//! `kafkatopic`, `kafkapartition`, `kafkaoffset` and, when the record has a key,
//! `kafkamessagekey` (they overwrite same-named headers).

use chrono::{DateTime, Datelike, Timelike, Utc};
use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, AttributesWriter, Data, Event, EventBuilder, EventBuilderV03, EventBuilderV10};
use ocm_ce_core::extensions::{format_time, parse_time};
use serde_json::{Map, Value};

/// Prefix of the attribute headers.
pub const PREFIX: &str = "ce-";
/// The header holding `datacontenttype` (binary) or the format (structured).
pub const CONTENT_TYPE: &str = "content-type";
/// Content type of a structured-mode message.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";

/// Extension with the topic a received event came from (Go `KafkaTopicKey`).
pub const KAFKA_TOPIC: &str = "kafkatopic";
/// Extension with the partition a received event came from (Go `KafkaPartitionKey`).
pub const KAFKA_PARTITION: &str = "kafkapartition";
/// Extension with the offset of a received event (Go `KafkaOffsetKey`).
pub const KAFKA_OFFSET: &str = "kafkaoffset";
/// Extension with the record key of a received event (Go `KafkaMessageKey`).
pub const KAFKA_MESSAGE_KEY: &str = "kafkamessagekey";

/// The parts of a Kafka record that carry an event (the key is the router's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaRecord {
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The value (`None`: no data).
    pub value: Option<Vec<u8>>,
}

/// Where a received record came from; becomes the `kafka*` extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOrigin<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record key, when there is one.
    pub key: Option<&'a [u8]>,
}

/// Why an event could not be written to or read from a Kafka record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The record is neither structured nor binary mode (Go: `unknown Message encoding`).
    #[error("unknown Message encoding")]
    UnknownEncoding,
    /// A structured-mode value that is not a JSON CloudEvent.
    #[error("invalid structured event: {reason}")]
    Structured {
        /// What the parser said.
        reason: String,
    },
    /// An attribute header with an unusable value.
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
    /// The event fails CloudEvents validation (Go's texts, one failure per line).
    #[error("{reason}")]
    Invalid {
        /// The failures.
        reason: String,
    },
}

/// Writes `event` in binary mode.
#[doc(alias = "WriteProducerMessage")]
pub fn encode(event: &Event) -> Result<KafkaRecord, BindingError> {
    validate(&Draft::of(event))?;
    let version = event.specversion();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(8 + event.iter_extensions().count());
    let mut put = |name: &str, value: String| headers.push((format!("{PREFIX}{name}"), value.into_bytes()));
    put("id", event.id().to_owned());
    put("source", event.source().clone());
    put("specversion", version.as_str().to_owned());
    put("type", event.ty().to_owned());
    if let Some(ct) = event.datacontenttype() {
        headers.push((CONTENT_TYPE.to_owned(), ct.as_bytes().to_vec()));
    }
    let mut put = |name: &str, value: String| headers.push((format!("{PREFIX}{name}"), value.into_bytes()));
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
    let value = match event.data() {
        None => None,
        Some(Data::Binary(b)) => Some(b.clone()),
        Some(Data::String(s)) => Some(s.clone().into_bytes()),
        Some(Data::Json(v)) => Some(ocm_ce_core::go_json::to_vec(v).map_err(|e| BindingError::Invalid {
            reason: format!("data: {e}"),
        })?),
    };
    // Go sends no value for empty data.
    let value = value.filter(|v| !v.is_empty());
    Ok(KafkaRecord { headers, value })
}

/// Reads a received record. `headers` are (name, value) pairs as received.
pub fn decode<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    value: Option<&[u8]>,
    origin: Option<RecordOrigin<'_>>,
) -> Result<Event, BindingError> {
    // Go keeps the last value of each lower-cased name.
    let mut props: Vec<(String, String)> = Vec::new();
    for (name, v) in headers {
        let name = name.to_lowercase();
        let v = String::from_utf8_lossy(v).into_owned();
        match props.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = v,
            None => props.push((name, v)),
        }
    }
    let content_type = props
        .iter()
        .find(|(n, _)| n == CONTENT_TYPE)
        .map(|(_, v)| v.as_str())
        .filter(|c| !c.is_empty());
    let mut event = decode_props(content_type, &props, value)?;
    if let Some(origin) = origin {
        event.set_extension(KAFKA_OFFSET, origin.offset.to_string());
        event.set_extension(KAFKA_PARTITION, origin.partition.to_string());
        event.set_extension(KAFKA_TOPIC, origin.topic.to_owned());
        if let Some(key) = origin.key {
            event.set_extension(KAFKA_MESSAGE_KEY, String::from_utf8_lossy(key).into_owned());
        }
    }
    Ok(event)
}

fn decode_props(
    content_type: Option<&str>,
    props: &[(String, String)],
    value: Option<&[u8]>,
) -> Result<Event, BindingError> {
    if let Some(ct) = content_type {
        // Go's `format.Lookup`: parameters dropped, trimmed, lower-cased.
        let media_type = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media_type == STRUCTURED_JSON {
            return decode_structured(value.unwrap_or_default());
        }
    }
    let version = props
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
    for (key, v) in props {
        if let Some(name) = key.strip_prefix(PREFIX) {
            draft.set(name, v)?;
        }
    }
    if let Some(ct) = content_type {
        draft.datacontenttype = Some(ct.trim().to_owned()).filter(|c| !c.is_empty());
    }
    draft.data = value.filter(|v| !v.is_empty()).map(<[u8]>::to_vec);
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

    /// One `ce-<name>` header (name lower-cased, prefix removed).
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
        let invalid_schema = || BindingError::Invalid {
            reason: format!("dataschema: {ABSOLUTE_URI}"),
        };
        let dataschema = self
            .dataschema
            .as_deref()
            .map(url_parse)
            .transpose()
            .map_err(|()| invalid_schema())?;
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

/// Parses an absolute URL (CloudEvents `dataschema`).
fn url_parse(s: &str) -> Result<url::Url, ()> {
    url::Url::parse(s).map_err(|_| ())
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
    if d.dataschema.as_deref().is_some_and(|s| url_parse(s).is_err()) {
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
            .extension("originalsource", "")
            .extension("deletiontimestamp", "2024-10-01T12:00:00.123456789Z")
            .build()
            .unwrap();
        e.set_data("application/json", b"{\"a\":1}".to_vec());
        e
    }

    fn header_map(r: &KafkaRecord) -> Vec<(&str, &str)> {
        r.headers
            .iter()
            .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap()))
            .collect()
    }

    fn decode_record(r: &KafkaRecord, origin: Option<RecordOrigin<'_>>) -> Result<Event, BindingError> {
        decode(
            r.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            r.value.as_deref(),
            origin,
        )
    }

    #[test]
    fn events_are_written_in_binary_mode_with_go_s_headers() {
        let r = encode(&event()).unwrap();
        assert_eq!(
            header_map(&r),
            [
                ("ce-id", "1"),
                ("ce-source", "source1"),
                ("ce-specversion", "1.0"),
                ("ce-type", "a.b.c.spec.create_request"),
                ("content-type", "application/json"),
                ("ce-time", "2024-10-01T12:00:00Z"),
                ("ce-clustername", "cluster1"),
                ("ce-deletiontimestamp", "2024-10-01T12:00:00.123456789Z"),
                ("ce-originalsource", ""),
                ("ce-resourceversion", "3"),
            ]
        );
        assert_eq!(r.value.as_deref(), Some(&b"{\"a\":1}"[..]));
    }

    #[test]
    fn events_without_data_have_no_value_and_no_content_type() {
        let mut e = event();
        e.take_data();
        let r = encode(&e).unwrap();
        assert_eq!(r.value, None);
        assert!(r.headers.iter().all(|(k, _)| k != CONTENT_TYPE));
        let back = decode_record(&r, None).unwrap();
        assert!(back.data().is_none());
        assert!(back.datacontenttype().is_none());
    }

    #[test]
    fn a_written_event_reads_back_with_string_extensions_and_kafka_origin() {
        let r = encode(&event()).unwrap();
        let origin = RecordOrigin {
            topic: "sourceevents.source1.cluster1",
            partition: 2,
            offset: 41,
            key: Some(b"source1@cluster1"),
        };
        let back = decode_record(&r, Some(origin)).unwrap();
        assert_eq!(back.id(), "1");
        assert_eq!(back.source(), "source1");
        assert_eq!(back.time(), event().time());
        assert_eq!(back.datacontenttype(), Some("application/json"));
        let s = |v: &str| Some(ExtensionValue::String(v.into()));
        assert_eq!(back.extension("resourceversion").cloned(), s("3"));
        assert_eq!(back.extension("originalsource").cloned(), s(""));
        assert_eq!(back.extension(KAFKA_TOPIC).cloned(), s("sourceevents.source1.cluster1"));
        assert_eq!(back.extension(KAFKA_PARTITION).cloned(), s("2"));
        assert_eq!(back.extension(KAFKA_OFFSET).cloned(), s("41"));
        assert_eq!(back.extension(KAFKA_MESSAGE_KEY).cloned(), s("source1@cluster1"));
        assert_eq!(back.data(), Some(&Data::Binary(b"{\"a\":1}".to_vec())));
        // the OCM accessors convert the string values leniently
        use ocm_ce_core::EventExt;
        assert_eq!(back.resource_version().unwrap(), 3);
        assert!(back.deletion_timestamp().unwrap().is_some());
    }

    #[test]
    fn go_style_headers_read_case_insensitively_and_last_wins() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("CE-SpecVersion", b"1.0"),
            ("ce-id", b"x"),
            ("Ce-Id", b"7"),
            ("ce-source", b"cluster1-agent"),
            ("ce-type", b"a.b.c.status.update_request"),
            ("Content-Type", b"application/json"),
            ("ce-ResourceID", b"uid"),
            ("unrelated", b"ignored"),
        ];
        let e = decode(headers, Some(b"{}"), None).unwrap();
        assert_eq!(e.id(), "7");
        assert_eq!(e.extension("resourceid"), Some(&ExtensionValue::String("uid".into())));
        assert!(e.extension("unrelated").is_none());
        assert!(e.extension(KAFKA_TOPIC).is_none());
        assert_eq!(e.datacontenttype(), Some("application/json"));
    }

    #[test]
    fn records_that_are_not_cloudevents_are_refused() {
        assert_eq!(
            decode([("ce-id", &b"1"[..])], None, None),
            Err(BindingError::UnknownEncoding)
        );
        assert_eq!(
            decode([("ce-specversion", &b"2.0"[..])], None, None),
            Err(BindingError::UnknownEncoding)
        );
        let bad_time: Vec<(&str, &[u8])> = vec![
            ("ce-specversion", b"1.0"),
            ("ce-id", b"1"),
            ("ce-source", b"s"),
            ("ce-type", b"t"),
            ("ce-time", b"yesterday"),
        ];
        assert_eq!(
            decode(bad_time, None, None).unwrap_err().to_string(),
            "invalid value for time: \"yesterday\""
        );
        let no_id: Vec<(&str, &[u8])> = vec![("ce-specversion", b"1.0"), ("ce-source", b"s")];
        assert_eq!(
            decode(no_id, None, None).unwrap_err().to_string(),
            "id: MUST be a non-empty string\ntype: MUST be a non-empty string"
        );
    }

    #[test]
    fn structured_records_are_accepted() {
        let json = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","resourceversion":7,"clustername":"c1","datacontenttype":"application/json","data":{"x":1}}"#;
        let e = decode(
            [("content-type", &b"application/cloudevents+json; charset=utf-8"[..])],
            Some(json),
            Some(RecordOrigin {
                topic: "t",
                partition: 0,
                offset: 0,
                key: None,
            }),
        )
        .unwrap();
        assert_eq!(e.extension("resourceversion"), Some(&ExtensionValue::Integer(7)));
        assert_eq!(e.extension("clustername"), Some(&ExtensionValue::String("c1".into())));
        assert!(e.extension(KAFKA_MESSAGE_KEY).is_none());
        assert_eq!(e.extension(KAFKA_OFFSET), Some(&ExtensionValue::String("0".into())));
    }

    #[test]
    fn integers_beyond_int32_and_bad_extension_names_are_not_sent() {
        let mut e = event();
        e.set_extension("resourceversion", 3_000_000_000_i64);
        assert_eq!(
            encode(&e).unwrap_err().to_string(),
            "extension:resourceversion: cannot convert 3000000000 to int32: out of range"
        );
        let mut e = event();
        e.set_extension("bad_name", "x");
        assert!(matches!(encode(&e), Err(BindingError::ExtensionName { .. })));
    }
}
