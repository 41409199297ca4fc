//! The CloudEvents MQTT 5 binding of the Go SDK (`protocol/mqtt_paho/v2`).
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

use cloudevents::{AttributesReader, Event};

use crate::transport::message;

/// Prefix of the attribute user properties.
pub const PREFIX: &str = message::PREFIX;

/// Content type of a structured-mode message.
pub const STRUCTURED_JSON: &str = message::STRUCTURED_JSON;

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

pub use crate::transport::message::BindingError;

/// Writes `event` in binary mode.
#[doc(alias = "WritePubMessage")]
pub fn encode(event: &Event) -> Result<MqttMessage, BindingError> {
    let user_properties = message::binary_attributes(event)?
        .into_iter()
        .map(|(name, value)| (format!("{PREFIX}{name}"), value))
        .collect();
    let payload = message::data_bytes(event)?.unwrap_or_default();
    Ok(MqttMessage {
        content_type: event.datacontenttype().map(str::to_owned),
        user_properties,
        payload,
    })
}

/// Reads a received PUBLISH (Go `NewMessage` + `binding.ToEvent` + the receiver's validation).
pub fn decode(
    content_type: Option<&str>,
    user_properties: &[(String, String)],
    payload: &[u8],
) -> Result<Event, BindingError> {
    message::decode(content_type, user_properties, Some(payload))
}

#[cfg(test)]
mod tests {
    use cloudevents::event::ExtensionValue;
    use cloudevents::{AttributesWriter, Data, EventBuilder};

    use super::*;
    use crate::transport::message::test_event_builder;

    fn event() -> Event {
        let mut e = test_event_builder().extension("flag", true).build().unwrap();
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
