//! The binding's unit tests: Go's `grpc/protocol/message_test.go` / `write_message_test.go` as
//! sentences, plus the mapping rules one by one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::message::Encoding;
use cloudevents::{AttributesReader, AttributesWriter, Data, Event, EventBuilder};
use cloudevents::{EventBuilderV03, EventBuilderV10};
use prost::Message as _;
use serde_json::json;

use super::{decode, encode, encode_publish_request, encode_structured, encoding};
use crate::Error;
use crate::pb::cloud_event::Data as PbData;
use crate::pb::cloud_event_attribute_value::Attr;
use crate::pb::{self, CloudEvent, CloudEventAttributeValue, Timestamp};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn value(attr: Attr) -> CloudEventAttributeValue {
    CloudEventAttributeValue { attr: Some(attr) }
}

fn string(s: &str) -> CloudEventAttributeValue {
    value(Attr::CeString(s.to_owned()))
}

/// A binary-mode message like the ones Go sends, with `extra` attributes.
fn binary_message(extra: &[(&str, CloudEventAttributeValue)]) -> CloudEvent {
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "ce-time".to_owned(),
        value(Attr::CeTimestamp(Timestamp {
            seconds: 1_727_784_000,
            nanos: 500_000_000,
        })),
    );
    for (key, value) in extra {
        attributes.insert((*key).to_owned(), value.clone());
    }
    CloudEvent {
        id: "0f8b7a2c-3d4e-4f50-8a1b-2c3d4e5f6a7b".to_owned(),
        source: "source1".to_owned(),
        spec_version: "1.0".to_owned(),
        r#type: "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request".to_owned(),
        attributes,
        data: None,
    }
}

fn structured_message(content_type: &str, json: &serde_json::Value) -> CloudEvent {
    let mut attributes = BTreeMap::new();
    attributes.insert("contenttype".to_owned(), string(content_type));
    CloudEvent {
        attributes,
        data: Some(PbData::BinaryData(serde_json::to_vec(json).unwrap())),
        ..CloudEvent::default()
    }
}

/// The CloudEvents SDK's standard test events (sdk-go `test.Events()`), with extensions
/// converted to strings as `TestEncodeMessage` does.
fn standard_events() -> Vec<Event> {
    let time = utc("2020-03-21T12:34:56.780Z");
    // The attributes the v1.0 and v0.3 events share; v0.3 ones are converted from v1.0 ones
    // (the SDK's conversion makes `dataschema` the v0.3 `schemaurl`).
    let full = EventBuilderV10::new()
        .id("full-event")
        .source("http://example.com/source")
        .ty("com.example.FullEvent")
        .subject("topic")
        .time(time)
        .data_with_schema("text/json", "http://example.com/schema", b"\"hello\"".to_vec())
        .extension("exbool", "true")
        .extension("exint", "42")
        .extension("exstring", "exstring")
        .build()
        .unwrap();
    let full_v1 = EventBuilderV10::from(full.clone())
        .extension("exbinary", "AAECAw==")
        .extension("exurl", "http://example.com/source")
        .extension("extime", "2020-03-21T12:34:56.78Z")
        .build()
        .unwrap();
    // Go's MinEvent has no time; here it has one, see
    // `an_event_without_any_attribute_is_refused_because_receivers_drop_it`.
    let min_v1 = EventBuilderV10::new()
        .id("min-event")
        .source("http://example.com/source")
        .ty("com.example.MinEvent")
        .time(time)
        .build()
        .unwrap();
    let full_v03 = EventBuilderV03::from(full).build().unwrap();
    let min_v03 = EventBuilderV03::from(min_v1.clone()).build().unwrap();
    vec![full_v1, min_v1, full_v03, min_v03]
}

// --- TestReadStructured ----------------------------------------------------------------------

#[test]
fn an_empty_message_is_not_recognised() {
    let msg = CloudEvent::default();
    assert_eq!(encoding(&msg), Encoding::UNKNOWN);
    assert!(matches!(decode(msg), Err(Error::UnknownEncoding { .. })));
}

#[test]
fn an_event_without_a_type_says_so() {
    let msg = CloudEvent {
        id: "1".into(),
        source: "s".into(),
        spec_version: "1.0".into(),
        ..CloudEvent::default()
    };
    let err = decode(msg).unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown message encoding: the event has no type (and no other attribute)"
    );
}

#[test]
fn a_cloudevents_json_content_type_selects_structured_mode() {
    let json = json!({
        "specversion": "1.0",
        "id": "ABC-123",
        "source": "test-source",
        "type": "structured.test",
        "datacontenttype": "application/json",
        "clustername": "cluster1",
        "resourceversion": 3,
        "data": {"hello": "world"},
    });
    let msg = structured_message("application/cloudevents+json", &json);
    assert_eq!(encoding(&msg), Encoding::STRUCTURED);

    let event = decode(msg).unwrap();
    assert_eq!(event.id(), "ABC-123");
    assert_eq!(event.ty(), "structured.test");
    assert_eq!(event.extension("resourceversion"), Some(&ExtensionValue::Integer(3)));
    assert_eq!(event.data(), Some(&Data::Json(json!({"hello": "world"}))));
}

#[test]
fn structured_mode_ignores_media_type_parameters_and_case_after_the_prefix() {
    let json = json!({"specversion": "1.0", "id": "a", "source": "s", "type": "t"});
    let msg = structured_message("application/cloudevents+JSON; charset=utf-8", &json);
    assert_eq!(encoding(&msg), Encoding::STRUCTURED);
    assert!(decode(msg).is_ok());
}

#[test]
fn a_content_type_only_go_would_not_call_structured_falls_back_to_binary_mode() {
    // Go's prefix test is case sensitive: this is binary mode with a (valid) content type.
    let msg = binary_message(&[("contenttype", string("Application/CloudEvents+json"))]);
    assert_eq!(encoding(&msg), Encoding::BINARY);
    let event = decode(msg).unwrap();
    assert_eq!(event.datacontenttype(), Some("Application/CloudEvents+json"));
}

#[test]
fn an_unknown_cloudevents_format_is_not_recognised_even_with_a_spec_version() {
    let mut msg = binary_message(&[]);
    msg.attributes
        .insert("contenttype".to_owned(), string("application/cloudevents+xml"));
    assert_eq!(encoding(&msg), Encoding::UNKNOWN);
    assert!(matches!(decode(msg), Err(Error::UnknownEncoding { .. })));
}

#[test]
fn the_batch_format_is_refused() {
    let msg = structured_message("application/cloudevents-batch+json", &json!([]));
    assert_eq!(encoding(&msg), Encoding::STRUCTURED);
    assert!(matches!(
        decode(msg),
        Err(Error::UnsupportedFormat { media_type }) if media_type == "application/cloudevents-batch+json"
    ));
}

#[test]
fn a_structured_message_without_a_json_event_fails() {
    let mut msg = structured_message("application/cloudevents+json", &json!({}));
    msg.data = None;
    assert!(matches!(decode(msg), Err(Error::InvalidStructuredEvent { .. })));
    let msg = structured_message("application/cloudevents+json", &json!({"specversion": "1.0"}));
    assert!(matches!(decode(msg), Err(Error::InvalidStructuredEvent { .. })));
}

#[test]
fn a_structured_number_extension_is_truncated_to_int32_like_go() {
    let json = json!({"specversion": "1.0", "id": "a", "source": "s", "type": "t",
        "exint": 1.9, "ExNeg": -2.5, "exnull": null});
    let event = decode(structured_message("application/cloudevents+json", &json)).unwrap();
    assert_eq!(event.extension("exint"), Some(&ExtensionValue::Integer(1)));
    assert_eq!(event.extension("exneg"), Some(&ExtensionValue::Integer(-2)));
    assert_eq!(event.extension("exnull"), None);

    let json = json!({"specversion": "1.0", "id": "a", "source": "s", "type": "t",
        "resourceversion": 2_147_483_648_i64});
    assert_eq!(
        decode(structured_message("application/cloudevents+json", &json))
            .unwrap_err()
            .to_string(),
        "extension:resourceversion: cannot convert 2147483648 to int32: out of range"
    );
}

#[test]
fn a_structured_event_must_pass_validation() {
    let json = json!({"specversion": "1.0", "id": " ", "source": "s", "type": "t"});
    assert_eq!(
        decode(structured_message("application/cloudevents+json", &json))
            .unwrap_err()
            .to_string(),
        "invalid event: id: MUST be a non-empty string"
    );
}

// --- TestReadBinary --------------------------------------------------------------------------

#[test]
fn a_binary_message_with_fields_and_binary_data_reads() {
    let mut attributes = BTreeMap::new();
    // Go's test uses an empty (non-nil) map, which the wire cannot carry: one ignored key.
    attributes.insert("x-ignored".to_owned(), string("ignored"));
    let msg = CloudEvent {
        id: "ABC-123".to_owned(),
        source: "test-source".to_owned(),
        spec_version: "1.0".to_owned(),
        r#type: "binary.test".to_owned(),
        attributes,
        data: Some(PbData::BinaryData(b"{hello:world}".to_vec())),
    };
    assert_eq!(encoding(&msg), Encoding::BINARY);

    let event = decode(msg).unwrap();
    assert_eq!(event.id(), "ABC-123");
    assert_eq!(event.source(), "test-source");
    assert_eq!(event.ty(), "binary.test");
    assert_eq!(event.time(), None);
    assert_eq!(event.iter_extensions().count(), 0);
    assert_eq!(event.data(), Some(&Data::Binary(b"{hello:world}".to_vec())));
}

#[test]
fn a_binary_message_without_attributes_is_dropped_like_go_drops_it() {
    let mut msg = binary_message(&[]);
    msg.attributes.clear();
    assert_eq!(encoding(&msg), Encoding::UNKNOWN);
    assert!(matches!(decode(msg), Err(Error::UnknownEncoding { .. })));
}

#[test]
fn an_unknown_or_missing_spec_version_is_not_recognised() {
    for version in ["", "2.0", "1"] {
        let mut msg = binary_message(&[]);
        msg.spec_version = version.to_owned();
        assert_eq!(encoding(&msg), Encoding::UNKNOWN, "{version:?}");
        assert!(matches!(decode(msg), Err(Error::UnknownEncoding { .. })), "{version:?}");
    }
}

// --- TestEncodeMessage -----------------------------------------------------------------------

#[test]
fn the_standard_events_survive_a_binary_round_trip() {
    for event in standard_events() {
        let msg = encode(&event).unwrap();
        assert_eq!(encoding(&msg), Encoding::BINARY);
        let bytes = msg.encode_to_vec();
        let back = decode(CloudEvent::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn the_standard_events_survive_a_structured_round_trip() {
    for mut event in standard_events() {
        // JSON data comes back as JSON from the structured format.
        if event.data().is_some() {
            let content_type = event.datacontenttype().unwrap().to_owned();
            event.set_data(content_type, json!("hello"));
        }
        let msg = encode_structured(&event).unwrap();
        assert_eq!(encoding(&msg), Encoding::STRUCTURED);
        assert_eq!(msg.id, "", "Go's structured writer leaves the fields empty");
        assert_eq!(decode(msg).unwrap(), event);
    }
}

#[test]
fn an_event_without_any_attribute_is_refused_because_receivers_drop_it() {
    // Go's writer would send it (its in-memory test passes), but on the wire the empty
    // attribute map is indistinguishable from none, and Go's `NewMessage` drops the message.
    let event = EventBuilderV10::new()
        .id("min-event")
        .source("http://example.com/source")
        .ty("com.example.MinEvent")
        .build()
        .unwrap();
    assert_eq!(encode(&event), Err(Error::NoAttributes));
    // Structured mode always has `contenttype`.
    assert_eq!(decode(encode_structured(&event).unwrap()).unwrap(), event);
}

#[test]
fn typed_extensions_keep_their_type_through_the_wire() {
    let event = EventBuilderV10::new()
        .id("a")
        .source("s")
        .ty("t")
        .extension("exbool", true)
        .extension("exint", 42_i64)
        .extension("exstring", "")
        .build()
        .unwrap();
    let msg = encode(&event).unwrap();
    assert_eq!(msg.attributes["ce-exbool"], value(Attr::CeBoolean(true)));
    assert_eq!(msg.attributes["ce-exint"], value(Attr::CeInteger(42)));
    assert_eq!(msg.attributes["ce-exstring"], string(""));
    assert_eq!(decode(msg).unwrap(), event);
}

// --- Sending ---------------------------------------------------------------------------------

fn ocm_event() -> Event {
    EventBuilderV10::new()
        .id("0f8b7a2c-3d4e-4f50-8a1b-2c3d4e5f6a7b")
        .source("source1")
        .ty("io.open-cluster-management.works.v1alpha1.manifestbundles.spec.delete_request")
        .time(utc("2024-10-01T12:00:00.5Z"))
        .extension("clustername", "cluster1")
        .extension("originalsource", "")
        .extension("resourceversion", 7_i64)
        .extension("deletiontimestamp", "2024-10-01T14:00:00.120+02:00")
        .build()
        .unwrap()
}

#[test]
fn the_fields_and_attributes_follow_gos_keys() {
    let mut event = ocm_event();
    event.set_data("application/json", json!({"a": 1}));
    let msg = encode(&event).unwrap();
    assert_eq!(msg.spec_version, "1.0");
    assert_eq!(msg.id, "0f8b7a2c-3d4e-4f50-8a1b-2c3d4e5f6a7b");
    assert_eq!(msg.source, "source1");
    let keys: Vec<&str> = msg.attributes.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ce-clustername",
            "ce-deletiontimestamp",
            "ce-originalsource",
            "ce-resourceversion",
            "ce-time",
            "contenttype",
        ]
    );
    assert_eq!(msg.attributes["contenttype"], string("application/json"));
    assert_eq!(
        msg.attributes["ce-time"],
        value(Attr::CeTimestamp(Timestamp {
            seconds: 1_727_784_000,
            nanos: 500_000_000
        }))
    );
    assert_eq!(msg.data, Some(PbData::BinaryData(b"{\"a\":1}".to_vec())));
}

#[test]
fn deletiontimestamp_is_sent_as_a_timestamp_and_read_back_in_canonical_form() {
    let msg = encode(&ocm_event()).unwrap();
    assert_eq!(
        msg.attributes["ce-deletiontimestamp"],
        value(Attr::CeTimestamp(Timestamp {
            seconds: 1_727_784_000,
            nanos: 120_000_000
        }))
    );
    let event = decode(msg).unwrap();
    assert_eq!(
        event.extension("deletiontimestamp"),
        Some(&ExtensionValue::String("2024-10-01T12:00:00.12Z".to_owned()))
    );
}

#[test]
fn an_unparsable_deletiontimestamp_is_sent_as_a_string() {
    let mut event = ocm_event();
    event.set_extension("deletiontimestamp", "yesterday");
    let msg = encode(&event).unwrap();
    assert_eq!(msg.attributes["ce-deletiontimestamp"], string("yesterday"));
}

#[test]
fn an_extension_beyond_int32_is_refused_with_gos_message() {
    let mut event = ocm_event();
    event.set_extension("resourceversion", 2_147_483_648_i64);
    let err = encode(&event).unwrap_err();
    assert_eq!(
        err.to_string(),
        "extension:resourceversion: cannot convert 2147483648 to int32: out of range"
    );
    assert!(encode_publish_request(&event).is_err());
    event.set_extension("resourceversion", i64::from(i32::MIN));
    assert!(encode(&event).is_ok());
}

#[test]
fn extension_names_go_would_refuse_are_refused() {
    for name in ["resource_id", "", "time", "dataschema", "ümlaut"] {
        let mut event = ocm_event();
        event.set_extension(name, "x");
        assert!(
            matches!(encode(&event), Err(Error::InvalidExtensionName { .. })),
            "{name:?}"
        );
    }
    let mut event = ocm_event();
    event.set_extension("ResourceID", "x");
    let msg = encode(&event).unwrap();
    assert_eq!(msg.attributes["ce-resourceid"], string("x"));
}

#[test]
fn events_that_fail_validation_are_not_encoded() {
    let mut event = ocm_event();
    event.set_type(" ");
    assert_eq!(
        encode(&event).unwrap_err().to_string(),
        "invalid event: type: MUST be a non-empty string"
    );
    let mut event = ocm_event();
    event.set_datacontenttype(Some("application json"));
    assert_eq!(
        encode(&event).unwrap_err().to_string(),
        "invalid event: datacontenttype: failed to parse RFC 2046 media type \
         mime: expected slash after first token"
    );
}

#[test]
fn empty_data_and_a_missing_content_type_are_not_sent() {
    let mut event = ocm_event();
    event.set_data_unchecked(Data::Binary(Vec::new()));
    let msg = encode(&event).unwrap();
    assert_eq!(msg.data, None);
    assert!(!msg.attributes.contains_key("contenttype"));

    event.set_data_unchecked(Data::String("text".to_owned()));
    assert_eq!(encode(&event).unwrap().data, Some(PbData::BinaryData(b"text".to_vec())));
}

#[test]
fn subject_and_dataschema_are_sent_as_strings() {
    let mut event = ocm_event();
    event.set_subject(Some("topic"));
    event.set_dataschema(Some(url::Url::parse("http://example.com/schema").unwrap()));
    let msg = encode(&event).unwrap();
    assert_eq!(msg.attributes["ce-subject"], string("topic"));
    assert_eq!(msg.attributes["ce-dataschema"], string("http://example.com/schema"));
}

#[test]
fn a_publish_request_carries_the_encoded_event() {
    let request = encode_publish_request(&ocm_event()).unwrap();
    assert_eq!(request.event, Some(encode(&ocm_event()).unwrap()));
}

// --- Receiving -------------------------------------------------------------------------------

#[test]
fn every_proto_attribute_type_becomes_an_extension_value() {
    let msg = binary_message(&[
        ("ce-exbool", value(Attr::CeBoolean(true))),
        ("ce-exint", value(Attr::CeInteger(-5))),
        ("ce-exstring", string("s")),
        ("ce-exbytes", value(Attr::CeBytes(vec![0, 1, 2, 3]))),
        ("ce-exuri", value(Attr::CeUri("http://example.com/x".to_owned()))),
        ("ce-exuriref", value(Attr::CeUriRef("/relative".to_owned()))),
        (
            "ce-extime",
            value(Attr::CeTimestamp(Timestamp {
                seconds: 1_727_784_000,
                nanos: 123_456_780,
            })),
        ),
        (
            "ce-exwhole",
            value(Attr::CeTimestamp(Timestamp {
                seconds: 1_727_784_000,
                nanos: 0,
            })),
        ),
    ]);
    let event = decode(msg).unwrap();
    let ext = |name| event.extension(name).cloned();
    assert_eq!(ext("exbool"), Some(ExtensionValue::Boolean(true)));
    assert_eq!(ext("exint"), Some(ExtensionValue::Integer(-5)));
    assert_eq!(ext("exstring"), Some(ExtensionValue::from("s")));
    assert_eq!(ext("exbytes"), Some(ExtensionValue::from("AAECAw==")));
    assert_eq!(ext("exuri"), Some(ExtensionValue::from("http://example.com/x")));
    assert_eq!(ext("exuriref"), Some(ExtensionValue::from("/relative")));
    assert_eq!(
        ext("extime"),
        Some(ExtensionValue::from("2024-10-01T12:00:00.12345678Z"))
    );
    assert_eq!(ext("exwhole"), Some(ExtensionValue::from("2024-10-01T12:00:00Z")));
    assert_eq!(event.time(), Some(&utc("2024-10-01T12:00:00.5Z")));
}

#[test]
fn a_uri_go_cannot_parse_fails_the_message() {
    let msg = binary_message(&[("ce-exuri", value(Attr::CeUri(":no-scheme".to_owned())))]);
    assert_eq!(
        decode(msg).unwrap_err().to_string(),
        "failed to convert attribute ce-exuri: failed to parse URI value :no-scheme: \
         missing protocol scheme"
    );
}

#[test]
fn an_attribute_without_a_value_fails_the_message_even_under_an_ignored_key() {
    let msg = binary_message(&[("x-ignored", CloudEventAttributeValue { attr: None })]);
    assert_eq!(
        decode(msg).unwrap_err().to_string(),
        "failed to convert attribute x-ignored: unsupported attribute type: <nil>"
    );
}

#[test]
fn extension_names_are_lower_cased() {
    let msg = binary_message(&[("ce-ResourceID", string("x"))]);
    let event = decode(msg).unwrap();
    assert_eq!(event.extension("resourceid"), Some(&ExtensionValue::from("x")));
    assert_eq!(event.extension("ResourceID"), None);
}

#[test]
fn an_extension_name_with_other_characters_fails_the_message() {
    for key in ["ce-resource_id", "ce-", "ce-resource-id"] {
        let msg = binary_message(&[(key, string("x"))]);
        assert!(
            matches!(decode(msg), Err(Error::InvalidExtensionName { .. })),
            "{key:?}"
        );
    }
}

#[test]
fn keys_without_the_ce_prefix_are_ignored() {
    let msg = binary_message(&[
        ("CE-upper", string("x")),
        ("resourceid", string("x")),
        ("ce_underscore", string("x")),
    ]);
    let event = decode(msg).unwrap();
    assert_eq!(event.iter_extensions().count(), 0);
}

#[test]
fn contenttype_and_ce_datacontenttype_set_the_data_content_type() {
    let event = decode(binary_message(&[("contenttype", string("application/json"))])).unwrap();
    assert_eq!(event.datacontenttype(), Some("application/json"));
    let event = decode(binary_message(&[("ce-datacontenttype", string("text/plain"))])).unwrap();
    assert_eq!(event.datacontenttype(), Some("text/plain"));
    let event = decode(binary_message(&[("contenttype", string("  "))])).unwrap();
    assert_eq!(event.datacontenttype(), None);
}

#[test]
fn an_unparsable_content_type_fails_validation() {
    let msg = binary_message(&[("contenttype", string("application json"))]);
    assert!(matches!(decode(msg), Err(Error::InvalidEvent { .. })));
    let msg = binary_message(&[("contenttype", value(Attr::CeInteger(1)))]);
    assert_eq!(
        decode(msg).unwrap_err().to_string(),
        "invalid value for datacontenttype: 1"
    );
}

#[test]
fn text_and_proto_data_are_ignored_as_go_ignores_them() {
    let mut msg = binary_message(&[]);
    msg.data = Some(PbData::TextData("lost".to_owned()));
    assert_eq!(decode(msg).unwrap().data(), None);
    let mut msg = binary_message(&[]);
    msg.data = Some(PbData::ProtoData(pb::Any::default()));
    assert_eq!(decode(msg).unwrap().data(), None);
}

#[test]
fn ce_time_may_be_a_string_but_must_be_rfc3339() {
    let event = decode(binary_message(&[("ce-time", string("2024-10-01T14:00:00.25+02:00"))])).unwrap();
    assert_eq!(event.time(), Some(&utc("2024-10-01T12:00:00.25Z")));

    let err = decode(binary_message(&[("ce-time", string("yesterday"))])).unwrap_err();
    assert_eq!(err.to_string(), "invalid value for time: \"yesterday\"");
    let err = decode(binary_message(&[("ce-time", value(Attr::CeInteger(5)))])).unwrap_err();
    assert_eq!(err.to_string(), "invalid value for time: 5");
}

#[test]
fn gos_zero_time_means_no_time() {
    let zero = Timestamp {
        seconds: -62_135_596_800,
        nanos: 0,
    };
    let event = decode(binary_message(&[("ce-time", value(Attr::CeTimestamp(zero)))])).unwrap();
    assert_eq!(event.time(), None);
}

#[test]
fn blank_or_missing_required_attributes_fail() {
    let mut msg = binary_message(&[]);
    msg.id = "  ".to_owned();
    assert_eq!(
        decode(msg).unwrap_err().to_string(),
        "invalid value for id: id is required to be a non-empty string"
    );

    let mut msg = binary_message(&[]);
    msg.id = String::new();
    msg.source = String::new();
    assert_eq!(
        decode(msg).unwrap_err().to_string(),
        "invalid event: id: MUST be a non-empty string\nsource: REQUIRED"
    );

    let mut msg = binary_message(&[]);
    msg.r#type = " t ".to_owned();
    assert_eq!(decode(msg).unwrap().ty(), "t", "Go trims the type");
}

#[test]
fn ce_attributes_override_the_fields() {
    let msg = binary_message(&[("ce-id", string("from-attribute")), ("ce-Source", string("src2"))]);
    let event = decode(msg).unwrap();
    assert_eq!(event.id(), "from-attribute");
    assert_eq!(event.source(), "src2");
}

#[test]
fn a_ce_specversion_attribute_converts_the_event() {
    let event = decode(binary_message(&[("ce-specversion", string("0.3"))])).unwrap();
    assert_eq!(event.specversion().as_str(), "0.3");
    let err = decode(binary_message(&[("ce-specversion", string("9.9"))])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value for specversion: unrecognized event version 9.9"
    );
}

#[test]
fn schemaurl_is_the_dataschema_of_a_v03_message() {
    let mut msg = binary_message(&[("ce-schemaurl", string("http://example.com/schema"))]);
    msg.spec_version = "0.3".to_owned();
    let event = decode(msg).unwrap();
    assert_eq!(
        event.dataschema().map(url::Url::as_str),
        Some("http://example.com/schema")
    );
}

#[test]
fn a_relative_dataschema_fails_validation() {
    let msg = binary_message(&[("ce-dataschema", string("/schema"))]);
    assert!(matches!(decode(msg), Err(Error::InvalidEvent { .. })));
}
