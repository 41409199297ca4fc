//! Deleting what a work applied (OCM's `DeleteAppliedResources`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use ocm_ce_work::api::{GROUP, VERSION};

use crate::applied::{AppliedManifestResourceMeta, KIND};
use crate::apply::{Target, Writer};
use crate::error::{Error, Result};

/// What deleting a set of applied resources left.
#[derive(Debug, Default)]
pub(crate) struct Deletion {
    /// Resources that still exist, being finalized: look again later.
    pub(crate) pending: Vec<AppliedManifestResourceMeta>,
    /// Deletes that were accepted and completed at once.
    pub(crate) deleted: usize,
    /// Failures (those resources are kept in `pending` too, to be tried again).
    pub(crate) errors: Vec<Error>,
}

/// True when another AppliedManifestWork than `owner` owns the object.
fn has_other_record_owner(owner: &OwnerReference, refs: &[OwnerReference]) -> bool {
    refs.iter()
        .any(|r| r.api_version == format!("{GROUP}/{VERSION}") && r.kind == KIND && r.uid != owner.uid)
}

/// Deletes each resource that `owner` (an AppliedManifestWork) owns, with background
/// propagation and a UID precondition; a resource that another record still owns only loses
/// `owner`'s reference; one that is gone, not owned by `owner`, or another object by now (its
/// UID differs) is left alone.
pub(crate) async fn delete_applied_resources(
    writer: Writer<'_>,
    resources: &[AppliedManifestResourceMeta],
    owner: &OwnerReference,
) -> Deletion {
    let mut result = Deletion::default();
    for resource in resources {
        match delete_one(writer, resource, owner).await {
            Ok(Outcome::Gone) => {}
            Ok(Outcome::Deleted) => result.deleted += 1,
            Ok(Outcome::Pending) => result.pending.push(resource.clone()),
            Err(e) => {
                result.pending.push(resource.clone());
                result.errors.push(e);
            }
        }
    }
    result
}

enum Outcome {
    /// Nothing (left) to do.
    Gone,
    /// Deleted now.
    Deleted,
    /// Still there, being finalized.
    Pending,
}

async fn delete_one(writer: Writer<'_>, r: &AppliedManifestResourceMeta, owner: &OwnerReference) -> Result<Outcome> {
    let target = Target::from_parts(&r.group, &r.version, &r.resource, &r.namespace, &r.name);
    let Some(object) = target.get(writer.client).await? else {
        return Ok(Outcome::Gone);
    };
    let refs = object.metadata.owner_references.clone().unwrap_or_default();
    if !refs.iter().any(|o| o.uid == owner.uid) {
        return Ok(Outcome::Gone);
    }
    if has_other_record_owner(owner, &refs) {
        writer.ensure_owner(&target, object, owner, false).await?;
        return Ok(Outcome::Gone);
    }
    if object.metadata.uid.as_deref() != Some(r.uid.as_str()) {
        // Another object by now: the one the work applied is gone.
        return Ok(Outcome::Gone);
    }
    if object.metadata.deletion_timestamp.is_some() {
        return Ok(Outcome::Pending);
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(r.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match target.api(writer.client).delete(&target.name, &params).await {
        // The server answers with the object while its finalizers run (and with the deleted
        // object or a status when it is gone).
        Ok(answer) => match answer.left() {
            Some(o) if o.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()) => Ok(Outcome::Pending),
            _ => Ok(Outcome::Deleted),
        },
        // Gone meanwhile, or the UID precondition failed (another object now).
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(Outcome::Gone),
        Err(e) => Err(Error::kube(format!("failed to delete {}", target.describe()), e)),
    }
}
