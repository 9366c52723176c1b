//! The quiet point: every container removed and the backlog delivered, so the live
//! engine tasks equal the baseline taken right after start, counted twice: in the
//! engine's registry by kind and spawn site, and on the executor, where every engine
//! task is, registered or not (one started around the registry is blamed by its spawn
//! site too). No log stream may be open.

use std::collections::BTreeMap;

use engine::task::TaskRegistry;

use crate::check::leaks::{census, delta, Census};
use crate::executor::TaskLabel;

/// Live engine tasks on the executor, by kind and spawn site.
pub type ExecutorCensus = BTreeMap<TaskLabel, usize>;

/// The engine tasks of an executor census (world tasks left out).
pub fn engine_only(all: BTreeMap<TaskLabel, usize>) -> ExecutorCensus {
    all.into_iter().filter(|(label, _)| matches!(label, TaskLabel::Engine { .. })).collect()
}

/// `Ok` once quiet; otherwise what still differs, for the failure report.
pub fn check(
    baseline: &Census,
    registry: &TaskRegistry,
    executor_baseline: &ExecutorCensus,
    executor_now: &ExecutorCensus,
    streams_open: usize,
) -> Result<(), String> {
    let mut differences = delta(baseline, &census(registry));
    let mut labels: Vec<&TaskLabel> = executor_baseline.keys().chain(executor_now.keys()).collect();
    labels.sort();
    labels.dedup();
    for label in labels {
        let (before, after) =
            (executor_baseline.get(label).copied().unwrap_or(0), executor_now.get(label).copied().unwrap_or(0));
        if before != after {
            differences.push(format!("executor: {label}: {after} live, baseline {before}"));
        }
    }
    if differences.is_empty() && streams_open == 0 {
        return Ok(());
    }
    let mut detail =
        format!("at the quiet point {streams_open} log streams open; live tasks differ from the baseline: ");
    detail.push_str(&differences.join("; "));
    Err(detail)
}
