//! Status condition helpers (apimachinery's `meta.SetStatusCondition` family) and the `Deleted`
//! condition an agent reports once it removed a deleting work's manifests.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::{ManifestWork, ManifestWorkStatus, condition_type, is_zero_time, time_from_chrono};

/// `True` status of a condition.
pub const CONDITION_TRUE: &str = "True";
/// `False` status of a condition.
pub const CONDITION_FALSE: &str = "False";
/// `Unknown` status of a condition.
pub const CONDITION_UNKNOWN: &str = "Unknown";
/// Reason of the `Deleted` condition.
pub const MANIFESTS_DELETED_REASON: &str = "ManifestsDeleted";

/// The condition of type `type_`, if any.
pub fn find_status_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of type `type_` exists with status `True`.
pub fn is_status_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_status_condition(conditions, type_).is_some_and(|c| c.status == CONDITION_TRUE)
}

/// Adds or updates a condition as Go's `meta.SetStatusCondition`: a new condition is appended
/// (its transition time set to `now` when zero); an existing one takes the new status (and the
/// new transition time, or `now` when zero) only when the status changes, and always the new
/// reason, message and observed generation. Returns true when something changed.
pub fn set_status_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: DateTime<Utc>) -> bool {
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == new.type_) else {
        if is_zero_time(&new.last_transition_time) {
            new.last_transition_time = time_from_chrono(now);
        }
        // One more, not room for four: a work's conditions are few and kept for its lifetime.
        conditions.reserve_exact(1);
        conditions.push(new);
        return true;
    };
    let mut changed = false;
    if existing.status != new.status {
        existing.status = new.status;
        existing.last_transition_time = if is_zero_time(&new.last_transition_time) {
            time_from_chrono(now)
        } else {
            new.last_transition_time
        };
        changed = true;
    }
    if existing.reason != new.reason {
        existing.reason = new.reason;
        changed = true;
    }
    if existing.message != new.message {
        existing.message = new.message;
        changed = true;
    }
    let new_generation = new.observed_generation.filter(|g| *g != 0);
    if existing.observed_generation.filter(|g| *g != 0) != new_generation {
        existing.observed_generation = new_generation;
        changed = true;
    }
    changed
}

/// The `Deleted` condition for a work in `namespace` (transition time unset: set on insertion).
pub fn deleted_condition(namespace: &str) -> Condition {
    crate::api::condition(
        condition_type::DELETED,
        CONDITION_TRUE,
        MANIFESTS_DELETED_REASON,
        format!("The manifests are deleted from the cluster {namespace}"),
        None,
    )
}

/// Marks a work's manifests as deleted, as the Go agent does before it reports a work whose
/// finalizers were removed while it was being deleted: sets condition `Deleted` = `True`
/// (reason `ManifestsDeleted`, message `The manifests are deleted from the cluster <namespace>`,
/// transition time `now` when new). The work is then published with action `delete_request`.
pub fn mark_manifests_deleted(work: &mut ManifestWork, now: DateTime<Utc>) -> bool {
    let condition = deleted_condition(work.namespace_str());
    set_status_condition(&mut work.status.conditions, condition, now)
}

/// True when a status carries `Deleted` = `True` (the agent finished deleting the work).
pub fn is_deleted(status: &ManifestWorkStatus) -> bool {
    is_status_condition_true(&status.conditions, condition_type::DELETED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{format_time, parse_time};

    #[test]
    fn a_deleted_condition_is_appended_with_the_current_time() {
        let mut work = ManifestWork::new("cluster1", "w", vec![]);
        let now = DateTime::parse_from_rfc3339("2026-11-25T12:20:41.5Z").unwrap().to_utc();
        assert!(!is_deleted(&work.status));
        assert!(mark_manifests_deleted(&mut work, now));
        let c = &work.status.conditions[0];
        assert_eq!(c.type_, "Deleted");
        assert_eq!(c.reason, "ManifestsDeleted");
        assert_eq!(c.message, "The manifests are deleted from the cluster cluster1");
        assert_eq!(format_time(&c.last_transition_time).unwrap(), "2026-11-25T12:20:41Z");
        assert!(is_deleted(&work.status));
        assert!(!mark_manifests_deleted(&mut work, now + chrono::Duration::seconds(5)));
        assert_eq!(
            format_time(&work.status.conditions[0].last_transition_time).unwrap(),
            "2026-11-25T12:20:41Z"
        );
    }

    #[test]
    fn an_appended_condition_takes_room_for_itself_only() {
        let mut conds = Vec::new();
        for ty in ["Applied", "Available"] {
            set_status_condition(
                &mut conds,
                crate::api::condition(ty, "True", "R", "m", None),
                Utc::now(),
            );
        }
        assert_eq!((conds.len(), conds.capacity()), (2, 2));
    }

    #[test]
    fn a_status_change_moves_the_transition_time() {
        let t0 = parse_time("2024-10-01T12:00:00Z").unwrap();
        let mut conds = vec![crate::api::condition("Applied", "False", "R", "m", Some(t0))];
        let now = DateTime::parse_from_rfc3339("2024-10-02T00:00:00Z").unwrap().to_utc();
        assert!(set_status_condition(
            &mut conds,
            crate::api::condition("Applied", "True", "R", "m", None),
            now
        ));
        assert_eq!(
            format_time(&conds[0].last_transition_time).unwrap(),
            "2024-10-02T00:00:00Z"
        );
        assert!(!set_status_condition(
            &mut conds,
            crate::api::condition("Applied", "True", "R", "m", None),
            now
        ));
    }
}
