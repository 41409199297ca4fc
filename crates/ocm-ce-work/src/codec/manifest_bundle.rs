//! The `manifestbundles` codecs of sources and agents.

use std::sync::Arc;

use cloudevents::event::ExtensionValue;
use cloudevents::{Data, Event};
use ocm_ce_core::extensions;
use ocm_ce_core::sequence::SequenceGenerator;
use ocm_ce_core::{Codec, CodecError, CodecErrorKind, DataType, EventBuilder, EventType};

use super::{
    agent_spec_work, agent_status_event, check_type, data_as, data_bytes, encode_error, int32_extension,
    parse_int_error, set_json_data, shared_sequence_generator, string_extension, unsupported_data_type,
};
use crate::api::{
    GoObjectMeta, ManifestResourceStatus, ManifestWork, ManifestWorkStatus, SEQUENCE_ID_ANNOTATION,
    STATUS_HASH_ANNOTATION,
};
use crate::decoding::{GoType, from_slice, schema};
use crate::payload::{ManifestBundle, ManifestBundleStatus, manifest_bundle_data_type};
use crate::validation::ManifestValidator;

/// The extension carrying a work's ObjectMeta JSON on source spec events.
#[doc(alias = "ExtensionWorkMeta")]
pub const METADATA_EXTENSION: &str = extensions::METADATA;

/// The source codec of `manifestbundles` (Go `source/codec.ManifestBundleCodec`).
///
/// Encodes specs: extensions `clustername` (the work namespace), `originalsource` (`""`),
/// `resourceid`, `resourceversion` (the work's `metadata.resourceVersion`, which must be an
/// integer) and `metadata` (Go's ObjectMeta JSON); a deleting work adds `deletiontimestamp` and
/// carries no data, any other work a [`ManifestBundle`]. Decodes statuses, which must carry a
/// `sequenceid`: the work has the event's uid and resource version, the `metadata` extension's
/// metadata if present, the sequence id annotation, the status, and the spec when the agent sent
/// it back.
#[doc(alias = "ManifestBundleCodec")]
#[derive(Debug, Clone)]
pub struct SourceManifestBundleCodec {
    data_types: [DataType; 1],
}

impl Default for SourceManifestBundleCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl SourceManifestBundleCodec {
    /// The codec.
    pub fn new() -> Self {
        Self {
            data_types: [manifest_bundle_data_type()],
        }
    }

    /// Fails exactly when [`encode`](Codec::encode) of `work` would, without writing its
    /// metadata or manifests: only the event's attributes can refuse a work (its resource
    /// version must be a 32-bit integer); what follows them is JSON of validated types.
    pub fn check(&self, source: &str, event_type: &EventType, work: &ManifestWork) -> Result<(), CodecError> {
        self.attributes(source, event_type, work)?
            .build()
            .map(drop)
            .map_err(|e| encode_error(e.to_string()))
    }

    /// The event attributes of `work`'s spec event.
    fn attributes(
        &self,
        source: &str,
        event_type: &EventType,
        work: &ManifestWork,
    ) -> Result<EventBuilder, CodecError> {
        if event_type.data_type != self.data_types[0] {
            return Err(unsupported_data_type(&event_type.data_type));
        }
        let rv = work.resource_version_str();
        let version: i64 = rv.parse().map_err(|e| {
            encode_error(format!(
                "failed to convert resource version {rv} to int: {}",
                parse_int_error("strconv.Atoi", rv, &e)
            ))
        })?;
        let mut builder = EventBuilder::new(source, event_type.clone())
            .cluster_name(work.namespace_str())
            .resource_id(work.uid_str())
            .resource_version(version);
        if let Some(at) = work
            .metadata
            .deletion_timestamp
            .as_ref()
            .filter(|t| !crate::api::is_zero_time(t))
        {
            builder = builder.deletion_timestamp(crate::api::time_to_chrono(at));
        }
        Ok(builder)
    }
}

impl Codec<ManifestWork> for SourceManifestBundleCodec {
    fn data_types(&self) -> &[DataType] {
        &self.data_types
    }

    fn encode(&self, source: &str, event_type: &EventType, work: &ManifestWork) -> Result<Event, CodecError> {
        let mut event = self
            .attributes(source, event_type, work)?
            .build()
            .map_err(|e| encode_error(e.to_string()))?;
        let meta =
            ocm_ce_core::go_json::to_vec(&GoObjectMeta(&work.metadata)).map_err(|e| encode_error(e.to_string()))?;
        event.set_extension(METADATA_EXTENSION, String::from_utf8_lossy(&meta).into_owned());
        if event.extension(extensions::DELETION_TIMESTAMP).is_some() {
            return Ok(event);
        }
        let bundle = ManifestBundle {
            manifests: work.spec.workload.manifests.clone(),
            delete_option: work.spec.delete_option.clone(),
            manifest_configs: work.spec.manifest_configs.clone(),
        };
        set_json_data(&mut event, &bundle, "manifestwork status")?;
        Ok(event)
    }

    fn decode(&self, event: &Event) -> Result<ManifestWork, CodecError> {
        check_type(event, &self.data_types[0])?;
        let resource_id = string_extension(event, extensions::RESOURCE_ID)?;
        let version = int32_extension(event, extensions::RESOURCE_VERSION)?;
        let sequence_id = string_extension(event, extensions::SEQUENCE_ID)?;
        let mut work = ManifestWork::default();
        if let Some(meta) = event.extension(METADATA_EXTENSION) {
            // Go returns these errors unwrapped.
            let text = extensions::to_string(Some(meta))
                .map_err(|e| CodecError::new(CodecErrorKind::BadExtension, e.to_string()))?;
            work.metadata = from_slice(text.as_bytes(), &GoType::Struct(&schema::OBJECT_META))
                .map_err(|e| CodecError::new(CodecErrorKind::BadExtension, e))?;
        }
        work.metadata.uid = Some(resource_id);
        work.metadata.resource_version = Some(version.to_string());
        let annotations = work.metadata.annotations.get_or_insert_with(Default::default);
        annotations.insert(SEQUENCE_ID_ANNOTATION.to_owned(), sequence_id);
        // The hash a v1.x agent computed of this status (kept, so a status resync request
        // lists what that agent compares with); only a string is one.
        match event.extension(extensions::STATUS_HASH) {
            Some(ExtensionValue::String(hash)) => {
                annotations.insert(STATUS_HASH_ANNOTATION.to_owned(), hash.clone());
            }
            _ => {
                annotations.remove(STATUS_HASH_ANNOTATION);
            }
        }
        let data = data_bytes(event);
        let status: ManifestBundleStatus = data_as(event, &data, &schema::MANIFEST_BUNDLE_STATUS)?;
        if let Some(bundle) = status.manifest_bundle {
            work.spec.workload.manifests = bundle.manifests;
            work.spec.delete_option = bundle.delete_option;
            work.spec.manifest_configs = bundle.manifest_configs;
        }
        work.status = ManifestWorkStatus {
            conditions: status.conditions,
            resource_status: ManifestResourceStatus {
                manifests: status.resource_status,
            },
        };
        Ok(work)
    }
}

/// The agent codec of `manifestbundles` (Go `agent/codec.ManifestBundleCodec`).
///
/// Decodes specs: the work is named by its UID in the cluster namespace, labelled with the
/// source and annotated with the data type; a deletion gets its deletion time and the API
/// finalizer and no spec; otherwise the manifests must pass the manifest validator
/// (`manifests are invalid, …`). Encodes statuses with a fresh sequence id: the work needs an
/// integer resource version and the originalsource label; the data is a
/// [`ManifestBundleStatus`] without the bundle.
#[doc(alias = "ManifestBundleCodec")]
#[derive(Debug, Clone)]
pub struct AgentManifestBundleCodec {
    data_types: [DataType; 1],
    sequence: Arc<SequenceGenerator>,
    validator: ManifestValidator,
}

impl Default for AgentManifestBundleCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentManifestBundleCodec {
    /// The codec, with the process-wide sequence id generator.
    pub fn new() -> Self {
        Self {
            data_types: [manifest_bundle_data_type()],
            sequence: shared_sequence_generator(),
            validator: ManifestValidator::default(),
        }
    }

    super::agent_codec_setters!();
}

impl Codec<ManifestWork> for AgentManifestBundleCodec {
    fn data_types(&self) -> &[DataType] {
        &self.data_types
    }

    fn encode(&self, source: &str, event_type: &EventType, work: &ManifestWork) -> Result<Event, CodecError> {
        let mut event = agent_status_event(
            source,
            event_type,
            &self.data_types[0],
            work,
            &self.sequence,
            |_| Ok(()),
        )?;
        let status = crate::status_hash::WrittenStatus::new(&work.status);
        // As sdk-go v1.x agents do; v0.15 sources ignore the extension.
        event.set_extension(extensions::STATUS_HASH, status.hash_v1());
        event.set_data("application/json", Data::Binary(status.bundle_status_json()));
        Ok(event)
    }

    fn decode(&self, event: &Event) -> Result<ManifestWork, CodecError> {
        agent_spec_work(
            event,
            &self.data_types[0],
            &self.validator,
            "manifests are invalid",
            |work, data| {
                let bundle: ManifestBundle = data_as(event, data, &schema::MANIFEST_BUNDLE)?;
                work.spec.workload.manifests = bundle.manifests;
                work.spec.delete_option = bundle.delete_option;
                work.spec.manifest_configs = bundle.manifest_configs;
                Ok(())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use ocm_ce_core::SubResource;
    use ocm_ce_core::event_type::action;

    use super::*;
    use crate::api::Manifest;

    #[test]
    fn check_refuses_exactly_what_encode_refuses() {
        let codec = SourceManifestBundleCodec::new();
        let create = EventType::new(manifest_bundle_data_type(), SubResource::Spec, action::CREATE_REQUEST);
        let other = EventType::new(
            DataType::new("example.com", "v1", "things"),
            SubResource::Spec,
            action::CREATE_REQUEST,
        );
        for (version, deleting) in [
            ("1", false),
            ("2147483647", true),
            ("2147483648", false),
            ("-1", false),
            ("x", false),
            ("", true),
        ] {
            let mut work = ManifestWork::default();
            work.metadata.name = Some("w".into());
            work.metadata.namespace = Some("cluster1".into());
            work.metadata.uid = Some("u".into());
            work.metadata.resource_version = Some(version.into());
            work.spec.workload.manifests = vec![Manifest::from_raw(r#"{"kind":"ConfigMap"}"#).unwrap()];
            if deleting {
                work.metadata.deletion_timestamp = Some(crate::api::time_from_chrono(chrono::Utc::now()));
            }
            for ty in [&create, &other] {
                let encoded = codec.encode("s", ty, &work).map(drop).map_err(|e| e.to_string());
                let checked = codec.check("s", ty, &work).map_err(|e| e.to_string());
                assert_eq!(checked, encoded, "version {version:?}, type {ty}");
            }
        }
    }
}
