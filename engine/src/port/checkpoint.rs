//! `CheckpointStore`: acknowledged positions that survive a restart.
//!
//! `commit` is atomic: after a crash, `load` returns either the previous or the new
//! checkpoint, never a mix. The engine commits only positions the sink acknowledged.
//!
//! [`CheckpointStore::load_with_origin`] also says what the store found, because only a
//! genuinely fresh store may be a first run: with `first_sight = "now"`, a checkpoint
//! that was lost and taken for a first run would lose every line written while the agent
//! was down. A store that keeps an older generation falls back to it (duplicates bounded
//! by one commit interval instead of loss); one that knows it had a checkpoint but can
//! read none says `Lost`, and the agent reads every container from the beginning.

use serde::{Deserialize, Serialize};

use crate::model::ResumeKey;
use crate::rt::BoxFuture;

/// Positions of one container, per output stream; and, until it has one, its first
/// sight under `first_sight = "now"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerCheckpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<ResumeKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<ResumeKey>,
    /// The `since` (Unix seconds) the container was first opened with under
    /// `first_sight = "now"`, kept until a position is acknowledged: a restart before
    /// then opens it there again, neither from a new "now" (the lines written while the
    /// agent was down would be lost) nor from the beginning (its backlog, which "now"
    /// skipped, would be shipped). Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Per stream, the greatest key acknowledged, where it is above the stream's
    /// position: after a host clock step back a batch's last line (the position) is
    /// stamped before lines acknowledged earlier, which a restart's replay hands again
    /// past the position. The restarted reader skips them up to this key (seed 117342:
    /// lines stamped 10,905.08 s acknowledged in the batch whose last line, stamped
    /// 10,898.87 s after a 96 s step, became the position; the restart delivered them
    /// again). Absent in files written before it existed (they resume as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_high: Option<ResumeKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_high: Option<ResumeKey>,
}

impl ContainerCheckpoint {
    /// Whether any stream has an acknowledged position.
    pub fn has_position(&self) -> bool {
        self.stdout.is_some() || self.stderr.is_some()
    }

    /// Per stream (`[stdout, stderr]`), the greatest key acknowledged: the high key where
    /// one is kept, else the position.
    pub fn high(&self) -> [Option<ResumeKey>; 2] {
        [self.stdout.max(self.stdout_high), self.stderr.max(self.stderr_high)]
    }
}

/// Everything the engine resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(default)]
    pub containers: ContainerCheckpoints,
}

pub use super::container_checkpoints::ContainerCheckpoints;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint storage failed: {0}")]
    Io(String),
    #[error("checkpoint is corrupt: {0}")]
    Corrupt(String),
}

/// Where a loaded checkpoint came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckpointOrigin {
    /// Nothing was ever committed to this store: a first run (`first_sight` applies).
    Fresh,
    /// The last committed checkpoint (possibly with no containers in it).
    Current,
    /// The last generation was missing or corrupt and the one before it was loaded:
    /// lines acknowledged in between are delivered again.
    Previous,
    /// The store had a checkpoint but none can be read: the checkpoint is empty and
    /// every container is read from the beginning of its log (duplicates, not loss).
    Lost,
}

impl CheckpointOrigin {
    pub const ALL: [CheckpointOrigin; 4] =
        [CheckpointOrigin::Fresh, CheckpointOrigin::Current, CheckpointOrigin::Previous, CheckpointOrigin::Lost];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointOrigin::Fresh => "fresh",
            CheckpointOrigin::Current => "current",
            CheckpointOrigin::Previous => "previous",
            CheckpointOrigin::Lost => "lost",
        }
    }
}

/// A checkpoint and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedCheckpoint {
    pub checkpoint: Checkpoint,
    pub origin: CheckpointOrigin,
}

pub trait CheckpointStore: Send + Sync + 'static {
    fn load(&self) -> BoxFuture<Result<Checkpoint, CheckpointError>>;

    /// `load`, and what the store found. The default, for stores that keep no history,
    /// calls an empty checkpoint `Fresh` and any other `Current`; stores that can tell
    /// a lost checkpoint from a first run (the daemon's file store) override it.
    fn load_with_origin(&self) -> BoxFuture<Result<LoadedCheckpoint, CheckpointError>> {
        let load = self.load();
        Box::pin(async move {
            let checkpoint = load.await?;
            let origin =
                if checkpoint.containers.is_empty() { CheckpointOrigin::Fresh } else { CheckpointOrigin::Current };
            Ok(LoadedCheckpoint { checkpoint, origin })
        })
    }

    fn commit(&self, checkpoint: Checkpoint) -> BoxFuture<Result<(), CheckpointError>>;
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
