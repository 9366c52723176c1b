//! The stream pool: at most `streams_max` container log streams open at once.
//!
//! Slots are handed out in FIFO order (tokio's semaphore is fair), and a supervisor
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
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::telemetry::events::{StreamSlotAcquired, StreamSlotReleased, StreamSlotWaitEnded, StreamSlotWaiting};
use crate::telemetry::Telemetry;

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
    by_age: VecDeque<(u64, oneshot::Sender<()>)>,
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
    slots: Arc<Semaphore>,
    holders: Mutex<Holders>,
    telemetry: Arc<Telemetry>,
}

/// A held slot; dropping it frees the slot.
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    seq: u64,
    yield_request: Option<oneshot::Receiver<()>>,
    pool: Arc<PoolInner>,
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
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut holders = self.pool.holders.lock().unwrap();
        if let Ok(index) = holders.by_age.binary_search_by_key(&self.seq, |(seq, _)| *seq) {
            holders.by_age.remove(index);
        }
        drop(holders);
        StreamSlotReleased.emit(&self.pool.telemetry);
    }
}

struct Waiting<'a>(&'a Telemetry);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        StreamSlotWaitEnded.emit(self.0);
    }
}

impl StreamPool {
    pub fn new(streams_max: usize, telemetry: Arc<Telemetry>) -> StreamPool {
        assert!(streams_max > 0);
        let inner = PoolInner { slots: Arc::new(Semaphore::new(streams_max)), holders: Mutex::default(), telemetry };
        StreamPool { inner: Arc::new(inner) }
    }

    /// Wait for a slot, in FIFO order. Dropping the future leaves the queue.
    pub async fn acquire(&self) -> StreamSlot {
        let pool = &self.inner;
        StreamSlotWaiting.emit(&pool.telemetry);
        let waiting = Waiting(&pool.telemetry);
        let permit = pool.slots.clone().acquire_owned().await.expect("the pool is never closed");
        drop(waiting);
        StreamSlotAcquired.emit(&pool.telemetry);
        let (ask, yield_request) = oneshot::channel();
        let seq = {
            let mut holders = pool.holders.lock().unwrap();
            let seq = holders.next;
            holders.next += 1;
            holders.by_age.push_back((seq, ask));
            seq
        };
        StreamSlot { _permit: permit, seq, yield_request: Some(yield_request), pool: pool.clone() }
    }

    /// Ask the holder that has held its slot longest (and was not asked yet) to yield.
    /// False if there is none.
    pub fn ask_oldest_to_yield(&self) -> bool {
        let mut holders = self.inner.holders.lock().unwrap();
        while let Some((_, ask)) = holders.by_age.pop_front() {
            if ask.send(()).is_ok() {
                return true;
            }
        }
        false
    }
}
