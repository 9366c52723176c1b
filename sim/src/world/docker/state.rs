//! The Docker model's state behind one lock: containers, open streams, faults, counters.
//!
//! Owns: the data every part of the model shares — the commands of [`super::SimDocker`],
//! the port implementation, and the open log and event streams, which look their
//! records up here on every poll. Single-threaded simulation, so one uncontended mutex.
//!
//! Promises: iteration is over `BTreeMap`s keyed by id or by open order, so every wake
//! and every event is delivered in a deterministic order.

use std::collections::{BTreeMap, VecDeque};
use std::task::Waker;
use std::time::Duration;

use engine::model::ContainerId;
use engine::port::{ContainerEvent, ContainerEventKind, ContainerInfo, EngineError};

use super::containers::ContainerTable;
use super::log::{ContainerLog, LogCursor, TimestampText};
use super::log_stream::StreamFault;
use super::stream_table::{Slot, StreamTable};
use crate::executor::SimRng;

/// The Docker API calls the model serves, for targeted failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiCall {
    List,
    Inspect,
    Events,
    Logs,
}

impl ApiCall {
    pub(crate) const COUNT: usize = 4;

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A fault of the events stream on a live connection ([`super::SimDocker::fault_events`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFault {
    /// The next events are never delivered: moby's events publisher (`pkg/pubsub`) drops
    /// an event for a subscriber that does not take it within its timeout.
    Lose,
    /// The next events are delivered twice (a client that re-reads after a hiccup).
    Duplicate,
    /// The next events are held back and delivered after the event that follows them:
    /// out of order, and stale when that event is their container's `die` or `destroy`
    /// (a `start` for a container that is gone).
    Delay,
}

/// How an open stream was ended by the world (not by its own reader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// Clean end of stream.
    Eof,
    /// The connection failed: the reader gets this error, then the end.
    Error(EngineError),
}

pub(crate) struct Container {
    pub(crate) info: ContainerInfo,
    /// Index of its log in [`DockerState::logs`].
    pub(crate) serial: usize,
    /// `docker pause`d: its process is frozen (writes nothing), it still runs.
    pub(crate) paused: bool,
    /// Log requests ever made for this container.
    pub(crate) opens_total: u64,
    /// Faults armed for the next log requests, in order.
    pub(crate) next_open_faults: VecDeque<StreamFault>,
}

/// The model's record of one open (not yet dropped) log stream.
pub(crate) struct OpenLogStream {
    pub(crate) container: ContainerId,
    /// The container's serial: its log, and its entry in [`DockerState::open_streams`].
    pub(crate) serial: usize,
    pub(crate) fault: Option<StreamFault>,
    /// The stream ends once its cursor reaches this (non-follow requests, stopped
    /// containers). `None`: follow on.
    pub(crate) limit: Option<LogCursor>,
    pub(crate) end: Option<StreamEnd>,
    pub(crate) waker: Option<Waker>,
}

/// The model's record of one open events stream.
#[derive(Default)]
pub(crate) struct EventSubscriber {
    pub(crate) queue: VecDeque<ContainerEvent>,
    pub(crate) end: Option<StreamEnd>,
    pub(crate) waker: Option<Waker>,
}

/// Counters the oracle reads. See [`super::SimDocker::counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerCounters {
    /// Log streams open now (returned by `logs` and not yet dropped by the reader).
    pub log_streams_open: usize,
    /// The most log streams open at once.
    pub log_streams_open_max: usize,
    /// Successful `logs` calls.
    pub log_opens_total: u64,
    /// Bytes handed to log stream readers.
    pub log_bytes_delivered: u64,
    /// Log entries rendered into frames for readers.
    pub log_entries_delivered: u64,
    /// Events streams open now, and at most.
    pub event_streams_open: usize,
    pub event_streams_open_max: usize,
    /// Events handed to events stream readers.
    pub events_delivered: u64,
    /// Calls of the API (list, inspect, events, logs), and those that failed.
    pub api_calls: u64,
    pub api_failures: u64,
    /// Entries deleted by the daemon's own log rotation, over all containers.
    pub entries_deleted_by_rotation: u64,
    /// Events lost, duplicated and delayed by [`EventFault`]s.
    pub events_lost: u64,
    pub events_duplicated: u64,
    pub events_delayed: u64,
    /// `docker pause` commands played.
    pub pauses: u64,
    /// Host clock steps back played.
    pub clock_steps: u64,
}

pub(crate) struct DockerState {
    /// Live containers by id, found by the address of the id first (see `containers`).
    pub(crate) containers: ContainerTable<Container>,
    /// Logs by container serial (creation order), so that a reader finds its log
    /// without comparing 64-byte ids; a removed container's log is emptied.
    pub(crate) logs: Vec<ContainerLog>,
    /// Per container serial, the slots of its open log streams in open order (their
    /// records in `log_streams`, found without a search at every write's wake-up;
    /// callgrind seed 85 431.1 M → 430.3 M instructions). By serial, not in
    /// [`Container`], so that a stream closing finds them without looking its container
    /// up by id in a `BTreeMap` (seed 1: 54 k closes; 1,403 M instructions before,
    /// 1,396 M after).
    pub(crate) open_streams: Vec<Vec<Slot>>,
    /// Every container's log serial, removed ones included (the oracle checks content
    /// delivered after a removal).
    pub(crate) serials: BTreeMap<ContainerId, usize>,
    /// Final reports of removed containers, for the oracle.
    pub(crate) removed: BTreeMap<ContainerId, super::ContainerReport>,
    /// Removed containers whose log streams were open at `docker rm`: they read on to
    /// the last write; the log is deleted when the last of them ends
    /// ([`DockerState::close_log_stream`]).
    /// With it, whether a stream was stalled at the removal (see `delete_removed_log`).
    pub(crate) draining: BTreeMap<ContainerId, (Container, bool)>,
    /// Logs (by serial) the running agent incarnation has learned of (list, inspect,
    /// event): forgotten at its crash or stop.
    /// By serial (`true`: learned of; a serial past the end: not). A flag per log, not a
    /// set: every `list` marks each container (seed 85: 13 k marks, 1.7 M instructions
    /// in `BTreeSet` inserts before; callgrind 446.2 M → 444.8 M in all).
    pub(crate) seen_by_agent: Vec<bool>,
    /// Removals of a container the running incarnation had learned of that deleted
    /// lines no reader of it had: it owes one `container_tails_unread_total` each.
    /// Since its start, and over the run.
    pub(crate) tails_owed: [u64; 2],
    /// Containers removed since the agent's reads were last forgotten (its last crash or
    /// stop): only their read lines can still be in the dying agent's hands.
    pub(crate) removed_since_forget: std::collections::BTreeSet<ContainerId>,
    pub(crate) daemon_up: bool,
    pub(crate) log_streams: StreamTable<OpenLogStream>,
    pub(crate) event_streams: BTreeMap<u64, EventSubscriber>,
    pub(crate) next_stream_id: u64,
    /// Container ids: a stream of its own, so ids depend only on the world's commands.
    pub(crate) id_rng: SimRng,
    /// Chunking of log streams: depends on how the engine reads, kept apart from ids.
    pub(crate) chunk_rng: SimRng,
    /// Failures armed per call (by [`ApiCall::index`]): an array, not a map searched
    /// at every call (callgrind: seeds 100..119, 195 k calls, 4,538.3 M -> 4,530.2 M;
    /// seed 19 866.2 M -> 863.1 M).
    pub(crate) fail_next: [u32; ApiCall::COUNT],
    /// The running agent is on a first run with `first_sight = "now"` and has not had
    /// a `list` answered yet: the containers of that first list are read from the
    /// instant it saw them (the oracle's excuse for what they wrote before). Containers
    /// it first learns of otherwise (an event, an `inspect`, a later list) are read from
    /// the beginning.
    pub(crate) first_sight_now: bool,
    /// See [`super::SimDocker::set_broken_tty_keeps_stderr`].
    pub(crate) broken_tty_keeps_stderr: bool,
    pub(crate) api_latency: Duration,
    pub(crate) chunk_bytes_max: usize,
    pub(crate) chunk_split_chance: f64,
    pub(crate) counters: DockerCounters,
    /// The fault applied to the next events published, and to how many more.
    pub(crate) event_fault: Option<(EventFault, u32)>,
    /// Events a [`EventFault::Delay`] holds back until the next event is published.
    pub(crate) held_events: Vec<ContainerEvent>,
    /// When containers were removed whose `destroy` an [`EventFault`] lost or held back
    /// (in order): the agent can only learn of them from its next reconcile.
    pub(crate) unannounced_removals: Vec<engine::rt::Instant>,
    /// Per container, when an [`EventFault`] last lost or held back one of its events.
    pub(crate) events_disturbed: BTreeMap<ContainerId, engine::rt::Instant>,
    /// Virtual time at the latest command (set by `SimDocker::with`).
    pub(crate) now: engine::rt::Instant,
    /// The host clock then (events carry it, as Docker's `timeNano`).
    pub(crate) wall: engine::rt::UnixNanos,
    /// The world's count of bytes handed to the agent and not settled.
    pub(crate) unsettled: super::unsettled::Unsettled,
    /// Timestamp text for every reader's renders: a cache, shared so that its date
    /// outlives a reader ([`TimestampText`]).
    pub(crate) timestamps: TimestampText,
    /// Render buffers of dropped streams, for the next ones.
    pub(crate) buffers: super::buffers::BufferPool,
    /// The frames of the bursts rendered last, per log, for the next readers.
    pub(crate) frames: super::frames::FrameCache,
}

/// [`DockerState::seen`] on the fields it changes.
fn seen_in(logs: &mut [ContainerLog], seen_by_agent: &mut Vec<bool>, serial: usize, first_list: bool) {
    logs[serial].mark_seen(first_list);
    if seen_by_agent.len() <= serial {
        seen_by_agent.resize(serial + 1, false);
    }
    seen_by_agent[serial] = true;
}

impl DockerState {
    /// The agent learned of this container (by serial); `first_list`: from the first
    /// list of a first run under `first_sight = "now"` ([`Self::first_sight_now`]).
    pub(crate) fn seen(&mut self, serial: usize, first_list: bool) {
        seen_in(&mut self.logs, &mut self.seen_by_agent, serial, first_list);
    }

    /// A `list`: every container's info, each marked seen ([`Self::seen`]) in the
    /// table's order. One pass, no list of serials first (6 k lists of ~55 containers
    /// over seeds 100..119; callgrind 4,530.2 M -> 4,521.8 M, seed 2 348.0 M -> 346.7 M).
    pub(crate) fn list_seen(&mut self, first_list: bool) -> Vec<ContainerInfo> {
        let DockerState { containers, logs, seen_by_agent, .. } = self;
        containers
            .values()
            .map(|container| {
                seen_in(logs, seen_by_agent, container.serial, first_list);
                container.info.clone()
            })
            .collect()
    }

    pub(crate) fn new(seed: u64) -> DockerState {
        DockerState {
            containers: ContainerTable::default(),
            logs: Vec::new(),
            open_streams: Vec::new(),
            serials: BTreeMap::new(),
            removed: BTreeMap::new(),
            removed_since_forget: Default::default(),
            seen_by_agent: Default::default(),
            tails_owed: [0; 2],
            draining: BTreeMap::new(),
            daemon_up: true,
            log_streams: StreamTable::default(),
            event_streams: BTreeMap::new(),
            next_stream_id: 0,
            id_rng: SimRng::derive(seed, 0x1D),
            chunk_rng: SimRng::derive(seed, 0xC4),
            fail_next: [0; ApiCall::COUNT],
            first_sight_now: false,
            broken_tty_keeps_stderr: false,
            api_latency: Duration::ZERO,
            chunk_bytes_max: 64 * 1024,
            chunk_split_chance: 0.25,
            counters: DockerCounters::default(),
            event_fault: None,
            held_events: Vec::new(),
            unannounced_removals: Vec::new(),
            events_disturbed: BTreeMap::new(),
            now: engine::rt::Instant::ZERO,
            wall: 0,
            unsettled: Default::default(),
            timestamps: TimestampText::default(),
            buffers: Default::default(),
            frames: Default::default(),
        }
    }

    /// Start an API call: counts it, and fails it if the daemon is down or a failure
    /// is armed for this call.
    pub(crate) fn begin_call(&mut self, call: ApiCall) -> Result<(), EngineError> {
        self.counters.api_calls += 1;
        let armed = &mut self.fail_next[call.index()];
        let failed = if *armed > 0 {
            *armed -= 1;
            Some(EngineError::Unavailable(format!("injected failure of {call:?}")))
        } else if !self.daemon_up {
            Some(EngineError::Unavailable("docker daemon is not running".into()))
        } else {
            None
        };
        match failed {
            Some(error) => {
                self.counters.api_failures += 1;
                Err(error)
            }
            None => Ok(()),
        }
    }

    pub(crate) fn next_stream_id(&mut self) -> u64 {
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        id
    }

    /// Queue an event for every open events stream. Returns false if an [`EventFault`]
    /// lost or held it back (the subscribers do not have it now).
    pub(crate) fn publish(&mut self, kind: ContainerEventKind, id: &ContainerId, extra: &[(&str, String)]) -> bool {
        if self.event_streams.is_empty() {
            return true;
        }
        let Some(container) = self.containers.get(id) else { return true };
        let mut attributes = (*container.info.labels).clone();
        attributes.insert("name".into(), container.info.name.to_string());
        attributes.insert("image".into(), container.info.image.to_string());
        for (key, value) in extra {
            attributes.insert((*key).into(), value.clone());
        }
        let event = ContainerEvent { kind, id: id.clone(), attributes, time: Some(self.wall) };
        let fault = match &mut self.event_fault {
            Some((fault, left)) => {
                let fault = *fault;
                *left = left.saturating_sub(1);
                if *left == 0 {
                    self.event_fault = None;
                }
                Some(fault)
            }
            None => None,
        };
        if matches!(fault, Some(EventFault::Lose | EventFault::Delay)) {
            self.events_disturbed.insert(id.clone(), self.now);
        }
        let mut events = Vec::new();
        match fault {
            Some(EventFault::Lose) => self.counters.events_lost += 1,
            Some(EventFault::Duplicate) => {
                self.counters.events_duplicated += 1;
                events.extend([event.clone(), event]);
            }
            Some(EventFault::Delay) => {
                self.counters.events_delayed += 1;
                self.held_events.push(event);
            }
            None => {
                events.push(event);
                // Released behind a later event: stale news from now on (a `die` after
                // the `start` that followed it) until the agent's next reconcile.
                for held in &self.held_events {
                    self.events_disturbed.insert(held.id.clone(), self.now);
                }
                events.append(&mut self.held_events);
            }
        }
        if events.is_empty() {
            return false;
        }
        // The last open subscriber (mostly the only one) takes the events themselves,
        // the others clones: an event's attributes are a map of strings (callgrind:
        // seeds 100..119 4,502.8 M -> 4,495.2 M, seed 3 395.5 M -> 394.9 M).
        let mut open = self.event_streams.values().filter(|subscriber| subscriber.end.is_none()).count();
        for subscriber in self.event_streams.values_mut() {
            if subscriber.end.is_none() {
                open -= 1;
                if open == 0 {
                    subscriber.queue.extend(events.drain(..));
                } else {
                    subscriber.queue.extend(events.iter().cloned());
                }
                if let Some(waker) = subscriber.waker.take() {
                    waker.wake();
                }
            }
        }
        true
    }

    /// Apply `change` to every open log stream of `container` and wake it (unless it is
    /// stalled and not ended).
    pub(crate) fn for_log_streams_of(
        &mut self,
        container: &ContainerId,
        mut change: impl FnMut(&mut OpenLogStream),
    ) -> usize {
        let mut count = 0;
        let Some(entry) = self.containers.get(container) else { return 0 };
        for slot in &self.open_streams[entry.serial] {
            let stream = self.log_streams.get_mut_at(slot).expect("indexed stream is open");
            change(stream);
            // A stalled stream is woken only to be ended.
            let stalled = matches!(stream.fault, Some(StreamFault::Stall));
            if !stalled || stream.end.is_some() {
                if let Some(waker) = stream.waker.take() {
                    waker.wake();
                }
            }
            count += 1;
        }
        count
    }

    /// Log streams open per container (live or removed), in one pass.
    pub(crate) fn streams_open_by_container(&self) -> BTreeMap<&ContainerId, usize> {
        let mut counts = BTreeMap::new();
        for stream in self.log_streams.values() {
            *counts.entry(&stream.container).or_insert(0) += 1;
        }
        counts
    }

    /// Forget an open log stream (its reader dropped it). The last stream of a removed
    /// container ends its drain: its log is deleted now.
    pub(crate) fn close_log_stream(&mut self, stream: &Slot) {
        // Most closes find no drain at all: asked first, that spares a search of the
        // drains by id (64-digit ids compared). Callgrind: seed 2 429.9 M → 429.0 M
        // instructions, seed 3 469.9 M → 469.0 M, seed 19 864.6 M → 863.3 M.
        let draining = !self.draining.is_empty();
        let closed =
            self.log_streams.remove_with(stream, |record| (record.serial, draining.then(|| record.container.clone())));
        if let Some((serial, container)) = closed {
            let open_streams = &mut self.open_streams[serial];
            open_streams.retain(|open| open.id != stream.id);
            // The last stream of a removed container is gone: its log is deleted.
            if let Some(container) = container.filter(|_| open_streams.is_empty()) {
                if let Some((record, stalled)) = self.draining.remove(&container) {
                    self.delete_removed_log(&container, &record, stalled);
                }
            }
        }
        self.counters.log_streams_open = self.log_streams.len();
    }

    /// `docker rm`'s deletion of the log, once no stream reads it: the lines no reader
    /// had are lost to removal, and the removal report says so. If the running agent
    /// had learned of the container, it owes a count of the tail unread
    /// ([`Self::tails_owed`]), unless a stream of it was `stalled` at the removal: such a
    /// stream (moby #37646) ends cleanly at the removal without the tail, which its
    /// reader cannot tell from a stream that drained the log.
    pub(crate) fn delete_removed_log(&mut self, id: &ContainerId, container: &Container, stalled: bool) {
        let lost = self.logs[container.serial].delete_all();
        self.frames.forget(container.serial);
        if lost > 0 && !stalled && self.seen_by_agent.get(container.serial).copied().unwrap_or(false) {
            self.tails_owed[0] += 1;
            self.tails_owed[1] += 1;
        }
        let streams_open = self.open_streams[container.serial].len();
        let mut report = super::SimDocker::report(self, id, container, streams_open);
        report.removed = true;
        self.removed.insert(id.clone(), report);
    }

    /// The agent incarnation is gone (crash, stop, or the baseline probe): what it had
    /// learned of and what it owed are forgotten.
    pub(crate) fn forget_agent(&mut self) {
        self.seen_by_agent.fill(false);
        self.tails_owed[0] = 0;
    }

    /// End the drain of every removed container now (the reader is going away): their
    /// streams end, their logs are deleted.
    pub(crate) fn end_drains(&mut self) {
        for (id, (container, stalled)) in std::mem::take(&mut self.draining) {
            for slot in &self.open_streams[container.serial] {
                let stream = self.log_streams.get_mut_at(slot).expect("indexed stream is open");
                stream.end.get_or_insert(StreamEnd::Eof);
                if let Some(waker) = stream.waker.take() {
                    waker.wake();
                }
            }
            self.delete_removed_log(&id, &container, stalled);
        }
    }

    /// Wake the readers of `container` waiting for new entries (not the stalled ones).
    pub(crate) fn wake_followers(&mut self, container: &ContainerId) {
        let Some(entry) = self.containers.get(container) else { return };
        wake_followers_of(&mut self.open_streams[entry.serial], &mut self.log_streams);
    }
}

/// [`DockerState::wake_followers`] for a container already looked up: the readers
/// among `open_streams` (its entry in [`DockerState::open_streams`]).
pub(crate) fn wake_followers_of(open_streams: &mut [Slot], log_streams: &mut StreamTable<OpenLogStream>) {
    for slot in open_streams {
        let stream = log_streams.get_mut_at(slot).expect("indexed stream is open");
        if !matches!(stream.fault, Some(StreamFault::Stall)) {
            if let Some(waker) = stream.waker.take() {
                waker.wake();
            }
        }
    }
}
