//! `TestRt`: a minimal tokio implementation of `engine::rt::Rt` for these tests.
//!
//! Stands in for the daemon's `TokioRt` until `capture-daemon` has a library target the
//! tests can depend on. Monotonic `now` from `std::time::Instant`, `wall` from
//! `SystemTime`, `sleep_until` via `tokio::time`, `spawn_raw` via the current tokio
//! runtime (it must be called inside one), and a fixed-seed xorshift for `rand_u64`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::rt::{BoxFuture, Instant, Rt, TaskMeta, UnixNanos};
use engine::task::Tasks;

pub struct TestRt {
    origin: std::time::Instant,
    random: AtomicU64,
}

impl TestRt {
    pub fn new() -> TestRt {
        TestRt { origin: std::time::Instant::now(), random: AtomicU64::new(0x9E37_79B9_7F4A_7C15) }
    }

    /// A fresh task registry on a fresh `TestRt`.
    pub fn tasks() -> Tasks {
        Tasks::new(Arc::new(TestRt::new()))
    }
}

impl Default for TestRt {
    fn default() -> TestRt {
        TestRt::new()
    }
}

impl Rt for TestRt {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn wall(&self) -> UnixNanos {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos() as i64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let at = self.origin + Duration::from_nanos(deadline.as_nanos());
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn spawn_raw(&self, _meta: TaskMeta, future: BoxFuture<()>) {
        drop(tokio::spawn(future));
    }

    fn rand_u64(&self) -> u64 {
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random.store(x, Ordering::Relaxed);
        x
    }
}
