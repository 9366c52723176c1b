//! The oracle: the invariants of DESIGN §6, checked on every seed.
//!
//! Checkers live in their own files because they change for different reasons than the
//! world models: [`delivery`] (no loss, order, exact content, duplicates only inside a
//! crash or ambiguity window), [`completeness`] (at the end, every line written is
//! delivered or its loss named and counted by the world), [`budget`] (task budget,
//! bounds, starvation; sampled every simulated minute), [`liveness`] (the drain's
//! backlog, and progress: no unread output left unread past the stall timeout),
//! [`leaks`] and [`quiet`] (zero live-task delta by kind and spawn site at the quiet
//! point, on the registry and on the executor), [`shutdown`] (deadline, final commit,
//! nothing alive after). `run.rs` drives the phases and calls these; it decides nothing.
//! The run stops at the first broken invariant.

pub mod budget;
pub mod completeness;
pub mod delivery;
pub mod leaks;
pub mod liveness;
pub mod quiet;
pub mod shutdown;

#[cfg(test)]
mod tests;

use std::fmt;

use engine::rt::Instant;

/// The invariants, in the order DESIGN §6 lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    LiveTaskDelta,
    TaskBudget,
    NoLoss,
    Order,
    NoDuplicates,
    FirstSight,
    Bounds,
    Liveness,
    Shutdown,
    Determinism,
    Deadlock,
    Substance,
}

impl Invariant {
    pub fn as_str(self) -> &'static str {
        match self {
            Invariant::LiveTaskDelta => "zero-live-task-delta",
            Invariant::TaskBudget => "task-budget",
            Invariant::NoLoss => "no-loss",
            Invariant::Order => "order",
            Invariant::NoDuplicates => "no-duplicates",
            Invariant::FirstSight => "first-sight",
            Invariant::Bounds => "bounds",
            Invariant::Liveness => "liveness",
            Invariant::Shutdown => "shutdown",
            Invariant::Determinism => "determinism",
            Invariant::Deadlock => "deadlock",
            Invariant::Substance => "substance",
        }
    }

    pub fn parse(text: &str) -> Option<Invariant> {
        [
            Invariant::LiveTaskDelta,
            Invariant::TaskBudget,
            Invariant::NoLoss,
            Invariant::Order,
            Invariant::NoDuplicates,
            Invariant::FirstSight,
            Invariant::Bounds,
            Invariant::Liveness,
            Invariant::Shutdown,
            Invariant::Determinism,
            Invariant::Deadlock,
            Invariant::Substance,
        ]
        .into_iter()
        .find(|invariant| invariant.as_str() == text)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first broken invariant of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    /// Virtual time since the start of the run.
    pub at: Instant,
    pub detail: String,
    /// Live engine tasks by (kind, spawn site) when it was found.
    pub live_tasks: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.at.as_nanos() as f64 / 1e9;
        write!(f, "{} at {:.3}s: {}", self.invariant, secs, self.detail)
    }
}
