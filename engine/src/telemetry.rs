//! What the engine counts, in one place: the daemon exports it as Prometheus metrics
//! (`log_capturer_*`) and `/health`; the simulator's oracle reads the same numbers.
//!
//! [`Telemetry`] holds the numbers (atomics read at scrape time, no copies); what moves
//! them is an event in [`events`], one struct per observable event that counts and,
//! where a person needs to know, logs once per burst ([`BurstLog`]): a flood of
//! identical failures produces one log line per window, with the number suppressed,
//! never one per line. Code outside this module emits events rather than touching the
//! atomics.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::rt::Instant;

pub mod events;

/// Why lines were dropped (never silently): the `reason` label of
/// `log_capturer_lines_dropped_total`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The sink refused the lines for good for a reason it did not name in a way we
    /// understand (a 4xx other than 400's per-entry reasons, 413, 429 and 401/403/404).
    SinkRejected,
    /// A Docker stream could not be decoded (bad frame header or timestamp); the
    /// stream is reopened and the entries after the last good line are read again.
    MalformedFrame,
    /// Loki refused the entries as older than its `reject_old_samples_max_age` (or out
    /// of order for their stream); the rest of the request was stored.
    SinkTooOld,
    /// Loki refused the lines as longer than its `max_line_size`.
    SinkLineTooLong,
    /// Loki refused the streams' labels (invalid, too many, too long).
    SinkInvalidLabels,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::SinkRejected,
        DropReason::MalformedFrame,
        DropReason::SinkTooOld,
        DropReason::SinkLineTooLong,
        DropReason::SinkInvalidLabels,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::SinkRejected => "sink_rejected",
            DropReason::MalformedFrame => "malformed_frame",
            DropReason::SinkTooOld => "sink_too_old",
            DropReason::SinkLineTooLong => "sink_line_too_long",
            DropReason::SinkInvalidLabels => "sink_invalid_labels",
        }
    }
}

/// Outcome classes of sink requests: the `status` label of `log_capturer_sink_requests_total`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SinkStatus {
    Ok,
    Retry,
    TooLarge,
    Rejected,
    /// Stored in part, the rest refused for good (Loki `400`).
    Partial,
}

impl SinkStatus {
    pub const ALL: [SinkStatus; 5] =
        [SinkStatus::Ok, SinkStatus::Retry, SinkStatus::TooLarge, SinkStatus::Rejected, SinkStatus::Partial];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkStatus::Ok => "ok",
            SinkStatus::Retry => "retry",
            SinkStatus::TooLarge => "too_large",
            SinkStatus::Rejected => "rejected",
            SinkStatus::Partial => "partial",
        }
    }
}

/// Upper bounds (seconds) of the batch send latency histogram buckets.
pub const SEND_SECONDS_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A component whose health `/health` reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Docker,
    Sink,
    Checkpoint,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Docker, Component::Sink, Component::Checkpoint];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Docker => "docker",
            Component::Sink => "sink",
            Component::Checkpoint => "checkpoint",
        }
    }
}

#[derive(Default)]
pub struct Histogram {
    /// Cumulative counts are computed on export; these are per-bucket counts, with the
    /// last slot for +Inf.
    buckets: [AtomicU64; SEND_SECONDS_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot =
            SEND_SECONDS_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(SEND_SECONDS_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (cumulative count per bucket bound, +Inf count, sum in seconds).
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(SEND_SECONDS_BUCKETS.len());
        for (index, bound) in SEND_SECONDS_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[index].load(Ordering::Relaxed);
            out.push((*bound, cumulative));
        }
        let count = self.count.load(Ordering::Relaxed);
        (out, count, self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9)
    }
}

/// Health of one component: up, and since when it has been failing if not.
#[derive(Default)]
pub struct Health {
    up: AtomicBool,
    /// Monotonic nanos of the first failure of the current failing spell; -1 if up.
    failing_since: AtomicI64,
    last_error: Mutex<String>,
}

impl Health {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn last_error(&self) -> String {
        self.last_error.lock().unwrap().clone()
    }

    pub fn failing_since(&self) -> Option<Instant> {
        let nanos = self.failing_since.load(Ordering::Acquire);
        (nanos >= 0 && !self.is_up()).then(|| Instant::from_nanos(nanos as u64))
    }

    pub fn set_up(&self) {
        self.up.store(true, Ordering::Release);
        self.failing_since.store(-1, Ordering::Release);
    }

    pub fn set_down(&self, now: Instant, error: impl std::fmt::Display) {
        if self.up.swap(false, Ordering::AcqRel) || self.failing_since.load(Ordering::Acquire) < 0 {
            self.failing_since.store(now.as_nanos() as i64, Ordering::Release);
        }
        *self.last_error.lock().unwrap() = error.to_string();
    }
}

/// Logs an event at most once per window, counting what it suppressed.
pub struct BurstLog {
    window: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl BurstLog {
    pub fn new(window: Duration) -> BurstLog {
        BurstLog { window, state: Mutex::new((None, 0)) }
    }

    /// Returns `Some(suppressed)` when the caller should log now.
    pub fn should_log(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap();
        match state.0 {
            Some(last) if now.saturating_duration_since(last) < self.window => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

/// Add `value`, skipping the atomic read-modify-write when it is zero: most events
/// carry counts that are usually zero (a chunk's truncated and duplicate lines), and each
/// such add is a locked instruction (~20 cycles and a pipeline drain) per chunk.
#[inline]
fn add(counter: &AtomicU64, value: u64) {
    if value != 0 {
        counter.fetch_add(value, Ordering::Relaxed);
    }
}

/// Every counter and gauge of the engine. Shared as `Arc<Telemetry>`.
pub struct Telemetry {
    pub containers_monitored: AtomicU64,
    /// Removed containers whose supervisors are finishing (joined concurrently).
    pub containers_retiring: AtomicU64,
    pub container_streams_active: AtomicU64,
    pub container_streams_waiting: AtomicU64,
    pub container_stream_rotations_total: AtomicU64,
    pub container_stream_opens_total: AtomicU64,
    /// The stall watchdog's probes of a silent stream: `[silent, behind]` (kept, reopened).
    pub container_stream_probes_total: [AtomicU64; 2],
    pub container_stream_errors_total: AtomicU64,
    pub lines_in_total: AtomicU64,
    pub bytes_in_total: AtomicU64,
    pub lines_out_total: AtomicU64,
    pub bytes_out_total: AtomicU64,
    pub lines_truncated_total: AtomicU64,
    pub lines_duplicate_skipped_total: AtomicU64,
    /// Reopens whose replay no longer held the last line read of a stream although it
    /// should have (its timestamp is at or after the reopen's `since`): Docker's
    /// json-file rotation deleted the log up to or past that position, and the lines
    /// written between it and the first one served, if any, were lost (how many, the
    /// agent cannot know). Counted once per stream and reopen.
    pub container_log_gaps_total: AtomicU64,
    /// Containers removed before the agent read their log to its end (no stream ended
    /// by itself after the container stopped): their last lines may be lost (how many,
    /// the agent cannot know).
    pub container_tails_unread_total: AtomicU64,
    pub lines_dropped_total: [AtomicU64; DropReason::ALL.len()],
    pub sink_requests_total: [AtomicU64; SinkStatus::ALL.len()],
    pub queue_lines: AtomicU64,
    /// Lines readers read and have not queued yet (waiting for the budget); after a
    /// reader is cancelled, the lines it dropped (see `QueueSender::send_read`).
    pub reader_lines_held: AtomicU64,
    pub queue_bytes: AtomicU64,
    pub queue_bytes_max_seen: AtomicU64,
    pub checkpoint_commits_total: AtomicU64,
    pub checkpoint_errors_total: AtomicU64,
    /// Checkpoint loads at start by what was found (`CheckpointOrigin`).
    pub checkpoint_loads_total: [AtomicU64; crate::port::CheckpointOrigin::ALL.len()],
    pub batch_send_seconds: Histogram,
    pub health: [Health; Component::ALL.len()],
    pub drop_log: BurstLog,
    pub sink_log: BurstLog,
    pub docker_log: BurstLog,
}

impl Default for Telemetry {
    fn default() -> Telemetry {
        Telemetry {
            containers_monitored: AtomicU64::new(0),
            containers_retiring: AtomicU64::new(0),
            container_streams_active: AtomicU64::new(0),
            container_streams_waiting: AtomicU64::new(0),
            container_stream_rotations_total: AtomicU64::new(0),
            container_stream_opens_total: AtomicU64::new(0),
            container_stream_probes_total: Default::default(),
            container_stream_errors_total: AtomicU64::new(0),
            lines_in_total: AtomicU64::new(0),
            bytes_in_total: AtomicU64::new(0),
            lines_out_total: AtomicU64::new(0),
            bytes_out_total: AtomicU64::new(0),
            lines_truncated_total: AtomicU64::new(0),
            lines_duplicate_skipped_total: AtomicU64::new(0),
            container_log_gaps_total: AtomicU64::new(0),
            container_tails_unread_total: AtomicU64::new(0),
            lines_dropped_total: Default::default(),
            sink_requests_total: Default::default(),
            queue_lines: AtomicU64::new(0),
            reader_lines_held: AtomicU64::new(0),
            queue_bytes: AtomicU64::new(0),
            queue_bytes_max_seen: AtomicU64::new(0),
            checkpoint_commits_total: AtomicU64::new(0),
            checkpoint_errors_total: AtomicU64::new(0),
            checkpoint_loads_total: Default::default(),
            batch_send_seconds: Histogram::default(),
            health: Default::default(),
            drop_log: BurstLog::new(Duration::from_secs(10)),
            sink_log: BurstLog::new(Duration::from_secs(10)),
            docker_log: BurstLog::new(Duration::from_secs(10)),
        }
    }
}

impl Telemetry {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn health(&self, component: Component) -> &Health {
        &self.health[component as usize]
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.lines_dropped_total[reason as usize].load(Ordering::Relaxed)
    }

    pub fn sink_requests(&self, status: SinkStatus) -> u64 {
        self.sink_requests_total[status as usize].load(Ordering::Relaxed)
    }

    pub fn checkpoint_loads(&self, origin: crate::port::CheckpointOrigin) -> u64 {
        Telemetry::get(&self.checkpoint_loads_total[origin as usize])
    }
}

fn apply_delta(gauge: &AtomicU64, delta: i64) -> u64 {
    if delta >= 0 {
        gauge.fetch_add(delta as u64, Ordering::Relaxed) + delta as u64
    } else {
        gauge.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed) - delta.unsigned_abs()
    }
}
