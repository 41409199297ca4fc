//! Exponential back-off, the one implementation in the workspace: the reconnect back-off with
//! the Go SDK's shape (5 s, ×5, jitter 1.0, 60 s cap, reset after 10 minutes) as a value with no
//! process-wide state, and the retry delays of work queues and outboxes
//! ([`BackoffConfig::exponential`] and [`BackoffConfig::delay`]).

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// Back-off parameters. The default is Go's: 5 s, ×5 per failure, jitter 1.0 (each delay is
/// uniform in `[d, 2d)`), capped at 60 s (jitter still applied), reset after 10 minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// First delay.
    pub initial: Duration,
    /// Growth per failure.
    pub factor: f64,
    /// Jitter fraction: a delay `d` becomes uniform in `[d, d·(1+jitter))`.
    pub jitter: f64,
    /// Largest delay before jitter.
    pub cap: Duration,
    /// The sequence restarts when this long has passed since the last restart.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            factor: 5.0,
            jitter: 1.0,
            cap: Duration::from_secs(60),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffConfig {
    /// A back-off without jitter that always waits `delay` (handy in tests and tools).
    pub fn constant(delay: Duration) -> Self {
        Self {
            initial: delay,
            factor: 1.0,
            jitter: 0.0,
            cap: delay,
            reset_after: Duration::MAX,
        }
    }

    /// A back-off that doubles from `initial` up to `cap`, without jitter and never reset:
    /// the `n`-th delay is `initial * 2^(n - 1)`, at most `cap` (client-go's per-item
    /// exponential failure rate limiter).
    pub fn exponential(initial: Duration, cap: Duration) -> Self {
        Self {
            initial,
            factor: 2.0,
            jitter: 0.0,
            cap,
            reset_after: Duration::MAX,
        }
    }

    /// Sets the jitter fraction: a delay `d` becomes uniform in `[d, d·(1+jitter))`.
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before attempt `attempt` (1 for the first retry; 0 counts as 1):
    /// `initial * factor^(attempt - 1)`, at most `cap`, then jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        let base = if secs.is_finite() && secs < self.cap.as_secs_f64() {
            // A finite, non-negative value below the cap: in Duration's range.
            Duration::from_secs_f64(secs)
        } else {
            self.cap
        };
        self.jittered(base.min(self.cap))
    }

    fn jittered(&self, base: Duration) -> Duration {
        if self.jitter > 0.0 {
            base + base.mul_f64(rand::rng().random_range(0.0..self.jitter))
        } else {
            base
        }
    }
}

/// The state of one back-off sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
    last_reset: Instant,
}

impl Backoff {
    /// Starts a sequence.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            attempt: 0,
            last_reset: Instant::now(),
            config,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let now = Instant::now();
        if now.saturating_duration_since(self.last_reset) > self.config.reset_after {
            self.attempt = 0;
            self.last_reset = now;
        }
        self.attempt = self.attempt.saturating_add(1);
        self.config.delay(self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_gos_shape() {
        let mut b = Backoff::new(BackoffConfig::default());
        let d1 = b.next_delay();
        let d2 = b.next_delay();
        let d3 = b.next_delay();
        let d4 = b.next_delay();
        assert!(d1 >= Duration::from_secs(5) && d1 < Duration::from_secs(10), "{d1:?}");
        assert!(d2 >= Duration::from_secs(25) && d2 < Duration::from_secs(50), "{d2:?}");
        assert!(d3 >= Duration::from_secs(60) && d3 < Duration::from_secs(120), "{d3:?}");
        assert!(d4 >= Duration::from_secs(60) && d4 < Duration::from_secs(120), "{d4:?}");
    }

    #[test]
    fn exponential_delays_double_up_to_the_cap_and_jitter_stays_within_its_fraction() {
        let b = BackoffConfig::exponential(Duration::from_millis(5), Duration::from_secs(1));
        assert_eq!(b.delay(0), Duration::from_millis(5));
        assert_eq!(b.delay(1), Duration::from_millis(5));
        assert_eq!(b.delay(2), Duration::from_millis(10));
        assert_eq!(b.delay(4), Duration::from_millis(40));
        assert_eq!(b.delay(9), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1));
        let jittered = b.clone().with_jitter(0.5);
        for attempt in [1, 3, 40] {
            let base = b.delay(attempt);
            let d = jittered.delay(attempt);
            assert!(d >= base && d < base.mul_f64(1.5), "{attempt}: {d:?}");
        }
        assert_eq!(
            BackoffConfig::constant(Duration::from_secs(2)).delay(7),
            Duration::from_secs(2)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_sequence_restarts_after_ten_minutes() {
        let mut b = Backoff::new(BackoffConfig::default());
        for _ in 0..4 {
            b.next_delay();
        }
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(b.next_delay() < Duration::from_secs(10));
    }
}
