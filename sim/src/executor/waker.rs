//! The ready queue and the per-task wakers that feed it.
//!
//! Owns: which task slots are runnable. A task's [`TaskWaker`] is created once, when the
//! task is spawned, and reused for every poll, so waking and polling allocate nothing.
//!
//! Promises:
//! - A task is queued at most once however often it is woken (a per-slot flag dedups).
//! - A waker that outlives its task (kept by a channel or a world model) is harmless:
//!   each slot has a generation, bumped when the task finishes or is dropped, and a wake
//!   carrying an old generation is ignored. A queue entry left behind by a finished
//!   task is skipped when it is drawn.
//! - The order of the queue depends only on the order of wakes, so with a seeded choice
//!   of the next entry the schedule is a function of the seed.
//! - A task's waker does no atomic read-modify-write: it is confined to the thread that
//!   spawned the executor (see [`TaskWaker`]); cloning, waking or dropping it on another
//!   thread aborts the process before anything is touched.

use std::cell::Cell;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::confine::ThreadToken;

use super::lock::Lock;
use super::rng::SimRng;

#[derive(Clone, Copy, Debug, Default)]
struct SlotState {
    generation: u32,
    queued: bool,
}

/// Runnable task slots, drawn in a seeded random order.
#[derive(Debug, Default)]
pub(crate) struct ReadyQueue {
    /// `(slot, generation)` of each runnable task; may hold stale entries.
    entries: Vec<(u32, u32)>,
    slots: Vec<SlotState>,
}

impl ReadyQueue {
    /// Make `slot` hold a new task and queue it; returns the generation its waker
    /// must carry.
    pub(crate) fn activate(&mut self, slot: u32) -> u32 {
        let index = slot as usize;
        if index >= self.slots.len() {
            self.slots.resize(index + 1, SlotState::default());
        }
        let generation = self.slots[index].generation;
        self.slots[index].queued = false;
        self.wake(slot, generation);
        generation
    }

    /// The task in `slot` is gone: ignore its wakers from now on.
    pub(crate) fn retire(&mut self, slot: u32) {
        let state = &mut self.slots[slot as usize];
        state.generation = state.generation.wrapping_add(1);
        state.queued = false;
    }

    #[inline]
    pub(crate) fn wake(&mut self, slot: u32, generation: u32) {
        let Some(state) = self.slots.get_mut(slot as usize) else { return };
        if state.generation == generation && !state.queued {
            state.queued = true;
            self.entries.push((slot, generation));
        }
    }

    /// Remove and return a random runnable slot, or `None` when nothing is runnable.
    /// Clears the slot's flag, so a wake during the coming poll queues it again.
    #[inline]
    pub(crate) fn pop_random(&mut self, rng: &mut SimRng) -> Option<u32> {
        while !self.entries.is_empty() {
            let pick = if self.entries.len() == 1 { 0 } else { rng.index(self.entries.len()) };
            let (slot, generation) = self.entries.swap_remove(pick);
            let state = &mut self.slots[slot as usize];
            if state.generation == generation && state.queued {
                state.queued = false;
                return Some(slot);
            }
        }
        None
    }
}

/// The waker of one task: created at spawn, reused for every poll, shared by every clone.
///
/// It was an `Arc<TaskWaker>` through std's `Wake`: each clone an atomic increment, each
/// drop (and by-value wake) an atomic decrement, and the ready queue behind a lock with
/// an atomic swap. A time profile of the sweep (perf, cpu-clock) put 1.94 % of all time
/// in `raw_waker::wake`, 76 % of it at or after its `lock` instructions, and 0.42 % in
/// `raw_waker::clone_waker` (98 %). This hand-written `RawWaker` counts references in a
/// `Cell` instead, and every entry of its vtable first checks that it runs on the thread
/// that created the waker ([`ThreadToken`]); on any other thread it aborts, before it
/// reads or writes anything but the immutable `owner`.
pub(crate) struct TaskWaker {
    /// The thread that created this waker: the only one that may use it. Never changes.
    owner: ThreadToken,
    /// How many `Waker`s point here. Read and written on the owner thread only.
    refs: Cell<usize>,
    slot: u32,
    generation: u32,
    ready: Arc<Lock<ReadyQueue>>,
}

impl TaskWaker {
    /// The waker of the task in `slot` (of `generation`), owned by the calling thread.
    pub(crate) fn new_waker(slot: u32, generation: u32, ready: Arc<Lock<ReadyQueue>>) -> Waker {
        let waker = Box::new(TaskWaker { owner: ThreadToken::current(), refs: Cell::new(1), slot, generation, ready });
        let data = Box::into_raw(waker).cast_const().cast::<()>();
        // SAFETY: `data` is a live, uniquely owned `TaskWaker` whose count (1) is this
        // `Waker`'s reference; `VTABLE`'s functions uphold the `RawWaker` contract (see
        // each).
        unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
    }

    /// Whether the calling thread may use this waker (what every vtable entry checks).
    #[inline(always)]
    fn on_owner_thread(&self) -> bool {
        self.owner.is_current()
    }

    #[inline]
    fn wake_by_ref(&self) {
        self.ready.lock().wake(self.slot, self.generation);
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

/// The `TaskWaker` behind `data`, after checking that the caller is its owner thread.
///
/// # Safety
/// `data` comes from a `Waker` built by [`TaskWaker::new_waker`] that is still alive (it
/// holds one of the counted references), so the `TaskWaker` is alive.
#[inline(always)]
unsafe fn confined<'a>(data: *const ()) -> &'a TaskWaker {
    // SAFETY: alive (the caller's contract). Only `owner`, which never changes, is read
    // before the check, so a foreign thread reads nothing that anyone writes.
    let waker = unsafe { &*data.cast::<TaskWaker>() };
    if !waker.on_owner_thread() {
        foreign_thread();
    }
    waker
}

/// A task's waker used on another thread: a bug in the simulator. Aborts: the vtable's
/// functions cannot unwind safely (a drop during unwinding would abort anyway), and
/// touching the count from here would be a data race.
#[cold]
#[inline(never)]
fn foreign_thread() -> ! {
    eprintln!("capture-sim: a task waker was used by a thread other than the one running its executor; aborting");
    std::process::abort();
}

// SAFETY (all four): `data` is from a live `Waker` of `VTABLE` (the `RawWaker`
// contract), and `confined` stopped any thread but the owner, so `refs` is touched by
// one thread only. The count is the number of live `Waker`s pointing here: `clone` adds
// one, `drop` and `wake` (which consumes its `Waker`) remove one, and the `TaskWaker` is
// freed exactly when it reaches zero, by the owner thread that allocated it.
unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: see above.
    let waker = unsafe { confined(data) };
    let Some(refs) = waker.refs.get().checked_add(1) else { std::process::abort() };
    waker.refs.set(refs);
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: see above.
    unsafe {
        confined(data).wake_by_ref();
        release(data);
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: see above.
    unsafe { confined(data) }.wake_by_ref();
}

unsafe fn drop(data: *const ()) {
    // SAFETY: see above.
    unsafe {
        confined(data);
        release(data);
    }
}

/// Give back one counted reference, freeing the `TaskWaker` with the last.
///
/// # Safety
/// `data` is that of a `Waker` of `VTABLE` that is going away, and the caller checked
/// with [`confined`] that it runs on the owner thread.
#[inline(always)]
unsafe fn release(data: *const ()) {
    let data = data.cast::<TaskWaker>();
    // SAFETY: alive (the caller's `Waker` holds a reference), and on the owner thread.
    let refs = unsafe {
        let refs = &(*data).refs;
        let left = refs.get() - 1;
        refs.set(left);
        left
    };
    if refs == 0 {
        // SAFETY: the last reference is gone, and no reference into the `TaskWaker` is
        // alive; the box came from `new_waker`.
        std::mem::drop(unsafe { Box::from_raw(data.cast_mut()) });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Lock, ReadyQueue, TaskWaker};
    use crate::executor::SimRng;

    #[test]
    fn clones_wake_alike_and_the_last_drop_frees() {
        let ready = Arc::new(Lock::new(ReadyQueue::default()));
        let generation = ready.lock().activate(0);
        assert_eq!(ready.lock().pop_random(&mut SimRng::new(1)), Some(0));
        let waker = TaskWaker::new_waker(0, generation, ready.clone());
        let clone = waker.clone();
        assert!(clone.will_wake(&waker));
        assert_eq!(Arc::strong_count(&ready), 2);
        clone.wake();
        waker.wake_by_ref();
        assert_eq!(ready.lock().pop_random(&mut SimRng::new(1)), Some(0), "queued once");
        assert_eq!(ready.lock().pop_random(&mut SimRng::new(1)), None);
        drop(waker);
        assert_eq!(Arc::strong_count(&ready), 1, "the last waker freed its TaskWaker");
    }

    #[test]
    fn the_check_refuses_another_thread() {
        let ready = Arc::new(Lock::new(ReadyQueue::default()));
        let waker = TaskWaker::new_waker(0, 0, ready);
        // SAFETY: `waker` is alive and was built by `new_waker`.
        let task_waker = unsafe { &*waker.data().cast::<TaskWaker>() };
        assert!(task_waker.on_owner_thread());
        let owner = task_waker.owner;
        assert!(!std::thread::spawn(move || owner.is_current()).join().unwrap());
    }

    /// A waker woken on another thread aborts the process: run in a child process (this
    /// test binary again, with `CONFINE_ABORT_CHILD` set), which must die of SIGABRT.
    #[test]
    fn a_wake_on_another_thread_aborts() {
        if std::env::var_os("CONFINE_ABORT_CHILD").is_some() {
            let waker = TaskWaker::new_waker(0, 0, Arc::new(Lock::new(ReadyQueue::default())));
            let _ = std::thread::spawn(move || waker.wake()).join();
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "executor::waker::tests::a_wake_on_another_thread_aborts", "--nocapture"])
            .env("CONFINE_ABORT_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "the child survived: {stderr}");
        assert!(stderr.contains("a task waker was used by a thread other than"), "{stderr}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(output.status.signal(), Some(6), "SIGABRT");
        }
    }
}
