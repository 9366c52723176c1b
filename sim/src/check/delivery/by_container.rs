//! `ByContainer`: the oracle's per-container state, found by the id's allocation first.
//!
//! Owns: one value per container id, kept for the whole run (never removed), in the
//! order the ids were first seen.
//!
//! Promises: a lookup with the very `Arc` an entry was made with costs one hash of its
//! address; any other id (an equal text in another allocation) is found by its text.
//! An address is only ever mapped while the entry holds that `Arc`, so it cannot be
//! reused by another id. The Docker model creates each id once (`SimDocker::create`)
//! and every copy the engine hands back shares it, so in practice every lookup is the
//! first kind.
//!
//! Why: the checker's commit check found each checkpointed container by a merge walk
//! over every container ever delivered (about 11k instructions per commit on seed 1,
//! 28M of its 1,121M); see `DeliveryChecker::handle_commit`. The progress check
//! (`liveness::ProgressChecker`) keeps each container's log handle in one too.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use engine::model::ContainerId;

pub(crate) struct ByContainer<T> {
    entries: Vec<(ContainerId, T)>,
    by_text: BTreeMap<ContainerId, usize>,
    by_address: HashMap<usize, usize, BuildHasherDefault<AddressHasher>>,
}

impl<T> Default for ByContainer<T> {
    fn default() -> ByContainer<T> {
        ByContainer { entries: Vec::new(), by_text: BTreeMap::new(), by_address: HashMap::default() }
    }
}

impl<T: Default> ByContainer<T> {
    #[inline]
    fn find(&self, id: &ContainerId) -> Option<usize> {
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
        &mut self.entries[at].1
    }

    /// Every entry, in the order first seen.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&ContainerId, &mut T)> {
        self.entries.iter_mut().map(|(id, value)| (&*id, value))
    }
}

fn address(id: &ContainerId) -> usize {
    Arc::as_ptr(&id.0) as *const u8 as usize
}

/// Hashes one address: a multiply spreads it, the rotation brings the well-mixed high
/// bits down to where the table takes its bucket index (addresses are aligned, so their
/// low bits, and those of any odd multiple, are zero).
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}
