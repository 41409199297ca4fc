#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
pub mod error;
pub mod event_type;
pub mod extensions;
pub mod go_duration;
pub mod go_json;
pub mod go_time;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod golden;
pub mod payload;
pub mod received;
pub mod resource;
pub mod resync;
pub mod sequence;
pub mod topics;

pub use codec::{Codec, CodecError, CodecErrorKind};
pub use error::{
    Error, EventTypeError, ExtensionError, PayloadError, ReceiveError, Result, SequenceIdError, TopicError,
};
pub use event_type::{DataType, EventType, SubResource};
pub use extensions::{EventBuilder, EventExt};
pub use payload::{ResourceStatusHash, ResourceStatusHashList, ResourceVersion, ResourceVersionList};
pub use resource::{ListOptions, ResourceAction, ResourceObject};
pub use topics::Topics;

/// The CloudEvents event type used throughout (re-exported from `cloudevents-sdk`).
pub use cloudevents::Event;

/// Builder setters, for the option and config builders of the ocm-ce crates:
/// `fn name(value: Type) => field;` makes the `#[must_use]` method
/// `pub fn name(mut self, value: Type) -> Self` that stores `value` in `self.field`, with the
/// attributes (doc comments) written before it. Used inside an `impl` block.
#[doc(hidden)]
#[macro_export]
macro_rules! builder_setters {
    ($($(#[$attr:meta])* fn $name:ident($value:ident: $ty:ty) => $field:ident;)*) => {
        $(
            $(#[$attr])*
            #[must_use]
            pub fn $name(mut self, $value: $ty) -> Self {
                self.$field = $value;
                self
            }
        )*
    };
}
