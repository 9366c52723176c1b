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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{ContainerId, ResumeKey};
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
}

impl ContainerCheckpoint {
    /// Whether any stream has an acknowledged position.
    pub fn has_position(&self) -> bool {
        self.stdout.is_some() || self.stderr.is_some()
    }
}

/// Everything the engine resumes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(default)]
    pub containers: ContainerCheckpoints,
}

/// The positions of every container of a checkpoint: a map ordered by id, kept as one
/// sorted `Vec` (serialised as a map, like the `BTreeMap` it replaced).
///
/// Why not a `BTreeMap`: the checkpoint task copies the whole map at every commit (up to
/// once a second) and the store drops a generation each time, while a commit changes
/// only the few containers acknowledged since the last one. A `Vec` is copied as one
/// allocation and a reference count per id, and dropped likewise; a `BTreeMap` walks its
/// nodes both times. Lookups are a binary search, as in a B-tree; inserting a container
/// moves the ones after it, at most a few hundred. Seed 85 of the simulator (callgrind,
/// 7,010 commits of about 55 containers): 625.2 M → 585.4 M Ir in all; the checkpoint
/// task 56 M → 25 M.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContainerCheckpoints {
    /// Sorted by id, each id once.
    entries: Vec<(ContainerId, ContainerCheckpoint)>,
}

impl ContainerCheckpoints {
    pub fn new() -> ContainerCheckpoints {
        ContainerCheckpoints::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where `id` is (`Ok`), or where it would go (`Err`).
    fn search(&self, id: &ContainerId) -> Result<usize, usize> {
        self.entries.binary_search_by(|(key, _)| key.cmp(id))
    }

    pub fn get(&self, id: &ContainerId) -> Option<&ContainerCheckpoint> {
        self.search(id).ok().map(|at| &self.entries[at].1)
    }

    pub fn get_mut(&mut self, id: &ContainerId) -> Option<&mut ContainerCheckpoint> {
        self.search(id).ok().map(|at| &mut self.entries[at].1)
    }

    /// The positions of `id`, empty ones made on first sight (the id cloned only then).
    pub fn get_or_insert_default(&mut self, id: &ContainerId) -> &mut ContainerCheckpoint {
        let at = match self.search(id) {
            Ok(at) => at,
            Err(at) => {
                self.entries.insert(at, (id.clone(), ContainerCheckpoint::default()));
                at
            }
        };
        &mut self.entries[at].1
    }

    /// Set the positions of `id`; returns the ones it had.
    pub fn insert(&mut self, id: ContainerId, positions: ContainerCheckpoint) -> Option<ContainerCheckpoint> {
        match self.search(&id) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, positions)),
            Err(at) => {
                self.entries.insert(at, (id, positions));
                None
            }
        }
    }

    pub fn remove(&mut self, id: &ContainerId) -> Option<ContainerCheckpoint> {
        self.search(id).ok().map(|at| self.entries.remove(at).1)
    }

    /// Keep only the containers for which `keep` says yes (it may change their positions).
    pub fn retain(&mut self, mut keep: impl FnMut(&ContainerId, &mut ContainerCheckpoint) -> bool) {
        self.entries.retain_mut(|(id, positions)| keep(id, positions));
    }

    /// Every container and its positions, in id order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// Every container, in id order.
    pub fn keys(&self) -> impl Iterator<Item = &ContainerId> {
        self.entries.iter().map(|(id, _)| id)
    }
}

/// [`ContainerCheckpoints::iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, (ContainerId, ContainerCheckpoint)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a ContainerId, &'a ContainerCheckpoint);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(id, positions)| (id, positions))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ContainerCheckpoints {
    type Item = (&'a ContainerId, &'a ContainerCheckpoint);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl std::ops::Index<&ContainerId> for ContainerCheckpoints {
    type Output = ContainerCheckpoint;

    fn index(&self, id: &ContainerId) -> &ContainerCheckpoint {
        self.get(id).expect("no checkpoint for this container")
    }
}

/// As a map would be built: a later entry of the same id replaces an earlier one.
impl FromIterator<(ContainerId, ContainerCheckpoint)> for ContainerCheckpoints {
    fn from_iter<I: IntoIterator<Item = (ContainerId, ContainerCheckpoint)>>(entries: I) -> ContainerCheckpoints {
        let map: BTreeMap<ContainerId, ContainerCheckpoint> = entries.into_iter().collect();
        ContainerCheckpoints { entries: map.into_iter().collect() }
    }
}

impl std::fmt::Debug for ContainerCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for ContainerCheckpoints {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for ContainerCheckpoints {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ContainerCheckpoints, D::Error> {
        let map = BTreeMap::<ContainerId, ContainerCheckpoint>::deserialize(deserializer)?;
        Ok(ContainerCheckpoints { entries: map.into_iter().collect() })
    }
}

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
