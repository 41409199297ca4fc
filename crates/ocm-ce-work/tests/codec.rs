//! The Go unit scenarios of the work codecs (source and agent), the work utilities and the
//! manifest validator, plus property tests of the status hash and codec round trips.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Event, EventBuilder as _, EventBuilderV10};
use ocm_ce_core::sequence::SequenceGenerator;
use ocm_ce_core::{Codec, EventExt, EventType};
use ocm_ce_work::api::{
    ORIGINAL_SOURCE_LABEL, SEQUENCE_ID_ANNOTATION, condition, format_time, parse_time, time_from_chrono,
};
use ocm_ce_work::codec::METADATA_EXTENSION;
use ocm_ce_work::payload::{ManifestBundle, ManifestBundleStatus, manifest_bundle_data_type, manifest_data_type};
use ocm_ce_work::{
    AgentManifestBundleCodec, AgentManifestCodec, DeleteOption, DeletePropagationPolicy, FeedbackRule, FeedbackType,
    FeedbackValue, FieldValue, JsonPath, Manifest, ManifestCondition, ManifestConfigOption, ManifestResourceMeta,
    ManifestValidator, ManifestWork, ManifestWorkStatus, ResourceIdentifier, SourceManifestBundleCodec,
    StatusFeedbackResult, UpdateStrategy, ValueType, mark_manifests_deleted, status_hash, work_uid,
};
use proptest::prelude::*;

const BUNDLE_SPEC: &str = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.test";
const BUNDLE_STATUS: &str = "io.open-cluster-management.works.v1alpha1.manifestbundles.status.test";
const MANIFEST_SPEC: &str = "io.open-cluster-management.works.v1alpha1.manifests.spec.test";
const MANIFEST_STATUS: &str = "io.open-cluster-management.works.v1alpha1.manifests.status.test";

fn ty(s: &str) -> EventType {
    s.parse().unwrap()
}

fn config_map() -> Manifest {
    Manifest::from_raw(
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"test","namespace":"test"},"data":{"test":"test"}}"#,
    )
    .unwrap()
}

fn event(ty: &str, source: &str, extensions: &[(&str, ExtensionValue)]) -> Event {
    let mut b = EventBuilderV10::new().id("1").source(source).ty(ty);
    for (k, v) in extensions {
        b = b.extension(k, v.clone());
    }
    b.build().unwrap()
}

fn string(s: &str) -> ExtensionValue {
    ExtensionValue::String(s.to_owned())
}

fn with_json<T: serde::Serialize>(mut e: Event, payload: &T) -> Event {
    e.set_data("application/json", ocm_ce_core::go_json::to_vec(payload).unwrap());
    e
}

fn agent_work(rv: &str, label: bool, manifests: usize) -> ManifestWork {
    let mut w = ManifestWork::new("cluster1", "test", vec![config_map(); manifests]);
    w.metadata.uid = Some("test".into());
    w.metadata.resource_version = Some(rv.into());
    if label {
        w.metadata.labels = Some([(ORIGINAL_SOURCE_LABEL.to_owned(), "source1".to_owned())].into());
    }
    w
}

fn feedback_status() -> ManifestWorkStatus {
    let mut s = ManifestWorkStatus::default();
    s.resource_status.manifests = vec![ManifestCondition {
        resource_meta: ManifestResourceMeta {
            version: "v1".into(),
            kind: "ConfigMap".into(),
            resource: "configmaps".into(),
            name: "test".into(),
            namespace: "test".into(),
            ..Default::default()
        },
        status_feedback: StatusFeedbackResult {
            values: vec![FeedbackValue {
                name: "status".into(),
                field_value: FieldValue {
                    type_: ValueType::JsonRaw,
                    json_raw: Some(r#"{"phase":"Running"}"#.into()),
                    ..Default::default()
                },
            }],
        },
        conditions: Some(vec![]),
    }];
    s
}

#[test]
fn agent_codecs_declare_their_data_types() {
    assert_eq!(
        AgentManifestBundleCodec::new().data_types(),
        &[manifest_bundle_data_type()]
    );
    assert_eq!(AgentManifestCodec::new(None).data_types(), &[manifest_data_type()]);
    assert_eq!(
        SourceManifestBundleCodec::new().data_types(),
        &[manifest_bundle_data_type()]
    );
}

#[test]
fn agent_encoding_checks_its_preconditions() {
    let bundle = AgentManifestBundleCodec::new();
    let manifest = AgentManifestCodec::new(None);
    let codecs: [(&dyn Codec<ManifestWork>, &str, &str); 2] = [
        (&bundle, BUNDLE_STATUS, MANIFEST_STATUS),
        (&manifest, MANIFEST_STATUS, BUNDLE_STATUS),
    ];
    for (codec, own, other) in codecs {
        let err = codec
            .encode("cluster1-work-agent", &ty(other), &agent_work("13", true, 1))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("unsupported cloudevents data type"),
            "{err}"
        );
        let err = codec
            .encode("cluster1-work-agent", &ty(own), &agent_work("abc", true, 1))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to parse the resourceversion of the work test, strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        let err = codec
            .encode("cluster1-work-agent", &ty(own), &agent_work("13", false, 1))
            .unwrap_err();
        assert_eq!(err.to_string(), "failed to find originalsource from the work test");
        for status in [ManifestWorkStatus::default(), feedback_status()] {
            let mut w = agent_work("13", true, 1);
            w.status = status;
            let e = codec.encode("cluster1-work-agent", &ty(own), &w).unwrap();
            assert_eq!(e.resource_version().unwrap(), 13);
            assert_eq!(e.original_source().unwrap(), "source1");
            assert_eq!(e.cluster_name().unwrap(), "cluster1");
            assert!(!e.sequence_id().unwrap().is_empty());
        }
    }
    let err = manifest
        .encode("a", &ty(MANIFEST_STATUS), &agent_work("13", true, 2))
        .unwrap_err();
    assert_eq!(err.to_string(), "too many manifests in the work test");
    // A deleted work may have any number of manifests.
    let mut deleted = agent_work("13", true, 2);
    mark_manifests_deleted(&mut deleted, chrono::Utc::now());
    manifest.encode("a", &ty(MANIFEST_STATUS), &deleted).unwrap();
}

#[test]
fn agent_decoding_checks_type_and_extensions_and_validates_the_spec() {
    let bundle = AgentManifestBundleCodec::new();
    let manifest = AgentManifestCodec::new(None);
    let codecs: [(&dyn Codec<ManifestWork>, &str); 2] = [(&bundle, BUNDLE_SPEC), (&manifest, MANIFEST_SPEC)];
    for (codec, own) in codecs {
        let rid = ("resourceid", string("test"));
        let rv = ("resourceversion", string("13"));
        let cluster = ("clustername", string("cluster1"));
        let err = codec.decode(&event("test", "source1", &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to parse cloud event type test, unsupported cloudevents type format: test"
        );
        let err = codec
            .decode(&event("test-group.v1.test.spec.test", "source1", &[]))
            .unwrap_err();
        assert_eq!(err.to_string(), "unsupported cloudevents data type test-group.v1.test");
        let err = codec.decode(&event(own, "source1", &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to get resourceid extension: invalid CloudEvents value: <nil>"
        );
        let err = codec
            .decode(&event(own, "source1", std::slice::from_ref(&rid)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to get resourceversion extension: invalid CloudEvents value: <nil>"
        );
        let err = codec
            .decode(&event(own, "source1", &[rid.clone(), rv.clone()]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to get clustername extension: invalid CloudEvents value: <nil>"
        );

        let deleting = event(
            own,
            "source1",
            &[
                rid.clone(),
                rv.clone(),
                cluster.clone(),
                ("deletiontimestamp", string("1985-04-12T23:20:50.52Z")),
            ],
        );
        let w = codec.decode(&deleting).unwrap();
        assert_eq!(w.resource_version_str(), "13");
        assert_eq!(
            w.finalizers(),
            ["cluster.open-cluster-management.io/manifest-work-cleanup"]
        );
        assert_eq!(
            format_time(w.metadata.deletion_timestamp.as_ref().unwrap()).unwrap(),
            "1985-04-12T23:20:50Z"
        );
        assert!(w.spec.workload.manifests.is_empty());

        let base = event(own, "source1", &[rid.clone(), rv.clone(), cluster.clone()]);
        let empty = if own == BUNDLE_SPEC {
            with_json(base.clone(), &ManifestBundle::default())
        } else {
            with_json(base.clone(), &serde_json::json!({}))
        };
        assert_eq!(
            codec.decode(&empty).unwrap_err().kind(),
            ocm_ce_core::CodecErrorKind::Invalid
        );

        let valid = if own == BUNDLE_SPEC {
            with_json(
                base,
                &ManifestBundle {
                    manifests: vec![config_map()],
                    ..Default::default()
                },
            )
        } else {
            with_json(base, &serde_json::json!({"manifest": config_map().to_value().unwrap()}))
        };
        let w = codec.decode(&valid).unwrap();
        assert_eq!((w.name(), w.namespace_str(), w.uid_str()), ("test", "cluster1", "test"));
        assert_eq!(w.label(ORIGINAL_SOURCE_LABEL), Some("source1"));
        assert_eq!(w.spec.workload.manifests.len(), 1);
    }
}

/// Go's `Event.DataAs` picks the decoder by the data content type; its errors name the payload's
/// Go type.
#[test]
fn data_of_other_content_types_fails_like_gos_data_as() {
    let bundle = AgentManifestBundleCodec::new();
    let manifest = AgentManifestCodec::new(None);
    let source = SourceManifestBundleCodec::new();
    let spec = [
        ("resourceid", string("test")),
        ("resourceversion", string("13")),
        ("clustername", string("cluster1")),
    ];
    let status = [
        ("resourceid", string("test")),
        ("resourceversion", string("13")),
        ("sequenceid", string("1")),
    ];
    let cases: [(&dyn Codec<ManifestWork>, Event, &str); 3] = [
        (&bundle, event(BUNDLE_SPEC, "source1", &spec), "payload.ManifestBundle"),
        (&manifest, event(MANIFEST_SPEC, "source1", &spec), "payload.Manifest"),
        (
            &source,
            event(BUNDLE_STATUS, "cluster1", &status),
            "payload.ManifestBundleStatus",
        ),
    ];
    for (codec, base, go_type) in cases {
        let with = |content_type: &str| {
            let mut e = base.clone();
            e.set_data(content_type, b"x".to_vec());
            codec.decode(&e).unwrap_err().to_string()
        };
        assert_eq!(
            with("text/plain"),
            format!("failed to unmarshal event data x, text.Decode out: want *string, got *{go_type}")
        );
        assert_eq!(
            with("application/xml"),
            "failed to unmarshal event data x, [xml] found bytes \"x\", but failed to unmarshal: EOF"
        );
        assert_eq!(
            with("image/png"),
            "failed to unmarshal event data x, [decode] unsupported content type: \"image/png\""
        );
    }
}

#[test]
fn source_encoding_needs_the_bundle_type_and_an_integer_version() {
    let codec = SourceManifestBundleCodec::new();
    let mut w = ManifestWork::new("cluster1", "test", vec![config_map()]);
    w.metadata.uid = Some("test".into());
    w.metadata.resource_version = Some("0".into());
    let err = codec.encode("source1", &ty(MANIFEST_SPEC), &w).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported cloudevents data type io.open-cluster-management.works.v1alpha1.manifests"
    );
    let e = codec.encode("source1", &ty(BUNDLE_SPEC), &w).unwrap();
    assert_eq!(e.resource_version().unwrap(), 0);
    assert_eq!(e.original_source().unwrap(), "");
    assert_eq!(e.datacontenttype(), Some("application/json"));
    // A deleting work is sent without data.
    w.metadata.deletion_timestamp = Some(parse_time("2024-10-01T12:00:00.123456789Z").unwrap());
    let e = codec.encode("source1", &ty(BUNDLE_SPEC), &w).unwrap();
    assert!(e.data().is_none() && e.datacontenttype().is_none());
    assert_eq!(
        e.extension("deletiontimestamp"),
        Some(&string("2024-10-01T12:00:00.123456789Z"))
    );
}

#[test]
fn source_decoding_restores_status_metadata_and_spec() {
    let codec = SourceManifestBundleCodec::new();
    let rid = ("resourceid", string("test"));
    let rv = ("resourceversion", string("13"));
    for bad in [
        event("test", "a", &[]),
        event(MANIFEST_STATUS, "a", &[]),
        event(BUNDLE_STATUS, "a", &[]),
        event(BUNDLE_STATUS, "a", std::slice::from_ref(&rid)),
        event(BUNDLE_STATUS, "a", &[rid.clone(), rv.clone()]),
    ] {
        codec.decode(&bad).unwrap_err();
    }
    let seq = ("sequenceid", string("1834773391719010304"));
    let status = ManifestBundleStatus {
        conditions: vec![condition("Test", "True", "", "", None)],
        ..Default::default()
    };
    let e = with_json(
        event(BUNDLE_STATUS, "a", &[rid.clone(), rv.clone(), seq.clone()]),
        &status,
    );
    let w = codec.decode(&e).unwrap();
    assert_eq!((w.uid_str(), w.resource_version_str()), ("test", "13"));
    assert_eq!(w.annotation(SEQUENCE_ID_ANNOTATION), Some("1834773391719010304"));
    assert_eq!(w.status.conditions[0].type_, "Test");

    let meta = r#"{"name":"work1","namespace":"cluster1","labels":{"test":"true"},"annotations":{"test":"true"},"finalizers":["test"]}"#;
    let status = ManifestBundleStatus {
        manifest_bundle: Some(ManifestBundle {
            manifests: vec![config_map()],
            delete_option: Some(DeleteOption {
                propagation_policy: DeletePropagationPolicy::Foreground,
                selectively_orphan: None,
            }),
            manifest_configs: vec![ManifestConfigOption {
                resource_identifier: ResourceIdentifier {
                    resource: "configmaps".into(),
                    name: "test".into(),
                    namespace: "test".into(),
                    ..Default::default()
                },
                ..Default::default()
            }],
        }),
        conditions: vec![condition("Test", "True", "", "", None)],
        resource_status: feedback_status().resource_status.manifests,
    };
    let e = with_json(
        event(BUNDLE_STATUS, "a", &[rid, rv, seq, (METADATA_EXTENSION, string(meta))]),
        &status,
    );
    let w = codec.decode(&e).unwrap();
    assert_eq!((w.name(), w.namespace_str()), ("work1", "cluster1"));
    assert_eq!(w.label("test"), Some("true"));
    assert_eq!(w.annotation("test"), Some("true"));
    assert_eq!(w.annotation(SEQUENCE_ID_ANNOTATION), Some("1834773391719010304"));
    assert_eq!(w.finalizers(), ["test"]);
    assert_eq!(w.spec.workload.manifests, vec![config_map()]);
    assert_eq!(
        w.spec.delete_option.unwrap().propagation_policy,
        DeletePropagationPolicy::Foreground
    );
    assert_eq!(w.spec.manifest_configs.len(), 1);
    assert_eq!(
        w.status.resource_status.manifests,
        feedback_status().resource_status.manifests
    );
}

#[test]
fn work_uids_are_deterministic() {
    assert_eq!(
        work_uid("source1", "cluster1", "work1"),
        work_uid("source1", "cluster1", "work1")
    );
    assert_ne!(
        work_uid("source1", "cluster1", "work1"),
        work_uid("source1", "cluster1", "work2")
    );
}

#[test]
fn a_typed_object_encodes_into_a_raw_manifest_that_reads_back() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let cm = ConfigMap {
        metadata: ocm_ce_work::ObjectMeta {
            name: Some("test".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some([("a".to_owned(), "b".to_owned())].into()),
        ..Default::default()
    };
    let m = Manifest::from_object(&cm).unwrap();
    assert!(m.raw().ends_with('\n'));
    let back: ConfigMap = serde_json::from_str(m.raw()).unwrap();
    assert_eq!(back, cm);
}

/// Like Go's validator test: a Secret whose `data` is `size` bytes, written as an Unstructured.
fn secret(size: usize) -> Manifest {
    Manifest::from_object(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": "test", "name": "test"},
        "data": "a".repeat(size),
    }))
    .unwrap()
}

#[test]
fn the_manifest_size_limit_is_computed_like_go() {
    let v = ManifestValidator::new();
    assert_eq!(v.limit(), 512_000);
    v.validate(&[secret(100 * 1024), secret(100 * 1024)]).unwrap();
    assert_eq!(
        v.validate(&[secret(300 * 1024), secret(200 * 1024)])
            .unwrap_err()
            .to_string(),
        "the size of manifests is 512192 bytes which exceeds the 512000 limit"
    );
    assert!(
        ManifestValidator::new()
            .with_limit(600_000)
            .validate(&[secret(300 * 1024), secret(200 * 1024)])
            .is_ok()
    );
}

fn arb_time() -> impl Strategy<Value = ocm_ce_work::Time> {
    (-62_135_596_800i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(s, n)| time_from_chrono(chrono::DateTime::from_timestamp(s, n).unwrap()))
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,8}",
        "\\PC{0,8}",
        "[<>&\"\\\\\n\t\u{2028}\u{7f}\u{0}-\u{1f}]{0,6}"
    ]
}

fn arb_condition() -> impl Strategy<Value = ocm_ce_work::Condition> {
    (arb_text(), arb_text(), any::<i64>(), arb_time(), arb_text(), arb_text()).prop_map(|(t, s, g, at, r, m)| {
        let mut c = condition(t, s, r, m, Some(at));
        c.observed_generation = Some(g).filter(|g| *g != 0);
        c
    })
}

fn arb_field_value() -> impl Strategy<Value = FieldValue> {
    (
        prop_oneof![
            Just(ValueType::Integer),
            Just(ValueType::JsonRaw),
            arb_text().prop_map(ValueType::from)
        ],
        proptest::option::of(any::<i64>()),
        proptest::option::of(arb_text()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(arb_text()),
    )
        .prop_map(|(type_, integer, string, boolean, json_raw)| FieldValue {
            type_,
            integer,
            string,
            boolean,
            json_raw,
        })
}

fn arb_manifest_condition() -> impl Strategy<Value = ManifestCondition> {
    (
        any::<i32>(),
        arb_text(),
        proptest::collection::vec((arb_text(), arb_field_value()), 0..3),
        proptest::option::of(proptest::collection::vec(arb_condition(), 0..3)),
    )
        .prop_map(|(ordinal, name, values, conditions)| ManifestCondition {
            resource_meta: ManifestResourceMeta {
                ordinal,
                name,
                ..Default::default()
            },
            status_feedback: StatusFeedbackResult {
                values: values
                    .into_iter()
                    .map(|(name, field_value)| FeedbackValue { name, field_value })
                    .collect(),
            },
            conditions,
        })
}

fn arb_status() -> impl Strategy<Value = ManifestWorkStatus> {
    (
        proptest::collection::vec(arb_condition(), 0..4),
        proptest::collection::vec(arb_manifest_condition(), 0..3),
    )
        .prop_map(|(conditions, manifests)| {
            let mut s = ManifestWorkStatus {
                conditions,
                ..Default::default()
            };
            s.resource_status.manifests = manifests;
            s
        })
}

fn arb_spec() -> impl Strategy<Value = (Vec<Manifest>, Option<DeleteOption>, Vec<ManifestConfigOption>)> {
    (
        proptest::collection::vec(("[a-z]{1,8}", arb_text()), 1..4),
        proptest::option::of(prop_oneof![
            Just(DeletePropagationPolicy::Foreground),
            Just(DeletePropagationPolicy::Orphan)
        ]),
        proptest::collection::vec(("[a-z]{1,8}", any::<bool>(), arb_text()), 0..3),
    )
        .prop_map(|(names, policy, configs)| {
            let manifests = names
                .into_iter()
                .map(|(name, value)| {
                    Manifest::from_object(&serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": "default"},
                        "data": {"v": value, "n": 1.5},
                    }))
                    .unwrap()
                })
                .collect();
            let delete_option = policy.map(|p| DeleteOption {
                propagation_policy: p,
                selectively_orphan: None,
            });
            let configs = configs
                .into_iter()
                .map(|(name, force, path)| ManifestConfigOption {
                    resource_identifier: ResourceIdentifier {
                        resource: "configmaps".into(),
                        name,
                        ..Default::default()
                    },
                    feedback_rules: vec![FeedbackRule {
                        type_: FeedbackType::JsonPaths,
                        json_paths: vec![JsonPath {
                            name: "p".into(),
                            path,
                            ..Default::default()
                        }],
                    }],
                    update_strategy: Some(UpdateStrategy {
                        type_: ocm_ce_work::UpdateStrategyType::ServerSideApply,
                        server_side_apply: Some(ocm_ce_work::ServerSideApplyConfig {
                            force,
                            field_manager: "work-agent".into(),
                        }),
                    }),
                })
                .collect();
            (manifests, delete_option, configs)
        })
}

proptest! {
    #[test]
    fn the_status_hash_is_stable_under_a_json_round_trip(status in arb_status()) {
        let json = ocm_ce_core::go_json::to_vec(&status).unwrap();
        let back: ManifestWorkStatus = serde_json::from_slice(&json).unwrap();
        // Sub-second precision is dropped by the JSON form, on both sides alike.
        prop_assert_eq!(status_hash(&back), status_hash(&status));
        let again: ManifestWorkStatus = serde_json::from_slice(&ocm_ce_core::go_json::to_vec(&back).unwrap()).unwrap();
        prop_assert_eq!(again, back);
    }

    #[test]
    fn a_source_spec_reaches_the_agent_unchanged(spec in arb_spec(), rv in 0i64..i64::from(i32::MAX), deleting in any::<bool>()) {
        let (manifests, delete_option, configs) = spec;
        let mut w = ManifestWork::new("cluster1", "work1", manifests);
        w.metadata.uid = Some(work_uid("source1", "cluster1", "work1"));
        w.metadata.resource_version = Some(rv.to_string());
        w.spec.delete_option = delete_option;
        w.spec.manifest_configs = configs;
        if deleting {
            w.metadata.deletion_timestamp = Some(time_from_chrono(chrono::Utc::now()));
        }
        let e = SourceManifestBundleCodec::new().encode("source1", &ty(BUNDLE_SPEC), &w).unwrap();
        let got = AgentManifestBundleCodec::new().decode(&e).unwrap();
        prop_assert_eq!(got.uid_str(), w.uid_str());
        prop_assert_eq!(got.name(), w.uid_str());
        prop_assert_eq!(got.resource_version_str(), w.resource_version_str());
        if deleting {
            prop_assert_eq!(&got.metadata.deletion_timestamp, &w.metadata.deletion_timestamp);
            prop_assert!(got.spec.workload.manifests.is_empty());
        } else {
            let go_json = |ms: &[Manifest]| ms.iter().map(Manifest::to_go_json).collect::<Vec<_>>();
            prop_assert_eq!(go_json(&got.spec.workload.manifests), go_json(&w.spec.workload.manifests));
            prop_assert_eq!(&got.spec.delete_option, &w.spec.delete_option);
            prop_assert_eq!(&got.spec.manifest_configs, &w.spec.manifest_configs);
        }
    }

    #[test]
    fn an_agent_status_reaches_the_source_unchanged(status in arb_status(), rv in 0i64..i64::from(i32::MAX)) {
        let generator = Arc::new(SequenceGenerator::new(1));
        let mut w = agent_work(&rv.to_string(), true, 1);
        w.status = status;
        let e = AgentManifestBundleCodec::new()
            .with_sequence_generator(Arc::clone(&generator))
            .encode("cluster1-work-agent", &ty(BUNDLE_STATUS), &w)
            .unwrap();
        let got = SourceManifestBundleCodec::new().decode(&e).unwrap();
        prop_assert_eq!(got.uid_str(), w.uid_str());
        prop_assert_eq!(got.resource_version_str(), w.resource_version_str());
        prop_assert_eq!(got.annotation(SEQUENCE_ID_ANNOTATION).unwrap(), e.sequence_id().unwrap());
        prop_assert_eq!(status_hash(&got.status), status_hash(&w.status));
        let first = w.status.resource_status.manifests.first().cloned();
        let e = AgentManifestCodec::new(None).encode("cluster1-work-agent", &ty(MANIFEST_STATUS), &w).unwrap();
        let payload: ocm_ce_work::payload::ManifestStatus =
            serde_json::from_slice(&support_data(&e)).unwrap();
        // Times keep whole seconds on the wire.
        let go = |c: &Option<ManifestCondition>| ocm_ce_core::go_json::to_vec(c).unwrap();
        prop_assert_eq!(go(&payload.status), go(&first));
    }
}

fn support_data(e: &Event) -> Vec<u8> {
    match e.data() {
        Some(cloudevents::Data::Binary(b)) => b.clone(),
        other => panic!("unexpected data {other:?}"),
    }
}
