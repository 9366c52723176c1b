//! The engine's observable events, one struct each (after Vector's `internal_events`):
//! an event owns its log line and its counters, so what the agent reports is listed
//! here, in one place, and a call site says what happened rather than which atomics
//! move.
//!
//! # The pattern
//!
//! ```ignore
//! events::SinkRetrying { reason: &reason, failures, delay }.emit(&telemetry, now);
//! events::StreamOpened.emit(&telemetry);
//! ```
//!
//! - An event is a struct named for what happened, in the past tense or as a state
//!   (`StreamRotated`, `SinkRetrying`), with the facts as fields.
//! - `emit(self, telemetry)` counts; an event that also logs takes `now` too,
//!   `emit(self, telemetry, now)`, because its log line is burst-limited ([`BurstLog`]:
//!   one line per window, with the number suppressed), so a flood of identical failures
//!   never becomes a flood of log lines.
//! - Call sites never touch `Telemetry`'s atomics or call `tracing` for these events; a
//!   new counter or log line is a new event here (and, if exported, a line in the
//!   daemon's `/metrics` collector).
//!
//! Events for every part of the engine are defined here, including those the container
//! supervisor and discovery emit (stream opened/rotated/yielded/failed, lines read, log
//! gaps, unread tails, malformed frames, Docker up/down, the monitored and retiring
//! gauges).
//!
//! **The rule:** nothing outside `telemetry` moves `Telemetry`'s atomics, sets a
//! component's health or writes one of these log lines; it emits an event. (Outside
//! `telemetry`, the atomics are only read: the daemon's `/metrics`, the oracle, tests.)
//!
//! [`BurstLog`]: super::BurstLog

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{add, apply_delta, Component, DropReason, SinkStatus, Telemetry};
use crate::rt::Instant;

// ---------------------------------------------------------------------------------------
// Sources: container streams and lines.

/// A Docker log stream was opened (first open, reopen after a failure, or rotation).
pub struct StreamOpened;

impl StreamOpened {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.container_stream_opens_total, 1);
    }
}

/// The stall watchdog probed a silent stream: `behind` if the log's last entry was not
/// the last line read (the stream is reopened), else it is only silent (kept).
pub struct StreamProbed {
    pub behind: bool,
}

impl StreamProbed {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.container_stream_probes_total[usize::from(self.behind)], 1);
    }
}

/// A stream was dropped on schedule to be reopened (rotation).
pub struct StreamRotated;

impl StreamRotated {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.container_stream_rotations_total, 1);
    }
}

/// A stream was dropped to give its slot to a waiter (the pool asked the oldest holder
/// to yield); it is reopened when a slot is free again. Counted as a rotation, as
/// dashboards have always read it: a planned drop and reopen.
pub struct StreamYielded;

impl StreamYielded {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.container_stream_rotations_total, 1);
    }
}

/// A stream failed to open, or broke while read; it will be reopened after a backoff.
pub struct StreamFailed<'a> {
    pub container: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl StreamFailed<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        add(&telemetry.container_stream_errors_total, 1);
        if let Some(suppressed) = telemetry.docker_log.should_log(now) {
            let StreamFailed { container, error } = self;
            tracing::warn!(container, %error, suppressed, "container log stream failed; reopening");
        }
    }
}

/// Docker could not be asked about a container (inspect failed): nothing is counted
/// (the stream did not fail), the same burst-limited line as [`StreamFailed`] is logged,
/// and the supervisor retries after a backoff.
pub struct InspectFailed<'a> {
    pub container: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl InspectFailed<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        if let Some(suppressed) = telemetry.docker_log.should_log(now) {
            let InspectFailed { container, error } = self;
            tracing::warn!(container, %error, suppressed, "container log stream failed; reopening");
        }
    }
}

/// Complete lines read from a source and queued, with what happened to the rest.
#[derive(Default)]
pub struct LinesRead {
    pub lines: u64,
    pub bytes: u64,
    /// Lines cut at `line_bytes_max` (counted in `lines` too).
    pub truncated: u64,
    /// Lines read again after a reopen and skipped as already queued.
    pub duplicates: u64,
}

impl LinesRead {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.lines_in_total, self.lines);
        add(&telemetry.bytes_in_total, self.bytes);
        add(&telemetry.lines_truncated_total, self.truncated);
        add(&telemetry.lines_duplicate_skipped_total, self.duplicates);
    }
}

/// A reopened stream's replay no longer held the last line read although it should
/// have: Docker's json-file rotation deleted the log past that position, so lines may
/// be lost (how many, the agent cannot know). `gaps` is counted (once per stream and
/// reopen) and logged once per burst.
pub struct LogGapFound<'a> {
    pub container: &'a str,
    pub gaps: u64,
}

impl LogGapFound<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        add(&telemetry.container_log_gaps_total, self.gaps);
        if let Some(suppressed) = telemetry.docker_log.should_log(now) {
            tracing::warn!(
                container = self.container,
                suppressed,
                "the container's log no longer holds the last line read: lines may be lost (log rotated)"
            );
        }
    }
}

/// A collected container's supervisor finished (removed, or no longer collected)
/// before any stream ended by itself after the container stopped: its last lines may
/// be unread (how many, the agent cannot know). Counted, not logged.
pub struct TailUnread;

impl TailUnread {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.container_tails_unread_total, 1);
    }
}

/// A Docker stream could not be decoded (bad frame header or timestamp): one entry is
/// counted as dropped, the stream is reopened after the last good line.
pub struct MalformedFrame<'a> {
    pub container: &'a str,
    pub detail: &'a str,
}

impl MalformedFrame<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        let detail = format!("container {}: {}", self.container, self.detail);
        LinesDropped { reason: DropReason::MalformedFrame, lines: 1, detail: &detail }.emit(telemetry, now);
    }
}

/// Lines dropped for good (never silently): counted by reason, logged once per burst.
pub struct LinesDropped<'a> {
    pub reason: DropReason,
    pub lines: u64,
    pub detail: &'a str,
}

impl LinesDropped<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        let LinesDropped { reason, lines, detail } = self;
        add(&telemetry.lines_dropped_total[reason as usize], lines);
        if let Some(suppressed) = telemetry.drop_log.should_log(now) {
            tracing::warn!(reason = reason.as_str(), lines, suppressed, detail, "lines dropped");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Containers: discovery and the stream pool.

/// The Docker engine answered (list or events): healthy.
pub struct DockerUp;

impl DockerUp {
    pub fn emit(self, telemetry: &Telemetry) {
        telemetry.health(Component::Docker).set_up();
    }
}

/// The Docker engine could not be reached or its events stream ended: unhealthy until
/// it answers again; discovery retries.
pub struct DockerDown<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl DockerDown<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        telemetry.health(Component::Docker).set_down(now, self.error);
        if let Some(suppressed) = telemetry.docker_log.should_log(now) {
            tracing::warn!(error = %self.error, suppressed, "docker engine unavailable; retrying");
        }
    }
}

/// Discovery's view after a change: containers with a supervisor, and removed ones
/// whose supervisors are still finishing.
pub struct ContainersCounted {
    pub monitored: u64,
    pub retiring: u64,
}

impl ContainersCounted {
    pub fn emit(self, telemetry: &Telemetry) {
        telemetry.containers_monitored.store(self.monitored, Ordering::Relaxed);
        telemetry.containers_retiring.store(self.retiring, Ordering::Relaxed);
    }
}

/// A supervisor started waiting for a stream slot (`streams_max`).
pub struct StreamSlotWaiting;

impl StreamSlotWaiting {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.container_streams_waiting, 1);
    }
}

/// A supervisor stopped waiting for a slot (it got one, or it was cancelled).
pub struct StreamSlotWaitEnded;

impl StreamSlotWaitEnded {
    pub fn emit(self, telemetry: &Telemetry) {
        telemetry.container_streams_waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream slot was taken.
pub struct StreamSlotAcquired;

impl StreamSlotAcquired {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.container_streams_active, 1);
    }
}

/// A stream slot was given back.
pub struct StreamSlotReleased;

impl StreamSlotReleased {
    pub fn emit(self, telemetry: &Telemetry) {
        telemetry.container_streams_active.fetch_sub(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// Pipeline, sink and checkpoints.

/// Lines and bytes entered (positive) or left (negative) the pipeline's budget.
pub struct QueueChanged {
    pub lines_delta: i64,
    pub bytes_delta: i64,
}

impl QueueChanged {
    pub fn emit(self, telemetry: &Telemetry) {
        apply_delta(&telemetry.queue_lines, self.lines_delta);
        let bytes = apply_delta(&telemetry.queue_bytes, self.bytes_delta);
        // A high-water mark changes rarely: read first, and write (a locked
        // compare-exchange loop) only above it.
        if bytes > telemetry.queue_bytes_max_seen.load(Ordering::Relaxed) {
            telemetry.queue_bytes_max_seen.fetch_max(bytes, Ordering::Relaxed);
        }
    }
}

/// Lines a reader read entered (positive) or left (negative, queued) its hands (see
/// `QueueSender::send_read`).
pub struct ReaderLinesHeld {
    pub lines_delta: i64,
}

impl ReaderLinesHeld {
    pub fn emit(self, telemetry: &Telemetry) {
        apply_delta(&telemetry.reader_lines_held, self.lines_delta);
    }
}

/// The sink answered one request after `elapsed`. Any answer but a retry means the
/// sink is reachable and configured: healthy.
pub struct SinkResponded {
    pub status: SinkStatus,
    pub elapsed: Duration,
}

impl SinkResponded {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.sink_requests_total[self.status as usize], 1);
        telemetry.batch_send_seconds.observe(self.elapsed);
        if matches!(self.status, SinkStatus::Ok | SinkStatus::Rejected | SinkStatus::Partial) {
            telemetry.health(Component::Sink).set_up();
        }
    }
}

/// A send failed transiently (`failures` in a row); the batch is sent again after
/// `delay`. The sink is unhealthy until it accepts something.
pub struct SinkRetrying<'a> {
    pub reason: &'a str,
    pub failures: u32,
    pub delay: Duration,
}

impl SinkRetrying<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        let SinkRetrying { reason, failures, delay } = self;
        telemetry.health(Component::Sink).set_down(now, reason);
        if let Some(suppressed) = telemetry.sink_log.should_log(now) {
            let delay_ms = delay.as_millis() as u64;
            tracing::warn!(reason, failures, suppressed, delay_ms, "sink send failed; retrying");
        }
    }
}

/// The sink stored these lines (acknowledged).
pub struct LinesDelivered {
    pub lines: u64,
    pub bytes: u64,
}

impl LinesDelivered {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.lines_out_total, self.lines);
        add(&telemetry.bytes_out_total, self.bytes);
    }
}

/// A component is taken to be healthy until it reports otherwise (at the agent's start).
pub struct ComponentStarted {
    pub component: Component,
}

impl ComponentStarted {
    pub fn emit(self, telemetry: &Telemetry) {
        telemetry.health(self.component).set_up();
    }
}

/// A checkpoint was committed.
pub struct CheckpointCommitted;

impl CheckpointCommitted {
    pub fn emit(self, telemetry: &Telemetry) {
        add(&telemetry.checkpoint_commits_total, 1);
        telemetry.health(Component::Checkpoint).set_up();
    }
}

/// A checkpoint commit failed; the positions stay dirty and are committed again next
/// time. Logged every time: commits are periodic, so this cannot flood.
pub struct CheckpointCommitFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl CheckpointCommitFailed<'_> {
    pub fn emit(self, telemetry: &Telemetry, now: Instant) {
        add(&telemetry.checkpoint_errors_total, 1);
        telemetry.health(Component::Checkpoint).set_down(now, self.error);
        tracing::error!(error = %self.error, "checkpoint commit failed; positions will be committed again");
    }
}

/// The checkpoint was loaded at start; `origin` says from where. Anything but a fresh
/// store or the current generation is logged: a fallback means duplicates (previous
/// generation) or every container read from the beginning (lost).
pub struct CheckpointLoaded {
    pub origin: crate::port::CheckpointOrigin,
    pub containers: usize,
}

impl CheckpointLoaded {
    pub fn emit(self, telemetry: &Telemetry) {
        use crate::port::CheckpointOrigin;
        add(&telemetry.checkpoint_loads_total[self.origin as usize], 1);
        match self.origin {
            CheckpointOrigin::Fresh | CheckpointOrigin::Current => {}
            CheckpointOrigin::Previous => tracing::warn!(
                containers = self.containers,
                "positions: the last generation could not be read, resuming from the one before it \
                 (lines acknowledged in between are delivered again)"
            ),
            CheckpointOrigin::Lost => tracing::error!(
                "positions: a checkpoint existed but none can be read; every container is read from \
                 the beginning of its log (duplicates instead of loss)"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
