//! Reconnect back-off with the Go SDK's shape (§8.2), as a value (no process-wide state).

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
}

/// The state of one back-off sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    next: Duration,
    last_reset: Instant,
}

impl Backoff {
    /// Starts a sequence.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            next: config.initial,
            last_reset: Instant::now(),
            config,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let now = Instant::now();
        if now.saturating_duration_since(self.last_reset) > self.config.reset_after {
            self.next = self.config.initial;
            self.last_reset = now;
        }
        let base = self.next.min(self.config.cap);
        self.next = self.next.mul_f64(self.config.factor.max(1.0)).min(self.config.cap);
        if self.config.jitter > 0.0 {
            base + base.mul_f64(rand::rng().random_range(0.0..self.config.jitter))
        } else {
            base
        }
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
