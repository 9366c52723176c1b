//! The stream pool: at most `streams_max` container log streams open at once.
//!
//! Slots are handed out in FIFO order (tokio's semaphore is fair), and a supervisor
//! gives its slot back at every rotation and queues again, so with more containers
//! than slots every container gets its turn within about one rotation period per
//! `containers / streams_max`. The gauges `container_streams_active` and
//! `container_streams_waiting` follow the slots held and the supervisors queued.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::events::{StreamSlotAcquired, StreamSlotReleased, StreamSlotWaitEnded, StreamSlotWaiting};
use crate::telemetry::Telemetry;

#[derive(Clone)]
pub struct StreamPool {
    slots: Arc<Semaphore>,
    telemetry: Arc<Telemetry>,
}

/// A held slot; dropping it frees the slot.
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    telemetry: Arc<Telemetry>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        StreamSlotReleased.emit(&self.telemetry);
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
        StreamPool { slots: Arc::new(Semaphore::new(streams_max)), telemetry }
    }

    /// Wait for a slot, in FIFO order.
    pub async fn acquire(&self) -> StreamSlot {
        StreamSlotWaiting.emit(&self.telemetry);
        let waiting = Waiting(&self.telemetry);
        let permit = self.slots.clone().acquire_owned().await.expect("the pool is never closed");
        drop(waiting);
        StreamSlotAcquired.emit(&self.telemetry);
        StreamSlot { _permit: permit, telemetry: self.telemetry.clone() }
    }
}
