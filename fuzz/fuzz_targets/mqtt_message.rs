//! A received MQTT 5 PUBLISH: the Content Type property, the user properties and the payload →
//! `transport::mqtt::binding::decode` (structured or binary mode, Go's receive rules and
//! validation), then the event type of an accepted event.
//!
//! Input framing (`ocm_ce_fuzz::Frame`): field 0 is the content type (empty: absent), the
//! following fields are user property name/value pairs, the payload is the PUBLISH payload.
#![no_main]

use cloudevents::AttributesReader;
use libfuzzer_sys::fuzz_target;
use ocm_ce_client::transport::mqtt::binding;
use ocm_ce_core::EventType;
use ocm_ce_fuzz::{Frame, text};

fuzz_target!(|data: &[u8]| {
    let frame = Frame::parse(data);
    let content_type = frame.text(0);
    let content_type = Some(content_type.as_str()).filter(|c| !c.is_empty());
    let properties: Vec<(String, String)> = frame.pairs(1).into_iter().map(|(n, v)| (text(n), text(v))).collect();
    let payload = frame.payload.unwrap_or_default();
    if let Ok(event) = binding::decode(content_type, &properties, payload) {
        let _ = event.ty().parse::<EventType>();
    }
});
