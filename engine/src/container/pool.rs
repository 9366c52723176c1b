//! The stream pool: at most `streams_max` container log streams open at once.
//!
//! Slots are handed out in FIFO order (a released slot goes to the oldest waiter), and a supervisor
//! gives its slot back at every rotation and queues again. Holders yield to waiters: a
//! waiter that has waited long calls [`StreamPool::ask_oldest_to_yield`], which asks the
//! holder that has held its slot longest (and was not asked yet) to give it up; the
//! holder hears it through [`StreamSlot::poll_yield_requested`], drops its stream and queues
//! again at the back. One waiter's nudge moves one holder, so the work is one wake-up
//! per hand-over, not one per holder. The gauges `container_streams_active` and
//! `container_streams_waiting` follow the slots held and the supervisors queued.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWakerVTable, Waker};

use futures::task::AtomicWaker;

use crate::telemetry::events::{StreamSlotAcquired, StreamSlotReleased, StreamSlotWaitEnded, StreamSlotWaiting};
use crate::telemetry::Telemetry;

/// The slots and their holders, under one lock.
///
/// The slots are counted here, not by tokio's semaphore: the same FIFO hand-over (a
/// released slot goes to the oldest waiter, which is woken; a free slot is taken at
/// once, and only while nobody waits), with one lock per grant and per release where the
/// semaphore's permits, its waiter list and the holders took two locks and several atomic
/// updates. Callgrind: seed 19 (60 k slots granted) 813.55 M -> 792.06 M, seed 3
/// 355.97 M -> 352.79 M, seed 2 313.46 M -> 311.84 M.
struct PoolState {
    /// Slots neither held nor granted to a waiter. Only nonzero while nobody waits.
    free: usize,
    /// Waiting acquires, oldest first: each its ticket (counting up) and its waker.
    waiting: VecDeque<(u64, Waker)>,
    /// Tickets granted a slot that their acquire has not taken yet.
    granted: Vec<u64>,
    next_ticket: u64,
    holders: Holders,
}

impl PoolState {
    /// A slot comes back: to the oldest waiter (returned, to be woken once the lock is
    /// released), else to the free ones.
    #[must_use = "wake the waiter once the lock is released"]
    fn release(&mut self) -> Option<Waker> {
        match self.waiting.pop_front() {
            Some((ticket, waker)) => {
                self.granted.push(ticket);
                Some(waker)
            }
            None => {
                self.free += 1;
                None
            }
        }
    }
}

/// Holders not asked to yield yet, oldest first.
///
/// A queue by sequence number (slots are numbered as they are granted, so pushing at
/// the back keeps it sorted): granting, releasing and nudging are a push, a binary
/// search and a pop, where a `BTreeMap` searched, rebalanced and allocated its nodes
/// (callgrind: seed 19, 60 k slots granted, 1,065.8 M -> 1,047.4 M; seed 85 435.7 M ->
/// 433.9 M).
#[derive(Default)]
struct Holders {
    next: u64,
    by_age: VecDeque<(u64, YieldRequest)>,
}

/// Cloned per grant (the supervisor's acquire future owns one) and held by every slot:
/// one reference count for all of it, where a pool of three `Arc`s cost six atomic
/// updates per grant (callgrind: seed 19, 60 k grants, 958.3 M -> 956.4 M; seed 85
/// 388.2 M -> 387.9 M).
#[derive(Clone)]
pub struct StreamPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    state: Mutex<PoolState>,
    telemetry: Arc<Telemetry>,
}

/// A held slot; dropping it frees the slot.
pub struct StreamSlot {
    seq: u64,
    /// How it hears that it is asked to yield, until it heard it.
    yield_request: Option<YieldRequest>,
    /// The waker last registered for the yield request, by identity (its data and vtable
    /// pointers, what `Waker::will_wake` compares), while it is still registered.
    registered: Option<WakerIdentity>,
    pool: Arc<PoolInner>,
}

/// A waker's identity: equal for two wakers exactly when one `will_wake` the other.
type WakerIdentity = (usize, usize);

fn identity(waker: &Waker) -> WakerIdentity {
    (waker.data() as usize, waker.vtable() as *const RawWakerVTable as usize)
}

impl StreamSlot {
    /// Ready once when the pool asks this holder to yield; pending after that.
    pub fn poll_yield_requested(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(request) = &self.yield_request else { return Poll::Pending };
        // Registered before the flag is read again: an ask after the read reaches the task.
        if !request.0.asked.load(Ordering::Acquire) {
            // The waker registered last is still there unless an ask took it, and an ask
            // sets the flag first: not asked, the same waker needs no registration (two
            // atomic compare-exchanges per poll of the holder, which polls it at every
            // event it waits for).
            let current = identity(cx.waker());
            if self.registered == Some(current) {
                return Poll::Pending;
            }
            request.0.waker.register(cx.waker());
            self.registered = Some(current);
            if !request.0.asked.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        self.yield_request = None;
        Poll::Ready(())
    }
}

/// How the holder of a slot hears that the pool asks it to yield: a flag and the waker
/// of the task to wake. One per acquirer, used again by each of its slots (a supervisor
/// takes a slot at every rotation), where a channel per slot cost an allocation and its
/// atomic updates per grant (callgrind: see `StreamPool::acquire_for`). Each grant
/// starts it afresh: not asked, no waker (as a new channel was).
#[derive(Clone, Default)]
pub struct YieldRequest(Arc<YieldFlag>);

#[derive(Default)]
struct YieldFlag {
    asked: AtomicBool,
    waker: AtomicWaker,
}

impl YieldRequest {
    /// Afresh for a new slot (under the pool's lock).
    fn reset(&self) {
        self.0.asked.store(false, Ordering::Release);
        drop(self.0.waker.take());
    }

    /// Ask the holder to yield (under the pool's lock).
    fn ask(&self) {
        self.0.asked.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock().unwrap();
        let holders = &mut state.holders;
        if let Ok(index) = holders.by_age.binary_search_by_key(&self.seq, |(seq, _)| *seq) {
            // Not asked: its holder is the one releasing it, and needs no wake.
            holders.by_age.remove(index);
        }
        let waiter = state.release();
        drop(state);
        StreamSlotReleased.emit(&self.pool.telemetry);
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

/// The future of [`StreamPool::acquire`]: waits for a slot in FIFO order; dropped while
/// waiting, it leaves the queue (and a slot already granted to it goes to the next
/// waiter). A plain future rather than an `async fn`'s, so that a supervisor holds it
/// without boxing it (an allocation per wait less), and a grant takes the slot and joins
/// the holders under one lock (callgrind: seed 19 792.06 M -> 784.58 M, seed 3 352.79 M
/// -> 352.27 M, seed 2 311.84 M -> 311.30 M). It tells the telemetry what the `async fn` did: waiting
/// from its first poll, the wait ended when it completes or is dropped, then acquired.
pub struct AcquireSlot {
    pool: Arc<PoolInner>,
    /// What the slot will hear a yield request through (taken by the slot).
    yield_request: Option<YieldRequest>,
    /// Its ticket while it waits (queued, or granted a slot not taken yet).
    ticket: Option<u64>,
    /// Polled and not completed: the end of its wait is still to be told.
    waiting: bool,
}

impl Future for AcquireSlot {
    type Output = StreamSlot;

    /// Out of line: polled about twice per grant, it made the supervisor's loop it was
    /// inlined into slower (callgrind: seed 3 353.24 M -> 352.27 M, seed 19 787.14 M ->
    /// 784.58 M).
    #[inline(never)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StreamSlot> {
        let this = &mut *self;
        let pool = &*this.pool;
        if !this.waiting {
            StreamSlotWaiting.emit(&pool.telemetry);
            this.waiting = true;
        }
        let mut state = pool.state.lock().unwrap();
        match this.ticket {
            None if state.free > 0 => state.free -= 1,
            None => {
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.waiting.push_back((ticket, cx.waker().clone()));
                this.ticket = Some(ticket);
                return Poll::Pending;
            }
            Some(ticket) => match state.granted.iter().position(|granted| *granted == ticket) {
                Some(at) => {
                    state.granted.swap_remove(at);
                    this.ticket = None;
                }
                None => {
                    if let Ok(at) = state.waiting.binary_search_by_key(&ticket, |(ticket, _)| *ticket) {
                        let waker = &mut state.waiting[at].1;
                        if !waker.will_wake(cx.waker()) {
                            *waker = cx.waker().clone();
                        }
                    }
                    return Poll::Pending;
                }
            },
        }
        let yield_request = this.yield_request.take().unwrap_or_default();
        yield_request.reset();
        let holders = &mut state.holders;
        let seq = holders.next;
        holders.next += 1;
        holders.by_age.push_back((seq, yield_request.clone()));
        drop(state);
        this.waiting = false;
        StreamSlotWaitEnded.emit(&pool.telemetry);
        StreamSlotAcquired.emit(&pool.telemetry);
        Poll::Ready(StreamSlot { seq, yield_request: Some(yield_request), registered: None, pool: this.pool.clone() })
    }
}

impl Drop for AcquireSlot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            let mut state = self.pool.state.lock().unwrap();
            if let Ok(at) = state.waiting.binary_search_by_key(&ticket, |(ticket, _)| *ticket) {
                let removed = state.waiting.remove(at);
                drop(state);
                drop(removed);
            } else if let Some(at) = state.granted.iter().position(|granted| *granted == ticket) {
                state.granted.swap_remove(at);
                let waiter = state.release();
                drop(state);
                if let Some(waiter) = waiter {
                    waiter.wake();
                }
            }
        }
        if self.waiting {
            StreamSlotWaitEnded.emit(&self.pool.telemetry);
        }
    }
}

impl StreamPool {
    pub fn new(streams_max: usize, telemetry: Arc<Telemetry>) -> StreamPool {
        assert!(streams_max > 0);
        let state = PoolState {
            free: streams_max,
            waiting: VecDeque::new(),
            granted: Vec::new(),
            next_ticket: 0,
            holders: Holders::default(),
        };
        let inner = PoolInner { state: Mutex::new(state), telemetry };
        StreamPool { inner: Arc::new(inner) }
    }

    /// Wait for a slot, in FIFO order. Dropping the future leaves the queue.
    pub fn acquire(&self) -> AcquireSlot {
        self.acquire_for(YieldRequest::default())
    }

    /// [`Self::acquire`], the slot hearing yield requests through `yield_request` (which
    /// must not be another held slot's): a supervisor passes its own at every rotation.
    /// Callgrind: seed 19 784.58 M -> 780.49 M, seed 3 352.27 M -> 351.79 M, seed 2
    /// 311.30 M -> 310.86 M.
    pub fn acquire_for(&self, yield_request: YieldRequest) -> AcquireSlot {
        AcquireSlot { pool: self.inner.clone(), yield_request: Some(yield_request), ticket: None, waiting: false }
    }

    /// Ask the holder that has held its slot longest (and was not asked yet) to yield.
    /// False if there is none.
    pub fn ask_oldest_to_yield(&self) -> bool {
        // Every holder in the queue still holds its slot (a slot leaves it as it drops)
        // and has not been asked (the ask takes it out).
        let mut state = self.inner.state.lock().unwrap();
        let Some((_, request)) = state.holders.by_age.pop_front() else { return false };
        request.ask();
        true
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
