//! Tests of the stream pool's hand-over: FIFO grants, waits that are dropped, yield
//! requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::{AcquireSlot, StreamPool, StreamSlot, YieldRequest};
use crate::telemetry::Telemetry;

/// A task's waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waiter: its acquire and the wakes of its task.
struct Waiter {
    acquire: AcquireSlot,
    task: Arc<CountingWaker>,
    waker: Waker,
}

impl Waiter {
    fn new(acquire: AcquireSlot) -> Waiter {
        let task = Arc::new(CountingWaker::default());
        Waiter { acquire, waker: Waker::from(task.clone()), task }
    }

    fn poll(&mut self) -> Poll<StreamSlot> {
        Pin::new(&mut self.acquire).poll(&mut Context::from_waker(&self.waker))
    }

    fn wakes(&self) -> usize {
        self.task.0.load(Ordering::SeqCst)
    }
}

fn pool(slots: usize) -> (StreamPool, Arc<Telemetry>) {
    let telemetry = Arc::new(Telemetry::default());
    (StreamPool::new(slots, telemetry.clone()), telemetry)
}

#[test]
fn released_slots_go_to_the_oldest_waiter() {
    let (pool, telemetry) = pool(1);
    let mut a = Waiter::new(pool.acquire());
    let Poll::Ready(held) = a.poll() else { panic!("a free slot is granted at once") };
    let (mut b, mut c) = (Waiter::new(pool.acquire()), Waiter::new(pool.acquire()));
    assert!(b.poll().is_pending());
    assert!(c.poll().is_pending());
    assert_eq!(telemetry.container_streams_waiting.load(Ordering::Relaxed), 2);
    drop(held);
    assert_eq!((b.wakes(), c.wakes()), (1, 0), "the oldest waiter is woken");
    assert!(c.poll().is_pending(), "a granted slot is not another waiter's");
    let Poll::Ready(held) = b.poll() else { panic!("granted") };
    assert_eq!(telemetry.container_streams_waiting.load(Ordering::Relaxed), 1);
    assert_eq!(telemetry.container_streams_active.load(Ordering::Relaxed), 1);
    drop(held);
    assert_eq!(c.wakes(), 1);
    assert!(c.poll().is_ready());
}

#[test]
fn a_dropped_wait_leaves_the_queue_or_passes_its_grant_on() {
    let (pool, telemetry) = pool(1);
    let Poll::Ready(held) = Waiter::new(pool.acquire()).poll() else { panic!("free") };
    let (mut b, mut c, mut d) = (Waiter::new(pool.acquire()), Waiter::new(pool.acquire()), Waiter::new(pool.acquire()));
    for waiter in [&mut b, &mut c, &mut d] {
        assert!(waiter.poll().is_pending());
    }
    // `b` leaves the queue: the slot goes to `c`; `c` is dropped granted: on to `d`.
    drop(b);
    drop(held);
    assert_eq!(c.wakes(), 1);
    drop(c);
    assert_eq!(d.wakes(), 1);
    let Poll::Ready(held) = d.poll() else { panic!("passed on") };
    assert_eq!(telemetry.container_streams_waiting.load(Ordering::Relaxed), 0);
    drop(held);
    // With nobody waiting the slot is free again.
    assert!(Waiter::new(pool.acquire()).poll().is_ready());
    assert_eq!(telemetry.container_streams_active.load(Ordering::Relaxed), 0);
}

#[test]
fn a_yield_request_is_heard_once_and_not_by_the_next_slot() {
    let (pool, _) = pool(2);
    let request = YieldRequest::default();
    let holder = Arc::new(CountingWaker::default());
    let waker = Waker::from(holder.clone());
    let mut cx = Context::from_waker(&waker);
    let Poll::Ready(mut slot) = Waiter::new(pool.acquire_for(request.clone())).poll() else { panic!("free") };
    let Poll::Ready(_other) = Waiter::new(pool.acquire()).poll() else { panic!("free") };
    assert!(slot.poll_yield_requested(&mut cx).is_pending());
    assert!(pool.ask_oldest_to_yield(), "the oldest holder is asked");
    assert_eq!(holder.0.load(Ordering::SeqCst), 1, "and woken");
    assert!(slot.poll_yield_requested(&mut cx).is_ready());
    assert!(slot.poll_yield_requested(&mut cx).is_pending(), "heard once");
    drop(slot);
    assert_eq!(holder.0.load(Ordering::SeqCst), 1, "an asked slot's release wakes no one");

    // The same request for the next slot starts afresh; releasing it unasked wakes no
    // one either (its holder is the task releasing it).
    let Poll::Ready(mut slot) = Waiter::new(pool.acquire_for(request)).poll() else { panic!("free") };
    assert!(slot.poll_yield_requested(&mut cx).is_pending(), "not asked");
    drop(slot);
    assert_eq!(holder.0.load(Ordering::SeqCst), 1);
    assert!(pool.ask_oldest_to_yield(), "`_other` is still held");
    assert!(!pool.ask_oldest_to_yield(), "every holder was asked");
}

#[test]
fn a_yield_request_wakes_the_waker_of_the_last_poll() {
    let (pool, _) = pool(1);
    let (first, second) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
    let (first_waker, second_waker) = (Waker::from(first.clone()), Waker::from(second.clone()));
    let Poll::Ready(mut slot) = Waiter::new(pool.acquire()).poll() else { panic!("free") };
    // Polled again and again with one waker (registered once), then with another: the
    // ask wakes the second only.
    for _ in 0..3 {
        assert!(slot.poll_yield_requested(&mut Context::from_waker(&first_waker)).is_pending());
    }
    assert!(slot.poll_yield_requested(&mut Context::from_waker(&second_waker)).is_pending());
    assert!(pool.ask_oldest_to_yield());
    assert_eq!((first.0.load(Ordering::SeqCst), second.0.load(Ordering::SeqCst)), (0, 1));
    assert!(slot.poll_yield_requested(&mut Context::from_waker(&first_waker)).is_ready());
}
