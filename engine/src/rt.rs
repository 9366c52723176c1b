//! The runtime boundary: the only way time, randomness and concurrency enter the engine.
//!
//! [`Rt`] is implemented once per world: tokio in the daemon, a seeded virtual-time
//! executor in the simulator. It is object safe and passed around as `Arc<dyn Rt>`.
//!
//! Promises an implementation must keep:
//! - [`Rt::now`] never goes backwards.
//! - A future from [`Rt::sleep_until`] completes at or after its deadline (immediately if
//!   the deadline has passed) and may be dropped at any time without side effects.
//! - [`Rt::spawn_raw`] polls the future to completion (or until the runtime shuts down)
//!   and drops it as soon as it completes. Engine code never calls it directly: it goes
//!   through [`crate::task::Tasks`], which does the bookkeeping.
//! - [`Rt::rand_u64`] is the only entropy the engine sees (jitter, tie-breaks).

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

/// The runtime abstraction. See the module docs for the promises.
pub trait Rt: Send + Sync + 'static {
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Wall-clock time for log timestamps.
    fn wall(&self) -> UnixNanos;
    /// A future that completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
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

    /// `base` scaled by a random factor in `[1 - fraction, 1 + fraction]`.
    pub fn jitter(&self, base: Duration, fraction: f64) -> Duration {
        let unit = (self.rand_u64() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let factor = 1.0 + fraction * (2.0 * unit - 1.0);
        base.mul_f64(factor.max(0.0))
    }
}
