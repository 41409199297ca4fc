//! CloudEvents extensions of the OCM protocol: names, typed accessors with the Go SDK's lenient
//! conversions, canonical time formatting and the event builder.

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{Event, EventBuilder as _, EventBuilderV10};

use crate::error::ExtensionError;
use crate::event_type::EventType;
use crate::go_time::{Layout, Precision, format_rfc3339, parse_rfc3339};

/// `resourceid`: the UID of the resource an event is about (string).
pub const RESOURCE_ID: &str = "resourceid";
/// `resourceversion`: the resource version (CloudEvents Integer, int32 on the wire).
pub const RESOURCE_VERSION: &str = "resourceversion";
/// `sequenceid`: snowflake id of an agent status event (string).
pub const SEQUENCE_ID: &str = "sequenceid";
/// `deletiontimestamp`: set when the resource is being deleted (CloudEvents Timestamp).
pub const DELETION_TIMESTAMP: &str = "deletiontimestamp";
/// `clustername`: the managed cluster an event is about (string, always present).
pub const CLUSTER_NAME: &str = "clustername";
/// `originalsource`: the source a status event is for (string, always present).
pub const ORIGINAL_SOURCE: &str = "originalsource";
/// `metadata`: the ObjectMeta JSON of a work (source ManifestBundle codec only).
pub const METADATA: &str = "metadata";
/// `statushash`: the status hash of the resource a status event carries (string; sdk-go v0.16
/// and later stamp it on every status event, with their status hash function).
pub const STATUS_HASH: &str = "statushash";

/// Extensions whose wire type is a CloudEvents Timestamp.
///
/// `cloudevents::Event` has no timestamp extension value, so these are held as RFC 3339 strings
/// in memory; typed bindings (gRPC) send them as timestamps.
pub const TIMESTAMP_EXTENSIONS: &[&str] = &[DELETION_TIMESTAMP];

/// Formats a time the way Go's CloudEvents SDK writes timestamps: UTC RFC 3339 with up to nine
/// fractional digits, trailing zeros removed (`2024-10-01T12:00:00Z`, `…:00.5Z`).
pub fn format_time(t: &DateTime<Utc>) -> String {
    format_rfc3339(t, Precision::Nanos)
}

/// Parses a CloudEvents timestamp string as Go's `types.ParseTime`
/// (`time.Parse(time.RFC3339Nano, s)`) does.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, ExtensionError> {
    parse_rfc3339(s, Layout::Rfc3339Nano).map_err(|_| ExtensionError::Time { value: s.to_owned() })
}

fn go_print(v: &ExtensionValue) -> String {
    match v {
        ExtensionValue::String(s) => s.clone(),
        ExtensionValue::Boolean(b) => b.to_string(),
        ExtensionValue::Integer(i) => i.to_string(),
    }
}

/// Converts an extension value to a string: only strings convert (Go `types.ToString`).
pub fn to_string(v: Option<&ExtensionValue>) -> Result<String, ExtensionError> {
    match v {
        None => Err(ExtensionError::Missing),
        Some(ExtensionValue::String(s)) => Ok(s.clone()),
        Some(other) => Err(ExtensionError::WrongType {
            value: go_print(other),
            target: "string",
        }),
    }
}

/// Converts an extension value to an int32 (Go `types.ToInteger`): integers in range, or strings
/// holding a Go float literal, truncated toward zero.
pub fn to_int32(v: Option<&ExtensionValue>) -> Result<i32, ExtensionError> {
    match v {
        None => Err(ExtensionError::Missing),
        Some(ExtensionValue::Integer(i)) => {
            i32::try_from(*i).map_err(|_| ExtensionError::OutOfRange { value: i.to_string() })
        }
        Some(ExtensionValue::String(s)) => {
            let f = parse_go_float(s).ok_or_else(|| ExtensionError::FloatSyntax { value: s.clone() })?;
            if f.is_nan() || f < f64::from(i32::MIN) || f > f64::from(i32::MAX) {
                return Err(ExtensionError::OutOfRange {
                    value: format!("{s:?}"),
                });
            }
            // In range and not NaN: truncation toward zero is exact for int32.
            #[allow(clippy::cast_possible_truncation)]
            Ok(f.trunc() as i32)
        }
        Some(other) => Err(ExtensionError::WrongType {
            value: go_print(other),
            target: "int32",
        }),
    }
}

/// Converts an extension value to a time (Go `types.ToTime`): RFC 3339 strings only.
pub fn to_time(v: Option<&ExtensionValue>) -> Result<DateTime<Utc>, ExtensionError> {
    match v {
        None => Err(ExtensionError::Missing),
        Some(ExtensionValue::String(s)) => parse_time(s),
        Some(other) => Err(ExtensionError::WrongType {
            value: go_print(other),
            target: "time.Time",
        }),
    }
}

/// Parses a string with Go's `strconv.ParseFloat(s, 64)` syntax: optional sign, decimal digits
/// with optional fraction and exponent, hexadecimal floats (`0x1p4`, exponent required),
/// underscores between digits, `Inf`/`Infinity`/`NaN` (any case). `None` means invalid syntax.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let value = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if lower.starts_with("0x") => parse_hex_float(&lower[2..])?,
        _ => parse_dec_float(&lower)?,
    };
    Some(if neg { -value } else { value })
}

/// Removes `_` separators, which Go allows only between digits (or after a base prefix).
fn strip_underscores(s: &str, hex: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let is_digit = |b: u8| if hex { b.is_ascii_hexdigit() } else { b.is_ascii_digit() };
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let before_ok = if i == 0 { hex } else { is_digit(bytes[i - 1]) };
            let after_ok = bytes.get(i + 1).is_some_and(|&n| is_digit(n));
            if !before_ok || !after_ok {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

fn parse_dec_float(s: &str) -> Option<f64> {
    let s = strip_underscores(s, false)?;
    let (mantissa, exp) = match s.find('e') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s.as_str(), None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    s.parse().ok()
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let s = strip_underscores(s, true)?;
    let (mantissa, exp) = s.split_once('p')?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int.chars() {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        value += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let e: i32 = exp
        .parse()
        .unwrap_or(if exp.starts_with('-') { i32::MIN } else { i32::MAX });
    Some(value * 2f64.powi(e))
}

/// Typed access to the OCM extensions of a [`cloudevents::Event`].
pub trait EventExt {
    /// The raw extension value.
    fn extension_value(&self, name: &str) -> Option<&ExtensionValue>;

    /// `resourceid` as a string.
    fn resource_id(&self) -> Result<String, ExtensionError> {
        to_string(self.extension_value(RESOURCE_ID))
    }
    /// `resourceversion` as an int32 (numeric strings accepted).
    fn resource_version(&self) -> Result<i32, ExtensionError> {
        to_int32(self.extension_value(RESOURCE_VERSION))
    }
    /// `sequenceid` as a string.
    fn sequence_id(&self) -> Result<String, ExtensionError> {
        to_string(self.extension_value(SEQUENCE_ID))
    }
    /// `clustername` as a string.
    fn cluster_name(&self) -> Result<String, ExtensionError> {
        to_string(self.extension_value(CLUSTER_NAME))
    }
    /// `originalsource` as a string.
    fn original_source(&self) -> Result<String, ExtensionError> {
        to_string(self.extension_value(ORIGINAL_SOURCE))
    }
    /// `deletiontimestamp` as a time; `Ok(None)` when absent.
    fn deletion_timestamp(&self) -> Result<Option<DateTime<Utc>>, ExtensionError> {
        match self.extension_value(DELETION_TIMESTAMP) {
            None => Ok(None),
            v => to_time(v).map(Some),
        }
    }
}

impl EventExt for Event {
    fn extension_value(&self, name: &str) -> Option<&ExtensionValue> {
        self.extension(name)
    }
}

/// Builds OCM events: fresh UUID v4 id, current time, `clustername` and `originalsource` always
/// present (possibly empty), optional `resourceid`, `resourceversion`, `sequenceid` and
/// `deletiontimestamp` (Go `types.EventBuilder`).
#[derive(Debug, Clone)]
pub struct EventBuilder {
    source: String,
    event_type: EventType,
    resource_id: Option<String>,
    resource_version: Option<i64>,
    sequence_id: Option<String>,
    cluster_name: String,
    original_source: String,
    deletion_timestamp: Option<DateTime<Utc>>,
}

impl EventBuilder {
    /// Starts an event from `source` (source id or agent id) of type `event_type`.
    pub fn new(source: impl Into<String>, event_type: EventType) -> Self {
        Self {
            source: source.into(),
            event_type,
            resource_id: None,
            resource_version: None,
            sequence_id: None,
            cluster_name: String::new(),
            original_source: String::new(),
            deletion_timestamp: None,
        }
    }

    /// Sets `resourceid` (omitted when empty).
    #[must_use]
    pub fn resource_id(mut self, id: impl Into<String>) -> Self {
        self.resource_id = Some(id.into()).filter(|s: &String| !s.is_empty());
        self
    }
    /// Sets `resourceversion`; [`build`](Self::build) fails beyond the int32 range, as Go's sender.
    #[must_use]
    pub fn resource_version(mut self, version: i64) -> Self {
        self.resource_version = Some(version);
        self
    }
    /// Sets `sequenceid` (omitted when empty).
    #[must_use]
    pub fn sequence_id(mut self, id: impl Into<String>) -> Self {
        self.sequence_id = Some(id.into()).filter(|s: &String| !s.is_empty());
        self
    }
    /// Sets `clustername`.
    #[must_use]
    pub fn cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster_name = name.into();
        self
    }
    /// Sets `originalsource`.
    #[must_use]
    pub fn original_source(mut self, source: impl Into<String>) -> Self {
        self.original_source = source.into();
        self
    }
    /// Sets `deletiontimestamp`.
    #[must_use]
    pub fn deletion_timestamp(mut self, at: DateTime<Utc>) -> Self {
        self.deletion_timestamp = Some(at);
        self
    }

    /// Builds the event (no data).
    pub fn build(self) -> Result<Event, ExtensionError> {
        let mut b = EventBuilderV10::new()
            .id(uuid::Uuid::new_v4().to_string())
            .ty(self.event_type.to_string())
            .source(self.source)
            .time(Utc::now())
            .extension(CLUSTER_NAME, self.cluster_name)
            .extension(ORIGINAL_SOURCE, self.original_source);
        if let Some(id) = self.resource_id {
            b = b.extension(RESOURCE_ID, id);
        }
        if let Some(v) = self.resource_version {
            if i32::try_from(v).is_err() {
                return Err(ExtensionError::Invalid {
                    name: RESOURCE_VERSION,
                    reason: Box::new(ExtensionError::OutOfRange { value: v.to_string() }),
                });
            }
            b = b.extension(RESOURCE_VERSION, v);
        }
        if let Some(id) = self.sequence_id {
            b = b.extension(SEQUENCE_ID, id);
        }
        if let Some(at) = self.deletion_timestamp {
            b = b.extension(DELETION_TIMESTAMP, format_time(&at));
        }
        // Every required attribute (id, source, type, spec version) is set above.
        b.build().map_err(|e| ExtensionError::WrongType {
            value: e.to_string(),
            target: "event",
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::event_type::{DataType, SubResource};

    #[test]
    fn times_format_like_go_with_trailing_zeros_trimmed() {
        let t = Utc.with_ymd_and_hms(2024, 10, 1, 12, 0, 0).unwrap();
        assert_eq!(format_time(&t), "2024-10-01T12:00:00Z");
        let t = t + chrono::Duration::nanoseconds(500_000_000);
        assert_eq!(format_time(&t), "2024-10-01T12:00:00.5Z");
        let t = t + chrono::Duration::nanoseconds(123_456_789 - 500_000_000);
        assert_eq!(format_time(&t), "2024-10-01T12:00:00.123456789Z");
    }

    #[test]
    fn resource_versions_convert_leniently_like_go() {
        let s = |v: &str| to_int32(Some(&ExtensionValue::String(v.into())));
        assert_eq!(s("13"), Ok(13));
        assert_eq!(s("1e3"), Ok(1000));
        assert_eq!(s("1.9"), Ok(1));
        assert_eq!(s("-1.9"), Ok(-1));
        assert_eq!(s("1_000"), Ok(1000));
        assert_eq!(s("0x1p4"), Ok(16));
        assert_eq!(s("+7"), Ok(7));
        assert_eq!(s("5e-1"), Ok(0));
        for bad in ["0x10", " 13", "", "abc", "1__0", "_1", "1_"] {
            assert_eq!(
                s(bad).unwrap_err().to_string(),
                format!("strconv.ParseFloat: parsing {bad:?}: invalid syntax"),
                "{bad}"
            );
        }
        for big in ["Inf", "2147483647.5", "2147483648"] {
            assert_eq!(
                s(big).unwrap_err().to_string(),
                format!("cannot convert {big:?} to int32: out of range")
            );
        }
        assert_eq!(
            to_int32(None).unwrap_err().to_string(),
            "invalid CloudEvents value: <nil>"
        );
        assert_eq!(
            to_int32(Some(&ExtensionValue::Boolean(true))).unwrap_err().to_string(),
            "cannot convert true to int32"
        );
        assert_eq!(
            to_string(Some(&ExtensionValue::Integer(5))).unwrap_err().to_string(),
            "cannot convert 5 to string"
        );
        assert_eq!(
            to_time(Some(&ExtensionValue::Integer(1_727_784_000)))
                .unwrap_err()
                .to_string(),
            "cannot convert 1727784000 to time.Time"
        );
    }

    #[test]
    fn built_events_always_carry_clustername_and_originalsource() {
        let ty = EventType::new(DataType::new("g", "v", "r"), SubResource::Spec, "create_request");
        let e = EventBuilder::new("source1", ty)
            .resource_id("uid")
            .resource_version(3)
            .build()
            .unwrap();
        assert_eq!(e.cluster_name().unwrap(), "");
        assert_eq!(e.original_source().unwrap(), "");
        assert_eq!(e.resource_version().unwrap(), 3);
        assert_eq!(e.resource_id().unwrap(), "uid");
        assert!(e.deletion_timestamp().unwrap().is_none());
        assert!(e.extension(SEQUENCE_ID).is_none());
    }

    #[test]
    fn a_resource_version_beyond_int32_cannot_be_built() {
        let ty = EventType::new(DataType::new("g", "v", "r"), SubResource::Spec, "resync_response");
        let err = EventBuilder::new("source1", ty)
            .resource_version(3_000_000_000)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "extension:resourceversion: cannot convert 3000000000 to int32: out of range"
        );
    }
}
