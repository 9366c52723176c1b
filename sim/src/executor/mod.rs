//! The deterministic executor: one thread, virtual time, a seeded choice of what runs next.
//!
//! Owns: every task of a simulation run (engine tasks spawned through
//! [`engine::rt::Rt::spawn_raw`], world tasks spawned through [`Executor::spawn_world`]),
//! the virtual clock and the timers (see [`SimRt`]).
//!
//! ## Scheduling
//! [`Executor::run_until`] repeats: admit tasks spawned since the last poll; draw a
//! runnable task at random from the scheduler stream of the seed and poll it once. When
//! nothing is runnable, the clock jumps to the earliest live timer and every timer due
//! then fires in registration order: the sleeps wake their tasks, then the timer
//! callbacks ([`SimRt::call_at`]) run there and then, without a task or a poll. Time
//! never moves while something is runnable, so a poll takes zero virtual time.
//!
//! ## Promises
//! - Same seed, same program, same world: same sequence of polls and callbacks, same
//!   [`Executor::trace_digest`].
//! - A task's future is dropped as soon as it completes, or when [`Executor::drop_tasks`]
//!   (a crash of the capture daemon) or the executor's own drop removes it; it is never
//!   polled after that, and wakers it left behind are ignored.
//! - No allocation per poll: each task has one waker, built at spawn; the ready queue
//!   dedups wakes with a per-task flag.
//! - [`RunOutcome::Idle`] means nothing is runnable and no timer is left. Whether that is a
//!   deadlock depends on the work outstanding, which only the caller knows.
//! - A task that keeps itself runnable forever without letting time pass is reported as
//!   [`RunOutcome::Livelock`] rather than hanging the run.
//!
//! A task that panics unwinds out of `run_until`; the executor is then unusable (drop it).

mod confine;
mod lock;
mod rng;
mod rt;
mod task;
mod timer;
mod trace;
mod waker;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use engine::rt::{Instant, Rt, TaskMeta, UnixNanos};

pub(crate) use self::lock::Lock;
pub use self::rng::{splitmix64, streams, SimRng};
pub use self::rt::SimRt;
pub use self::task::{SimTask, SimTaskId, TaskLabel, TaskOrigin};
pub use self::timer::CallAt;

use self::rt::Shared;
use self::task::{PendingTask, TaskSlot};
use self::timer::Callback;
use self::trace::TraceDigest;
use self::waker::TaskWaker;

/// Why [`Executor::run_until`] (or [`Executor::run_until_stalled`]) returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Virtual time reached the deadline; tasks may still be runnable later.
    DeadlineReached,
    /// Nothing is runnable and no timer is left: only an outside wake (a world model
    /// poked from the driver) could make progress.
    Idle,
    /// (`run_until_stalled` only) nothing is runnable now, but timers remain.
    Stalled,
    /// More than [`Executor::set_polls_per_instant_max`] polls happened without virtual
    /// time moving: some task keeps waking itself.
    Livelock { at: Instant, polls: u64 },
}

/// What a timer callback is recorded as in the trace digest, xor its timer sequence
/// (task ids count up from zero, so they never meet it).
const CALLBACK_TRACE_ID: u64 = 1 << 63;

/// Default bound on polls at one virtual instant before reporting a livelock.
pub const POLLS_PER_INSTANT_MAX_DEFAULT: u64 = 2_000_000;

/// The single-threaded, virtual-time, seeded executor.
pub struct Executor {
    shared: Arc<Shared>,
    handle: SimRt,
    rt: Arc<dyn Rt>,
    slots: Vec<Option<TaskSlot>>,
    free_slots: Vec<u32>,
    scheduler: SimRng,
    polls: u64,
    callbacks: u64,
    digest: TraceDigest,
    live_engine: usize,
    live_world: usize,
    polls_per_instant_max: u64,
    /// Reused buffers, so that admitting spawns and firing timers do not allocate.
    admit_buffer: Vec<PendingTask>,
    fire_buffer: Vec<Waker>,
    call_buffer: Vec<(u64, Callback)>,
}

impl Executor {
    /// A new executor at virtual time zero, whose wall clock starts at `wall_start`.
    pub fn new(seed: u64, wall_start: UnixNanos) -> Executor {
        let shared = Arc::new(Shared::new(seed, wall_start));
        let handle = SimRt { shared: shared.clone() };
        let rt: Arc<dyn Rt> = Arc::new(handle.clone());
        Executor {
            shared,
            handle,
            rt,
            slots: Vec::new(),
            free_slots: Vec::new(),
            scheduler: SimRng::derive(seed, streams::SCHEDULER),
            polls: 0,
            callbacks: 0,
            digest: TraceDigest::default(),
            live_engine: 0,
            live_world: 0,
            polls_per_instant_max: POLLS_PER_INSTANT_MAX_DEFAULT,
            admit_buffer: Vec::new(),
            fire_buffer: Vec::new(),
            call_buffer: Vec::new(),
        }
    }

    /// The runtime for the engine (`Tasks::new(executor.rt())`).
    pub fn rt(&self) -> Arc<dyn Rt> {
        self.rt.clone()
    }

    /// The concrete handle, for world models and drivers (sleep, spawn_world, wall).
    pub fn handle(&self) -> SimRt {
        self.handle.clone()
    }

    pub fn now(&self) -> Instant {
        self.shared.now()
    }

    pub fn wall(&self) -> UnixNanos {
        self.handle.wall()
    }

    /// Spawn a world-driver task: polled like any other, but not an engine task.
    pub fn spawn_world<F>(&self, name: &'static str, future: F) -> SimTaskId
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn_world(name, future)
    }

    /// Call `hook` at every engine spawn (`Rt::spawn_raw`), before the task is admitted
    /// (replaces any previous hook). It must not spawn.
    pub fn set_spawn_hook(&self, hook: impl FnMut(&TaskMeta) + Send + 'static) {
        *self.shared.spawn_hook.lock() = Some(Box::new(hook));
    }

    /// Bound on polls at a single virtual instant before [`RunOutcome::Livelock`].
    pub fn set_polls_per_instant_max(&mut self, polls: u64) {
        self.polls_per_instant_max = polls.max(1);
    }

    /// Polls so far (the event count of the run).
    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Timer callbacks run so far ([`SimRt::call_at`]; not polls).
    pub fn callbacks(&self) -> u64 {
        self.callbacks
    }

    /// A hash of (virtual time, task id) over every poll so far, and of (virtual time,
    /// timer sequence) over every timer callback.
    pub fn trace_digest(&self) -> u64 {
        self.digest.value()
    }

    /// Timers (sleeps and callbacks) still waiting.
    pub fn timers_pending(&self) -> usize {
        self.shared.timers.lock().live()
    }

    /// Live engine tasks (spawned through `Rt::spawn_raw`, not finished, not dropped).
    pub fn live_engine_tasks(&self) -> usize {
        self.live_engine + self.count_pending(false)
    }

    /// Live world tasks.
    pub fn live_world_tasks(&self) -> usize {
        self.live_world + self.count_pending(true)
    }

    /// Every live task (admitted or just spawned), in spawn order.
    pub fn live_tasks(&self) -> Vec<SimTask> {
        let mut tasks: Vec<SimTask> = self.slots.iter().flatten().map(|slot| slot.task).collect();
        tasks.extend(self.shared.spawns.lock().iter().map(|pending| pending.task));
        tasks.sort_by_key(|task| task.id);
        tasks
    }

    /// Live tasks counted by label: engine tasks by (kind, spawn site), world by name.
    pub fn live_by_label(&self) -> BTreeMap<TaskLabel, usize> {
        let mut counts = BTreeMap::new();
        for task in self.live_tasks() {
            *counts.entry(task.label()).or_insert(0) += 1;
        }
        counts
    }

    /// A printable dump of live tasks by label, for failure reports.
    pub fn dump_live_tasks(&self) -> String {
        let mut out = String::new();
        for (label, count) in self.live_by_label() {
            out.push_str(&format!("{count:>6}  {label}\n"));
        }
        out
    }

    /// Run until virtual time would pass `deadline` (then the clock is set to `deadline`),
    /// until nothing can happen any more ([`RunOutcome::Idle`]; the clock stays at the
    /// last event), or until a livelock is detected.
    pub fn run_until(&mut self, deadline: Instant) -> RunOutcome {
        self.run(Some(deadline.as_nanos()), None)
    }

    /// Run `future` as a world task until it completes (other tasks run meanwhile, and
    /// virtual time passes as needed), and return its output. Returns `Err` with the
    /// outcome if the run went idle or livelocked before the future completed.
    pub fn block_on<F>(&mut self, future: F) -> Result<F::Output, RunOutcome>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let output = Arc::new(std::sync::Mutex::new(None));
        let done = Arc::new(AtomicBool::new(false));
        let (output_in_task, done_in_task) = (output.clone(), done.clone());
        self.spawn_world("block_on", async move {
            let value = future.await;
            *output_in_task.lock().unwrap() = Some(value);
            done_in_task.store(true, Ordering::Relaxed);
        });
        let outcome = self.run(Some(u64::MAX), Some(&done));
        let value = output.lock().unwrap().take();
        value.ok_or(outcome)
    }

    /// Like [`Self::run_until`], but if the run goes [`RunOutcome::Idle`] the clock
    /// still moves on to `deadline` (for drivers that act from outside the executor and
    /// want time to pass although no task waits for it). Returns `run_until`'s outcome.
    pub fn advance_to(&mut self, deadline: Instant) -> RunOutcome {
        let outcome = self.run_until(deadline);
        if outcome == RunOutcome::Idle {
            self.shared.advance_to(deadline.as_nanos());
        }
        outcome
    }

    /// [`Self::advance_to`] `now() + duration`.
    pub fn advance_for(&mut self, duration: Duration) -> RunOutcome {
        let deadline = self.now() + duration;
        self.advance_to(deadline)
    }

    /// [`Self::run_until`] `now() + duration`.
    pub fn run_for(&mut self, duration: Duration) -> RunOutcome {
        let deadline = self.now() + duration;
        self.run_until(deadline)
    }

    /// Poll until nothing is runnable, without moving the clock. Returns
    /// [`RunOutcome::Stalled`] (timers remain), [`RunOutcome::Idle`] (none remain) or
    /// [`RunOutcome::Livelock`].
    pub fn run_until_stalled(&mut self) -> RunOutcome {
        self.run(None, None)
    }

    /// The scheduling loop. `stop` (checked after every poll) ends the run early with
    /// `DeadlineReached`.
    fn run(&mut self, deadline: Option<u64>, stop: Option<&AtomicBool>) -> RunOutcome {
        let mut polls_at_instant: u64 = 0;
        loop {
            self.admit_spawns();
            let next = self.shared.ready.lock().pop_random(&mut self.scheduler);
            if let Some(slot) = next {
                self.poll_slot(slot);
                if stop.is_some_and(|stop| stop.load(Ordering::Relaxed)) {
                    return RunOutcome::DeadlineReached;
                }
                polls_at_instant += 1;
                if polls_at_instant > self.polls_per_instant_max {
                    return RunOutcome::Livelock { at: self.now(), polls: polls_at_instant };
                }
                continue;
            }
            // Nothing runnable (and nothing spawned: admitting ran just before the draw,
            // and no task code has run since). Move the clock to the next timer.
            let limit = deadline.unwrap_or(0);
            {
                let mut timers = self.shared.timers.lock();
                match timers.next_timer() {
                    None => return RunOutcome::Idle,
                    Some(_) if deadline.is_none() => return RunOutcome::Stalled,
                    Some(next) if next.deadline > limit => {
                        self.shared.advance_to(limit);
                        return RunOutcome::DeadlineReached;
                    }
                    Some(next) => {
                        if next.deadline > self.shared.now().as_nanos() {
                            polls_at_instant = 0;
                        }
                        self.shared.advance_to(next.deadline);
                        timers.fire_due(next, &mut self.fire_buffer, &mut self.call_buffer);
                    }
                }
            }
            // Wake, then call, outside the timers' lock, each in (deadline, registration)
            // order. A callback may register timers (they fire on a later round) and wake
            // tasks (queued after the sleepers woken here).
            for waker in self.fire_buffer.drain(..) {
                waker.wake();
            }
            if !self.call_buffer.is_empty() {
                self.run_callbacks(&mut polls_at_instant);
                if polls_at_instant > self.polls_per_instant_max {
                    return RunOutcome::Livelock { at: self.now(), polls: polls_at_instant };
                }
            }
        }
    }

    /// Run the timer callbacks just fired (out of line: most rounds only wake).
    #[inline(never)]
    fn run_callbacks(&mut self, polls_at_instant: &mut u64) {
        let now = self.shared.now().as_nanos();
        for (sequence, callback) in self.call_buffer.drain(..) {
            // Callbacks that keep registering callbacks for the current instant are a
            // livelock too.
            *polls_at_instant += 1;
            self.callbacks += 1;
            self.digest.record(now, CALLBACK_TRACE_ID ^ sequence);
            callback();
        }
    }

    #[inline]
    fn poll_slot(&mut self, slot: u32) {
        let now = self.shared.now().as_nanos();
        let entry = self.slots[slot as usize].as_mut().expect("a queued slot holds a task");
        self.polls += 1;
        self.digest.record(now, entry.task.id);
        let mut cx = Context::from_waker(&entry.waker);
        if entry.future.as_mut().poll(&mut cx).is_ready() {
            let finished = self.remove_slot(slot);
            drop(finished);
        }
    }

    /// Take the task out of its slot and retire the slot's wakers. The caller drops the
    /// returned task (its future) when no executor state is borrowed.
    fn remove_slot(&mut self, slot: u32) -> TaskSlot {
        let entry = self.slots[slot as usize].take().expect("slot holds a task");
        self.shared.ready.lock().retire(slot);
        self.free_slots.push(slot);
        if entry.task.is_world() {
            self.live_world -= 1;
        } else {
            self.live_engine -= 1;
        }
        entry
    }

    fn count_pending(&self, world: bool) -> usize {
        let spawns = self.shared.spawns.lock();
        spawns.iter().filter(|pending| pending.task.is_world() == world).count()
    }

    /// Admit the tasks spawned since the last call. The check is inlined into the poll
    /// loop and the work kept out of line: most polls spawn nothing, and the call alone
    /// cost about 19 instructions per poll (6.9 M of 1,603 M on seed 1, 356 k calls).
    #[inline(always)]
    fn admit_spawns(&mut self) {
        if self.shared.spawns_pending.load(Ordering::Relaxed) {
            self.admit_pending_spawns();
        }
    }

    #[inline(never)]
    fn admit_pending_spawns(&mut self) {
        {
            let mut spawns = self.shared.spawns.lock();
            self.shared.spawns_pending.store(false, Ordering::Relaxed);
            if spawns.is_empty() {
                return;
            }
            std::mem::swap(&mut *spawns, &mut self.admit_buffer);
        }
        let mut admitted = std::mem::take(&mut self.admit_buffer);
        for pending in admitted.drain(..) {
            let slot = match self.free_slots.pop() {
                Some(slot) => slot,
                None => {
                    self.slots.push(None);
                    (self.slots.len() - 1) as u32
                }
            };
            let generation = self.shared.ready.lock().activate(slot);
            let waker = TaskWaker::new_waker(slot, generation, self.shared.ready.clone());
            if pending.task.is_world() {
                self.live_world += 1;
            } else {
                self.live_engine += 1;
            }
            self.slots[slot as usize] = Some(TaskSlot::new(pending, waker));
        }
        self.admit_buffer = admitted;
    }

    /// Drop, at once and without polling them again, the futures of every live engine
    /// task whose meta matches: a crash of the capture daemon. World tasks are never
    /// dropped. Destructors run after all matching tasks are out of the executor, in
    /// spawn order. Returns how many tasks were dropped.
    pub fn drop_tasks(&mut self, mut matches: impl FnMut(&TaskMeta) -> bool) -> usize {
        self.admit_spawns();
        let mut chosen: Vec<(SimTaskId, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, entry)| {
                let entry = entry.as_ref()?;
                let meta = entry.task.meta()?;
                matches(&meta).then_some((entry.task.id, slot as u32))
            })
            .collect();
        chosen.sort_unstable();
        let removed: Vec<TaskSlot> = chosen.iter().map(|&(_, slot)| self.remove_slot(slot)).collect();
        let count = removed.len();
        drop(removed);
        count
    }

    /// Drop every engine task (a crash that kills the whole capture daemon).
    pub fn drop_engine_tasks(&mut self) -> usize {
        self.drop_tasks(|_| true)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Futures and callbacks hold `SimRt`s (and so `Shared`), and `Shared` holds
        // pending spawns and timer callbacks: drop everything explicitly so that no cycle
        // keeps them alive. Destructors may spawn or register again; loop until nothing
        // is left.
        self.fire_buffer.clear();
        self.call_buffer.clear();
        loop {
            let pending = std::mem::take(&mut *self.shared.spawns.lock());
            let tasks: Vec<TaskSlot> = self.slots.iter_mut().filter_map(Option::take).collect();
            let timers = self.shared.timers.lock().cancel_all();
            if pending.is_empty() && tasks.is_empty() && timers.is_empty() {
                break;
            }
            drop(tasks);
            drop(pending);
            drop(timers);
        }
        // The oracle's hook holds the world, and the world holds runtimes: without this
        // every run's world leaked (~0.7 MB a run, 2.3 GB over the default sweep).
        drop(self.shared.spawn_hook.lock().take());
    }
}
