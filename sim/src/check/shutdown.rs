//! Shutdown: the agent stops within its deadline, commits its final checkpoint, and
//! leaves no engine task alive; what it did not deliver is exactly what its checkpoint
//! says is left (nothing the checkpoint claims delivered is missing at Loki).

use std::time::Duration;

use engine::agent::ShutdownReport;

/// The shutdown's own report against its deadline (`None`: it never finished).
/// `commit_may_fail`: the world had armed a commit failure, so the final commit may fail.
pub fn check_report(report: Option<&ShutdownReport>, deadline: Duration, commit_may_fail: bool) -> Result<(), String> {
    match report {
        None => Err("shutdown did not finish within its deadline plus 5 s".to_string()),
        Some(report) if report.elapsed > deadline + Duration::from_secs(1) => {
            Err(format!("shutdown took {:?}, deadline {deadline:?}", report.elapsed))
        }
        Some(report) if !report.committed && !commit_may_fail => Err("the final checkpoint commit failed".to_string()),
        Some(_) => Ok(()),
    }
}

/// After shutdown: no task alive, registered or not.
pub fn check_after(registered: u64, executor_tasks: usize, live: &[String]) -> Result<(), String> {
    if registered == 0 && executor_tasks == 0 {
        return Ok(());
    }
    Err(format!("tasks alive after shutdown ({executor_tasks} on the executor): {}", live.join("; ")))
}
