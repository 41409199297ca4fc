//! The CloudEvents Kafka binding of the Go SDK (`protocol/kafka_confluent/v2`).
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

use cloudevents::{AttributesReader, Event};

use crate::transport::message;

/// Prefix of the attribute headers.
pub const PREFIX: &str = message::PREFIX;
/// The header holding `datacontenttype` (binary) or the format (structured).
pub const CONTENT_TYPE: &str = "content-type";
/// Content type of a structured-mode message.
pub const STRUCTURED_JSON: &str = message::STRUCTURED_JSON;

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

pub use crate::transport::message::BindingError;

/// Writes `event` in binary mode.
#[doc(alias = "WriteProducerMessage")]
pub fn encode(event: &Event) -> Result<KafkaRecord, BindingError> {
    let mut headers: Vec<(String, Vec<u8>)> = message::binary_attributes(event)?
        .into_iter()
        .map(|(name, value)| (format!("{PREFIX}{name}"), value.into_bytes()))
        .collect();
    if let Some(ct) = event.datacontenttype() {
        // Right after `ce-id`, `ce-source`, `ce-specversion` and `ce-type`, as Go.
        headers.insert(4, (CONTENT_TYPE.to_owned(), ct.as_bytes().to_vec()));
    }
    // Go sends no value for empty data.
    let value = message::data_bytes(event)?.filter(|v| !v.is_empty());
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
    let content_type = props.iter().find(|(n, _)| n == CONTENT_TYPE).map(|(_, v)| v.as_str());
    let mut event = message::decode(content_type, &props, value)?;
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

#[cfg(test)]
mod tests {
    use cloudevents::event::ExtensionValue;
    use cloudevents::{Data, EventBuilder};

    use super::*;
    use crate::transport::message::test_event_builder;

    fn event() -> Event {
        let mut e = test_event_builder()
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
