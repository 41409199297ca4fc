//! Applying one manifest with its update strategy (OCM's `spoke/apply` package): server-side
//! apply, update (create, or merge metadata and replace when the content differs), create-only
//! and read-only, plus the owner reference to the work's AppliedManifestWork.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use ocm_ce_work::{ManifestResourceMeta, UpdateStrategy, UpdateStrategyType};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::resolver::Resolved;

/// How often an update that lost a race (409) is tried again with the latest object.
const UPDATE_ATTEMPTS: usize = 3;

/// A manifest of a work, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    /// The object to apply (its UID removed, as OCM does).
    pub(crate) object: Value,
    pub(crate) gvk: GroupVersionKind,
    pub(crate) name: String,
    pub(crate) namespace: String,
}

/// A manifest that does not parse: the resource meta known so far, and why.
pub(crate) type ParseError = Box<(ManifestResourceMeta, Error)>;

/// Parses manifest `ordinal`; on failure, the resource meta known so far comes with the error.
pub(crate) fn parse(ordinal: i32, raw: &ocm_ce_work::Manifest) -> Result<Parsed, ParseError> {
    let mut meta = ManifestResourceMeta {
        ordinal,
        ..ManifestResourceMeta::default()
    };
    let invalid =
        |meta: &ManifestResourceMeta, reason: String| Box::new((meta.clone(), Error::InvalidManifest { reason }));
    let mut object = raw.to_value().map_err(|e| invalid(&meta, e.to_string()))?;
    let Some(map) = object.as_object_mut() else {
        return Err(invalid(&meta, "the manifest is not a JSON object".to_owned()));
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.to_owned()),
    };
    meta.group.clone_from(&group);
    meta.version.clone_from(&version);
    meta.kind.clone_from(&kind);
    if version.is_empty() || kind.is_empty() {
        return Err(invalid(
            &meta,
            "Object 'Kind' is missing or 'apiVersion' is empty".to_owned(),
        ));
    }
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(invalid(&meta, "metadata is not an object".to_owned()));
    };
    if metadata.remove("uid").is_some() {
        tracing::warn!(ordinal, "ignoring the uid of a manifest");
    }
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    meta.name.clone_from(&name);
    meta.namespace.clone_from(&namespace);
    if name.is_empty() {
        return Err(invalid(&meta, "the manifest has no metadata.name".to_owned()));
    }
    Ok(Parsed {
        gvk: GroupVersionKind::gvk(&group, &version, &kind),
        object,
        name,
        namespace,
    })
}

/// Where a resolved manifest lives.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) api_resource: ApiResource,
    /// `None` for cluster-scoped resources.
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

impl Target {
    /// The target of a parsed manifest of a resolved kind.
    pub(crate) fn of(parsed: &Parsed, resolved: &Resolved) -> Result<Self> {
        let namespace = if resolved.namespaced {
            if parsed.namespace.is_empty() {
                return Err(Error::InvalidManifest {
                    reason: format!(
                        "the namespace of {} {} is not set",
                        resolved.api_resource.kind, parsed.name
                    ),
                });
            }
            Some(parsed.namespace.clone())
        } else {
            None
        };
        Ok(Self {
            api_resource: resolved.api_resource.clone(),
            namespace,
            name: parsed.name.clone(),
        })
    }

    /// The target a resource meta (of a status, or of an AppliedManifestWork) names.
    pub(crate) fn from_parts(group: &str, version: &str, resource: &str, namespace: &str, name: &str) -> Self {
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Self {
            api_resource: ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version,
                kind: String::new(),
                plural: resource.to_owned(),
            },
            namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
            name: name.to_owned(),
        }
    }

    pub(crate) fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.api_resource),
            None => Api::all_with(client.clone(), &self.api_resource),
        }
    }

    /// `configmaps ns/name` or `namespaces name`, for messages.
    pub(crate) fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.api_resource.plural, self.name),
            None => format!("{} {}", self.api_resource.plural, self.name),
        }
    }

    /// The object, or `None` when it does not exist.
    pub(crate) async fn get(&self, client: &kube::Client) -> Result<Option<DynamicObject>> {
        self.api(client)
            .get_opt(&self.name)
            .await
            .map_err(|e| Error::kube(format!("failed to get {}", self.describe()), e))
    }
}

/// The owner references of an object once `owner` is added (`owned`) or removed, or `None`
/// when they would not change (library-go's `MergeOwnerRefs`).
pub(crate) fn merged_owner_references(
    existing: &[OwnerReference],
    owner: &OwnerReference,
    owned: bool,
) -> Option<Vec<OwnerReference>> {
    let position = existing.iter().position(|r| r.uid == owner.uid);
    match (owned, position) {
        (true, Some(i)) if existing[i] == *owner => None,
        (true, Some(i)) => {
            let mut refs = existing.to_vec();
            refs[i] = owner.clone();
            Some(refs)
        }
        (true, None) => {
            let mut refs = existing.to_vec();
            refs.push(owner.clone());
            Some(refs)
        }
        (false, Some(i)) => {
            let mut refs = existing.to_vec();
            refs.remove(i);
            Some(refs)
        }
        (false, None) => None,
    }
}

/// True when every field of `required` is in `existing` with the same value (lists: same
/// length, each item contained); what the API server added (defaults, status) is ignored.
pub(crate) fn contains(existing: &Value, required: &Value) -> bool {
    match (existing, required) {
        (Value::Object(e), Value::Object(r)) => r
            .iter()
            .all(|(k, rv)| e.get(k).is_some_and(|ev| contains(ev, rv)) || (rv.is_null() && !e.contains_key(k))),
        (Value::Array(e), Value::Array(r)) => e.len() == r.len() && e.iter().zip(r).all(|(ev, rv)| contains(ev, rv)),
        (Value::Number(e), Value::Number(r)) => e == r || e.as_f64().is_some_and(|e| r.as_f64() == Some(e)),
        (e, r) => e == r,
    }
}

/// Removes `metadata.creationTimestamp: null` everywhere (OCM does this before a server-side
/// apply: the API server would otherwise bump the generation on every apply).
fn remove_null_creation_timestamps(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(meta)) = map.get_mut("metadata")
                && meta.get("creationTimestamp").is_some_and(Value::is_null)
            {
                meta.remove("creationTimestamp");
            }
            map.values_mut().for_each(remove_null_creation_timestamps);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_null_creation_timestamps),
        _ => {}
    }
}

fn meta_map(object: &mut Value) -> &mut Map<String, Value> {
    let map = object.as_object_mut().expect("a parsed manifest is an object");
    map.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("parse checked that metadata is an object")
}

fn to_dynamic(object: Value) -> Result<DynamicObject> {
    serde_json::from_value(object).map_err(|e| Error::InvalidManifest { reason: e.to_string() })
}

/// Applies manifests of one work as one field manager.
#[derive(Clone, Copy)]
pub(crate) struct Writer<'a> {
    pub(crate) client: &'a kube::Client,
    pub(crate) field_manager: &'a str,
}

impl Writer<'_> {
    fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: false,
            field_manager: Some(self.field_manager.to_owned()),
        }
    }

    /// Applies `required` at `target` with `strategy` (Update when `None`), owned by `owner`
    /// (or not, when orphaned). Returns the object as the server has it (`None` for ReadOnly,
    /// which writes nothing).
    pub(crate) async fn apply(
        &self,
        target: &Target,
        mut required: Value,
        strategy: Option<&UpdateStrategy>,
        owner: &OwnerReference,
        owned: bool,
    ) -> Result<Option<DynamicObject>> {
        let kind = strategy.map_or(UpdateStrategyType::Update, |s| s.type_.clone());
        match kind {
            UpdateStrategyType::ReadOnly => Ok(None),
            UpdateStrategyType::CreateOnly => {
                let object = match target.get(self.client).await? {
                    Some(existing) => existing,
                    None => self.create(target, required, owner, owned).await?,
                };
                self.ensure_owner(target, object, owner, owned).await.map(Some)
            }
            UpdateStrategyType::ServerSideApply => {
                let ssa = strategy.and_then(|s| s.server_side_apply.as_ref());
                let manager = ssa
                    .map(|s| s.field_manager.as_str())
                    .filter(|m| !m.is_empty())
                    .unwrap_or(self.field_manager);
                let mut params = PatchParams::apply(manager);
                if ssa.is_some_and(|s| s.force) {
                    params = params.force();
                }
                remove_null_creation_timestamps(&mut required);
                let object = target
                    .api(self.client)
                    .patch(&target.name, &params, &Patch::Apply(&required))
                    .await
                    .map_err(|e| Error::kube(format!("failed to apply {}", target.describe()), e))?;
                self.ensure_owner(target, object, owner, owned).await.map(Some)
            }
            UpdateStrategyType::Update | UpdateStrategyType::Other(_) => {
                self.update(target, required, owner, owned).await.map(Some)
            }
        }
    }

    async fn create(
        &self,
        target: &Target,
        mut required: Value,
        owner: &OwnerReference,
        owned: bool,
    ) -> Result<DynamicObject> {
        let meta = meta_map(&mut required);
        if owned {
            meta.insert("ownerReferences".to_owned(), json!([owner]));
        } else {
            meta.remove("ownerReferences");
        }
        target
            .api(self.client)
            .create(&self.post_params(), &to_dynamic(required)?)
            .await
            .map_err(|e| Error::kube(format!("failed to create {}", target.describe()), e))
    }

    /// OCM's `applyUnstructured`: create when missing; otherwise merge labels, annotations and
    /// owner references into the existing ones, keep the finalizers, and replace the object when
    /// the metadata or the content differ.
    async fn update(
        &self,
        target: &Target,
        required: Value,
        owner: &OwnerReference,
        owned: bool,
    ) -> Result<DynamicObject> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(existing) = target.get(self.client).await? else {
                return self.create(target, required, owner, owned).await;
            };
            let mut desired = required.clone();
            let mut modified = false;
            let meta = meta_map(&mut desired);
            for key in ["labels", "annotations"] {
                let mut merged = match key {
                    "labels" => existing.metadata.labels.clone().unwrap_or_default(),
                    _ => existing.metadata.annotations.clone().unwrap_or_default(),
                };
                if let Some(Value::Object(wanted)) = meta.get(key) {
                    for (k, v) in wanted {
                        let v = v.as_str().unwrap_or_default().to_owned();
                        if merged.get(k) != Some(&v) {
                            merged.insert(k.clone(), v);
                            modified = true;
                        }
                    }
                }
                meta.insert(key.to_owned(), json!(merged));
            }
            let existing_refs = existing.metadata.owner_references.clone().unwrap_or_default();
            let refs = match merged_owner_references(&existing_refs, owner, owned) {
                Some(refs) => {
                    modified = true;
                    refs
                }
                None => existing_refs,
            };
            meta.insert("ownerReferences".to_owned(), json!(refs));
            meta.insert(
                "finalizers".to_owned(),
                json!(existing.metadata.finalizers.clone().unwrap_or_default()),
            );
            meta.insert("resourceVersion".to_owned(), json!(existing.metadata.resource_version));
            let existing_value =
                serde_json::to_value(&existing).map_err(|e| Error::InvalidManifest { reason: e.to_string() })?;
            let same_content = required
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
                .all(|(k, v)| existing_value.get(k).is_some_and(|e| contains(e, v)));
            if !modified && same_content {
                return Ok(existing);
            }
            match target
                .api(self.client)
                .replace(&target.name, &self.post_params(), &to_dynamic(desired)?)
                .await
            {
                Ok(updated) => return Ok(updated),
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < UPDATE_ATTEMPTS => {}
                Err(e) => return Err(Error::kube(format!("failed to update {}", target.describe()), e)),
            }
        }
    }

    /// Adds (or removes) the owner reference of the work's record with a merge patch that is
    /// conditional on the object's UID and resource version (OCM's `ApplyOwnerReferences`).
    pub(crate) async fn ensure_owner(
        &self,
        target: &Target,
        object: DynamicObject,
        owner: &OwnerReference,
        owned: bool,
    ) -> Result<DynamicObject> {
        let existing = object.metadata.owner_references.clone().unwrap_or_default();
        let Some(refs) = merged_owner_references(&existing, owner, owned) else {
            return Ok(object);
        };
        let patch = json!({"metadata": {
            "uid": object.metadata.uid,
            "resourceVersion": object.metadata.resource_version,
            "ownerReferences": refs,
        }});
        let params = PatchParams {
            field_manager: Some(self.field_manager.to_owned()),
            ..PatchParams::default()
        };
        target
            .api(self.client)
            .patch(&target.name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::kube(format!("failed to set the owner of {}", target.describe()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "work.open-cluster-management.io/v1".into(),
            kind: "AppliedManifestWork".into(),
            name: format!("h-{uid}"),
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn owner_references_are_added_once_and_removed_when_orphaned() {
        let other = owner("other");
        assert_eq!(
            merged_owner_references(std::slice::from_ref(&other), &owner("me"), true),
            Some(vec![other.clone(), owner("me")])
        );
        assert_eq!(
            merged_owner_references(&[other.clone(), owner("me")], &owner("me"), true),
            None
        );
        assert_eq!(
            merged_owner_references(&[owner("me"), other.clone()], &owner("me"), false),
            Some(vec![other.clone()])
        );
        assert_eq!(
            merged_owner_references(std::slice::from_ref(&other), &owner("me"), false),
            None
        );
    }

    #[test]
    fn containment_ignores_what_the_server_added() {
        let existing = json!({"data": {"a": "1", "b": "2"}, "spec": {"replicas": 1, "list": [{"x": 1, "y": 2}]}});
        assert!(contains(&existing, &json!({"data": {"a": "1"}})));
        assert!(contains(&existing, &json!({"spec": {"list": [{"x": 1}]}})));
        assert!(!contains(&existing, &json!({"data": {"a": "2"}})));
        assert!(!contains(&existing, &json!({"spec": {"list": [{"x": 1}, {"x": 2}]}})));
        assert!(!contains(&existing, &json!({"data": {"c": "3"}})));
        assert!(
            contains(&existing, &json!({"data": {"c": null}})),
            "a null field is an absent one"
        );
    }

    #[test]
    fn a_manifest_is_parsed_with_its_identity_and_without_its_uid() {
        let raw = ocm_ce_work::Manifest::from_raw(
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"prod","uid":"x"}}"#,
        )
        .unwrap();
        let parsed = parse(3, &raw).unwrap();
        assert_eq!(parsed.gvk, GroupVersionKind::gvk("apps", "v1", "Deployment"));
        assert_eq!((parsed.name.as_str(), parsed.namespace.as_str()), ("web", "prod"));
        assert!(parsed.object["metadata"].get("uid").is_none());

        let nameless = ocm_ce_work::Manifest::from_raw(r#"{"apiVersion":"v1","kind":"ConfigMap"}"#).unwrap();
        let (meta, err) = *parse(1, &nameless).unwrap_err();
        assert_eq!(
            (meta.ordinal, meta.kind.as_str(), meta.version.as_str()),
            (1, "ConfigMap", "v1")
        );
        assert_eq!(err.to_string(), "the manifest has no metadata.name");
    }

    #[test]
    fn null_creation_timestamps_are_removed_at_every_level() {
        let mut v = json!({"metadata": {"name": "d", "creationTimestamp": null},
            "spec": {"template": {"metadata": {"creationTimestamp": null, "labels": {"a": "b"}}}}});
        remove_null_creation_timestamps(&mut v);
        assert_eq!(
            v,
            json!({"metadata": {"name": "d"}, "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}})
        );
    }
}
