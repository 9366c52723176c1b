//! One container's supervisor: the task that owns its log stream.
//!
//! Every decision (when to take a slot, open, rotate, declare a stall, read a stopped
//! container to its end, back off, give up) is made by the sans-IO [`Machine`]; this
//! task only performs the machine's actions — wait in the pool, open and drop the
//! stream, inspect, probe the log's last entry, finish —, feeds it what happened,
//! moves bytes from the stream through the [`LogReader`] into the queue, and sleeps
//! until the machine's next timeout. The stream is polled here, by the owner, so "rotate" is simply dropping it
//! and opening a new one: no reader task can be left behind.
//!
//! One biased select (a plain poll function, see `Event`) waits for, in order: news from
//! discovery (start, stop, rename, removal), a yield request from the pool (someone waits
//! for a slot), the slot this task queued for, the machine's timer (rotation,
//! stall/heartbeat, backoff, the nudge of a waiter) and the stream. One timer ([`crate::rt::Timer`]) follows the machine's
//! `poll_timeout`: moved when it moves, it wakes the task only when a deadline is due,
//! and once it has registered the task's waker it is polled again only when its
//! deadline has passed. Likewise the wait for a slot is polled again only when the
//! pool woke it.

use std::future::poll_fn;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use futures::StreamExt;
use tokio::sync::watch;

use crate::container::machine::{Action, DropWhy, FirstOpen, Inspected, Machine, MachineConfig, OpenFailure};
use crate::container::pool::{AcquireSlot, StreamSlot, YieldRequest};
use crate::container::reader::{LogReader, ReadError, ReadStats, Run};
use crate::container::retired::TailOutcome;
use crate::container::{ContainerState, MonitorShared};
use crate::model::{ContainerId, Labels, SourceId, StdStream};
use crate::pipeline::queue::{Chunk, ReaderHold};
use crate::port::{ContainerCheckpoint, ContainerInfo, EngineError, LogOptions, LogStream};
use crate::rt::{unit_from_bits, BoxTimer, Instant, Rt, UnixNanos};
use crate::telemetry::events::{
    InspectFailed, LinesRead, LogGapFound, MalformedFrame, StreamFailed, StreamOpened, StreamProbed, StreamRotated,
    StreamYielded, TailUnread,
};

/// The most a probe's answer (one entry: at most a 16 KiB piece of a line, its header and
/// timestamp) may take; more means Docker did not apply the `tail`.
const PROBE_BYTES_MAX: usize = 64 << 10;

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
    /// Reads the stall watchdog's probes (see [`LogReader::ready_probe`]).
    probe_reader: Option<LogReader>,
    /// Discovery's rechecks seen (see [`ContainerState::rechecks`]).
    rechecks: u64,
    /// Discovery's unseen runs seen (see [`ContainerState::runs_unseen`]).
    runs_unseen: u64,
    /// The last `die` time seen (see [`ContainerState::died_at`]).
    died_at: Option<UnixNanos>,
    /// The info `labels` were worked out for.
    labeled: Option<ContainerInfo>,
}

/// What the task holds besides the machine: the pool wait, the slot and the stream.
#[derive(Default)]
struct Held {
    acquire: SlotWait,
    slot: Option<StreamSlot>,
    /// What each slot hears the pool's yield requests through (one slot at a time).
    yield_request: YieldRequest,
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
        Supervisor {
            shared,
            id,
            state,
            reader,
            hold,
            machine,
            sources,
            labels: None,
            probe_reader: None,
            rechecks: 0,
            runs_unseen: 0,
            died_at: None,
            labeled: None,
        }
    }

    /// The task body: runs until the container is removed (or the task is cancelled),
    /// and says whether it counted the tail unread.
    pub async fn run(mut self) -> TailOutcome {
        #[cfg(feature = "broken-variants")]
        crate::container::broken::on_start(&self.shared);
        let shared = self.shared.clone();
        let rt = &shared.rt;
        let mut held = Held::default();
        self.take_state();
        let mut timer = Alarm::default();
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
                let ended = match action {
                    Action::Open(options) => {
                        self.open(options, &mut held).await;
                        None
                    }
                    Action::Inspect => {
                        self.inspect().await;
                        None
                    }
                    Action::Probe => {
                        self.probe().await;
                        None
                    }
                    action => self.perform_at_once(action, &mut held),
                };
                #[cfg(feature = "broken-variants")]
                if let Some(hook) = held.dropped_hook.take() {
                    hook.after_stream().await;
                }
                if let Some(outcome) = ended {
                    return outcome;
                }
            }
            // The timer follows the machine's deadline (see `Alarm`).
            timer.follow(&**rt, self.machine.poll_timeout());
            // A biased select, written out: the first of these that is ready, in this
            // order (`tokio::select!`'s bookkeeping cost more than the polls: see `Event`).
            let event = poll_fn(|cx| {
                if !state_closed && (!state_armed || self.state.has_changed().unwrap_or(true)) {
                    state_armed = true;
                    if let Poll::Ready(changed) = state_changed.as_mut().poll(cx) {
                        return Poll::Ready(Event::State(changed));
                    }
                }
                if yield_requested(&mut held.slot, cx).is_ready() {
                    return Poll::Ready(Event::YieldRequested);
                }
                if let Poll::Ready(slot) = held.acquire.poll(cx) {
                    return Poll::Ready(Event::SlotGranted(slot));
                }
                if timer.poll(&**rt, cx).is_ready() {
                    return Poll::Ready(Event::Timeout);
                }
                next_item(&mut held.stream, cx).map(Event::Item)
            })
            .await;
            match event {
                Event::State(changed) => {
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
                Event::YieldRequested => self.machine.handle_yield_requested(rt.now()),
                Event::SlotGranted(slot) => {
                    held.slot = Some(slot);
                    self.machine.handle_slot_granted(rt.now());
                }
                Event::Timeout => self.machine.handle_timeout(rt.now()),
                Event::Item(item) => match item {
                    Some(Ok(bytes)) => {
                        // Reading is not an `async fn`: only queueing waits, and only when
                        // there are lines. A read's future, built and moved into this one
                        // at every chunk, cost more than most reads (callgrind: seed 1
                        // 1,435.5 M -> 1,409.5 M instructions, seed 85 626.1 M -> 618.4 M).
                        let result = self.read(bytes, &mut runs, &mut chunks);
                        if !chunks.is_empty() && shared.queue.send_read(&mut chunks).await.is_err() {
                            return TailOutcome::Other; // The queue is closed: shutdown.
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
        // The labels are worked out again only when the info changed: most news is a
        // recheck (every reconcile, for each container not running), which changes
        // nothing else. Callgrind, seed 2 (30 s reconciles): 323.75 M -> 314.40 M.
        let state = self.state.borrow_and_update();
        let (running, removed, rechecks) = (state.info.running, state.removed, state.rechecks);
        let (runs_unseen, died_at) = (state.runs_unseen, state.died_at);
        let changed = self.labeled.as_ref() != Some(&state.info);
        let info = changed.then(|| state.info.clone());
        drop(state);
        if let Some(info) = info {
            let labeler = &self.shared.labeler;
            self.labels = match (labeler.labels(&info, StdStream::Stdout), labeler.labels(&info, StdStream::Stderr)) {
                (Some(stdout), Some(stderr)) => Some([stdout, stderr]),
                _ => None, // excluded (for now: a rename may change that)
            };
            self.labeled = Some(info);
        }
        let now = self.shared.rt.now();
        // Before the state: a `destroy` heard with the `die` finishes the machine there.
        if runs_unseen != std::mem::replace(&mut self.runs_unseen, runs_unseen) {
            self.machine.handle_ran_unseen();
        }
        if let Some(at) = died_at.filter(|_| died_at != std::mem::replace(&mut self.died_at, died_at)) {
            self.machine.handle_died(at);
        }
        self.machine.handle_state(now, running, removed, self.labels.is_some());
        if rechecks != std::mem::replace(&mut self.rechecks, rechecks) {
            self.machine.handle_recheck(now);
        }
    }

    fn unit(&self) -> f64 {
        let unit = unit_from_bits(self.shared.rt.rand_u64());
        #[cfg(feature = "broken-variants")]
        let unit = crate::container::broken::hidden_unit(&self.shared, unit);
        unit
    }

    /// Perform one action of the machine that needs no waiting (all but opening and
    /// inspecting); `Some` when the task must end, with how.
    fn perform_at_once(&mut self, action: Action, held: &mut Held) -> Option<TailOutcome> {
        let shared = &self.shared;
        let telemetry = &shared.telemetry;
        match action {
            Action::TakeSlot => held.acquire.start(shared.pool.acquire_for(held.yield_request.clone())),
            Action::NudgeHolder => {
                shared.pool.ask_oldest_to_yield();
            }
            Action::ReleaseSlot => {
                held.acquire.cancel();
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
            Action::Open(_) | Action::Inspect | Action::Probe => {
                unreachable!("opening, inspecting and probing wait: see `open`, `inspect`, `probe`")
            }
            Action::Finish => {
                #[cfg(feature = "broken-variants")]
                if shared.config.variant == crate::container::SupervisorVariant::TailUncounted {
                    // Said counted: discovery counts none for it either.
                    return Some(TailOutcome::Counted);
                }
                if self.labels.is_none() {
                    return Some(TailOutcome::Other);
                }
                if self.machine.tail_read() {
                    return Some(TailOutcome::Read);
                }
                TailUnread.emit(telemetry);
                return Some(TailOutcome::Counted);
            }
        }
        None
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
        self.machine.handle_inspected(rt.now(), rt.wall(), answer, self.unit());
    }

    /// [`Action::Probe`]: is the log's last entry (a non-follow request with `tail = 1`)
    /// the last line read? Any failure, or an answer longer than a probe can be, says no.
    async fn probe(&mut self) {
        let shared = self.shared.clone();
        let options = LogOptions { follow: false, since_secs: 0, tail: Some(1) };
        let caught_up = match shared.docker.logs(&self.id, options).await {
            Ok(mut stream) => {
                let reader = self.reader.ready_probe(&mut self.probe_reader);
                let (mut runs, mut stats, mut read) = (reader.take_spare_runs(), ReadStats::default(), 0);
                let mut answered = true;
                while let Some(item) = stream.next().await {
                    let Ok(bytes) = item else {
                        answered = false;
                        break;
                    };
                    read += bytes.len();
                    if read > PROBE_BYTES_MAX || reader.handle_chunk(bytes, &mut runs, &mut stats).is_err() {
                        answered = false;
                        break;
                    }
                }
                let caught_up = answered && self.reader.ends_with(reader);
                // Nothing of the answer is kept until the next probe.
                if reader.buffered_bytes() > 0 {
                    reader.reopen();
                }
                reader.keep_spare_runs(runs);
                caught_up
            }
            Err(_) => false,
        };
        #[cfg(feature = "broken-variants")]
        let caught_up = caught_up || shared.config.variant == crate::container::SupervisorVariant::ProbeTrustsSilence;
        StreamProbed { behind: !caught_up }.emit(&shared.telemetry);
        self.machine.handle_probed(shared.rt.now(), caught_up);
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

/// The wait for a slot in the pool, polled only when the pool woke it (and at first).
///
/// The select polls every branch at every wake of the task, and while the pool is
/// short of slots a supervisor waits through many wakes of its own (its timer's
/// nudges and backoffs, discovery's news), each of which polled the pool's acquire
/// again (a lock of its queue). The wait is polled with a waker of its own,
/// which notes the wake and wakes the task: the task is woken exactly when it was
/// before. Callgrind: seed 19 (13 slots: 344 k polls of the acquire for 60 k slots)
/// 1,088.2 M -> 1,065.8 M; seed 85 (its supervisors never wait) 435.1 M -> 435.7 M.
struct SlotWait<F = AcquireSlot> {
    /// The pool's acquire, held as it is: not boxed (see `AcquireSlot`).
    acquire: Option<F>,
    flag: Arc<WakeFlag>,
    /// Wakes `flag`: what the acquire is polled with.
    waker: Waker,
}

/// Whether a [`SlotWait`] was woken since it was last polled, and the task to wake.
struct WakeFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F> Default for SlotWait<F> {
    fn default() -> SlotWait<F> {
        let flag = Arc::new(WakeFlag { woken: AtomicBool::new(false), task: AtomicWaker::new() });
        SlotWait { acquire: None, waker: Waker::from(flag.clone()), flag }
    }
}

impl<F: Future<Output = StreamSlot> + Unpin> SlotWait<F> {
    /// Wait for `acquire` (instead of anything waited for before).
    fn start(&mut self, acquire: F) {
        self.acquire = Some(acquire);
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Stop waiting (leaving the pool's queue).
    fn cancel(&mut self) {
        self.acquire = None;
    }

    /// The slot once granted; pending while none is waited for.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<StreamSlot> {
        let Some(acquire) = &mut self.acquire else { return Poll::Pending };
        // Registered before the flag is read: a wake after the read reaches the task.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let slot = std::task::ready!(Pin::new(acquire).poll(&mut Context::from_waker(&self.waker)));
        self.acquire = None;
        Poll::Ready(slot)
    }
}

/// The machine's one timer: it follows the machine's deadline.
///
/// Data pushes the stall deadline later on every chunk: the timer is moved
/// ([`crate::rt::Timer::reset`]), so it never wakes the task for a deadline that has gone.
/// Arming only for an earlier deadline cost a no-op wake-up and `handle_timeout`
/// instead: 7.6 k of seed 85's 15.7 k timeouts, 58 k of seed 19's 123 k (polls per seed
/// 0.86× on seeds 0..99; callgrind: seed 85 398.7 M -> 388.2 M, seed 19 974.8 M -> 958.3 M).
///
/// The select polls every branch at every wake of the task (each chunk read), but a
/// timer that has registered its waker cannot complete before its deadline: it is
/// polled again only once `now` reached it, or after it moved (the task's waker is the
/// same at every poll, which the state branch relies on too). Callgrind: seed 85
/// 460.1 M -> 458.5 M, seed 19 1,125.0 M -> 1,119.3 M.
#[derive(Default)]
struct Alarm {
    /// The timer: made for the first deadline, then moved.
    timer: Option<BoxTimer>,
    /// The deadline it is armed for; `None` while disarmed.
    at: Option<Instant>,
    /// The timer was polled (and returned pending) since it was armed or moved.
    waiting: bool,
}

impl Alarm {
    /// Arm for `wanted`, move to it, or (`None`) drop the timer.
    fn follow(&mut self, rt: &dyn Rt, wanted: Option<Instant>) {
        if wanted == self.at {
            return;
        }
        self.at = wanted;
        self.waiting = false;
        match (wanted, &mut self.timer) {
            (Some(wanted), Some(timer)) => timer.as_mut().reset(wanted),
            (Some(wanted), None) => self.timer = Some(rt.timer(wanted)),
            (None, _) => self.timer = None,
        }
    }

    /// Ready once the armed deadline is reached (and then disarmed); pending if none.
    fn poll(&mut self, rt: &dyn Rt, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(at), Some(timer)) = (self.at, &mut self.timer) else { return Poll::Pending };
        if self.waiting && rt.now() < at {
            return Poll::Pending;
        }
        if timer.as_mut().poll(cx).is_pending() {
            self.waiting = true;
            return Poll::Pending;
        }
        self.at = None;
        Poll::Ready(())
    }
}

/// Completes when `state` changes, or with an error once its sender is gone.
async fn next_change(mut state: watch::Receiver<ContainerState>) -> Result<(), watch::error::RecvError> {
    state.changed().await
}

/// What the supervisor's wait ended with: its select's branch that was ready first. The
/// select is a plain poll function returning one of these, polling the branches in
/// order as `tokio::select!` with `biased` did (all its patterns are irrefutable, so no
/// branch was ever disabled): the same polls, without the macro's per-pass bookkeeping
/// (its branch mask and futures). Callgrind: seed 3 351.79 M -> 345.09 M, seed 19
/// 780.49 M -> 753.21 M, seed 2 310.86 M -> 305.14 M.
enum Event {
    State(Result<(), watch::error::RecvError>),
    YieldRequested,
    SlotGranted(StreamSlot),
    Timeout,
    Item(Option<Result<bytes::Bytes, EngineError>>),
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

fn next_item(stream: &mut Option<LogStream>, cx: &mut Context<'_>) -> Poll<Option<Result<bytes::Bytes, EngineError>>> {
    match stream {
        Some(stream) => stream.poll_next_unpin(cx),
        None => Poll::Pending,
    }
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
