//! Auto-trait promises of the public types.

#![allow(clippy::unwrap_used)]

fn require_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn codecs_and_types_are_send_and_sync() {
    require_send_sync::<ocm_ce_work::SourceManifestBundleCodec>();
    require_send_sync::<ocm_ce_work::AgentManifestBundleCodec>();
    require_send_sync::<ocm_ce_work::AgentManifestCodec>();
    require_send_sync::<ocm_ce_work::ManifestWork>();
    require_send_sync::<ocm_ce_work::ManifestWorkList>();
    require_send_sync::<ocm_ce_work::Error>();
    require_send_sync::<ocm_ce_work::StaticRestMapper>();
}
