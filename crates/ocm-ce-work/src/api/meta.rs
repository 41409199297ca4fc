//! The Go JSON form of the `meta/v1` types we borrow from k8s-openapi: `ObjectMeta`,
//! `Condition`, `Time`, `ListMeta`. k8s-openapi writes fields alphabetically and cannot write
//! Go's `"creationTimestamp":null`; these adapters write Go's field order and omission rules and
//! read Go's JSON leniently (missing fields and `null` mean the zero value).

use chrono::{DateTime, TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, ListMeta, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use ocm_ce_core::go_time::{GO_ZERO_UNIX_SECONDS, Layout, Precision, format_rfc3339, go_zero_time, parse_rfc3339};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Go's zero `metav1.Time` (`0001-01-01T00:00:00Z`), which Go writes as `null`.
pub fn zero_time() -> Time {
    time_from_chrono(go_zero_time())
}

/// True for Go's zero time (written as `null`).
pub fn is_zero_time(t: &Time) -> bool {
    t.0.as_second() == GO_ZERO_UNIX_SECONDS && t.0.subsec_nanosecond() == 0
}

/// Converts a chrono time (full precision) to a `metav1.Time`; times outside jiff's range
/// (years beyond ±9999) are clamped.
pub fn time_from_chrono(t: DateTime<Utc>) -> Time {
    let ts = Timestamp::new(t.timestamp(), i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0)).unwrap_or(
        if t.timestamp() < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        },
    );
    Time(ts)
}

/// Converts a `metav1.Time` to chrono (full precision).
pub fn time_to_chrono(t: &Time) -> DateTime<Utc> {
    let (secs, nanos) = floor_parts(&t.0);
    Utc.timestamp_opt(secs, nanos).single().unwrap_or_default()
}

/// (seconds floored, non-negative nanoseconds) of a timestamp.
fn floor_parts(ts: &Timestamp) -> (i64, u32) {
    let secs = ts.as_second();
    let nanos = ts.subsec_nanosecond();
    if nanos < 0 {
        (secs - 1, u32::try_from(1_000_000_000 + nanos).unwrap_or(0))
    } else {
        (secs, u32::try_from(nanos).unwrap_or(0))
    }
}

/// Go's JSON of a `metav1.Time`: UTC RFC 3339 with whole seconds (the fraction is dropped, so
/// times before 1970 round down), or `None` for the zero time (`null`).
pub fn format_time(t: &Time) -> Option<String> {
    (!is_zero_time(t)).then(|| format_rfc3339(&time_to_chrono(t), Precision::Seconds))
}

/// Parses Go's `metav1.Time` JSON text as `time.Parse(time.RFC3339, s)` does.
pub fn parse_time(s: &str) -> Option<Time> {
    parse_rfc3339(s, Layout::Rfc3339).ok().map(time_from_chrono)
}

struct GoTime<'a>(&'a Time);

impl Serialize for GoTime<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match format_time(self.0) {
            Some(text) => s.serialize_str(&text),
            None => s.serialize_none(),
        }
    }
}

/// Reads a `metav1.Time`: `null` is the zero time.
struct TimeRepr(Time);

impl<'de> Deserialize<'de> for TimeRepr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Self(zero_time())),
            Some(s) => parse_time(&s)
                .map(Self)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid time {s:?}"))),
        }
    }
}

/// Writes the field `key` only when there is a `value`: Go's `omitempty`, the caller saying what
/// counts as empty.
pub(crate) fn omit_empty<S: SerializeStruct, T: Serialize>(
    st: &mut S,
    key: &'static str,
    value: Option<T>,
) -> Result<(), S::Error> {
    match value {
        Some(v) => st.serialize_field(key, &v),
        None => Ok(()),
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `metav1.ObjectMeta` in Go's field order with Go's omission rules.
pub(crate) struct GoObjectMeta<'a>(pub &'a ObjectMeta);

impl Serialize for GoObjectMeta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut st = s.serialize_struct("ObjectMeta", 15)?;
        omit_empty(&mut st, "name", non_empty(&m.name))?;
        omit_empty(&mut st, "generateName", non_empty(&m.generate_name))?;
        omit_empty(&mut st, "namespace", non_empty(&m.namespace))?;
        omit_empty(&mut st, "selfLink", non_empty(&m.self_link))?;
        omit_empty(&mut st, "uid", non_empty(&m.uid))?;
        omit_empty(&mut st, "resourceVersion", non_empty(&m.resource_version))?;
        omit_empty(&mut st, "generation", m.generation.filter(|g| *g != 0))?;
        // A struct: never omitted, `null` when zero.
        st.serialize_field(
            "creationTimestamp",
            &m.creation_timestamp.as_ref().and_then(format_time),
        )?;
        omit_empty(&mut st, "deletionTimestamp", m.deletion_timestamp.as_ref().map(GoTime))?;
        omit_empty(
            &mut st,
            "deletionGracePeriodSeconds",
            m.deletion_grace_period_seconds.as_ref(),
        )?;
        omit_empty(&mut st, "labels", m.labels.as_ref().filter(|l| !l.is_empty()))?;
        omit_empty(&mut st, "annotations", m.annotations.as_ref().filter(|a| !a.is_empty()))?;
        if let Some(v) = m.owner_references.as_ref().filter(|o| !o.is_empty()) {
            let refs: Vec<GoOwnerReference<'_>> = v.iter().map(GoOwnerReference).collect();
            st.serialize_field("ownerReferences", &refs)?;
        }
        omit_empty(&mut st, "finalizers", m.finalizers.as_ref().filter(|f| !f.is_empty()))?;
        if let Some(v) = m.managed_fields.as_ref().filter(|f| !f.is_empty()) {
            let entries: Vec<GoManagedFields<'_>> = v.iter().map(GoManagedFields).collect();
            st.serialize_field("managedFields", &entries)?;
        }
        st.end()
    }
}

struct GoOwnerReference<'a>(&'a OwnerReference);

impl Serialize for GoOwnerReference<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut st = s.serialize_struct("OwnerReference", 6)?;
        st.serialize_field("apiVersion", &r.api_version)?;
        st.serialize_field("kind", &r.kind)?;
        st.serialize_field("name", &r.name)?;
        st.serialize_field("uid", &r.uid)?;
        omit_empty(&mut st, "controller", r.controller.as_ref())?;
        omit_empty(&mut st, "blockOwnerDeletion", r.block_owner_deletion.as_ref())?;
        st.end()
    }
}

struct GoManagedFields<'a>(&'a ManagedFieldsEntry);

impl Serialize for GoManagedFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut st = s.serialize_struct("ManagedFieldsEntry", 7)?;
        omit_empty(&mut st, "manager", non_empty(&e.manager))?;
        omit_empty(&mut st, "operation", non_empty(&e.operation))?;
        omit_empty(&mut st, "apiVersion", non_empty(&e.api_version))?;
        omit_empty(&mut st, "time", e.time.as_ref().map(GoTime))?;
        omit_empty(&mut st, "fieldsType", non_empty(&e.fields_type))?;
        omit_empty(&mut st, "fieldsV1", e.fields_v1.as_ref().map(|v| &v.0))?;
        omit_empty(&mut st, "subresource", non_empty(&e.subresource))?;
        st.end()
    }
}

/// `metav1.ListMeta` in Go's field order.
pub(crate) struct GoListMeta<'a>(pub &'a ListMeta);

impl Serialize for GoListMeta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut st = s.serialize_struct("ListMeta", 4)?;
        omit_empty(&mut st, "selfLink", non_empty(&m.self_link))?;
        omit_empty(&mut st, "resourceVersion", non_empty(&m.resource_version))?;
        omit_empty(&mut st, "continue", non_empty(&m.continue_))?;
        omit_empty(&mut st, "remainingItemCount", m.remaining_item_count.as_ref())?;
        st.end()
    }
}

/// `metav1.Condition` in Go's field order: `observedGeneration` omitted when 0,
/// `lastTransitionTime` in whole seconds or `null`.
pub(crate) struct GoCondition<'a>(pub &'a Condition);

impl Serialize for GoCondition<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut st = s.serialize_struct("Condition", 6)?;
        st.serialize_field("type", &c.type_)?;
        st.serialize_field("status", &c.status)?;
        omit_empty(&mut st, "observedGeneration", c.observed_generation.filter(|g| *g != 0))?;
        st.serialize_field("lastTransitionTime", &GoTime(&c.last_transition_time))?;
        st.serialize_field("reason", &c.reason)?;
        st.serialize_field("message", &c.message)?;
        st.end()
    }
}

/// Reads a `metav1.Condition` the way Go does: missing fields and `null` are zero values.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ConditionRepr {
    #[serde(rename = "type")]
    type_: Option<String>,
    status: Option<String>,
    #[serde(rename = "observedGeneration")]
    observed_generation: Option<i64>,
    #[serde(rename = "lastTransitionTime")]
    last_transition_time: Option<TimeRepr>,
    reason: Option<String>,
    message: Option<String>,
}

impl From<ConditionRepr> for Condition {
    fn from(r: ConditionRepr) -> Self {
        Self {
            type_: r.type_.unwrap_or_default(),
            status: r.status.unwrap_or_default(),
            observed_generation: r.observed_generation.filter(|g| *g != 0),
            last_transition_time: r.last_transition_time.map_or_else(zero_time, |t| t.0),
            reason: r.reason.unwrap_or_default(),
            message: r.message.unwrap_or_default(),
        }
    }
}

/// serde `with` module for a `[]metav1.Condition` with `omitempty` (nil and empty are alike).
pub(crate) mod conditions {
    use super::*;

    /// Writes the conditions in Go's form.
    pub(crate) fn serialize<S: Serializer>(v: &[Condition], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(GoCondition))
    }

    /// Reads conditions; `null` is empty.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Condition>, D::Error> {
        let v = Option::<Vec<ConditionRepr>>::deserialize(d)?;
        Ok(crate::api::exact(
            v.unwrap_or_default().into_iter().map(Condition::from).collect(),
        ))
    }
}

/// serde `with` module for a `[]metav1.Condition` without `omitempty`: `None` (nil) is `null`,
/// `Some(vec![])` is `[]`.
pub(crate) mod nullable_conditions {
    use super::*;

    /// Writes `null` or the conditions in Go's form.
    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<Condition>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(v) => s.collect_seq(v.iter().map(GoCondition)),
        }
    }

    /// Reads conditions; `null` is `None`.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Condition>>, D::Error> {
        let v = Option::<Vec<ConditionRepr>>::deserialize(d)?;
        Ok(v.map(|v| crate::api::exact(v.into_iter().map(Condition::from).collect())))
    }
}

/// Reads an `ObjectMeta` (k8s-openapi's reader; `null` is the empty meta).
pub(crate) fn deserialize_object_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    Ok(Option::<ObjectMeta>::deserialize(d)?.unwrap_or_default())
}

/// Reads a `ListMeta` (`null` is the empty meta).
pub(crate) fn deserialize_list_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ListMeta, D::Error> {
    Ok(Option::<ListMeta>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zero_time_is_null_and_one_nanosecond_later_is_not() {
        assert_eq!(format_time(&zero_time()), None);
        let t = parse_time("0001-01-01T00:00:00.000000001Z").unwrap();
        assert_eq!(format_time(&t).as_deref(), Some("0001-01-01T00:00:00Z"));
    }

    #[test]
    fn times_truncate_to_seconds_and_floor_before_1970() {
        let t = parse_time("2024-10-01T12:00:00.999999999Z").unwrap();
        assert_eq!(format_time(&t).as_deref(), Some("2024-10-01T12:00:00Z"));
        let t = parse_time("1969-12-31T23:59:59.5Z").unwrap();
        assert_eq!(format_time(&t).as_deref(), Some("1969-12-31T23:59:59Z"));
        let t = parse_time("2024-12-31T20:30:00-05:30").unwrap();
        assert_eq!(format_time(&t).as_deref(), Some("2025-01-01T02:00:00Z"));
        assert_eq!(
            time_to_chrono(&t),
            DateTime::parse_from_rfc3339("2025-01-01T02:00:00Z").unwrap()
        );
    }

    #[test]
    fn object_meta_is_written_in_go_order_with_a_null_creation_timestamp() {
        let meta = ObjectMeta {
            name: Some("work1".into()),
            namespace: Some("cluster1".into()),
            uid: Some("u".into()),
            resource_version: Some("1".into()),
            generation: Some(0),
            annotations: Some([("b".to_owned(), "<".to_owned())].into()),
            labels: Some(Default::default()),
            ..Default::default()
        };
        let json = ocm_ce_core::go_json::to_vec(&GoObjectMeta(&meta)).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"name":"work1","namespace":"cluster1","uid":"u","resourceVersion":"1","creationTimestamp":null,"annotations":{"b":"\u003c"}}"#
        );
    }
}
