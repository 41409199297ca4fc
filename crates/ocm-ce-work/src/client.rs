//! Typed ManifestWork clients over the generic clients: [`SourceWorkClient`] (create, patch,
//! delete, get, list, watch) and [`AgentWorkClient`] (get, list, watch, status and finalizer
//! patches). Operations the Go SDK answers with "not supported" do not exist here.
//!
//! Each client owns one background task that drives its subscription (connect, resync,
//! reconnect) and applies received events to the store in arrival order. The task stops when
//! the last handle of the client is dropped.

mod agent;
mod outbox;
mod source;

use std::sync::Arc;
use std::time::Duration;

use ocm_ce_client::ClientOptions;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::WorkMetrics;
use outbox::Sent;

pub use agent::{AgentCodecs, AgentWorkClient};
pub use source::SourceWorkClient;

/// Options of the work clients.
#[derive(Debug, Clone)]
#[must_use]
pub struct WorkClientOptions {
    /// Options of the underlying generic client (rate limit, back-off, resync policy, metrics).
    /// Turning `resync_on_connect` off and `resync_interval` to `None` disables resync.
    pub client: ClientOptions,
    /// A status for a work the source does not know (yet) is retried this many times before it
    /// is dropped and counted. Default 12 (about 80 s in all).
    pub status_retry_attempts: u32,
    /// First retry delay of such a status, doubled per attempt (capped at 30 s). Default 20 ms:
    /// a status can overtake the store write of the spec it answers.
    pub status_retry_delay: Duration,
    /// At most this many statuses wait for a retry; more are dropped and counted. Default 10 000.
    pub status_retry_capacity: usize,
}

impl Default for WorkClientOptions {
    fn default() -> Self {
        Self {
            client: ClientOptions::default(),
            status_retry_attempts: 12,
            status_retry_delay: Duration::from_millis(20),
            status_retry_capacity: 10_000,
        }
    }
}

impl WorkClientOptions {
    /// Sets the generic client options.
    pub fn client(mut self, client: ClientOptions) -> Self {
        self.client = client;
        self
    }

    /// Turns every resync (on connect and periodic) off.
    pub fn without_resync(mut self) -> Self {
        self.client = self.client.resync_on_connect(false).resync_interval(None);
        self
    }
}

/// Classifies the result of one publish for the outbox: acknowledged, worth retrying (the
/// connection is down, the broker pushed back), or hopeless as it is (an encoding or size
/// problem: logged with the work's UID and counted; the work's next change sends it again).
fn publish_outcome(result: &ocm_ce_client::Result<()>, what: &str, uid: &str, metrics: &WorkMetrics) -> Sent {
    match result {
        Ok(()) => Sent::Done,
        Err(e) if e.is_retryable() => {
            tracing::debug!(uid, error = %ocm_ce_client::Report(e), "failed to send the {what} of a work; retrying");
            metrics.publish_retried();
            Sent::Retry
        }
        Err(e) => {
            tracing::warn!(uid, error = %ocm_ce_client::Report(e), "cannot send the {what} of a work; it is sent again when the work changes");
            metrics.publish_failed(if matches!(e, ocm_ce_client::Error::Transport(t) if t.is_too_large()) {
                "too_large"
            } else {
                "unsendable"
            });
            Sent::Failed
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Aborts the driver task when the last client handle goes away.
#[derive(Debug)]
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Guard = Arc<TaskGuard>;

/// The part of the API that both work clients have: `Clone`, `Debug`, the store, the connection state
/// (read from the generic client, where it is kept), flushing and closing. Written once and
/// expanded into each client, which has an `inner` with `client`, `store`, `metrics`,
/// `outbox` and its id (`$id`, shown by `Debug`), and a `_task` guard. `$what` names what the
/// outbox holds, `$closing` is the warning of a close that could not flush.
macro_rules! work_client_common {
    ($client:ident, $generic:ident, $id:ident, $what:literal, $closing:literal) => {
        impl<Tr: Transport> std::fmt::Debug for $client<Tr> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($client))
                    .field(stringify!($id), &self.inner.$id)
                    .field("works", &self.inner.store.len())
                    .finish_non_exhaustive()
            }
        }

        impl<Tr: Transport> Clone for $client<Tr> {
            fn clone(&self) -> Self {
                Self {
                    inner: self.inner.clone(),
                    _task: self._task.clone(),
                }
            }
        }

        impl<Tr: Transport> $client<Tr> {
            /// The store (read handle) behind this client.
            pub fn store(&self) -> &Store {
                &self.inner.store
            }

            /// The changes of the works from now on.
            pub fn watch(&self) -> WatchStream {
                self.inner.store.watch()
            }

            /// Counters of this client.
            pub fn metrics(&self) -> &WorkMetrics {
                &self.inner.metrics
            }

            /// The generic client underneath (its metrics, or an explicit resync).
            pub fn generic(&self) -> &$generic<ManifestWork, Tr> {
                &self.inner.client
            }

            /// True while the subscription is confirmed.
            pub fn is_connected(&self) -> bool {
                self.inner.client.is_connected()
            }

            /// The last connection or subscription error, with its causes.
            pub fn last_error(&self) -> Option<String> {
                self.inner.client.last_error()
            }

            /// Waits until the subscription is confirmed (and the initial resync was sent).
            pub async fn wait_until_connected(&self) {
                self.inner.client.wait_until_connected().await;
            }

            #[doc = concat!("Shuts the client down gracefully before the process exits: each ", $what)]
            /// waiting to be sent gets up to `flush` to go out (see [`flush`](Self::flush)), then
            /// the store stops receiving and the connection is closed cleanly (see
            /// [`ocm_ce_client::Client::close`]; for Kafka the consumer leaves its group with its
            /// handled offsets committed). The store stays readable.
            pub async fn close(&self, flush: std::time::Duration) {
                if !self.flush(flush).await {
                    tracing::warn!(unsent = self.inner.outbox.len(), $closing);
                }
                self.inner.client.close().await;
            }

            #[doc = concat!("Waits until the transport acknowledged every ", $what, ", at most `timeout`;")]
            /// true when nothing is left.
            pub async fn flush(&self, timeout: std::time::Duration) -> bool {
                self.inner.outbox.wait_empty(timeout).await
            }

            #[doc = concat!("How many works have a ", $what, " that the transport has not")]
            /// acknowledged yet (queued, in flight, or waiting for a retry).
            pub fn unsent(&self) -> usize {
                self.inner.outbox.len()
            }
        }
    };
}
pub(crate) use work_client_common;
