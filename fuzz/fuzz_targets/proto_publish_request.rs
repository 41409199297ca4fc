//! The two requests the gRPC broker decodes from its clients: a `PublishRequest` (bytes →
//! prost → the carried `CloudEvent` → `ocm_ce_proto::decode` → event type, as the broker's
//! `Publish`) and, from the same bytes, a `SubscriptionRequest` (prost → the data type the
//! broker parses in `Subscribe`).
#![no_main]

use cloudevents::AttributesReader;
use libfuzzer_sys::fuzz_target;
use ocm_ce_core::{DataType, EventType};
use ocm_ce_proto::pb;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = pb::PublishRequest::decode(data)
        && let Some(msg) = request.event
        && let Ok(event) = ocm_ce_proto::decode(msg)
    {
        let _ = event.ty().parse::<EventType>();
    }
    if let Ok(request) = pb::SubscriptionRequest::decode(data)
        && !request.data_type.is_empty()
    {
        let _ = request.data_type.parse::<DataType>();
    }
});
