//! Completeness, at the end of every run: every line every container wrote (removed and
//! exited containers included) is at Loki, or its loss has a named, world-caused reason
//! the world counted itself:
//! - Docker's json-file rotation deleted it before any reader had it;
//! - `docker rm` deleted it before any reader had it;
//! - Loki refused it with a `400` (too old), and the agent counted it under that reason.
//!
//! Order, duplicates and content (byte for byte, truncation rule included) are checked
//! per delivery by [`super::delivery`]; this check closes the tails a gap check cannot
//! see (nothing arrives after the last lost line).

use engine::model::StdStream;

use crate::check::delivery::DeliveryChecker;
use crate::check::Invariant;
use crate::world::docker::SimDocker;

/// Lines lost by a named, world-caused reason, over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamedLosses {
    pub json_file_rotation: u64,
    pub container_removed: u64,
    pub loki_refused: u64,
    /// Written before the agent first saw the container, with `first_sight = "now"`.
    pub first_sight_now: u64,
}

impl NamedLosses {
    pub fn total(&self) -> u64 {
        self.json_file_rotation + self.container_removed + self.loki_refused + self.first_sight_now
    }
}

/// Every line of every container delivered or excused. Returns the named losses.
pub fn check(docker: &SimDocker, delivery: &DeliveryChecker) -> Result<NamedLosses, (Invariant, String)> {
    let mut losses = NamedLosses { loki_refused: delivery.lines_refused, ..NamedLosses::default() };
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
