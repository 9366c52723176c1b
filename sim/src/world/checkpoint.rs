//! `SimCheckpointStore`: durable positions that survive a crash only if committed.
//!
//! Owns: the last committed [`Checkpoint`] — the stand-in for the file the daemon writes
//! with temp + fsync + rename + fsync(dir).
//!
//! Promises:
//! - A commit takes effect atomically at the end of its latency (the rename); a commit
//!   future dropped before then (the daemon crashed mid-commit) leaves the previous
//!   checkpoint in place. Nothing committed is ever lost.
//! - `load` returns exactly the last committed checkpoint.
//! - Injected failures (`fail_next_commits`, `fail_next_loads`) return
//!   `CheckpointError::Io` and change nothing.
//!
//! The oracle reads [`SimCheckpointStore::committed`] after a crash or a shutdown, and
//! sees every checkpoint as its commit is asked for (`set_observer`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::port::{Checkpoint, CheckpointError, CheckpointStore};
use engine::rt::{BoxFuture, Rt};

/// The oracle's hook: every checkpoint the agent asks to commit, when it asks.
pub type CommitObserver = Box<dyn FnMut(&Checkpoint) + Send>;

#[derive(Default)]
struct StoreState {
    observer: Option<CommitObserver>,
    committed: Checkpoint,
    commits_total: u64,
    commit_latency: Duration,
    fail_next_commits: u32,
    fail_next_loads: u32,
    commit_failures: u64,
}

/// The simulated checkpoint store. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct SimCheckpointStore {
    state: Arc<Mutex<StoreState>>,
    rt: Arc<dyn Rt>,
}

impl SimCheckpointStore {
    /// An empty store (a first start).
    pub fn new(rt: Arc<dyn Rt>) -> SimCheckpointStore {
        SimCheckpointStore { state: Arc::default(), rt }
    }

    /// A store that already holds `checkpoint` (e.g. a stale one from an old run).
    pub fn with_checkpoint(rt: Arc<dyn Rt>, checkpoint: Checkpoint) -> SimCheckpointStore {
        let store = SimCheckpointStore::new(rt);
        store.state.lock().unwrap().committed = checkpoint;
        store
    }

    /// Virtual time a commit takes before it becomes durable.
    pub fn set_commit_latency(&self, latency: Duration) {
        self.state.lock().unwrap().commit_latency = latency;
    }

    /// Install the observer every commit's checkpoint is shown to as it is asked for.
    pub fn set_observer(&self, observer: impl FnMut(&Checkpoint) + Send + 'static) {
        self.state.lock().unwrap().observer = Some(Box::new(observer));
    }

    pub fn fail_next_commits(&self, count: u32) {
        self.state.lock().unwrap().fail_next_commits += count;
    }

    /// Whether a commit failure is armed (a shutdown's final commit may fail then).
    pub fn failures_armed(&self) -> bool {
        self.state.lock().unwrap().fail_next_commits > 0
    }

    /// Drop every armed failure (the disk is fixed).
    pub fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.fail_next_commits = 0;
        state.fail_next_loads = 0;
    }

    pub fn fail_next_loads(&self, count: u32) {
        self.state.lock().unwrap().fail_next_loads += count;
    }

    /// The last committed checkpoint: what a restarted daemon will load.
    pub fn committed(&self) -> Checkpoint {
        self.state.lock().unwrap().committed.clone()
    }

    /// Successful commits so far.
    pub fn commits_total(&self) -> u64 {
        self.state.lock().unwrap().commits_total
    }

    pub fn commit_failures(&self) -> u64 {
        self.state.lock().unwrap().commit_failures
    }
}

impl CheckpointStore for SimCheckpointStore {
    fn load(&self) -> BoxFuture<Result<Checkpoint, CheckpointError>> {
        let state = self.state.clone();
        Box::pin(async move {
            let mut state = state.lock().unwrap();
            if state.fail_next_loads > 0 {
                state.fail_next_loads -= 1;
                return Err(CheckpointError::Io("injected load failure".into()));
            }
            Ok(state.committed.clone())
        })
    }

    fn commit(&self, checkpoint: Checkpoint) -> BoxFuture<Result<(), CheckpointError>> {
        let this = self.clone();
        Box::pin(async move {
            let latency = {
                let mut state = this.state.lock().unwrap();
                if let Some(observer) = state.observer.as_mut() {
                    observer(&checkpoint);
                }
                state.commit_latency
            };
            if !latency.is_zero() {
                this.rt.sleep(latency).await;
            }
            let mut state = this.state.lock().unwrap();
            if state.fail_next_commits > 0 {
                state.fail_next_commits -= 1;
                state.commit_failures += 1;
                return Err(CheckpointError::Io("injected commit failure".into()));
            }
            state.committed = checkpoint;
            state.commits_total += 1;
            Ok(())
        })
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
