//! `ByContainer`: the oracle's per-container state, found by the id's allocation first.
//!
//! Owns: one value per container id, kept for the whole run (never removed), in the
//! order the ids were first seen.
//!
//! Promises: a lookup with the very `Arc` an entry was made with costs one comparison
//! (the entry hinted for its address) or one hash of its address; any other id (an equal
//! text in another allocation) is found by its text.
//! An address is only ever mapped while the entry holds that `Arc`, so it cannot be
//! reused by another id. The Docker model creates each id once (`SimDocker::create`)
//! and every copy the engine hands back shares it, so in practice every lookup is the
//! first kind.
//!
//! Why: the checker's commit check found each checkpointed container by a merge walk
//! over every container ever delivered (about 11k instructions per commit on seed 1,
//! 28M of its 1,121M); see `DeliveryChecker::handle_commit`. The progress check
//! (`liveness::ProgressChecker`) keeps each container's log handle in one too.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::model::ContainerId;

use crate::world::by_address::{address, ByAddress};

pub(crate) struct ByContainer<T> {
    entries: Vec<(ContainerId, T)>,
    by_text: BTreeMap<ContainerId, usize>,
    by_address: ByAddress,
    /// Per slot of an address, the entry last found there: believed only if that entry
    /// holds the very `Arc` (one comparison, where the table costs a hash and a probe;
    /// callgrind: seed 2 349.16 M -> 348.83 M, seed 3 396.77 M -> 396.45 M, seed 19
    /// 867.70 M -> 867.38 M). Entries never move, so a hint goes stale only when
    /// another id takes its slot.
    hints: [u32; HINTS],
}

const HINTS: usize = 64;

impl<T> Default for ByContainer<T> {
    fn default() -> ByContainer<T> {
        ByContainer {
            entries: Vec::new(),
            by_text: BTreeMap::new(),
            by_address: ByAddress::default(),
            hints: [u32::MAX; HINTS],
        }
    }
}

impl<T: Default> ByContainer<T> {
    #[inline]
    fn find(&self, id: &ContainerId) -> Option<usize> {
        let hint = self.hints[hint_slot(id)] as usize;
        if self.entries.get(hint).is_some_and(|(held, _)| Arc::ptr_eq(&held.0, &id.0)) {
            return Some(hint);
        }
        match self.by_address.get(&address(id)) {
            Some(&at) => Some(at),
            None => self.by_text.get(id).copied(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: &ContainerId) -> Option<&T> {
        self.find(id).map(|at| &self.entries[at].1)
    }

    /// The value of `id`, made (default) on first sight.
    pub(crate) fn get_or_default(&mut self, id: &ContainerId) -> &mut T {
        let at = match self.find(id) {
            Some(at) => at,
            None => {
                let at = self.entries.len();
                self.entries.push((id.clone(), T::default()));
                self.by_text.insert(id.clone(), at);
                self.by_address.insert(address(id), at);
                at
            }
        };
        self.hints[hint_slot(id)] = at as u32;
        &mut self.entries[at].1
    }

    /// Every entry, in the order first seen.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&ContainerId, &mut T)> {
        self.entries.iter_mut().map(|(id, value)| (&*id, value))
    }
}

/// The hint slot of `id`'s allocation: ids share a size class, so neighbours' addresses
/// are a multiple of it apart, and shifted by 4, apart by an odd multiple of 5 or 1.
#[inline]
fn hint_slot(id: &ContainerId) -> usize {
    (address(id) >> 4) % HINTS
}

#[cfg(test)]
mod tests {
    use engine::model::ContainerId;

    use super::ByContainer;

    /// Many ids (more than the hint slots) and copies of them in other allocations: each
    /// lookup finds its own entry, whatever the hints hold.
    #[test]
    fn every_id_finds_its_entry_whatever_the_hints() {
        let ids: Vec<ContainerId> = (0..200).map(|at| ContainerId::new(format!("{at:064}"))).collect();
        let mut map = ByContainer::<usize>::default();
        for (at, id) in ids.iter().enumerate() {
            *map.get_or_default(id) = at;
        }
        for round in 0..3 {
            for (at, id) in ids.iter().enumerate().rev() {
                let copy = ContainerId::new(id.0.to_string());
                let id = if (at + round) % 2 == 0 { id } else { &copy };
                assert_eq!(map.get(id), Some(&at));
                assert_eq!(*map.get_or_default(id), at);
            }
        }
        assert_eq!(map.get(&ContainerId::new("other")), None);
    }
}
