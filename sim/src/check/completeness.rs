//! Completeness, at the end of every run: every line every container wrote (removed and
//! exited containers included) is at Loki, or its loss has a named, world-caused reason
//! the world counted itself:
//! - Docker's json-file rotation deleted it before any reader had it;
//! - `docker rm` deleted it before any reader had it;
//! - the host clock stepped back, it was written after the step stamped before a
//!   request's `since`, and Docker's per-entry `since` filter skipped it before any
//!   reader had it (Docker offers no position but time: no request can ask for it);
//! - Loki refused it with a `400` (too old), and the agent counted it under that reason.
//!
//! Order, duplicates and content (byte for byte, truncation rule included) are checked
//! per delivery by [`super::delivery`]; this check closes the tails a gap check cannot
//! see (nothing arrives after the last lost line).

use engine::model::StdStream;
use engine::telemetry::Telemetry;

use crate::check::delivery::DeliveryChecker;
use crate::check::Invariant;
use crate::world::docker::{LossCause, SimDocker};

/// Lines lost by a named, world-caused reason, over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamedLosses {
    pub json_file_rotation: u64,
    pub container_removed: u64,
    pub loki_refused: u64,
    /// Written before the agent first saw the container, with `first_sight = "now"`.
    pub first_sight_now: u64,
    /// Written after a host clock step back, stamped before a request's `since`, and
    /// never delivered (the world names more: a line one request skipped, a later one
    /// may still return).
    pub clock_step: u64,
}

impl NamedLosses {
    pub fn total(&self) -> u64 {
        self.json_file_rotation + self.container_removed + self.loki_refused + self.first_sight_now + self.clock_step
    }
}

/// Every line of every container delivered or excused. Returns the named losses.
pub fn check(docker: &SimDocker, delivery: &DeliveryChecker) -> Result<NamedLosses, (Invariant, String)> {
    let mut losses = NamedLosses {
        loki_refused: delivery.lines_refused,
        clock_step: delivery.lines_lost_clock_step,
        ..NamedLosses::default()
    };
    for report in docker.containers() {
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let written = report.lines_written[stream.index()];
            losses.json_file_rotation += report.lost_to_rotation[stream.index()];
            losses.container_removed += report.lost_to_removal[stream.index()];
            losses.first_sight_now += report.lost_to_first_sight[stream.index()];
            let delivered = delivery.delivered(&report.id, stream);
            if delivered >= written {
                continue;
            }
            // The clock step's named count is of lines never delivered: those skipped
            // before a later line arrived (counted by the delivery check), and the tail.
            losses.clock_step += docker.lines_named(&report.id, stream, delivered..written, LossCause::ClockStep);
            let accounted = docker.excused_through(&report.id, stream, delivered);
            if accounted < written {
                let state = match (report.removed, report.running) {
                    (true, _) => "removed",
                    (false, true) => "running",
                    (false, false) => "exited",
                };
                return Err((
                    Invariant::NoLoss,
                    format!(
                        "completeness: container {} ({}, {state}) {}: line {accounted} of {written} never reached \
                         Loki, and no world action deleted it unread",
                        report.id.short(),
                        report.name,
                        stream.as_str()
                    ),
                ));
            }
        }
    }
    Ok(losses)
}

/// The agent's count of lines Loki refused, by reason, against the world's.
/// `exact`: no crash happened (a crash can lose the agent's record of a refusal
/// Loki made, never the other way round).
pub fn check_refusals(agent_refused: u64, loki_refused: u64, exact: bool) -> Result<(), (Invariant, String)> {
    let fine = if exact { agent_refused == loki_refused } else { agent_refused <= loki_refused };
    if fine {
        return Ok(());
    }
    Err((
        Invariant::NoLoss,
        format!(
            "the agent counted {agent_refused} lines dropped as sink_too_old, Loki refused {loki_refused} as too old"
        ),
    ))
}

/// The agent's own count of losses it noticed (metrics the daemon exports):
/// `container_log_gaps_total` and `container_tails_unread_total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentLossCounts {
    pub gaps: u64,
    pub tails_unread: u64,
}

impl AgentLossCounts {
    pub fn of(telemetry: &Telemetry) -> AgentLossCounts {
        AgentLossCounts {
            gaps: Telemetry::get(&telemetry.container_log_gaps_total),
            tails_unread: Telemetry::get(&telemetry.container_tails_unread_total),
        }
    }

    pub fn plus(self, other: AgentLossCounts) -> AgentLossCounts {
        AgentLossCounts { gaps: self.gaps + other.gaps, tails_unread: self.tails_unread + other.tails_unread }
    }
}

/// What the world did that the agent's loss counters answer for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldLossCounts {
    /// (stream, json-file rotation) pairs that deleted any line of the stream.
    pub rotations_deleting: u64,
    /// Ranges of lines json-file rotation deleted unread.
    pub rotation_loss_ranges: u64,
    /// Gaps a reader could notice: its resume line deleted by a rotation before it
    /// asked for the log again, with a `since` that had to replay it.
    pub gaps_noticeable: u64,
    /// Gaps a reader may notice: the first request after a rotation that deleted lines
    /// of a stream, with a `since` at or before the last deleted line, handed a line.
    pub gaps_possible: u64,
    /// Containers removed, and those whose removal deleted lines unread.
    pub removed: u64,
    pub removed_unread: u64,
    /// Removals of containers the agent knew that deleted lines it had not read: by the
    /// running incarnation, and over the run (`SimDocker::tails_owed`).
    pub tails_owed_now: u64,
    pub tails_owed: u64,
}

/// The agent's `container_tails_unread_total` against the world.
///
/// From above: at most one per container the world removed (the agent counts at a
/// container's finish, which only a removal brings, and a container is removed once).
///
/// From below: the running incarnation (`agent_tails_now`, its own count) counts at least
/// the removals, of containers it had learned of, that deleted lines no reader of it had
/// ([`WorldLossCounts::tails_owed_now`]). Docker deletes the log when the last stream
/// reading it ends, so such lines are lines the agent never read. Not exact: the agent
/// cannot know whether a container it was not streaming (waiting for a slot, backing
/// off, idle after a stop it read to the end and a start it missed) wrote anything since
/// its last read, so it counts every removal without a stream that read to the end after
/// the stop, and most of its count is of tails that held nothing new. A stream stalled
/// at the removal ends without the tail, which the agent cannot tell from a drained one:
/// not owed (`DockerState::delete_removed_log`). Only the running
/// incarnation is held to it: one that crashed or stopped may have died between a
/// removal and its finish (its count is then short by the removals it had not finished).
pub fn check_tails(agent_tails: u64, agent_tails_now: u64, world: &WorldLossCounts) -> Result<(), (Invariant, String)> {
    if agent_tails > world.removed {
        return Err((
            Invariant::NoLoss,
            format!(
                "the agent counted {agent_tails} tails unread (container_tails_unread_total), the world removed {} \
                 containers ({} of them with lines unread)",
                world.removed, world.removed_unread
            ),
        ));
    }
    if agent_tails_now < world.tails_owed_now {
        return Err((
            Invariant::NoLoss,
            format!(
                "the running agent counted {agent_tails_now} tails unread (container_tails_unread_total), but {} \
                 removals of containers it knew deleted lines it had not read",
                world.tails_owed_now
            ),
        ));
    }
    Ok(())
}

pub fn world_loss_counts(docker: &SimDocker) -> WorldLossCounts {
    let [tails_owed_now, tails_owed] = docker.tails_owed();
    let mut counts = WorldLossCounts { tails_owed_now, tails_owed, ..WorldLossCounts::default() };
    for report in docker.containers() {
        counts.rotations_deleting += report.rotations_deleting.iter().sum::<u64>();
        counts.rotation_loss_ranges += report.rotation_loss_ranges.iter().sum::<u64>();
        counts.gaps_noticeable += report.gaps_noticeable.iter().sum::<u64>();
        counts.gaps_possible += report.gaps_possible.iter().sum::<u64>();
        if report.removed {
            counts.removed += 1;
            counts.removed_unread += u64::from(report.lost_to_removal.iter().sum::<u64>() > 0);
        }
    }
    counts
}

/// The agent's `container_log_gaps_total` against the world's counts: at least the gaps
/// a reader could notice ([`WorldLossCounts::gaps_noticeable`]: a reopen whose resume
/// line a json-file rotation deleted, with a `since` that had to replay it, once it
/// reads the next line), at most those it may notice ([`WorldLossCounts::gaps_possible`]:
/// the first request after a rotation that deleted lines of the stream, with a `since`
/// at or before the last deleted line, once it is handed a line). The agent cannot count
/// lines (Docker does not say how many went), nor a loss that a stream open across the
/// rotation reads past (nothing shows it). Not one number: the world's account of the
/// agent's resume line is the last line wholly handed to a reader (after a crash, the
/// committed one; marked when a whole rendered chunk was handed out, so a split
/// chunk's first part is not the resume line yet).
pub fn check_gaps(agent_gaps: u64, world: &WorldLossCounts) -> Result<(), (Invariant, String)> {
    if (world.gaps_noticeable..=world.gaps_possible).contains(&agent_gaps) {
        return Ok(());
    }
    Err((
        Invariant::NoLoss,
        format!(
            "the agent counted {agent_gaps} log gaps (container_log_gaps_total), the world made {} a reader could \
             notice and {} it may notice (resume line deleted by json-file rotation, then read past; {} rotations \
             deleted lines, {} runs of lines unread)",
            world.gaps_noticeable, world.gaps_possible, world.rotations_deleting, world.rotation_loss_ranges
        ),
    ))
}
