//! Discovery's timing decisions, sans-IO: when to (re)connect the events stream and
//! when to reconcile with a full `list`.
//!
//! Rules:
//! - The events stream is connected at start and reconnected whenever it ends or fails,
//!   after a backoff that doubles per consecutive failure (`backoff_min` to
//!   `backoff_max`, scaled by `1 − 0.2 × unit`).
//! - Every (re)connect is followed at once by a reconcile (it heals whatever happened
//!   while disconnected), and reconciles repeat every `reconcile_every` (they heal
//!   events lost on a live connection).
//! - A failed `list` is retried after the same backoff. A reconcile that succeeds while
//!   the events stream is connected resets the failure count: Docker is healthy.
//!
//! [`DiscoveryTiming::poll_call`] says which Docker call is due, the `handle_*` methods
//! take the answers, [`DiscoveryTiming::poll_timeout`] says when to look again.

use std::time::Duration;

use crate::rt::{exponential_backoff, jitter, Instant};

const BACKOFF_JITTER: f64 = 0.2;

/// A Docker call discovery should make now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryCall {
    /// Open the events stream.
    ConnectEvents,
    /// `list` every container and reconcile.
    Reconcile,
}

#[derive(Clone, Debug)]
pub struct DiscoveryTiming {
    reconcile_every: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    connected: bool,
    reconnect_at: Instant,
    reconcile_at: Instant,
    failures: u32,
}

impl DiscoveryTiming {
    /// Both calls are due at `now`.
    pub fn new(
        now: Instant,
        reconcile_every: Duration,
        backoff_min: Duration,
        backoff_max: Duration,
    ) -> DiscoveryTiming {
        DiscoveryTiming {
            reconcile_every,
            backoff_min,
            backoff_max,
            connected: false,
            reconnect_at: now,
            reconcile_at: now,
            failures: 0,
        }
    }

    /// The call due at `now`, if any (connecting first).
    pub fn poll_call(&self, now: Instant) -> Option<DiscoveryCall> {
        if !self.connected && now >= self.reconnect_at {
            Some(DiscoveryCall::ConnectEvents)
        } else if now >= self.reconcile_at {
            Some(DiscoveryCall::Reconcile)
        } else {
            None
        }
    }

    /// When the next call is due.
    pub fn poll_timeout(&self) -> Instant {
        if self.connected {
            self.reconcile_at
        } else {
            self.reconnect_at.min(self.reconcile_at)
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The events stream is open: reconcile at once.
    pub fn handle_connected(&mut self, now: Instant) {
        self.connected = true;
        self.reconcile_at = now;
    }

    /// Opening the events stream failed, or an open one ended or failed.
    pub fn handle_events_lost(&mut self, now: Instant, unit: f64) {
        self.connected = false;
        self.reconnect_at = now + self.next_backoff(unit);
    }

    /// A reconcile succeeded; true if Docker counts as healthy again (events connected).
    pub fn handle_reconciled(&mut self, now: Instant) -> bool {
        self.reconcile_at = now + self.reconcile_every;
        if self.connected {
            self.failures = 0;
        }
        self.connected
    }

    /// A Docker call about one container failed (the inspect of an event's unknown
    /// container): reconcile within a backoff instead of at the next period, or that
    /// container waits a whole `reconcile_every` for its stream (seed 96: 180 s).
    pub fn handle_call_failed(&mut self, now: Instant, unit: f64) {
        let soon = now + self.next_backoff(unit);
        self.reconcile_at = self.reconcile_at.min(soon);
    }

    pub fn handle_reconcile_failed(&mut self, now: Instant, unit: f64) {
        self.reconcile_at = now + self.next_backoff(unit);
    }

    fn next_backoff(&mut self, unit: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        jitter(exponential_backoff(self.backoff_min, self.backoff_max, self.failures), BACKOFF_JITTER, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> Instant {
        Instant::from_nanos(millis * 1_000_000)
    }

    fn timing() -> DiscoveryTiming {
        DiscoveryTiming::new(at(0), Duration::from_secs(60), Duration::from_millis(500), Duration::from_secs(30))
    }

    #[test]
    fn connect_then_reconcile_at_once_then_every_period() {
        let mut timing = timing();
        assert_eq!(timing.poll_call(at(0)), Some(DiscoveryCall::ConnectEvents));
        timing.handle_connected(at(10));
        assert_eq!(timing.poll_call(at(10)), Some(DiscoveryCall::Reconcile));
        assert!(timing.handle_reconciled(at(20)));
        assert_eq!(timing.poll_call(at(20)), None);
        assert_eq!(timing.poll_timeout(), at(60_020));
        assert_eq!(timing.poll_call(at(60_020)), Some(DiscoveryCall::Reconcile));
    }

    #[test]
    fn a_failed_inspect_brings_the_reconcile_forward_never_back() {
        let mut timing = timing();
        timing.handle_connected(at(0));
        timing.handle_reconciled(at(0));
        assert_eq!(timing.poll_timeout(), at(60_000));
        timing.handle_call_failed(at(1_000), 0.0);
        let soon = timing.poll_timeout();
        assert!(soon > at(1_000) && soon < at(2_000), "{soon:?}");
        assert_eq!(timing.poll_call(soon), Some(DiscoveryCall::Reconcile));
        // Already due sooner than a backoff: left as it is.
        timing.handle_call_failed(at(1_001), 0.0);
        assert_eq!(timing.poll_timeout(), soon);
    }

    #[test]
    fn reconnects_back_off_to_their_cap_and_a_healthy_reconcile_resets_them() {
        let mut timing = timing();
        timing.handle_connected(at(0));
        timing.handle_reconciled(at(0));
        let mut now = at(0);
        let mut delays = Vec::new();
        for _ in 0..6 {
            timing.handle_events_lost(now, 0.0);
            let next = timing.poll_timeout();
            assert_eq!(timing.poll_call(next), Some(DiscoveryCall::ConnectEvents));
            delays.push((next - now).as_millis() as u64);
            now = next;
        }
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000]);
        for _ in 0..4 {
            timing.handle_events_lost(now, 0.0);
        }
        assert_eq!(timing.reconnect_at - now, Duration::from_secs(30));
        // The jitter only shortens, by at most a fifth.
        timing.handle_events_lost(now, 0.999);
        assert!(timing.reconnect_at - now > Duration::from_secs(24));
        // Connected and reconciled: healthy, and the next loss starts from backoff_min.
        timing.handle_connected(now);
        assert!(timing.handle_reconciled(now));
        timing.handle_events_lost(now, 0.0);
        assert_eq!(timing.poll_timeout() - now, Duration::from_millis(500));
    }

    #[test]
    fn a_lost_events_stream_is_reconnected_and_reconciled() {
        let mut timing = timing();
        timing.handle_connected(at(0));
        timing.handle_reconciled(at(0));
        timing.handle_events_lost(at(5_000), 0.0);
        assert!(!timing.is_connected());
        assert_eq!(timing.poll_timeout(), at(5_500));
        assert_eq!(timing.poll_call(at(5_500)), Some(DiscoveryCall::ConnectEvents));
        timing.handle_connected(at(5_600));
        assert_eq!(timing.poll_call(at(5_600)), Some(DiscoveryCall::Reconcile));
        // A reconcile while disconnected does not count as healthy.
        let mut timing = self::timing();
        timing.handle_events_lost(at(0), 0.0);
        assert!(!timing.handle_reconciled(at(0)));
    }
}
