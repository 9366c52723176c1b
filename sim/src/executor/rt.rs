//! `SimRt`: the simulator's implementation of [`engine::rt::Rt`], a cheap clonable handle.
//!
//! Owns: the state tasks reach while they run (shared with the [`super::Executor`] that
//! drives them): the virtual clock, the timers, the engine's entropy stream and the
//! queue of tasks spawned but not yet admitted.
//!
//! Promises:
//! - `now()` is virtual time; it moves only when the executor has nothing runnable, and
//!   only forward. `wall()` is the host clock: the executor's `wall_start` plus `now()`,
//!   less the host clock's steps back so far ([`SimRt::step_wall_back`]), which the
//!   agent and the simulated Docker read alike, as they share a host;
//!   `reference_wall()` is a clock no step moves (another host's: Loki's).
//! - `rand_u64()` draws from its own stream ([`super::rng::streams::ENGINE`]), separate
//!   from the executor's scheduling choices and from the world's.
//! - `spawn_raw` never polls the future inline: it is queued and becomes runnable when
//!   the executor admits it after the current poll.
//! - `call_at` never runs the callback inline either: it runs from the executor's loop
//!   when the clock reaches its deadline (see [`super::timer`]).
//!
//! Everything lives behind [`Lock`]s confined to the thread that runs the seed (no atomic
//! read-modify-write): the simulation is single-threaded, the locks exist only because
//! the engine's futures must be `Send`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::rt::{BoxFuture, BoxTimer, Instant, Rt, TaskMeta, UnixNanos};

use super::lock::Lock;
use super::rng::{streams, SimRng};
use super::task::{PendingTask, SimTask, SimTaskId, TaskOrigin};
use super::timer::{CallAt, Sleep, Timers};
use super::waker::ReadyQueue;

/// State shared by the executor and every handle.
pub(crate) struct Shared {
    now: AtomicU64,
    wall_start: UnixNanos,
    /// The host clock's steps back so far (nanoseconds).
    wall_back: AtomicI64,
    /// A lock, not an `AtomicU64`: its `fetch_add` was an atomic RMW per spawn.
    next_task_id: Lock<SimTaskId>,
    pub(crate) timers: Lock<Timers>,
    entropy: Lock<SimRng>,
    pub(crate) spawns: Lock<Vec<PendingTask>>,
    /// Whether `spawns` may be non-empty: lets the executor skip the lock on every poll.
    pub(crate) spawns_pending: AtomicBool,
    pub(crate) ready: Arc<Lock<ReadyQueue>>,
    /// Called at every engine spawn, before the task is admitted (the oracle's
    /// per-change checks of the task budget; see [`super::Executor::set_spawn_hook`]).
    pub(crate) spawn_hook: Lock<Option<SpawnHook>>,
}

/// See [`super::Executor::set_spawn_hook`].
pub(crate) type SpawnHook = Box<dyn FnMut(&TaskMeta) + Send>;

impl Shared {
    pub(crate) fn new(seed: u64, wall_start: UnixNanos) -> Shared {
        Shared {
            now: AtomicU64::new(0),
            wall_start,
            wall_back: AtomicI64::new(0),
            next_task_id: Lock::new(0),
            timers: Lock::new(Timers::default()),
            entropy: Lock::new(SimRng::derive(seed, streams::ENGINE)),
            spawns: Lock::new(Vec::new()),
            spawns_pending: AtomicBool::new(false),
            ready: Arc::new(Lock::new(ReadyQueue::default())),
            spawn_hook: Lock::new(None),
        }
    }

    #[inline]
    pub(crate) fn now(&self) -> Instant {
        Instant::from_nanos(self.now.load(Ordering::Relaxed))
    }

    /// Move the clock forward (never back).
    pub(crate) fn advance_to(&self, nanos: u64) {
        let current = self.now.load(Ordering::Relaxed);
        if nanos > current {
            self.now.store(nanos, Ordering::Relaxed);
        }
    }

    pub(crate) fn spawn(&self, origin: TaskOrigin, future: BoxFuture<()>) -> SimTaskId {
        let id = {
            let mut next = self.next_task_id.lock();
            let id = *next;
            *next += 1;
            id
        };
        let task = SimTask { id, origin };
        self.spawns.lock().push(PendingTask { task, future });
        self.spawns_pending.store(true, Ordering::Relaxed);
        id
    }
}

/// The simulator's runtime handle. Clone it freely; [`super::Executor::rt`] hands it out
/// as an `Arc<dyn Rt>` for the engine.
#[derive(Clone)]
pub struct SimRt {
    pub(crate) shared: Arc<Shared>,
}

impl SimRt {
    pub fn now(&self) -> Instant {
        self.shared.now()
    }

    /// The host clock (see the module docs).
    pub fn wall(&self) -> UnixNanos {
        self.reference_wall() - self.shared.wall_back.load(Ordering::Relaxed)
    }

    /// A wall clock no host clock step moves (another host's).
    pub fn reference_wall(&self) -> UnixNanos {
        self.shared.wall_start + self.shared.now().as_nanos() as i64
    }

    /// The host clock steps back by `back` (an NTP correction): `wall()` reads that much
    /// earlier from now on, for the agent and the simulated Docker alike.
    pub fn step_wall_back(&self, back: Duration) {
        let back = i64::try_from(back.as_nanos()).unwrap_or(i64::MAX);
        let stepped = self.shared.wall_back.load(Ordering::Relaxed).saturating_add(back);
        self.shared.wall_back.store(stepped, Ordering::Relaxed);
    }

    pub fn wall_start(&self) -> UnixNanos {
        self.shared.wall_start
    }

    /// A future that completes once virtual time reaches `deadline`.
    pub fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        Sleep::new(self.shared.clone(), deadline)
    }

    /// A future that completes after `duration` of virtual time.
    pub fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.sleep_until(self.now() + duration)
    }

    /// Run `callback` when virtual time reaches `deadline`, without a task: a world
    /// model's event that needs no poll (a request arriving at the server). It fires
    /// with the timers, callbacks in (deadline, registration) order, each round's after
    /// its sleepers are woken; it runs from the executor's loop with no executor lock
    /// held, and is recorded in the trace digest (not counted as a poll). A deadline already reached fires at the
    /// executor's next timer round, never inline. Dropping the returned [`CallAt`]
    /// before it fires cancels it.
    pub fn call_at(&self, deadline: Instant, callback: impl FnOnce() + Send + 'static) -> CallAt {
        CallAt::new(self.shared.clone(), deadline, Box::new(callback))
    }

    /// [`Self::call_at`] `now() + duration`.
    pub fn call_after(&self, duration: Duration, callback: impl FnOnce() + Send + 'static) -> CallAt {
        self.call_at(self.now() + duration, callback)
    }

    /// Spawn a world-driver task (the simulator's own, not an engine task).
    pub fn spawn_world<F>(&self, name: &'static str, future: F) -> SimTaskId
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.shared.spawn(TaskOrigin::World(name), Box::pin(future))
    }
}

impl Rt for SimRt {
    fn now(&self) -> Instant {
        self.shared.now()
    }

    fn wall(&self) -> UnixNanos {
        SimRt::wall(self)
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(Sleep::new(self.shared.clone(), deadline))
    }

    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(Sleep::new(self.shared.clone(), deadline))
    }

    fn spawn_raw(&self, meta: TaskMeta, future: BoxFuture<()>) {
        if let Some(hook) = self.shared.spawn_hook.lock().as_mut() {
            hook(&meta);
        }
        self.shared.spawn(TaskOrigin::Engine(meta), future);
    }

    fn rand_u64(&self) -> u64 {
        self.shared.entropy.lock().next_u64()
    }
}
