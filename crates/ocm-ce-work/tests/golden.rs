//! The Go golden vectors of the ManifestWork layer: status hashes, work UIDs, codec decoding
//! (over MQTT and gRPC) and codec encoding.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data, Event};
use ocm_ce_core::extensions::format_time;
use ocm_ce_core::sequence::SequenceParts;
use ocm_ce_core::{Codec, EventType, golden};
use ocm_ce_work::api::{ORIGINAL_SOURCE_LABEL, time_from_chrono, time_to_chrono};
use ocm_ce_work::payload::{ManifestBundle, ManifestBundleStatus, ManifestStatus};
use ocm_ce_work::status_hash::{status_hash_matches, status_json, status_json_v1};
use ocm_ce_work::{
    AgentManifestBundleCodec, AgentManifestCodec, Manifest, ManifestResourceStatus, ManifestWork, ManifestWorkStatus,
    ObjectMeta, SourceManifestBundleCodec, StaticRestMapper, status_hash, status_hash_v1, work_uid,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::Rejected;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn go_json(v: &impl serde::Serialize) -> String {
    String::from_utf8(ocm_ce_core::go_json::to_vec(v).unwrap()).unwrap()
}

/// sdk-go v1.3.0's `statushash` of the statuses of `status_hash.json`, decoded from their Go
/// JSON as a v1 source or agent decodes a status event.
#[test]
fn every_v1_status_hash_case_matches_go_byte_for_byte() {
    let cases = golden::cases("status_hash_v1.json");
    assert!(cases.len() >= 30);
    let mut differs = 0;
    for c in &cases {
        let name = s(&c["name"]);
        let status: ManifestWorkStatus = serde_json::from_str(s(&c["status_json"])).unwrap();
        let json = String::from_utf8(status_json_v1(&status)).unwrap();
        assert_eq!(json, s(&c["hashed_json"]), "{name}: JSON bytes");
        assert_eq!(status_hash_v1(&status), s(&c["hash"]), "{name}: hash");
        assert!(status_hash_matches(&status, s(&c["hash"])), "{name}: v1 hash accepted");
        assert!(
            status_hash_matches(&status, &status_hash(&status)),
            "{name}: v0.15 hash accepted"
        );
        differs += usize::from(status_hash_v1(&status) != status_hash(&status));
    }
    // The two functions agree only where the struct order is already sorted (empty statuses).
    assert!(
        differs >= cases.len() - 4,
        "only {differs} of {} cases hash differently",
        cases.len()
    );
}

#[test]
fn every_status_hash_case_matches_go_byte_for_byte() {
    let cases = golden::cases("status_hash.json");
    assert!(cases.len() >= 30);
    for c in &cases {
        let name = s(&c["name"]);
        // No case of this file holds invalid UTF-8 (the `bytes_hex` form is only described):
        // Rust strings could not carry such bytes, so a case using it must be handled explicitly.
        assert!(
            !c["input"].to_string().contains("bytes_hex"),
            "{name}: invalid UTF-8 input needs handling"
        );
        let status: ManifestWorkStatus = serde_json::from_value(c["input"].clone()).unwrap();
        let json = String::from_utf8(status_json(&status)).unwrap();
        assert_eq!(json, s(&c["go_json"]), "{name}: JSON bytes");
        assert_eq!(status_hash(&status), s(&c["hash"]), "{name}: hash");
        // The Go JSON reads back to the same JSON, except that, as in Go, a time written as
        // `0001-01-01T00:00:00Z` reads back as the zero time, which is written `null`.
        let back: ManifestWorkStatus = serde_json::from_str(&json).unwrap();
        let again = String::from_utf8(status_json(&back)).unwrap();
        assert_eq!(
            again,
            json.replace("\"0001-01-01T00:00:00Z\"", "null"),
            "{name}: round trip"
        );
    }
}

#[test]
fn every_uid_case_matches_go() {
    for c in golden::cases("uid.json") {
        let name = s(&c["name"]);
        let uid = work_uid(s(&c["source_id"]), s(&c["namespace"]), s(&c["work_name"]));
        assert_eq!(uid, s(&c["uid"]), "{name}");
        let hashed = format!(
            "{}-manifestworks.work.open-cluster-management.io-{}-{}",
            s(&c["source_id"]),
            s(&c["namespace"]),
            s(&c["work_name"])
        );
        assert_eq!(hashed, s(&c["hashed_string"]), "{name}");
    }
}

fn decoder(c: &Value) -> Box<dyn Codec<ManifestWork>> {
    match s(&c["decoder"]) {
        "agent_manifestbundle" => Box::new(AgentManifestBundleCodec::new()),
        "source_manifestbundle" => Box::new(SourceManifestBundleCodec::new()),
        "agent_manifest" => {
            let mapper = match s(&c["rest_mapper"]) {
                "nil" => None,
                "configmaps,deployments,namespaces" => Some(Arc::new(
                    StaticRestMapper::new()
                        .with("", "v1", "ConfigMap", "configmaps")
                        .with("apps", "v1", "Deployment", "deployments")
                        .with("", "v1", "Namespace", "namespaces"),
                ) as Arc<dyn ocm_ce_work::RestMapper>),
                other => panic!("unknown rest mapper {other}"),
            };
            Box::new(AgentManifestCodec::new(mapper))
        }
        other => panic!("unknown decoder {other}"),
    }
}

#[test]
fn every_decode_case_matches_go() {
    let cases = golden::cases("decode.json");
    let (mut mqtt, mut grpc) = (0, 0);
    for c in &cases {
        let name = s(&c["name"]);
        let event = match s(&c["transport"]) {
            "mqtt" => {
                mqtt += 1;
                support::from_mqtt(&c["input"]["mqtt"])
            }
            "grpc" => {
                grpc += 1;
                support::from_bound(&c["event"])
            }
            other => panic!("{name}: unknown transport {other}"),
        };
        let outcome = &c["outcome"];
        let stage = s(&outcome["stage"]);
        let event = match (event, stage) {
            (Ok(e), _) => e,
            (Err(Rejected::NotAnEvent(e)), "to_event") | (Err(Rejected::Invalid(e)), "validate") => {
                assert_eq!(e, s(&outcome["error"]), "{name}: rejected before the codec");
                continue;
            }
            (Err(e), _) => panic!("{name}: the test binding rejected the message: {e:?}"),
        };
        assert!(
            !matches!(stage, "to_event" | "validate"),
            "{name}: should have been rejected"
        );
        let result = decoder(c).decode(&event);
        if outcome["ok"].as_bool().unwrap() {
            let work = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let json = go_json(&work);
            if let Some(expected) = outcome["work_json"].as_str() {
                assert_eq!(json, expected, "{name}: work JSON");
            } else {
                assert_eq!(
                    json.len() as u64,
                    outcome["work_json_len"].as_u64().unwrap(),
                    "{name}: length"
                );
                assert_eq!(
                    hex::encode(Sha256::digest(json.as_bytes())),
                    s(&outcome["work_json_sha256"]),
                    "{name}: sha256"
                );
            }
            if let Some(full) = outcome["deletion_timestamp_full"].as_str() {
                let at = time_to_chrono(work.metadata.deletion_timestamp.as_ref().unwrap());
                assert_eq!(
                    format_time(&at),
                    format_time(&chrono::DateTime::parse_from_rfc3339(full).unwrap().to_utc())
                );
            }
            // What Go wrote reads back to the same work.
            let back: ManifestWork = serde_json::from_str(&json).unwrap();
            assert_eq!(go_json(&back), json, "{name}: read back");
        } else {
            assert_eq!(stage, "decode", "{name}");
            let err = result.err().unwrap_or_else(|| panic!("{name}: decoded but Go failed"));
            assert_eq!(err.to_string(), s(&outcome["error"]), "{name}: error text");
        }
    }
    assert!(mqtt >= 40 && grpc >= 10, "{mqtt} mqtt and {grpc} grpc cases");
}

/// The extensions of an event as (name, value) pairs, `sequenceid` excluded when `skip_sequence`.
fn extensions(event: &Event) -> Vec<(String, ExtensionValue)> {
    let mut v: Vec<_> = event
        .iter_extensions()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn golden_extensions(ce: &Value) -> Vec<(String, ExtensionValue)> {
    let mut v: Vec<_> = ce["extensions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, e)| (k.clone(), support::typed_extension(e)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn data_text(event: &Event) -> Option<String> {
    match event.data() {
        Some(Data::Binary(b)) => Some(String::from_utf8(b.clone()).unwrap()),
        None => None,
        other => panic!("unexpected data {other:?}"),
    }
}

/// The work a source encoded, rebuilt from its event: metadata from the `metadata` extension,
/// the full deletion time from `deletiontimestamp`, the spec from the data.
fn source_work(ce: &Value) -> ManifestWork {
    let ext = &ce["extensions"];
    let mut work = ManifestWork {
        metadata: serde_json::from_str::<ObjectMeta>(s(&ext["metadata"]["value"])).unwrap(),
        ..ManifestWork::default()
    };
    if let Some(at) = ext["deletiontimestamp"]["value"].as_str() {
        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc();
        work.metadata.deletion_timestamp = Some(time_from_chrono(at));
    }
    if let Some(data) = support::payload(&ce["data"]) {
        let bundle: ManifestBundle = serde_json::from_slice(&data).unwrap();
        work.spec.workload.manifests = bundle.manifests;
        work.spec.delete_option = bundle.delete_option;
        work.spec.manifest_configs = bundle.manifest_configs;
    }
    work
}

/// The work an agent encoded, rebuilt from its event.
fn agent_work(ce: &Value, manifests_codec: bool) -> ManifestWork {
    let ext = &ce["extensions"];
    let mut work = ManifestWork::new(s(&ext["clustername"]["value"]), "w", vec![]);
    work.metadata.uid = Some(s(&ext["resourceid"]["value"]).to_owned());
    work.metadata.resource_version = Some(ext["resourceversion"]["value"].as_i64().unwrap().to_string());
    work.metadata.labels = Some(
        [(
            ORIGINAL_SOURCE_LABEL.to_owned(),
            s(&ext["originalsource"]["value"]).to_owned(),
        )]
        .into(),
    );
    let data = support::payload(&ce["data"]).unwrap();
    if manifests_codec {
        let status: ManifestStatus = serde_json::from_slice(&data).unwrap();
        work.status = ManifestWorkStatus {
            conditions: status.conditions,
            resource_status: ManifestResourceStatus {
                manifests: status.status.into_iter().collect(),
            },
        };
        work.spec.workload.manifests = vec![Manifest::from_raw(r#"{"kind":"ConfigMap"}"#).unwrap()];
    } else {
        let status: ManifestBundleStatus = serde_json::from_slice(&data).unwrap();
        work.status = ManifestWorkStatus {
            conditions: status.conditions,
            resource_status: ManifestResourceStatus {
                manifests: status.resource_status,
            },
        };
    }
    work
}

#[test]
fn every_codec_built_event_is_encoded_like_go() {
    let cases = golden::cases("events.json");
    let mut checked = 0;
    for c in &cases {
        let name = s(&c["name"]);
        if let Some(err) = c["publish_error"].as_str() {
            let got = match name {
                "agent_status_missing_originalsource_label_error" => {
                    let mut w = ManifestWork::new("cluster1", "w", vec![]);
                    w.metadata.uid = Some("x-uid".into());
                    w.metadata.resource_version = Some("1".into());
                    let ty: EventType =
                        "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
                            .parse()
                            .unwrap();
                    AgentManifestBundleCodec::new().encode("cluster1-work-agent", &ty, &w)
                }
                "source_bad_resource_version_error" => {
                    let mut w = ManifestWork::new("cluster1", "w", vec![]);
                    w.metadata.resource_version = Some("abc".into());
                    let ty: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
                        .parse()
                        .unwrap();
                    SourceManifestBundleCodec::new().encode("source1", &ty, &w)
                }
                other => panic!("{other}: unexpected error case"),
            };
            assert_eq!(got.unwrap_err().to_string(), err, "{name}");
            checked += 1;
            continue;
        }
        let ce = &c["cloudevent"];
        let ty: EventType = s(&ce["attributes"]["type"]).parse().unwrap();
        let source = s(&ce["attributes"]["source"]);
        let manifests_codec = ty.data_type.resource == "manifests";
        let action = ty.action.as_str();
        let ext = &ce["extensions"];
        let event = match ty.sub_resource {
            // Resync requests and the source's synthetic deletes are built by the generic
            // clients, not by a codec.
            _ if action == "resync_request" => continue,
            ocm_ce_core::SubResource::Spec if ext.get("metadata").is_none() => {
                assert!(name.contains("synthetic_delete"), "{name}");
                continue;
            }
            ocm_ce_core::SubResource::Spec => SourceManifestBundleCodec::new()
                .encode(source, &ty, &source_work(ce))
                .unwrap(),
            ocm_ce_core::SubResource::Status => {
                let work = agent_work(ce, manifests_codec);
                if manifests_codec {
                    AgentManifestCodec::new(None).encode(source, &ty, &work).unwrap()
                } else {
                    AgentManifestBundleCodec::new().encode(source, &ty, &work).unwrap()
                }
            }
        };
        assert_eq!(event.ty(), s(&ce["attributes"]["type"]), "{name}");
        assert_eq!(event.source().to_string(), source, "{name}");
        let mut ours = extensions(&event);
        let theirs = golden_extensions(ce);
        if ext.get("sequenceid").is_some() {
            let (_, id) = ours.iter().find(|(k, _)| k == "sequenceid").unwrap();
            let ExtensionValue::String(id) = id else {
                panic!("{name}: sequenceid type")
            };
            assert_eq!(SequenceParts::of(id.parse().unwrap()).node, 1, "{name}");
            let golden_id = s(&ext["sequenceid"]["value"]);
            for (k, v) in &mut ours {
                if k == "sequenceid" {
                    *v = ExtensionValue::String(golden_id.to_owned());
                }
            }
        }
        // sdk-go v0.15 agents send no `statushash`; ours stamp the v1.x one (a v0.15 source
        // ignores it): it must be the status' v1.x hash.
        if let Some(i) = ours.iter().position(|(k, _)| k == "statushash") {
            assert!(
                ty.sub_resource == ocm_ce_core::SubResource::Status && !manifests_codec,
                "{name}"
            );
            let (_, ExtensionValue::String(hash)) = ours.remove(i) else {
                panic!("{name}: statushash type")
            };
            assert_eq!(
                hash,
                status_hash_v1(&agent_work(ce, false).status),
                "{name}: statushash"
            );
        } else {
            assert!(
                ty.sub_resource != ocm_ce_core::SubResource::Status || manifests_codec,
                "{name}: no statushash"
            );
        }
        assert_eq!(ours, theirs, "{name}: extensions");
        assert_eq!(
            data_text(&event),
            support::payload(&ce["data"]).map(|d| String::from_utf8(d).unwrap()),
            "{name}: data"
        );
        assert_eq!(
            event.datacontenttype().unwrap_or_default(),
            s(&ce["attributes"]["datacontenttype"]),
            "{name}: content type"
        );
        checked += 1;
    }
    assert!(checked >= 14, "{checked} events checked");
}
