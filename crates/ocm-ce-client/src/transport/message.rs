//! The CloudEvents SDK rules shared by the MQTT and Kafka bindings: writing an event's
//! attributes as `ce-*` name/value pairs, reading binary- or structured-mode messages, and the
//! receiver's CloudEvents validation (Go's texts). Each binding maps [`MessageError`] to its own
//! public `BindingError`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, AttributesWriter, Data, Event, EventBuilder, EventBuilderV03, EventBuilderV10};
use ocm_ce_core::extensions::{format_time, parse_time};
use serde_json::{Map, Value};

/// Prefix of the attribute properties / headers.
pub(crate) const PREFIX: &str = "ce-";

/// Content type of a structured-mode message.
pub(crate) const STRUCTURED_JSON: &str = "application/cloudevents+json";

/// Why an event could not be written or read; the variants of both bindings' `BindingError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MessageError {
    /// Neither structured nor binary mode.
    UnknownEncoding,
    /// A structured-mode payload that is not a JSON CloudEvent.
    Structured { reason: String },
    /// An attribute with an unusable value.
    InvalidAttribute { name: &'static str, value: String },
    /// An extension name CloudEvents does not allow.
    ExtensionName { name: String },
    /// An integer extension outside the int32 range.
    IntegerRange { name: String, value: i64 },
    /// The event fails CloudEvents validation.
    Invalid { reason: String },
}

/// `impl From<MessageError> for $binding_error`, variant by variant.
macro_rules! impl_from_message_error {
    ($error:ty) => {
        impl From<$crate::transport::message::MessageError> for $error {
            fn from(e: $crate::transport::message::MessageError) -> Self {
                use $crate::transport::message::MessageError as M;
                match e {
                    M::UnknownEncoding => Self::UnknownEncoding,
                    M::Structured { reason } => Self::Structured { reason },
                    M::InvalidAttribute { name, value } => Self::InvalidAttribute { name, value },
                    M::ExtensionName { name } => Self::ExtensionName { name },
                    M::IntegerRange { name, value } => Self::IntegerRange { name, value },
                    M::Invalid { reason } => Self::Invalid { reason },
                }
            }
        }
    };
}
pub(crate) use impl_from_message_error;

/// Validates `event` and writes its attributes for binary mode, names without [`PREFIX`], in the
/// order `id`, `source`, `specversion`, `type`, (`dataschema`/`schemaurl`, `subject` when set),
/// `time`, then the extensions sorted by name, values in canonical string form (integers only
/// in the int32 range, as Go).
pub(crate) fn binary_attributes(event: &Event) -> Result<Vec<(String, String)>, MessageError> {
    validate(&Draft::of(event))?;
    let version = event.specversion();
    let mut attrs: Vec<(String, String)> = Vec::with_capacity(8 + event.iter_extensions().count());
    let mut put = |name: &str, value: String| attrs.push((name.to_owned(), value));
    put("id", event.id().to_owned());
    put("source", event.source().clone());
    put("specversion", version.as_str().to_owned());
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
                    return Err(MessageError::IntegerRange { name, value: *i });
                }
                i.to_string()
            }
        };
        attrs.push((name, value));
    }
    Ok(attrs)
}

/// The event's data as bytes (`None`: no data). Go's encoder writes `<`, `>`, `&` escaped in
/// JSON data; codecs needing exact bytes use Binary.
pub(crate) fn data_bytes(event: &Event) -> Result<Option<Vec<u8>>, MessageError> {
    Ok(match event.data() {
        None => None,
        Some(Data::Binary(b)) => Some(b.clone()),
        Some(Data::String(s)) => Some(s.clone().into_bytes()),
        Some(Data::Json(v)) => Some(ocm_ce_core::go_json::to_vec(v).map_err(|e| MessageError::Invalid {
            reason: format!("data: {e}"),
        })?),
    })
}

/// Reads a received message (Go `binding.ToEvent` + the receiver's validation). A
/// `content_type` naming [`STRUCTURED_JSON`] (Go's `format.IsFormat`: parameters dropped,
/// trimmed, lower-cased) means structured mode; otherwise the first `ce-specversion` property
/// must be `1.0` or `0.3` (binary mode): `ce-*` properties (names lower-cased) fill the
/// attributes, other `ce-*` become string extensions, `content_type` becomes `datacontenttype`
/// and non-empty `data` the data.
pub(crate) fn decode(
    content_type: Option<&str>,
    props: &[(String, String)],
    data: Option<&[u8]>,
) -> Result<Event, MessageError> {
    let content_type = content_type.filter(|c| !c.is_empty());
    if let Some(ct) = content_type {
        let media_type = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media_type == STRUCTURED_JSON {
            return decode_structured(data.unwrap_or_default());
        }
    }
    let version = props
        .iter()
        .find(|(k, _)| k == "ce-specversion")
        .map(|(_, v)| v.as_str());
    let version = match version {
        Some("1.0") => SpecVersion::V10,
        Some("0.3") => SpecVersion::V03,
        _ => return Err(MessageError::UnknownEncoding),
    };
    let mut draft = Draft {
        version,
        ..Draft::default()
    };
    for (key, value) in props {
        let key = key.to_lowercase();
        if let Some(name) = key.strip_prefix(PREFIX) {
            draft.set(name, value)?;
        }
    }
    if let Some(ct) = content_type {
        draft.datacontenttype = Some(ct.trim().to_owned()).filter(|c| !c.is_empty());
    }
    draft.data = data.filter(|d| !d.is_empty()).map(<[u8]>::to_vec);
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
    fn set(&mut self, name: &str, value: &str) -> Result<(), MessageError> {
        let trimmed = || Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        let v03 = self.version == SpecVersion::V03;
        match name {
            "id" => {
                self.id = trimmed().ok_or_else(|| MessageError::InvalidAttribute {
                    name: "id",
                    value: value.to_owned(),
                })?;
            }
            "source" => {
                if value.chars().any(char::is_control) {
                    return Err(MessageError::InvalidAttribute {
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
                let time = parse_time(value).map_err(|_| MessageError::InvalidAttribute {
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

    fn build(self) -> Result<Event, MessageError> {
        let dataschema = self
            .dataschema
            .as_deref()
            .map(url::Url::parse)
            .transpose()
            .map_err(|_| MessageError::Invalid {
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
        let mut event = built.map_err(|e| MessageError::Invalid { reason: e.to_string() })?;
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
fn validate(d: &Draft) -> Result<(), MessageError> {
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
        Err(MessageError::Invalid {
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
fn extension_name(name: &str) -> Result<String, MessageError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MessageError::ExtensionName { name: name.to_owned() });
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
fn decode_structured(payload: &[u8]) -> Result<Event, MessageError> {
    let invalid = |e: serde_json::Error| MessageError::Structured { reason: e.to_string() };
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
                    return Err(MessageError::Structured {
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
