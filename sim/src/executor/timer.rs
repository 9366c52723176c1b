//! Virtual-time timers: a heap of deadlines and the `sleep_until` future.
//!
//! Owns: every pending timer of the simulation. A timer is a slot holding the waker of
//! the task that sleeps, plus a heap entry `(deadline, sequence, slot)`; the sequence
//! orders timers with equal deadlines by registration, so firing order is deterministic.
//!
//! Promises:
//! - A [`Sleep`] completes at the first poll where `now >= deadline`; it registers a
//!   timer only if it has to wait.
//! - Dropping a [`Sleep`] cancels its timer at once (the slot is freed; the heap entry
//!   is skipped lazily), so [`Timers::live`] counts exactly the sleeps still waiting and
//!   the executor's idle/deadlock verdict is never delayed by dead timers.
//! - The executor advances the clock only to [`Timers::next_deadline`], never past a
//!   live timer, and time never goes backwards.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use engine::rt::Instant;

use super::rt::Shared;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    sequence: u64,
}

struct TimerSlot {
    /// Sequence of the timer occupying the slot; `None` when the slot is free.
    sequence: Option<u64>,
    waker: Option<Waker>,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slots: Vec<TimerSlot>,
    free: Vec<u32>,
    next_sequence: u64,
    live: usize,
}

impl Timers {
    pub(crate) fn register(&mut self, deadline: u64, waker: Waker) -> TimerKey {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                debug_assert!(entry.sequence.is_none());
                entry.sequence = Some(sequence);
                entry.waker = Some(waker);
                slot
            }
            None => {
                self.slots.push(TimerSlot { sequence: Some(sequence), waker: Some(waker) });
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((deadline, sequence, slot)));
        self.live += 1;
        TimerKey { slot, sequence }
    }

    /// Replace the waker of a live timer (the sleep moved to another task).
    pub(crate) fn update_waker(&mut self, key: TimerKey, waker: &Waker) {
        let entry = &mut self.slots[key.slot as usize];
        if entry.sequence == Some(key.sequence) {
            match &entry.waker {
                Some(current) if current.will_wake(waker) => {}
                _ => entry.waker = Some(waker.clone()),
            }
        }
    }

    /// Whether the timer still waits (has neither fired nor been cancelled).
    pub(crate) fn is_live(&self, key: TimerKey) -> bool {
        self.slots[key.slot as usize].sequence == Some(key.sequence)
    }

    /// Cancel a timer; a no-op if it already fired.
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        let entry = &mut self.slots[key.slot as usize];
        if entry.sequence == Some(key.sequence) {
            entry.sequence = None;
            entry.waker = None;
            self.free.push(key.slot);
            self.live -= 1;
            if self.live == 0 {
                self.heap.clear();
            }
        }
    }

    /// Number of timers still waiting.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The earliest deadline of a live timer.
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        while let Some(Reverse((deadline, sequence, slot))) = self.heap.peek().copied() {
            if self.slots[slot as usize].sequence == Some(sequence) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Remove every live timer due at or before `now` and push its waker to `wakers`,
    /// in (deadline, registration) order.
    pub(crate) fn fire_due(&mut self, now: u64, wakers: &mut Vec<Waker>) {
        while let Some(Reverse((deadline, sequence, slot))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            let entry = &mut self.slots[slot as usize];
            if entry.sequence == Some(sequence) {
                entry.sequence = None;
                if let Some(waker) = entry.waker.take() {
                    wakers.push(waker);
                }
                self.free.push(slot);
                self.live -= 1;
            }
        }
    }
}

/// The future behind [`engine::rt::Rt::sleep_until`] in the simulator.
pub(crate) struct Sleep {
    shared: Arc<Shared>,
    deadline: Instant,
    key: Option<TimerKey>,
}

impl Sleep {
    pub(crate) fn new(shared: Arc<Shared>, deadline: Instant) -> Sleep {
        Sleep { shared, deadline, key: None }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.now() >= self.deadline {
            // The clock never passes a live timer without firing it (it jumps to the
            // earliest deadline and fires everything due at once), so a registered timer
            // has fired by now: nothing to cancel, no lock to take.
            if let Some(key) = self.key.take() {
                debug_assert!(!self.shared.timers.lock().is_live(key));
            }
            return Poll::Ready(());
        }
        let mut timers = self.shared.timers.lock();
        match self.key {
            Some(key) if timers.is_live(key) => timers.update_waker(key, cx.waker()),
            // Not registered yet, or fired early? Fired means now >= deadline, handled
            // above, so a dead key can only be stale: register anew.
            _ => {
                let key = timers.register(self.deadline.as_nanos(), cx.waker().clone());
                drop(timers);
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // A poisoned lock means a task panicked; do not panic again while unwinding.
            self.shared.timers.lock().cancel(key);
        }
    }
}
