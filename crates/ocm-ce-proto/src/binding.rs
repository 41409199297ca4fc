//! Conversion between [`cloudevents::Event`] and [`pb::CloudEvent`]: the Rust twin of Go's
//! `generic/options/grpc/protocol/{message,write_message}.go` (sdk-go v0.15.0).
//!
//! The mapping is OCM's own, not the CloudEvents protobuf format:
//!
//! * sending is always binary mode: `id`, `source`, `type` and `spec_version` are message fields;
//!   the data content type goes under the key `contenttype` (a `ce_string`), every other
//!   attribute and extension under `ce-<name>`; data is always `binary_data`;
//! * receiving accepts binary mode (a known `spec_version`) and structured mode (`contenttype`
//!   starting with `application/cloudevents`, a JSON CloudEvent in `binary_data`), drops a
//!   message without attributes, ignores keys without the `ce-` prefix (except `contenttype`)
//!   and ignores `text_data` / `proto_data`, all as Go does.
//!
//! Extension types: `cloudevents::Event` has only string, integer (`i64`) and boolean
//! extensions. On receipt a `ce_timestamp` becomes its canonical RFC 3339 string (UTC, no
//! trailing zeros in the fraction), `ce_bytes` becomes base64, `ce_uri` / `ce_uri_ref` their
//! text. On sending, the extensions named in [`TIMESTAMP_EXTENSIONS`] (`deletiontimestamp`)
//! go back out as `ce_timestamp`, and integers must fit in an `int32`.
//!
//! [`TIMESTAMP_EXTENSIONS`]: ocm_ce_core::extensions::TIMESTAMP_EXTENSIONS

mod time;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::message::Encoding;
use cloudevents::{AttributesReader, Data, Event};
use ocm_ce_core::extensions::TIMESTAMP_EXTENSIONS;
use ocm_ce_core::go_time::{Layout, Precision, format_rfc3339, is_go_zero_time, parse_rfc3339};
use ocm_ce_core::received::{self, Attributes, EventDraft, check_uri_reference, extension_name};

use crate::error::{Error, Result};
use crate::pb;
use crate::pb::cloud_event::Data as PbData;
use crate::pb::cloud_event_attribute_value::Attr;

/// Prefix of every attribute key except [`CONTENT_TYPE_KEY`].
pub const ATTRIBUTE_PREFIX: &str = "ce-";

/// Key of the data content type attribute (no `ce-` prefix, unlike the other attributes).
pub const CONTENT_TYPE_KEY: &str = "contenttype";

/// The `contenttype` of a structured-mode message ([`encode_structured`]).
pub const STRUCTURED_JSON_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Content types starting with this select structured mode on receipt.
const STRUCTURED_PREFIX: &str = "application/cloudevents";

/// The JSON batch format: recognised as structured, but it cannot hold one event.
const BATCH_JSON_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// The encoding Go's `NewMessage` sees in `msg`.
///
/// [`Encoding::UNKNOWN`] for a message without attributes, with an unknown `spec_version`, or
/// whose `contenttype` names an unknown `application/cloudevents…` format; [`decode`] refuses
/// those.
#[doc(alias = "ReadEncoding")]
pub fn encoding(msg: &pb::CloudEvent) -> Encoding {
    match mode(msg) {
        Mode::Structured { .. } => Encoding::STRUCTURED,
        Mode::Binary(_) => Encoding::BINARY,
        Mode::Unknown(_) => Encoding::UNKNOWN,
    }
}

/// Encodes `event` in binary mode, as Go's `WritePBMessage` does for an event.
///
/// The event is checked the way Go's SDK checks before sending: it must pass CloudEvents
/// validation, extension names must be ASCII letters and digits (they are sent lower-cased)
/// and integer extensions must fit in an `int32`.
///
/// Unlike Go, an event without any optional attribute or extension is refused
/// ([`Error::NoAttributes`]): its message would have no attributes, and receivers drop such
/// messages. (OCM events always carry `time`, `clustername` and `originalsource`.)
///
/// `Data::Json` is sent as `serde_json` bytes; a codec that needs Go's exact JSON bytes sets
/// `Data::Binary`. Empty data is not sent (Go sends no data for an empty body).
#[doc(alias = "WritePBMessage")]
pub fn encode(event: &Event) -> Result<pb::CloudEvent> {
    let extensions = checked_extensions(event)?;
    validate_event(event)?;

    let version = event.specversion();
    let mut attributes = BTreeMap::new();
    if let Some(content_type) = event.datacontenttype().filter(|ct| !ct.is_empty()) {
        attributes.insert(CONTENT_TYPE_KEY.to_owned(), string_value(content_type));
    }
    if let Some(time) = event.time().filter(|t| !is_go_zero_time(t)) {
        attributes.insert(prefixed("time"), timestamp_value(time));
    }
    if let Some(subject) = event.subject().filter(|s| !s.is_empty()) {
        attributes.insert(prefixed("subject"), string_value(subject));
    }
    if let Some(schema) = event.dataschema() {
        let name = match version {
            SpecVersion::V03 => "schemaurl",
            SpecVersion::V10 => "dataschema",
        };
        attributes.insert(prefixed(name), string_value(schema.as_str()));
    }
    for (name, value) in extensions {
        let attr = match value {
            ExtensionValue::String(s) if TIMESTAMP_EXTENSIONS.contains(&name.as_str()) => {
                match parse_rfc3339(s, Layout::Rfc3339Nano).ok() {
                    Some(t) => Attr::CeTimestamp(time::to_timestamp(&t)),
                    None => Attr::CeString(s.clone()),
                }
            }
            ExtensionValue::String(s) => Attr::CeString(s.clone()),
            ExtensionValue::Boolean(b) => Attr::CeBoolean(*b),
            ExtensionValue::Integer(i) => Attr::CeInteger(int32_extension(&name, *i)?),
        };
        attributes.insert(prefixed(&name), pb::CloudEventAttributeValue { attr: Some(attr) });
    }

    if attributes.is_empty() {
        return Err(Error::NoAttributes);
    }

    let data = match event.data() {
        Some(Data::Binary(bytes)) if !bytes.is_empty() => Some(bytes.clone()),
        Some(Data::String(text)) if !text.is_empty() => Some(text.clone().into_bytes()),
        Some(Data::Json(json)) => Some(serde_json::to_vec(json).map_err(|e| Error::Data { reason: e.to_string() })?),
        _ => None,
    };

    Ok(pb::CloudEvent {
        id: event.id().to_owned(),
        source: event.source().clone(),
        spec_version: version.as_str().to_owned(),
        r#type: event.ty().to_owned(),
        attributes,
        data: data.map(PbData::BinaryData),
    })
}

/// Encodes `event` in structured mode: `contenttype` = `application/cloudevents+json` and the
/// JSON CloudEvent in `binary_data`. Like Go's structured writer, the `id`, `source`, `type`
/// and `spec_version` fields stay empty. The event is checked as in [`encode`].
///
/// OCM peers send binary mode; this exists for peers that prefer structured mode and for
/// round-trip tests.
pub fn encode_structured(event: &Event) -> Result<pb::CloudEvent> {
    checked_extensions(event)?;
    validate_event(event)?;
    let json = serde_json::to_vec(event).map_err(|e| Error::Data { reason: e.to_string() })?;
    let mut attributes = BTreeMap::new();
    attributes.insert(CONTENT_TYPE_KEY.to_owned(), string_value(STRUCTURED_JSON_CONTENT_TYPE));
    Ok(pb::CloudEvent {
        attributes,
        data: Some(PbData::BinaryData(json)),
        ..pb::CloudEvent::default()
    })
}

/// [`encode`]s `event` into the request of `CloudEventService.Publish`.
pub fn encode_publish_request(event: &Event) -> Result<pb::PublishRequest> {
    Ok(pb::PublishRequest {
        event: Some(encode(event)?),
    })
}

/// Decodes a received message into an event, as Go's `NewMessage` followed by
/// `binding.ToEvent` and `Event.Validate` do; every message Go drops is an error here.
///
/// Binary-mode data is returned as `Data::Binary` with the exact bytes received; structured
/// mode gives what the CloudEvents JSON format holds (`Data::Json` for JSON data).
#[doc(alias = "NewMessage")]
pub fn decode(msg: pb::CloudEvent) -> Result<Event> {
    match mode(&msg) {
        Mode::Unknown(reason) => Err(Error::UnknownEncoding { reason }),
        Mode::Structured { batch: true } => Err(Error::UnsupportedFormat {
            media_type: content_type(&msg).unwrap_or_default().to_owned(),
        }),
        Mode::Structured { batch: false } => decode_structured(msg),
        Mode::Binary(version) => decode_binary(msg, version),
    }
}

// ---------------------------------------------------------------------------------------------
// Receiving.

enum Mode {
    Structured {
        batch: bool,
    },
    Binary(SpecVersion),
    /// Neither, and why.
    Unknown(String),
}

fn content_type(msg: &pb::CloudEvent) -> Option<&str> {
    match msg.attributes.get(CONTENT_TYPE_KEY)?.attr.as_ref()? {
        Attr::CeString(s) => Some(s),
        _ => None,
    }
}

/// Go's `NewMessage` decision.
fn mode(msg: &pb::CloudEvent) -> Mode {
    if msg.attributes.is_empty() {
        return Mode::Unknown(if msg.r#type.is_empty() {
            "the event has no type (and no other attribute)".to_owned()
        } else {
            "the message has no attributes".to_owned()
        });
    }
    if let Some(ct) = content_type(msg).filter(|ct| ct.starts_with(STRUCTURED_PREFIX)) {
        // `format.Lookup`: parameters dropped, trimmed, lower-cased.
        let media_type = ct.split(';').next().unwrap_or_default().trim();
        let media_type = media_type.to_lowercase();
        return match media_type.as_str() {
            STRUCTURED_JSON_CONTENT_TYPE => Mode::Structured { batch: false },
            BATCH_JSON_CONTENT_TYPE => Mode::Structured { batch: true },
            _ => Mode::Unknown(format!("no event format is named {media_type:?}")),
        };
    }
    match msg.spec_version.as_str() {
        "1.0" => Mode::Binary(SpecVersion::V10),
        "0.3" => Mode::Binary(SpecVersion::V03),
        other => Mode::Unknown(format!("unknown spec_version {other:?}")),
    }
}

/// An attribute value as Go's `valueFrom` converts it.
#[derive(Debug, Clone)]
enum AttrValue {
    Bool(bool),
    Int(i32),
    Str(String),
    Bytes(Vec<u8>),
    Uri(String),
    Time(DateTime<Utc>),
}

impl AttrValue {
    fn from_attribute(name: &str, value: pb::CloudEventAttributeValue) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidAttributeValue {
            name: name.to_owned(),
            reason,
        };
        Ok(match value.attr {
            None => return Err(invalid("unsupported attribute type: <nil>".to_owned())),
            Some(Attr::CeBoolean(b)) => Self::Bool(b),
            Some(Attr::CeInteger(i)) => Self::Int(i),
            Some(Attr::CeString(s)) => Self::Str(s),
            Some(Attr::CeBytes(b)) => Self::Bytes(b),
            Some(Attr::CeUri(uri)) => {
                check_uri_reference(&uri).map_err(|e| invalid(format!("failed to parse URI value {uri}: {e}")))?;
                Self::Uri(uri)
            }
            Some(Attr::CeUriRef(uri)) => {
                check_uri_reference(&uri).map_err(|e| invalid(format!("failed to parse URIRef value {uri}: {e}")))?;
                Self::Uri(uri)
            }
            Some(Attr::CeTimestamp(ts)) => Self::Time(time::from_timestamp(&ts).map_err(invalid)?),
        })
    }

    /// Go's `%#v` of the value, for error messages.
    fn go_repr(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Str(s) | Self::Uri(s) => format!("{s:?}"),
            Self::Bytes(b) => format!("{b:?}"),
            Self::Time(t) => format_rfc3339(t, Precision::Nanos),
        }
    }

    /// `types.ToString`: only a string converts.
    fn into_string(self, attribute: &str) -> Result<String> {
        match self {
            Self::Str(s) => Ok(s),
            other => Err(Error::InvalidAttribute {
                name: attribute.to_owned(),
                reason: other.go_repr(),
            }),
        }
    }

    fn into_extension(self) -> ExtensionValue {
        match self {
            Self::Bool(b) => ExtensionValue::Boolean(b),
            Self::Int(i) => ExtensionValue::Integer(i64::from(i)),
            Self::Str(s) | Self::Uri(s) => ExtensionValue::String(s),
            Self::Bytes(b) => ExtensionValue::String(BASE64.encode(b)),
            Self::Time(t) => ExtensionValue::String(format_rfc3339(&t, Precision::Nanos)),
        }
    }
}

/// The context attributes a `ce-<name>` key can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Source,
    SpecVersion,
    Type,
    DataContentType,
    DataSchema,
    Subject,
    Time,
}

impl Kind {
    /// `spec.Version.Attribute`: the lower-cased name after `ce-`, per spec version.
    fn of(version: &SpecVersion, name: &str) -> Option<Self> {
        Some(match name {
            "id" => Self::Id,
            "source" => Self::Source,
            "specversion" => Self::SpecVersion,
            "type" => Self::Type,
            "datacontenttype" => Self::DataContentType,
            "subject" => Self::Subject,
            "time" => Self::Time,
            "dataschema" if *version == SpecVersion::V10 => Self::DataSchema,
            "schemaurl" if *version == SpecVersion::V03 => Self::DataSchema,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Source => "source",
            Self::SpecVersion => "specversion",
            Self::Type => "type",
            Self::DataContentType => "datacontenttype",
            Self::DataSchema => "dataschema",
            Self::Subject => "subject",
            Self::Time => "time",
        }
    }
}

/// Sets one context attribute of the event being read (Go's `messageToEventBuilder`).
fn set_attribute(draft: &mut EventDraft, kind: Kind, value: AttrValue) -> Result<()> {
    let name = kind.name();
    let trimmed = |value: AttrValue| -> Result<Option<String>> {
        let s = value.into_string(name)?;
        let s = s.trim();
        Ok((!s.is_empty()).then(|| s.to_owned()))
    };
    match kind {
        Kind::Id => {
            draft.id = trimmed(value)?.ok_or_else(|| Error::InvalidAttribute {
                name: name.to_owned(),
                reason: "id is required to be a non-empty string".to_owned(),
            })?;
        }
        Kind::Source => {
            let source = value.into_string(name)?;
            check_uri_reference(&source).map_err(|reason| Error::InvalidAttribute {
                name: name.to_owned(),
                reason,
            })?;
            draft.source = source;
        }
        Kind::SpecVersion => {
            let version = value.into_string(name)?;
            draft.version = match version.as_str() {
                "1.0" => SpecVersion::V10,
                "0.3" => SpecVersion::V03,
                _ => {
                    return Err(Error::InvalidAttribute {
                        name: name.to_owned(),
                        reason: format!("unrecognized event version {version}"),
                    });
                }
            };
        }
        Kind::Type => draft.ty = trimmed(value)?.unwrap_or_default(),
        Kind::DataContentType => draft.datacontenttype = trimmed(value)?,
        Kind::Subject => draft.subject = trimmed(value)?,
        Kind::DataSchema => {
            draft.dataschema = trimmed(value)?;
            if let Some(schema) = &draft.dataschema {
                check_uri_reference(schema).map_err(|reason| Error::InvalidAttribute {
                    name: name.to_owned(),
                    reason,
                })?;
            }
        }
        Kind::Time => {
            let time = match value {
                AttrValue::Time(t) => t,
                AttrValue::Str(s) => parse_rfc3339(&s, Layout::Rfc3339Nano).map_err(|_| Error::InvalidAttribute {
                    name: name.to_owned(),
                    reason: format!("{s:?}"),
                })?,
                other => {
                    return Err(Error::InvalidAttribute {
                        name: name.to_owned(),
                        reason: other.go_repr(),
                    });
                }
            };
            draft.time = (!is_go_zero_time(&time)).then_some(time);
        }
    }
    Ok(())
}

/// Go's `Message.ReadBinary` into `binding.ToEvent`'s builder.
fn decode_binary(msg: pb::CloudEvent, version: SpecVersion) -> Result<Event> {
    let mut draft = EventDraft::new(version.clone());
    if !msg.id.is_empty() {
        set_attribute(&mut draft, Kind::Id, AttrValue::Str(msg.id))?;
    }
    if !msg.source.is_empty() {
        set_attribute(&mut draft, Kind::Source, AttrValue::Str(msg.source))?;
    }
    if !msg.r#type.is_empty() {
        set_attribute(&mut draft, Kind::Type, AttrValue::Str(msg.r#type))?;
    }
    // Go walks a hash map (random order); sorted keys make the rare conflicts (`ce-Foo` and
    // `ce-foo`, `contenttype` and `ce-datacontenttype`) deterministic.
    for (key, value) in msg.attributes {
        // Go converts every value first, so a bad value fails even under an ignored key.
        let value = AttrValue::from_attribute(&key, value)?;
        if let Some(name) = key.strip_prefix(ATTRIBUTE_PREFIX) {
            // The attribute table is the message's version, not the (convertible) context's.
            match Kind::of(&version, &name.to_ascii_lowercase()) {
                Some(kind) => set_attribute(&mut draft, kind, value)?,
                None => draft.set_extension(name, value.into_extension())?,
            }
        } else if key == CONTENT_TYPE_KEY {
            set_attribute(&mut draft, Kind::DataContentType, value)?;
        }
    }
    draft.data = match msg.data {
        Some(PbData::BinaryData(bytes)) if !bytes.is_empty() => Some(bytes),
        _ => None,
    };
    Ok(draft.finish()?)
}

/// Go's `Message.ReadStructured` with the JSON format into `binding.ToEvent`.
fn decode_structured(msg: pb::CloudEvent) -> Result<Event> {
    let bytes = match msg.data {
        Some(PbData::BinaryData(bytes)) => bytes,
        _ => Vec::new(),
    };
    Ok(received::decode_structured_json(&bytes)?)
}

// ---------------------------------------------------------------------------------------------
// Shared checks.

fn validate_event(event: &Event) -> Result<()> {
    Ok(received::validate(&Attributes::of(event))?)
}

/// The extensions of `event` with checked, lower-cased names, sorted by name.
fn checked_extensions(event: &Event) -> Result<BTreeMap<String, &ExtensionValue>> {
    let mut extensions: Vec<(&str, &ExtensionValue)> = event.iter_extensions().collect();
    extensions.sort_by_key(|(name, _)| *name);
    let mut checked = BTreeMap::new();
    for (name, value) in extensions {
        let name = extension_name(name, &event.specversion())?;
        if let ExtensionValue::Integer(i) = value {
            int32_extension(&name, *i)?;
        }
        checked.insert(name, value);
    }
    Ok(checked)
}

/// Go's `types.Validate` of an integer: it must fit in an `int32`.
fn int32_extension(name: &str, value: i64) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::InvalidExtension {
        name: name.to_owned(),
        reason: format!("cannot convert {value} to int32: out of range"),
    })
}

// ---------------------------------------------------------------------------------------------
// Sending helpers.

fn prefixed(name: &str) -> String {
    format!("{ATTRIBUTE_PREFIX}{name}")
}

fn string_value(s: &str) -> pb::CloudEventAttributeValue {
    pb::CloudEventAttributeValue {
        attr: Some(Attr::CeString(s.to_owned())),
    }
}

fn timestamp_value(t: &DateTime<Utc>) -> pb::CloudEventAttributeValue {
    pb::CloudEventAttributeValue {
        attr: Some(Attr::CeTimestamp(time::to_timestamp(t))),
    }
}
