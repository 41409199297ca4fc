//! The `manifests` codec of agents (one manifest per event).

use std::fmt;
use std::sync::Arc;

use cloudevents::Event;
use ocm_ce_core::sequence::SequenceGenerator;
use ocm_ce_core::{Codec, CodecError, CodecErrorKind, DataType, EventType};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::shared_sequence_generator;
use super::{agent_spec_work, agent_status_event, bad_data, data_as, encode_error, set_json_data};
use crate::api::{Manifest, ManifestConfigOption, ManifestWork, ResourceIdentifier, condition_type};
use crate::conditions::is_status_condition_true;
use crate::decoding::{kind_of, schema};
use crate::encoding::{go_quote, unstructured_json};
use crate::payload::{ManifestPayload, ManifestStatus, manifest_data_type};
use crate::rest_mapper::RestMapper;
use crate::validation::{ManifestValidator, lacks_kind, missing_kind};

/// The agent codec of `manifests` (Go `agent/codec.ManifestCodec`).
///
/// Decodes specs like [`AgentManifestBundleCodec`](super::AgentManifestBundleCodec), with one
/// manifest: the object is re-written as Go writes an `Unstructured` (keys sorted, trailing
/// newline), `deleteOption` is copied, and a `configOption` becomes one
/// [`ManifestConfigOption`] whose resource comes from the REST mapper (empty without one).
/// Validation errors read `manifest is invalid, …`. Encodes statuses as a [`ManifestStatus`]
/// with the first manifest's status; unless the work is `Deleted`, it must hold exactly one
/// manifest.
#[doc(alias = "ManifestCodec")]
#[derive(Clone)]
pub struct AgentManifestCodec {
    data_types: [DataType; 1],
    rest_mapper: Option<Arc<dyn RestMapper>>,
    sequence: Arc<SequenceGenerator>,
    validator: ManifestValidator,
}

impl fmt::Debug for AgentManifestCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentManifestCodec")
            .field("rest_mapper", &self.rest_mapper.is_some())
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

impl AgentManifestCodec {
    /// The codec; without a REST mapper the resource of a configured manifest stays empty.
    pub fn new(rest_mapper: Option<Arc<dyn RestMapper>>) -> Self {
        Self {
            data_types: [manifest_data_type()],
            rest_mapper,
            sequence: shared_sequence_generator(),
            validator: ManifestValidator::default(),
        }
    }

    super::agent_codec_setters!();
}

/// The `manifest` member of the payload, read raw so that apimachinery's `Unstructured` checks
/// (which abort Go's decoding) can be made first.
#[derive(Deserialize, Default)]
struct RawManifestMember {
    #[serde(default)]
    manifest: Option<Box<RawValue>>,
}

/// apimachinery's `Unstructured.UnmarshalJSON` of a present `manifest` member.
fn check_unstructured(raw: &RawValue) -> Result<(), String> {
    let text = raw.get();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) if !lacks_kind(&o) => Ok(()),
        Ok(Value::Object(_) | Value::Null) => Err(missing_kind(text)),
        Ok(other) => Err(format!(
            "json: cannot unmarshal {} into Go struct field Manifest.manifest of type map[string]interface {{}}",
            kind_of(&other)
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn group_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.to_owned()),
    }
}

impl Codec<ManifestWork> for AgentManifestCodec {
    fn data_types(&self) -> &[DataType] {
        &self.data_types
    }

    fn encode(&self, source: &str, event_type: &EventType, work: &ManifestWork) -> Result<Event, CodecError> {
        let mut event = agent_status_event(source, event_type, &self.data_types[0], work, &self.sequence, |w| {
            if !is_status_condition_true(&w.status.conditions, condition_type::DELETED)
                && w.spec.workload.manifests.len() != 1
            {
                return Err(encode_error(format!("too many manifests in the work {}", w.uid_str())));
            }
            Ok(())
        })?;
        let status = ManifestStatus {
            conditions: work.status.conditions.clone(),
            status: work.status.resource_status.manifests.first().cloned(),
        };
        set_json_data(&mut event, &status, "manifestwork status")?;
        Ok(event)
    }

    fn decode(&self, event: &Event) -> Result<ManifestWork, CodecError> {
        agent_spec_work(
            event,
            &self.data_types[0],
            &self.validator,
            "manifest is invalid",
            |work, data| {
                let text = String::from_utf8_lossy(data);
                // Go's Unstructured errors abort decoding, so they win over other type errors.
                if !data.is_empty() && super::is_json_media_type(event) && crate::decoding::check_syntax(data).is_ok() {
                    let member: RawManifestMember = serde_json::from_slice(data).unwrap_or_default();
                    if let Some(raw) = &member.manifest {
                        check_unstructured(raw).map_err(|e| {
                            bad_data(
                                data,
                                &format!("[json] found bytes \"{text}\", but failed to unmarshal: {e}"),
                            )
                        })?;
                    }
                }
                let payload: ManifestPayload = data_as(event, data, &schema::MANIFEST_PAYLOAD)?;
                let object = match &payload.manifest {
                    Some(m) => m.to_value().map_err(|e| bad_data(data, &e.to_string()))?,
                    None => Value::Null,
                };
                let raw = Manifest::from_raw(unstructured_json(&object)).map_err(|e| bad_data(data, &e.to_string()))?;
                work.spec.workload.manifests = vec![raw];
                work.spec.delete_option = payload.delete_option;
                if let Some(config) = payload.config_option {
                    let field = |obj: &Value, path: &[&str]| -> String {
                        path.iter()
                            .try_fold(obj, |v, k| v.get(k))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (group, version) = group_version(&field(&object, &["apiVersion"]));
                    let kind = field(&object, &["kind"]);
                    let resource = match &self.rest_mapper {
                    None => String::new(),
                    Some(mapper) => mapper.resource_for(&group, &version, &kind).ok_or_else(|| {
                        CodecError::new(
                            CodecErrorKind::BadData,
                            format!(
                                "failed to get manifest GVR from event {text}, the server doesn't have a resource type {}",
                                go_quote(&kind)
                            ),
                        )
                    })?,
                };
                    let group = if self.rest_mapper.is_some() {
                        group
                    } else {
                        String::new()
                    };
                    work.spec.manifest_configs = vec![ManifestConfigOption {
                        resource_identifier: ResourceIdentifier {
                            group,
                            resource,
                            name: field(&object, &["metadata", "name"]),
                            namespace: field(&object, &["metadata", "namespace"]),
                        },
                        feedback_rules: config.feedback_rules,
                        update_strategy: config.update_strategy,
                    }];
                }
                Ok(())
            },
        )
    }
}
