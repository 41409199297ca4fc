//! A `io.cloudevents.v1.CloudEvent` as the gRPC transport receives it on a `Subscribe` stream:
//! bytes → prost decode → `ocm_ce_proto::decode` (binary and structured mode, Go's receive
//! rules), then what a client does next with an event it accepted: parse its type, and encode it
//! again (a broker forwards what it decoded).
#![no_main]

use cloudevents::AttributesReader;
use libfuzzer_sys::fuzz_target;
use ocm_ce_core::EventType;
use ocm_ce_proto::pb;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = pb::CloudEvent::decode(data) else {
        return;
    };
    let _ = ocm_ce_proto::encoding(&msg);
    if let Ok(event) = ocm_ce_proto::decode(msg) {
        let _ = event.ty().parse::<EventType>();
        let _ = ocm_ce_proto::encode(&event);
        let _ = ocm_ce_proto::encode_structured(&event);
    }
});
