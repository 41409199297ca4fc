#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod agent;
#[cfg(any(feature = "mqtt", feature = "grpc", feature = "kafka"))]
mod any;
pub mod backoff;
mod client;
#[cfg(any(feature = "mqtt", feature = "grpc", feature = "kafka"))]
mod config;
mod driver;
mod error;
mod lister;
pub mod metrics;
mod rate_limit;
mod side;
mod source;
pub mod transport;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;

pub use agent::{AgentClient, AgentSide, VersionError};
#[cfg(any(feature = "mqtt", feature = "grpc", feature = "kafka"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "mqtt", feature = "grpc", feature = "kafka"))))]
pub use any::{AnyConnection, AnyTransport, TransportConfig, TransportKind};
pub use backoff::BackoffConfig;
pub use client::{Client, ClientEvent, ClientOptions, PublishTurn};
#[cfg(any(feature = "mqtt", feature = "grpc", feature = "kafka"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "mqtt", feature = "grpc", feature = "kafka"))))]
pub use config::{ConfigError, TlsFiles};
pub use driver::ClientStream;
pub use error::{BoxError, Error, Report, Result, TransportError};
pub use lister::{Lister, StatusHasher};
pub use metrics::ClientMetrics;
pub use rate_limit::{Limiter, RateLimit};
pub use side::Side;
pub use source::{SourceClient, SourceSide};
pub use transport::{Connection, PublishTarget, Role, Subscription, Transport};
