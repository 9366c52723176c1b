//! The byte-bounded queue between sources and the dispatcher.
//!
//! A [`Chunk`] is a run of lines of one source, in source order. Sending waits until the
//! chunk's cost fits in the [`Budget`]; the cost stays charged while the lines are queued,
//! batched and in flight, and is given back by the sink worker once the batch is
//! acknowledged or rejected. So `queue_bytes_max` bounds everything between a source and
//! the sink, and a full pipeline makes sources wait instead of dropping lines.
//!
//! The cost is what memory really holds, not only content: a line costs its content bytes
//! plus [`LINE_OVERHEAD_BYTES`] (its record, its `Bytes` handle, its share of the chunk's
//! source/labels record), so a flood of empty lines is bounded as tightly as one of long
//! lines. See [`Budget::cost`].
//!
//! Readers charge the bytes their buffers keep between chunks (a partial frame, partial
//! lines) through a [`ReaderHold`]; that never waits (the bytes are held already), so
//! what the permits do not cover becomes debt that the next refunds pay before sources
//! may send again. An empty pipeline always takes a chunk, so readers' buffers alone
//! cannot wedge it. Not charged: the chunk a reader is parsing and the lines it waits to
//! queue (at most one chunk per open stream: the slack the simulator's check allows).
//! Those lines are counted (`reader_lines_held`, [`QueueSender::send_read`]): a reader
//! cancelled while it waits drops them, and the shutdown report names them abandoned.
//!
//! The budget is a FIFO-fair semaphore: a large chunk is not starved by small ones.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify, Semaphore};

use crate::model::{Labels, Line, SourceId};
use crate::telemetry::events::{QueueChanged, ReaderLinesHeld};
use crate::telemetry::Telemetry;

/// What one queued line costs the budget besides its content bytes: its [`Line`] record
/// (timestamp, `Bytes` handle, position: 56 bytes on 64-bit targets) plus, so that even a
/// chunk of a single line is covered, the [`Chunk`] record that carries it (source id,
/// labels handle, `Vec` header, byte count: 64 bytes). 56 + 64 = 120, rounded up to 128.
/// The `Bytes` handles share their chunk's buffer (counted in the content bytes) and the
/// labels map is shared by every line of the source (an `Arc`). Pinned by a unit test.
pub const LINE_OVERHEAD_BYTES: usize = 128;

/// A run of lines from one source.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub source: SourceId,
    pub labels: Labels,
    pub lines: Vec<Line>,
    /// Sum of the lines' byte lengths.
    pub bytes: usize,
}

/// Bytes charged to the pipeline. Shared by the queue (charges), the sink (refunds) and
/// the readers ([`ReaderHold`]: the bytes their buffers keep between chunks).
#[derive(Clone)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    bytes_max: usize,
    telemetry: Arc<Telemetry>,
    ledger: Arc<Mutex<Ledger>>,
    /// Signalled when the pipeline becomes empty (see [`Budget::charge`]).
    emptied: Arc<Notify>,
}

/// What the semaphore's permits do not say.
#[derive(Default)]
struct Ledger {
    /// Bytes charged beyond the permits there were (a reader's buffer grows while the
    /// budget is spent: it cannot wait, it holds the bytes already); every give-back
    /// pays this first, so sources wait until it is paid.
    debt: usize,
    /// Cost of the lines queued, batched or in flight.
    pipeline: usize,
    /// Bytes the readers' holds charge.
    holds: usize,
}

impl Budget {
    pub fn new(bytes_max: usize, telemetry: Arc<Telemetry>) -> Budget {
        assert!(bytes_max > 0 && bytes_max <= Semaphore::MAX_PERMITS);
        Budget {
            semaphore: Arc::new(Semaphore::new(bytes_max)),
            bytes_max,
            telemetry,
            ledger: Arc::default(),
            emptied: Arc::default(),
        }
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// What `lines` lines of `bytes` content bytes in all cost the budget: the content
    /// plus [`LINE_OVERHEAD_BYTES`] per line.
    pub const fn cost(lines: usize, bytes: usize) -> usize {
        bytes + lines * LINE_OVERHEAD_BYTES
    }

    /// [`Budget::cost`], as this build charges it (a broken variant leaves the
    /// per-line overhead out).
    fn charged(lines: usize, bytes: usize) -> usize {
        #[cfg(feature = "broken-variants")]
        if crate::container::broken::is_active(crate::container::SupervisorVariant::LineOverheadUncharged) {
            return bytes;
        }
        Budget::cost(lines, bytes)
    }

    /// Charge `bytes` at once, without waiting: the permits there are, the rest as debt.
    fn take(&self, ledger: &mut Ledger, bytes: usize) {
        // Sources acquire permits without the ledger's lock (on the daemon, from other
        // threads): what is available may shrink between the look and the take, so take
        // what is there until it holds; a closed semaphore takes nothing more.
        let mut taken = 0;
        while taken < bytes {
            let available = self.semaphore.available_permits().min(bytes - taken);
            if available == 0 {
                break;
            }
            let permits = u32::try_from(available).expect("bounded by queue_bytes_max");
            match self.semaphore.try_acquire_many(permits) {
                Ok(permit) => {
                    permit.forget();
                    taken += available;
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => continue,
                Err(tokio::sync::TryAcquireError::Closed) => break,
            }
        }
        ledger.debt += bytes - taken;
    }

    /// Give `bytes` back: debt first, then permits.
    fn give(&self, ledger: &mut Ledger, bytes: usize) {
        let paid = ledger.debt.min(bytes);
        ledger.debt -= paid;
        if bytes > paid {
            self.semaphore.add_permits(bytes - paid);
        }
    }

    /// Give back what a finished batch of `lines` lines and `bytes` content bytes was charged.
    pub fn refund(&self, lines: usize, bytes: usize) {
        let cost = Budget::charged(lines, bytes);
        let mut ledger = self.ledger.lock().unwrap();
        self.give(&mut ledger, cost);
        ledger.pipeline -= cost;
        if ledger.pipeline == 0 {
            self.emptied.notify_waiters();
        }
        drop(ledger);
        QueueChanged { lines_delta: -(lines as i64), bytes_delta: -(cost as i64) }.emit(&self.telemetry);
    }

    /// Wait until the lines' cost fits, then charge it. An empty pipeline always takes a
    /// chunk (as debt if the readers' buffers hold the permits): nothing would ever be
    /// refunded to the sources waiting, and a reader empties its buffer only by reading.
    async fn charge(&self, lines: usize, bytes: usize) -> Result<(), QueueClosed> {
        if self.try_charge(lines, bytes) {
            return Ok(());
        }
        let cost = Budget::charged(lines, bytes);
        #[cfg(feature = "broken-variants")]
        if crate::container::broken::is_active(crate::container::SupervisorVariant::BudgetBypass) {
            // Charged to the gauge, not to the semaphore; the refund adds permits that
            // were never taken, so the bound drifts away.
            self.ledger.lock().unwrap().pipeline += cost;
            QueueChanged { lines_delta: lines as i64, bytes_delta: cost as i64 }.emit(&self.telemetry);
            return Ok(());
        }
        self.wait_and_take(cost, u32::try_from(cost).expect("chunk fits in u32")).await?;
        QueueChanged { lines_delta: lines as i64, bytes_delta: cost as i64 }.emit(&self.telemetry);
        Ok(())
    }

    /// [`Self::charge`] if it needs no wait: whether it charged. The common case first:
    /// the permits are there. tokio's semaphore hands released permits to its waiters
    /// before anyone else, so this takes them only when no source waits: what the first
    /// poll of `acquire_many` would do, without registering for `emptied` and selecting
    /// (a wedged pipeline has fewer permits than `cost`, so it still waits). Seed 85
    /// (33 k chunks) went from 618.4 M to 613.6 M instructions with it (callgrind).
    fn try_charge(&self, lines: usize, bytes: usize) -> bool {
        let cost = Budget::charged(lines, bytes);
        assert!(cost <= self.bytes_max, "chunk costing {cost} bytes exceeds queue_bytes_max");
        let permits = u32::try_from(cost).expect("chunk fits in u32");
        #[cfg(feature = "broken-variants")]
        if crate::container::broken::is_active(crate::container::SupervisorVariant::BudgetBypass) {
            return false; // `charge` bypasses the budget.
        }
        let Ok(permit) = self.semaphore.try_acquire_many(permits) else { return false };
        permit.forget();
        self.ledger.lock().unwrap().pipeline += cost;
        QueueChanged { lines_delta: lines as i64, bytes_delta: cost as i64 }.emit(&self.telemetry);
        true
    }

    /// [`Self::charge`] when the permits are not there: wait for them (or take the cost
    /// as debt when the pipeline is wedged), then charge the pipeline `cost`.
    async fn wait_and_take(&self, cost: usize, permits: u32) -> Result<(), QueueClosed> {
        loop {
            let emptied = self.emptied.notified();
            let mut emptied = std::pin::pin!(emptied);
            emptied.as_mut().enable();
            {
                let mut ledger = self.ledger.lock().unwrap();
                // Wedged: nothing to refund, and the readers' buffers leave no room.
                if ledger.pipeline == 0 && ledger.holds + cost > self.bytes_max {
                    self.take(&mut ledger, cost);
                    ledger.pipeline += cost;
                    break;
                }
            }
            tokio::select! {
                biased;
                permit = self.semaphore.acquire_many(permits) => {
                    permit.map_err(|_| QueueClosed)?.forget();
                    self.ledger.lock().unwrap().pipeline += cost;
                    break;
                }
                () = &mut emptied => {}
            }
        }
        Ok(())
    }

    /// A reader's hold on the budget for the bytes its buffers keep.
    pub fn reader_hold(&self) -> ReaderHold {
        ReaderHold { budget: self.clone(), held: 0 }
    }
}

/// The bytes one reader's buffers keep between chunks (partial frames, partial lines),
/// charged to the [`Budget`]: set after every chunk, given back when dropped. Growing
/// never waits (the bytes are held already): what the permits do not cover is debt,
/// which the sources' next sends wait for.
pub struct ReaderHold {
    budget: Budget,
    held: usize,
}

impl ReaderHold {
    /// Charge (or give back) the change to `bytes`. Inlined for the common case, a hold
    /// that does not change (callgrind: seed 85 433.9 M -> 433.5 M, seed 19 1,047.4 M ->
    /// 1,045.6 M).
    #[inline]
    pub fn set(&mut self, bytes: usize) {
        if bytes != self.held {
            self.change(bytes);
        }
    }

    fn change(&mut self, bytes: usize) {
        let mut ledger = self.budget.ledger.lock().unwrap();
        if bytes > self.held {
            self.budget.take(&mut ledger, bytes - self.held);
            ledger.holds += bytes - self.held;
            if ledger.pipeline == 0 {
                // A source waiting on an empty pipeline may be wedged now.
                self.budget.emptied.notify_waiters();
            }
        } else {
            self.budget.give(&mut ledger, self.held - bytes);
            ledger.holds -= self.held - bytes;
        }
        self.held = bytes;
    }

    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for ReaderHold {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline is shut down")]
pub struct QueueClosed;

/// The sources' end. Cloned into every source; the queue closes when all are dropped.
#[derive(Clone)]
pub struct QueueSender {
    chunks: mpsc::UnboundedSender<Chunk>,
    budget: Budget,
}

impl QueueSender {
    /// A hold on the budget for a reader's buffers.
    pub fn reader_hold(&self) -> ReaderHold {
        self.budget.reader_hold()
    }

    /// Largest chunk cost ([`Budget::cost`]) a source may send; sources split bigger runs.
    pub fn chunk_bytes_max(&self) -> usize {
        self.budget.bytes_max
    }

    /// Queue a chunk, waiting while the pipeline is full.
    pub async fn send(&self, chunk: Chunk) -> Result<(), QueueClosed> {
        debug_assert_eq!(chunk.bytes, chunk.lines.iter().map(|line| line.bytes.len()).sum::<usize>());
        self.budget.charge(chunk.lines.len(), chunk.bytes).await?;
        self.send_charged(chunk).map_err(|_| QueueClosed)
    }

    /// Queue a chunk already charged; a closed queue refunds it and gives it back.
    fn send_charged(&self, chunk: Chunk) -> Result<(), Chunk> {
        let (lines, bytes) = (chunk.lines.len(), chunk.bytes);
        self.chunks.send(chunk).map_err(|closed| {
            self.budget.refund(lines, bytes);
            closed.0
        })
    }

    /// Queue a reader's chunks in order, waiting while the pipeline is full. Until each
    /// is queued its lines count in `reader_lines_held`: a reader cancelled while it waits
    /// (shutdown, crash) drops them and the count keeps them, so the shutdown names them
    /// with the lines it abandoned (they were read: a reopen may never find them again,
    /// json-file rotation may have deleted them). A closed queue keeps them counted too.
    ///
    /// `chunks` is left empty, also when the future is dropped: it is the reader's
    /// buffer, reused so a read does not allocate a `Vec` for its chunks.
    ///
    /// Mostly every chunk's cost is there at once: those are queued without a wait, so
    /// their lines are never held across one and `reader_lines_held` does not count them
    /// (two atomic updates of the gauge per chunk fewer); the count starts at the first
    /// chunk that must wait, or that a closed queue refuses.
    pub async fn send_read(&self, chunks: &mut Vec<Chunk>) -> Result<(), QueueClosed> {
        let mut chunks = chunks.drain(..);
        let mut next = chunks.next();
        let mut closed = false;
        while let Some(chunk) = next.take() {
            debug_assert_eq!(chunk.bytes, chunk.lines.iter().map(|line| line.bytes.len()).sum::<usize>());
            if !self.budget.try_charge(chunk.lines.len(), chunk.bytes) {
                next = Some(chunk);
                break;
            }
            if let Err(refused) = self.send_charged(chunk) {
                (next, closed) = (Some(refused), true);
                break;
            }
            next = chunks.next();
        }
        let Some(first) = next else { return Ok(()) };
        let held = first.lines.len() + chunks.as_slice().iter().map(|chunk| chunk.lines.len()).sum::<usize>();
        ReaderLinesHeld { lines_delta: held as i64 }.emit(&self.budget.telemetry);
        if closed {
            return Err(QueueClosed);
        }
        for chunk in std::iter::once(first).chain(chunks) {
            let lines = chunk.lines.len();
            self.send(chunk).await?;
            ReaderLinesHeld { lines_delta: -(lines as i64) }.emit(&self.budget.telemetry);
        }
        Ok(())
    }
}

/// The dispatcher's end.
pub struct QueueReceiver {
    chunks: mpsc::UnboundedReceiver<Chunk>,
}

impl QueueReceiver {
    /// The next chunk; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Chunk> {
        self.chunks.recv().await
    }

    /// [`Self::recv`] as a poll (for a select written out).
    pub fn poll_recv(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Chunk>> {
        self.chunks.poll_recv(cx)
    }
}

pub fn queue(budget: Budget) -> (QueueSender, QueueReceiver) {
    // Unbounded in count, bounded in bytes by the budget (a chunk holds ≥ 1 line or is
    // empty and never sent), so the channel itself never holds more than the budget.
    let (chunks_tx, chunks_rx) = mpsc::unbounded_channel();
    (QueueSender { chunks: chunks_tx, budget }, QueueReceiver { chunks: chunks_rx })
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
