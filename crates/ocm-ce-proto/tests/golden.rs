//! The gRPC parts of the golden vectors made by the Go SDK v0.15.0 (`testdata/golden/`, see
//! `ocm_ce_core::golden`). A missing file fails the test.
//!
//! * `events.json`: Go's outbound messages decode to Go's event, and encoding that event
//!   gives Go's message back, byte for byte in Go's deterministic form.
//! * `decode.json`: Go's received messages decode to the event Go's binding produced, or fail
//!   where Go's `to_event` / `validate` stage failed.

// Helpers outside `#[test]` functions panic on bad vectors too.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data, Event};
use ocm_ce_proto::pb::cloud_event::Data as PbData;
use ocm_ce_proto::pb::cloud_event_attribute_value::Attr;
use ocm_ce_proto::pb::{self, CloudEvent, CloudEventAttributeValue, Timestamp};
use ocm_ce_proto::{decode, encode, encode_publish_request};
use prost::Message as _;
use serde_json::Value;

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

fn hex_bytes(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(str_field(v, key)).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// A `CloudEvent` from its protojson rendering (the subset the vectors use).
fn from_protojson(v: &Value) -> CloudEvent {
    let text = |key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let attributes = v["attributes"]
        .as_object()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(key, value)| {
                    let (kind, inner) = value.as_object().unwrap().iter().next().unwrap();
                    let attr = match kind.as_str() {
                        "ceBoolean" => Attr::CeBoolean(inner.as_bool().unwrap()),
                        "ceInteger" => Attr::CeInteger(i32::try_from(inner.as_i64().unwrap()).unwrap()),
                        "ceString" => Attr::CeString(inner.as_str().unwrap().to_owned()),
                        "ceBytes" => Attr::CeBytes(BASE64.decode(inner.as_str().unwrap()).unwrap()),
                        "ceUri" => Attr::CeUri(inner.as_str().unwrap().to_owned()),
                        "ceUriRef" => Attr::CeUriRef(inner.as_str().unwrap().to_owned()),
                        "ceTimestamp" => {
                            let t = utc(inner.as_str().unwrap());
                            Attr::CeTimestamp(Timestamp {
                                seconds: t.timestamp(),
                                nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap(),
                            })
                        }
                        other => panic!("unexpected attribute kind {other}"),
                    };
                    (key.clone(), CloudEventAttributeValue { attr: Some(attr) })
                })
                .collect()
        })
        .unwrap_or_default();
    let data = if let Some(b64) = v["binaryData"].as_str() {
        Some(PbData::BinaryData(BASE64.decode(b64).unwrap()))
    } else {
        v["textData"].as_str().map(|text| PbData::TextData(text.to_owned()))
    };
    CloudEvent {
        id: text("id"),
        source: text("source"),
        spec_version: text("specVersion"),
        r#type: text("type"),
        attributes,
        data,
    }
}

/// Compares `event` with a vector's `cloudevent` / `event` object: attributes, extensions with
/// their Go types, data. Nothing is ignored: bytes and event come from the same Go run.
fn assert_event_matches(event: &Event, expected: &Value, context: &str) {
    let attributes = &expected["attributes"];
    assert_eq!(
        event.specversion().as_str(),
        str_field(attributes, "specversion"),
        "{context}: specversion"
    );
    assert_eq!(event.id(), str_field(attributes, "id"), "{context}: id");
    assert_eq!(event.source(), str_field(attributes, "source"), "{context}: source");
    assert_eq!(event.ty(), str_field(attributes, "type"), "{context}: type");
    let time = attributes["time"].as_str().filter(|t| !t.is_empty()).map(utc);
    assert_eq!(event.time(), time.as_ref(), "{context}: time");
    let content_type = attributes["datacontenttype"].as_str().filter(|ct| !ct.is_empty());
    assert_eq!(event.datacontenttype(), content_type, "{context}: datacontenttype");
    assert_eq!(event.subject(), None, "{context}: subject");
    assert_eq!(event.dataschema(), None, "{context}: dataschema");

    let extensions = expected["extensions"].as_object().unwrap();
    assert_eq!(
        event.iter_extensions().count(),
        extensions.len(),
        "{context}: extension names {:?}",
        event.iter_extensions().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for (name, typed) in extensions {
        let value = &typed["value"];
        let want = match str_field(typed, "go_type") {
            "string" | "timestamp" => ExtensionValue::String(value.as_str().unwrap().to_owned()),
            "int32" => ExtensionValue::Integer(value.as_i64().unwrap()),
            "bool" => ExtensionValue::Boolean(value.as_bool().unwrap()),
            other => panic!("{context}: unexpected go_type {other}"),
        };
        assert_eq!(event.extension(name), Some(&want), "{context}: extension {name}");
    }

    let data = &expected["data"];
    let want = if data.is_null() {
        None
    } else if let Some(text) = data["utf8"].as_str() {
        Some(Data::Binary(text.as_bytes().to_vec()))
    } else {
        Some(Data::Binary(hex_bytes(data, "hex")))
    };
    assert_eq!(event.data(), want.as_ref(), "{context}: data");
}

/// Every way the vector gives Go's message decodes to the same message.
fn go_messages(grpc: &Value, context: &str) -> CloudEvent {
    let deterministic = CloudEvent::decode(hex_bytes(grpc, "cloudevent_hex_deterministic").as_slice())
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let as_sent = CloudEvent::decode(hex_bytes(grpc, "cloudevent_hex").as_slice()).unwrap();
    assert_eq!(as_sent, deterministic, "{context}: cloudevent_hex");
    let request = pb::PublishRequest::decode(hex_bytes(grpc, "publish_request_hex_deterministic").as_slice()).unwrap();
    assert_eq!(
        request.event.as_ref(),
        Some(&deterministic),
        "{context}: publish_request_hex_deterministic"
    );
    assert_eq!(
        from_protojson(&grpc["protojson"]),
        deterministic,
        "{context}: protojson"
    );
    deterministic
}

/// Encoding `event` gives Go's message, and Go's deterministic bytes.
fn assert_encodes_like_go(event: &Event, go: &CloudEvent, grpc: &Value, context: &str) {
    let ours = encode(event).unwrap_or_else(|e| panic!("{context}: encode: {e}"));
    assert_eq!(&ours, go, "{context}: encoded message");
    assert_eq!(
        ours.encode_to_vec(),
        hex_bytes(grpc, "cloudevent_hex_deterministic"),
        "{context}: encoded bytes"
    );
    assert_eq!(
        encode_publish_request(event).unwrap().encode_to_vec(),
        hex_bytes(grpc, "publish_request_hex_deterministic"),
        "{context}: publish request bytes"
    );
    let again = decode(CloudEvent::decode(ours.encode_to_vec().as_slice()).unwrap())
        .unwrap_or_else(|e| panic!("{context}: decode of our bytes: {e}"));
    assert_eq!(&again, event, "{context}: round trip");
}

#[test]
fn go_outbound_grpc_messages_decode_to_go_events_and_encode_back_byte_for_byte() {
    let vectors = ocm_ce_core::golden::cases("events.json");
    let cases: Vec<&Value> = vectors.iter().filter(|case| !case["grpc"].is_null()).collect();
    assert!(cases.len() >= 20, "expected the 20 gRPC cases, got {}", cases.len());

    for case in cases {
        let context = str_field(case, "name");
        let grpc = &case["grpc"];
        let go = go_messages(grpc, context);
        let event = decode(go.clone()).unwrap_or_else(|e| panic!("{context}: decode: {e}"));
        assert_event_matches(&event, &case["cloudevent"], context);
        assert_encodes_like_go(&event, &go, grpc, context);
    }
}

#[test]
fn go_inbound_grpc_messages_decode_as_go_decoded_them() {
    let vectors = ocm_ce_core::golden::cases("decode.json");
    let cases: Vec<&Value> = vectors.iter().filter(|case| case["transport"] == "grpc").collect();
    assert!(cases.len() >= 10, "expected the 10 gRPC cases, got {}", cases.len());

    for case in cases {
        let context = str_field(case, "name");
        let grpc = &case["input"]["grpc"];
        let go = go_messages(grpc, context);
        let outcome = &case["outcome"];
        let binding_failed = matches!(outcome["stage"].as_str(), Some("to_event" | "validate"));
        match decode(go.clone()) {
            Ok(event) => {
                assert!(
                    !binding_failed,
                    "{context}: Go failed ({}) but we decoded",
                    outcome["error"]
                );
                assert_event_matches(&event, &case["event"], context);
                assert_encodes_like_go(&event, &go, grpc, context);
            }
            Err(e) => assert!(binding_failed, "{context}: Go decoded but we failed: {e}"),
        }
    }
}
