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

use std::sync::Arc;
use std::task::Wake;

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

/// The waker of one task: created at spawn, reused for every poll.
pub(crate) struct TaskWaker {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) ready: Arc<Lock<ReadyQueue>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.lock().wake(self.slot, self.generation);
    }
}
