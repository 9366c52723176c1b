//! `SimCheckpointStore`: durable positions that survive a crash only if committed.
//!
//! Owns: the last committed [`Checkpoint`] — the stand-in for the file the daemon writes
//! with temp + fsync + rename + fsync(dir).
//!
//! Promises:
//! - A commit takes effect atomically at the end of its latency (the rename); a commit
//!   future dropped before then (the daemon crashed mid-commit) leaves the previous
//!   checkpoint in place. Nothing committed is ever lost.
//! - `load` returns exactly the last committed checkpoint, unless the world damaged it.
//! - Two generations, as the daemon's file store keeps them (`<path>` and
//!   `<path>.prev`): a commit makes the current generation the previous one. The world
//!   may damage the current generation ([`SimCheckpointStore::damage`]: a power loss
//!   leaves it empty or garbled, or a crash between a commit's two renames leaves none);
//!   `load_with_origin` then answers as the file store does: a corrupt current generation
//!   is quarantined and the previous one loaded (`Previous`); with no previous
//!   generation, a corrupt one seen is `Lost` (empty, every container from the
//!   beginning), nothing at all `Fresh`.
//! - Injected failures (`fail_next_commits`, `fail_next_loads`) return
//!   `CheckpointError::Io` and change nothing.
//!
//! The oracle reads [`SimCheckpointStore::to_be_loaded`] after a crash or a shutdown (the
//! duplicate window starts there: a fallback to the previous generation widens it by
//! exactly what was acknowledged in between), and sees every checkpoint as its commit is
//! asked for (`set_observer`).

use std::sync::Arc;
use std::time::Duration;

use engine::port::{Checkpoint, CheckpointError, CheckpointOrigin, CheckpointStore, LoadedCheckpoint};
use engine::rt::BoxFuture;

use crate::executor::{Lock, SimRt};

/// The oracle's hook: every checkpoint the agent asks to commit, when it asks.
pub type CommitObserver = Box<dyn FnMut(&Checkpoint) + Send>;

/// What the world does to the current generation at rest (at a crash of the agent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointDamage {
    /// Empty or garbled (a power loss before the data reached the disk): corrupt.
    Corrupt,
    /// Gone (a crash between a commit's two renames, `<path>` renamed to `<path>.prev`).
    Missing,
}

/// The current generation on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Current {
    /// Never written (or moved aside): `load` tries the previous generation.
    #[default]
    Missing,
    Readable,
    Corrupt,
}

#[derive(Default)]
struct StoreState {
    observer: Option<CommitObserver>,
    /// The current generation's content (meaningful while `current` is `Readable`).
    committed: Checkpoint,
    current: Current,
    /// The previous generation, if there is one that reads.
    previous: Option<Checkpoint>,
    /// A corrupt generation was moved aside: the store is not fresh.
    quarantined: bool,
    damages: u64,
    commits_total: u64,
    commit_latency: Duration,
    fail_next_commits: u32,
    fail_next_loads: u32,
    commit_failures: u64,
}

/// The simulated checkpoint store. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct SimCheckpointStore {
    state: Arc<Lock<StoreState>>,
    /// The simulator's own handle: its sleep is not boxed (one allocation per commit
    /// less than `Rt::sleep`'s; callgrind: seed 3, 7,962 commits, 344.14 M -> 343.15 M).
    rt: SimRt,
}

impl SimCheckpointStore {
    /// An empty store (a first start).
    pub fn new(rt: SimRt) -> SimCheckpointStore {
        SimCheckpointStore { state: Arc::default(), rt }
    }

    /// A store that already holds `checkpoint` (e.g. a stale one from an old run).
    pub fn with_checkpoint(rt: SimRt, checkpoint: Checkpoint) -> SimCheckpointStore {
        let store = SimCheckpointStore::new(rt);
        let mut state = store.state.lock();
        state.committed = checkpoint;
        state.current = Current::Readable;
        drop(state);
        store
    }

    /// Virtual time a commit takes before it becomes durable.
    pub fn set_commit_latency(&self, latency: Duration) {
        self.state.lock().commit_latency = latency;
    }

    /// Install the observer every commit's checkpoint is shown to as it is asked for.
    pub fn set_observer(&self, observer: impl FnMut(&Checkpoint) + Send + 'static) {
        self.state.lock().observer = Some(Box::new(observer));
    }

    pub fn fail_next_commits(&self, count: u32) {
        self.state.lock().fail_next_commits += count;
    }

    /// Whether a commit failure is armed (a shutdown's final commit may fail then).
    pub fn failures_armed(&self) -> bool {
        self.state.lock().fail_next_commits > 0
    }

    /// Drop every armed failure (the disk is fixed).
    pub fn heal(&self) {
        let mut state = self.state.lock();
        state.fail_next_commits = 0;
        state.fail_next_loads = 0;
    }

    pub fn fail_next_loads(&self, count: u32) {
        self.state.lock().fail_next_loads += count;
    }

    /// Forget the first sights every generation recorded (containers left with no
    /// position go): the agent that saw them was only the simulator's probe, and an
    /// undamaged store with nothing else in it is fresh again (its files deleted).
    pub fn forget_first_sights(&self) {
        let mut state = self.state.lock();
        let state = &mut *state;
        for checkpoint in std::iter::once(&mut state.committed).chain(state.previous.as_mut()) {
            checkpoint.containers.values_mut().for_each(|positions| positions.since = None);
            checkpoint.containers.retain(|_, positions| positions.has_position());
        }
        let empty = |checkpoint: &Checkpoint| checkpoint.containers.is_empty();
        if state.damages == 0 && empty(&state.committed) && state.previous.as_ref().is_none_or(empty) {
            state.current = Current::Missing;
            state.previous = None;
        }
    }

    /// The last committed checkpoint (the current generation, damaged or not).
    pub fn committed(&self) -> Checkpoint {
        self.state.lock().committed.clone()
    }

    /// The world damages the current generation at rest (see the module docs). A
    /// `Missing` current generation with no previous one would be a first run, which is
    /// how a person asks for one, not a fault: then it is made `Corrupt` instead.
    pub fn damage(&self, damage: CheckpointDamage) {
        let mut state = self.state.lock();
        if state.current != Current::Readable {
            return;
        }
        state.damages += 1;
        state.current = match damage {
            CheckpointDamage::Missing if state.previous.is_some() => {
                // The rename to `<path>.prev` happened, the second one did not.
                state.previous = Some(state.committed.clone());
                Current::Missing
            }
            CheckpointDamage::Corrupt | CheckpointDamage::Missing => Current::Corrupt,
        };
    }

    /// Damages played so far.
    pub fn damages(&self) -> u64 {
        self.state.lock().damages
    }

    /// What a restarted agent will load, and where it comes from (no side effect).
    pub fn to_be_loaded(&self) -> LoadedCheckpoint {
        Self::loadable(&self.state.lock())
    }

    fn loadable(state: &StoreState) -> LoadedCheckpoint {
        // As the daemon's file store: only a store that was never written is a first
        // run. A committed checkpoint with no container in it (every container the first
        // run saw was removed) is not: the containers found at a restart are read from
        // the beginning, not from "now" (which would lose what they wrote meanwhile).
        let (checkpoint, origin) = match (state.current, &state.previous) {
            (Current::Readable, _) => (state.committed.clone(), CheckpointOrigin::Current),
            (_, Some(previous)) => (previous.clone(), CheckpointOrigin::Previous),
            (Current::Corrupt, None) => (Checkpoint::default(), CheckpointOrigin::Lost),
            (Current::Missing, None) if state.quarantined => (Checkpoint::default(), CheckpointOrigin::Lost),
            (Current::Missing, None) => (Checkpoint::default(), CheckpointOrigin::Fresh),
        };
        LoadedCheckpoint { checkpoint, origin }
    }

    /// Successful commits so far.
    pub fn commits_total(&self) -> u64 {
        self.state.lock().commits_total
    }

    pub fn commit_failures(&self) -> u64 {
        self.state.lock().commit_failures
    }
}

impl CheckpointStore for SimCheckpointStore {
    fn load(&self) -> BoxFuture<Result<Checkpoint, CheckpointError>> {
        let load = self.load_with_origin();
        Box::pin(async move { load.await.map(|loaded| loaded.checkpoint) })
    }

    fn load_with_origin(&self) -> BoxFuture<Result<LoadedCheckpoint, CheckpointError>> {
        let state = self.state.clone();
        Box::pin(async move {
            let mut state = state.lock();
            if state.fail_next_loads > 0 {
                state.fail_next_loads -= 1;
                return Err(CheckpointError::Io("injected load failure".into()));
            }
            let loaded = Self::loadable(&state);
            if state.current == Current::Corrupt {
                // Quarantined as `<path>.corrupt`, as the file store does.
                state.current = Current::Missing;
                state.quarantined = true;
            }
            Ok(loaded)
        })
    }

    fn commit(&self, checkpoint: Checkpoint) -> BoxFuture<Result<(), CheckpointError>> {
        let this = self.clone();
        Box::pin(async move {
            let latency = {
                let mut state = this.state.lock();
                if let Some(observer) = state.observer.as_mut() {
                    observer(&checkpoint);
                }
                state.commit_latency
            };
            if !latency.is_zero() {
                this.rt.sleep(latency).await;
            }
            let mut state = this.state.lock();
            if state.fail_next_commits > 0 {
                state.fail_next_commits -= 1;
                state.commit_failures += 1;
                return Err(CheckpointError::Io("injected commit failure".into()));
            }
            // `<path>` becomes `<path>.prev` (if it is there), the new one `<path>`.
            if state.current == Current::Readable {
                state.previous = Some(std::mem::replace(&mut state.committed, checkpoint));
            } else {
                state.committed = checkpoint;
            }
            state.current = Current::Readable;
            state.commits_total += 1;
            Ok(())
        })
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
