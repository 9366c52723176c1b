//! One container's supervisor: the task that owns its log stream.
//!
//! Every decision (when to take a slot, open, rotate, declare a stall, read a stopped
//! container to its end, back off, give up) is made by the sans-IO [`Machine`]; this
//! task only performs the machine's actions — wait in the pool, open and drop the
//! stream, inspect, finish —, feeds it what happened, moves bytes from the stream
//! through the [`LogReader`] into the queue, and sleeps until the machine's next
//! timeout. The stream is polled here, by the owner, so "rotate" is simply dropping it
//! and opening a new one: no reader task can be left behind.
//!
//! One `biased` select waits for, in order: news from discovery (start, stop, rename,
//! removal), a yield request from the pool (someone waits for a slot), the slot this
//! task queued for, the machine's timer (rotation, stall/heartbeat, backoff, the nudge
//! of a waiter) and the stream. One timer ([`crate::rt::Timer`]) follows the machine's
//! `poll_timeout`: moved when it moves, it wakes the task only when a deadline is due.

use std::future::poll_fn;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::StreamExt;
use tokio::sync::watch;

use crate::container::machine::{Action, DropWhy, FirstOpen, Inspected, Machine, MachineConfig, OpenFailure};
use crate::container::pool::StreamSlot;
use crate::container::reader::{LogReader, ReadError, ReadStats, Run};
use crate::container::{ContainerState, MonitorShared};
use crate::model::{ContainerId, Labels, SourceId, StdStream};
use crate::pipeline::queue::{Chunk, ReaderHold};
use crate::port::{ContainerCheckpoint, EngineError, LogOptions, LogStream};
use crate::rt::{unit_from_bits, BoxFuture, BoxTimer, Instant};
use crate::telemetry::events::{
    InspectFailed, LinesRead, LogGapFound, MalformedFrame, StreamFailed, StreamOpened, StreamRotated, StreamYielded,
    TailUnread,
};

pub struct Supervisor {
    shared: Arc<MonitorShared>,
    id: ContainerId,
    state: watch::Receiver<ContainerState>,
    reader: LogReader,
    /// The reader's buffers, charged to the queue's budget.
    hold: ReaderHold,
    machine: Machine,
    sources: [SourceId; 2],
    /// The labels of both streams while the labeler collects the container.
    labels: Option<[Labels; 2]>,
}

/// What the task holds besides the machine: the pool wait, the slot and the stream.
#[derive(Default)]
struct Held {
    acquire: Option<BoxFuture<StreamSlot>>,
    slot: Option<StreamSlot>,
    stream: Option<LogStream>,
    #[cfg(feature = "broken-variants")]
    hook: Option<crate::container::broken::StreamHook>,
    /// The hook of a stream just dropped, awaited before the next action.
    #[cfg(feature = "broken-variants")]
    dropped_hook: Option<crate::container::broken::StreamHook>,
}

impl Supervisor {
    /// `first_open` is where to start if nothing of this container was queued yet
    /// (decided by discovery when it first saw the container).
    pub fn new(
        shared: Arc<MonitorShared>,
        id: ContainerId,
        state: watch::Receiver<ContainerState>,
        resume: ContainerCheckpoint,
        first_open: FirstOpen,
    ) -> Supervisor {
        let config = &shared.config;
        let queue_bytes_max = shared.queue.chunk_bytes_max();
        let run_bytes_max = (queue_bytes_max / 4).max(config.line_bytes_max + 1024).min(queue_bytes_max);
        let reader = LogReader::new(config.line_bytes_max, config.frame_bytes_max, run_bytes_max, resume);
        let machine = Machine::new(MachineConfig::from(config), first_open, reader.since_secs(config.since_skew));
        let sources = [
            SourceId::Container { id: id.clone(), stream: StdStream::Stdout },
            SourceId::Container { id: id.clone(), stream: StdStream::Stderr },
        ];
        let hold = shared.queue.reader_hold();
        Supervisor { shared, id, state, reader, hold, machine, sources, labels: None }
    }

    /// The task body: runs until the container is removed (or the task is cancelled).
    pub async fn run(mut self) {
        #[cfg(feature = "broken-variants")]
        crate::container::broken::on_start(&self.shared);
        let shared = self.shared.clone();
        let rt = &shared.rt;
        let mut held = Held::default();
        self.take_state();
        // The machine's deadline, and the timer that follows it (made at the first one).
        let mut timer_at: Option<Instant> = None;
        let mut timer: Option<BoxTimer> = None;
        let mut runs: Vec<Run> = Vec::new();
        let mut chunks: Vec<Chunk> = Vec::new();
        // One wait for a state change lives across the iterations (a new one only after
        // it fired), on a clone of the receiver; `self.state` marks what was seen. Once
        // its waiter is registered it is polled only when there is news, which decides
        // every iteration exactly as polling `self.state.changed()` first would.
        let mut state_changed = pin!(next_change(self.state.clone()));
        let mut state_armed = false;
        // Discovery dropped the sender (the container is removed): no more news.
        let mut state_closed = false;
        loop {
            // Only opening and inspecting wait: every other action is done without an
            // `async fn` call, whose future cost more than most actions (callgrind: seed 1,
            // 273 k actions, 1,443.5 M -> 1,435.5 M instructions).
            while let Some(action) = self.machine.poll_action() {
                let go_on = match action {
                    Action::Open(options) => {
                        self.open(options, &mut held).await;
                        true
                    }
                    Action::Inspect => {
                        self.inspect().await;
                        true
                    }
                    action => self.perform_at_once(action, &mut held),
                };
                #[cfg(feature = "broken-variants")]
                if let Some(hook) = held.dropped_hook.take() {
                    hook.after_stream().await;
                }
                if !go_on {
                    return;
                }
            }
            // The timer follows the machine's deadline, which data pushes later on every
            // chunk: it is moved, so it never wakes the task for a deadline that has
            // gone. Arming only for an earlier deadline cost a no-op wake-up and
            // `handle_timeout` instead: 7.6 k of seed 85's 15.7 k timeouts, 58 k of seed
            // 19's 123 k (polls per seed 0.86x on seeds 0..99; callgrind: seed 85
            // 460.1 M -> 447.7 M instructions, seed 19 1,125.0 M -> 1,087.7 M).
            let wanted = self.machine.poll_timeout();
            if wanted != timer_at {
                timer_at = wanted;
                match (wanted, timer.as_mut()) {
                    (Some(wanted), Some(timer)) => timer.as_mut().reset(wanted),
                    (Some(wanted), None) => timer = Some(rt.timer(wanted)),
                    (None, _) => timer = None,
                }
            }
            let state_news = poll_fn(|cx| {
                if state_closed {
                    return Poll::Pending;
                }
                if state_armed && !self.state.has_changed().unwrap_or(true) {
                    return Poll::Pending;
                }
                state_armed = true;
                state_changed.as_mut().poll(cx)
            });
            tokio::select! {
                biased;
                changed = state_news => {
                    if changed.is_err() {
                        // Discovery dropped the sender: as good as removed (it marks the
                        // state removed before it does).
                        state_closed = true;
                        let collected = self.labels.is_some();
                        self.machine.handle_state(rt.now(), false, true, collected);
                        continue;
                    }
                    self.take_state();
                    state_changed.set(next_change(self.state.clone()));
                    state_armed = false;
                }
                _ = poll_fn(|cx| yield_requested(&mut held.slot, cx)) => {
                    self.machine.handle_yield_requested(rt.now())
                }
                slot = poll_fn(|cx| acquired(&mut held.acquire, cx)) => {
                    held.acquire = None;
                    held.slot = Some(slot);
                    self.machine.handle_slot_granted(rt.now());
                }
                _ = poll_fn(|cx| fired(&mut timer, timer_at, cx)) => {
                    timer_at = None;
                    self.machine.handle_timeout(rt.now());
                }
                item = poll_fn(|cx| next_item(&mut held.stream, cx)) => match item {
                    Some(Ok(bytes)) => {
                        // Reading is not an `async fn`: only queueing waits, and only when
                        // there are lines. A read's future, built and moved into this one
                        // at every chunk, cost more than most reads (callgrind: seed 1
                        // 1,435.5 M -> 1,409.5 M instructions, seed 85 626.1 M -> 618.4 M).
                        let result = self.read(bytes, &mut runs, &mut chunks);
                        if !chunks.is_empty() && shared.queue.send_read(&mut chunks).await.is_err() {
                            return; // The queue is closed: shutdown.
                        }
                        self.handle_read(result);
                    }
                    Some(Err(error)) => {
                        let now = rt.now();
                        StreamFailed { container: self.id.short(), error: &error }.emit(&shared.telemetry, now);
                        self.machine.handle_stream_failed(now, self.unit());
                    }
                    None => {
                        #[cfg(feature = "broken-variants")]
                        if shared.config.variant == crate::container::SupervisorVariant::TailOvercounted {
                            TailUnread.emit(&shared.telemetry);
                        }
                        self.machine.handle_stream_ended(rt.now())
                    }
                },
            }
        }
    }

    /// Hand discovery's latest view to the machine.
    fn take_state(&mut self) {
        let state = self.state.borrow_and_update().clone();
        let labeler = &self.shared.labeler;
        self.labels =
            match (labeler.labels(&state.info, StdStream::Stdout), labeler.labels(&state.info, StdStream::Stderr)) {
                (Some(stdout), Some(stderr)) => Some([stdout, stderr]),
                _ => None, // excluded (for now: a rename may change that)
            };
        let now = self.shared.rt.now();
        self.machine.handle_state(now, state.info.running, state.removed, self.labels.is_some());
    }

    fn unit(&self) -> f64 {
        let unit = unit_from_bits(self.shared.rt.rand_u64());
        #[cfg(feature = "broken-variants")]
        let unit = crate::container::broken::hidden_unit(&self.shared, unit);
        unit
    }

    /// Perform one action of the machine that needs no waiting (all but opening and
    /// inspecting); false when the task must end.
    fn perform_at_once(&mut self, action: Action, held: &mut Held) -> bool {
        let shared = &self.shared;
        let telemetry = &shared.telemetry;
        match action {
            Action::TakeSlot => {
                held.acquire = Some(Box::pin({
                    let pool = shared.pool.clone();
                    async move { pool.acquire().await }
                }))
            }
            Action::NudgeHolder => {
                shared.pool.ask_oldest_to_yield();
            }
            Action::ReleaseSlot => {
                held.acquire = None;
                held.slot = None;
            }
            Action::DropStream(why) => {
                held.stream = None;
                match why {
                    DropWhy::Rotate => StreamRotated.emit(telemetry),
                    DropWhy::Yield => StreamYielded.emit(telemetry),
                    DropWhy::Stall | DropWhy::Ended | DropWhy::Failed | DropWhy::Done => {}
                }
                #[cfg(feature = "broken-variants")]
                {
                    held.dropped_hook = held.hook.take();
                }
            }
            Action::Open(_) | Action::Inspect => unreachable!("opening and inspecting wait: see `open`, `inspect`"),
            Action::Finish => {
                #[cfg(feature = "broken-variants")]
                if shared.config.variant == crate::container::SupervisorVariant::TailUncounted {
                    return false;
                }
                if self.labels.is_some() && !self.machine.tail_read() {
                    TailUnread.emit(telemetry);
                }
                return false;
            }
        }
        true
    }

    /// [`Action::Open`].
    async fn open(&mut self, options: LogOptions, held: &mut Held) {
        let shared = self.shared.clone();
        let (rt, telemetry) = (&shared.rt, &shared.telemetry);
        StreamOpened.emit(telemetry);
        match shared.docker.logs(&self.id, options).await {
            Ok(stream) => {
                #[cfg(feature = "broken-variants")]
                let stream = {
                    let (stream, hook) = crate::container::broken::wrap_stream(&shared, stream);
                    held.hook = Some(hook);
                    stream
                };
                self.reader.set_tty(self.state.borrow().info.tty);
                self.reader.reopen();
                self.hold.set(self.reader.buffered_bytes());
                if options.tail.is_none() {
                    self.reader.expect_resume_position(options.since_secs);
                } else {
                    self.reader.cut_after_tail(rt.wall());
                }
                held.stream = Some(stream);
                self.machine.handle_opened(rt.now(), rt.wall(), self.unit());
            }
            Err(EngineError::NotFound(_)) => self.machine.handle_open_failed(rt.now(), OpenFailure::NotFound, 0.0),
            Err(error) => {
                let now = rt.now();
                StreamFailed { container: self.id.short(), error: &error }.emit(telemetry, now);
                self.machine.handle_open_failed(now, OpenFailure::Other, self.unit());
            }
        }
    }

    /// [`Action::Inspect`].
    async fn inspect(&mut self) {
        let shared = self.shared.clone();
        let (rt, telemetry) = (&shared.rt, &shared.telemetry);
        let answer = match shared.docker.inspect(&self.id).await {
            Ok(info) if info.running => Inspected::Running,
            Ok(_) => Inspected::Stopped,
            Err(EngineError::NotFound(_)) => Inspected::NotFound,
            Err(error) => {
                InspectFailed { container: self.id.short(), error: &error }.emit(telemetry, rt.now());
                Inspected::Failed
            }
        };
        self.machine.handle_inspected(rt.now(), answer, self.unit());
    }

    /// Read one chunk: its lines go to `chunks` (to be queued), or are dropped while the
    /// container is not collected. `runs` and `chunks` are buffers kept across reads
    /// (`runs` is empty between them, `chunks` once they are queued).
    fn read(&mut self, bytes: bytes::Bytes, runs: &mut Vec<Run>, chunks: &mut Vec<Chunk>) -> Result<(), ReadError> {
        let shared = &self.shared;
        let telemetry = &shared.telemetry;
        let mut stats = ReadStats::default();
        let result = self.reader.handle_chunk(bytes, runs, &mut stats);
        // What the reader keeps for the next chunk is charged before its lines are
        // queued (a growth never waits; the sends wait for any debt it makes).
        self.hold.set(self.reader.buffered_bytes());
        let ReadStats { lines, bytes, truncated, duplicates, gaps } = stats;
        LinesRead { lines, bytes, truncated, duplicates }.emit(telemetry);
        #[cfg(feature = "broken-variants")]
        let gaps = if shared.config.variant == crate::container::SupervisorVariant::GapUncounted { 0 } else { gaps };
        if gaps > 0 {
            LogGapFound { container: self.id.short(), gaps }.emit(telemetry, shared.rt.now());
        }
        if let Some(labels) = &self.labels {
            chunks.extend(runs.drain(..).map(|run| Chunk {
                source: self.sources[run.stream.index()].clone(),
                labels: labels[run.stream.index()].clone(),
                lines: run.lines,
                bytes: run.bytes,
            }));
        }
        runs.clear();
        result
    }

    /// After a chunk was read and its lines queued (the queue may have made us wait):
    /// the stream is alive, or it sent a malformed frame.
    fn handle_read(&mut self, result: Result<(), ReadError>) {
        let shared = &self.shared;
        let now = shared.rt.now();
        self.machine.handle_data(now, self.reader.since_secs(shared.config.since_skew));
        if let Err(error) = result {
            MalformedFrame { container: self.id.short(), detail: &error.to_string() }.emit(&shared.telemetry, now);
            self.machine.handle_stream_failed(now, self.unit());
        }
    }
}

/// Completes when `state` changes, or with an error once its sender is gone.
async fn next_change(mut state: watch::Receiver<ContainerState>) -> Result<(), watch::error::RecvError> {
    state.changed().await
}

// The select's branches for what `Held` may hold: pending while it holds nothing.
// Plain poll functions, not `async fn`s: the select polls them on every wake of the task,
// and a fresh async state machine per branch and poll cost more than the polls they
// wrap (callgrind: seed 1 1,459.7 M -> 1,443.5 M instructions, seed 85 629.8 M ->
// 626.0 M).

fn yield_requested(slot: &mut Option<StreamSlot>, cx: &mut Context<'_>) -> Poll<()> {
    match slot {
        Some(slot) => slot.poll_yield_requested(cx),
        None => Poll::Pending,
    }
}

fn acquired(acquire: &mut Option<BoxFuture<StreamSlot>>, cx: &mut Context<'_>) -> Poll<StreamSlot> {
    match acquire {
        Some(acquire) => Pin::new(acquire).poll(cx),
        None => Poll::Pending,
    }
}

fn next_item(stream: &mut Option<LogStream>, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, EngineError>>> {
    match stream {
        Some(stream) => stream.poll_next_unpin(cx),
        None => Poll::Pending,
    }
}

/// The timer, while it is armed (`armed`: the machine has a deadline it follows).
fn fired(timer: &mut Option<BoxTimer>, armed: Option<Instant>, cx: &mut Context<'_>) -> Poll<()> {
    match (timer, armed) {
        (Some(timer), Some(_)) => timer.as_mut().poll(cx),
        _ => Poll::Pending,
    }
}
