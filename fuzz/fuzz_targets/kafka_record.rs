//! A consumed Kafka record: headers (raw byte values), value and origin →
//! `transport::kafka::binding::decode` (structured or binary mode, Go's receive rules and
//! validation, the `kafka*` extensions), then the event type of an accepted event.
//!
//! Input framing (`ocm_ce_fuzz::Frame`): field 0 is the topic, field 1 the record key (empty:
//! none), the following fields are header name/value pairs (values as raw bytes), the payload is
//! the record value (no payload byte: a null value).
#![no_main]

use cloudevents::AttributesReader;
use libfuzzer_sys::fuzz_target;
use ocm_ce_client::transport::kafka::binding::{self, RecordOrigin};
use ocm_ce_core::EventType;
use ocm_ce_fuzz::{Frame, text};

fuzz_target!(|data: &[u8]| {
    let frame = Frame::parse(data);
    let topic = frame.text(0);
    let key = frame.fields.get(1).copied().filter(|k| !k.is_empty());
    let names: Vec<(String, &[u8])> = frame.pairs(2).into_iter().map(|(n, v)| (text(n), v)).collect();
    let headers = names.iter().map(|(n, v)| (n.as_str(), *v));
    let origin = RecordOrigin {
        topic: &topic,
        partition: 0,
        offset: i64::try_from(data.len()).unwrap_or(i64::MAX),
        key,
    };
    if let Ok(event) = binding::decode(headers, frame.payload, Some(origin)) {
        let _ = event.ty().parse::<EventType>();
    }
});
