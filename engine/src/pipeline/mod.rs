//! The pipeline from sources to the sink: a byte-bounded queue, the dispatcher that
//! batches, and the sink worker that sends, retries and acknowledges.
//!
//! ```text
//! sources --Chunk--> queue (queue_bytes_max) --> dispatcher --Batch--> sink worker --> SinkTransport
//!                                                                          |
//!                                                   acknowledged positions <+ (in send order)
//! ```
//!
//! Promises:
//! - Backpressure, never silent loss: a source waits in [`queue::QueueSender::send`] while
//!   the bytes queued, batched or in flight reach `queue_bytes_max`.
//! - Order: one queue, one dispatcher, one sink worker sending one batch at a time, so
//!   batches are acknowledged in the order their lines were queued, and a position is
//!   acknowledged only after every line queued before it was.
//! - Bounds: queue bytes ≤ `queue_bytes_max`; a batch ≤ `batch_bytes_max` and
//!   `batch_lines_max` (a single line larger than the batch bound travels alone); the
//!   flush timer is armed only while a batch is open.

use std::time::Duration;

pub mod dispatcher;
pub mod queue;
pub mod retry;
pub mod sink;

/// Bounds and timings of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineConfig {
    /// Bytes the lines queued, batched or in flight may hold, at most: content plus
    /// [`queue::LINE_OVERHEAD_BYTES`] per line ([`queue::Budget::cost`]).
    pub queue_bytes_max: usize,
    pub batch_bytes_max: usize,
    pub batch_lines_max: usize,
    /// How long an open batch waits for more lines before it is sent.
    pub batch_wait: Duration,
    pub retry: retry::RetryPolicy,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            queue_bytes_max: 64 << 20,
            batch_bytes_max: 1 << 20,
            batch_lines_max: 10_000,
            batch_wait: Duration::from_secs(1),
            retry: retry::RetryPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests;
