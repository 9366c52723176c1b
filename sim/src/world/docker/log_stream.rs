//! The log stream `SimDocker::logs` returns: frames rendered lazily from a cursor.
//!
//! Owns: one reader's position in one container's log, the bytes rendered but not yet
//! handed out, and the fault the world injected into this stream.
//!
//! ## Behaviour
//! Each poll renders frames from the cursor (at most about 64 KiB at a time, never the
//! whole log) and hands out a chunk; a quarter of the chunks (by default) are cut at a
//! random byte, so chunk boundaries fall inside headers and payloads. At the end of the
//! log a `follow` stream waits for new entries and ends once its container stops (after
//! the entries written before the stop); a non-follow stream ends at the end of the log
//! as it was when the request was made.
//!
//! ## Faults ([`StreamFault`])
//! - `End`: a clean end of stream at the next frame boundary, container still running.
//! - `Stall`: never yields again and never ends (only a daemon restart or `docker rm`
//!   ends it), like bollard #251 and moby #37646.
//! - `ErrorMidFrame`: hands out the next bytes up to the middle of a frame, then
//!   `Err(EngineError::Unavailable)`, then the end.
//! - `Trickle`: chunks of at most `chunk_bytes` with `delay` of virtual time between.
//!
//! Promises: the stream is counted open from `logs` until it is dropped (ended or not);
//! dropping it removes every trace of it from the model.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use engine::port::EngineError;
use engine::rt::{BoxFuture, Rt};
use futures::Stream;

use super::log::{LogCursor, Qualify, TimestampText};
use super::state::{DockerState, StreamEnd};
use crate::executor::SimRng;

/// A fault injected into an open log stream (or armed for the next one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFault {
    /// Ends cleanly while the container runs.
    End,
    /// Never yields again and never ends.
    Stall,
    /// Yields up to the middle of a frame, then an error, then ends.
    ErrorMidFrame,
    /// Yields at most `chunk_bytes` per chunk, `delay` apart.
    Trickle { chunk_bytes: usize, delay: Duration },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Streaming,
    /// Hand out `Err` at the next poll, then end.
    ErrorNext,
    Done,
}

pub(crate) struct SimLogStream {
    state: Arc<Mutex<DockerState>>,
    rt: Arc<dyn Rt>,
    stream_id: u64,
    /// The container's serial: its log is `state.logs[serial]`.
    serial: usize,
    cursor: LogCursor,
    qualify: [Qualify; 2],
    /// Rendered, not yet handed out; always ends with a whole frame.
    pending: Bytes,
    /// Length of the last frame in `pending` (it may be partly handed out already).
    last_frame_len: usize,
    rng: SimRng,
    timestamps: TimestampText,
    trickle_sleep: Option<BoxFuture<()>>,
    phase: Phase,
}

impl SimLogStream {
    pub(crate) fn new(
        state: Arc<Mutex<DockerState>>,
        rt: Arc<dyn Rt>,
        stream_id: u64,
        serial: usize,
        cursor: LogCursor,
        qualify: [Qualify; 2],
        rng: SimRng,
    ) -> SimLogStream {
        SimLogStream {
            state,
            rt,
            stream_id,
            serial,
            cursor,
            qualify,
            pending: Bytes::new(),
            last_frame_len: 0,
            rng,
            timestamps: TimestampText::default(),
            trickle_sleep: None,
            phase: Phase::Streaming,
        }
    }

    /// Render more frames into `pending` if it is empty. Returns whether the log is
    /// exhausted for this reader (at its limit, or at the end when not following).
    fn refill(&mut self, state: &mut DockerState) -> bool {
        let record = &state.log_streams[&self.stream_id];
        let limit = record.limit;
        let log = &state.logs[self.serial];
        if self.pending.is_empty() {
            let target = state.chunk_bytes_max;
            let until = limit.unwrap_or(LogCursor { burst: usize::MAX, entry: 0 });
            let mut out = Vec::with_capacity(log.render_bytes_estimate(self.cursor, until, target));
            let (last_frame, entries) = log.render(
                &mut self.cursor,
                &mut self.qualify,
                until,
                target,
                &mut out,
                &mut self.timestamps,
            );
            if !out.is_empty() {
                self.last_frame_len = last_frame;
                self.pending = Bytes::from(out);
                state.counters.log_entries_delivered += entries;
            }
        }
        let log_end = log.end();
        let exhausted_at = limit.unwrap_or(LogCursor { burst: usize::MAX, entry: 0 }).min(log_end);
        self.pending.is_empty() && limit.is_some() && self.cursor >= exhausted_at
    }

    /// Hand out up to `max` pending bytes (cut at a random point sometimes).
    fn take_chunk(&mut self, state: &mut DockerState, max: usize) -> Bytes {
        let mut len = self.pending.len().min(max);
        if len > 1 && self.rng.chance(state.chunk_split_chance) {
            len = self.rng.range(1..len as u64) as usize;
        }
        state.counters.log_bytes_delivered += len as u64;
        self.pending.split_to(len)
    }

    fn finish(&mut self) -> Poll<Option<Result<Bytes, EngineError>>> {
        self.phase = Phase::Done;
        Poll::Ready(None)
    }
}

impl Stream for SimLogStream {
    type Item = Result<Bytes, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.phase {
            Phase::Done => return Poll::Ready(None),
            Phase::ErrorNext => {
                this.phase = Phase::Done;
                let error = EngineError::Unavailable("connection reset in the middle of a frame".into());
                return Poll::Ready(Some(Err(error)));
            }
            Phase::Streaming => {}
        }
        // Trickle: wait out the delay before taking the lock.
        if let Some(sleep) = this.trickle_sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.trickle_sleep = None;
        }
        let state_arc = this.state.clone();
        let mut state = state_arc.lock().unwrap();
        let record = state.log_streams.get_mut(&this.stream_id).expect("open stream has a record");
        match record.end.clone() {
            Some(StreamEnd::Eof) => return this.finish(),
            Some(StreamEnd::Error(error)) => {
                this.phase = Phase::Done;
                return Poll::Ready(Some(Err(error)));
            }
            None => {}
        }
        let fault = record.fault;
        match fault {
            Some(StreamFault::Stall) => {
                record.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Some(StreamFault::End) => {
                if this.pending.is_empty() {
                    return this.finish();
                }
                let all = this.pending.len();
                state.counters.log_bytes_delivered += all as u64;
                return Poll::Ready(Some(Ok(this.pending.split_to(all))));
            }
            Some(StreamFault::ErrorMidFrame) => {
                this.refill(&mut state);
                let pending = this.pending.len();
                let last_start = pending.saturating_sub(this.last_frame_len);
                let cut = if pending > this.last_frame_len {
                    last_start + this.last_frame_len / 2
                } else {
                    pending.saturating_sub(1)
                };
                this.phase = Phase::ErrorNext;
                if cut == 0 {
                    this.phase = Phase::Done;
                    let error = EngineError::Unavailable("connection reset".into());
                    return Poll::Ready(Some(Err(error)));
                }
                state.counters.log_bytes_delivered += cut as u64;
                let chunk = this.pending.split_to(cut);
                this.pending = Bytes::new();
                return Poll::Ready(Some(Ok(chunk)));
            }
            Some(StreamFault::Trickle { .. }) | None => {}
        }
        let exhausted = this.refill(&mut state);
        if !this.pending.is_empty() {
            let max = match fault {
                Some(StreamFault::Trickle { chunk_bytes, delay }) => {
                    this.trickle_sleep = Some(this.rt.sleep(delay));
                    chunk_bytes.max(1)
                }
                _ => usize::MAX,
            };
            let chunk = this.take_chunk(&mut state, max);
            return Poll::Ready(Some(Ok(chunk)));
        }
        if exhausted {
            return this.finish();
        }
        let record = state.log_streams.get_mut(&this.stream_id).expect("open stream has a record");
        record.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for SimLogStream {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.lock() {
            state.close_log_stream(self.stream_id);
        }
    }
}
