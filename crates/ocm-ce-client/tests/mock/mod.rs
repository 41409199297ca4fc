//! A mock resource, codec and store for the generic client tests (Go's `generic` test mocks,
//! plus the preconditions of the ManifestBundle codecs that the golden cases exercise).

#![allow(clippy::unwrap_used)]
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event};
use ocm_ce_client::{BoxError, Lister};
use ocm_ce_core::sequence::SequenceGenerator;
use ocm_ce_core::{
    Codec, CodecError, CodecErrorKind, DataType, EventBuilder, EventExt, EventType, ListOptions, ResourceAction,
    ResourceObject, SubResource,
};

pub const BUNDLES: &str = "io.open-cluster-management.works.v1alpha1.manifestbundles";

pub fn bundles() -> DataType {
    BUNDLES.parse().unwrap()
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mock {
    pub uid: String,
    pub rv: String,
    pub namespace: String,
    pub source_label: String,
    pub data_type: String,
    pub deleting: Option<DateTime<Utc>>,
    pub status: String,
    pub payload: String,
}

impl Mock {
    pub fn new(uid: &str, rv: &str) -> Self {
        Self {
            uid: uid.into(),
            rv: rv.into(),
            namespace: "cluster1".into(),
            source_label: "source1".into(),
            data_type: BUNDLES.into(),
            ..Self::default()
        }
    }
}

impl ResourceObject for Mock {
    fn resource_id(&self) -> &str {
        &self.uid
    }
    fn resource_version(&self) -> &str {
        &self.rv
    }
    fn deletion_timestamp(&self) -> Option<DateTime<Utc>> {
        self.deleting
    }
}

/// The status hash of the Go generic tests: the status string itself.
pub fn status_hash(m: &Mock) -> Result<String, std::convert::Infallible> {
    Ok(m.status.clone())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Side {
    Source,
    Agent,
}

#[derive(Debug)]
pub struct MockCodec {
    side: Side,
    data_types: Vec<DataType>,
    sequence: SequenceGenerator,
}

impl MockCodec {
    pub fn new(side: Side) -> Self {
        Self {
            side,
            data_types: vec![bundles()],
            sequence: SequenceGenerator::new(1),
        }
    }
}

fn err(kind: CodecErrorKind, msg: impl Into<String>) -> CodecError {
    CodecError::new(kind, msg)
}

impl Codec<Mock> for MockCodec {
    fn data_types(&self) -> &[DataType] {
        &self.data_types
    }

    fn encode(&self, source: &str, ty: &EventType, m: &Mock) -> Result<Event, CodecError> {
        let rv: i64 = m.rv.parse().map_err(|e| {
            err(
                CodecErrorKind::Encode,
                format!("failed to parse the resourceversion of the work {}, {e}", m.uid),
            )
        })?;
        let mut b = EventBuilder::new(source, ty.clone())
            .resource_id(&m.uid)
            .resource_version(rv)
            .cluster_name(&m.namespace);
        match self.side {
            Side::Agent => {
                if m.source_label.is_empty() {
                    return Err(err(
                        CodecErrorKind::Encode,
                        format!("failed to find originalsource from the work {}", m.uid),
                    ));
                }
                b = b
                    .original_source(&m.source_label)
                    .sequence_id(self.sequence.next_string());
                let mut e = b.build().map_err(|e| err(CodecErrorKind::Encode, e.to_string()))?;
                e.set_data(
                    "application/json",
                    serde_json::to_vec(&serde_json::json!({"status": m.status})).unwrap(),
                );
                Ok(e)
            }
            Side::Source => {
                if let Some(at) = m.deleting {
                    b = b.deletion_timestamp(at);
                }
                let mut e = b.build().map_err(|e| err(CodecErrorKind::Encode, e.to_string()))?;
                e.set_extension("metadata", format!("{{\"uid\":\"{}\"}}", m.uid));
                if m.deleting.is_some() {
                    return Ok(e);
                }
                e.set_data(
                    "application/json",
                    serde_json::to_vec(&serde_json::json!({"payload": m.payload})).unwrap(),
                );
                Ok(e)
            }
        }
    }

    fn decode(&self, e: &Event) -> Result<Mock, CodecError> {
        let ty: EventType = e.ty().parse().map_err(|x| {
            err(
                CodecErrorKind::MalformedType,
                format!("failed to parse cloud event type {}, {x}", e.ty()),
            )
        })?;
        if ty.data_type != bundles() {
            return Err(err(
                CodecErrorKind::UnknownDataType,
                format!("unsupported cloudevents data type {}", ty.data_type),
            ));
        }
        let ext = |name: &str, r: Result<String, ocm_ce_core::ExtensionError>| {
            r.map_err(|x| {
                err(
                    CodecErrorKind::BadExtension,
                    format!("failed to get {name} extension: {x}"),
                )
            })
        };
        let uid = ext("resourceid", e.resource_id())?;
        let rv = e.resource_version().map_err(|x| {
            err(
                CodecErrorKind::BadExtension,
                format!("failed to get resourceversion extension: {x}"),
            )
        })?;
        let data: serde_json::Value = match e.data() {
            Some(cloudevents::Data::Binary(b)) => serde_json::from_slice(b).unwrap_or_default(),
            Some(cloudevents::Data::Json(v)) => v.clone(),
            _ => serde_json::Value::Null,
        };
        let mut m = Mock {
            uid,
            rv: rv.to_string(),
            data_type: BUNDLES.into(),
            ..Mock::default()
        };
        match ty.sub_resource {
            SubResource::Spec => {
                m.namespace = ext("clustername", e.cluster_name())?;
                m.source_label = e.source().to_owned();
                m.deleting = e.deletion_timestamp().map_err(|x| {
                    err(
                        CodecErrorKind::BadExtension,
                        format!("failed to get deletiontimestamp, {x}"),
                    )
                })?;
                m.payload = data["payload"].as_str().unwrap_or_default().to_owned();
            }
            SubResource::Status => {
                ext("sequenceid", e.sequence_id())?;
                m.status = data["status"].as_str().unwrap_or_default().to_owned();
            }
        }
        Ok(m)
    }
}

/// A store indexed by UID (O(1) `get`). Source stores ignore the source filter (as Go's source
/// lister does); agent stores filter by the originalsource label.
#[derive(Debug, Clone)]
pub struct Store {
    pub items: Arc<Mutex<HashMap<String, Mock>>>,
    filter_source: bool,
}

impl Store {
    pub fn source() -> Self {
        Self {
            items: Arc::default(),
            filter_source: false,
        }
    }
    pub fn agent() -> Self {
        Self {
            items: Arc::default(),
            filter_source: true,
        }
    }
    pub fn put(&self, m: Mock) {
        self.items.lock().unwrap().insert(m.uid.clone(), m);
    }
    pub fn remove(&self, uid: &str) {
        self.items.lock().unwrap().remove(uid);
    }
    pub fn get_mock(&self, uid: &str) -> Option<Mock> {
        self.items.lock().unwrap().get(uid).cloned()
    }
    /// What the agent of `cluster` makes of a received spec, as the work layer does: core's
    /// rule against the copy of the same source and data type it holds, if any.
    pub fn spec_action(&self, cluster: &str, received: &Mock) -> Option<ResourceAction> {
        let options = ListOptions::new(cluster, received.source_label.clone(), bundles());
        let local = self.get(&received.uid, &options).unwrap();
        ocm_ce_core::resync::spec_action(local.as_deref(), received)
            .ok()
            .flatten()
    }
    /// Takes a received spec as an agent application does: decides what it means
    /// ([`spec_action`](Self::spec_action), for the cluster it names) and writes it — stores an
    /// added or newer one, removes a deleted one. `None`: older than the copy held, ignored.
    pub fn receive(&self, received: &Mock) -> Option<ResourceAction> {
        let action = self.spec_action(&received.namespace, received)?;
        match action {
            ResourceAction::Deleted => self.remove(&received.uid),
            _ => self.put(received.clone()),
        }
        Some(action)
    }
    fn matches(&self, m: &Mock, o: &ListOptions) -> bool {
        (o.cluster_name.is_empty() || o.cluster_name == m.namespace)
            && (!self.filter_source || o.source.is_empty() || o.source == m.source_label)
            && m.data_type == o.data_type.to_string()
    }
}

impl Lister<Mock> for Store {
    fn list(&self, o: &ListOptions) -> Result<Vec<Arc<Mock>>, BoxError> {
        let mut v: Vec<Arc<Mock>> = self
            .items
            .lock()
            .unwrap()
            .values()
            .filter(|m| self.matches(m, o))
            .map(|m| Arc::new(m.clone()))
            .collect();
        v.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(v)
    }
    fn get(&self, id: &str, o: &ListOptions) -> Result<Option<Arc<Mock>>, BoxError> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .get(id)
            .filter(|m| self.matches(m, o))
            .map(|m| Arc::new(m.clone())))
    }
}
