//! `CheckpointStore`: acknowledged positions that survive a restart.
//!
//! `commit` is atomic: after a crash, `load` returns either the previous or the new
//! checkpoint, never a mix. The engine commits only positions the sink acknowledged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{ContainerId, ResumeKey};
use crate::rt::BoxFuture;

/// Positions of one container, per output stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerCheckpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<ResumeKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<ResumeKey>,
}

/// Everything the engine resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(default)]
    pub containers: BTreeMap<ContainerId, ContainerCheckpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint storage failed: {0}")]
    Io(String),
    #[error("checkpoint is corrupt: {0}")]
    Corrupt(String),
}

pub trait CheckpointStore: Send + Sync + 'static {
    fn load(&self) -> BoxFuture<Result<Checkpoint, CheckpointError>>;
    fn commit(&self, checkpoint: Checkpoint) -> BoxFuture<Result<(), CheckpointError>>;
}
