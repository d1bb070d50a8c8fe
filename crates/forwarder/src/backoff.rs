//! The one backoff engine shared by every destination type (the classifiers decide *whether*
//! to retry; this decides *when*).
//!
//! Exponential (factor 2) from `initial` to `max`, with jitter (backon adds up to 100% of the
//! current delay, so attempts of many destinations spread out), and `Retry-After` honoured:
//! the delay is never shorter than what the receiver asked for, capped at `max_retry_after`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

#[derive(Debug, Clone, Copy)]
pub struct BackoffEngine {
    initial: Duration,
    max: Duration,
    max_retry_after: Duration,
}

impl BackoffEngine {
    pub fn new(initial: Duration, max: Duration, max_retry_after: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            max_retry_after,
        }
    }

    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_factor(2.0)
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
    }

    /// The delay before attempt number `attempt + 1`, after `attempt` failures (1-based).
    /// Jitter may take a delay up to twice its base; it is then capped at twice `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let computed = self
            .builder()
            .build()
            .nth(index.min(64))
            .unwrap_or(self.max)
            .min(self.max.saturating_mul(2));
        match retry_after {
            Some(asked) => computed.max(asked.min(self.max_retry_after)),
            None => computed,
        }
    }

    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn engine() -> BackoffEngine {
        BackoffEngine::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
            Duration::from_secs(30),
        )
    }

    #[test]
    fn grows_exponentially_with_jitter_and_stays_capped() {
        let engine = engine();
        for _ in 0..50 {
            let first = engine.delay(1, None);
            assert!(
                first >= Duration::from_millis(100) && first <= Duration::from_millis(200),
                "{first:?}"
            );
            let third = engine.delay(3, None);
            assert!(
                third >= Duration::from_millis(400) && third <= Duration::from_millis(800),
                "{third:?}"
            );
            let late = engine.delay(40, None);
            assert!(
                late >= Duration::from_secs(2) && late <= Duration::from_secs(4),
                "{late:?}"
            );
        }
    }

    #[test]
    fn honours_retry_after_within_bounds() {
        let engine = engine();
        assert!(engine.delay(1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert!(engine.delay(1, Some(Duration::from_secs(7))) <= Duration::from_secs(8));
        let capped = engine.delay(1, Some(Duration::from_secs(3600)));
        assert!(capped >= Duration::from_secs(30) && capped < Duration::from_secs(31));
    }
}
