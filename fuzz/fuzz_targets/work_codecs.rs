//! The ManifestWork codecs on a received event: the agent's `manifestbundles` and `manifests`
//! codecs (spec events; the latter with and without a REST mapper) and the source's
//! `manifestbundles` codec (status events) decode the event's type, extensions, content type and
//! data (`ocm-ce-work` `codec*`, the Go-compatible JSON decoding of `decoding.rs`); a decoded work
//! is then hashed and written as Go JSON, as the clients do when they store it.
//!
//! Input framing (`ocm_ce_fuzz::Frame`): field 0 is the event type, field 1 the source, field 2
//! the data content type (empty: none), the following fields are extension name/value pairs,
//! the payload is the data (binary, as the MQTT, Kafka and gRPC bindings deliver it). An
//! extension name ending in `#i` is an integer extension (its value parsed as `i64`), `#b` a
//! boolean one (`true`): the gRPC binding keeps those proto types; every other extension is a
//! string, as over MQTT and Kafka.
#![no_main]

use std::sync::Arc;

use cloudevents::{AttributesWriter, Data, EventBuilder, EventBuilderV10};
use libfuzzer_sys::fuzz_target;
use ocm_ce_core::Codec;
use ocm_ce_fuzz::{Frame, text};
use ocm_ce_work::{
    AgentManifestBundleCodec, AgentManifestCodec, ManifestWork, SourceManifestBundleCodec, StaticRestMapper,
    status_hash,
};

fn check(work: &ManifestWork) {
    let _ = status_hash(&work.status);
    let _ = ocm_ce_core::go_json::to_vec(work);
}

fuzz_target!(|data: &[u8]| {
    let frame = Frame::parse(data);
    let mut builder = EventBuilderV10::new()
        .id("0f8b7a2c-3d4e-4f50-8a1b-2c3d4e5f6a7b")
        .ty(frame.text(0))
        .source(frame.text(1));
    for (name, value) in frame.pairs(3) {
        let (name, value) = (text(name), text(value));
        builder = if let Some(name) = name.strip_suffix("#i") {
            match value.parse::<i64>() {
                Ok(i) => builder.extension(name, i),
                Err(_) => builder.extension(name, value),
            }
        } else if let Some(name) = name.strip_suffix("#b") {
            builder.extension(name, value == "true")
        } else {
            builder.extension(&name, value)
        };
    }
    let Ok(mut event) = builder.build() else {
        return;
    };
    if let Some(payload) = frame.payload.filter(|p| !p.is_empty()) {
        event.set_data_unchecked(Data::Binary(payload.to_vec()));
    }
    event.set_datacontenttype(Some(frame.text(2)).filter(|c| !c.is_empty()));

    if let Ok(work) = AgentManifestBundleCodec::new().decode(&event) {
        check(&work);
    }
    if let Ok(work) = AgentManifestCodec::new(None).decode(&event) {
        check(&work);
    }
    let mapper = StaticRestMapper::new().with("", "v1", "ConfigMap", "configmaps").with(
        "apps",
        "v1",
        "Deployment",
        "deployments",
    );
    if let Ok(work) = AgentManifestCodec::new(Some(Arc::new(mapper))).decode(&event) {
        check(&work);
    }
    if let Ok(work) = SourceManifestBundleCodec::new().decode(&event) {
        check(&work);
    }
});
