//! The client-side rate limiter: a token bucket per client (Go: 50 QPS, burst 100). The clients
//! limit their publishes with it; `ocm-ce-kube` limits its Kubernetes API requests with it.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota};
use tokio::time::Instant;

/// Rate limit settings. Non-positive values fall back to the defaults, as in Go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained events per second.
    pub qps: f32,
    /// Events that may be sent at once.
    pub burst: u32,
}

impl RateLimit {
    /// Go's `DefaultQPS`.
    pub const DEFAULT_QPS: f32 = 50.0;
    /// Go's `DefaultBurst`.
    pub const DEFAULT_BURST: u32 = 100;
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            qps: Self::DEFAULT_QPS,
            burst: Self::DEFAULT_BURST,
        }
    }
}

/// A limiter built from a [`RateLimit`]: [`acquire`](Self::acquire) waits for a token.
#[derive(Debug)]
pub struct Limiter {
    inner: DefaultDirectRateLimiter,
}

impl Limiter {
    /// A full bucket of `limit.burst` tokens refilled at `limit.qps` per second.
    pub fn new(limit: RateLimit) -> Self {
        let qps = if limit.qps > 0.0 {
            limit.qps
        } else {
            RateLimit::DEFAULT_QPS
        };
        let burst =
            NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN.saturating_add(RateLimit::DEFAULT_BURST - 1));
        let period = Duration::from_secs_f64(1.0 / f64::from(qps));
        // `period` is positive because `qps` is positive and finite.
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            inner: DefaultDirectRateLimiter::direct(quota),
        }
    }

    /// Waits for a token; logs when throttled for more than a second, as Go does.
    pub async fn acquire(&self) {
        let start = Instant::now();
        self.inner.until_ready().await;
        let waited = start.elapsed();
        if waited > Duration::from_secs(1) {
            tracing::warn!(?waited, "client-side throttling delayed a request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lower bounds hold on any machine (load only slows); the upper bounds are generous.
    #[tokio::test]
    async fn the_burst_passes_at_once_then_the_steady_rate_holds() {
        let limiter = Limiter::new(RateLimit { qps: 20.0, burst: 10 });
        let start = std::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let burst = start.elapsed();
        assert!(burst < Duration::from_millis(500), "the burst of 10 took {burst:?}");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        // 10 more tokens at 20 per second: at least half a second (less one token's period of
        // slack for refills during the burst).
        let steady = start.elapsed() - burst;
        assert!(
            steady >= Duration::from_millis(450),
            "10 events past the burst took {steady:?}"
        );
        assert!(
            steady < Duration::from_secs(3),
            "10 events past the burst took {steady:?}"
        );
    }

    #[test]
    fn non_positive_settings_fall_back_to_go_defaults() {
        let limiter = Limiter::new(RateLimit { qps: 0.0, burst: 0 });
        // Go's burst of 100 passes without waiting.
        for _ in 0..100 {
            assert!(limiter.inner.check().is_ok());
        }
        assert!(limiter.inner.check().is_err(), "the 101st event waits");
    }
}
