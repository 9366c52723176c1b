//! [`ContainerCheckpoints`]: the positions of every container of a checkpoint, ordered
//! by id — a map kept as two parallel arrays, the ids shared between checkpoints.
//!
//! Owns: a sorted list of distinct ids (`Arc<[ContainerId]>`, shared by every copy of
//! the map and by the engine's next snapshots while the set of containers stays the
//! same) and one [`ContainerCheckpoint`] per id, at the same index (a plain `Vec`).
//!
//! Promises:
//! - The map API its callers use: look-up by id (a binary search), iteration in id
//!   order, insert, remove, retain, collect (a later entry of an id wins).
//! - The serialised form of the `litemap::LiteMap` it replaced, byte for byte: a map
//!   from id to positions in id order, except an empty one, which human-readable formats
//!   (the daemon's JSON) get as an empty sequence (`[]`). Both forms load, in any order,
//!   a later entry of an id winning.
//!
//! Why: the checkpoint task copies the whole map at every commit (up to once a second)
//! and the store drops the generation two commits old, while a commit changes only the
//! positions of the few containers acknowledged since the last one and the set of
//! containers rarely changes (seed 3: 214 of 7,848 commits). As one sorted `Vec` of
//! `(ContainerId, ContainerCheckpoint)` (a `LiteMap`, chosen over a `BTreeMap`, which
//! walks its nodes to copy and to drop: seed 85 625.2 M -> 585.4 M Ir) a copy took one
//! atomic increment per container and a drop one atomic decrement per container, each
//! on another cache line: a time profile of the sweep (perf, cpu-clock, 400 seeds) had
//! the simulated store's commit at 1.88 % of all time, 79 % of it on the `lock decq` of
//! those drops. With the ids shared, a copy is one increment and a `memcpy`, a drop one
//! decrement and a free: about 2 atomic read-modify-writes a commit instead of 2 per
//! container (110 with 55), plus 2 per id when the set of containers changed. Callgrind
//! (an atomic counts as one instruction there, so this understates the gain), with the
//! oracle's scan comparing the shared ids once (`sim::check::delivery`): seed 3
//! (commits every second, 7,848 commits) 328.22 M -> 319.80 M Ir; seed 0 (every second,
//! 6,786) 260.34 M -> 252.87 M; seed 19 (every second, 4,938) 703.85 M -> 698.52 M;
//! seed 2 (every 30 s, 924) 286.94 M -> 285.92 M.

use std::sync::Arc;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::checkpoint::ContainerCheckpoint;
use crate::model::ContainerId;

/// The positions of every container of a checkpoint, ordered by id (see the module docs).
#[derive(Clone, Default)]
pub struct ContainerCheckpoints {
    /// Sorted, each id once.
    ids: Arc<[ContainerId]>,
    /// `positions[at]` belongs to `ids[at]`.
    positions: Vec<ContainerCheckpoint>,
}

impl ContainerCheckpoints {
    pub fn new() -> ContainerCheckpoints {
        ContainerCheckpoints::default()
    }

    /// The map of `ids[at]` to `positions[at]`. `ids` must be sorted, each id once.
    ///
    /// # Panics
    /// If the lengths differ (and, in debug builds, if `ids` is not sorted and distinct).
    pub fn from_parts(ids: Arc<[ContainerId]>, positions: Vec<ContainerCheckpoint>) -> ContainerCheckpoints {
        assert_eq!(ids.len(), positions.len(), "one position per id");
        debug_assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids sorted and distinct");
        ContainerCheckpoints { ids, positions }
    }

    /// The shared ids and the positions, at the same indexes.
    pub fn into_parts(self) -> (Arc<[ContainerId]>, Vec<ContainerCheckpoint>) {
        (self.ids, self.positions)
    }

    /// The ids, sorted (shared with the copies of this map).
    pub fn ids(&self) -> &Arc<[ContainerId]> {
        &self.ids
    }

    /// The positions, at the indexes of their ids in [`Self::ids`].
    pub fn positions(&self) -> &[ContainerCheckpoint] {
        &self.positions
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, id: &ContainerId) -> Option<&ContainerCheckpoint> {
        self.ids.binary_search(id).ok().map(|at| &self.positions[at])
    }

    pub fn contains_key(&self, id: &ContainerId) -> bool {
        self.ids.binary_search(id).is_ok()
    }

    /// Set `id`'s positions; the ones it replaces, if any. A new id copies the ids (once
    /// per container added: not for the engine's commits, which share them).
    pub fn insert(&mut self, id: ContainerId, positions: ContainerCheckpoint) -> Option<ContainerCheckpoint> {
        match self.ids.binary_search(&id) {
            Ok(at) => Some(std::mem::replace(&mut self.positions[at], positions)),
            Err(at) => {
                let mut ids = self.ids.to_vec();
                ids.insert(at, id);
                self.ids = ids.into();
                self.positions.insert(at, positions);
                None
            }
        }
    }

    /// Remove `id`; its positions, if it was there.
    pub fn remove(&mut self, id: &ContainerId) -> Option<ContainerCheckpoint> {
        let at = self.ids.binary_search(id).ok()?;
        let mut ids = self.ids.to_vec();
        ids.remove(at);
        self.ids = ids.into();
        Some(self.positions.remove(at))
    }

    /// Keep only the containers for which `keep` says yes.
    pub fn retain(&mut self, mut keep: impl FnMut(&ContainerId, &ContainerCheckpoint) -> bool) {
        let kept: Vec<bool> = self.iter().map(|(id, positions)| keep(id, positions)).collect();
        if kept.iter().all(|&kept| kept) {
            return;
        }
        let mut flags = kept.iter().copied();
        self.positions.retain(|_| flags.next() == Some(true));
        self.ids = self.ids.iter().zip(&kept).filter(|(_, &kept)| kept).map(|(id, _)| id.clone()).collect();
    }

    /// The entries in id order.
    pub fn iter(&self) -> Iter<'_> {
        self.ids.iter().zip(self.positions.iter())
    }

    pub fn keys(&self) -> std::slice::Iter<'_, ContainerId> {
        self.ids.iter()
    }

    pub fn values(&self) -> std::slice::Iter<'_, ContainerCheckpoint> {
        self.positions.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, ContainerCheckpoint> {
        self.positions.iter_mut()
    }
}

/// The entries of a [`ContainerCheckpoints`] in id order.
pub type Iter<'a> = std::iter::Zip<std::slice::Iter<'a, ContainerId>, std::slice::Iter<'a, ContainerCheckpoint>>;

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
        self.get(id).expect("no entry for this id")
    }
}

/// In any order; a later entry of an id wins.
impl FromIterator<(ContainerId, ContainerCheckpoint)> for ContainerCheckpoints {
    fn from_iter<I: IntoIterator<Item = (ContainerId, ContainerCheckpoint)>>(entries: I) -> ContainerCheckpoints {
        let mut entries: Vec<_> = entries.into_iter().collect();
        // Stable: the entries of one id stay in their order, the last one is kept.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut ids = Vec::with_capacity(entries.len());
        let mut positions = Vec::with_capacity(entries.len());
        for (id, entry) in entries {
            if ids.last() == Some(&id) {
                *positions.last_mut().expect("one position per id") = entry;
            } else {
                ids.push(id);
                positions.push(entry);
            }
        }
        ContainerCheckpoints { ids: ids.into(), positions }
    }
}

impl PartialEq for ContainerCheckpoints {
    fn eq(&self, other: &ContainerCheckpoints) -> bool {
        (Arc::ptr_eq(&self.ids, &other.ids) || self.ids == other.ids) && self.positions == other.positions
    }
}

impl Eq for ContainerCheckpoints {}

impl std::fmt::Debug for ContainerCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for ContainerCheckpoints {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As `LiteMap` did: a human-readable format gets an empty map as a sequence (it
        // looked at the first key to choose, and an empty map has none).
        if self.is_empty() && serializer.is_human_readable() {
            return serializer.serialize_seq(Some(0))?.end();
        }
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (id, positions) in self {
            map.serialize_entry(id, positions)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ContainerCheckpoints {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ContainerCheckpoints, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(EntriesVisitor)
        } else {
            deserializer.deserialize_map(EntriesVisitor)
        }
    }
}

/// A map, or a sequence of `(id, positions)` pairs, as `LiteMap` read them.
struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = ContainerCheckpoints;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a map from container id to positions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<ContainerCheckpoints, A::Error> {
        let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = access.next_element::<(ContainerId, ContainerCheckpoint)>()? {
            entries.push(entry);
        }
        Ok(entries.into_iter().collect())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ContainerCheckpoints, A::Error> {
        let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = access.next_entry::<ContainerId, ContainerCheckpoint>()? {
            entries.push(entry);
        }
        Ok(entries.into_iter().collect())
    }
}

#[cfg(test)]
#[path = "container_checkpoints_tests.rs"]
mod tests;
