//! `TokioRt`: the production implementation of [`engine::rt::Rt`] on tokio.
//!
//! Owns the mapping from the engine's runtime boundary to the real world:
//! - `now()` is monotonic nanoseconds since this `TokioRt` was created, read from
//!   `tokio::time::Instant` (which is std's monotonic clock unless tokio's clock is paused
//!   in a test), so it never goes backwards.
//! - `wall()` is `SystemTime` as Unix nanoseconds (log timestamps only).
//! - `sleep_until()` is `tokio::time::sleep_until`: completes at or after the deadline,
//!   at once if it has passed, and is cancel-safe to drop.
//! - `spawn_raw()` is the one place in the whole workspace that calls `tokio::spawn`.
//!   Everything else spawns through `engine::task::Tasks`, which counts the task by kind
//!   and spawn site and hands its owner a handle to cancel and join it.
//! - `rand_u64()` is a splitmix64 stream seeded once from OS entropy (std's
//!   `RandomState`, itself seeded from the OS). Jitter needs spread, not secrecy.
//!
//! Must be created and used inside a tokio runtime (spawn and sleep need its handle).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::rt::{BoxFuture, BoxTimer, Instant, Rt, TaskMeta, Timer, UnixNanos};

pub struct TokioRt {
    origin: tokio::time::Instant,
    rng_state: AtomicU64,
}

impl TokioRt {
    pub fn new() -> TokioRt {
        TokioRt { origin: tokio::time::Instant::now(), rng_state: AtomicU64::new(os_seed()) }
    }

    /// Tasks alive on the tokio runtime itself, whoever spawned them (our registry's
    /// tasks plus anything a library spawned): `log_capturer_runtime_tasks_alive`.
    pub fn runtime_tasks_alive() -> usize {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.metrics().num_alive_tasks(),
            Err(_) => 0,
        }
    }

    /// The tokio instant of an engine deadline (for `sleep_until`).
    fn to_tokio(&self, deadline: Instant) -> tokio::time::Instant {
        to_tokio(self.origin, deadline)
    }
}

/// `deadline`, an engine instant counted from `origin`, as tokio's.
fn to_tokio(origin: tokio::time::Instant, deadline: Instant) -> tokio::time::Instant {
    origin + Duration::from_nanos(deadline.as_nanos())
}

/// [`Rt::timer`] on tokio: its `Sleep`, which moves without waking ([`tokio::time::Sleep::reset`]).
struct TokioTimer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    origin: tokio::time::Instant,
}

impl Future for TokioTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

impl Timer for TokioTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        let at = to_tokio(self.origin, deadline);
        self.sleep.as_mut().reset(at);
    }
}

impl Default for TokioRt {
    fn default() -> TokioRt {
        TokioRt::new()
    }
}

impl Rt for TokioRt {
    fn now(&self) -> Instant {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        Instant::from_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }

    fn wall(&self) -> UnixNanos {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since_epoch) => i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX),
            Err(before_epoch) => -i64::try_from(before_epoch.duration().as_nanos()).unwrap_or(i64::MAX),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(self.to_tokio(deadline)))
    }

    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(TokioTimer { sleep: Box::pin(tokio::time::sleep_until(self.to_tokio(deadline))), origin: self.origin })
    }

    fn spawn_raw(&self, _meta: TaskMeta, future: BoxFuture<()>) {
        // The ONE allowed `tokio::spawn` of the workspace: engine::task::Tasks wraps the
        // future (registry bookkeeping, abort, join) before it gets here. The JoinHandle
        // is dropped on purpose: the owner joins through its engine TaskHandle.
        drop(tokio::spawn(future));
    }

    fn rand_u64(&self) -> u64 {
        // splitmix64: a Weyl sequence through a mixing function; lock-free.
        let state =
            self.rng_state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// 64 bits from the OS: std seeds every `RandomState` from the OS entropy source.
fn os_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id() as u64);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use engine::task::{TaskKind, Tasks};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reset_timer_completes_at_its_new_deadline() {
        let rt = TokioRt::new();
        let start = rt.now();
        let mut timer = rt.timer(start + Duration::from_secs(3600));
        timer.as_mut().reset(start + Duration::from_millis(20));
        timer.as_mut().await;
        let fired = rt.now();
        assert!(fired >= start + Duration::from_millis(20), "{start:?} -> {fired:?}");
        // Moved later after it fired: waits again.
        timer.as_mut().reset(fired + Duration::from_millis(20));
        timer.as_mut().await;
        assert!(rt.now() >= fired + Duration::from_millis(20));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn now_is_monotonic_and_sleep_waits() {
        let rt = TokioRt::new();
        let before = rt.now();
        rt.sleep_until(before + Duration::from_millis(20)).await;
        let after = rt.now();
        assert!(after >= before + Duration::from_millis(20), "{before:?} -> {after:?}");
        // A deadline in the past completes at once.
        rt.sleep_until(Instant::ZERO).await;
    }

    #[tokio::test]
    async fn wall_is_unix_nanos() {
        let rt = TokioRt::new();
        let wall = rt.wall();
        // After 2020-01-01 and before 2100-01-01.
        assert!(wall > 1_577_836_800_000_000_000 && wall < 4_102_444_800_000_000_000, "{wall}");
    }

    #[tokio::test]
    async fn rand_differs_between_draws_and_instances() {
        let first = TokioRt::new();
        let second = TokioRt::new();
        let draws: Vec<u64> = (0..4).map(|_| first.rand_u64()).collect();
        assert!(draws.windows(2).all(|pair| pair[0] != pair[1]));
        assert_ne!(first.rand_u64(), second.rand_u64());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_spawned_through_registry_run_and_are_counted() {
        let tasks = Tasks::new(Arc::new(TokioRt::new()));
        let handle = tasks.spawn(TaskKind::Control, async { 7 });
        assert_eq!(handle.join().await, Ok(7));
        assert_eq!(tasks.registry().alive(TaskKind::Control), 0);
        assert_eq!(tasks.registry().spawned(TaskKind::Control), 1);
        assert!(TokioRt::runtime_tasks_alive() < 100);
    }
}
