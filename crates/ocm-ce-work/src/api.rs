//! The ManifestWork API (`work.open-cluster-management.io/v1`, open-cluster-management.io/api
//! v0.15.0) with Go's JSON: field names, field order and omission rules of the Go structs, so
//! that `ocm_ce_core::go_json::to_vec` of any of these types writes the bytes Go writes.
//!
//! Metadata, conditions and times are k8s-openapi's `meta/v1` types; [`ManifestWork`]
//! implements [`kube::Resource`], so kube's `ResourceExt` accessors work on it.

mod meta;

use std::fmt;

use chrono::{DateTime, Utc};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ListMeta, ObjectMeta, Time};
use kube::core::{NamespaceResourceScope, TypeMeta};
use ocm_ce_core::ResourceObject;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

pub(crate) use self::meta::{GoCondition, GoObjectMeta, conditions as go_conditions, omit_empty};
pub use self::meta::{format_time, is_zero_time, parse_time, time_from_chrono, time_to_chrono, zero_time};

/// API group of ManifestWork.
pub const GROUP: &str = "work.open-cluster-management.io";
/// API version of ManifestWork.
pub const VERSION: &str = "v1";
/// `apiVersion` of ManifestWork.
pub const API_VERSION: &str = "work.open-cluster-management.io/v1";
/// Kind of ManifestWork.
pub const KIND: &str = "ManifestWork";
/// Resource (plural) of ManifestWork.
pub const RESOURCE: &str = "manifestworks";
/// Go's `ManifestWorkGR.String()`: `<resource>.<group>`.
#[doc(alias = "ManifestWorkGR")]
pub const GROUP_RESOURCE: &str = "manifestworks.work.open-cluster-management.io";

/// Annotation holding the data type a work was received with (agent side).
#[doc(alias = "CloudEventsDataTypeAnnotationKey")]
pub const DATA_TYPE_ANNOTATION: &str = "cloudevents.open-cluster-management.io/datatype";
/// Annotation holding the resource version a source sends instead of `metadata.resourceVersion`.
#[doc(alias = "CloudEventsResourceVersionAnnotationKey")]
pub const RESOURCE_VERSION_ANNOTATION: &str = "cloudevents.open-cluster-management.io/resourceversion";
/// Annotation holding the sequence id of the last status a source accepted.
#[doc(alias = "CloudEventsSequenceIDAnnotationKey")]
pub const SEQUENCE_ID_ANNOTATION: &str = "cloudevents.open-cluster-management.io/sequenceid";
/// Annotation in which a source keeps the `statushash` an agent reported with the work's status
/// (an ocm-ce name: sdk-go v1.x agents send the extension, no Go source keeps it).
pub const STATUS_HASH_ANNOTATION: &str = "cloudevents.open-cluster-management.io/statushash";
/// Label holding the source a work came from (agent side).
#[doc(alias = "CloudEventsOriginalSourceLabelKey")]
pub const ORIGINAL_SOURCE_LABEL: &str = "cloudevents.open-cluster-management.io/originalsource";
/// Finalizer the agent side puts on works (the API's `ManifestWorkFinalizer`).
#[doc(alias = "ManifestWorkFinalizer")]
pub const MANIFEST_WORK_FINALIZER: &str = "cluster.open-cluster-management.io/manifest-work-cleanup";
/// Finalizer a source's store puts on works once a status was received (distinct from
/// [`MANIFEST_WORK_FINALIZER`]).
pub const SOURCE_FINALIZER: &str = "cloudevents.open-cluster-management.io/manifest-work-cleanup";
/// Finalizer of the API's AppliedManifestWork.
pub const APPLIED_MANIFEST_WORK_FINALIZER: &str = "cluster.open-cluster-management.io/applied-manifest-work-cleanup";
/// Default field manager of server-side apply.
pub const DEFAULT_FIELD_MANAGER: &str = "work-agent";

/// Condition types of works and manifests.
pub mod condition_type {
    /// The resource is being applied.
    pub const PROGRESSING: &str = "Progressing";
    /// The resource is applied.
    pub const APPLIED: &str = "Applied";
    /// The resource exists on the managed cluster.
    pub const AVAILABLE: &str = "Available";
    /// The resource does not match the desired state for a while.
    pub const DEGRADED: &str = "Degraded";
    /// The agent deleted the manifests of a deleting work (`ManifestsDeleted` in Go).
    #[doc(alias = "ManifestsDeleted")]
    pub const DELETED: &str = "Deleted";
}

/// `null` reads as the zero value, as Go's decoder leaves the field untouched.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A list as [`null_default`] reads it, held without spare capacity: a decoded list grows by
/// doubling from four, and works are stored for their lifetime, so two conditions would
/// otherwise hold the room of four.
pub(crate) fn null_or_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(exact(null_default(d)?))
}

/// `v` in an allocation of exactly its length (a new one when it has spare room: shrinking in
/// place keeps the block with some allocators).
pub(crate) fn exact<T>(v: Vec<T>) -> Vec<T> {
    if v.capacity() == v.len() {
        return v;
    }
    let mut exact = Vec::with_capacity(v.len());
    exact.extend(v);
    exact
}

/// Implements [`kube::Resource`] for an API type of one fixed kind, held in its `metadata`
/// field: `kube_resource!(Type, Scope, GROUP, VERSION, KIND, RESOURCE)`, the last four being
/// the `&'static str`s of the kind's API group, version, kind and plural resource. The caller
/// depends on `kube`.
#[doc(hidden)]
#[macro_export]
macro_rules! kube_resource {
    ($ty:ty, $scope:ty, $group:expr, $version:expr, $kind:expr, $plural:expr) => {
        impl ::kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($kind)
            }
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($group)
            }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($version)
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($plural)
            }
            fn meta(&self) -> &$crate::api::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut $crate::api::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        ///
        /// Go accepts any string here; values we do not know are kept in `Other`, and the
        /// zero value (`""`) is `Other("")`, which [`Default`] returns.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
            /// Any other value, kept as received.
            Other(String),
        }

        impl $name {
            /// The wire form.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $s,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Other(String::new())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($s => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($s => Self::$variant,)+
                    _ => Self::Other(s),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Option::<String>::deserialize(d)?.map(Self::from).unwrap_or_default())
            }
        }
    };
}

string_enum!(
    /// How the agent deletes the applied resources when a work is deleted.
    #[doc(alias = "DeletePropagationPolicyType")]
    DeletePropagationPolicy {
        /// Delete the resources and wait for them to be gone (the default).
        Foreground => "Foreground",
        /// Leave every resource in place.
        Orphan => "Orphan",
        /// Leave the resources of [`SelectivelyOrphan::orphaning_rules`] in place.
        SelectivelyOrphan => "SelectivelyOrphan",
    }
);

string_enum!(
    /// How the agent updates a resource.
    UpdateStrategyType {
        /// Update with a merge.
        Update => "Update",
        /// Create only, never update.
        CreateOnly => "CreateOnly",
        /// Server-side apply.
        ServerSideApply => "ServerSideApply",
        /// Only read the resource (for status feedback).
        ReadOnly => "ReadOnly",
    }
);

string_enum!(
    /// Which status feedback to collect.
    #[doc(alias = "FeedBackType")]
    FeedbackType {
        /// The well-known status fields of the resource kind.
        WellKnownStatus => "WellKnownStatus",
        /// The fields named by [`FeedbackRule::json_paths`].
        JsonPaths => "JSONPaths",
    }
);

string_enum!(
    /// Type of a status feedback value.
    ValueType {
        /// [`FieldValue::integer`].
        Integer => "Integer",
        /// [`FieldValue::string`].
        String => "String",
        /// [`FieldValue::boolean`].
        Boolean => "Boolean",
        /// [`FieldValue::json_raw`].
        JsonRaw => "JsonRaw",
    }
);

string_enum!(
    /// Kind of identity the agent applies a work as.
    #[doc(alias = "ManifestWorkExecutorSubjectType")]
    ExecutorSubjectType {
        /// A service account on the managed cluster.
        ServiceAccount => "ServiceAccount",
    }
);

/// One raw Kubernetes object of a work (Go `workv1.Manifest`, a `runtime.RawExtension`).
///
/// The JSON text is kept exactly as received or given, like Go's `Raw` bytes: the size limit of
/// the validator is computed on it. When serialized, it is compacted and HTML-escaped as Go's
/// encoder does with raw messages. The JSON `null` stands for Go's nil `Raw`.
///
/// Serialization goes through `serde_json`'s raw values, so it is only meaningful with
/// `serde_json` serializers (including `to_value`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// Valid JSON text, exactly as given (shared between the copies of a work: a status patch
    /// copies the work, not its manifests).
    raw: std::sync::Arc<str>,
}

impl Manifest {
    /// A manifest from JSON text, kept byte for byte (it must be valid JSON).
    pub fn from_raw(raw: impl Into<String>) -> Result<Self, serde_json::Error> {
        let raw = raw.into();
        serde_json::from_str::<serde::de::IgnoredAny>(&raw)?;
        Ok(Self { raw: raw.into() })
    }

    /// A manifest from an object, written as Go writes a decoded `Unstructured` object (keys
    /// sorted, a trailing newline), like the manifests codec and Go's `utils.Encode` do.
    pub fn from_object<T: Serialize + ?Sized>(object: &T) -> Result<Self, serde_json::Error> {
        let value = serde_json::to_value(object)?;
        Ok(Self {
            raw: crate::encoding::unstructured_json(&value).into(),
        })
    }

    /// The nil manifest (Go's nil `Raw`, JSON `null`).
    pub fn null() -> Self {
        Self { raw: "null".into() }
    }

    /// The JSON text as held.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// True for the nil manifest (the text is exactly `null`).
    pub fn is_null(&self) -> bool {
        &*self.raw == "null"
    }

    /// The object as a JSON value.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.raw)
    }

    /// The protobuf size Go's validator counts for this manifest: `1 + n + varint_len(n)` for a
    /// raw manifest of `n` bytes, 0 for the nil manifest.
    pub fn proto_size(&self) -> usize {
        if self.is_null() {
            return 0;
        }
        let n = self.raw.len();
        1 + n + varint_len(n as u64)
    }

    /// The JSON text Go writes for this manifest (compacted, HTML-escaped).
    pub fn to_go_json(&self) -> String {
        crate::encoding::compact(&self.raw)
    }
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

impl Default for Manifest {
    fn default() -> Self {
        Self::null()
    }
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Manifest").field(&&*self.raw).finish()
    }
}

impl Serialize for Manifest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let compacted = RawValue::from_string(self.to_go_json()).map_err(serde::ser::Error::custom)?;
        compacted.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Self {
            raw: String::from(Box::<str>::from(raw)).into(),
        })
    }
}

/// A ManifestWork: a set of Kubernetes objects a source asks an agent to apply on a managed
/// cluster, and the status the agent reports back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestWork {
    /// `kind` and `apiVersion` (each omitted when empty; works decoded from events have none).
    pub types: Option<TypeMeta>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// What to apply.
    pub spec: ManifestWorkSpec,
    /// What the agent reported.
    pub status: ManifestWorkStatus,
}

impl ManifestWork {
    /// A work named `name` in `namespace` (the cluster) with the given manifests.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, manifests: Vec<Manifest>) -> Self {
        Self {
            types: Some(TypeMeta {
                api_version: API_VERSION.to_owned(),
                kind: KIND.to_owned(),
            }),
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec: ManifestWorkSpec {
                workload: ManifestsTemplate { manifests },
                ..ManifestWorkSpec::default()
            },
            status: ManifestWorkStatus::default(),
        }
    }

    /// `metadata.name` (`""` when unset).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace` (`""` when unset). Named apart from kube's
    /// `ResourceExt::namespace`, which returns an `Option<String>`.
    pub fn namespace_str(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// `metadata.uid` (`""` when unset). Named apart from kube's `ResourceExt::uid`, which
    /// returns an `Option<String>`.
    pub fn uid_str(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or_default()
    }

    /// `metadata.resourceVersion` as a string (`""` when unset). Named apart from kube's
    /// `ResourceExt::resource_version` (an `Option<String>`) and
    /// [`ResourceObject::resource_version`] (the same text, for the generic clients).
    pub fn resource_version_str(&self) -> &str {
        self.metadata.resource_version.as_deref().unwrap_or_default()
    }

    /// A label value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// An annotation value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The finalizers (empty when unset).
    pub fn finalizers(&self) -> &[String] {
        self.metadata.finalizers.as_deref().unwrap_or_default()
    }

    /// True when the work is being deleted.
    pub fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// The version a source sends for this work: the
    /// [`RESOURCE_VERSION_ANNOTATION`] if present, else `metadata.resourceVersion` if not empty,
    /// else `"0"` (unversioned).
    pub fn source_resource_version(&self) -> String {
        if let Some(v) = self.annotation(RESOURCE_VERSION_ANNOTATION) {
            return v.to_owned();
        }
        match self.resource_version_str() {
            "" => "0".to_owned(),
            v => v.to_owned(),
        }
    }
}

/// Writes the `kind` and `apiVersion` of a type's `TypeMeta`, each omitted when empty.
fn serialize_type_meta<S: SerializeStruct>(st: &mut S, types: Option<&TypeMeta>) -> Result<(), S::Error> {
    if let Some(t) = types {
        if !t.kind.is_empty() {
            st.serialize_field("kind", &t.kind)?;
        }
        if !t.api_version.is_empty() {
            st.serialize_field("apiVersion", &t.api_version)?;
        }
    }
    Ok(())
}

impl Serialize for ManifestWork {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ManifestWork", 5)?;
        serialize_type_meta(&mut st, self.types.as_ref())?;
        st.serialize_field("metadata", &GoObjectMeta(&self.metadata))?;
        st.serialize_field("spec", &self.spec)?;
        st.serialize_field("status", &self.status)?;
        st.end()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ManifestWorkRepr {
    kind: Option<String>,
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(deserialize_with = "meta::deserialize_object_meta")]
    metadata: ObjectMeta,
    #[serde(deserialize_with = "null_default")]
    spec: ManifestWorkSpec,
    #[serde(deserialize_with = "null_default")]
    status: ManifestWorkStatus,
}

fn type_meta(kind: Option<String>, api_version: Option<String>) -> Option<TypeMeta> {
    let kind = kind.unwrap_or_default();
    let api_version = api_version.unwrap_or_default();
    (!kind.is_empty() || !api_version.is_empty()).then_some(TypeMeta { api_version, kind })
}

impl<'de> Deserialize<'de> for ManifestWork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = ManifestWorkRepr::deserialize(d)?;
        Ok(Self {
            types: type_meta(r.kind, r.api_version),
            metadata: r.metadata,
            spec: r.spec,
            status: r.status,
        })
    }
}

crate::kube_resource!(ManifestWork, NamespaceResourceScope, GROUP, VERSION, KIND, RESOURCE);

impl ResourceObject for ManifestWork {
    fn resource_id(&self) -> &str {
        self.uid_str()
    }
    fn resource_version(&self) -> &str {
        self.resource_version_str()
    }
    fn deletion_timestamp(&self) -> Option<DateTime<Utc>> {
        self.metadata.deletion_timestamp.as_ref().map(time_to_chrono)
    }
}

/// What a work applies and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkSpec {
    /// The manifests (always written, `{}` when empty).
    #[serde(default, deserialize_with = "null_default")]
    pub workload: ManifestsTemplate,
    /// Deletion strategy (Foreground when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_option: Option<DeleteOption>,
    /// Per-resource configuration.
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub manifest_configs: Vec<ManifestConfigOption>,
    /// Identity the agent applies the work as. Not carried by either event payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ManifestWorkExecutor>,
}

/// The manifests of a work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestsTemplate {
    /// The raw objects.
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Manifest>,
}

/// Deletion strategy of a work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOption {
    /// Foreground, Orphan or SelectivelyOrphan.
    #[serde(default, deserialize_with = "null_default")]
    pub propagation_policy: DeletePropagationPolicy,
    /// The resources to orphan with [`DeletePropagationPolicy::SelectivelyOrphan`].
    #[serde(default, rename = "selectivelyOrphans", skip_serializing_if = "Option::is_none")]
    pub selectively_orphan: Option<SelectivelyOrphan>,
}

/// The resources to orphan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectivelyOrphan {
    /// One rule per resource.
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub orphaning_rules: Vec<OrphaningRule>,
}

/// A resource of a work, by group, resource, name and namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceIdentifier {
    /// API group (`""` for core).
    #[serde(default, deserialize_with = "null_default")]
    pub group: String,
    /// Resource (plural).
    #[serde(default, deserialize_with = "null_default")]
    pub resource: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Namespace (`""` for cluster-scoped resources).
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
}

/// A resource to orphan (Go defines it as a `ResourceIdentifier`).
pub type OrphaningRule = ResourceIdentifier;

/// Configuration of one resource of a work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestConfigOption {
    /// The resource.
    #[serde(default, deserialize_with = "null_default")]
    pub resource_identifier: ResourceIdentifier,
    /// Status feedback to collect.
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub feedback_rules: Vec<FeedbackRule>,
    /// How to update it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
}

/// How the agent updates a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// Strategy type (omitted when empty).
    #[serde(
        default,
        rename = "type",
        deserialize_with = "null_default",
        skip_serializing_if = "is_empty_update_type"
    )]
    pub type_: UpdateStrategyType,
    /// Server-side apply settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_apply: Option<ServerSideApplyConfig>,
}

fn is_empty_update_type(t: &UpdateStrategyType) -> bool {
    t.as_str().is_empty()
}

/// Server-side apply settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSideApplyConfig {
    /// Force conflicts.
    #[serde(default, deserialize_with = "null_default")]
    pub force: bool,
    /// Field manager (omitted when empty; must start with `work-agent`).
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub field_manager: String,
}

/// A status feedback rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackRule {
    /// WellKnownStatus or JSONPaths.
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub type_: FeedbackType,
    /// The fields to collect with [`FeedbackType::JsonPaths`].
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub json_paths: Vec<JsonPath>,
}

/// A named JSON path of a status feedback rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonPath {
    /// Name of the feedback value.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// API version to read the resource in (omitted when empty).
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The path.
    #[serde(default, deserialize_with = "null_default")]
    pub path: String,
}

/// Identity the agent applies a work as.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestWorkExecutor {
    /// The subject.
    #[serde(default, deserialize_with = "null_default")]
    pub subject: ManifestWorkExecutorSubject,
}

/// Subject of an executor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkExecutorSubject {
    /// Subject type.
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub type_: ExecutorSubjectType,
    /// The service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ManifestWorkSubjectServiceAccount>,
}

/// A service account on the managed cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestWorkSubjectServiceAccount {
    /// Namespace.
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
}

/// What the agent reports about a work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkStatus {
    /// Conditions of the whole work (omitted when empty).
    #[serde(default, with = "meta::conditions", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per-manifest status (always written).
    #[serde(default, deserialize_with = "null_default")]
    pub resource_status: ManifestResourceStatus,
}

/// Per-manifest status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestResourceStatus {
    /// One entry per applied manifest (omitted when empty).
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ManifestCondition>,
}

/// Status of one manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestCondition {
    /// Which resource.
    #[serde(default, deserialize_with = "null_default")]
    pub resource_meta: ManifestResourceMeta,
    /// Collected status feedback (always written, `{}` when empty).
    #[doc(alias = "StatusFeedbacks")]
    #[serde(default, deserialize_with = "null_default")]
    pub status_feedback: StatusFeedbackResult,
    /// Conditions of the resource: `None` (Go nil) is written `null`, `Some(vec![])` is `[]`,
    /// which hash differently.
    #[serde(default, with = "meta::nullable_conditions")]
    pub conditions: Option<Vec<Condition>>,
}

/// Identity of a manifest's resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ManifestResourceMeta {
    /// Index of the manifest in the work.
    #[serde(default, deserialize_with = "null_default")]
    pub ordinal: i32,
    /// API group.
    #[serde(default, deserialize_with = "null_default")]
    pub group: String,
    /// API version.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Kind.
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    /// Resource (plural).
    #[serde(default, deserialize_with = "null_default")]
    pub resource: String,
    /// Name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Namespace.
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: String,
}

/// Collected status feedback of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusFeedbackResult {
    /// The values (omitted when empty).
    #[serde(default, deserialize_with = "null_or_list", skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<FeedbackValue>,
}

/// One named feedback value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackValue {
    /// Name (from the rule).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The value (Go field `Value`).
    #[doc(alias = "Value")]
    #[serde(default, deserialize_with = "null_default")]
    pub field_value: FieldValue,
}

/// A typed feedback value: one of the optional fields is set, as [`FieldValue::type_`] says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldValue {
    /// Which field is set.
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub type_: ValueType,
    /// An integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<i64>,
    /// A string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// A boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean: Option<bool>,
    /// Raw JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_raw: Option<String>,
}

/// A list of works (Go `ManifestWorkList`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestWorkList {
    /// `kind` and `apiVersion` (each omitted when empty).
    pub types: Option<TypeMeta>,
    /// List metadata.
    pub metadata: ListMeta,
    /// The works.
    pub items: Vec<ManifestWork>,
}

impl Serialize for ManifestWorkList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ManifestWorkList", 4)?;
        serialize_type_meta(&mut st, self.types.as_ref())?;
        st.serialize_field("metadata", &meta::GoListMeta(&self.metadata))?;
        st.serialize_field("items", &self.items)?;
        st.end()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ManifestWorkListRepr {
    kind: Option<String>,
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(deserialize_with = "meta::deserialize_list_meta")]
    metadata: ListMeta,
    #[serde(deserialize_with = "null_default")]
    items: Vec<ManifestWork>,
}

impl<'de> Deserialize<'de> for ManifestWorkList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = ManifestWorkListRepr::deserialize(d)?;
        Ok(Self {
            types: type_meta(r.kind, r.api_version),
            metadata: r.metadata,
            items: r.items,
        })
    }
}

/// A condition with the given type, status, reason and message, observed generation 0 and the
/// given transition time (Go's zero time, written `null`, when `None`).
pub fn condition(
    type_: impl Into<String>,
    status: impl Into<String>,
    reason: impl Into<String>,
    message: impl Into<String>,
    last_transition_time: Option<Time>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        observed_generation: None,
        last_transition_time: last_transition_time.unwrap_or_else(zero_time),
        reason: reason.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(v: &impl Serialize) -> String {
        String::from_utf8(ocm_ce_core::go_json::to_vec(v).unwrap()).unwrap()
    }

    #[test]
    fn an_empty_work_is_written_like_go() {
        assert_eq!(
            go(&ManifestWork::default()),
            r#"{"metadata":{"creationTimestamp":null},"spec":{"workload":{}},"status":{"resourceStatus":{}}}"#
        );
        let w = ManifestWork::new("ns", "w", vec![]);
        assert!(go(&w).starts_with(r#"{"kind":"ManifestWork","apiVersion":"work.open-cluster-management.io/v1","#));
    }

    #[test]
    fn manifests_keep_their_bytes_and_are_written_compacted() {
        let m = Manifest::from_raw("{ \"b\": \"<x>\",\n \"a\": 1 }").unwrap();
        assert_eq!(m.raw(), "{ \"b\": \"<x>\",\n \"a\": 1 }");
        assert_eq!(go(&m), r#"{"b":"\u003cx\u003e","a":1}"#);
        assert_eq!(m.proto_size(), 1 + 23 + 1);
        let back: Manifest = serde_json::from_str(" {\"x\" : 1} ").unwrap();
        assert_eq!(back.raw(), "{\"x\" : 1}");
        let from_value: Manifest = serde_json::from_value(serde_json::json!({"k": "v"})).unwrap();
        assert_eq!(from_value.raw(), r#"{"k":"v"}"#);
        let as_value = serde_json::to_value(&m).unwrap();
        assert_eq!(as_value, serde_json::json!({"a": 1, "b": "<x>"}));
        assert_eq!(Manifest::null().proto_size(), 0);
    }

    #[test]
    fn go_json_reads_back_to_the_same_work() {
        let text = r#"{"metadata":{"name":"w","namespace":"c","creationTimestamp":null},"spec":{"workload":{"manifests":[{"a":1}]},"deleteOption":{"propagationPolicy":"SelectivelyOrphan","selectivelyOrphans":{"orphaningRules":[{"group":"","resource":"configmaps","name":"keep","namespace":"prod"}]}},"manifestConfigs":[{"resourceIdentifier":{"group":"apps","resource":"deployments","name":"web","namespace":"prod"},"feedbackRules":[{"type":"WellKnownStatus"},{"type":"JSONPaths","jsonPaths":[{"name":"ready","path":".status.readyReplicas"}]}],"updateStrategy":{"type":"ServerSideApply","serverSideApply":{"force":true,"fieldManager":"work-agent"}}}],"executor":{"subject":{"type":"ServiceAccount","serviceAccount":{"namespace":"n","name":"sa"}}}},"status":{"resourceStatus":{}}}"#;
        let w: ManifestWork = serde_json::from_str(text).unwrap();
        assert_eq!(go(&w), text);
        assert_eq!(
            w.spec.delete_option.as_ref().unwrap().propagation_policy,
            DeletePropagationPolicy::SelectivelyOrphan
        );
    }

    #[test]
    fn nulls_read_as_zero_values() {
        let w: ManifestWork =
            serde_json::from_str(r#"{"metadata":null,"spec":{"workload":null,"manifestConfigs":null},"status":null}"#)
                .unwrap();
        assert_eq!(w, ManifestWork::default());
        let c: ManifestCondition =
            serde_json::from_str(r#"{"resourceMeta":{"ordinal":null},"conditions":[{"type":"A"}]}"#).unwrap();
        let conds = c.conditions.unwrap();
        assert!(is_zero_time(&conds[0].last_transition_time));
        assert_eq!(conds[0].type_, "A");
    }

    #[test]
    fn the_source_resource_version_prefers_the_annotation() {
        let mut w = ManifestWork::new("c", "w", vec![]);
        assert_eq!(w.source_resource_version(), "0");
        w.metadata.resource_version = Some("5".into());
        assert_eq!(w.source_resource_version(), "5");
        w.metadata.annotations = Some([(RESOURCE_VERSION_ANNOTATION.to_owned(), "7".to_owned())].into());
        assert_eq!(w.source_resource_version(), "7");
    }
}
