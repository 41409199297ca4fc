//! The MQTT transport against Go's golden vectors and the Go unit tests of
//! `generic/options/mqtt`, without a real broker: the binding (events.json,
//! decode.json), the CONNECT and SUBSCRIBE packets (topics.json, captured by a scripted
//! in-test broker), the config file, topic selection and the connection timeout.

#![allow(clippy::unwrap_used)]
#![cfg(feature = "mqtt")]

mod mqtt_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, AttributesWriter, Data, Event, EventBuilder, EventBuilderV10};
use ocm_ce_client::transport::mqtt::binding::{self, BindingError};
use ocm_ce_client::transport::mqtt::{MqttConfig, MqttTransport};
use ocm_ce_client::{Connection, PublishTarget, Role, Transport};
use ocm_ce_core::topics::go_cases;
use ocm_ce_core::{Topics, golden};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubAckReason, RetainForwardRule, SubAck, SubscribeReasonCode,
};
use serde_json::Value;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

// ---- helpers -----------------------------------------------------------------------------

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn bytes_of(v: &Value) -> Vec<u8> {
    if let Some(u) = v.get("utf8") {
        return s(u).as_bytes().to_vec();
    }
    if let Some(h) = v.get("hex") {
        return hex_decode(s(h));
    }
    Vec::new()
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

fn props(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (s(&p[0]).to_owned(), s(&p[1]).to_owned()))
        .collect()
}

fn content_type(v: &Value) -> Option<&str> {
    v.as_str().filter(|c| !c.is_empty())
}

/// The MQTT payload of a golden `mqtt` part (`payload_base64`, or the large-payload template).
fn payload(m: &Value) -> Vec<u8> {
    if let Some(t) = m.get("payload_template") {
        let mut p = s(&t["prefix"]).to_owned();
        p.push_str(&s(&t["repeat_char"]).repeat(usize::try_from(t["repeat_count"].as_u64().unwrap()).unwrap()));
        p.push_str(s(&t["suffix"]));
        assert_eq!(hex_encode(sha2::Sha256::digest(p.as_bytes())), s(&t["payload_sha256"]));
        return p.into_bytes();
    }
    BASE64.decode(s(&m["payload_base64"])).unwrap()
}

fn hex_encode(b: impl AsRef<[u8]>) -> String {
    b.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc))
}

/// The event a golden `cloudevent` describes, with Go's extension types (int32 → Integer,
/// timestamp → its RFC 3339 string, as `ocm_ce_core` holds them).
fn golden_event(ce: &Value) -> Event {
    let a = &ce["attributes"];
    let mut e = EventBuilderV10::new()
        .id(s(&a["id"]))
        .source(s(&a["source"]))
        .ty(s(&a["type"]))
        .build()
        .unwrap();
    e.set_time(time(&a["time"]));
    if let Some(ct) = content_type(&a["datacontenttype"]) {
        e.set_datacontenttype(Some(ct));
    }
    for (name, x) in ce["extensions"].as_object().unwrap() {
        let value = match s(&x["go_type"]) {
            "int32" => ExtensionValue::Integer(x["value"].as_i64().unwrap()),
            "bool" => ExtensionValue::Boolean(x["value"].as_bool().unwrap()),
            _ => ExtensionValue::String(s(&x["value"]).to_owned()),
        };
        e.set_extension(name, value);
    }
    if !ce["data"].is_null() {
        e.set_data_unchecked(Data::Binary(bytes_of(&ce["data"])));
    }
    e
}

fn data_bytes(e: &Event) -> Option<Vec<u8>> {
    match e.data()? {
        Data::Binary(b) => Some(b.clone()),
        Data::String(t) => Some(t.clone().into_bytes()),
        Data::Json(v) => Some(serde_json::to_vec(v).unwrap()),
    }
}

/// Asserts that `got` (decoded from MQTT) is the golden event: attributes equal, every
/// extension present with Go's value (over MQTT a string unless `go_type` says otherwise for
/// structured mode), same data.
fn assert_event(name: &str, got: &Event, ce: &Value, mqtt_strings: bool) {
    let a = &ce["attributes"];
    assert_eq!(got.id(), s(&a["id"]), "{name}: id");
    assert_eq!(got.source(), s(&a["source"]), "{name}: source");
    assert_eq!(got.ty(), s(&a["type"]), "{name}: type");
    assert_eq!(
        got.specversion().to_string(),
        s(&a["specversion"]),
        "{name}: specversion"
    );
    assert_eq!(got.time().copied(), time(&a["time"]), "{name}: time");
    assert_eq!(
        got.datacontenttype(),
        content_type(&a["datacontenttype"]),
        "{name}: datacontenttype"
    );
    let want = ce["extensions"].as_object().unwrap();
    assert_eq!(got.iter_extensions().count(), want.len(), "{name}: extension count");
    for (ext, x) in want {
        let expected = match (s(&x["go_type"]), mqtt_strings) {
            ("int32", false) => ExtensionValue::Integer(x["value"].as_i64().unwrap()),
            ("int32", true) => ExtensionValue::String(x["value"].as_i64().unwrap().to_string()),
            _ => ExtensionValue::String(s(&x["value"]).to_owned()),
        };
        assert_eq!(got.extension(ext), Some(&expected), "{name}: extension {ext}");
    }
    match (&ce["data"], data_bytes(got)) {
        (Value::Null, None) => {}
        (Value::String(_), _) => {} // "(omitted: ...)": checked through the payload
        (want, Some(bytes)) => {
            let want = bytes_of(want);
            if matches!(got.data(), Some(Data::Json(_))) {
                let a: Value = serde_json::from_slice(&bytes).unwrap();
                let b: Value = serde_json::from_slice(&want).unwrap();
                assert_eq!(a, b, "{name}: data");
            } else {
                assert_eq!(bytes, want, "{name}: data");
            }
        }
        (want, None) => assert!(bytes_of(want).is_empty(), "{name}: data missing"),
    }
}

// ---- events.json ---------------------------------------------------------------------------

/// Decodes the MQTT message of a golden case (`content_type`, `user_properties`, payload).
fn decode_mqtt(m: &Value) -> Result<Event, BindingError> {
    binding::decode(
        content_type(&m["content_type"]),
        &props(&m["user_properties"]),
        &payload(m),
    )
}

/// The cases of `events.json` with both an MQTT message and a CloudEvent: (name, mqtt, event).
fn mqtt_event_cases() -> Vec<(String, Value, Value)> {
    let cases: Vec<_> = golden::cases("events.json")
        .into_iter()
        .filter_map(|c| {
            Some((
                s(&c["name"]).to_owned(),
                c.get("mqtt")?.clone(),
                c.get("cloudevent")?.clone(),
            ))
        })
        .collect();
    assert_eq!(cases.len(), 20);
    cases
}

#[test]
fn every_golden_mqtt_publish_decodes_to_gos_event() {
    for (name, m, ce) in &mqtt_event_cases() {
        let got = decode_mqtt(m).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_event(name, &got, ce, true);
    }
}

#[test]
fn every_golden_event_encodes_to_gos_publish() {
    for (name, m, ce) in &mqtt_event_cases() {
        let ours = binding::encode(&golden_event(ce)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let go = props(&m["user_properties"]);
        assert_eq!(
            ours.user_properties[..5],
            go[..5],
            "{name}: the first five user properties"
        );
        let rest = |p: &[(String, String)]| p[5..].iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(rest(&ours.user_properties), rest(&go), "{name}: extensions");
        assert_eq!(ours.content_type.as_deref(), content_type(&m["content_type"]), "{name}");
        assert_eq!(ours.payload, payload(m), "{name}: payload");
    }
}

// ---- decode.json -------------------------------------------------------------------------

#[test]
fn every_golden_mqtt_decode_case_reproduces_gos_binding_outcome() {
    let mut n = 0;
    for c in golden::cases("decode.json") {
        let Some(m) = c["input"].get("mqtt") else {
            continue;
        };
        let name = s(&c["name"]);
        let got = decode_mqtt(m);
        let outcome = &c["outcome"];
        match (s(&outcome["stage"]), got) {
            ("to_event", Err(e)) => {
                assert!(!e.is_validation(), "{name}: {e}");
                assert_eq!(e.to_string(), s(&outcome["error"]), "{name}");
            }
            ("validate", Err(e)) => {
                assert!(e.is_validation(), "{name}: {e}");
                assert_eq!(e.to_string(), s(&outcome["error"]).trim_end(), "{name}");
            }
            (stage @ ("to_event" | "validate"), Ok(_)) => panic!("{name}: Go failed at {stage}, we did not"),
            (_, Ok(event)) => {
                let structured = content_type(&m["content_type"]) == Some(binding::STRUCTURED_JSON);
                assert_event(name, &event, &c["event"], !structured);
            }
            (_, Err(e)) => panic!("{name}: Go read the message, we failed: {e}"),
        }
        n += 1;
    }
    assert_eq!(n, 50);
}

#[test]
fn unknown_encodings_and_bad_times_fail_like_go() {
    assert_eq!(binding::decode(None, &[], b"x"), Err(BindingError::UnknownEncoding));
    let props = vec![
        ("ce-specversion".to_owned(), "1.0".to_owned()),
        ("ce-id".to_owned(), "1".to_owned()),
        ("ce-source".to_owned(), "s".to_owned()),
        ("ce-type".to_owned(), "t".to_owned()),
        ("ce-time".to_owned(), "2024-13-01T00:00:00Z".to_owned()),
    ];
    assert!(matches!(
        binding::decode(None, &props, b""),
        Err(BindingError::InvalidAttribute { name: "time", .. })
    ));
}

// ---- a scripted broker that records what the client sends ------------------------------------

#[derive(Debug)]
enum Seen {
    /// The raw CONNECT bytes and the parsed packet.
    Connect(Vec<u8>, Packet),
    Packet(Packet),
}

/// Accepts one client, answers CONNECT, SUBSCRIBE and QoS 1 PUBLISH, and reports every packet.
async fn scripted_broker() -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            let before = buf.clone();
            match Packet::read(&mut buf, None) {
                Ok(packet) => {
                    let raw = before[..before.len() - buf.len()].to_vec();
                    let mut out = BytesMut::new();
                    match &packet {
                        Packet::Connect(..) => {
                            Packet::ConnAck(ConnAck {
                                session_present: false,
                                code: ConnectReturnCode::Success,
                                properties: None,
                            })
                            .write(&mut out, None)
                            .unwrap();
                        }
                        Packet::Subscribe(sub) => {
                            Packet::SubAck(SubAck {
                                pkid: sub.pkid,
                                return_codes: sub
                                    .filters
                                    .iter()
                                    .map(|f| SubscribeReasonCode::Success(f.qos))
                                    .collect(),
                                properties: None,
                            })
                            .write(&mut out, None)
                            .unwrap();
                        }
                        Packet::Publish(p) if p.qos == QoS::AtLeastOnce => {
                            Packet::PubAck(PubAck {
                                pkid: p.pkid,
                                reason: PubAckReason::Success,
                                properties: None,
                            })
                            .write(&mut out, None)
                            .unwrap();
                        }
                        _ => {}
                    }
                    if !out.is_empty() && sock.write_all(&out).await.is_err() {
                        return;
                    }
                    let seen = if matches!(packet, Packet::Connect(..)) {
                        Seen::Connect(raw, packet)
                    } else {
                        Seen::Packet(packet)
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let mut chunk = [0u8; 4096];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        }
    });
    (host, rx)
}

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the client sent nothing")
        .expect("the scripted broker stopped")
}

/// Protocol name, level, flags and keep-alive of a raw CONNECT.
fn connect_header(raw: &[u8]) -> (String, u8, u8, u16) {
    assert_eq!(raw[0], 0x10);
    let mut i = 1;
    while raw[i] & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    let name_len = usize::from(u16::from_be_bytes([raw[i], raw[i + 1]]));
    let name = String::from_utf8(raw[i + 2..i + 2 + name_len].to_vec()).unwrap();
    let j = i + 2 + name_len;
    (name, raw[j], raw[j + 1], u16::from_be_bytes([raw[j + 2], raw[j + 3]]))
}

fn topics_of(v: &Value) -> Topics {
    serde_json::from_value(v.clone()).unwrap()
}

#[tokio::test]
async fn the_connect_and_subscribe_packets_match_gos() {
    let mut n = 0;
    for c in golden::cases("topics.json") {
        let kind = s(&c["kind"]);
        if kind != "agent_connect_subscribe" && kind != "source_connect_subscribe" {
            continue;
        }
        let name = s(&c["name"]);
        let (host, mut seen) = scripted_broker().await;
        let configured = &c["configured"];
        let config = MqttConfig::new(&host, topics_of(&c["topics"]))
            .credentials(s(&configured["username"]), s(&configured["password"]))
            .keep_alive(u16::try_from(configured["keepAlive"].as_u64().unwrap()).unwrap())
            .qos(
                u8::try_from(configured["pubQoS"].as_u64().unwrap()).unwrap(),
                u8::try_from(configured["subQoS"].as_u64().unwrap()).unwrap(),
            );
        let transport = if kind == "agent_connect_subscribe" {
            MqttTransport::agent(config, s(&c["cluster_name"]), s(&c["agent_id"])).unwrap()
        } else {
            MqttTransport::source(config, s(&c["source_id"]), s(&c["client_id_given"])).unwrap()
        };
        let conn = transport.connect().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = &c["connect"];
        let Seen::Connect(raw, Packet::Connect(connect, will, _login)) = next_seen(&mut seen).await else {
            panic!("{name}: expected CONNECT first");
        };
        let (protocol, level, flags, keep_alive) = connect_header(&raw);
        assert_eq!(protocol, s(&want["protocol_name"]), "{name}");
        assert_eq!(u64::from(level), want["protocol_version"].as_u64().unwrap(), "{name}");
        assert_eq!(connect.client_id, s(&want["client_id"]), "{name}");
        assert_eq!(
            u64::from(keep_alive),
            want["keep_alive"].as_u64().unwrap(),
            "{name}: keep alive"
        );
        for (bit, flag) in [
            (0x02, "clean_start"),
            (0x80, "username_flag"),
            (0x40, "password_flag"),
            (0x04, "will_flag"),
        ] {
            assert_eq!(flags & bit != 0, want[flag].as_bool().unwrap(), "{name}: {flag}");
        }
        assert!(will.is_none());
        assert_eq!(
            connect.properties.and_then(|p| p.session_expiry_interval),
            want["session_expiry_interval"]
                .as_u64()
                .map(|v| u32::try_from(v).unwrap()),
            "{name}: session expiry"
        );

        conn.subscribe().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        let Seen::Packet(Packet::Subscribe(sub)) = next_seen(&mut seen).await else {
            panic!("{name}: expected SUBSCRIBE");
        };
        let want = c["subscriptions"].as_array().unwrap();
        assert_eq!(sub.filters.len(), want.len(), "{name}: one SUBSCRIBE with every filter");
        for (f, w) in sub.filters.iter().zip(want) {
            assert_eq!(f.path, s(&w["filter"]), "{name}");
            assert_eq!(f.qos as u64, w["qos"].as_u64().unwrap(), "{name}");
            assert_eq!(f.nolocal, w["no_local"].as_bool().unwrap(), "{name}");
            assert_eq!(f.preserve_retain, w["retain_as_published"].as_bool().unwrap(), "{name}");
            let handling = match f.retain_forward_rule {
                RetainForwardRule::OnEverySubscribe => 0,
                RetainForwardRule::OnNewSubscribe => 1,
                RetainForwardRule::Never => 2,
            };
            assert_eq!(handling, w["retain_handling"].as_u64().unwrap(), "{name}");
        }
        conn.close().await;
        n += 1;
    }
    assert_eq!(n, 5);
}

#[tokio::test]
async fn user_name_and_password_flags_are_set_only_for_non_empty_values() {
    for (user, password) in [("u", ""), ("", "p"), ("u", "p")] {
        let (host, mut seen) = scripted_broker().await;
        let config = mqtt_support::config(&host, "source1").credentials(user, password);
        let conn = MqttTransport::agent(config, "cluster1", "a")
            .unwrap()
            .connect()
            .await
            .unwrap();
        let Seen::Connect(raw, Packet::Connect(_, _, login)) = next_seen(&mut seen).await else {
            panic!("expected CONNECT");
        };
        let (_, _, flags, _) = connect_header(&raw);
        assert_eq!(flags & 0x80 != 0, !user.is_empty(), "{user:?}/{password:?}");
        assert_eq!(flags & 0x40 != 0, !password.is_empty(), "{user:?}/{password:?}");
        let login = login.unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), (user, password));
        conn.close().await;
    }
}

#[tokio::test]
async fn a_source_publishes_the_same_packet_as_gos_client() {
    for c in golden::cases("topics.json") {
        if s(&c["kind"]) != "wire_publish" {
            continue;
        }
        let name = s(&c["name"]);
        let go = &c["publish"];
        // Go's PUBLISH, read back into an event and sent again by our client.
        let event = binding::decode(
            content_type(&go["content_type"]),
            &props(&go["user_properties"]),
            &payload(go),
        )
        .unwrap();
        let (host, mut seen) = scripted_broker().await;
        let conn = MqttTransport::source(
            MqttConfig::new(&host, topics_of(&c["topics"])),
            "source1",
            "source1-client",
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
        let _connect = next_seen(&mut seen).await;
        conn.publish(&PublishTarget::Cluster("cluster1".into()), &event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let Seen::Packet(Packet::Publish(p)) = next_seen(&mut seen).await else {
            panic!("{name}: expected PUBLISH");
        };
        assert_eq!(String::from_utf8(p.topic.to_vec()).unwrap(), s(&go["topic"]), "{name}");
        assert_eq!(p.qos as u64, go["qos"].as_u64().unwrap(), "{name}");
        assert_eq!(p.retain, go["retain"].as_bool().unwrap(), "{name}");
        let properties = p.properties.unwrap();
        assert_eq!(
            properties.content_type.as_deref(),
            content_type(&go["content_type"]),
            "{name}"
        );
        let ours = properties.user_properties;
        let theirs = props(&go["user_properties"]);
        assert_eq!(ours[..5], theirs[..5], "{name}");
        assert_eq!(
            ours.iter().collect::<BTreeSet<_>>(),
            theirs.iter().collect::<BTreeSet<_>>(),
            "{name}"
        );
        assert_eq!(p.payload.to_vec(), payload(go), "{name}");
        assert!(properties.topic_alias.is_none() && properties.message_expiry_interval.is_none());
        conn.close().await;
    }
}

// ---- config (Go TestBuildMQTTOptionsFromFlags) -------------------------------------------------

const TOPICS_YAML: &str = "topics:\n  sourceEvents: sources/hub1/clusters/+/sourceevents\n  agentEvents: sources/hub1/clusters/+/agentevents\n";

#[test]
fn an_empty_config_needs_a_broker_host() {
    for text in ["", "{}", "broker: test\n"] {
        assert_eq!(
            text.parse::<MqttConfig>().unwrap_err().to_string(),
            "brokerHost is required",
            "{text:?}"
        );
    }
}

#[test]
fn a_client_certificate_needs_its_key() {
    let err = r#"{"brokerHost":"test","clientCertFile":"test"}"#.parse::<MqttConfig>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "either both or none of clientCertFile and clientKeyFile must be set"
    );
    let err = r#"{"brokerHost":"test","clientKeyFile":"test"}"#.parse::<MqttConfig>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "either both or none of clientCertFile and clientKeyFile must be set"
    );
}

#[test]
fn a_config_without_topics_is_refused() {
    let err = r#"{"brokerHost":"test"}"#.parse::<MqttConfig>().unwrap_err();
    assert_eq!(err.to_string(), "the topics must be set");
}

#[test]
fn json_and_yaml_configs_get_gos_defaults() {
    let json = r#"{"brokerHost":"test","topics":{"sourceEvents":"sources/hub1/clusters/+/sourceevents","agentEvents":"sources/hub1/clusters/+/agentevents"}}"#;
    let yaml = format!("brokerHost: test\n{TOPICS_YAML}");
    for text in [json, yaml.as_str()] {
        let c: MqttConfig = text.parse().unwrap();
        assert_eq!(c.broker_host, "test");
        assert_eq!(c.keep_alive, 60);
        assert_eq!(c.dial_timeout, Duration::from_secs(60));
        assert_eq!((c.pub_qos, c.sub_qos), (1, 1));
        assert_eq!(c.max_packet_size, 4 * 1024 * 1024);
        assert_eq!(c.cert_check_interval, Duration::from_secs(60));
        assert!(c.tls.ca_file.is_none() && c.tls.client_cert_file.is_none());
        assert_eq!(c.topics.unwrap().source_events, "sources/hub1/clusters/+/sourceevents");
    }
}

#[test]
fn customised_values_are_honoured() {
    let yaml = format!(
        "brokerHost: test\nusername: u\npassword: p\nkeepAlive: 30\ndialTimeout: 10m\npubQoS: 0\nsubQoS: 2\n\
         caFile: ''\nmaxPacketSize: 1024\ncertCheckInterval: 1h30m\nunknownKey: ignored\n{TOPICS_YAML}"
    );
    let c: MqttConfig = yaml.parse().unwrap();
    assert_eq!(c.keep_alive, 30);
    assert_eq!(c.dial_timeout, Duration::from_secs(600));
    assert_eq!((c.pub_qos, c.sub_qos), (0, 2));
    assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
    assert!(c.tls.ca_file.is_none(), "an empty path is no path");
    assert_eq!(c.max_packet_size, 1024);
    assert_eq!(c.cert_check_interval, Duration::from_secs(5400));
    let json = r#"{"brokerHost":"test","dialTimeout":30000000000,"topics":{"sourceEvents":"a/b/c/d/sourceevents","agentEvents":"a/b/c/d/agentevents"}}"#;
    assert_eq!(
        json.parse::<MqttConfig>().unwrap().dial_timeout,
        Duration::from_secs(30)
    );
    let bad = format!("brokerHost: test\npubQoS: 3\n{TOPICS_YAML}");
    assert_eq!(
        bad.parse::<MqttConfig>().unwrap_err().to_string(),
        "pubQoS must be 0, 1 or 2, not 3"
    );
    let bad = format!("brokerHost: test\ndialTimeout: 60\n{TOPICS_YAML}");
    assert!(bad.parse::<MqttConfig>().is_ok(), "an integer is nanoseconds");
    let bad = format!("brokerHost: test\ndialTimeout: soon\n{TOPICS_YAML}");
    assert!(
        bad.parse::<MqttConfig>()
            .unwrap_err()
            .to_string()
            .contains("invalid duration")
    );
}

#[test]
fn config_files_are_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mqtt.yaml");
    std::fs::write(&path, format!("brokerHost: 127.0.0.1:1883\n{TOPICS_YAML}")).unwrap();
    assert_eq!(MqttConfig::from_file(&path).unwrap().broker_host, "127.0.0.1:1883");
    assert!(MqttConfig::from_file(dir.path().join("missing.yaml")).is_err());
}

#[test]
fn every_golden_validate_case_gives_gos_error() {
    let mut n = 0;
    for c in golden::cases("topics.json") {
        if s(&c["kind"]) != "validate" {
            continue;
        }
        let name = s(&c["name"]);
        let got = s(&c["config_file"]).parse::<MqttConfig>().err().map(|e| e.to_string());
        assert_eq!(got.as_deref(), c["error"].as_str(), "{name}");
        n += 1;
    }
    assert_eq!(n, 14);
}

/// Go TestValidateTopics.
#[test]
fn topics_accepted_and_refused_by_go_are_accepted_and_refused() {
    let cfg = |se: &str, ae: &str, sb: &str, ab: &str| {
        MqttConfig::new(
            "test:1",
            Topics {
                source_events: se.into(),
                agent_events: ae.into(),
                source_broadcast: sb.into(),
                agent_broadcast: ab.into(),
            },
        )
        .validate()
    };
    for [se, ae, sb, ab] in go_cases::VALID {
        assert!(cfg(se, ae, sb, ab).is_ok(), "{se} {ae} {sb} {ab}");
    }
    for [se, ae, sb, ab] in go_cases::INVALID {
        assert!(cfg(se, ae, sb, ab).is_err(), "{se} {ae} {sb} {ab}");
    }
}

#[test]
fn every_golden_source_subscribe_precondition_is_checked_before_connecting() {
    for c in golden::cases("topics.json") {
        if s(&c["kind"]) != "source_subscribe_precondition" {
            continue;
        }
        let name = s(&c["name"]);
        let topics = Topics {
            source_events: "sources/source1/clusters/+/sourceevents".into(),
            agent_events: s(&c["agent_events"]).into(),
            ..Topics::default()
        };
        let direct = topics
            .source_subscriptions(s(&c["source_id"]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(direct.as_deref(), c["error"].as_str(), "{name}");
        if topics.validate().is_ok() {
            let built = MqttTransport::source(MqttConfig::new("127.0.0.1:1", topics), s(&c["source_id"]), "c");
            assert_eq!(
                built.err().map(|e| e.to_string()).as_deref(),
                c["error"].as_str(),
                "{name}"
            );
        }
    }
}

// ---- topic selection (Go TestSourceContext / TestAgentContext, golden publish cases) ----------

fn routing_event(ty: &str, extensions: &Value) -> Event {
    let mut e = EventBuilderV10::new().id("1").source("x").ty(ty).build().unwrap();
    if let Some(map) = extensions.as_object() {
        for (name, x) in map {
            e.set_extension(name, s(&x["value"]));
        }
    }
    e
}

#[test]
fn every_golden_publish_case_selects_gos_topic() {
    let mut n = 0;
    for c in golden::cases("topics.json") {
        let kind = s(&c["kind"]);
        if (kind != "source_publish" && kind != "agent_publish") || !c["context_pub_topic"].is_null() {
            continue;
        }
        let name = s(&c["name"]);
        let config = MqttConfig::new("127.0.0.1:1883", topics_of(&c["topics"]));
        let event = routing_event(s(&c["event_type"]), &c["event_extensions"]);
        let (transport, target) = if kind == "source_publish" {
            let t = MqttTransport::new(config, Role::source("source1"), "source1-client");
            (t, PublishTarget::for_source_event(&event).ok())
        } else {
            let role = Role::Agent {
                cluster_name: s(&c["cluster_name"]).into(),
                agent_id: s(&c["agent_id"]).into(),
            };
            (
                MqttTransport::new(config, role, ""),
                PublishTarget::for_agent_event(&event).ok(),
            )
        };
        // Some golden topic sets are deliberately invalid; routing does not depend on validation.
        let Ok(transport) = transport else {
            let topics = topics_of(&c["topics"]);
            let got = if kind == "source_publish" {
                topics.source_publish_topic("source1", &event, None)
            } else {
                topics
                    .agent_publish_topic(s(&c["cluster_name"]), &event, None)
                    .map(|(t, _)| t)
            };
            assert_eq!(got.as_ref().ok().map(String::as_str), c["topic"].as_str(), "{name}");
            n += 1;
            continue;
        };
        let target = target.unwrap_or(PublishTarget::AllSources);
        let got = transport.publish_topic(&target, &event);
        match (c["topic"].as_str(), got) {
            (Some(want), _) if want.starts_with("$share/") => {
                // Go would publish to a shared-subscription filter (refused by brokers).
                let err = transport.publish_topic(&target, &event).unwrap_err();
                assert!(err.is_config(), "{name}");
            }
            (Some(want), Ok(topic)) => assert_eq!(topic, want, "{name}"),
            (None, Err(e)) => assert_eq!(e.to_string(), s(&c["error"]), "{name}"),
            (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
        }
        n += 1;
    }
    assert_eq!(n, 17);
}

/// The data type of Go's routing tests.
const MANIFESTS: &str = "io.open-cluster-management.works.v1alpha1.manifests";

/// The topic `t` publishes an event of type `ty` with the string `extensions` to for `target`;
/// an error as its message.
fn topic_of(
    t: &MqttTransport,
    target: &PublishTarget,
    ty: &str,
    extensions: &[(&str, &str)],
) -> Result<String, String> {
    let mut e = EventBuilderV10::new().id("1").source("x").ty(ty).build().unwrap();
    for (name, value) in extensions {
        e.set_extension(name, *value);
    }
    t.publish_topic(target, &e).map_err(|e| e.to_string())
}

/// Go TestSourceContext (the cases without a forced topic; forced topics are an ambient
/// context option that this API replaces with explicit targets).
#[test]
fn a_source_routes_like_gos_source_context() {
    let topics = Topics {
        source_events: "sources/hub1/clusters/+/sourceevents".into(),
        agent_events: "sources/hub1/clusters/+/agentevents".into(),
        ..Topics::default()
    };
    let t = MqttTransport::source(MqttConfig::new("127.0.0.1:1883", topics), "hub1", "hub1-client").unwrap();
    let target = PublishTarget::Cluster("cluster1".into());
    let cluster1 = [("clustername", "cluster1")];
    assert!(topic_of(&t, &target, "unsupported", &cluster1).is_err());
    assert_eq!(
        topic_of(&t, &target, &format!("{MANIFESTS}.status.resync_request"), &cluster1).unwrap(),
        "sources/hub1/clusters/cluster1/sourceevents"
    );
    assert_eq!(
        topic_of(&t, &target, &format!("{MANIFESTS}.spec.create_request"), &[]).unwrap_err(),
        "\"clustername\" not found"
    );
    assert_eq!(
        topic_of(&t, &target, &format!("{MANIFESTS}.spec.create_request"), &cluster1).unwrap(),
        "sources/hub1/clusters/cluster1/sourceevents"
    );
    assert_eq!(
        topic_of(
            &t,
            &PublishTarget::AllClusters,
            &format!("{MANIFESTS}.status.resync_request"),
            &[("clustername", "")]
        )
        .unwrap_err(),
        "the source broadcast topic not set"
    );
}

/// Go TestAgentContext (without forced topics).
#[test]
fn an_agent_routes_like_gos_agent_context() {
    let topics = Topics {
        source_events: "sources/hub1/clusters/+/sourceevents".into(),
        agent_events: "sources/hub1/clusters/+/agentevents".into(),
        agent_broadcast: "clusters/+/agentbroadcast".into(),
        ..Topics::default()
    };
    let t = MqttTransport::agent(MqttConfig::new("127.0.0.1:1883", topics), "cluster1", "cluster1-agent").unwrap();
    let target = PublishTarget::Source("hub1".into());
    let from = |source: &'static str| [("clustername", "cluster1"), ("originalsource", source)];
    assert!(topic_of(&t, &target, "unsupported", &from("hub1")).is_err());
    assert_eq!(
        topic_of(
            &t,
            &PublishTarget::AllSources,
            &format!("{MANIFESTS}.spec.resync_request"),
            &from("")
        )
        .unwrap(),
        "clusters/cluster1/agentbroadcast"
    );
    assert_eq!(
        topic_of(
            &t,
            &target,
            &format!("{MANIFESTS}.status.update_request"),
            &[("clustername", "cluster1")]
        )
        .unwrap_err(),
        "\"originalsource\" not found"
    );
    assert_eq!(
        topic_of(
            &t,
            &target,
            &format!("{MANIFESTS}.status.update_request"),
            &from("hub1")
        )
        .unwrap(),
        "sources/hub1/clusters/cluster1/agentevents"
    );
}

// ---- Go TestConnectionTimeout --------------------------------------------------------------------

#[tokio::test]
async fn a_listener_that_never_answers_connect_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    // Accept and hold every connection without ever writing a byte.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let config = mqtt_support::config(&host, "source1").dial_timeout(Duration::from_millis(500));
    let transport = MqttTransport::source(config, "source1", "source1-client")
        .unwrap()
        .with_connack_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = transport.connect().await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_connect() && err.is_retryable(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    holder.abort();
}

#[tokio::test]
async fn a_refused_tcp_connection_is_a_retryable_connect_error() {
    let host = format!("127.0.0.1:{}", mqtt_support::free_port());
    let err = MqttTransport::agent(mqtt_support::config(&host, "source1"), "cluster1", "a")
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(err.is_connect() && err.is_retryable(), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

// ---- auto traits ---------------------------------------------------------------------------------

fn require_send_sync<T: Send + Sync + 'static>() {}
fn require_send<T: Send>(_: &T) {}

#[test]
fn transports_connections_and_their_futures_are_send_and_sync() {
    require_send_sync::<MqttTransport>();
    require_send_sync::<ocm_ce_client::transport::mqtt::MqttConnection>();
    require_send_sync::<MqttConfig>();
    require_send_sync::<BindingError>();
    let transport = MqttTransport::agent(mqtt_support::config("127.0.0.1:1", "source1"), "cluster1", "a").unwrap();
    require_send(&transport.connect());
}
