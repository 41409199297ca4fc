//! The conditions an agent reports, as OCM's work agent builds them (its manifest and
//! available-status controllers): per manifest `Applied`, `Available` and
//! `StatusFeedbackSynced`; per work `Applied` and `Available` with the observed generation.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use ocm_ce_work::api::{condition, condition_type};
use ocm_ce_work::conditions::{CONDITION_FALSE, CONDITION_TRUE, CONDITION_UNKNOWN, set_status_condition};
use ocm_ce_work::{Condition, ManifestCondition, ManifestResourceMeta, ManifestWork};

/// Condition type of a manifest's status feedback.
pub const STATUS_FEEDBACK_SYNCED: &str = "StatusFeedbackSynced";

/// The current time in whole seconds (what a condition keeps on the wire).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// The generation the work-level conditions observe: the work's `metadata.generation` when
/// set, otherwise its resource version (agent-side works carry no generation in sdk-go
/// v0.15.0; the version tells the source which spec was applied). `None` when neither is a
/// positive number.
pub fn observed_generation(work: &ManifestWork) -> Option<i64> {
    work.metadata
        .generation
        .filter(|g| *g > 0)
        .or_else(|| work.resource_version_str().parse::<i64>().ok().filter(|g| *g > 0))
}

/// A manifest's `Applied` condition (OCM's `buildAppliedStatusCondition`).
pub(crate) fn applied_condition(error: Option<&str>) -> Condition {
    match error {
        Some(e) => condition(
            condition_type::APPLIED,
            CONDITION_FALSE,
            "AppliedManifestFailed",
            format!("Failed to apply manifest: {e}"),
            None,
        ),
        None => condition(
            condition_type::APPLIED,
            CONDITION_TRUE,
            "AppliedManifestComplete",
            "Apply manifest complete",
            None,
        ),
    }
}

/// What reading a manifest's resource found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Availability {
    /// The resource exists.
    Available,
    /// The resource does not exist.
    Missing,
    /// The resource meta lacks its resource, version or name.
    Incomplete,
    /// Reading it failed.
    Failed(String),
}

/// A manifest's `Available` condition (OCM's `buildAvailableStatusCondition`).
pub(crate) fn available_condition(availability: &Availability) -> Condition {
    let (status, reason, message) = match availability {
        Availability::Available => (CONDITION_TRUE, "ResourceAvailable", "Resource is available".to_owned()),
        Availability::Missing => (
            CONDITION_FALSE,
            "ResourceNotAvailable",
            "Resource is not available".to_owned(),
        ),
        Availability::Incomplete => (
            CONDITION_UNKNOWN,
            "IncompletedResourceMeta",
            "Resource meta is incompleted".to_owned(),
        ),
        Availability::Failed(e) => (
            CONDITION_UNKNOWN,
            "FetchingResourceFailed",
            format!("Failed to fetch resource: {e}"),
        ),
    };
    condition(condition_type::AVAILABLE, status, reason, message, None)
}

/// A manifest's `StatusFeedbackSynced` condition: `NoStatusFeedbackSynced` without rules,
/// `StatusFeedbackSyncFailed` with the errors (Go's aggregate text), `StatusFeedbackSynced`.
pub(crate) fn feedback_condition(has_rules: bool, errors: &[String]) -> Condition {
    if !has_rules {
        return condition(
            STATUS_FEEDBACK_SYNCED,
            CONDITION_TRUE,
            "NoStatusFeedbackSynced",
            "",
            None,
        );
    }
    match errors {
        [] => condition(STATUS_FEEDBACK_SYNCED, CONDITION_TRUE, "StatusFeedbackSynced", "", None),
        errors => {
            let text = match errors {
                [one] => one.clone(),
                many => format!("[{}]", many.join(", ")),
            };
            condition(
                STATUS_FEEDBACK_SYNCED,
                CONDITION_FALSE,
                "StatusFeedbackSyncFailed",
                format!("Sync status feedback failed with error {text}"),
                None,
            )
        }
    }
}

fn without_ordinal(meta: &ManifestResourceMeta) -> ManifestResourceMeta {
    ManifestResourceMeta {
        ordinal: 0,
        ..meta.clone()
    }
}

/// OCM's `MergeManifestConditions`: each new manifest condition takes over the conditions and
/// status feedback of the old one with the same resource meta (or, failing that, the one unique
/// old entry with the same meta but another ordinal) and sets its own conditions on top; a
/// manifest without a match is new, its conditions transition at `now`.
pub(crate) fn merge_manifest_conditions(
    old: &[ManifestCondition],
    new: Vec<ManifestCondition>,
    now: DateTime<Utc>,
) -> Vec<ManifestCondition> {
    let by_meta: HashMap<&ManifestResourceMeta, &ManifestCondition> =
        old.iter().map(|c| (&c.resource_meta, c)).collect();
    let mut by_identity: HashMap<ManifestResourceMeta, Option<&ManifestCondition>> = HashMap::new();
    for c in old {
        let key = without_ordinal(&c.resource_meta);
        if key == ManifestResourceMeta::default() {
            continue;
        }
        by_identity.entry(key).and_modify(|e| *e = None).or_insert(Some(c));
    }
    new.into_iter()
        .map(|mut fresh| {
            let matched = by_meta.get(&fresh.resource_meta).copied().or_else(|| {
                by_identity
                    .get(&without_ordinal(&fresh.resource_meta))
                    .copied()
                    .flatten()
            });
            match matched {
                Some(existing) => {
                    let mut conditions = existing.conditions.clone().unwrap_or_default();
                    for c in fresh.conditions.take().unwrap_or_default() {
                        set_status_condition(&mut conditions, c, now);
                    }
                    ManifestCondition {
                        resource_meta: fresh.resource_meta,
                        status_feedback: existing.status_feedback.clone(),
                        conditions: Some(conditions),
                    }
                }
                None => {
                    let mut conditions = Vec::new();
                    for c in fresh.conditions.take().unwrap_or_default() {
                        set_status_condition(&mut conditions, c, now);
                    }
                    fresh.conditions = Some(conditions);
                    fresh
                }
            }
        })
        .collect()
}

fn statuses_of<'a>(manifests: &'a [ManifestCondition], type_: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    manifests
        .iter()
        .flat_map(|m| m.conditions.as_deref().unwrap_or_default())
        .filter(move |c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The work's `Applied` condition (OCM's `allInCondition`): `None` when no manifest has an
/// `Applied` condition, `True` when none is `False`.
pub(crate) fn work_applied_condition(manifests: &[ManifestCondition], generation: Option<i64>) -> Option<Condition> {
    let mut statuses = statuses_of(manifests, condition_type::APPLIED).peekable();
    statuses.peek()?;
    let failed = statuses.any(|s| s == CONDITION_FALSE);
    let mut c = if failed {
        condition(
            condition_type::APPLIED,
            CONDITION_FALSE,
            "AppliedManifestWorkFailed",
            "Failed to apply manifest work",
            None,
        )
    } else {
        condition(
            condition_type::APPLIED,
            CONDITION_TRUE,
            "AppliedManifestWorkComplete",
            "Apply manifest work complete",
            None,
        )
    };
    c.observed_generation = generation;
    Some(c)
}

/// The work's `Available` condition (OCM's `aggregateManifestConditions`).
pub(crate) fn work_available_condition(manifests: &[ManifestCondition], generation: Option<i64>) -> Condition {
    let (mut available, mut unavailable, mut unknown) = (0, 0, 0);
    for status in statuses_of(manifests, condition_type::AVAILABLE) {
        match status {
            CONDITION_TRUE => available += 1,
            CONDITION_FALSE => unavailable += 1,
            CONDITION_UNKNOWN => unknown += 1,
            _ => {}
        }
    }
    let total = manifests.len();
    let (status, reason, message) = if unavailable > 0 {
        (
            CONDITION_FALSE,
            "ResourcesNotAvailable",
            format!("{unavailable} of {total} resources are not available"),
        )
    } else if unknown > 0 {
        (
            CONDITION_UNKNOWN,
            "ResourcesStatusUnknown",
            format!("{unknown} of {total} resources have unknown status"),
        )
    } else if available == 0 {
        (
            CONDITION_UNKNOWN,
            "ResourcesStatusUnknown",
            "cannot get any available resource ".to_owned(),
        )
    } else {
        (
            CONDITION_TRUE,
            "ResourcesAvailable",
            "All resources are available".to_owned(),
        )
    };
    let mut c = condition(condition_type::AVAILABLE, status, reason, message, None);
    c.observed_generation = generation;
    c
}

#[cfg(test)]
mod tests {
    use ocm_ce_work::api::format_time;
    use ocm_ce_work::{FeedbackValue, StatusFeedbackResult};

    use super::*;

    fn meta(ordinal: i32, name: &str) -> ManifestResourceMeta {
        ManifestResourceMeta {
            ordinal,
            version: "v1".into(),
            kind: "ConfigMap".into(),
            resource: "configmaps".into(),
            name: name.into(),
            namespace: "default".into(),
            ..Default::default()
        }
    }

    fn manifest(meta: ManifestResourceMeta, conditions: Vec<Condition>) -> ManifestCondition {
        ManifestCondition {
            resource_meta: meta,
            status_feedback: StatusFeedbackResult::default(),
            conditions: Some(conditions),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn merging_keeps_old_conditions_and_feedback_and_matches_a_moved_manifest() {
        let t0 = at("2024-10-01T12:00:00Z");
        let mut old_a = manifest(meta(0, "a"), vec![]);
        set_status_condition(
            old_a.conditions.as_mut().unwrap(),
            available_condition(&Availability::Available),
            t0,
        );
        old_a.status_feedback.values.push(FeedbackValue {
            name: "x".into(),
            ..Default::default()
        });
        let old = vec![old_a, manifest(meta(1, "b"), vec![])];
        // "a" moved to ordinal 1, "c" is new.
        let new = vec![
            manifest(meta(0, "c"), vec![applied_condition(None)]),
            manifest(meta(1, "a"), vec![applied_condition(Some("boom"))]),
        ];
        let t1 = at("2024-10-02T00:00:00Z");
        let merged = merge_manifest_conditions(&old, new, t1);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].resource_meta.name, "c");
        let c = &merged[0].conditions.as_ref().unwrap()[0];
        assert_eq!(
            format_time(&c.last_transition_time).as_deref(),
            Some("2024-10-02T00:00:00Z")
        );
        assert_eq!(merged[1].resource_meta, meta(1, "a"));
        let conds = merged[1].conditions.as_ref().unwrap();
        assert_eq!(conds.len(), 2, "Available kept, Applied added: {conds:?}");
        assert_eq!(conds[0].type_, "Available");
        assert_eq!(
            format_time(&conds[0].last_transition_time).as_deref(),
            Some("2024-10-01T12:00:00Z")
        );
        assert_eq!(conds[1].message, "Failed to apply manifest: boom");
        assert_eq!(merged[1].status_feedback.values[0].name, "x");
    }

    #[test]
    fn the_work_is_applied_when_no_manifest_failed() {
        assert_eq!(work_applied_condition(&[], Some(3)), None);
        let ok = manifest(meta(0, "a"), vec![applied_condition(None)]);
        let bad = manifest(meta(1, "b"), vec![applied_condition(Some("x"))]);
        let c = work_applied_condition(std::slice::from_ref(&ok), Some(3)).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "AppliedManifestWorkComplete")
        );
        assert_eq!(c.observed_generation, Some(3));
        let c = work_applied_condition(&[ok, bad], None).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "AppliedManifestWorkFailed")
        );
    }

    #[test]
    fn availability_aggregates_like_ocm() {
        let with = |a: Availability| manifest(meta(0, "a"), vec![available_condition(&a)]);
        let c = work_available_condition(&[with(Availability::Available), with(Availability::Missing)], Some(2));
        assert_eq!(c.status, "False");
        assert_eq!(c.message, "1 of 2 resources are not available");
        assert_eq!(c.observed_generation, Some(2));
        let c = work_available_condition(&[with(Availability::Available), with(Availability::Incomplete)], None);
        assert_eq!(
            (c.status.as_str(), c.message.as_str()),
            ("Unknown", "1 of 2 resources have unknown status")
        );
        let c = work_available_condition(&[], None);
        assert_eq!(c.message, "cannot get any available resource ");
        let c = work_available_condition(&[with(Availability::Available)], None);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "ResourcesAvailable"));
    }

    #[test]
    fn feedback_errors_are_aggregated_like_go() {
        assert_eq!(feedback_condition(false, &[]).reason, "NoStatusFeedbackSynced");
        assert_eq!(feedback_condition(true, &[]).reason, "StatusFeedbackSynced");
        let c = feedback_condition(true, &["a".into(), "b".into()]);
        assert_eq!(c.status, "False");
        assert_eq!(c.message, "Sync status feedback failed with error [a, b]");
    }

    #[test]
    fn the_observed_generation_falls_back_to_the_resource_version() {
        let mut w = ManifestWork::new("c", "w", vec![]);
        assert_eq!(observed_generation(&w), None);
        w.metadata.resource_version = Some("7".into());
        assert_eq!(observed_generation(&w), Some(7));
        w.metadata.generation = Some(2);
        assert_eq!(observed_generation(&w), Some(2));
    }
}
