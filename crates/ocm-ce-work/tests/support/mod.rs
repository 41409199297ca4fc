//! Test helpers: building CloudEvents the way the Go receive bindings do, from the golden
//! vectors' MQTT properties or already-bound event descriptions; and ([`clients`]) running
//! source and agent work clients over the in-memory broker.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use chrono::DateTime;
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesWriter as _, Data, Event, EventBuilder as _, EventBuilderV10};
use serde_json::Value;

/// Why a message is not handed to a codec (Go drops it in the binding or in validation).
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not a CloudEvent at all (`to_event` stage).
    NotAnEvent(String),
    /// CloudEvents validation failed (`validate` stage).
    Invalid(String),
}

pub struct Parts {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub time: Option<String>,
    pub content_type: Option<String>,
    pub extensions: Vec<(String, ExtensionValue)>,
    pub data: Option<Vec<u8>>,
}

pub fn build(p: Parts) -> Result<Event, Rejected> {
    if p.id.is_empty() {
        return Err(Rejected::Invalid("id: MUST be a non-empty string\n".to_owned()));
    }
    let mut b = EventBuilderV10::new().id(p.id).source(p.source).ty(p.ty);
    if let Some(t) = p.time {
        let t = DateTime::parse_from_rfc3339(&t)
            .map_err(|_| Rejected::NotAnEvent(format!("invalid value for time: {t:?}")))?;
        b = b.time(t.to_utc());
    }
    for (k, v) in p.extensions {
        b = b.extension(&k, v);
    }
    let mut event = b.build().map_err(|e| Rejected::Invalid(e.to_string()))?;
    if let Some(ct) = p.content_type.filter(|c| !c.is_empty()) {
        event.set_datacontenttype(Some(ct));
    }
    if let Some(d) = p.data {
        event.set_data_unchecked(Data::Binary(d));
    }
    Ok(event)
}

/// A golden payload: `{"utf8": …}`, `{"hex": …}` or `null`.
pub fn payload(v: &Value) -> Option<Vec<u8>> {
    if let Some(s) = v.get("utf8").and_then(Value::as_str) {
        return Some(s.as_bytes().to_vec());
    }
    if let Some(h) = v.get("hex").and_then(Value::as_str) {
        return Some(hex::decode(h).unwrap());
    }
    None
}

/// The MQTT 5 receive binding (mqtt_paho): binary mode from `ce-` user properties, structured
/// mode for `application/cloudevents+json`.
pub fn from_mqtt(mqtt: &Value) -> Result<Event, Rejected> {
    let content_type = mqtt["content_type"].as_str().unwrap_or_default().to_owned();
    let body = if let Some(t) = mqtt.get("payload_template") {
        let mut s = t["prefix"].as_str().unwrap().to_owned();
        s.push_str(
            &t["repeat_char"]
                .as_str()
                .unwrap()
                .repeat(t["repeat_count"].as_u64().unwrap() as usize),
        );
        s.push_str(t["suffix"].as_str().unwrap());
        assert_eq!(s.len() as u64, t["payload_len"].as_u64().unwrap());
        Some(s.into_bytes())
    } else {
        payload(&mqtt["payload"])
    };
    if content_type.starts_with("application/cloudevents+json") {
        return from_structured(&body.unwrap_or_default());
    }
    let props: Vec<(String, String)> = mqtt["user_properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned()))
        .collect();
    let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("ce-specversion").is_none() {
        return Err(Rejected::NotAnEvent("unknown Message encoding".to_owned()));
    }
    let extensions = props
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("ce-")?.to_ascii_lowercase();
            (!matches!(name.as_str(), "id" | "source" | "type" | "time" | "specversion"))
                .then(|| (name, ExtensionValue::String(v.clone())))
        })
        .collect();
    build(Parts {
        id: get("ce-id").unwrap_or_default(),
        source: get("ce-source").unwrap_or_default(),
        ty: get("ce-type").unwrap_or_default(),
        time: get("ce-time"),
        content_type: Some(content_type),
        extensions,
        data: body,
    })
}

/// The CloudEvents JSON structured form; JSON numbers in extensions become Integers and the
/// `data` member keeps its exact bytes.
pub fn from_structured(body: &[u8]) -> Result<Event, Rejected> {
    let raw: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_slice(body).map_err(|e| Rejected::NotAnEvent(e.to_string()))?;
    let mut parts = Parts {
        id: String::new(),
        source: String::new(),
        ty: String::new(),
        time: None,
        content_type: None,
        extensions: Vec::new(),
        data: None,
    };
    for (k, v) in raw {
        let value: Value = serde_json::from_str(v.get()).unwrap();
        let text = value.as_str().map(str::to_owned);
        match k.as_str() {
            "specversion" => {}
            "id" => parts.id = text.unwrap_or_default(),
            "source" => parts.source = text.unwrap_or_default(),
            "type" => parts.ty = text.unwrap_or_default(),
            "time" => parts.time = text,
            "datacontenttype" => parts.content_type = text,
            "data" => parts.data = Some(v.get().as_bytes().to_vec()),
            _ => parts.extensions.push((k, json_extension(&value))),
        }
    }
    build(parts)
}

fn json_extension(v: &Value) -> ExtensionValue {
    match v {
        Value::Bool(b) => ExtensionValue::Boolean(*b),
        Value::Number(n) => ExtensionValue::Integer(n.as_i64().unwrap()),
        Value::String(s) => ExtensionValue::String(s.clone()),
        other => ExtensionValue::String(other.to_string()),
    }
}

/// An extension value of a golden event description (`go_type` + `value`).
pub fn typed_extension(e: &Value) -> ExtensionValue {
    match e["go_type"].as_str().unwrap() {
        "string" | "timestamp" => ExtensionValue::String(e["value"].as_str().unwrap().to_owned()),
        "int32" => ExtensionValue::Integer(e["value"].as_i64().unwrap()),
        "bool" => ExtensionValue::Boolean(e["value"].as_bool().unwrap()),
        other => panic!("unknown go_type {other}"),
    }
}

/// An already-bound event (the `event` member of a golden case, e.g. after the gRPC binding).
pub fn from_bound(event: &Value) -> Result<Event, Rejected> {
    let a = &event["attributes"];
    let s = |k: &str| a[k].as_str().map(str::to_owned);
    let extensions = event["extensions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), typed_extension(v)))
        .collect();
    build(Parts {
        id: s("id").unwrap_or_default(),
        source: s("source").unwrap_or_default(),
        ty: s("type").unwrap_or_default(),
        time: s("time"),
        content_type: s("datacontenttype"),
        extensions,
        data: payload(&event["data"]),
    })
}

/// Source and agent work clients over the in-memory broker, and what the OCM work agent does.
pub mod clients {
    use std::time::Duration;

    use ocm_ce_client::testing::{FakeBroker, FakeTransport};
    use ocm_ce_client::{BackoffConfig, ClientOptions};
    use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, SourceWorkClient, WorkClientOptions};
    use ocm_ce_work::{ManifestWork, PatchType};

    pub type Source = SourceWorkClient<FakeTransport>;
    pub type Agent = AgentWorkClient<FakeTransport>;

    /// Client options for tests: no rate limit, a constant 50 ms backoff.
    pub fn options() -> WorkClientOptions {
        WorkClientOptions::default().client(
            ClientOptions::default()
                .rate_limit(None)
                .backoff(BackoffConfig::constant(Duration::from_millis(50))),
        )
    }

    /// Polls `check` every 10 ms; fails with `timed out waiting for {what}` after `wait`.
    pub async fn eventually(wait: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + wait;
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Source client `source1` with the works it starts from.
    pub fn start_source(broker: &FakeBroker, initial: Vec<ManifestWork>) -> Source {
        SourceWorkClient::start(broker.source("source1"), "source1", initial, options())
    }

    /// [`start_source`], connected within `wait`.
    pub async fn connected_source(broker: &FakeBroker, initial: Vec<ManifestWork>, wait: Duration) -> Source {
        let source = start_source(broker, initial);
        tokio::time::timeout(wait, source.wait_until_connected())
            .await
            .expect("the source to connect");
        source
    }

    /// The agent of `cluster` (agent id `{cluster}-agent`, manifest bundle codecs).
    pub fn start_agent(broker: &FakeBroker, cluster: &str, options: WorkClientOptions) -> Agent {
        let agent_id = format!("{cluster}-agent");
        AgentWorkClient::start(
            broker.agent(cluster, &agent_id),
            cluster,
            &agent_id,
            AgentCodecs::bundles(),
            options,
        )
    }

    /// A merge patch of a work's status: one `Applied` condition with `reason`.
    pub fn applied_status(reason: &str) -> String {
        format!(
            r#"{{"status":{{"conditions":[{{"type":"Applied","status":"True","reason":"{reason}","message":"","lastTransitionTime":"2024-10-01T12:00:00Z"}}]}}}}"#
        )
    }

    /// Adds the OCM work agent's cleanup finalizer to work `uid`.
    pub async fn add_cleanup_finalizer(agent: &Agent, uid: &str) {
        agent
            .patch(
                uid,
                PatchType::Merge,
                br#"{"metadata":{"finalizers":["cluster.open-cluster-management.io/manifest-work-cleanup"]}}"#,
            )
            .await
            .unwrap();
    }

    /// What the OCM work agent does for a work: add its finalizer, then report a status.
    pub async fn agent_applies(agent: &Agent, uid: &str, reason: &str) {
        add_cleanup_finalizer(agent, uid).await;
        agent
            .patch_status(uid, PatchType::Merge, applied_status(reason).as_bytes())
            .await
            .unwrap();
    }
}
