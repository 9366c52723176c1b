//! Virtual-time timers: a queue of deadlines, the `sleep_until` future, and timer
//! callbacks.
//!
//! Owns: every pending timer of the simulation. A timer is a slot holding what to do
//! when it fires — wake the task that sleeps, or run a callback ([`CallAt`]) — plus a
//! queue entry `(deadline, sequence, slot)` (packed in one `u128`: [`QueueEntry`]); the
//! sequence orders timers with equal deadlines by registration, so firing order is
//! deterministic (the queue, [`DeadlineQueue`], is a short sorted vector plus a heap).
//! Of the timers that fire
//! together, the executor wakes the sleepers first, then runs the callbacks.
//!
//! Slots are reused; which slot a timer gets never matters to the order (sequences are
//! unique). A reset sleep keeps its slot, with its waker, for its next registration
//! ([`Hold::Parked`]): that only saves a clone and a drop of the waker.
//!
//! Promises:
//! - A [`Sleep`] completes at the first poll where `now >= deadline`; it registers a
//!   timer only if it has to wait.
//! - Dropping or resetting a [`Sleep`] cancels its timer at once (the slot is freed or
//!   parked; the queue
//!   entry is skipped lazily, or dropped by [`Timers::compact`] once dead entries
//!   outnumber live ones), so [`Timers::live`] counts exactly the sleeps and callbacks
//!   still waiting and the executor's idle/deadlock verdict is never delayed by dead
//!   timers.
//! - A callback runs once, when the clock reaches its deadline, in the executor's loop
//!   and outside every executor lock, unless its [`CallAt`] was cancelled or dropped
//!   first. It costs no task and no poll.
//! - The executor advances the clock only to the deadline of [`Timers::next_timer`],
//!   never past a live timer, and time never goes backwards.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, RawWakerVTable, Waker};

use engine::rt::Instant;

use super::rt::Shared;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    sequence: u64,
}

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Wake the task that sleeps.
    Wake(Waker),
    /// Run a callback ([`super::SimRt::call_at`]).
    Call(Callback),
}

pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// [`TimerSlot::sequence`] of a free slot (sequences count up from zero).
const FREE: u64 = u64::MAX;

/// A queue entry `(deadline, sequence, slot)` packed as `deadline << 64 | sequence << 24 |
/// slot`: ordered by deadline, then sequence (unique, so the slot never decides), as the
/// tuple was, but compared as one integer and moved as 16 bytes instead of 24. Seed 1
/// (callgrind, 150 k timers): 1,596.9 M → 1,594.8 M Ir in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct QueueEntry(u128);

const SLOT_BITS: u32 = 24;

impl QueueEntry {
    fn new(deadline: u64, sequence: u64, slot: u32) -> QueueEntry {
        assert!(slot < 1 << SLOT_BITS && sequence < 1 << (64 - SLOT_BITS), "timer slot or sequence out of range");
        QueueEntry(u128::from(deadline) << 64 | u128::from(sequence << SLOT_BITS | u64::from(slot)))
    }

    /// `(deadline, sequence, slot)`.
    fn parts(self) -> (u64, u64, u32) {
        let low = self.0 as u64;
        ((self.0 >> 64) as u64, low >> SLOT_BITS, (low & ((1 << SLOT_BITS) - 1)) as u32)
    }
}

/// The pending queue entries, in two priority queues whose union is the queue: `near`, a
/// vector sorted by descending [`QueueEntry`] (its last entry is its earliest), and
/// `far`, a min-heap. A new timer usually lands among the last few entries of `near`
/// (it is due before most of those waiting), and goes there by shifting them; one that
/// would shift more than [`SHIFT_MAX`] goes to `far` instead (a starved run holds many
/// timers, and inserting into a long vector moves too much). The next timer is the
/// earlier of the two minimums. It replaced a single `BinaryHeap`, whose pops always
/// sank to the bottom and whose pushes mostly climbed to the top.
/// Callgrind, in all (with [`Timers::compact`]): seed 85 346.74 M → 344.13 M Ir, seed 19
/// 914.76 M → 904.02 M Ir (a plain sorted vector: 342.75 M, but 946.20 M).
#[derive(Default)]
struct DeadlineQueue {
    near: Vec<QueueEntry>,
    far: BinaryHeap<Reverse<QueueEntry>>,
}

/// The earliest entry of a [`DeadlineQueue`], and whether `far` holds it.
#[derive(Clone, Copy)]
struct Head {
    entry: QueueEntry,
    far: bool,
}

/// Dead entries tolerated in the queue beyond one per live timer before
/// [`Timers::compact`] drops them. Small: a dead entry left in the heap costs a pop
/// (~130 instructions) when it surfaces, more than its share of a compaction. Callgrind,
/// 32 -> 4: seed 2 329.32 M -> 329.32 M, seed 3 372.19 M -> 372.17 M, seed 19 846.28 M
/// -> 845.90 M, seeds 100..109 2,230.14 M -> 2,229.73 M (8 and 16 saved less).
const COMPACT_SLACK: usize = 4;

/// How many entries of `near` an insertion may shift; past that it goes to `far`.
const SHIFT_MAX: usize = 8;

impl DeadlineQueue {
    #[cfg(test)]
    fn peek(&self) -> Option<QueueEntry> {
        self.head().map(|head| head.entry)
    }

    /// The earliest entry, and which of the two queues holds it.
    #[inline]
    fn head(&self) -> Option<Head> {
        match (self.near.last(), self.far.peek()) {
            (Some(&near), Some(&Reverse(far))) if far < near => Some(Head { entry: far, far: true }),
            (Some(&near), _) => Some(Head { entry: near, far: false }),
            (None, far) => far.map(|&Reverse(far)| Head { entry: far, far: true }),
        }
    }

    /// Remove the earliest entry, `head` (what [`Self::head`] returned, nothing pushed or
    /// popped since). Most are `near`'s, a decrement inlined into the caller; only the
    /// heap's pop is a call (it was all one call, which compared the two minimums again:
    /// callgrind seed 2 329.56 M -> 329.32 M, seed 3 372.70 M -> 372.19 M, seed 19
    /// 846.82 M -> 846.28 M).
    #[inline(always)]
    fn pop(&mut self, head: Head) {
        if head.far {
            self.pop_far();
        } else {
            self.near.pop();
        }
    }

    #[inline(never)]
    fn pop_far(&mut self) {
        self.far.pop();
    }

    fn clear(&mut self) {
        self.near.clear();
        self.far.clear();
    }

    fn len(&self) -> usize {
        self.near.len() + self.far.len()
    }

    /// Keep only the entries `keep` accepts (orders are kept: the vector stays sorted, and
    /// the heap is rebuilt).
    fn retain(&mut self, mut keep: impl FnMut(QueueEntry) -> bool) {
        self.near.retain(|&entry| keep(entry));
        self.far.retain(|&Reverse(entry)| keep(entry));
    }

    /// Inlined into every registration, whatever the compiler weighs (callgrind: seed 2
    /// 351.23 M -> 350.81 M, seed 3 398.38 M -> 397.71 M, seed 19 858.90 M -> 857.19 M).
    #[inline(always)]
    fn push(&mut self, entry: QueueEntry) {
        let near = &mut self.near;
        let len = near.len();
        if len >= SHIFT_MAX && near[len - SHIFT_MAX] < entry {
            self.far.push(Reverse(entry));
            return;
        }
        near.push(entry);
        let mut at = len;
        while at > 0 && near[at - 1] < entry {
            near[at] = near[at - 1];
            at -= 1;
        }
        near[at] = entry;
    }
}

struct TimerSlot {
    /// Sequence of the timer occupying the slot; [`FREE`] when the slot is free.
    sequence: u64,
    action: Option<TimerAction>,
}

#[derive(Default)]
pub(crate) struct Timers {
    queue: DeadlineQueue,
    slots: Vec<TimerSlot>,
    free: Vec<u32>,
    next_sequence: u64,
    live: usize,
}

impl Timers {
    pub(crate) fn register(&mut self, deadline: u64, waker: Waker) -> TimerKey {
        self.insert(deadline, TimerAction::Wake(waker))
    }

    /// Register a callback to run when the clock reaches `deadline`.
    pub(crate) fn register_call(&mut self, deadline: u64, callback: Callback) -> TimerKey {
        self.insert(deadline, TimerAction::Call(callback))
    }

    /// Inlined into both callers: the call's prologue and epilogue were a fifth of it
    /// (callgrind: seed 2 352.13 M -> 351.23 M, seed 3 399.81 M -> 398.38 M, seed 19
    /// 860.91 M -> 858.90 M).
    #[inline(always)]
    fn insert(&mut self, deadline: u64, action: TimerAction) -> TimerKey {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let action = Some(action);
        let slot = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                debug_assert!(entry.sequence == FREE);
                entry.sequence = sequence;
                entry.action = action;
                slot
            }
            None => {
                self.slots.push(TimerSlot { sequence, action });
                (self.slots.len() - 1) as u32
            }
        };
        self.queue.push(QueueEntry::new(deadline, sequence, slot));
        self.live += 1;
        TimerKey { slot, sequence }
    }

    /// Replace the waker of a live timer (the sleep moved to another task). Returns
    /// the identity of the waker the timer holds now.
    pub(crate) fn update_waker(&mut self, key: TimerKey, waker: &Waker) -> WakerIdentity {
        let entry = &mut self.slots[key.slot as usize];
        debug_assert!(entry.sequence == key.sequence, "the timer is live");
        wake_alike(&mut entry.action, waker)
    }

    /// Cancel a live timer but keep its slot, and the waker in it, for the owner's next
    /// registration ([`Self::rearm`]); returns `false` (and keeps nothing) if the timer
    /// already fired. Counts as a cancellation: the queue entry is dead, `live` drops.
    /// A parked slot is the owner's until [`Self::rearm`] or [`Self::release`].
    pub(crate) fn park(&mut self, key: TimerKey) -> bool {
        let entry = &mut self.slots[key.slot as usize];
        if entry.sequence != key.sequence {
            return false;
        }
        entry.sequence = FREE;
        self.dead_one();
        true
    }

    /// Register a timer in a slot parked by [`Self::park`], as [`Self::register`] would
    /// (same sequence, same queue entry), keeping the slot's waker if `waker` wakes alike.
    /// Returns the key and the identity of the waker the timer holds.
    pub(crate) fn rearm(&mut self, slot: u32, deadline: u64, waker: &Waker) -> (TimerKey, WakerIdentity) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let entry = &mut self.slots[slot as usize];
        debug_assert!(entry.sequence == FREE, "a parked slot");
        entry.sequence = sequence;
        let identity = wake_alike(&mut entry.action, waker);
        self.queue.push(QueueEntry::new(deadline, sequence, slot));
        self.live += 1;
        (TimerKey { slot, sequence }, identity)
    }

    /// Free a slot parked by [`Self::park`]; returns its action for the caller to drop
    /// outside the lock.
    #[must_use = "drop the action outside the timers' lock"]
    pub(crate) fn release(&mut self, slot: u32) -> Option<TimerAction> {
        let entry = &mut self.slots[slot as usize];
        debug_assert!(entry.sequence == FREE, "a parked slot");
        self.free.push(slot);
        entry.action.take()
    }

    /// Whether the timer still waits (has neither fired nor been cancelled).
    pub(crate) fn is_live(&self, key: TimerKey) -> bool {
        self.slots[key.slot as usize].sequence == key.sequence
    }

    /// Cancel a timer; a no-op if it already fired. Returns what it would have done, for
    /// the caller to drop once the timers' lock is released (a callback may own
    /// anything, even the last handle on the executor's shared state).
    #[must_use = "drop the action outside the timers' lock"]
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<TimerAction> {
        let entry = &mut self.slots[key.slot as usize];
        if entry.sequence != key.sequence {
            return None;
        }
        entry.sequence = FREE;
        let action = entry.action.take();
        self.free.push(key.slot);
        self.dead_one();
        action
    }

    /// A live timer was cancelled: its queue entry is dead.
    #[inline]
    fn dead_one(&mut self) {
        self.live -= 1;
        if self.live == 0 {
            self.queue.clear();
        } else if self.queue.len() > 2 * self.live + COMPACT_SLACK {
            self.compact();
        }
    }

    /// Drop the queue entries of cancelled timers at once. A timer that is reset again
    /// and again (a deadline pushed back on every event) leaves an entry per reset, and
    /// a starved run held four dead entries per live one, each pushed and later popped
    /// through the heap (seed 19: 918.73 M → 904.02 M Ir in all, callgrind).
    #[inline(never)]
    fn compact(&mut self) {
        let slots = &self.slots;
        self.queue.retain(|entry| {
            let (_, sequence, slot) = entry.parts();
            slots[slot as usize].sequence == sequence
        });
    }

    /// Cancel every timer (the executor is being dropped); returns their actions, for the
    /// caller to drop outside the lock.
    pub(crate) fn cancel_all(&mut self) -> Vec<TimerAction> {
        let mut actions = Vec::new();
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if entry.sequence != FREE {
                entry.sequence = FREE;
                actions.extend(entry.action.take());
                self.free.push(slot as u32);
            }
        }
        self.live = 0;
        self.queue.clear();
        actions
    }

    /// Number of timers still waiting.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The earliest live timer (dropping the dead entries before it).
    pub(crate) fn next_timer(&mut self) -> Option<NextTimer> {
        while let Some(head) = self.queue.head() {
            let (deadline, sequence, slot) = head.entry.parts();
            if self.slots[slot as usize].sequence == sequence {
                return Some(NextTimer { head, deadline });
            }
            self.queue.pop(head);
        }
        None
    }

    /// Remove every live timer due at or before `first`'s deadline (`first` is what
    /// [`Self::next_timer`] just returned, the queue untouched since, so it is popped
    /// without being looked up again): push the wakers of sleeps to `wakers` and the
    /// callbacks, with their sequences, to `calls`, each in (deadline, registration)
    /// order. Callgrind (against `next_deadline` then a `fire_due` that looked the head up
    /// again): seed 2 329.32 M -> 328.34 M, seed 3 372.17 M -> 370.62 M, seed 19 845.90 M
    /// -> 844.47 M.
    pub(crate) fn fire_due(&mut self, first: NextTimer, wakers: &mut Vec<Waker>, calls: &mut Vec<(u64, Callback)>) {
        let now = first.deadline;
        let mut head = first.head;
        loop {
            let (_, sequence, slot) = head.entry.parts();
            self.queue.pop(head);
            let entry = &mut self.slots[slot as usize];
            if entry.sequence == sequence {
                entry.sequence = FREE;
                match entry.action.take() {
                    Some(TimerAction::Wake(waker)) => wakers.push(waker),
                    Some(TimerAction::Call(callback)) => calls.push((sequence, callback)),
                    None => {}
                }
                self.free.push(slot);
                self.live -= 1;
            }
            match self.queue.head() {
                Some(next) if next.entry.parts().0 <= now => head = next,
                _ => break,
            }
        }
    }
}

/// The earliest live timer, from [`Timers::next_timer`].
#[derive(Clone, Copy)]
pub(crate) struct NextTimer {
    head: Head,
    pub(crate) deadline: u64,
}

/// What [`Waker::will_wake`] compares of two wakers: the addresses of their data and
/// vtable. Two wakers of one identity wake alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WakerIdentity {
    data: usize,
    vtable: usize,
}

impl WakerIdentity {
    fn of(waker: &Waker) -> WakerIdentity {
        WakerIdentity { data: waker.data() as usize, vtable: waker.vtable() as *const RawWakerVTable as usize }
    }
}

/// Make a timer's `action` wake like `waker`: the waker it holds is kept if it wakes alike
/// (no clone), else replaced by a clone of `waker`. The identity of the waker it holds then.
#[inline]
fn wake_alike(action: &mut Option<TimerAction>, waker: &Waker) -> WakerIdentity {
    match action {
        Some(TimerAction::Wake(current)) if current.will_wake(waker) => WakerIdentity::of(current),
        _ => {
            let waker = waker.clone();
            let identity = WakerIdentity::of(&waker);
            *action = Some(TimerAction::Wake(waker));
            identity
        }
    }
}

/// The future behind [`engine::rt::Rt::sleep_until`] in the simulator.
pub(crate) struct Sleep {
    shared: Arc<Shared>,
    deadline: Instant,
    hold: Hold,
    /// The identity of the waker the registered timer holds (meaningful while `hold` is
    /// [`Hold::Armed`]): a poll with a waker of that identity would change nothing, so it
    /// takes no lock. Most polls of a sleep are such (a supervisor polls its sleep on every
    /// turn of its loop): seed 85 (callgrind) 460.1 M → 458.7 M Ir in all, this poll
    /// 10.1 M → 7.4 M.
    held: WakerIdentity,
}

/// What a [`Sleep`] holds of the timers.
#[derive(Clone, Copy)]
enum Hold {
    Nothing,
    /// A registered timer (live, or fired: then `now >= deadline`).
    Armed(TimerKey),
    /// A slot whose timer [`engine::rt::Timer::reset`] cancelled ([`Timers::park`]): the
    /// next registration reuses it and the waker in it ([`Timers::rearm`]) instead of
    /// freeing the slot and dropping the waker, then taking a slot and cloning the waker
    /// again. The supervisor's stall alarm moves on every chunk.
    Parked(u32),
}

impl Sleep {
    pub(crate) fn new(shared: Arc<Shared>, deadline: Instant) -> Sleep {
        Sleep { shared, deadline, hold: Hold::Nothing, held: WakerIdentity::default() }
    }

    /// Register the timer with `waker`, or hand it `waker` (out of line: most polls do
    /// neither, and the poll's own prologue stays small).
    #[inline(never)]
    fn register(&mut self, waker: &Waker) {
        let mut timers = self.shared.timers.lock();
        match self.hold {
            Hold::Armed(key) if timers.is_live(key) => {
                let held = timers.update_waker(key, waker);
                drop(timers);
                self.held = held;
            }
            Hold::Parked(slot) => {
                let (key, held) = timers.rearm(slot, self.deadline.as_nanos(), waker);
                drop(timers);
                self.hold = Hold::Armed(key);
                self.held = held;
            }
            // Not registered yet, or fired early? Fired means now >= deadline, handled
            // by the poll, so a dead key can only be stale: register anew.
            _ => {
                let waker = waker.clone();
                let held = WakerIdentity::of(&waker);
                let key = timers.register(self.deadline.as_nanos(), waker);
                drop(timers);
                self.hold = Hold::Armed(key);
                self.held = held;
            }
        }
    }

    /// Give back what the sleep holds (out of line: a sleep that completes normally holds
    /// a fired timer, which needs nothing).
    #[inline(never)]
    fn release(&mut self) {
        let action = match std::mem::replace(&mut self.hold, Hold::Nothing) {
            Hold::Nothing => None,
            Hold::Armed(key) => self.shared.timers.lock().cancel(key),
            Hold::Parked(slot) => self.shared.timers.lock().release(slot),
        };
        drop(action);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.now() >= self.deadline {
            // The clock never passes a live timer without firing it (it jumps to the
            // earliest deadline and fires everything due at once), so a registered timer
            // has fired by now: nothing to cancel, no lock to take.
            match self.hold {
                Hold::Armed(key) => {
                    debug_assert!(!self.shared.timers.lock().is_live(key));
                    self.hold = Hold::Nothing;
                }
                Hold::Parked(_) => self.release(),
                Hold::Nothing => {}
            }
            return Poll::Ready(());
        }
        // A registered timer is live here: it has not fired (now < deadline, and the
        // clock never passes a live timer), and only this sleep's reset or drop cancels it
        // (or the executor's, after which nothing polls).
        if !matches!(self.hold, Hold::Armed(_)) || WakerIdentity::of(cx.waker()) != self.held {
            self.register(cx.waker());
        }
        Poll::Pending
    }
}

impl engine::rt::Timer for Sleep {
    /// Cancels the registered timer (the next poll registers the new deadline), so the
    /// old deadline wakes no one. The slot is kept for that registration ([`Hold::Parked`]).
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        if let Hold::Armed(key) = self.hold {
            let parked = self.shared.timers.lock().park(key);
            self.hold = if parked { Hold::Parked(key.slot) } else { Hold::Nothing };
        }
        self.deadline = deadline;
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if !matches!(self.hold, Hold::Nothing) {
            self.release();
        }
    }
}

/// A pending timer callback ([`super::SimRt::call_at`]). Dropping it (or
/// [`CallAt::cancel`]) before the deadline cancels the callback, which is then dropped
/// without running; after the callback ran, both are no-ops.
#[must_use = "dropping a CallAt cancels its callback"]
pub struct CallAt {
    shared: Arc<Shared>,
    key: Option<TimerKey>,
}

impl CallAt {
    pub(crate) fn new(shared: Arc<Shared>, deadline: Instant, callback: Callback) -> CallAt {
        let key = shared.timers.lock().register_call(deadline.as_nanos(), callback);
        CallAt { shared, key: Some(key) }
    }

    /// Whether the callback still waits to run.
    pub fn is_pending(&self) -> bool {
        self.key.is_some_and(|key| self.shared.timers.lock().is_live(key))
    }

    /// Cancel the callback if it has not run yet; returns whether it was cancelled.
    pub fn cancel(mut self) -> bool {
        self.cancel_now()
    }

    fn cancel_now(&mut self) -> bool {
        let Some(key) = self.key.take() else { return false };
        let action = self.shared.timers.lock().cancel(key);
        let cancelled = action.is_some();
        drop(action);
        cancelled
    }
}

impl Drop for CallAt {
    fn drop(&mut self) {
        self.cancel_now();
    }
}

#[cfg(test)]
mod queue_entry_tests {
    use super::{DeadlineQueue, QueueEntry};
    use crate::executor::SimRng;

    #[test]
    fn packed_entries_order_as_tuples_and_unpack() {
        let tuples = [(5, 9, 0), (5, 10, 3), (4, 11, 1), (6, 0, (1 << 24) - 1), (u64::MAX, (1 << 40) - 1, 7)];
        for a in tuples {
            assert_eq!(QueueEntry::new(a.0, a.1, a.2).parts(), a);
            for b in tuples {
                let (x, y) = (QueueEntry::new(a.0, a.1, a.2), QueueEntry::new(b.0, b.1, b.2));
                assert_eq!(x.cmp(&y), (a.0, a.1).cmp(&(b.0, b.1)), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn the_deadline_queue_pops_in_order() {
        // Near and far insertions (shifted, or to the heap), against a sorted vector.
        let mut rng = SimRng::new(7);
        let mut queue = DeadlineQueue::default();
        let mut model: Vec<QueueEntry> = Vec::new();
        for sequence in 0..4_000u64 {
            let deadline = if rng.chance(0.3) { rng.below(1_000_000) } else { rng.below(50) };
            let entry = QueueEntry::new(deadline, sequence, 0);
            queue.push(entry);
            model.push(entry);
            if rng.chance(0.4) {
                model.sort_unstable();
                assert_eq!(queue.peek(), model.first().copied());
                queue.pop(queue.head().unwrap());
                model.remove(0);
            }
        }
        model.sort_unstable();
        for entry in model {
            assert_eq!(queue.peek(), Some(entry));
            queue.pop(queue.head().unwrap());
        }
        assert_eq!(queue.peek(), None);
    }
}
