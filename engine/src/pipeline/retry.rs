//! Retry policy of the sink worker: capped exponential backoff with jitter, honouring
//! the server's Retry-After. Pure: the worker asks for the next delay.

use std::time::Duration;

use crate::rt::{exponential_backoff, jitter};

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// First backoff.
    pub backoff_min: Duration,
    /// Backoff cap.
    pub backoff_max: Duration,
    /// Each delay is drawn uniformly from `[d * (1 - jitter), d]`.
    pub jitter: f64,
    /// A Retry-After longer than this is shortened to it.
    pub retry_after_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            jitter: 0.5,
            retry_after_max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `failures + 1`, given a random `unit` in `[0, 1)`.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let capped = exponential_backoff(self.backoff_min, self.backoff_max, failures);
        let jittered = jitter(capped, self.jitter, unit);
        match retry_after {
            Some(after) => after.min(self.retry_after_max).max(jittered),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy { jitter: 0.0, ..RetryPolicy::default() };
        let delays: Vec<u64> = (1..=9).map(|n| policy.delay(n, None, 0.3).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    }

    #[test]
    fn jitter_stays_inside_its_band() {
        let policy = RetryPolicy::default();
        for step in 0..100 {
            let delay = policy.delay(3, None, step as f64 / 100.0);
            assert!(delay <= Duration::from_secs(2) && delay > Duration::from_secs(1), "{delay:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, Some(Duration::from_secs(7)), 0.0), Duration::from_secs(7));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(9999)), 0.0), Duration::from_secs(300));
        // Never shorter than our own backoff.
        assert_eq!(policy.delay(8, Some(Duration::from_millis(1)), 0.0), Duration::from_secs(30));
    }
}
