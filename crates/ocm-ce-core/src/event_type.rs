//! The CloudEvents `type` grammar: `<group>.<version>.<resource>.<subresource>.<action>`.
//!
//! Parsing splits from the right, exactly as the Go SDK's `ParseCloudEventsType`: the group may
//! contain dots, version, resource and action may not.

use std::fmt;
use std::str::FromStr;

use crate::error::EventTypeError;

/// Well-known event actions. Any other string is transported unchanged.
pub mod action {
    /// A source creates a resource.
    pub const CREATE_REQUEST: &str = "create_request";
    /// A source updates a resource, or an agent reports a status.
    pub const UPDATE_REQUEST: &str = "update_request";
    /// A source deletes a resource, or an agent reports it deleted.
    pub const DELETE_REQUEST: &str = "delete_request";
    /// A request to resend specs (agent → sources) or statuses (source → agents).
    pub const RESYNC_REQUEST: &str = "resync_request";
    /// An answer to a resync request.
    pub const RESYNC_RESPONSE: &str = "resync_response";
}

/// `<group>.<version>.<resource>`: the kind of resource an event carries.
#[doc(alias = "CloudEventsDataType")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataType {
    /// API group, e.g. `io.open-cluster-management.works`; may contain dots.
    pub group: String,
    /// Version, e.g. `v1alpha1`.
    pub version: String,
    /// Resource, e.g. `manifestbundles`.
    pub resource: String,
}

impl DataType {
    /// Builds a data type from its three parts.
    pub fn new(group: impl Into<String>, version: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.group, self.version, self.resource)
    }
}

impl FromStr for DataType {
    type Err = EventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        let n = parts.len();
        if n < 3 {
            return Err(EventTypeError::DataTypeFormat);
        }
        Ok(Self::new(parts[..n - 2].join("."), parts[n - 2], parts[n - 1]))
    }
}

/// Whether an event is about a resource's spec or its status.
#[doc(alias = "EventSubResource")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubResource {
    /// `spec`: sent by sources (and agents' spec resync requests).
    Spec,
    /// `status`: sent by agents (and sources' status resync requests).
    Status,
}

impl SubResource {
    /// The wire form, `spec` or `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spec => "spec",
            Self::Status => "status",
        }
    }
}

impl fmt::Display for SubResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubResource {
    type Err = EventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spec" => Ok(Self::Spec),
            "status" => Ok(Self::Status),
            other => Err(EventTypeError::SubResource {
                value: other.to_owned(),
            }),
        }
    }
}

/// A full event type: data type, subresource and action.
#[doc(alias = "CloudEventsType")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventType {
    /// The resource kind.
    pub data_type: DataType,
    /// Spec or status.
    pub sub_resource: SubResource,
    /// The action (see [`action`]); free text without dots.
    pub action: String,
}

impl EventType {
    /// Builds an event type.
    pub fn new(data_type: DataType, sub_resource: SubResource, action: impl Into<String>) -> Self {
        Self {
            data_type,
            sub_resource,
            action: action.into(),
        }
    }

    /// True when the action is `resync_request`.
    pub fn is_resync_request(&self) -> bool {
        self.action == action::RESYNC_REQUEST
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.data_type, self.sub_resource, self.action)
    }
}

impl FromStr for EventType {
    type Err = EventTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // From the right: action, subresource, resource, version, and the group (which may
        // hold dots of its own).
        let mut parts = s.rsplitn(5, '.');
        let (Some(action), Some(sub_resource), Some(resource), Some(version), Some(group)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EventTypeError::TypeFormat { value: s.to_owned() });
        };
        let sub_resource = sub_resource.parse()?;
        Ok(Self::new(DataType::new(group, version, resource), sub_resource, action))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_work_type_displays_as_its_dotted_form() {
        let t = EventType::new(
            DataType::new("io.open-cluster-management.works", "v1alpha1", "manifests"),
            SubResource::Spec,
            action::CREATE_REQUEST,
        );
        assert_eq!(
            t.to_string(),
            "io.open-cluster-management.works.v1alpha1.manifests.spec.create_request"
        );
    }

    #[test]
    fn a_data_type_parses_from_the_right() {
        let d: DataType = "io.open-cluster-management.works.v1alpha1.manifests".parse().unwrap();
        assert_eq!(
            d,
            DataType::new("io.open-cluster-management.works", "v1alpha1", "manifests")
        );
        assert_eq!(
            "".parse::<DataType>().unwrap_err().to_string(),
            "unsupported cloudevents data type format"
        );
    }

    #[test]
    fn short_or_unknown_types_fail_with_go_texts() {
        assert_eq!(
            "test".parse::<EventType>().unwrap_err().to_string(),
            "unsupported cloudevents type format: test"
        );
        assert_eq!(
            "io.open-cluster-management.works.v1alpha1.manifests.unsupported.create_request"
                .parse::<EventType>()
                .unwrap_err()
                .to_string(),
            "unsupported subresource unsupported"
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9_-]{1,8}"
    }

    proptest! {
        #[test]
        fn parse_of_display_is_identity(
            group in prop::collection::vec(segment(), 1..4),
            version in segment(), resource in segment(), action in segment(), spec in any::<bool>(),
        ) {
            let t = EventType::new(
                DataType::new(group.join("."), version, resource),
                if spec { SubResource::Spec } else { SubResource::Status },
                action,
            );
            prop_assert_eq!(t.to_string().parse::<EventType>().unwrap(), t);
        }
    }
}
