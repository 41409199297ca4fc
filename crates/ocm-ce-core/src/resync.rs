//! Pure resync and spec-application decisions, as Go's `generic` clients make them: what a
//! source answers to an agent's spec resync request ([`source_spec_resync`]), what an agent
//! resends for a source's status resync request ([`agent_status_resync`]), and what an agent does
//! with a received spec ([`spec_action`]). The clients feed them the resources a lister returned
//! and act on the result; nothing here does I/O.

use std::collections::{HashMap, HashSet};

use crate::payload::{ResourceStatusHashList, ResourceVersionList};
use crate::resource::{ResourceAction, ResourceObject, parse_resource_version};

/// Why a received spec was dropped without an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecActionError {
    /// One of the two resource versions is not a decimal int64.
    #[error("failed to parse resource version: {0}")]
    Version(String),
}

/// The action an agent takes for a received spec (Go `specAction`): `Added` when it has no
/// resource with that UID (even a deleting one), `Deleted` when the incoming spec is deleting,
/// `Modified` when both versions are `"0"` or the incoming version is greater, otherwise nothing.
pub fn spec_action<L, I>(local: Option<&L>, incoming: &I) -> Result<Option<ResourceAction>, SpecActionError>
where
    L: ResourceObject + ?Sized,
    I: ResourceObject + ?Sized,
{
    let Some(local) = local else {
        return Ok(Some(ResourceAction::Added));
    };
    if incoming.deletion_timestamp().is_some() {
        return Ok(Some(ResourceAction::Deleted));
    }
    if local.resource_version() == "0" && incoming.resource_version() == "0" {
        return Ok(Some(ResourceAction::Modified));
    }
    let parse = |v: &str| parse_resource_version(v).map_err(|e| SpecActionError::Version(format!("{v:?}: {e}")));
    let last = parse(local.resource_version())?;
    let new = parse(incoming.resource_version())?;
    Ok((new > last).then_some(ResourceAction::Modified))
}

/// One event of a source's answer to a spec resync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecResyncReply<'a, T> {
    /// Resend this resource.
    Resend(&'a T),
    /// The agent has a resource the source does not know: tell it to delete it.
    Delete {
        /// The agent-reported UID.
        resource_id: String,
        /// The agent-reported version.
        resource_version: i64,
    },
}

/// A source's answer to an agent's spec resync request (Go `respondResyncSpecRequest`): with no
/// resources for the cluster, nothing; otherwise every deleting resource, every resource whose
/// version is `0` or greater than the agent's (0 when the agent lacks it), then a delete for
/// every agent-reported UID the source does not have. Unparsable source versions are skipped.
pub fn source_spec_resync<'a, T: ResourceObject>(
    own: &'a [T],
    request: &ResourceVersionList,
) -> Vec<SpecResyncReply<'a, T>> {
    if own.is_empty() {
        return Vec::new();
    }
    // A resource listed twice counts with its first entry, as Go's linear lookup finds it.
    let mut reported: HashMap<&str, i64> = HashMap::with_capacity(request.versions.len());
    for v in &request.versions {
        reported.entry(v.resource_id.as_str()).or_insert(v.resource_version);
    }
    let mut replies = Vec::new();
    for obj in own {
        if obj.deletion_timestamp().is_some() {
            replies.push(SpecResyncReply::Resend(obj));
            continue;
        }
        let Ok(current) = parse_resource_version(obj.resource_version()) else {
            continue;
        };
        let last = reported.get(obj.resource_id()).copied().unwrap_or(0);
        if current == 0 || current > last {
            replies.push(SpecResyncReply::Resend(obj));
        }
    }
    let known: HashSet<&str> = own.iter().map(ResourceObject::resource_id).collect();
    for v in &request.versions {
        if !known.contains(v.resource_id.as_str()) {
            replies.push(SpecResyncReply::Delete {
                resource_id: v.resource_id.clone(),
                resource_version: v.resource_version,
            });
        }
    }
    replies
}

/// The resources an agent resends for a source's status resync request (Go
/// `respondResyncStatusRequest`): all of them when the request is empty; otherwise those the
/// source knows whose status hash differs. `same_status(resource, hash)` says whether `hash` is
/// the hash of the resource's status; a resource for which it fails is skipped.
pub fn agent_status_resync<'a, T, E>(
    local: &'a [T],
    request: &ResourceStatusHashList,
    same_status: impl Fn(&T, &str) -> Result<bool, E>,
) -> Vec<&'a T>
where
    T: ResourceObject,
{
    if request.hashes.is_empty() {
        return local.iter().collect();
    }
    let known: HashMap<&str, &str> = requested_status_hashes(request).collect();
    local
        .iter()
        .filter(|obj| match known.get(obj.resource_id()) {
            None => false,
            Some(hash) => same_status(obj, hash).is_ok_and(|same| !same),
        })
        .collect()
}

/// The resources a non-empty status resync request names, each with the hash it is to be
/// compared with: a resource listed twice counts with its first entry, as Go's linear lookup
/// finds it. Only these can be resent ([`agent_status_resync`]), so an agent may look them up
/// one by one instead of listing all it holds — a large request arrives in parts, and listing
/// everything for each part would make a resync quadratic.
pub fn requested_status_hashes(request: &ResourceStatusHashList) -> impl Iterator<Item = (&str, &str)> {
    let mut seen = HashSet::with_capacity(request.hashes.len());
    request
        .hashes
        .iter()
        .filter(move |h| seen.insert(h.resource_id.as_str()))
        .map(|h| (h.resource_id.as_str(), h.status_hash.as_str()))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::payload::{ResourceStatusHash, ResourceVersion};

    #[derive(Debug, Clone, PartialEq)]
    struct R {
        id: String,
        rv: String,
        deleting: bool,
        status: String,
    }

    impl ResourceObject for R {
        fn resource_id(&self) -> &str {
            &self.id
        }
        fn resource_version(&self) -> &str {
            &self.rv
        }
        fn deletion_timestamp(&self) -> Option<DateTime<Utc>> {
            self.deleting.then(Utc::now)
        }
    }

    fn r(id: &str, rv: &str) -> R {
        R {
            id: id.into(),
            rv: rv.into(),
            deleting: false,
            status: id.into(),
        }
    }

    fn versions(v: &[(&str, i64)]) -> ResourceVersionList {
        ResourceVersionList {
            versions: v
                .iter()
                .map(|(id, rv)| ResourceVersion {
                    resource_id: (*id).into(),
                    resource_version: *rv,
                })
                .collect(),
        }
    }

    #[test]
    fn an_unknown_uid_is_added_even_when_deleting() {
        let mut incoming = r("a", "1");
        incoming.deleting = true;
        assert_eq!(spec_action::<R, R>(None, &incoming), Ok(Some(ResourceAction::Added)));
    }

    #[test]
    fn deletion_wins_over_the_version_check() {
        let mut incoming = r("a", "0");
        incoming.deleting = true;
        assert_eq!(
            spec_action(Some(&r("a", "5")), &incoming),
            Ok(Some(ResourceAction::Deleted))
        );
    }

    #[test]
    fn unversioned_specs_are_always_modified_and_zero_never_beats_a_version() {
        assert_eq!(
            spec_action(Some(&r("a", "0")), &r("a", "0")),
            Ok(Some(ResourceAction::Modified))
        );
        assert_eq!(spec_action(Some(&r("a", "5")), &r("a", "0")), Ok(None));
        assert_eq!(
            spec_action(Some(&r("a", "0")), &r("a", "1")),
            Ok(Some(ResourceAction::Modified))
        );
    }

    #[test]
    fn only_newer_versions_are_applied() {
        assert_eq!(
            spec_action(Some(&r("a", "1")), &r("a", "2")),
            Ok(Some(ResourceAction::Modified))
        );
        assert_eq!(spec_action(Some(&r("a", "2")), &r("a", "2")), Ok(None));
        assert_eq!(spec_action(Some(&r("a", "3")), &r("a", "2")), Ok(None));
        assert!(spec_action(Some(&r("a", "x")), &r("a", "2")).is_err());
    }

    #[test]
    fn a_source_without_resources_answers_nothing_not_even_deletes() {
        let own: Vec<R> = vec![];
        assert!(source_spec_resync(&own, &versions(&[("x", 1)])).is_empty());
    }

    #[test]
    fn a_source_resends_newer_and_unversioned_and_deletes_unknown() {
        let mut deleting = r("c", "2");
        deleting.deleting = true;
        let own = vec![r("a", "4"), r("b", "0"), deleting];
        let replies = source_spec_resync(&own, &versions(&[("a", 4), ("b", 7), ("c", 1), ("z", 3)]));
        assert_eq!(
            replies,
            vec![
                SpecResyncReply::Resend(&own[1]),
                SpecResyncReply::Resend(&own[2]),
                SpecResyncReply::Delete {
                    resource_id: "z".into(),
                    resource_version: 3
                },
            ]
        );
    }

    #[test]
    fn an_empty_hash_list_means_send_every_status() {
        let local = vec![r("a", "1"), r("b", "1")];
        let sent = agent_status_resync(&local, &ResourceStatusHashList::default(), |o: &R, h: &str| {
            Ok::<_, ()>(o.status == h)
        });
        assert_eq!(sent.len(), 2);
    }

    #[test]
    fn only_changed_statuses_known_to_the_source_are_resent() {
        let mut changed = r("test2", "1");
        changed.status = "changed".into();
        let local = vec![r("test0", "1"), r("test1", "1"), changed];
        let request = ResourceStatusHashList {
            hashes: vec![
                ResourceStatusHash {
                    resource_id: "test1".into(),
                    status_hash: "test1".into(),
                },
                ResourceStatusHash {
                    resource_id: "test2".into(),
                    status_hash: "test2".into(),
                },
            ],
        };
        let sent = agent_status_resync(&local, &request, |o: &R, h: &str| Ok::<_, ()>(o.status == h));
        assert_eq!(sent, vec![&local[2]]);
    }

    #[test]
    fn a_request_names_each_resource_once_with_its_first_hash() {
        let entry = |id: &str, hash: &str| ResourceStatusHash {
            resource_id: id.into(),
            status_hash: hash.into(),
        };
        let request = ResourceStatusHashList {
            hashes: vec![entry("a", "1"), entry("b", "2"), entry("a", "3")],
        };
        assert_eq!(
            requested_status_hashes(&request).collect::<Vec<_>>(),
            vec![("a", "1"), ("b", "2")]
        );
        // The first entry decides for the list form too: "a" has status "1", so it is not resent.
        let mut a = r("a", "1");
        a.status = "1".into();
        let local = vec![a, r("b", "1")];
        let sent = agent_status_resync(&local, &request, |o: &R, h: &str| Ok::<_, ()>(o.status == h));
        assert_eq!(sent, vec![&local[1]]);
    }

    proptest! {
        /// Against a model: after the source's answer is applied by the agent, the agent holds
        /// exactly the source's resources, at versions at least the source's.
        #[test]
        fn applying_a_spec_resync_answer_converges_the_agent(
            source in prop::collection::btree_map(0u8..20, 0i64..5, 1..20),
            agent in prop::collection::btree_map(0u8..20, 0i64..5, 0..20),
        ) {
            let own: Vec<R> = source.iter().map(|(id, v)| r(&id.to_string(), &v.to_string())).collect();
            let request = ResourceVersionList {
                versions: agent.iter().map(|(id, v)| ResourceVersion { resource_id: id.to_string(), resource_version: *v }).collect(),
            };
            let mut model: HashMap<String, i64> = agent.iter().map(|(id, v)| (id.to_string(), *v)).collect();
            for reply in source_spec_resync(&own, &request) {
                match reply {
                    SpecResyncReply::Resend(o) => {
                        let v: i64 = o.rv.parse().unwrap();
                        let local = model.get(&o.id).map(|v| r(&o.id, &v.to_string()));
                        if let Some(ResourceAction::Added | ResourceAction::Modified) = spec_action(local.as_ref(), o).unwrap() {
                            model.insert(o.id.clone(), v);
                        }
                    }
                    SpecResyncReply::Delete { resource_id, .. } => { model.remove(&resource_id); }
                }
            }
            for (id, v) in &source {
                let held = model.get(&id.to_string()).copied();
                prop_assert!(held.is_some_and(|h| h >= *v), "{id}: {held:?} < {v}");
            }
            prop_assert_eq!(model.len(), source.len());
        }
    }

    #[test]
    fn a_resource_listed_twice_counts_with_its_first_entry_as_in_go() {
        let own = vec![R {
            status: "s".into(),
            ..r("a", "5")
        }];
        let versions = ResourceVersionList {
            versions: vec![
                ResourceVersion {
                    resource_id: "a".into(),
                    resource_version: 5,
                },
                ResourceVersion {
                    resource_id: "a".into(),
                    resource_version: 1,
                },
            ],
        };
        assert!(
            source_spec_resync(&own, &versions).is_empty(),
            "the first entry (5) counts"
        );
        let hashes = ResourceStatusHashList {
            hashes: vec![
                ResourceStatusHash {
                    resource_id: "a".into(),
                    status_hash: "s".into(),
                },
                ResourceStatusHash {
                    resource_id: "a".into(),
                    status_hash: "other".into(),
                },
            ],
        };
        assert!(
            agent_status_resync(&own, &hashes, |x: &R, h: &str| Ok::<_, ()>(x.status == h)).is_empty(),
            "the first entry (same hash) counts"
        );
    }
}
