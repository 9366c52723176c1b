//! Tests of the supervisor's select branches that are not the machine's.

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::SlotWait;
use crate::container::pool::{StreamPool, StreamSlot};
use crate::rt::BoxFuture;
use crate::telemetry::Telemetry;

/// A task's waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The slot wait polls the pool's acquire only when the pool woke it (and at first), and
/// wakes the task when the pool does.
#[test]
fn the_slot_wait_is_polled_only_when_the_pool_woke_it() {
    let pool = StreamPool::new(1, Arc::new(Telemetry::default()));
    let task = Arc::new(CountingWaker::default());
    let waker = Waker::from(task.clone());
    let mut cx = Context::from_waker(&waker);
    let held = std::pin::pin!(pool.acquire()).as_mut().poll(&mut cx);
    let Poll::Ready(held) = held else { panic!("a free slot is granted at once") };

    let polls = Arc::new(AtomicUsize::new(0));
    let mut wait: SlotWait<BoxFuture<StreamSlot>> = SlotWait::default();
    assert!(wait.poll(&mut cx).is_pending(), "nothing waited for");
    wait.start(Box::pin({
        let (pool, polls) = (pool.clone(), polls.clone());
        async move {
            let mut acquire = std::pin::pin!(pool.acquire());
            poll_fn(|cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                acquire.as_mut().poll(cx)
            })
            .await
        }
    }));
    for _ in 0..3 {
        assert!(wait.poll(&mut cx).is_pending());
    }
    assert_eq!(polls.load(Ordering::SeqCst), 1, "polled at first only");
    assert_eq!(task.0.load(Ordering::SeqCst), 0);

    drop(held);
    assert_eq!(task.0.load(Ordering::SeqCst), 1, "the pool's wake reaches the task");
    assert!(wait.poll(&mut cx).is_ready());
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert!(wait.poll(&mut cx).is_pending(), "granted once");
}
