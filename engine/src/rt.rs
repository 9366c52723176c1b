//! The runtime boundary: the only way time, randomness and concurrency enter the engine.
//!
//! [`Rt`] is implemented once per world: tokio in the daemon, a seeded virtual-time
//! executor in the simulator. It is object safe and passed around as `Arc<dyn Rt>`.
//!
//! Promises an implementation must keep:
//! - [`Rt::now`] never goes backwards.
//! - A future from [`Rt::sleep_until`] completes at or after its deadline (immediately if
//!   the deadline has passed) and may be dropped at any time without side effects.
//! - A [`Timer`] from [`Rt::timer`] is such a sleep whose deadline can move:
//!   [`Timer::reset`] makes it complete at the new deadline, and the old one wakes no one.
//! - [`Rt::spawn_raw`] polls the future to completion (or until the runtime shuts down)
//!   and drops it as soon as it completes. Engine code never calls it directly: it goes
//!   through [`crate::task::Tasks`], which does the bookkeeping.
//! - [`Rt::rand_u64`] is the only entropy the engine sees (jitter, tie-breaks).
//!
//! The timing arithmetic every task shares lives here too, once, as pure functions:
//! [`unit_from_bits`] (random bits to `[0, 1)`), [`jitter`] (a duration scaled down by a
//! random factor) and [`exponential_backoff`] (capped doubling). The supervisor, discovery
//! and the sink worker all call these.

use std::future::Future;
use std::ops::{Add, Sub};
use std::panic::Location;
use std::pin::Pin;
use std::time::Duration;

use crate::task::TaskKind;

/// A boxed, sendable future: what crosses the runtime and port boundaries.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A point on a runtime's monotonic clock, in nanoseconds since that runtime started.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// Wall-clock time as nanoseconds since the Unix epoch (what log timestamps use).
pub type UnixNanos = i64;

/// What a runtime learns about a task when it is spawned.
#[derive(Copy, Clone, Debug)]
pub struct TaskMeta {
    /// Unique per [`crate::task::Tasks`] registry, in spawn order.
    pub id: u64,
    pub kind: TaskKind,
    /// Where the task was spawned (via `#[track_caller]`).
    pub site: &'static Location<'static>,
}

/// A sleep whose deadline can move ([`Rt::timer`]).
pub trait Timer: Future<Output = ()> + Send {
    /// Complete once `now() >= deadline` instead; the old deadline wakes no one.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
}

/// A boxed [`Timer`].
pub type BoxTimer = Pin<Box<dyn Timer>>;

/// The runtime abstraction. See the module docs for the promises.
pub trait Rt: Send + Sync + 'static {
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Wall-clock time for log timestamps.
    fn wall(&self) -> UnixNanos;
    /// A future that completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
    /// [`Rt::sleep_until`] as a [`Timer`], for a deadline that moves.
    fn timer(&self, deadline: Instant) -> BoxTimer;
    /// Run `future` as a separate task. Use [`crate::task::Tasks::spawn`] instead.
    fn spawn_raw(&self, meta: TaskMeta, future: BoxFuture<()>);
    /// Seeded (in the simulator) or OS-backed (in the daemon) randomness.
    fn rand_u64(&self) -> u64;
}

impl dyn Rt {
    /// A future that completes after `duration` has passed.
    pub fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        let deadline = self.now() + duration;
        self.sleep_until(deadline)
    }

    /// `base` scaled by a random factor in `[1 - fraction, 1]` (see [`jitter`]).
    pub fn jitter(&self, base: Duration, fraction: f64) -> Duration {
        jitter(base, fraction, unit_from_bits(self.rand_u64()))
    }
}

/// A uniform number in `[0, 1)` from 64 random bits.
pub fn unit_from_bits(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `base` scaled by `1 - fraction × unit`: with `unit` uniform in `[0, 1)`, a duration
/// uniform in `(base × (1 - fraction), base]`. Never longer than `base`, so a jittered
/// bound is still a bound; `fraction` is clamped to `[0, 1]`.
pub fn jitter(base: Duration, fraction: f64, unit: f64) -> Duration {
    base.mul_f64(1.0 - fraction.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0))
}

/// `min` doubled per failure after the first, capped at `max` (`failures` ≥ 1).
pub fn exponential_backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    min.saturating_mul(1u32 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(30));
        let delays: Vec<u64> = (1..=9).map(|n| exponential_backoff(min, max, n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(exponential_backoff(min, max, u32::MAX), max);
    }

    #[test]
    fn jitter_scales_down_inside_its_band() {
        let base = Duration::from_secs(10);
        assert_eq!(jitter(base, 0.3, 0.0), base);
        for step in 0..100 {
            let scaled = jitter(base, 0.3, unit_from_bits(u64::MAX / 100 * step));
            assert!(scaled <= base && scaled > Duration::from_secs(7), "{scaled:?}");
        }
        assert!(unit_from_bits(u64::MAX) < 1.0);
    }
}
