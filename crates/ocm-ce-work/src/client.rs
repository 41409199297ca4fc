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
use tokio::sync::watch;
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

/// Whether the driver currently has a confirmed subscription.
#[derive(Debug, Clone)]
struct Connected(watch::Receiver<bool>);

impl Connected {
    fn channel() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    fn is_connected(&self) -> bool {
        *self.0.borrow()
    }

    async fn wait(&self) {
        let mut rx = self.0.clone();
        // The sender lives in the driver task; if it is gone the client is shutting down.
        let _ = rx.wait_for(|c| *c).await;
    }
}

type Guard = Arc<TaskGuard>;

/// The last error the driver saw, with its causes, for diagnostics (e.g. why a broker cannot
/// be reached).
#[derive(Debug, Default)]
struct LastError(std::sync::Mutex<Option<String>>);

impl LastError {
    fn set(&self, e: &(dyn std::error::Error + 'static)) {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(text);
        }
    }

    fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}
