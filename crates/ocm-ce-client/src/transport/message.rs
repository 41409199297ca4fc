//! The CloudEvents SDK rules shared by the MQTT and Kafka bindings: writing an event's
//! attributes as `ce-*` name/value pairs, reading binary- or structured-mode messages (with the
//! receive rules of [`ocm_ce_core::received`]), and their one error type, [`BindingError`], which
//! both bindings re-export.

use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, Data, Event};
use ocm_ce_core::ReceiveError;
use ocm_ce_core::extensions::{format_time, parse_time};
use ocm_ce_core::go_time::is_go_zero_time;
use ocm_ce_core::received::{self, Attributes, EventDraft, check_uri_reference, extension_name};

/// Prefix of the attribute properties / headers.
pub(crate) const PREFIX: &str = "ce-";

/// Content type of a structured-mode message.
pub(crate) const STRUCTURED_JSON: &str = "application/cloudevents+json";

/// Why an event could not be written to or read from an MQTT message or a Kafka record (both
/// bindings read and write CloudEvents the same way).
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
    /// An attribute property / header with an unusable value (Go: `invalid value for time:
    /// "…"`).
    #[error("invalid value for {name}: {value:?}")]
    InvalidAttribute {
        /// The attribute.
        name: &'static str,
        /// The value received.
        value: String,
    },
    /// An extension name CloudEvents does not allow (ASCII letters and digits, not a context
    /// attribute).
    #[error("invalid extension name {name:?}: {reason}")]
    ExtensionName {
        /// The name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
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

impl From<ReceiveError> for BindingError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::ExtensionName { name, reason } => Self::ExtensionName { name, reason },
            ReceiveError::Invalid { reason } => Self::Invalid { reason },
            ReceiveError::Structured { reason } => Self::Structured { reason },
            // an out-of-range number in a structured payload
            other => Self::Structured {
                reason: other.to_string(),
            },
        }
    }
}

/// Validates `event` and writes its attributes for binary mode, names without [`PREFIX`], in the
/// order `id`, `source`, `specversion`, `type`, (`dataschema`/`schemaurl`, `subject` when set),
/// `time`, then the extensions sorted by name, values in canonical string form (integers only
/// in the int32 range, as Go).
pub(crate) fn binary_attributes(event: &Event) -> Result<Vec<(String, String)>, BindingError> {
    received::validate(&Attributes::of(event))?;
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
        let name = extension_name(name, &version)?;
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
        attrs.push((name, value));
    }
    Ok(attrs)
}

/// The event's data as bytes (`None`: no data). Go's encoder writes `<`, `>`, `&` escaped in
/// JSON data; codecs needing exact bytes use Binary.
pub(crate) fn data_bytes(event: &Event) -> Result<Option<Vec<u8>>, BindingError> {
    Ok(match event.data() {
        None => None,
        Some(Data::Binary(b)) => Some(b.clone()),
        Some(Data::String(s)) => Some(s.clone().into_bytes()),
        Some(Data::Json(v)) => Some(ocm_ce_core::go_json::to_vec(v).map_err(|e| BindingError::Invalid {
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
) -> Result<Event, BindingError> {
    let content_type = content_type.filter(|c| !c.is_empty());
    if let Some(ct) = content_type {
        let media_type = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media_type == STRUCTURED_JSON {
            return Ok(received::decode_structured_json(data.unwrap_or_default())?);
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
    let mut draft = EventDraft::new(version);
    for (key, value) in props {
        let key = key.to_lowercase();
        if let Some(name) = key.strip_prefix(PREFIX) {
            set_attribute(&mut draft, name, value)?;
        }
    }
    if let Some(ct) = content_type {
        draft.datacontenttype = Some(ct.trim().to_owned()).filter(|c| !c.is_empty());
    }
    draft.data = data.filter(|d| !d.is_empty()).map(<[u8]>::to_vec);
    Ok(draft.finish()?)
}

/// Sets one `ce-<name>` property (name already lower-cased, prefix removed) as Go's binary
/// reader does: known attributes by name, anything else as a string extension.
fn set_attribute(draft: &mut EventDraft, name: &str, value: &str) -> Result<(), BindingError> {
    let trimmed = || Some(value.trim().to_owned()).filter(|v| !v.is_empty());
    let v03 = draft.version == SpecVersion::V03;
    match name {
        "id" => {
            draft.id = trimmed().ok_or_else(|| BindingError::InvalidAttribute {
                name: "id",
                value: value.to_owned(),
            })?;
        }
        "source" => {
            // Go's `SetSource` parses it as a URI reference.
            check_uri_reference(value).map_err(|_| BindingError::InvalidAttribute {
                name: "source",
                value: value.to_owned(),
            })?;
            value.clone_into(&mut draft.source);
        }
        "specversion" => {}
        "type" => draft.ty = trimmed().unwrap_or_default(),
        "datacontenttype" => draft.datacontenttype = trimmed(),
        "subject" => draft.subject = trimmed(),
        "dataschema" if !v03 => draft.dataschema = trimmed(),
        "schemaurl" if v03 => draft.dataschema = trimmed(),
        "time" => {
            let time = parse_time(value).map_err(|_| BindingError::InvalidAttribute {
                name: "time",
                value: value.to_owned(),
            })?;
            draft.time = (!is_go_zero_time(&time)).then_some(time);
        }
        _ => draft.set_extension(name, value.to_owned())?,
    }
    Ok(())
}

/// The event the binding tests of both transports start from: the required attributes, a time,
/// an integer `resourceversion` and a `clustername`; each test module adds its own extensions
/// and data.
#[cfg(test)]
pub(crate) fn test_event_builder() -> cloudevents::EventBuilderV10 {
    use chrono::{TimeZone, Utc};
    use cloudevents::EventBuilder;

    cloudevents::EventBuilderV10::new()
        .id("1")
        .source("source1")
        .ty("a.b.c.spec.create_request")
        .time(Utc.with_ymd_and_hms(2024, 10, 1, 12, 0, 0).unwrap())
        .extension("resourceversion", 3_i64)
        .extension("clustername", "cluster1")
}
