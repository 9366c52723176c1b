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
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use engine::model::StdStream;
use engine::port::EngineError;
use engine::rt::{BoxFuture, UnixNanos};
use futures::Stream;

use super::buffers::BufferPool;
use super::log::{LogCursor, Qualify, ReadStart, ReaderInfo, RenderedRun};
use super::state::{DockerState, StreamEnd};
use super::stream_table::Slot;
use super::unsettled::{Slack, Unsettled};
use super::DockerShared;
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
    docker: Arc<DockerShared>,
    /// Its id, and where its record is in `state.log_streams`.
    record: Slot,
    /// The container's serial: its log is `state.logs[serial]`.
    serial: usize,
    reader: Reader,
    trickle_sleep: Option<BoxFuture<()>>,
    phase: Phase,
}

/// The reader's side of a stream: where it is, and what is rendered but not handed out.
/// Apart from the shared state, so a poll can lock the state and update this at once.
struct Reader {
    cursor: LogCursor,
    qualify: [Qualify; 2],
    /// Rendered, not yet handed out; always ends with a whole frame.
    pending: Bytes,
    /// Length of the last frame in `pending` (it may be partly handed out already).
    last_frame_len: usize,
    /// Bytes of the last render (`pending` is their tail), and which entries they are:
    /// a reader handed part of them has the frames before the cut whole.
    rendered_len: usize,
    runs: Vec<RenderedRun>,
    /// Frames of more than one burst are rendered here, then split off into `pending`
    /// (one burst's are a slice of the kept ones: [`super::frames`]). Once the engine
    /// has dropped every line of earlier chunks the allocation is reused, and chunks are
    /// handed out as shared `Bytes` from the start (no promotion on the first slice).
    buffer: BytesMut,
    /// Whether frames were ever rendered into `buffer` (its allocation may be shared
    /// with chunks the engine holds even when its capacity left is 0).
    buffer_used: bool,
    rng: SimRng,
    /// Per output stream, the first line this reader may count as handed (see
    /// [`super::unsettled`]); resolved at the first render, from the `since` filter.
    counts_from: Option<[u64; 2]>,
    /// The cursor before the last render: where the lines in `pending` start.
    rendered_from: LogCursor,
    /// The request, for the log's account of gaps a reader could notice.
    info: ReaderInfo,
    /// Its stream's slack in the world's account of unsettled bytes ([`Slack`]).
    slack: Slack,
    /// The host clock when the request was made: a `tail` reader's cut group is stamped
    /// at or before it (see `ContainerLog::past_tail_cut_groups`).
    opened_at: UnixNanos,
}

impl SimLogStream {
    pub(crate) fn new(
        docker: Arc<DockerShared>,
        record: Slot,
        serial: usize,
        start: ReadStart,
        rng: SimRng,
        info: ReaderInfo,
    ) -> SimLogStream {
        let ReadStart { cursor, qualify } = start;
        let reader = Reader {
            cursor,
            qualify,
            pending: Bytes::new(),
            last_frame_len: 0,
            rendered_len: 0,
            runs: Vec::new(),
            buffer: BytesMut::new(),
            buffer_used: false,
            rng,
            counts_from: None,
            rendered_from: cursor,
            info,
            slack: Slack::default(),
            opened_at: docker.rt.wall(),
        };
        SimLogStream { docker, record, serial, reader, trickle_sleep: None, phase: Phase::Streaming }
    }

    fn finish(&mut self) -> Poll<Option<Result<Bytes, EngineError>>> {
        self.phase = Phase::Done;
        Poll::Ready(None)
    }
}

impl Reader {
    /// Render more frames into `pending` if it is empty. Returns whether the log is
    /// exhausted for this reader (at its `limit`, the stream record's, or at the end
    /// when not following).
    #[inline]
    fn refill(&mut self, state: &mut DockerState, limit: Option<LogCursor>, serial: usize) -> bool {
        if !self.pending.is_empty() {
            // Frames still to hand out (a chunk cut short): nothing rendered, and not
            // exhausted. Answered here too, without the call (callgrind: seed 2 309.77 M
            // -> 309.34 M, seed 3 351.73 M -> 351.27 M, seed 19 810.14 M -> 808.38 M).
            // The since-skips of the last render are asked again, as every poll after a
            // render asks them: a burst open then may have closed since.
            state.logs[serial].record_since_skips(self.rendered_from, self.cursor, &self.qualify);
            return false;
        }
        if self.counts_from.is_some() && self.cursor == state.logs[serial].end() {
            // A reader that rendered before, at the end of the log with nothing pending
            // (most polls of a following stream): the render would find nothing, and
            // what it would set (`rendered_from`, `runs`, `qualify`) is read only after
            // the next render sets it again. Callgrind, seed 85 (40 k such polls):
            // 450.8 M → 447.1 M instructions; seed 19 (88 k), 1,112.1 M → 1,105.3 M.
            // Answered here, in the poll, without the call of the render's large frame
            // (callgrind: seed 2 311.67 M -> 310.59 M, seed 3 354.01 M -> 353.03 M, seed 19
            // 812.23 M -> 810.14 M).
            return limit.is_some();
        }
        self.render(state, limit, serial)
    }

    /// [`Self::refill`] of a reader with nothing pending, past its answer for one at the
    /// end of the log.
    #[inline(never)]
    fn render(&mut self, state: &mut DockerState, limit: Option<LogCursor>, serial: usize) -> bool {
        debug_assert!(self.pending.is_empty());
        let log = &state.logs[serial];
        let until = limit.unwrap_or(LogCursor { burst: usize::MAX, entry: 0 });
        let target = state.chunk_bytes_max;
        let (cursor, qualify) = (self.cursor, &self.qualify);
        let first_render = self.counts_from.is_none();
        let counts_from = *self.counts_from.get_or_insert_with(|| {
            let from = |stream: usize| match qualify[stream] {
                Qualify::From(at) => at.max(cursor),
                Qualify::Since(_) | Qualify::Each(_) => cursor,
            };
            Unsettled::start_lines(log, [from(0), from(1)])
        });
        // The agent drops a tail's first timestamp group unread (a first-sight loss), and
        // skips it again, with the lines before it, in a later replay.
        if first_render && self.info.tail {
            let past = log.past_tail_cut_groups(cursor, self.opened_at);
            state.unsettled.count_as_counted(serial, past);
        }
        let log = &state.logs[serial];
        self.rendered_from = self.cursor;
        log.refresh_qualify(&mut self.qualify, self.info.since);
        if self.runs.capacity() == 0 {
            self.runs = state.buffers.runs();
        }
        self.runs.clear();
        let plan = log.plan_render(&mut self.cursor, &mut self.qualify, until, target, &mut self.runs);
        if plan.bytes > 0 {
            // One burst's frames: a slice of the kept ones. Else rendered here.
            let kept = match &self.runs[..] {
                [run] => state.frames.run_frames(log, serial, run, &mut state.timestamps),
                _ => None,
            };
            self.pending = match kept {
                Some(frames) => frames,
                None => {
                    // The buffer is empty here: reuse its allocation if the engine
                    // dropped every earlier chunk and it is big enough, else start a
                    // new one (`reserve` would reallocate and copy the bytes already
                    // handed out).
                    if !self.buffer.try_reclaim(plan.bytes) {
                        let spent = std::mem::replace(&mut self.buffer, state.buffers.buffer(plan.bytes));
                        self.give_back_buffer(spent, &mut state.buffers);
                    }
                    self.buffer_used = true;
                    for run in &self.runs {
                        match state.frames.run_frames(log, serial, run, &mut state.timestamps) {
                            Some(frames) => self.buffer.extend_from_slice(&frames),
                            None => log.write_run(run, &mut self.buffer, &mut state.timestamps),
                        }
                    }
                    debug_assert_eq!(self.buffer.len(), plan.bytes);
                    self.buffer.split().freeze()
                }
            };
            let (last_frame, entries) = (plan.last_frame, plan.entries);
            self.last_frame_len = last_frame;
            self.rendered_len = plan.bytes;
            state.counters.log_entries_delivered += entries;
            let pending = self.pending.len() as u64;
            let skipped: Vec<_> = log
                .since_skipped(self.rendered_from, self.cursor, &self.qualify)
                .into_iter()
                .map(|(_, stream, lines)| (stream, lines))
                .collect();
            let rendered = (self.rendered_from, self.cursor);
            state.unsettled.rendered(log, serial, counts_from, rendered, pending, &skipped);
        }
        // Lines of a stepped stream its `since` skipped (host clock step): a named loss.
        state.logs[serial].record_since_skips(self.rendered_from, self.cursor, &self.qualify);
        let log = &state.logs[serial];
        let exhausted_at = until.min(log.end());
        self.pending.is_empty() && limit.is_some() && self.cursor >= exhausted_at
    }

    /// Keep `buffer` (this reader's, replaced or dropped) for later streams if it was
    /// ever allocated: it has room left, or frames were rendered into it.
    fn give_back_buffer(&self, buffer: BytesMut, buffers: &mut BufferPool) {
        if buffer.capacity() > 0 || self.buffer_used {
            buffers.give_buffer(buffer);
        }
    }

    /// Hand out up to `max` pending bytes (cut at a random point sometimes).
    /// The log counts the frames handed out whole read ([`Self::mark_handed`]).
    fn take_chunk(&mut self, state: &mut DockerState, serial: usize, max: usize) -> Bytes {
        let mut len = self.pending.len().min(max);
        if len > 1 && self.rng.chance(state.chunk_split_chance) {
            len = self.rng.range(1..len as u64) as usize;
        }
        state.counters.log_bytes_delivered += len as u64;
        let chunk = self.pending.split_to(len);
        self.mark_handed(state, serial);
        self.handed(state, serial, len, 0);
        chunk
    }

    /// The bytes of the last render before `pending` are handed out: the log counts
    /// every frame among them that was handed whole read (for the oracle's account of
    /// lines the world deleted unread, and of gaps).
    fn mark_handed(&self, state: &mut DockerState, serial: usize) {
        let log = &mut state.logs[serial];
        if self.pending.is_empty() {
            log.mark_read_by(self.cursor, self.info);
        } else if let Some(cursor) = log.whole_frames_in(&self.runs, self.rendered_len - self.pending.len()) {
            log.mark_read_by(cursor, self.info);
        }
    }

    /// Rendered bytes are dropped unhanded: their lines are not the agent's.
    fn discard(&self, state: &mut DockerState, serial: usize) {
        if self.pending.is_empty() {
            return;
        }
        let log = &state.logs[serial];
        let back = [StdStream::Stdout, StdStream::Stderr].map(|stream| log.lines_before(stream, self.rendered_from));
        state.unsettled.uncount(log, serial, back);
    }

    /// Count `len` bytes handed out (and `discarded` rendered ones dropped) in the
    /// world's account of unsettled bytes, which checks its bound.
    fn handed(&mut self, state: &mut DockerState, serial: usize, len: usize, discarded: usize) {
        let at_boundary = self.pending.is_empty() && !state.logs[serial].mid_line(self.cursor);
        state.unsettled.handed(&mut self.slack, len as u64, discarded as u64, at_boundary);
    }
}

/// Keep `waker` in `slot`, cloning only if it is not the one already there.
fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(current) if current.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
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
        let mut guard = this.docker.state.lock();
        let state = &mut *guard;
        let (serial, reader) = (this.serial, &mut this.reader);
        let record = state.log_streams.get_mut_at(&this.record).expect("open stream has a record");
        match &record.end {
            Some(StreamEnd::Eof) => {
                drop(guard);
                return this.finish();
            }
            Some(StreamEnd::Error(error)) => {
                let error = error.clone();
                drop(guard);
                this.phase = Phase::Done;
                return Poll::Ready(Some(Err(error)));
            }
            None => {}
        }
        let (fault, limit) = (record.fault, record.limit);
        match fault {
            Some(StreamFault::Stall) => {
                register(&mut record.waker, cx.waker());
                return Poll::Pending;
            }
            Some(StreamFault::End) => {
                if reader.pending.is_empty() {
                    drop(guard);
                    return this.finish();
                }
                let all = reader.pending.len();
                state.counters.log_bytes_delivered += all as u64;
                // Every rendered frame is handed out: read, as in `take_chunk`.
                state.logs[serial].mark_read_by(reader.cursor, reader.info);
                let chunk = reader.pending.split_to(all);
                reader.handed(state, serial, all, 0);
                return Poll::Ready(Some(Ok(chunk)));
            }
            Some(StreamFault::ErrorMidFrame) => {
                reader.refill(state, limit, serial);
                let pending = reader.pending.len();
                let last_frame_len = reader.last_frame_len;
                let last_start = pending.saturating_sub(last_frame_len);
                let cut =
                    if pending > last_frame_len { last_start + last_frame_len / 2 } else { pending.saturating_sub(1) };
                if cut == 0 {
                    drop(guard);
                    this.phase = Phase::Done;
                    let error = EngineError::Unavailable("connection reset".into());
                    return Poll::Ready(Some(Err(error)));
                }
                state.counters.log_bytes_delivered += cut as u64;
                let chunk = reader.pending.split_to(cut);
                reader.mark_handed(state, serial);
                reader.discard(state, serial);
                let discarded = std::mem::take(&mut reader.pending).len();
                reader.handed(state, serial, cut, discarded);
                drop(guard);
                this.phase = Phase::ErrorNext;
                return Poll::Ready(Some(Ok(chunk)));
            }
            Some(StreamFault::Trickle { .. }) | None => {}
        }
        let exhausted = reader.refill(state, limit, serial);
        if !reader.pending.is_empty() {
            let max = match fault {
                Some(StreamFault::Trickle { chunk_bytes, .. }) => chunk_bytes.max(1),
                _ => usize::MAX,
            };
            let chunk = reader.take_chunk(state, serial, max);
            drop(guard);
            if let Some(StreamFault::Trickle { delay, .. }) = fault {
                this.trickle_sleep = Some(Box::pin(this.docker.rt.sleep(delay)));
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        if exhausted {
            drop(guard);
            return this.finish();
        }
        let record = state.log_streams.get_mut_at(&this.record).expect("open stream has a record");
        register(&mut record.waker, cx.waker());
        Poll::Pending
    }
}

impl Drop for SimLogStream {
    fn drop(&mut self) {
        let mut state = self.docker.state.lock();
        let reader = &mut self.reader;
        // What `discard`, `give_back_buffer` and `give_runs` would do nothing with is
        // not handed to them: most streams end with nothing pending, and many never
        // rendered into a buffer of their own (one burst's frames are the kept ones).
        // Callgrind: seed 2 427.7 M → 426.6 M instructions, seed 3 467.7 M → 466.5 M,
        // seed 19 859.9 M → 857.2 M.
        if !reader.pending.is_empty() {
            reader.discard(&mut state, self.serial);
        }
        state.unsettled.closed(&reader.slack, reader.pending.len() as u64);
        state.close_log_stream(&self.record);
        if reader.buffer.capacity() > 0 || reader.buffer_used {
            let buffer = std::mem::take(&mut reader.buffer);
            reader.give_back_buffer(buffer, &mut state.buffers);
        }
        if reader.runs.capacity() > 0 {
            state.buffers.give_runs(std::mem::take(&mut reader.runs));
        }
    }
}
