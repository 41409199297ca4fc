//! The event payloads of the two ManifestWork data types (Go `work/payload`), with Go's JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use ocm_ce_core::DataType;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::api::{
    DeleteOption, FeedbackRule, GoCondition, Manifest, ManifestCondition, ManifestConfigOption, UpdateStrategy,
    null_or_list, omit_empty,
};

/// Group of both ManifestWork data types.
pub const WORKS_GROUP: &str = "io.open-cluster-management.works";
/// Version of both ManifestWork data types.
pub const WORKS_VERSION: &str = "v1alpha1";
/// `io.open-cluster-management.works.v1alpha1.manifestbundles`: a list of manifests per event.
#[doc(alias = "ManifestBundleEventDataType")]
pub const MANIFEST_BUNDLES: &str = "io.open-cluster-management.works.v1alpha1.manifestbundles";
/// `io.open-cluster-management.works.v1alpha1.manifests`: one manifest per event.
#[doc(alias = "ManifestEventDataType")]
pub const MANIFESTS: &str = "io.open-cluster-management.works.v1alpha1.manifests";

/// The `manifestbundles` data type.
pub fn manifest_bundle_data_type() -> DataType {
    DataType::new(WORKS_GROUP, WORKS_VERSION, "manifestbundles")
}

/// The `manifests` data type.
pub fn manifest_data_type() -> DataType {
    DataType::new(WORKS_GROUP, WORKS_VERSION, "manifests")
}

fn conditions_or_null<S: SerializeStruct>(st: &mut S, conditions: &[Condition]) -> Result<(), S::Error> {
    if conditions.is_empty() {
        st.serialize_field("conditions", &None::<()>)
    } else {
        let conds: Vec<GoCondition<'_>> = conditions.iter().map(GoCondition).collect();
        st.serialize_field("conditions", &conds)
    }
}

/// Spec data of a `manifestbundles` event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBundle {
    /// The manifests (written `null` when empty).
    #[serde(default, deserialize_with = "null_or_list")]
    pub manifests: Vec<Manifest>,
    /// Deletion strategy.
    #[serde(default)]
    pub delete_option: Option<DeleteOption>,
    /// Per-resource configuration (omitted when empty).
    #[serde(default, deserialize_with = "null_or_list")]
    pub manifest_configs: Vec<ManifestConfigOption>,
}

impl Serialize for ManifestBundle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ManifestBundle", 3)?;
        if self.manifests.is_empty() {
            st.serialize_field("manifests", &None::<()>)?;
        } else {
            st.serialize_field("manifests", &self.manifests)?;
        }
        omit_empty(&mut st, "deleteOption", self.delete_option.as_ref())?;
        if !self.manifest_configs.is_empty() {
            st.serialize_field("manifestConfigs", &self.manifest_configs)?;
        }
        st.end()
    }
}

/// Status data of a `manifestbundles` event. `resource_status` is the work's
/// `status.resourceStatus.manifests`, flat.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBundleStatus {
    /// The spec, sent back by some agents (never by Go's); a source restores it when present.
    #[serde(default)]
    pub manifest_bundle: Option<ManifestBundle>,
    /// The work's conditions (written `null` when empty).
    #[serde(default, with = "crate::api::go_conditions")]
    pub conditions: Vec<Condition>,
    /// The per-manifest status (omitted when empty).
    #[serde(default, deserialize_with = "null_or_list")]
    pub resource_status: Vec<ManifestCondition>,
}

impl Serialize for ManifestBundleStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ManifestBundleStatusRef {
            manifest_bundle: self.manifest_bundle.as_ref(),
            conditions: &self.conditions,
            resource_status: &self.resource_status,
        }
        .serialize(s)
    }
}

/// A [`ManifestBundleStatus`] of borrowed parts, written the same way: an agent's status event
/// is written from the work it holds without copying its status.
pub(crate) struct ManifestBundleStatusRef<'a> {
    pub(crate) manifest_bundle: Option<&'a ManifestBundle>,
    pub(crate) conditions: &'a [Condition],
    pub(crate) resource_status: &'a [ManifestCondition],
}

impl Serialize for ManifestBundleStatusRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ManifestBundleStatus", 3)?;
        omit_empty(&mut st, "manifestBundle", self.manifest_bundle)?;
        conditions_or_null(&mut st, self.conditions)?;
        if !self.resource_status.is_empty() {
            st.serialize_field("resourceStatus", self.resource_status)?;
        }
        st.end()
    }
}

/// Spec data of a `manifests` event: one object, written as Go writes an `Unstructured` (keys
/// sorted).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestPayload {
    /// The object (`None` when absent; Go then decodes a `null` object).
    #[serde(default)]
    pub manifest: Option<Manifest>,
    /// Deletion strategy.
    #[serde(default)]
    pub delete_option: Option<DeleteOption>,
    /// Configuration of the object.
    #[serde(default)]
    pub config_option: Option<ManifestConfigOptionPayload>,
}

impl Serialize for ManifestPayload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Manifest", 3)?;
        match &self.manifest {
            Some(m) => st.serialize_field("manifest", m)?,
            None => st.serialize_field("manifest", &None::<()>)?,
        }
        omit_empty(&mut st, "deleteOption", self.delete_option.as_ref())?;
        omit_empty(&mut st, "configOption", self.config_option.as_ref())?;
        st.end()
    }
}

/// Configuration of the object of a `manifests` event (Go `payload.ManifestConfigOption`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestConfigOptionPayload {
    /// Status feedback to collect (omitted when empty).
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub feedback_rules: Vec<FeedbackRule>,
    /// How to update the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
}

/// Status data of a `manifests` event: the work's conditions and its first manifest's status.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ManifestStatus {
    /// The work's conditions (written `null` when empty).
    #[serde(default, with = "crate::api::go_conditions")]
    pub conditions: Vec<Condition>,
    /// The first entry of `status.resourceStatus.manifests` (omitted when there is none).
    #[serde(default)]
    pub status: Option<ManifestCondition>,
}

impl Serialize for ManifestStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ManifestStatus", 2)?;
        conditions_or_null(&mut st, &self.conditions)?;
        omit_empty(&mut st, "status", self.status.as_ref())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(v: &impl Serialize) -> String {
        String::from_utf8(ocm_ce_core::go_json::to_vec(v).unwrap()).unwrap()
    }

    #[test]
    fn empty_payloads_are_written_like_go() {
        assert_eq!(go(&ManifestBundle::default()), r#"{"manifests":null}"#);
        assert_eq!(go(&ManifestBundleStatus::default()), r#"{"conditions":null}"#);
        assert_eq!(go(&ManifestPayload::default()), r#"{"manifest":null}"#);
        assert_eq!(go(&ManifestStatus::default()), r#"{"conditions":null}"#);
        assert_eq!(manifest_bundle_data_type().to_string(), MANIFEST_BUNDLES);
        assert_eq!(manifest_data_type().to_string(), MANIFESTS);
    }

    #[test]
    fn decoded_lists_hold_no_spare_room() {
        let condition = r#"{"type":"Applied","status":"True","lastTransitionTime":"2024-10-01T12:00:00Z","reason":"R","message":"m"}"#;
        let meta = r#"{"ordinal":0,"group":"","version":"v1","kind":"ConfigMap","resource":"configmaps","name":"c","namespace":"d"}"#;
        let manifest = format!(
            r#"{{"resourceMeta":{meta},"statusFeedback":{{"values":[{{"name":"a","fieldValue":{{"type":"Integer","integer":1}}}}]}},"conditions":[{condition},{condition}]}}"#
        );
        let status: ManifestBundleStatus = serde_json::from_str(&format!(
            r#"{{"conditions":[{condition},{condition}],"resourceStatus":[{manifest},{manifest},{manifest}]}}"#
        ))
        .unwrap();
        assert_eq!((status.conditions.len(), status.conditions.capacity()), (2, 2));
        assert_eq!(
            (status.resource_status.len(), status.resource_status.capacity()),
            (3, 3)
        );
        for m in &status.resource_status {
            let conditions = m.conditions.as_ref().unwrap();
            assert_eq!((conditions.len(), conditions.capacity()), (2, 2));
            assert_eq!(m.status_feedback.values.capacity(), 1);
        }
        let bundle: ManifestBundle =
            serde_json::from_str(r#"{"manifests":[{"a":1},{"b":2}],"manifestConfigs":null}"#).unwrap();
        assert_eq!((bundle.manifests.len(), bundle.manifests.capacity()), (2, 2));
        assert_eq!(bundle.manifest_configs.capacity(), 0);
    }
}
