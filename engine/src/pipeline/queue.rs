//! The byte-bounded queue between sources and the dispatcher.
//!
//! A [`Chunk`] is a run of lines of one source, in source order. Sending waits until the
//! chunk's bytes fit in the [`Budget`]; the bytes stay charged while the lines are queued,
//! batched and in flight, and are given back by the sink worker once the batch is
//! acknowledged or rejected. So `queue_bytes_max` bounds everything between a source and
//! the sink, and a full pipeline makes sources wait instead of dropping lines.
//!
//! The budget is a FIFO-fair semaphore: a large chunk is not starved by small ones.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::model::{Labels, Line, SourceId};
use crate::telemetry::events::QueueChanged;
use crate::telemetry::Telemetry;

/// A run of lines from one source.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub source: SourceId,
    pub labels: Labels,
    pub lines: Vec<Line>,
    /// Sum of the lines' byte lengths.
    pub bytes: usize,
}

/// Bytes charged to the pipeline. Shared by the queue (charges) and the sink (refunds).
#[derive(Clone)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    bytes_max: usize,
    telemetry: Arc<Telemetry>,
}

impl Budget {
    pub fn new(bytes_max: usize, telemetry: Arc<Telemetry>) -> Budget {
        assert!(bytes_max > 0 && bytes_max <= Semaphore::MAX_PERMITS);
        Budget { semaphore: Arc::new(Semaphore::new(bytes_max)), bytes_max, telemetry }
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// Give back what a finished batch was charged.
    pub fn refund(&self, lines: usize, bytes: usize) {
        self.semaphore.add_permits(bytes);
        QueueChanged { lines_delta: -(lines as i64), bytes_delta: -(bytes as i64) }.emit(&self.telemetry);
    }

    async fn charge(&self, lines: usize, bytes: usize) -> Result<(), QueueClosed> {
        assert!(bytes <= self.bytes_max, "chunk of {bytes} bytes exceeds queue_bytes_max");
        let permits = u32::try_from(bytes).expect("chunk fits in u32");
        #[cfg(feature = "broken-variants")]
        if crate::container::broken::is_active(crate::container::SupervisorVariant::BudgetBypass) {
            // Charged to the gauge, not to the semaphore; the refund adds permits that
            // were never taken, so the bound drifts away.
            QueueChanged { lines_delta: lines as i64, bytes_delta: bytes as i64 }.emit(&self.telemetry);
            return Ok(());
        }
        self.semaphore.acquire_many(permits).await.map_err(|_| QueueClosed)?.forget();
        QueueChanged { lines_delta: lines as i64, bytes_delta: bytes as i64 }.emit(&self.telemetry);
        Ok(())
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
    /// Largest chunk a source may send; sources split bigger runs.
    pub fn chunk_bytes_max(&self) -> usize {
        self.budget.bytes_max
    }

    /// Queue a chunk, waiting while the pipeline is full.
    pub async fn send(&self, chunk: Chunk) -> Result<(), QueueClosed> {
        debug_assert_eq!(chunk.bytes, chunk.lines.iter().map(|line| line.bytes.len()).sum::<usize>());
        self.budget.charge(chunk.lines.len(), chunk.bytes).await?;
        let (lines, bytes) = (chunk.lines.len(), chunk.bytes);
        self.chunks.send(chunk).map_err(|_| {
            self.budget.refund(lines, bytes);
            QueueClosed
        })
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
}

pub fn queue(budget: Budget) -> (QueueSender, QueueReceiver) {
    // Unbounded in count, bounded in bytes by the budget (a chunk holds ≥ 1 line or is
    // empty and never sent), so the channel itself never holds more than the budget.
    let (chunks_tx, chunks_rx) = mpsc::unbounded_channel();
    (QueueSender { chunks: chunks_tx, budget }, QueueReceiver { chunks: chunks_rx })
}
