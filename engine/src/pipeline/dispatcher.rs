//! The dispatcher: turns queued chunks into batches.
//!
//! [`BatchBuilder`] is the sans-IO part: lines go in, full batches come out when they
//! reach `batch_bytes_max` or `batch_lines_max`. The task around it adds the age bound:
//! a flush timer armed when a batch opens and disarmed when it is sent (idle, the task
//! waits on no deadline). When the queue closes, the open batch is flushed and the task
//! ends, which closes the sink worker's channel in turn.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::mpsc;

use crate::model::{Batch, BatchStream, Labels, SourceId};
use crate::pipeline::queue::{Chunk, QueueReceiver};
use crate::pipeline::PipelineConfig;
use crate::rt::{BoxTimer, Instant, Rt};

/// Sources a batch holds before [`BatchBuilder`] indexes them (see `position`).
const SCAN_SOURCES_MAX: usize = 16;

/// Where a disarmed flush timer is moved: a deadline no run reaches.
const NEVER: Instant = Instant::from_nanos(u64::MAX);

/// Sources a new batch has room for: most hold one or two.
const STREAMS_FIRST: usize = 4;

/// Accumulates lines into one batch at a time, grouped by source.
pub struct BatchBuilder {
    bytes_max: usize,
    lines_max: usize,
    open: Batch,
    /// The position of each source in `open`, once it holds more than
    /// [`SCAN_SOURCES_MAX`] (empty until then).
    index: BTreeMap<SourceId, usize>,
    opened_at: Option<Instant>,
}

impl BatchBuilder {
    pub fn new(bytes_max: usize, lines_max: usize) -> BatchBuilder {
        assert!(bytes_max > 0 && lines_max > 0);
        BatchBuilder { bytes_max, lines_max, open: Batch::default(), index: BTreeMap::new(), opened_at: None }
    }

    /// When the open batch was opened, if one is open.
    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// Add a chunk; batches that became full are pushed to `full`, in order.
    pub fn handle_chunk(&mut self, now: Instant, chunk: Chunk, full: &mut Vec<Batch>) {
        let Chunk { source, labels, lines, bytes } = chunk;
        // The common case, a chunk that fits the open batch whole, moves its lines in at
        // once; the line-by-line loop below would fill the same batch the same way. The
        // chunk's byte count is its lines' (the queue checks it), not summed again here
        // (callgrind: seed 85 436.8 M -> 436.2 M).
        if !lines.is_empty()
            && self.open.lines + lines.len() <= self.lines_max
            && self.open.bytes + bytes <= self.bytes_max
        {
            self.opened_at.get_or_insert(now);
            self.open.lines += lines.len();
            self.open.bytes += bytes;
            match self.find(&source) {
                Some(position) => self.open.streams[position].lines.extend(lines),
                // A new stream of the batch is the chunk's own source, labels and lines:
                // moved in, not copies of them put next to an empty `Vec` that the lines
                // then replace (callgrind: seed 2 347.79 M -> 347.64 M, seed 3 394.94 M ->
                // 394.79 M, seed 19 866.17 M -> 865.99 M).
                None => _ = self.open_stream(BatchStream { source, labels, lines }),
            }
            if self.open.lines >= self.lines_max || self.open.bytes >= self.bytes_max {
                full.push(self.take());
            }
            return;
        }
        let mut slot = None;
        for line in lines {
            let len = line.bytes.len();
            let fits = self.open.lines < self.lines_max && self.open.bytes + len <= self.bytes_max;
            if !fits && self.open.lines > 0 {
                full.push(self.take());
                slot = None;
            }
            if self.opened_at.is_none() {
                self.opened_at = Some(now);
            }
            let position = match slot {
                Some(position) => position,
                None => {
                    let position = self.position(&source, &labels);
                    slot = Some(position);
                    position
                }
            };
            self.open.streams[position].lines.push(line);
            self.open.lines += 1;
            self.open.bytes += len;
        }
        if self.open.lines >= self.lines_max || self.open.bytes >= self.bytes_max {
            full.push(self.take());
        }
    }

    /// Index of `source`'s stream in the open batch, opened if it has none yet.
    ///
    /// A batch of a few sources (most hold one or two on seed 85) is searched in place,
    /// with no index allocated, filled and freed per batch; the index is built once the
    /// batch has more than [`SCAN_SOURCES_MAX`], where a search per chunk would cost
    /// more than a look-up. Callgrind: seed 85 438.7 M -> 436.8 M, seed 19 1,103.3 M ->
    /// 1,101.7 M.
    fn position(&mut self, source: &SourceId, labels: &Labels) -> usize {
        match self.find(source) {
            Some(position) => position,
            None => self.open_stream(BatchStream { source: source.clone(), labels: labels.clone(), lines: Vec::new() }),
        }
    }

    /// Index of `source`'s stream in the open batch, if it has one.
    #[inline]
    fn find(&self, source: &SourceId) -> Option<usize> {
        let streams = &self.open.streams;
        if streams.len() <= SCAN_SOURCES_MAX {
            streams.iter().position(|stream| stream.source == *source)
        } else {
            self.index.get(source).copied()
        }
    }

    /// Add `stream` (whose source has none yet) to the open batch; its index.
    fn open_stream(&mut self, stream: BatchStream) -> usize {
        let streams = &mut self.open.streams;
        streams.push(stream);
        let position = streams.len() - 1;
        if position == SCAN_SOURCES_MAX {
            let indexed = streams.iter().enumerate().map(|(position, stream)| (stream.source.clone(), position));
            self.index.extend(indexed);
        } else if position > SCAN_SOURCES_MAX {
            self.index.insert(streams[position].source.clone(), position);
        }
        position
    }

    /// Take the open batch, if any.
    pub fn flush(&mut self) -> Option<Batch> {
        (self.open.lines > 0).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        self.index.clear();
        self.opened_at = None;
        // The next batch's streams are allocated here, at their usual size, rather than
        // grown from nothing by the first `push` (8,008 batches on seed 3). Callgrind: seed 2
        // 351.82 M -> 351.43 M, seed 3 400.32 M -> 399.76 M, seed 19 870.42 M -> 870.02 M.
        // Its fields named, not `..Batch::default()`, which makes and drops a default
        // batch's empty streams out of line (seed 2 348.83 M -> 348.64 M, seed 3 396.45 M
        // -> 396.16 M, seed 19 867.38 M -> 867.18 M).
        let next = Batch { streams: Vec::with_capacity(STREAMS_FIRST), bytes: 0, lines: 0 };
        std::mem::replace(&mut self.open, next)
    }
}

/// The dispatcher task body.
pub async fn run_dispatcher(
    rt: Arc<dyn Rt>,
    config: PipelineConfig,
    mut queue: QueueReceiver,
    batches: mpsc::Sender<Batch>,
) {
    let mut builder = BatchBuilder::new(config.batch_bytes_max, config.batch_lines_max);
    let mut full = Vec::new();
    // One flush timer, made on the first batch and reset to each batch's deadline, armed
    // while a batch is open; disarmed, it is moved to [`NEVER`] (which cancels it: the
    // old deadline wakes no one). A `sleep_until` per batch boxed a new sleep each time
    // (callgrind: seed 2 350.70 M -> 350.21 M, seed 3 398.64 M -> 397.88 M, seed 19
    // 869.26 M -> 868.75 M).
    let mut flush_timer: Option<BoxTimer> = None;
    let mut flush_armed = false;
    loop {
        // A biased select, written out: the next chunk, else the armed flush timer. The
        // same polls in the same order as `tokio::select!`, without its per-pass
        // bookkeeping and the two futures it made (callgrind: see `Woke`).
        let woke = poll_fn(|cx| {
            if let Poll::Ready(chunk) = queue.poll_recv(cx) {
                return Poll::Ready(Woke::Chunk(chunk));
            }
            match flush_timer.as_mut().filter(|_| flush_armed) {
                Some(timer) => timer.as_mut().poll(cx).map(|()| Woke::Flush),
                None => Poll::Pending,
            }
        })
        .await;
        let chunk = match woke {
            Woke::Chunk(chunk) => chunk,
            Woke::Flush => {
                flush_armed = false;
                if let Some(batch) = builder.flush() {
                    if send(&batches, batch).await.is_err() {
                        return;
                    }
                }
                continue;
            }
        };
        let Some(chunk) = chunk else { break };
        builder.handle_chunk(rt.now(), chunk, &mut full);
        // Most chunks fill no batch: no drain is made and dropped for them (callgrind: seed 2
        // 348.64 M -> 348.23 M, seed 3 396.16 M -> 395.68 M, seed 19 867.18 M -> 866.74 M).
        if !full.is_empty() {
            for batch in full.drain(..) {
                if send(&batches, batch).await.is_err() {
                    return;
                }
            }
        }
        match builder.opened_at() {
            Some(opened_at) if !flush_armed => {
                let deadline = opened_at + config.batch_wait;
                let timer = flush_timer.get_or_insert_with(|| rt.timer(deadline));
                timer.as_mut().reset(deadline);
                flush_armed = true;
            }
            Some(_) => {}
            None if flush_armed => {
                flush_armed = false;
                if let Some(timer) = flush_timer.as_mut() {
                    timer.as_mut().reset(NEVER);
                }
            }
            None => {}
        }
    }
    if let Some(batch) = builder.flush() {
        let _ = send(&batches, batch).await;
    }
}

/// What the dispatcher's wait ended with. Callgrind: seed 3 345.09 M -> 344.14 M, seed 19
/// 753.21 M -> 752.43 M, seed 2 305.14 M -> 304.41 M.
enum Woke {
    Chunk(Option<Chunk>),
    Flush,
}

/// `batches.send(batch)`, without its future when the channel has room (the usual case:
/// the sink worker takes each batch before the next one is full): the same batch goes to
/// the same place in the same order; only the semaphore's `Acquire` future is skipped,
/// and with it a cooperative-budget point of tokio's (the task still yields at every
/// `queue.recv()`). Callgrind: seed 2 351.43 M -> 350.70 M, seed 3 399.76 M -> 398.64 M,
/// seed 19 870.02 M -> 869.26 M.
async fn send(batches: &mpsc::Sender<Batch>, batch: Batch) -> Result<(), ()> {
    match batches.try_send(batch) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(batch)) => batches.send(batch).await.map_err(drop),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
    }
}
