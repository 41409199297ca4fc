//! AppliedManifestWork (`work.open-cluster-management.io/v1`, cluster-scoped): the record an
//! agent keeps in its cluster of each work it applied, as OCM's work agent does — named
//! `<hub hash>-<work name>`, with `spec.hubHash`, `spec.manifestWorkName`, `spec.agentID` and
//! the applied resources (with their UIDs) in `status.appliedResources`. Every resource a work
//! owns carries an owner reference to its AppliedManifestWork, so several works can share a
//! resource and orphaned resources are simply those without it.
//!
//! ocm-ce adds what an agent needs to rebuild its store after a restart (OCM's agent reads its
//! works back from the hub's API instead): the work's cluster in the annotation
//! [`CLUSTER_ANNOTATION`], and the data type annotation and original source label the work was
//! received with. [`recorded_works`] turns them back into works.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, ListParams};
use kube::core::{ClusterResourceScope, TypeMeta};
use ocm_ce_work::ManifestWork;
use ocm_ce_work::api::{DATA_TYPE_ANNOTATION, GROUP, MANIFEST_WORK_FINALIZER, ORIGINAL_SOURCE_LABEL, VERSION};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Kind of the record.
pub(crate) const KIND: &str = "AppliedManifestWork";
/// Resource (plural) of the record.
pub(crate) const RESOURCE: &str = "appliedmanifestworks";
/// Annotation of an AppliedManifestWork holding the cluster (namespace) of its work.
pub const CLUSTER_ANNOTATION: &str = "ocm-ce.io/cluster-name";

/// The record of one applied work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedManifestWork {
    /// `apiVersion` and `kind`.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub types: Option<TypeMeta>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Which work of which hub and agent.
    #[serde(default)]
    pub spec: AppliedManifestWorkSpec,
    /// What was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppliedManifestWorkStatus>,
}

/// Which work an AppliedManifestWork records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedManifestWorkSpec {
    /// The hash of the hub (see [`hub_hash`](crate::hub_hash)).
    #[serde(default, rename = "hubHash")]
    pub hub_hash: String,
    /// Name of the work (on the agent side: its UID).
    #[serde(default, rename = "manifestWorkName")]
    pub manifest_work_name: String,
    /// The agent that applied it.
    #[serde(default, rename = "agentID")]
    pub agent_id: String,
}

/// What an AppliedManifestWork records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestWorkStatus {
    /// The resources the work applied (and those still being deleted).
    #[serde(default)]
    pub applied_resources: Vec<AppliedManifestResourceMeta>,
    /// When the agent started evicting a record whose work is gone (unused by ocm-ce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_start_time: Option<Time>,
}

/// One applied resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppliedManifestResourceMeta {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Resource (plural).
    #[serde(default)]
    pub resource: String,
    /// Namespace (`""` for cluster-scoped resources).
    #[serde(default)]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// UID of the object that was applied.
    #[serde(default)]
    pub uid: String,
}

impl AppliedManifestResourceMeta {
    /// Group, resource, namespace and name: what identifies the resource whatever its version.
    pub fn identifier(&self) -> (&str, &str, &str, &str) {
        (&self.group, &self.resource, &self.namespace, &self.name)
    }
}

ocm_ce_work::kube_resource!(
    AppliedManifestWork,
    ClusterResourceScope,
    GROUP,
    VERSION,
    KIND,
    RESOURCE
);

/// The name of the record of the work `work_name`: `<hub hash>-<work name>`.
pub fn applied_manifest_work_name(hub_hash: &str, work_name: &str) -> String {
    format!("{hub_hash}-{work_name}")
}

impl AppliedManifestWork {
    /// The record of `work` (received by an agent: named by its UID in its cluster) for the
    /// given hub and agent, without status.
    pub fn for_work(work: &ManifestWork, hub_hash: &str, agent_id: &str) -> Self {
        let mut annotations = BTreeMap::from([(CLUSTER_ANNOTATION.to_owned(), work.namespace_str().to_owned())]);
        if let Some(data_type) = work.annotation(DATA_TYPE_ANNOTATION) {
            annotations.insert(DATA_TYPE_ANNOTATION.to_owned(), data_type.to_owned());
        }
        let labels = work
            .label(ORIGINAL_SOURCE_LABEL)
            .map(|source| BTreeMap::from([(ORIGINAL_SOURCE_LABEL.to_owned(), source.to_owned())]));
        Self {
            types: Some(TypeMeta {
                api_version: format!("{GROUP}/{VERSION}"),
                kind: KIND.to_owned(),
            }),
            metadata: ObjectMeta {
                name: Some(applied_manifest_work_name(hub_hash, work.name())),
                annotations: Some(annotations),
                labels,
                ..ObjectMeta::default()
            },
            spec: AppliedManifestWorkSpec {
                hub_hash: hub_hash.to_owned(),
                manifest_work_name: work.name().to_owned(),
                agent_id: agent_id.to_owned(),
            },
            status: None,
        }
    }

    /// The owner reference the resources of this record carry (OCM's
    /// `NewAppliedManifestWorkOwner`).
    pub fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: KIND.to_owned(),
            name: self.metadata.name.clone().unwrap_or_default(),
            uid: self.metadata.uid.clone().unwrap_or_default(),
            ..OwnerReference::default()
        }
    }

    /// The applied resources (empty without status).
    pub fn applied_resources(&self) -> &[AppliedManifestResourceMeta] {
        self.status
            .as_ref()
            .map(|s| &s.applied_resources[..])
            .unwrap_or_default()
    }

    /// The work this record stands for, as an agent's store holds a received work: named by
    /// its UID in its cluster, with the agent finalizer, the recorded data type annotation and
    /// original source label, resource version `"0"` (so that the sources resend the current
    /// spec) and an empty spec and status. `None` when the record lacks its cluster.
    pub fn recorded_work(&self) -> Option<ManifestWork> {
        let annotations = self.metadata.annotations.as_ref()?;
        let cluster = annotations.get(CLUSTER_ANNOTATION).filter(|c| !c.is_empty())?;
        let name = &self.spec.manifest_work_name;
        let mut work = ManifestWork::new(cluster.clone(), name.clone(), Vec::new());
        work.types = None;
        work.metadata.uid = Some(name.clone());
        work.metadata.resource_version = Some("0".to_owned());
        work.metadata.finalizers = Some(vec![MANIFEST_WORK_FINALIZER.to_owned()]);
        work.metadata.annotations = annotations
            .get(DATA_TYPE_ANNOTATION)
            .map(|dt| BTreeMap::from([(DATA_TYPE_ANNOTATION.to_owned(), dt.clone())]));
        work.metadata.labels = self
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ORIGINAL_SOURCE_LABEL))
            .map(|s| BTreeMap::from([(ORIGINAL_SOURCE_LABEL.to_owned(), s.clone())]));
        Some(work)
    }
}

/// The records of the hub `hub_hash` and the agent `agent_id` in the cluster.
pub async fn applied_manifest_works(
    client: &kube::Client,
    hub_hash: &str,
    agent_id: &str,
) -> Result<Vec<AppliedManifestWork>> {
    let api = Api::<AppliedManifestWork>::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::kube("failed to list appliedmanifestworks", e))?;
    let prefix = format!("{hub_hash}-");
    Ok(list
        .items
        .into_iter()
        .filter(|a| {
            a.spec.hub_hash == hub_hash
                && a.spec.agent_id == agent_id
                && a.metadata.name.as_deref().is_some_and(|n| n.starts_with(&prefix))
        })
        .collect())
}

/// The works an agent of `cluster_name` recorded in its cluster (see
/// [`AppliedManifestWork::recorded_work`]): start the agent work client with them
/// (`AgentWorkClient::start_with_works`) so that deletions made while it was down complete.
pub async fn recorded_works(
    client: &kube::Client,
    hub_hash: &str,
    agent_id: &str,
    cluster_name: &str,
) -> Result<Vec<ManifestWork>> {
    Ok(applied_manifest_works(client, hub_hash, agent_id)
        .await?
        .iter()
        .filter_map(AppliedManifestWork::recorded_work)
        .filter(|w| w.namespace_str() == cluster_name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_written_with_ocm_field_names() {
        let mut work = ManifestWork::new("cluster1", "uid-1", Vec::new());
        work.metadata.annotations = Some(BTreeMap::from([(
            DATA_TYPE_ANNOTATION.to_owned(),
            "io.open-cluster-management.works.v1alpha1.manifestbundles".to_owned(),
        )]));
        let mut record = AppliedManifestWork::for_work(&work, "hash", "agent1");
        record.status = Some(AppliedManifestWorkStatus {
            applied_resources: vec![AppliedManifestResourceMeta {
                version: "v1".into(),
                resource: "configmaps".into(),
                namespace: "default".into(),
                name: "cm1".into(),
                uid: "u1".into(),
                ..Default::default()
            }],
            eviction_start_time: None,
        });
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["apiVersion"], "work.open-cluster-management.io/v1");
        assert_eq!(json["kind"], "AppliedManifestWork");
        assert_eq!(json["metadata"]["name"], "hash-uid-1");
        assert_eq!(
            json["spec"],
            serde_json::json!({"hubHash": "hash", "manifestWorkName": "uid-1", "agentID": "agent1"})
        );
        assert_eq!(
            json["status"]["appliedResources"][0],
            serde_json::json!({"group": "", "version": "v1", "resource": "configmaps", "namespace": "default", "name": "cm1", "uid": "u1"})
        );
        let back: AppliedManifestWork = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_record_gives_back_the_work_with_the_finalizer_and_version_zero() {
        let mut work = ManifestWork::new("cluster1", "uid-1", Vec::new());
        work.metadata.annotations = Some(BTreeMap::from([(DATA_TYPE_ANNOTATION.to_owned(), "dt".to_owned())]));
        work.metadata.labels = Some(BTreeMap::from([(
            ORIGINAL_SOURCE_LABEL.to_owned(),
            "source1".to_owned(),
        )]));
        let recorded = AppliedManifestWork::for_work(&work, "h", "a").recorded_work().unwrap();
        assert_eq!(recorded.namespace_str(), "cluster1");
        assert_eq!((recorded.name(), recorded.uid_str()), ("uid-1", "uid-1"));
        assert_eq!(recorded.resource_version_str(), "0");
        assert_eq!(recorded.finalizers(), [MANIFEST_WORK_FINALIZER]);
        assert_eq!(recorded.annotation(DATA_TYPE_ANNOTATION), Some("dt"));
        assert_eq!(recorded.label(ORIGINAL_SOURCE_LABEL), Some("source1"));
        assert!(recorded.spec.workload.manifests.is_empty());

        let mut anonymous = AppliedManifestWork::for_work(&work, "h", "a");
        anonymous.metadata.annotations = None;
        assert_eq!(
            anonymous.recorded_work(),
            None,
            "a record without its cluster is not a work"
        );
    }
}
