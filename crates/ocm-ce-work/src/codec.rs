//! The ManifestWork codecs (Go `work/source/codec` and `work/agent/codec`):
//!
//! | codec | side | data type | encodes | decodes |
//! |---|---|---|---|---|
//! | [`SourceManifestBundleCodec`] | source | `manifestbundles` | specs (with the `metadata` extension) | statuses |
//! | [`AgentManifestBundleCodec`] | agent | `manifestbundles` | statuses (fresh `sequenceid`) | specs (validated) |
//! | [`AgentManifestCodec`] | agent | `manifests` | statuses (first manifest) | specs (one manifest) |
//!
//! Errors are [`CodecError`]s whose messages are the Go codecs' texts.

mod manifest;
mod manifest_bundle;

use std::sync::{Arc, LazyLock};

use cloudevents::{AttributesReader, Data, Event};
use ocm_ce_core::ExtensionError;
use ocm_ce_core::extensions;
use ocm_ce_core::sequence::SequenceGenerator;
use ocm_ce_core::{CodecError, CodecErrorKind, DataType, EventType};
use serde::de::DeserializeOwned;

pub use self::manifest::AgentManifestCodec;
pub use self::manifest_bundle::{AgentManifestBundleCodec, METADATA_EXTENSION, SourceManifestBundleCodec};
use crate::api::ManifestWork;
use crate::decoding::{GoStruct, GoType, from_slice};
use crate::validation::ManifestValidator;

/// The process-wide generator of status sequence ids (snowflake node 1), shared by the agent
/// codecs like Go's package-level generator, so ids of one process never go backwards.
static SEQUENCE: LazyLock<Arc<SequenceGenerator>> = LazyLock::new(|| Arc::new(SequenceGenerator::new(1)));

/// The shared sequence id generator the agent codecs use by default.
pub fn shared_sequence_generator() -> Arc<SequenceGenerator> {
    Arc::clone(&SEQUENCE)
}

/// Parses the event type (`failed to parse cloud event type <t>, <err>`).
pub(crate) fn parse_type(event: &Event) -> Result<EventType, CodecError> {
    event.ty().parse().map_err(|e| {
        CodecError::new(
            CodecErrorKind::MalformedType,
            format!("failed to parse cloud event type {}, {e}", event.ty()),
        )
    })
}

/// Parses the event type ([`parse_type`]) and checks its data type
/// (`unsupported cloudevents data type <dt>`).
fn check_type(event: &Event, want: &DataType) -> Result<EventType, CodecError> {
    let ty = parse_type(event)?;
    if &ty.data_type != want {
        return Err(unsupported_data_type(&ty.data_type));
    }
    Ok(ty)
}

/// `unsupported cloudevents data type <dt>`.
pub(crate) fn unsupported_data_type(dt: &DataType) -> CodecError {
    CodecError::new(
        CodecErrorKind::UnknownDataType,
        format!("unsupported cloudevents data type {dt}"),
    )
}

fn extension_error(name: &str) -> impl FnOnce(ExtensionError) -> CodecError + '_ {
    move |e| {
        CodecError::new(
            CodecErrorKind::BadExtension,
            format!("failed to get {name} extension: {e}"),
        )
    }
}

fn string_extension(event: &Event, name: &str) -> Result<String, CodecError> {
    extensions::to_string(event.extension(name)).map_err(extension_error(name))
}

fn int32_extension(event: &Event, name: &str) -> Result<i32, CodecError> {
    extensions::to_int32(event.extension(name)).map_err(extension_error(name))
}

/// The event data as bytes (`Data::Json` is written back with serde_json).
fn data_bytes(event: &Event) -> Vec<u8> {
    match event.data() {
        Some(Data::Binary(b)) => b.clone(),
        Some(Data::String(s)) => s.clone().into_bytes(),
        Some(Data::Json(v)) => serde_json::to_vec(v).unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Go's `Event.DataAs` into the struct `schema` (its Go type named by `schema.type_name`): no
/// data decodes as the zero value; the data content type picks the decoder (none or JSON: JSON;
/// `text/plain`, XML: fail on a struct; others: unsupported). A failure is the codec's
/// `failed to unmarshal event data <data>, <SDK's error>`.
fn data_as<T: DeserializeOwned + Default>(
    event: &Event,
    data: &[u8],
    schema: &'static GoStruct,
) -> Result<T, CodecError> {
    if data.is_empty() {
        return Ok(T::default());
    }
    let media_type = media_type(event);
    let text = String::from_utf8_lossy(data);
    let go_type = schema.type_name;
    let decoded = match media_type.as_str() {
        "" | "application/json" | "text/json" => from_slice(data, &GoType::Struct(schema))
            .map_err(|e| format!("[json] found bytes \"{text}\", but failed to unmarshal: {e}")),
        "text/plain" => Err(format!("text.Decode out: want *string, got *{go_type}")),
        "application/xml" | "text/xml" => Err(format!("[xml] found bytes \"{text}\", but failed to unmarshal: EOF")),
        other => Err(format!(
            "[decode] unsupported content type: {}",
            crate::encoding::go_quote(other)
        )),
    };
    decoded.map_err(|e| bad_data(data, &e))
}

/// The data media type: lower case, without parameters, `""` when unset.
fn media_type(event: &Event) -> String {
    event
        .datacontenttype()
        .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// True when the data is decoded as JSON.
fn is_json_media_type(event: &Event) -> bool {
    matches!(media_type(event).as_str(), "" | "application/json" | "text/json")
}

fn bad_data(data: &[u8], reason: &str) -> CodecError {
    CodecError::new(
        CodecErrorKind::BadData,
        format!(
            "failed to unmarshal event data {}, {reason}",
            String::from_utf8_lossy(data)
        ),
    )
}

fn encode_error(message: impl Into<String>) -> CodecError {
    CodecError::new(CodecErrorKind::Encode, message)
}

/// Go's `strconv.ParseInt(s, 10, 64)` error text.
fn parse_int_error(func: &str, s: &str, e: &std::num::ParseIntError) -> String {
    let reason = match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    };
    format!("{func}: parsing {}: {reason}", crate::encoding::go_quote(s))
}

/// Sets Go's JSON bytes as the event data (`application/json`); `Data::Binary` keeps them
/// byte for byte through the bindings.
fn set_json_data<T: serde::Serialize>(event: &mut Event, payload: &T, what: &str) -> Result<(), CodecError> {
    let bytes = ocm_ce_core::go_json::to_vec(payload)
        .map_err(|e| encode_error(format!("failed to encode {what} to a cloudevent: {e}")))?;
    event.set_data("application/json", Data::Binary(bytes));
    Ok(())
}

/// The builder methods of both agent codecs, which hold a `sequence` generator and a
/// `validator`. Used inside the codec's `impl` block.
macro_rules! agent_codec_setters {
    () => {
        ocm_ce_core::builder_setters! {
            /// Uses another sequence id generator.
            fn with_sequence_generator(sequence: std::sync::Arc<ocm_ce_core::sequence::SequenceGenerator>) => sequence;
            /// Uses another manifest validator (e.g. another size limit).
            fn with_validator(validator: crate::validation::ManifestValidator) => validator;
        }
    };
}
use agent_codec_setters;

/// Agent-side status encoding shared by both agent codecs: the event type must be of the codec's
/// `data_type`, the resource version must parse, the work must carry the originalsource label;
/// the event gets a fresh sequence id.
fn agent_status_event(
    source: &str,
    event_type: &EventType,
    data_type: &DataType,
    work: &ManifestWork,
    sequence: &SequenceGenerator,
    check_manifests: impl FnOnce(&ManifestWork) -> Result<(), CodecError>,
) -> Result<Event, CodecError> {
    if &event_type.data_type != data_type {
        return Err(unsupported_data_type(&event_type.data_type));
    }
    let rv = work.resource_version_str();
    let version: i64 = rv.parse().map_err(|e| {
        encode_error(format!(
            "failed to parse the resourceversion of the work {}, {}",
            work.uid_str(),
            parse_int_error("strconv.ParseInt", rv, &e)
        ))
    })?;
    let original_source = work.label(crate::api::ORIGINAL_SOURCE_LABEL).ok_or_else(|| {
        encode_error(format!(
            "failed to find originalsource from the work {}",
            work.uid_str()
        ))
    })?;
    check_manifests(work)?;
    ocm_ce_core::EventBuilder::new(source, event_type.clone())
        .resource_id(work.uid_str())
        .sequence_id(sequence.next_string())
        .resource_version(version)
        .cluster_name(work.namespace_str())
        .original_source(original_source)
        .build()
        .map_err(|e| encode_error(e.to_string()))
}

/// Agent-side spec decoding shared by both agent codecs: the work is named by its UID in the
/// cluster namespace, labelled with the event source and annotated with the data type; a
/// deletion carries the deletion time and the API finalizer and no spec. Otherwise
/// `decode_spec` fills the spec from the event data, and its manifests must pass `validator`
/// (`<invalid>, <error>`).
fn agent_spec_work(
    event: &Event,
    data_type: &DataType,
    validator: &ManifestValidator,
    invalid: &str,
    decode_spec: impl FnOnce(&mut ManifestWork, &[u8]) -> Result<(), CodecError>,
) -> Result<ManifestWork, CodecError> {
    let ty = check_type(event, data_type)?;
    let resource_id = string_extension(event, extensions::RESOURCE_ID)?;
    let version = int32_extension(event, extensions::RESOURCE_VERSION)?;
    let cluster = string_extension(event, extensions::CLUSTER_NAME)?;
    let mut work = ManifestWork::default();
    let meta = &mut work.metadata;
    meta.uid = Some(resource_id.clone());
    meta.resource_version = Some(version.to_string());
    meta.name = Some(resource_id);
    meta.namespace = Some(cluster);
    meta.labels = Some([(crate::api::ORIGINAL_SOURCE_LABEL.to_owned(), event.source().to_string())].into());
    meta.annotations = Some([(crate::api::DATA_TYPE_ANNOTATION.to_owned(), ty.data_type.to_string())].into());
    if event.extension(extensions::DELETION_TIMESTAMP).is_some() {
        let at = extensions::to_time(event.extension(extensions::DELETION_TIMESTAMP)).map_err(|e| {
            CodecError::new(
                CodecErrorKind::BadExtension,
                format!("failed to get deletiontimestamp, {e}"),
            )
        })?;
        meta.finalizers = Some(vec![crate::api::MANIFEST_WORK_FINALIZER.to_owned()]);
        meta.deletion_timestamp = Some(crate::api::time_from_chrono(at));
        return Ok(work);
    }
    decode_spec(&mut work, &data_bytes(event))?;
    validator
        .validate(&work.spec.workload.manifests)
        .map_err(|e| CodecError::new(CodecErrorKind::Invalid, format!("{invalid}, {e}")))?;
    Ok(work)
}
