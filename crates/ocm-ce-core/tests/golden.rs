//! The Go golden vectors for the protocol core: event types, sequence ids, MQTT topics.

#![allow(clippy::unwrap_used)]

use cloudevents::{EventBuilder as _, EventBuilderV10};
use ocm_ce_core::golden;
use ocm_ce_core::sequence::{SequenceParts, is_newer};
use ocm_ce_core::topics::Topics;
use ocm_ce_core::{DataType, EventType};
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[test]
fn every_event_type_case_parses_like_go() {
    for c in golden::cases("event_type.json") {
        let name = s(&c["name"]);
        let input = s(&c["input"]);
        let (result, parts): (Result<String, String>, Option<[String; 5]>) = match s(&c["function"]) {
            "ParseCloudEventsType" => match input.parse::<EventType>() {
                Ok(t) => (
                    Ok(t.to_string()),
                    Some([
                        t.data_type.group.clone(),
                        t.data_type.version.clone(),
                        t.data_type.resource.clone(),
                        t.sub_resource.to_string(),
                        t.action.clone(),
                    ]),
                ),
                Err(e) => (Err(e.to_string()), None),
            },
            "ParseCloudEventsDataType" => match input.parse::<DataType>() {
                Ok(d) => (
                    Ok(d.to_string()),
                    Some([
                        d.group.clone(),
                        d.version.clone(),
                        d.resource.clone(),
                        String::new(),
                        String::new(),
                    ]),
                ),
                Err(e) => (Err(e.to_string()), None),
            },
            other => panic!("{name}: unknown function {other}"),
        };
        match &c["error"] {
            Value::String(err) => assert_eq!(result, Err(err.clone()), "{name}"),
            _ => {
                assert_eq!(result.as_deref(), Ok(s(&c["string"])), "{name}");
                let p = &c["parsed"];
                let parts = parts.unwrap();
                assert_eq!(parts[0], s(&p["group"]), "{name}");
                assert_eq!(parts[1], s(&p["version"]), "{name}");
                assert_eq!(parts[2], s(&p["resource"]), "{name}");
                if let Some(sub) = p.get("subresource") {
                    assert_eq!(parts[3], s(sub), "{name}");
                    assert_eq!(parts[4], s(&p["action"]), "{name}");
                }
            }
        }
    }
}

#[test]
fn every_sequence_id_case_compares_like_go() {
    for c in golden::cases("sequence_id.json") {
        let name = s(&c["name"]);
        let got = is_newer(s(&c["last"]), s(&c["current"]));
        match &c["error"] {
            Value::String(err) => assert_eq!(got.map_err(|e| e.to_string()), Err(err.clone()), "{name}"),
            _ => assert_eq!(got, Ok(c["result"].as_bool().unwrap()), "{name}"),
        }
        for (id, decoded) in [(&c["last"], &c["decoded_last"]), (&c["current"], &c["decoded_current"])] {
            if decoded.is_object() {
                let parts = SequenceParts::of(s(id).parse().unwrap());
                assert_eq!(parts.time_ms, decoded["time_ms"].as_i64().unwrap(), "{name}");
                assert_eq!(parts.node, decoded["node"].as_i64().unwrap(), "{name}");
                assert_eq!(parts.step, decoded["step"].as_i64().unwrap(), "{name}");
            }
        }
    }
}

fn topics(v: &Value) -> Topics {
    serde_json::from_value(v.clone()).unwrap()
}

fn event(c: &Value) -> cloudevents::Event {
    let mut b = EventBuilderV10::new().id("id").source("src").ty(s(&c["event_type"]));
    for (k, v) in c["event_extensions"].as_object().unwrap() {
        assert_eq!(
            s(&v["go_type"]),
            "string",
            "only string extensions are in the golden set"
        );
        b = b.extension(k, s(&v["value"]));
    }
    b.build().unwrap()
}

#[test]
fn every_topic_case_routes_like_go() {
    let mut counted = 0;
    for c in golden::cases("topics.json") {
        let name = s(&c["name"]);
        let expected: Result<&str, &str> = match &c["error"] {
            Value::String(e) => Err(e),
            _ => Ok(s(&c["topic"])),
        };
        let forced = c.get("context_pub_topic").map(s);
        match s(&c["kind"]) {
            "validate" => {
                // `brokerHost` is an MQTT config check (transport crate); the topic rules are here.
                if s(&c["broker_host"]).is_empty() {
                    continue;
                }
                let got = if c["topics"].is_null() {
                    Err(ocm_ce_core::TopicError::Missing)
                } else {
                    topics(&c["topics"]).validate()
                };
                match &c["error"] {
                    Value::String(e) => assert_eq!(got.map_err(|e| e.to_string()), Err(e.clone()), "{name}"),
                    _ => assert_eq!(got, Ok(()), "{name}"),
                }
            }
            "source_publish" => {
                let got = topics(&c["topics"]).source_publish_topic(s(&c["source_id"]), &event(&c), forced);
                assert_eq!(
                    got.as_deref().map_err(|e| e.to_string()),
                    expected.map_err(str::to_owned),
                    "{name}"
                );
            }
            "agent_publish" => {
                let got = topics(&c["topics"]).agent_publish_topic(s(&c["cluster_name"]), &event(&c), forced);
                assert_eq!(
                    got.as_ref().map(|(t, _)| t.as_str()).map_err(|e| e.to_string()),
                    expected.map_err(str::to_owned),
                    "{name}"
                );
                if let Some(log) = c.get("logs").and_then(Value::as_str) {
                    assert_eq!(got.unwrap().1, Some(log), "{name}");
                }
            }
            "source_subscribe_precondition" => {
                let t = Topics {
                    agent_events: s(&c["agent_events"]).to_owned(),
                    ..Topics::default()
                };
                let got = t.source_subscriptions(s(&c["source_id"])).map(|_| ());
                match &c["error"] {
                    Value::String(e) => assert_eq!(got.map_err(|e| e.to_string()), Err(e.clone()), "{name}"),
                    _ => assert_eq!(got, Ok(()), "{name}"),
                }
            }
            "agent_connect_subscribe" | "source_connect_subscribe" => {
                let t = topics(&c["topics"]);
                let got = if s(&c["kind"]).starts_with("agent") {
                    t.agent_subscriptions(s(&c["cluster_name"]))
                } else {
                    t.source_subscriptions(s(&c["source_id"])).unwrap()
                };
                let want: Vec<&str> = c["subscriptions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| s(&x["filter"]))
                    .collect();
                assert_eq!(got, want, "{name}");
            }
            "wire_publish" => {
                let t = topics(&c["topics"]);
                let p = &c["publish"];
                let mut b = EventBuilderV10::new().id("id").source("source1");
                for pair in p["user_properties"].as_array().unwrap() {
                    let (k, v) = (s(&pair[0]), s(&pair[1]));
                    match k {
                        "ce-type" => b = b.ty(v),
                        "ce-clustername" | "ce-originalsource" => b = b.extension(&k[3..], v),
                        _ => {}
                    }
                }
                let got = t.source_publish_topic("source1", &b.build().unwrap(), None).unwrap();
                assert_eq!(got, s(&p["topic"]), "{name}");
            }
            other => panic!("{name}: unknown kind {other}"),
        }
        counted += 1;
    }
    assert!(counted >= 45, "only {counted} topic cases ran");
}
