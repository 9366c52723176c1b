//! `SimDocker`: the Docker engine as the capture agent sees it, with faults on demand.
//!
//! Owns: containers (lifecycle, names, labels, one json-file log each), the events
//! streams and log streams open against them, and the daemon's own up/down state. The
//! world driver changes it through the commands below; the engine reads it through
//! [`engine::port::ContainerEngine`] (`port.rs`).
//!
//! ## Semantics (Docker Engine API, json-file driver; see DESIGN.md §6)
//! - `create` (event `create`), `start` (`start`), `stop` (`die`, `stop`), `exit`
//!   (the process ends by itself: `die`), `restart` (`die`, `stop`, `start`, `restart`;
//!   same id, log kept), `remove` (`die` first if running, then `destroy`; log deleted),
//!   `rename` (`rename` with `name` and Docker's `oldName` = `/old`). Event attributes
//!   carry `name`, `image` and the labels, as Docker's do.
//! - A container created with a TTY ([`SimDocker::create_tty`]; its inspect says
//!   `tty`) serves its log as Docker does for `docker run -t`: no frame headers, lines
//!   end in `\r\n`, and what it writes to stderr is stdout (the terminal merges them):
//!   every write to its stderr lands on stdout, and the returned sequence numbers are
//!   stdout's.
//! - Output ([`SimDocker::emit`]) is only accepted while the container runs; timestamps
//!   are taken per output stream from the wall clock (optionally lagging), never going
//!   back per stream. See `log.rs` for the log and `log_stream.rs` for the stream.
//!   A long line may be written over time ([`SimDocker::emit_line_head`], then
//!   [`SimDocker::emit_line`]): its 16 KiB pieces are readable as they are cut, all
//!   stamped with the first cut's time, as Docker's copier does.
//! - A stop ends every follow stream of the container once it has handed out what was
//!   written before the stop, even if the container is started again meanwhile.
//! - `docker rm`: open streams read on to the last write, then end (a stalled one ends
//!   at once); the log is deleted when the last ends; inspect/logs then say NotFound.
//! - `pause` / `unpause` ([`SimDocker::pause`]): the process is frozen, so output is
//!   refused ([`CommandError::Paused`]) while follow streams stay open with nothing to
//!   say; the container still runs for `list` and `inspect` (Docker's inspect says
//!   `Running` and `Paused`; its list says state `paused`, which the daemon's adapter
//!   maps to running). The `pause`/`unpause` events are not published: the port carries
//!   no such kinds (the daemon's adapter drops them).
//! - Events faults on a live connection ([`SimDocker::fault_events`]): the next events
//!   lost, duplicated, or held back behind the next one (out of order, stale). A held
//!   event is lost if the connection drops first.
//! - Daemon down ([`SimDocker::daemon_down`]): every call fails with `Unavailable`,
//!   open log and events streams yield `Err(Unavailable)` and end. Containers keep their
//!   state (live-restore); the driver stops them explicitly if the scenario says so.
//!
//! ## For the oracle
//! [`SimDocker::counters`] (open streams now and max, opens, events delivered, ...),
//! [`SimDocker::containers`] (per container: lines written per stream, first line still
//! retained per stream, opens), and [`line_seq`] to decode a line's sequence number.

mod buffers;
mod containers;
mod events;
mod frames;
mod log;
mod log_stream;
mod port;
mod state;
mod stream_table;
mod unsettled;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use engine::model::{ContainerId, StdStream};
use engine::port::{ContainerEventKind, ContainerInfo, EngineError};
use engine::rt::UnixNanos;

use crate::executor::SimRt;

pub use self::log::{decimal_digits, line_content, line_seq, LossCause, ENTRY_CONTENT_MAX};
pub use self::log_stream::StreamFault;
pub use self::state::{ApiCall, DockerCounters, EventFault};

pub(crate) use self::log::{ContainerLog, GeneratedRun};
use self::state::{Container, DockerState, StreamEnd};
use crate::executor::Lock;

/// Why a world command could not be applied (the driver picked an impossible move).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    NoSuchContainer,
    AlreadyRunning,
    NotRunning,
    /// Paused (or, for unpause, not paused).
    Paused,
}

/// One burst of output: `lines` lines on `stream`, written at the current virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    pub stream: StdStream,
    pub lines: u32,
    /// Content bytes per line (raised to the digits of its sequence number). Above
    /// [`ENTRY_CONTENT_MAX`] a line becomes several entries.
    pub line_bytes: u32,
    /// Timestamp distance between consecutive lines (zero: all share one timestamp).
    /// The entries of one long line all carry its line's timestamp, as Docker's do.
    pub entry_gap: Duration,
    /// The first entry's timestamp is this far behind the wall clock (still never
    /// before the stream's last timestamp): how stderr falls behind stdout.
    pub lag: Duration,
}

impl Burst {
    /// `lines` short lines on `stream`, 1 µs apart, no lag.
    pub fn lines(stream: StdStream, lines: u32) -> Burst {
        Burst { stream, lines, line_bytes: 0, entry_gap: Duration::from_micros(1), lag: Duration::ZERO }
    }
}

/// What happens to open follow streams when Docker rotates a container's log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationEffect {
    /// Readers behind the new start skip the deleted entries and go on.
    Continue,
    /// Open streams end (moby #37646).
    End,
    /// Open streams stall without ending (moby #37646).
    Stall,
}

/// What the oracle learns about one container, live or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerReport {
    pub id: ContainerId,
    pub name: String,
    pub running: bool,
    pub removed: bool,
    /// Lines written per stream (`[stdout, stderr]`); their seqs are `0..lines_written`.
    pub lines_written: [u64; 2],
    /// Per stream, the first line not (partly) deleted by log rotation.
    pub retained_from: [u64; 2],
    /// Entries written (long lines are several entries), and deleted by rotation.
    pub entries_written: u64,
    /// Empty lines written (both streams; see `ContainerLog::empty_line_at`).
    pub empty_lines_written: u64,
    pub entries_deleted: u64,
    /// Per stream, lines the world deleted before any reader had them, by cause.
    pub lost_to_rotation: [u64; 2],
    pub lost_to_removal: [u64; 2],
    pub lost_to_first_sight: [u64; 2],
    /// Per stream, lines written after a host clock step that a request's `since`
    /// skipped before any reader had them.
    pub lost_to_clock_step: [u64; 2],
    /// Per stream, json-file rotations that deleted any of its lines, and the ranges of
    /// lines they deleted unread (the agent's loss counters are checked against these).
    pub rotations_deleting: [u64; 2],
    pub rotation_loss_ranges: [u64; 2],
    /// Per stream, gaps a reader could notice (its resume line deleted by a rotation
    /// before it asked; see `ContainerLog::mark_read_by`).
    pub gaps_noticeable: [u64; 2],
    pub gaps_possible: [u64; 2],
    /// Whether some of its log has not been handed to any reader yet.
    pub unread: bool,
    /// Log requests made for it.
    pub opens_total: u64,
    /// Log streams open on it now.
    pub streams_open: usize,
}

/// The simulated Docker engine. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct SimDocker {
    shared: Arc<DockerShared>,
}

/// What every handle and open stream shares: the state behind its lock, and the runtime.
/// One reference count per clone (each port call clones its handle, each open stream keeps
/// one), where an `Arc` of each cost two atomic updates per clone and two per drop.
pub(crate) struct DockerShared {
    pub(crate) state: Lock<DockerState>,
    /// The host's runtime: its `wall()` is the host clock, which the agent reads too.
    pub(crate) rt: SimRt,
}

impl SimDocker {
    /// A daemon with no containers. `seed` feeds the model's own streams (container ids,
    /// chunk boundaries); derive it from the world seed.
    pub fn new(rt: SimRt, seed: u64) -> SimDocker {
        SimDocker { shared: Arc::new(DockerShared { state: Lock::new(DockerState::new(seed)), rt }) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut DockerState) -> T) -> T {
        let (now, wall) = (self.shared.rt.now(), self.shared.rt.wall());
        let mut state = self.shared.state.lock();
        state.now = now;
        state.wall = wall;
        f(&mut state)
    }

    fn report(state: &DockerState, id: &ContainerId, container: &Container, streams_open: usize) -> ContainerReport {
        let log = &state.logs[container.serial];
        let losses = log.loss_totals();
        debug_assert_eq!(losses.ranges[LossCause::Rotation as usize], log.loss_ranges(LossCause::Rotation));
        ContainerReport {
            id: id.clone(),
            name: container.info.name.to_string(),
            running: container.info.running,
            removed: false,
            lines_written: log.lines_written(),
            retained_from: log.retained_from(),
            entries_written: log.entries_total(),
            empty_lines_written: log.empty_lines_written(),
            entries_deleted: log.entries_deleted(),
            lost_to_rotation: losses.lines[LossCause::Rotation as usize],
            lost_to_removal: losses.lines[LossCause::Removal as usize],
            lost_to_first_sight: losses.lines[LossCause::FirstSight as usize],
            lost_to_clock_step: losses.lines[LossCause::ClockStep as usize],
            rotations_deleting: log.rotations_deleting(),
            rotation_loss_ranges: losses.ranges[LossCause::Rotation as usize],
            gaps_noticeable: log.gaps_noticeable(),
            gaps_possible: log.gaps_possible(),
            unread: log.has_unread(),
            opens_total: container.opens_total,
            streams_open,
        }
    }

    // ---- configuration -------------------------------------------------------------

    /// Virtual time every API call takes before it is answered (default zero).
    pub fn set_api_latency(&self, latency: Duration) {
        self.with(|state| state.api_latency = latency);
    }

    /// Largest chunk a log stream hands out (default 64 KiB), and the probability that
    /// a chunk is cut at a random byte instead (default 0.25).
    pub fn set_chunking(&self, chunk_bytes_max: usize, split_chance: f64) {
        self.with(|state| {
            state.chunk_bytes_max = chunk_bytes_max.max(1);
            state.chunk_split_chance = split_chance;
        });
    }

    /// The host clock's reading, which Docker stamps entries with (the runtime's wall
    /// clock, stepped back with the host's: see [`Self::step_clock_back`]).
    fn host_wall(&self) -> UnixNanos {
        self.shared.rt.wall()
    }

    /// The host clock steps back by `back` (an NTP correction): every container's
    /// entries from now on are stamped that much earlier, so each stream's timestamps
    /// step back once (see the log model's docs). The agent's wall clock steps with it:
    /// it runs on the same host (its first sight "now" and its tail cut read it).
    pub fn step_clock_back(&self, back: Duration) {
        self.shared.rt.step_wall_back(back);
        let back = back.as_nanos() as i64;
        self.with(|state| {
            state.counters.clock_steps += 1;
            for log in &mut state.logs {
                log.clock_stepped_back(back);
            }
        });
    }

    /// The agent incarnation starting now is a first run with `first_sight = "now"`:
    /// what a container of its first answered `list` wrote before that list is excused
    /// (named `first_sight_now`); see `DockerState::first_sight_now`.
    pub fn set_first_sight_now(&self, now: bool) {
        self.with(|state| state.first_sight_now = now);
    }

    /// Test-only broken model: TTY containers created from now on keep their stderr
    /// writes on stderr (own sequence numbers) while serving them as stdout, as a model
    /// that forgot the merge would. The oracle's teeth test uses it.
    pub fn set_broken_tty_keeps_stderr(&self, broken: bool) {
        self.with(|state| state.broken_tty_keeps_stderr = broken);
    }

    /// Make the next `count` calls of `call` fail with `Unavailable`.
    pub fn fail_next(&self, call: ApiCall, count: u32) {
        self.with(|state| state.fail_next[call.index()] += count);
    }

    // ---- container lifecycle ---------------------------------------------------------

    /// Create a (stopped) container. Its id is 64 hex digits drawn from the model's id
    /// stream.
    pub fn create(&self, name: &str, image: &str, labels: BTreeMap<String, String>) -> ContainerId {
        self.create_tty(name, image, labels, false)
    }

    /// [`Self::create`], with a TTY (`docker create -t`) if `tty`.
    pub fn create_tty(&self, name: &str, image: &str, labels: BTreeMap<String, String>, tty: bool) -> ContainerId {
        const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.with(|state| {
            let id = loop {
                // 64 lowercase hex digits, four draws of 16 each (as `{:016x}` writes
                // them), into one `String`: no formatter and no `String` per draw
                // (callgrind: seeds 100..119 4,495.2 M -> 4,492.2 M).
                let mut text = String::with_capacity(64);
                for _ in 0..4 {
                    let value = state.id_rng.next_u64();
                    text.extend((0..16).rev().map(|digit| HEX_DIGITS[(value >> (4 * digit) & 0xF) as usize] as char));
                }
                let id = ContainerId::new(text);
                if !state.containers.contains_key(&id) && !state.removed.contains_key(&id) {
                    break id;
                }
            };
            let info = ContainerInfo {
                id: id.clone(),
                name: name.into(),
                image: image.into(),
                labels: Arc::new(labels),
                running: false,
                tty,
            };
            let serial = state.logs.len();
            state.logs.push(ContainerLog::new(tty, state.broken_tty_keeps_stderr));
            state.open_streams.push(Vec::new());
            state.serials.insert(id.clone(), serial);
            let container =
                Container { info, serial, paused: false, opens_total: 0, next_open_faults: Default::default() };
            state.containers.insert_new(id.clone(), container);
            state.publish(ContainerEventKind::Create, &id, &[]);
            id
        })
    }

    pub fn start(&self, id: &ContainerId) -> Result<(), CommandError> {
        self.with(|state| {
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            if container.info.running {
                return Err(CommandError::AlreadyRunning);
            }
            container.info.running = true;
            state.publish(ContainerEventKind::Start, id, &[]);
            Ok(())
        })
    }

    /// Mark a container stopped: its follow streams end after what was written so far.
    fn halt(state: &mut DockerState, id: &ContainerId, exit_code: i32) -> Result<(), CommandError> {
        let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
        if !container.info.running {
            return Err(CommandError::NotRunning);
        }
        container.info.running = false;
        // `docker stop` / `kill` of a paused container unfreezes it first.
        container.paused = false;
        state.logs[container.serial].close_open_lines();
        let end = state.logs[container.serial].end();
        state.for_log_streams_of(id, |stream| {
            stream.limit = Some(stream.limit.map_or(end, |limit| limit.min(end)));
        });
        state.publish(ContainerEventKind::Die, id, &[("exitCode", exit_code.to_string())]);
        Ok(())
    }

    /// `docker stop`: `die`, then `stop`.
    pub fn stop(&self, id: &ContainerId) -> Result<(), CommandError> {
        self.with(|state| {
            Self::halt(state, id, 143)?;
            state.publish(ContainerEventKind::Stop, id, &[]);
            Ok(())
        })
    }

    /// The container's process exits by itself: `die` only.
    pub fn exit(&self, id: &ContainerId, exit_code: i32) -> Result<(), CommandError> {
        self.with(|state| Self::halt(state, id, exit_code))
    }

    /// `docker restart`: same id, log kept; `die`, `stop`, `start`, `restart` (only
    /// `start`, `restart` if it was not running).
    pub fn restart(&self, id: &ContainerId) -> Result<(), CommandError> {
        self.with(|state| {
            let running = state.containers.get(id).ok_or(CommandError::NoSuchContainer)?.info.running;
            if running {
                Self::halt(state, id, 143)?;
                state.publish(ContainerEventKind::Stop, id, &[]);
            }
            state.containers.get_mut(id).expect("checked").info.running = true;
            state.publish(ContainerEventKind::Start, id, &[]);
            state.publish(ContainerEventKind::Restart, id, &[]);
            Ok(())
        })
    }

    /// `docker rm -f`: kills it if running, deletes it; new requests say NotFound.
    ///
    /// As Docker does (moby `daemon/logger/loggerutils/follow.go`, `nextPos`): a
    /// follower holds the log file open, and once the logger is closed (at the stop) it
    /// reads on to the last write, then ends. So open streams drain to the end of what
    /// was written (a stalled one ends at once: it would never drain), and the log is
    /// deleted (the lines no reader had lost to removal) when the last of them ends, or
    /// at once if none is open.
    pub fn remove(&self, id: &ContainerId) -> Result<(), CommandError> {
        self.with(|state| {
            let running = state.containers.get(id).ok_or(CommandError::NoSuchContainer)?.info.running;
            if running {
                Self::halt(state, id, 137)?;
            }
            // Nobody hears a `destroy` while no events connection is open (dockerd down,
            // the connection dropped): the agent learns of it at its next list, as of one
            // lost (the world's seed 18227: removed while dockerd was down, the lists
            // after it failed, and the agent monitored it on).
            let heard = !state.event_streams.is_empty();
            if !state.publish(ContainerEventKind::Destroy, id, &[]) || !heard {
                let now = state.now;
                state.unannounced_removals.push(now);
            }
            let mut stalled = false;
            state.for_log_streams_of(id, |stream| {
                if stream.fault == Some(StreamFault::Stall) {
                    stalled = true;
                    stream.end.get_or_insert(StreamEnd::Eof);
                }
            });
            let container = state.containers.remove(id).expect("checked");
            state.removed_since_forget.insert(id.clone());
            // The model keeps the log's bursts (unreadable once deleted) so the oracle can
            // still check the content of lines the agent had read before.
            let streams_open = state.open_streams[container.serial].len();
            if streams_open == 0 {
                state.delete_removed_log(id, &container, stalled);
            } else {
                let mut report = Self::report(state, id, &container, streams_open);
                report.removed = true;
                state.removed.insert(id.clone(), report);
                state.draining.insert(id.clone(), (container, stalled));
            }
            Ok(())
        })
    }

    /// `docker pause`: the process is frozen; it still runs (see the module docs).
    pub fn pause(&self, id: &ContainerId) -> Result<(), CommandError> {
        self.with(|state| {
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            if !container.info.running {
                return Err(CommandError::NotRunning);
            }
            if container.paused {
                return Err(CommandError::Paused);
            }
            container.paused = true;
            state.counters.pauses += 1;
            Ok(())
        })
    }

    /// `docker unpause`.
    pub fn unpause(&self, id: &ContainerId) -> Result<(), CommandError> {
        self.with(|state| {
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            if !container.paused {
                return Err(CommandError::Paused);
            }
            container.paused = false;
            Ok(())
        })
    }

    /// Containers removed at or after `since` whose `destroy` event an [`EventFault`]
    /// lost or held back, or no events connection heard: the agent may monitor them
    /// until its next reconcile.
    pub fn unannounced_removals_since(&self, since: engine::rt::Instant) -> usize {
        self.with(|state| {
            let removals = &state.unannounced_removals;
            removals.len() - removals.partition_point(|at| *at < since)
        })
    }

    /// When an [`EventFault`] last lost or held back one of the container's events:
    /// until its next reconcile the agent may believe it stopped while it runs.
    pub fn events_disturbed_at(&self, id: &ContainerId) -> Option<engine::rt::Instant> {
        self.with(|state| state.events_disturbed.get(id).copied())
    }

    /// Apply `fault` to the next `count` events published (see [`EventFault`]).
    pub fn fault_events(&self, fault: EventFault, count: u32) {
        self.with(|state| state.event_fault = (count > 0).then_some((fault, count)));
    }

    /// `docker rename`.
    pub fn rename(&self, id: &ContainerId, new_name: &str) -> Result<(), CommandError> {
        self.with(|state| {
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            let old_name = std::mem::replace(&mut container.info.name, new_name.into());
            state.publish(ContainerEventKind::Rename, id, &[("oldName", format!("/{old_name}"))]);
            Ok(())
        })
    }

    /// Write a burst of output. Returns the sequence numbers of the new lines.
    pub fn emit(&self, id: &ContainerId, burst: Burst) -> Result<Range<u64>, CommandError> {
        self.with(|state| {
            let wall = self.host_wall();
            // One lookup: the container's log and followers are reached through it.
            let container = state.containers.get(id).ok_or(CommandError::NoSuchContainer)?;
            if !container.info.running {
                return Err(CommandError::NotRunning);
            }
            if container.paused {
                return Err(CommandError::Paused);
            }
            let ts = wall - burst.lag.as_nanos() as i64;
            let gap = burst.entry_gap.as_nanos() as i64;
            let log = &mut state.logs[container.serial];
            let seqs = log.append(log.stream_of(burst.stream), burst.lines, burst.line_bytes, ts, gap);
            if !seqs.is_empty() {
                state::wake_followers_of(&mut state.open_streams[container.serial], &mut state.log_streams);
            }
            Ok(seqs)
        })
    }

    /// Write one line with exactly this content (without its newline, and none inside;
    /// its last entry ends in `\n` like every line's), for conformance scripts that print
    /// known text. Its sequence number counts like any other line's, but [`line_seq`] does not
    /// apply to it. Returns the sequence number.
    pub fn emit_line(&self, id: &ContainerId, stream: StdStream, content: &[u8]) -> Result<u64, CommandError> {
        self.with(|state| {
            let wall = self.host_wall();
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            if !container.info.running {
                return Err(CommandError::NotRunning);
            }
            let log = &mut state.logs[container.serial];
            let seq = log.append_literal(log.stream_of(stream), Arc::from(content), wall, false);
            state.wake_followers(id);
            Ok(seq)
        })
    }

    /// Write the head of a line whose newline is not written yet, as Docker's copier
    /// does when its 16 KiB buffer fills: `content` is whole [`ENTRY_CONTENT_MAX`]
    /// pieces (no newline), each an entry readable at once without a trailing `\n`. The
    /// stream's next [`Self::emit_line`] (or `emit_line_head`) continues the line: same
    /// sequence number, and every piece carries the timestamp of the first one. A stop
    /// ends the line where it is. Returns the line's sequence number.
    pub fn emit_line_head(&self, id: &ContainerId, stream: StdStream, content: &[u8]) -> Result<u64, CommandError> {
        assert!(
            !content.is_empty() && content.len().is_multiple_of(ENTRY_CONTENT_MAX) && !content.contains(&b'\n'),
            "a line head is whole 16 KiB pieces without a newline"
        );
        self.with(|state| {
            let wall = self.host_wall();
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            if !container.info.running {
                return Err(CommandError::NotRunning);
            }
            let log = &mut state.logs[container.serial];
            let seq = log.append_literal(log.stream_of(stream), Arc::from(content), wall, true);
            state.wake_followers(id);
            Ok(seq)
        })
    }

    /// Docker's own log rotation (`max-size`): keep only the last `keep_entries`
    /// entries. Returns how many were deleted. Only while the container runs: the
    /// json-file driver rotates in its write path (a write that would pass `max-size`),
    /// so a stopped or paused container's log, which nothing writes, never rotates and
    /// is never cut under a reader (the model did both: a stream read after an exit ended
    /// at a rotation that real hosts never make).
    pub fn rotate_log(&self, id: &ContainerId, keep_entries: u64, effect: RotationEffect) -> Result<u64, CommandError> {
        self.with(|state| {
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            if !container.info.running {
                return Err(CommandError::NotRunning);
            }
            if container.paused {
                return Err(CommandError::Paused);
            }
            let deleted = state.logs[container.serial].rotate(keep_entries);
            state.counters.entries_deleted_by_rotation += deleted;
            state.for_log_streams_of(id, |stream| match effect {
                RotationEffect::Continue => {}
                RotationEffect::End => {
                    stream.end.get_or_insert(StreamEnd::Eof);
                }
                RotationEffect::Stall => stream.fault = Some(StreamFault::Stall),
            });
            Ok(deleted)
        })
    }

    // ---- stream faults -----------------------------------------------------------------

    /// Inject `fault` into every open log stream of the container. Returns how many.
    pub fn fault_open_streams(&self, id: &ContainerId, fault: StreamFault) -> usize {
        self.with(|state| {
            state.for_log_streams_of(id, |stream| {
                if stream.fault != Some(StreamFault::Stall) {
                    stream.fault = Some(fault);
                }
            })
        })
    }

    /// Arm `fault` for the next log request of the container (faults queue up).
    pub fn fault_next_open(&self, id: &ContainerId, fault: StreamFault) -> Result<(), CommandError> {
        self.with(|state| {
            let container = state.containers.get_mut(id).ok_or(CommandError::NoSuchContainer)?;
            container.next_open_faults.push_back(fault);
            Ok(())
        })
    }

    /// End every open events stream (the events connection drops, daemon still up).
    pub fn drop_event_streams(&self) -> usize {
        self.with(|state| {
            let error = EngineError::Unavailable("events connection reset".into());
            end_event_streams(state, StreamEnd::Error(error))
        })
    }

    // ---- the daemon ----------------------------------------------------------------------

    /// The daemon stops: calls fail, open log and events streams error and end.
    pub fn daemon_down(&self) {
        self.with(|state| {
            state.daemon_up = false;
            let error = EngineError::Unavailable("docker daemon restarting".into());
            for stream in state.log_streams.values_mut() {
                stream.end.get_or_insert(StreamEnd::Error(error.clone()));
                if let Some(waker) = stream.waker.take() {
                    waker.wake();
                }
            }
            end_event_streams(state, StreamEnd::Error(error));
        });
    }

    /// The daemon is back.
    pub fn daemon_up(&self) {
        self.with(|state| state.daemon_up = true);
    }

    /// Down and up at once: every open stream ends, new calls succeed.
    pub fn restart_daemon(&self) {
        self.daemon_down();
        self.daemon_up();
    }

    pub fn is_daemon_up(&self) -> bool {
        self.with(|state| state.daemon_up)
    }

    // ---- for the oracle and the driver -------------------------------------------------

    pub fn counters(&self) -> DockerCounters {
        self.with(|state| {
            let mut counters = state.counters.clone();
            counters.log_streams_open = state.log_streams.len();
            counters.event_streams_open = state.event_streams.len();
            counters
        })
    }

    /// Every container ever created (live ones first, each group by id).
    pub fn containers(&self) -> Vec<ContainerReport> {
        self.with(|state| {
            let open = state.streams_open_by_container();
            let open_of = |id: &ContainerId| open.get(id).copied().unwrap_or(0);
            let mut reports: Vec<ContainerReport> = state
                .containers
                .iter()
                .map(|(id, container)| Self::report(state, id, container, open_of(id)))
                .collect();
            reports.extend(
                state
                    .removed
                    .values()
                    .map(|report| ContainerReport { streams_open: open_of(&report.id), ..report.clone() }),
            );
            reports
        })
    }

    pub fn container(&self, id: &ContainerId) -> Option<ContainerReport> {
        self.with(|state| match state.containers.get(id) {
            Some(container) => Some(Self::report(state, id, container, state.open_streams[container.serial].len())),
            None => state.removed.get(id).map(|report| ContainerReport {
                streams_open: state.log_streams.values().filter(|s| &s.container == id).count(),
                ..report.clone()
            }),
        })
    }

    /// Ids of live (not removed) containers, running or not.
    pub fn container_ids(&self) -> Vec<ContainerId> {
        self.with(|state| state.containers.keys().cloned().collect())
    }

    /// Containers that exist (created, not removed), running or not: cheaper than
    /// counting [`Self::containers`].
    pub fn existing_count(&self) -> usize {
        self.with(|state| state.containers.len())
    }

    /// Reports of the containers that exist (not the removed ones).
    pub fn existing_containers(&self) -> Vec<ContainerReport> {
        self.with(|state| {
            let reports = state.containers.iter();
            reports.map(|(id, c)| Self::report(state, id, c, state.open_streams[c.serial].len())).collect()
        })
    }

    /// Running containers with unread output and no log stream open, in id order (the
    /// starvation check's question, answered without building reports), each with the
    /// number of log requests ever made for it (a checker that samples sees from a change
    /// of that number that the container was streamed in between). A container with
    /// nothing unread needs no stream: the agent may leave it waiting (a waiter whose
    /// probe finds its log read to the end makes no holder yield).
    pub fn unread_unstreamed(&self) -> Vec<(ContainerId, u64)> {
        self.with(|state| {
            let unstreamed = state.containers.iter().filter(|(_, c)| {
                c.info.running && state.open_streams[c.serial].is_empty() && state.logs[c.serial].has_unread()
            });
            unstreamed.map(|(id, c)| (id.clone(), c.opens_total)).collect()
        })
    }

    /// The agent that saw the containers so far was only a probe (the simulator's
    /// baseline): the real first start is to come, and sees them for the first time.
    pub fn forget_seen(&self) {
        self.with(|state| {
            state.logs.iter_mut().for_each(|log| log.forget_seen());
            state.forget_agent();
        });
    }

    /// The agent crashed: what it had read is gone with it (see `ContainerLog::forget_reads`).
    pub fn forget_reads(&self) {
        self.with(|state| {
            state.end_drains();
            state.forget_agent();
            state.unsettled.forget();
            state.logs.iter_mut().for_each(|log| log.forget_reads());
            state.removed_since_forget.clear();
        });
    }

    /// The agent restarts from its checkpoint: `committed` says, per existing container
    /// and stream, the line it had committed (see `ContainerLog::reset_reader`).
    pub fn reset_readers(&self, committed: impl Fn(&ContainerId, StdStream) -> Option<u64>) {
        self.with(|state| {
            let DockerState { containers, logs, .. } = state;
            for (id, container) in containers.iter() {
                let keys = [committed(id, StdStream::Stdout), committed(id, StdStream::Stderr)];
                logs[container.serial].reset_reader(keys);
            }
        });
    }

    /// The agent died (crash or shutdown): the lines it had read and not delivered
    /// (`delivered` per container and stream, as the oracle counts them) of a container
    /// removed while it ran (since the last [`Self::forget_reads`]), or that json-file
    /// rotation deleted from a live one, can never be read again: name them lost to
    /// removal or rotation. Returns how many.
    pub fn abandon_removed_reads(&self, delivered: impl Fn(&ContainerId, StdStream) -> u64) -> u64 {
        self.with(|state| {
            // Its streams of removed containers end with it: their logs are deleted first.
            state.end_drains();
            let mut total = 0;
            let DockerState { removed, removed_since_forget, serials, logs, containers, .. } = state;
            let delivered = |id: &ContainerId| [delivered(id, StdStream::Stdout), delivered(id, StdStream::Stderr)];
            for id in removed_since_forget.iter() {
                let (Some(&serial), Some(report)) = (serials.get(id), removed.get_mut(id)) else { continue };
                let log = &mut logs[serial];
                let added = log.abandon_deleted_reads(delivered(id), true);
                if added > 0 {
                    report.lost_to_removal = log.lost_lines(LossCause::Removal);
                    total += added;
                }
            }
            for (id, container) in containers.iter() {
                total += logs[container.serial].abandon_deleted_reads(delivered(id), false);
            }
            total
        })
    }

    /// Removals that deleted lines no reader of the running agent incarnation had, of
    /// containers it had learned of: since its start, and over the run (see
    /// `completeness::check_tails`).
    pub fn tails_owed(&self) -> [u64; 2] {
        self.with(|state| state.tails_owed)
    }

    /// The first line of `stream` at or after `seq` that the world did not delete unread.
    pub fn excused_through(&self, id: &ContainerId, stream: StdStream, seq: u64) -> u64 {
        self.log_serial(id).map_or(seq, |log| self.excused_through_at(log, stream, seq))
    }

    /// The handle of a container's log (removed ones too), for the per-line questions
    /// below without an id lookup each.
    /// Check, at every chunk a log stream hands, that the bytes handed to the agent and
    /// not settled stay within `queue_bytes_max` plus the open streams' slack, a line
    /// weighing at most `content_cap` content bytes (see `unsettled`).
    pub fn set_unsettled_bound(&self, queue_bytes_max: usize, content_cap: usize) {
        self.with(|state| state.unsettled.set_bound(queue_bytes_max as u64, content_cap as u64));
    }

    /// Loki answered (stored or refused) the lines of `stream` of log `log` before `through`.
    pub fn settle(&self, log: usize, stream: StdStream, through: u64) {
        self.with(|state| state.unsettled.settle(&state.logs[log], log, stream, through));
    }

    /// The first time the agent held more unsettled bytes than its bound allows, and the
    /// highest count seen.
    pub fn unsettled(&self) -> (Option<String>, u64) {
        self.with(|state| (state.unsettled.violation.clone(), state.unsettled.max_seen))
    }

    /// The agent begins a graceful shutdown (see `unsettled`): the bound is not checked
    /// until [`Self::forget_reads`].
    pub fn agent_stopping(&self) {
        self.with(|state| state.unsettled.stopping());
    }

    /// Bytes handed to the agent and not settled now, and the open streams' slack.
    pub fn unsettled_now(&self) -> (u64, u64) {
        self.with(|state| state.unsettled.now())
    }

    pub fn log_serial(&self, id: &ContainerId) -> Option<usize> {
        self.with(|state| state.serials.get(id).copied())
    }

    /// Run `f` on a container's log (by [`Self::log_serial`]) under one lock: the
    /// oracle's per-line questions for a whole batch stream at once.
    pub(crate) fn with_log<T>(&self, log: Option<usize>, f: impl FnOnce(Option<&ContainerLog>) -> T) -> T {
        self.with(|state| f(log.map(|log| &state.logs[log])))
    }

    /// [`Self::excused_through`] by log handle.
    /// How many of the lines `seqs` of a container's stream the world named lost to `cause`.
    pub fn lines_named(&self, id: &ContainerId, stream: StdStream, seqs: Range<u64>, cause: LossCause) -> u64 {
        self.log_serial(id).map_or(0, |log| self.with(|state| state.logs[log].lines_named(stream, seqs, cause)))
    }

    pub fn excused_through_at(&self, log: usize, stream: StdStream, seq: u64) -> u64 {
        self.with(|state| state.logs[log].excused_through(stream, seq))
    }

    /// [`Self::line_matches`] by log handle.
    pub fn line_matches_at(
        &self,
        log: usize,
        stream: StdStream,
        seq: u64,
        content: &[u8],
        line_bytes_max: usize,
    ) -> Option<bool> {
        self.with(|state| state.logs[log].line_matches(stream, seq, content, line_bytes_max))
    }

    /// Whether `content` is line `seq` of the container's `stream`, as written and then
    /// truncated by the agent's rule. `None`: no such line was written.
    pub fn line_matches(
        &self,
        id: &ContainerId,
        stream: StdStream,
        seq: u64,
        content: &[u8],
        line_bytes_max: usize,
    ) -> Option<bool> {
        self.with(|state| state.logs[*state.serials.get(id)?].line_matches(stream, seq, content, line_bytes_max))
    }

    /// Ids of running containers.
    pub fn running_ids(&self) -> Vec<ContainerId> {
        self.with(|state| state.containers.iter().filter(|(_, c)| c.info.running).map(|(id, _)| id.clone()).collect())
    }
}

fn end_event_streams(state: &mut DockerState, end: StreamEnd) -> usize {
    let mut count = 0;
    // Events a delay held back die with the connection.
    state.held_events.clear();
    for subscriber in state.event_streams.values_mut() {
        if subscriber.end.is_none() {
            // The connection is gone: events not yet read are lost with it.
            subscriber.queue.clear();
            subscriber.end = Some(end.clone());
            if let Some(waker) = subscriber.waker.take() {
                waker.wake();
            }
            count += 1;
        }
    }
    count
}

/// Turn an error of a model-internal lookup into the engine's view.
fn not_found(id: &ContainerId) -> EngineError {
    EngineError::NotFound(id.to_string())
}
