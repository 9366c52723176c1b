//! The container monitor: discovery plus one supervisor task per known container.
//!
//! - [`discovery`] owns the events stream and the periodic reconcile (`list`), keeps the
//!   set of known containers, spawns a supervisor for each new one (fixing where a
//!   container never seen before starts: [`machine::FirstOpen`]), tells supervisors
//!   when their container starts, stops or is removed, and joins every supervisor it
//!   spawned before it finishes itself. When to connect and reconcile is decided by the
//!   sans-IO [`discovery_timing::DiscoveryTiming`].
//! - [`supervisor`] owns one container's log stream and performs what its sans-IO
//!   [`machine::Machine`] decides: take a slot from the [`pool::StreamPool`] (FIFO,
//!   `streams_max`, holders yield to waiters after `slot_wait_max × 3/4`), open the log
//!   since the last position it queued (after a restart of the agent: the last
//!   acknowledged one), rotate it every 0.7–1.0 × `rotate_every` by dropping it and
//!   reopening, reopen it when it stalls, read a stopped or removed container's log to
//!   its end, back off after failures. It polls the stream itself: there is no reader
//!   task, so a stream cannot outlive its rotation: "drop, then reopen".
//! - [`reader`] is the sans-IO part: frames → timestamps → merged lines → resume keys and
//!   deduplication of a reopen's replay against what was already queued.
//! - [`retired`] remembers the containers discovery retired, for the events about them
//!   that come after their `destroy` (a run unseen before the removal: a tail unread).
//!
//! `ContainerState` (what discovery tells a supervisor) and `MonitorShared` (what they
//! all share) live here, so discovery, the supervisor and the broken variants import
//! them from one place and not from each other.

use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::positions::Acks;
use crate::container::pool::StreamPool;
use crate::pipeline::queue::QueueSender;
use crate::port::{ContainerEngine, ContainerInfo, Labeler};
use crate::rt::Rt;
use crate::task::Tasks;
use crate::telemetry::Telemetry;

#[cfg(feature = "broken-variants")]
pub mod broken;
pub mod discovery;
pub mod discovery_timing;
pub mod machine;
pub mod pool;
pub mod reader;
pub mod retired;
pub mod supervisor;

/// What to read of a container seen for the first time on a first run (no checkpoint).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FirstSight {
    /// Its whole log.
    Beginning,
    /// Only what it writes from now on (the instant is committed until a position is:
    /// a restart before then resumes from it).
    Now,
    /// The last N entries, then follow.
    Tail(u64),
}

/// Which supervisor runs. Only [`SupervisorVariant::Correct`] ships; the others exist
/// with the `broken-variants` feature, for the simulator's tests of its own oracle.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum SupervisorVariant {
    #[default]
    Correct,
    /// A reader task per stream that is not awaited before reopening (pile-up).
    #[cfg(feature = "broken-variants")]
    ReaderPileUp,
    /// Rotation joins a group that also holds the heartbeat task (rotation stalls).
    #[cfg(feature = "broken-variants")]
    WrongJoin,
    /// A helper task per container that nobody joins (untracked spawn).
    #[cfg(feature = "broken-variants")]
    OrphanTask,
    /// The sink worker records a batch's positions as acknowledged before Loki has it
    /// (a crash then loses what the checkpoint claims was delivered).
    #[cfg(feature = "broken-variants")]
    AckBeforeDelivery,
    /// The queue charges nothing to its byte budget (the bound is not kept).
    #[cfg(feature = "broken-variants")]
    BudgetBypass,
    /// Shutdown waits forever before its final commit.
    #[cfg(feature = "broken-variants")]
    HangShutdown,
    /// The queue charges line content only, no per-line overhead (a flood of tiny lines
    /// holds many times the budget; its own gauge stays within it).
    #[cfg(feature = "broken-variants")]
    LineOverheadUncharged,
    /// A dropped stream lingers for a millisecond (a task closes it), so at a rotation
    /// the next holder's stream opens before the old one is gone: `streams_max` + 1
    /// open for a moment, which a per-minute sample never sees.
    #[cfg(feature = "broken-variants")]
    OverlapAtRotation,
    /// A reopen's replay is not skipped: the lines already queued come again.
    #[cfg(feature = "broken-variants")]
    DuplicateReplay,
    /// The replay window never closes (dedupe applies to live lines, as before issue 7):
    /// after a host clock step back, every line stamped before the stream's high-water
    /// key is skipped as a duplicate.
    #[cfg(feature = "broken-variants")]
    DedupeLiveLines,
    /// A line's trailing `\r` is dropped ("normalising" `\r\n` line ends): the content
    /// is no longer what the container wrote.
    #[cfg(feature = "broken-variants")]
    StripCarriageReturn,
    /// Empty lines are dropped in the reader ("skip blank lines"): lines the container
    /// wrote never reach Loki, and no world action excuses them.
    #[cfg(feature = "broken-variants")]
    DropEmptyLines,
    /// Every empty line is queued twice: a duplicate with no crash or ambiguous failure
    /// to excuse it (the oracle must name an empty line without a number in it).
    #[cfg(feature = "broken-variants")]
    DuplicateEmptyLines,
    /// At a stop or removal the supervisor drops its stream at once instead of reading
    /// the log to its end, and believes the tail read (so it counts nothing), for good:
    /// a reconcile's recheck does not look again.
    #[cfg(feature = "broken-variants")]
    TailDropped,
    /// The stall watchdog's probe always finds the stream at the end of its log: a
    /// stalled stream is kept until its rotation.
    #[cfg(feature = "broken-variants")]
    ProbeTrustsSilence,
    /// A process-wide counter shifts the rotation jitter: the second run of a seed in
    /// the same process differs from the first (hidden randomness).
    #[cfg(feature = "broken-variants")]
    HiddenRandomness,
    /// A stream that ended is polled again at once, forever (a busy loop: time stops).
    #[cfg(feature = "broken-variants")]
    SpinOnEnd,
    /// A gap found on reopen (the log lost lines unread) is not counted.
    #[cfg(feature = "broken-variants")]
    GapUncounted,
    /// Every stream that ends by itself counts a tail unread, not only a removed
    /// container's (`container_tails_unread_total` counts events that never happened).
    #[cfg(feature = "broken-variants")]
    TailOvercounted,
    /// A removed container's tail is never counted unread, even when no stream read it
    /// to its end (`container_tails_unread_total` stays zero).
    #[cfg(feature = "broken-variants")]
    TailUncounted,
    /// The first sight a checkpoint recorded is ignored on restart: a container first
    /// seen under `first_sight = "now"` with nothing acknowledged yet is read from the
    /// beginning of its log, and the backlog "now" skipped is shipped.
    #[cfg(feature = "broken-variants")]
    FirstSightForgotten,
    /// On a first run, `first_sight = "now"` is applied to every container discovery
    /// sees for the first time (from events and later reconciles too), not only to the
    /// containers of its first reconcile: a container started while the agent runs
    /// loses what it wrote before the agent saw it.
    #[cfg(feature = "broken-variants")]
    FirstSightForAll,
}

/// Make the hooks outside the supervisor (sink, queue, shutdown) play `variant` on this
/// thread: the simulator calls it once per seed. Without `broken-variants` only
/// `Correct` exists and this does nothing.
pub fn set_thread_variant(variant: SupervisorVariant) {
    #[cfg(feature = "broken-variants")]
    broken::set_active(variant);
    #[cfg(not(feature = "broken-variants"))]
    let _ = variant;
}

/// What discovery tells a supervisor about its container (through a `watch` channel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    pub info: ContainerInfo,
    pub removed: bool,
    /// Reconciles that listed the container not running, as discovery already believed:
    /// each asks the supervisor to look at the end of its log again (see
    /// `Machine::handle_recheck`).
    pub rechecks: u64,
    /// `die` events of the container while discovery believed it not running: each says
    /// it ran again unseen, its start lost (see `Machine::handle_ran_unseen`).
    pub runs_unseen: u64,
    /// When the last `die` heard happened, by Docker's clock (see `Machine::handle_died`).
    pub died_at: Option<crate::rt::UnixNanos>,
}

/// Everything discovery and the supervisors share.
pub struct MonitorShared {
    pub rt: Arc<dyn Rt>,
    pub tasks: Tasks,
    pub config: MonitorConfig,
    pub docker: Arc<dyn ContainerEngine>,
    pub pool: StreamPool,
    pub queue: QueueSender,
    pub telemetry: Arc<Telemetry>,
    pub labeler: Arc<dyn Labeler>,
    pub acks: Arc<Acks>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    /// Rotate (drop and reopen) every log stream at most this long after it opened...
    pub rotate_every: Duration,
    /// ...scaled by a random factor in `[1 - rotate_jitter, 1]`, so that streams opened
    /// together do not rotate together.
    pub rotate_jitter: f64,
    /// Log streams open at once, at most. Containers beyond wait in FIFO order and get a
    /// slot when another stream rotates or ends.
    pub streams_max: usize,
    /// A stream that yields nothing for this long is reopened while its container runs;
    /// once the container stopped, a stream opened after the stop that stays silent this
    /// long outlives its container (bollard #251) and is dropped.
    pub stall_timeout: Duration,
    /// When containers wait for a slot, a waiter asks the oldest holder to yield after
    /// half of this (and again every half), so no container's output waits much longer
    /// than this for a stream while open streams stay within `streams_max`.
    pub slot_wait_max: Duration,
    /// Full `list` reconcile period (heals missed events).
    pub reconcile_every: Duration,
    /// Backoff after a failed Docker call: from `backoff_min` doubling to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Longest line kept; longer ones are truncated with a marker and counted.
    pub line_bytes_max: usize,
    /// Largest single Docker frame accepted before the stream is treated as corrupt.
    pub frame_bytes_max: usize,
    /// How far stdout and stderr timestamps may run out of order; resuming starts this
    /// much before the last position (the overlap is deduplicated).
    pub since_skew: Duration,
    pub first_sight: FirstSight,
    pub variant: SupervisorVariant,
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            rotate_every: Duration::from_secs(300),
            rotate_jitter: 0.3,
            streams_max: 50,
            stall_timeout: Duration::from_secs(120),
            slot_wait_max: Duration::from_secs(30),
            reconcile_every: Duration::from_secs(60),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            // Loki's default max_line_size (256 KiB) with the truncation marker included.
            line_bytes_max: (256 << 10) - crate::parse::assemble::TRUNCATION_MARKER.len(),
            frame_bytes_max: 1 << 20,
            since_skew: Duration::from_secs(2),
            first_sight: FirstSight::Now,
            variant: SupervisorVariant::Correct,
        }
    }
}

#[cfg(test)]
mod discovery_tests;
#[cfg(test)]
mod machine_tests;
#[cfg(test)]
mod retired_tests;
#[cfg(test)]
mod tests;
