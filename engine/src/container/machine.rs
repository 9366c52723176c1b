//! The supervisor's decisions, as a sans-IO state machine (quinn-proto `Connection` style).
//!
//! [`Machine`] owns every timing and lifecycle decision about one container's log
//! stream and does nothing itself: inputs come in through `handle_*(now, …)`, decisions
//! go out through [`Machine::poll_action`], and [`Machine::poll_timeout`] says when the
//! machine wants [`Machine::handle_timeout`] called. The task around it
//! (`supervisor.rs`) only performs the actions, moves bytes and sleeps. Randomness comes
//! in as an explicit `unit` in `[0, 1)` with the inputs that need it, so every rule is a
//! unit test at explicit instants (`machine_tests.rs`).
//!
//! ## Rules
//! - **Which containers get a stream**: a container that is not removed, is collected
//!   (the labeler says so) and either runs or was not yet read to the end of its log.
//!   An exited container at discovery is therefore read: Docker serves an exited
//!   container's whole log to a follow request and then ends the stream.
//! - **Slot**: a stream needs a slot of the pool ([`Action::TakeSlot`], FIFO). A waiter
//!   that has waited `slot_wait_max × 3/4` asks the pool to make its oldest holder yield
//!   ([`Action::NudgeHolder`]), and again every `slot_wait_max / 4`; a holder asked to
//!   yield drops its stream and queues again at the back ([`Machine::handle_yield_requested`]).
//!   A running container that queued lines before asks Docker for its log's last entry
//!   first ([`Action::Probe`], no slot): if that is the last line read, it has nothing
//!   to read and makes no holder yield, but queues again at the back with its wait
//!   starting afresh. So no output waits much longer than `slot_wait_max × 3/4` while a
//!   holder has held longer than it, open streams never exceed `streams_max`, and a
//!   starved pool's holders yield only to containers with lines to read (simulator: a
//!   pool of 13 slots for 55 containers reopened 23–25 k times in 4 h, now 3.8–5 k).
//! - **Open**: since the last queued position (`since = floor(last − since_skew)`, the
//!   replay deduplicated by the reader), or for a container never read, as its
//!   [`FirstOpen`] says (`first_sight` resolved by discovery at the instant it first saw
//!   the container).
//! - **Rotate**: `rotate_every × (1 − rotate_jitter × unit)` after the first open with
//!   the slot (0.7–1.0 × with the default jitter; reopens that keep the slot keep the
//!   deadline): drop the stream, give the slot back, queue again.
//! - **Stall**: nothing for `stall_timeout` (heartbeat and watchdog are this one timer).
//!   For a running container, Docker is asked for its log's last entry first
//!   ([`Action::Probe`]: a non-follow request with `tail = 1`, a short answer, not a
//!   stream, so it takes no slot): if it is the last line read, the stream is only silent
//!   and is kept; else (or if the probe fails) the stream is reopened (slot kept). A
//!   silent stream cost a reopen per `stall_timeout`, whose `since` replays the last
//!   second or more, and Docker's json-file reader scans the log from its start to find
//!   a `since` (a `tail` it reads from the end). A stopped container's stream
//!   opened after the stop that stalls outlives its container (bollard #251): dropped,
//!   and the log counts as read to its end.
//! - **End of stream**: while the container is believed running, ask Docker
//!   ([`Action::Inspect`]): still running → reopen (at once if the stream yielded
//!   anything, else after a backoff); stopped → reopen once as a stopped container;
//!   gone → done with this log. While the container is stopped: a stream opened after
//!   the stop that ends has read the log to its end (the slot is released and the
//!   machine waits, holding nothing, for a start or the removal); a stream opened
//!   before the stop is reopened once, so the end of the log is read by a request made
//!   after the stop, never cut by a timer.
//! - **Recheck**: a reconcile that lists the container not running, as discovery already
//!   believed, asks (at most once per `stall_timeout`: `Discovery::recheck_due`) an idle
//!   machine whose log was read to its end for a probe of the log's last entry
//!   ([`Machine::handle_recheck`]): a run between two lists whose start and die events
//!   were both lost changes nothing else. Not the last line read → the log is read again
//!   from the last position.
//! - **Backoff**: a failed open, stream error or failed inspect releases the slot and
//!   waits `backoff_min × 2^(failures−1)` capped at `backoff_max`, scaled by
//!   `1 − 0.2 × unit`; any data resets the count.
//! - **Removal**: a stream still open is read on until it ends by itself (Docker hands
//!   out what it still has of a removed container's log), stalls or its rotation is due;
//!   then, or at once if no stream is open, everything is dropped and
//!   [`Action::Finish`]. [`Machine::tail_read`] then says whether a stream ended by
//!   itself after the container stopped (else its last lines may be lost: the task
//!   counts it).
//!
//! Docker's word beats discovery's: an inspect that says "stopped" or "gone" while
//! discovery still says "running" is believed until discovery's running flag changes,
//! or for `min(stall_timeout, slot_wait_max)`, after which the machine looks again: the
//! events may be lost, and a start after that inspect may reach nobody (seed 400: the
//! `die` and the `start` both fell into an events reconnect, the reconcile after it
//! listed the container running as discovery already believed, so nothing changed and
//! the container waited `stall_timeout` = 300 s for a stream). So a running container
//! waits no longer for a look than for a slot (`slot_wait_max`).

use std::collections::VecDeque;
use std::time::Duration;

use crate::container::discovery::first_sight_since;
use crate::container::MonitorConfig;
use crate::port::LogOptions;
use crate::rt::{exponential_backoff, jitter, Instant, UnixNanos};

/// The timings the machine decides with (a copy of part of [`MonitorConfig`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MachineConfig {
    pub rotate_every: Duration,
    pub rotate_jitter: f64,
    pub stall_timeout: Duration,
    pub slot_wait_max: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// See [`MonitorConfig::since_skew`]: a tail request becomes "since this much before
    /// it" for later opens.
    pub since_skew: Duration,
}

impl From<&MonitorConfig> for MachineConfig {
    fn from(config: &MonitorConfig) -> MachineConfig {
        MachineConfig {
            rotate_every: config.rotate_every,
            rotate_jitter: config.rotate_jitter,
            stall_timeout: config.stall_timeout,
            slot_wait_max: config.slot_wait_max,
            backoff_min: config.backoff_min,
            backoff_max: config.backoff_max,
            since_skew: config.since_skew,
        }
    }
}

/// Jitter of the backoff after a failure: delays are scaled by `[0.8, 1]`.
const BACKOFF_JITTER: f64 = 0.2;

/// Where a container with nothing queued yet starts reading.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FirstOpen {
    /// Entries at or after this Unix second (0: the whole log).
    Since(i64),
    /// The last N entries at the first open, then whatever follows.
    Tail(u64),
}

/// Why a stream is dropped (the task counts rotations and yields as rotations).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropWhy {
    /// `rotate_every` passed.
    Rotate,
    /// The pool asked this holder to make room for a waiter.
    Yield,
    /// Nothing arrived for `stall_timeout`.
    Stall,
    /// The stream ended by itself.
    Ended,
    /// The stream failed (transport error or a malformed frame).
    Failed,
    /// The container was removed, or is no longer collected.
    Done,
}

/// What the task must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue for a pool slot; answer with [`Machine::handle_slot_granted`].
    TakeSlot,
    /// Ask the pool to make its oldest holder yield (this machine has waited long).
    NudgeHolder,
    /// Open the log stream (a slot is held); answer with [`Machine::handle_opened`] or
    /// [`Machine::handle_open_failed`].
    Open(LogOptions),
    /// Drop the open stream.
    DropStream(DropWhy),
    /// Give the slot back, or stop waiting for one.
    ReleaseSlot,
    /// Ask Docker whether the container runs; answer with [`Machine::handle_inspected`].
    Inspect,
    /// Ask Docker for the last entry of the log (a stream open stays open; a waiter stays
    /// queued) and whether it is the last line read; answer with [`Machine::handle_probed`].
    Probe,
    /// The container was removed: the task ends.
    Finish,
}

/// Why an open failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpenFailure {
    /// The container does not exist (any more).
    NotFound,
    /// Anything else: retried after a backoff.
    Other,
}

/// Docker's answer to an inspect.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Inspected {
    Running,
    Stopped,
    NotFound,
    Failed,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct OpenStream {
    rotate_at: Instant,
    stall_at: Instant,
    /// Opened while the container was known to be stopped: its end is the log's end.
    opened_stopped: bool,
    /// It yielded data.
    yielded: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// No slot, no stream: waiting for news (or for `recheck_at`).
    Idle,
    /// Queued for a slot: the next nudge (or, before the first, the probe) at `nudge_at`.
    WaitingSlot {
        nudge_at: Instant,
        /// This wait's probe said the log has lines unread (or none was asked): nudge.
        behind: bool,
    },
    /// Slot held, open requested.
    Opening,
    /// Slot held, stream open.
    Streaming(OpenStream),
    /// Slot held, the stream ended while the container was believed running.
    Inspecting {
        yielded: bool,
    },
    /// No slot: waiting after a failure.
    BackingOff {
        until: Instant,
    },
    Done,
}

/// The decisions about one container's log stream; see the module docs.
#[derive(Debug)]
pub struct Machine {
    config: MachineConfig,
    phase: Phase,
    actions: VecDeque<Action>,
    /// Discovery's view.
    running: bool,
    removed: bool,
    /// The labeler collects this container.
    collected: bool,
    /// Docker said "stopped" or "gone" while discovery still says running: believed
    /// until discovery's running flag changes or this instant ([`Machine::recheck_after`]).
    docker_stopped: Option<Instant>,
    /// The host clock when Docker said "stopped" (with `docker_stopped`): a `die`
    /// stamped after it is of a later run ([`Machine::handle_died`]).
    docker_stopped_wall: UnixNanos,
    /// Docker said the container does not exist: it never runs again (ids are not
    /// reused), so looking again leaves a tail read as read.
    docker_gone: bool,
    /// The log was read to its end since the container last stopped.
    read_to_end: bool,
    /// A stream ended by itself while the container was stopped or removed (a proven
    /// end of the log, unlike a stall or a "not found").
    tail_read: bool,
    slot_held: bool,
    failures: u32,
    /// The `since` of the last queued position (`None`: nothing queued yet).
    resume_since: Option<i64>,
    first_open: FirstOpen,
    /// The rotation deadline of the slot held, set at its first open.
    rotate_at: Option<Instant>,
    /// A holder asked to yield while it could not (opening, inspecting): yield at the
    /// next chance.
    yield_pending: bool,
    /// The probe in flight was asked by a recheck ([`Machine::handle_recheck`]), not by
    /// the stall watchdog.
    recheck_probe: bool,
    /// The probe in flight was asked by a waiter before its first nudge
    /// ([`Machine::handle_timeout`]).
    wait_probe: bool,
}

impl Machine {
    pub fn new(config: MachineConfig, first_open: FirstOpen, resume_since: Option<i64>) -> Machine {
        Machine {
            config,
            phase: Phase::Idle,
            actions: VecDeque::new(),
            running: false,
            removed: false,
            collected: false,
            docker_stopped: None,
            docker_stopped_wall: 0,
            docker_gone: false,
            read_to_end: false,
            tail_read: false,
            slot_held: false,
            failures: 0,
            resume_since,
            first_open,
            rotate_at: None,
            yield_pending: false,
            recheck_probe: false,
            wait_probe: false,
        }
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Machine::handle_timeout`] wants to be called, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::WaitingSlot { nudge_at, .. } => Some(nudge_at),
            Phase::Streaming(stream) => Some(stream.rotate_at.min(stream.stall_at)),
            Phase::BackingOff { until } => Some(until),
            Phase::Idle => self.docker_stopped,
            Phase::Opening | Phase::Inspecting { .. } | Phase::Done => None,
        }
    }

    /// Is the machine waiting for a slot?
    pub fn wants_slot(&self) -> bool {
        matches!(self.phase, Phase::WaitingSlot { .. })
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The log was read to its end since the container last stopped.
    pub fn read_to_end(&self) -> bool {
        self.read_to_end
    }

    /// A stream ended by itself after the container last stopped: its log was read to
    /// the end. Asked once the machine finished, false means the container was removed
    /// before that (lines may be lost).
    pub fn tail_read(&self) -> bool {
        self.tail_read
    }

    fn effective_running(&self) -> bool {
        self.running && self.docker_stopped.is_none()
    }

    fn needs_stream(&self) -> bool {
        !self.removed && self.collected && (self.effective_running() || !self.read_to_end)
    }

    /// Discovery's view of the container changed (or is given for the first time).
    pub fn handle_state(&mut self, now: Instant, running: bool, removed: bool, collected: bool) {
        if self.phase == Phase::Done {
            return;
        }
        if running != self.running {
            self.docker_stopped = None;
            if running {
                // A start: whatever it writes now is unread.
                self.read_to_end = false;
                self.tail_read = false;
            }
        }
        self.running = running;
        self.removed = removed;
        self.collected = collected;
        #[cfg(feature = "broken-variants")]
        if (removed || !running)
            && crate::container::broken::is_active(crate::container::SupervisorVariant::TailDropped)
        {
            // Broken (tests only): stop reading at the stop or removal, the tail unread
            // and believed read.
            if let Phase::Streaming(_) = self.phase {
                self.drop_stream(DropWhy::Done);
                self.release_slot();
                self.phase = Phase::Idle;
            }
            self.read_to_end = true;
            self.tail_read = true;
        }
        self.settle(now);
    }

    /// The pool granted the slot this machine queued for.
    pub fn handle_slot_granted(&mut self, now: Instant) {
        if !self.wants_slot() {
            // Granted after the machine stopped wanting it: give it back.
            self.actions.push_back(Action::ReleaseSlot);
            return;
        }
        self.slot_held = true;
        self.yield_pending = false;
        self.open(now);
    }

    /// The pool asks this holder to give its slot to a waiter.
    pub fn handle_yield_requested(&mut self, now: Instant) {
        match self.phase {
            // A removed container's stream drains to its end first (it ends soon).
            Phase::Streaming(_) if self.removed => {}
            Phase::Streaming(_) => {
                self.drop_stream(DropWhy::Yield);
                self.release_slot();
                self.phase = Phase::Idle;
                self.settle(now);
            }
            _ if self.slot_held => self.yield_pending = true,
            _ => {}
        }
    }

    /// The stream requested by [`Action::Open`] is open. `wall` is the wall clock now
    /// (a tail request becomes "since then, less `since_skew`" for later opens); `unit` is a random number in
    /// `[0, 1)` for the rotation's jitter.
    pub fn handle_opened(&mut self, now: Instant, wall: UnixNanos, unit: f64) {
        if self.phase != Phase::Opening {
            return;
        }
        // Less `since_skew`, as under `first_sight = "now"`: if this stream serves nothing
        // (dropped for a waiter before its first line), the next open asks `since`, and
        // stderr reaches Docker's log late, stamped up to that much before it is written
        // (seed 31096: stderr stamped 202.65 s, written 203.48 s after a tail open at
        // 203.0 s whose stream was given up unread; the reopen at `since` 203 s never
        // asked for it). What the reopen replays of the tail's window is new to us:
        // nothing was queued.
        if let FirstOpen::Tail(_) = self.first_open {
            self.first_open = FirstOpen::Since(first_sight_since(wall, self.config.since_skew));
        }
        let config = &self.config;
        // A reopen that kept the slot (watchdog, end of a stopped container's log) keeps
        // the slot's rotation deadline: rotation is about giving the slot back.
        let rotate_at = *self.rotate_at.get_or_insert(now + jitter(config.rotate_every, config.rotate_jitter, unit));
        self.phase = Phase::Streaming(OpenStream {
            rotate_at,
            stall_at: now + config.stall_timeout,
            opened_stopped: !self.effective_running(),
            yielded: false,
        });
        if self.yield_pending {
            self.handle_yield_requested(now);
        }
    }

    pub fn handle_open_failed(&mut self, now: Instant, failure: OpenFailure, unit: f64) {
        if self.phase != Phase::Opening {
            return;
        }
        match failure {
            OpenFailure::NotFound => self.gone(now),
            OpenFailure::Other => self.back_off(now, unit),
        }
    }

    /// Lines were read and queued; `resume_since` is the `since` to reopen from now.
    pub fn handle_data(&mut self, now: Instant, resume_since: Option<i64>) {
        self.resume_since = resume_since.or(self.resume_since);
        if let Phase::Streaming(stream) = &mut self.phase {
            stream.stall_at = now + self.config.stall_timeout;
            stream.yielded = true;
            self.failures = 0;
        }
    }

    /// The stream ended by itself.
    pub fn handle_stream_ended(&mut self, now: Instant) {
        let Phase::Streaming(stream) = self.phase else { return };
        self.drop_stream(DropWhy::Ended);
        if self.removed || !self.running {
            self.tail_read = true;
        }
        self.after_end(now, stream);
    }

    /// The stream failed (transport error, malformed frame).
    pub fn handle_stream_failed(&mut self, now: Instant, unit: f64) {
        if !matches!(self.phase, Phase::Streaming(_)) {
            return;
        }
        self.drop_stream(DropWhy::Failed);
        self.back_off(now, unit);
    }

    /// Docker answered the inspect; `wall` is the host clock now.
    pub fn handle_inspected(&mut self, now: Instant, wall: UnixNanos, answer: Inspected, unit: f64) {
        let Phase::Inspecting { yielded } = self.phase else { return };
        match answer {
            Inspected::Running => {
                self.docker_stopped = None;
                if yielded {
                    self.open(now);
                } else {
                    // Ended without a byte while running: do not spin.
                    self.back_off(now, unit);
                }
            }
            Inspected::Stopped => {
                if self.running {
                    self.docker_stopped = Some(now + self.recheck_after());
                    self.docker_stopped_wall = wall;
                }
                // The stream that ended was opened while believed running: read the rest
                // with a request made after the stop.
                self.open(now);
            }
            Inspected::NotFound => {
                // The stream ended by itself and the container is gone: Docker ended it at
                // the stop, after everything written before (the end of the log).
                self.tail_read = true;
                self.gone(now);
            }
            Inspected::Failed => self.back_off(now, unit),
        }
    }

    /// Discovery's reconcile listed the container not running, as it already believed.
    /// A start, a few writes and an exit between two lists, with the start and die
    /// events both lost, leave the list as it was, and nothing else would tell: so an
    /// idle machine whose log was read to its end asks Docker for the log's last entry
    /// ([`Action::Probe`], no slot), and reads the log again if that is not the last line
    /// read ([`Machine::handle_probed`]). One short request per exited container per
    /// reconcile, at most one per `stall_timeout` (discovery's choice), as the watchdog
    /// makes one per silent running container per `stall_timeout`. (Simulator seed 1082
    /// with giant lines off: 38 lines of such a run were never read.)
    pub fn handle_recheck(&mut self, _now: Instant) {
        // Broken (tests only): the tail dropped at the stop is believed read for good.
        #[cfg(feature = "broken-variants")]
        if crate::container::broken::is_active(crate::container::SupervisorVariant::TailDropped) {
            return;
        }
        let idle_and_read = self.phase == Phase::Idle && self.read_to_end && !self.recheck_probe;
        if idle_and_read && !self.running && !self.removed && self.collected {
            self.recheck_probe = true;
            self.actions.push_back(Action::Probe);
        }
    }

    /// A `die` came while the container was believed not running: it ran again unseen
    /// (its `start` lost), and what it wrote then is unread. The log is read to its end
    /// again; a stream opened while it was stopped may end where the log ended then, so
    /// its end reads on with a new request. Removed before that, the tail is counted
    /// unread ([`Action::Finish`]). Called before the [`Machine::handle_state`] that the
    /// same news brings. A duplicated or late `die` costs one more read to the end (or a
    /// tail counted that was read, if a removal follows at once).
    pub fn handle_ran_unseen(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        self.read_to_end = false;
        self.tail_read = false;
        if let Phase::Streaming(stream) = &mut self.phase {
            stream.opened_stopped = false;
        }
    }

    /// Discovery heard a `die` that happened at `at` (Docker's clock, as the host's).
    /// Called before the [`Machine::handle_state`] that the same news brings. If Docker
    /// had said "stopped" before that instant while discovery still believed the
    /// container running (the stop's events lost or held back), this `die` is not of
    /// that stop: the container ran again since, its `start` lost, and what it wrote is
    /// unread ([`Machine::handle_ran_unseen`]). A `die` of the stop Docker told of
    /// happened before Docker said so (the world's seed 41926: a container stopped at
    /// 14,124.9 s, Docker said so, a request made after the stop read its log to the end;
    /// the stop's `die` and the `start` after it lost, it ran again from 14,141.9 s, wrote
    /// 26 lines and was removed by `docker rm -f` at 14,194.4 s; the agent heard that
    /// run's `die` with the `destroy` and believed the tail read). Docker
    /// logs a `die` just after its inspect says "stopped", so a `die` of that stop may be
    /// stamped a little after an inspect made in between: it costs one more read of the
    /// log to its end (or a tail counted unread, if the removal comes with it).
    pub fn handle_died(&mut self, at: UnixNanos) {
        if self.phase != Phase::Done
            && self.docker_stopped.is_some()
            && !self.docker_gone
            && at > self.docker_stopped_wall
        {
            self.handle_ran_unseen();
        }
    }

    /// Docker answered the probe: `caught_up` if its last entry is the last line read
    /// (the stream is only silent: kept, the watchdog armed again from now); else, or if
    /// the probe failed, the stream is reopened (the watchdog proper). A recheck's probe
    /// that is not caught up makes the log unread again: it is read to its end anew. A
    /// waiter's probe that is caught up queues it again at the back, else it nudges.
    pub fn handle_probed(&mut self, now: Instant, caught_up: bool) {
        if std::mem::take(&mut self.wait_probe) {
            if let Phase::WaitingSlot { .. } = self.phase {
                if caught_up {
                    // Nothing to read: no holder is made to yield for it. It queues again
                    // at the back, its wait (and probe) starting afresh: a line written
                    // now waits no longer than a first wait would.
                    self.release_slot();
                    self.phase = Phase::Idle;
                    self.settle(now);
                } else {
                    self.actions.push_back(Action::NudgeHolder);
                }
            }
            return;
        }
        if std::mem::take(&mut self.recheck_probe) {
            if !caught_up && self.phase == Phase::Idle && !self.running && !self.removed {
                self.read_to_end = false;
                self.tail_read = false;
                self.settle(now);
            }
            return;
        }
        let Phase::Streaming(mut stream) = self.phase else { return };
        if caught_up {
            stream.stall_at = now + self.config.stall_timeout;
            self.phase = Phase::Streaming(stream);
        } else {
            self.drop_stream(DropWhy::Stall);
            self.open(now);
        }
    }

    /// Called at (or after) [`Machine::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::WaitingSlot { nudge_at, behind } if now >= nudge_at => {
                self.phase = Phase::WaitingSlot { nudge_at: now + self.nudge_every(), behind: true };
                // A running container that queued lines before may have written nothing
                // since: asked first (no slot), so that a waiter with nothing to read
                // makes no holder yield (see `handle_probed`).
                if !behind && self.effective_running() && self.resume_since.is_some() {
                    self.wait_probe = true;
                    self.actions.push_back(Action::Probe);
                } else {
                    self.actions.push_back(Action::NudgeHolder);
                }
            }
            Phase::Streaming(stream) if self.removed && now >= stream.rotate_at.min(stream.stall_at) => {
                // Draining a removed container's stream: no reopen.
                self.drop_stream(if now >= stream.stall_at { DropWhy::Stall } else { DropWhy::Rotate });
                self.finish();
            }
            Phase::Streaming(stream) if now >= stream.rotate_at => {
                self.drop_stream(DropWhy::Rotate);
                self.release_slot();
                self.phase = Phase::Idle;
                self.settle(now);
            }
            Phase::Streaming(mut stream) if now >= stream.stall_at => {
                if self.effective_running() {
                    // The watchdog: is a running container's silent stream behind its log?
                    stream.stall_at = now + self.config.stall_timeout;
                    self.phase = Phase::Streaming(stream);
                    self.actions.push_back(Action::Probe);
                } else {
                    self.drop_stream(DropWhy::Stall);
                    self.after_end(now, stream);
                }
            }
            Phase::BackingOff { until } if now >= until => {
                self.phase = Phase::Idle;
                self.settle(now);
            }
            Phase::Idle if self.docker_stopped.is_some_and(|at| now >= at) => {
                // Discovery still says running: look again. After Docker's "stopped" the
                // container may have started again unseen and written since: its tail is
                // unread too, until a stream ends by itself after a stop, so that a
                // removal before that counts it (the world's seed 52171: read to its end
                // at 7,851 s after Docker said stopped, the `die`, `stop` and `start` held
                // back and heard together at 7,910 s, so discovery's view never changed;
                // looked at again at 7,881 s and read while it ran, the tail still
                // believed read, and a `docker rm -f` at 10,451 s during a Loki outage
                // deleted 77 lines the stream, held up by the full queue, never read:
                // counted nothing). A container Docker said gone never runs again.
                self.docker_stopped = None;
                self.read_to_end = false;
                if !self.docker_gone {
                    self.tail_read = false;
                }
                self.settle(now);
            }
            _ => {}
        }
    }

    /// How long Docker's "stopped" or "gone" is believed over discovery's "running":
    /// no longer than a running container may wait for a slot.
    fn recheck_after(&self) -> Duration {
        self.config.stall_timeout.min(self.config.slot_wait_max).max(Duration::from_millis(1))
    }

    /// A waiter's first nudge: late in its bound, so that the waiters queued make
    /// holders yield about as often as the bound needs, not more. Every waiter nudges
    /// once its wait is this long, and a nudge hands the slot to the oldest waiter (the
    /// pool is FIFO): the waiters queued behind `streams_max` holders wait about this
    /// long each, and holders yield that much less often. With half of `slot_wait_max`,
    /// a pool of 13 slots for 55 containers reopened a stream every 4.6 s of a slot
    /// (seed 397: 38 k rotations in 4 h).
    fn nudge_first(&self) -> Duration {
        (self.config.slot_wait_max * 3 / 4).max(Duration::from_millis(1))
    }

    /// A waiter's later nudges, if the slot its last one freed went to a waiter ahead.
    fn nudge_every(&self) -> Duration {
        (self.config.slot_wait_max / 4).max(Duration::from_millis(1))
    }

    /// A stream ended (by itself, or stalled while the container is stopped).
    fn after_end(&mut self, now: Instant, stream: OpenStream) {
        if self.removed {
            self.finish();
        } else if self.effective_running() && !stream.opened_stopped {
            self.actions.push_back(Action::Inspect);
            self.phase = Phase::Inspecting { yielded: stream.yielded };
        } else if stream.opened_stopped && !self.effective_running() {
            // Opened after the stop (Docker's word or discovery's), ended by itself: the
            // tail is read, even if discovery has not heard of the stop yet.
            self.read_to_end = true;
            self.tail_read = true;
            self.release_slot();
            self.phase = Phase::Idle;
            self.settle(now);
        } else {
            // Opened before the stop (or before a start): read on with a new request.
            self.open(now);
        }
    }

    /// Docker says the container does not exist: nothing more to read.
    fn gone(&mut self, now: Instant) {
        self.docker_gone = true;
        if self.running {
            self.docker_stopped = Some(now + self.recheck_after());
        }
        self.read_to_end = true;
        self.release_slot();
        self.phase = Phase::Idle;
        self.settle(now);
    }

    fn back_off(&mut self, now: Instant, unit: f64) {
        self.failures = self.failures.saturating_add(1);
        let config = &self.config;
        let delay =
            jitter(exponential_backoff(config.backoff_min, config.backoff_max, self.failures), BACKOFF_JITTER, unit);
        self.release_slot();
        self.phase = Phase::BackingOff { until: now + delay };
        self.settle(now);
    }

    fn open(&mut self, now: Instant) {
        if !self.needs_stream() {
            self.release_slot();
            self.phase = Phase::Idle;
            self.settle(now);
            return;
        }
        let options = match (self.resume_since, self.first_open) {
            (Some(since_secs), _) | (None, FirstOpen::Since(since_secs)) => {
                LogOptions { follow: true, since_secs, tail: None }
            }
            (None, FirstOpen::Tail(lines)) => LogOptions { follow: true, since_secs: 0, tail: Some(lines) },
        };
        self.actions.push_back(Action::Open(options));
        self.phase = Phase::Opening;
    }

    fn finish(&mut self) {
        self.release_slot();
        self.actions.push_back(Action::Finish);
        self.phase = Phase::Done;
    }

    fn drop_stream(&mut self, why: DropWhy) {
        self.actions.push_back(Action::DropStream(why));
    }

    fn release_slot(&mut self) {
        if self.slot_held || self.wants_slot() {
            self.actions.push_back(Action::ReleaseSlot);
        }
        self.slot_held = false;
        self.rotate_at = None;
        self.yield_pending = false;
    }

    /// Bring the phase in line with what the container needs after a change. (The task
    /// answers `Open`, `Inspect` and `Probe` before it takes any other input, so
    /// `Opening` and `Inspecting` are never seen here.)
    fn settle(&mut self, now: Instant) {
        if self.removed {
            // An open stream is read on until it ends (see the module docs).
            if !matches!(self.phase, Phase::Streaming(_)) {
                self.finish();
            }
            return;
        }
        if !self.collected {
            if let Phase::Streaming(_) = self.phase {
                self.drop_stream(DropWhy::Done);
            }
            self.release_slot();
            if !matches!(self.phase, Phase::BackingOff { .. }) {
                self.phase = Phase::Idle;
            }
            return;
        }
        match self.phase {
            Phase::Idle if self.needs_stream() => {
                self.actions.push_back(Action::TakeSlot);
                self.phase = Phase::WaitingSlot { nudge_at: now + self.nudge_first(), behind: false };
            }
            Phase::WaitingSlot { .. } if !self.needs_stream() => {
                self.release_slot();
                self.phase = Phase::Idle;
            }
            _ => {}
        }
    }
}
