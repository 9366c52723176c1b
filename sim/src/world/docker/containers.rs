//! A table of the live containers by id, found first by the address of the id's text.
//!
//! Owns: the records, in id order (iteration visits them as a `BTreeMap` would, so
//! lists, reports and wake-ups keep their order), and an index of their positions by
//! the address of each key's `Arc<str>` (a hash table).
//!
//! Why: the engine asks by a [`ContainerId`] it got from this model (a `list`, an event),
//! so a clone of the key's `Arc`: its address finds the record with integer compares,
//! where a search by id compares 64-hex-digit ids (seed 19, 60 k `logs` calls: 16.5 M
//! instructions in `BTreeMap` search in `logs` alone; a sorted `Vec` searched by id cost
//! as much; with this table seed 19 costs 1,331.6 M instructions instead of 1,345.7 M,
//! seed 85 558.5 M instead of 563.8 M). An id that is not a clone of a key (a checkpoint's, read back) is found by
//! id. Sound: a key's `Arc` lives as long as its record, so no other live `Arc` has its
//! address, and a hit is checked with `Arc::ptr_eq` all the same.

use std::sync::Arc;

use engine::model::ContainerId;

pub(crate) struct ContainerTable<V> {
    /// Sorted by id, ids distinct.
    entries: Vec<(ContainerId, V)>,
    /// (address of the key's text, its position in `entries`), open addressing with
    /// linear probing, a power of two long, at most half full; an empty slot has
    /// address 0. A hash of the address finds a record in a probe or two where a
    /// binary search by address took six steps (~108 instructions a lookup; 375 k
    /// lookups over seeds 100..119, mostly `logs` and `emit`). Rebuilt at each insert
    /// and removal (rare: a container's creation and removal).
    by_address: Vec<(usize, usize)>,
}

impl<V> Default for ContainerTable<V> {
    fn default() -> Self {
        ContainerTable { entries: Vec::new(), by_address: Vec::new() }
    }
}

fn address(id: &ContainerId) -> usize {
    Arc::as_ptr(&id.0).cast::<u8>() as usize
}

/// The first slot to probe for `address` in a table of `mask + 1` slots (at most
/// 2^24): bits of its product with a large odd constant (Fibonacci hashing), which mix
/// every bit of the address (allocations differ in their middle bits).
fn slot_of(address: usize, mask: usize) -> usize {
    ((address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & mask
}

impl<V> ContainerTable<V> {
    fn position(&self, id: &ContainerId) -> Option<usize> {
        let address = address(id);
        let mask = self.by_address.len().wrapping_sub(1);
        if mask != usize::MAX {
            let mut slot = slot_of(address, mask);
            loop {
                let (at, position) = self.by_address[slot];
                if at == address {
                    if Arc::ptr_eq(&self.entries[position].0 .0, &id.0) {
                        return Some(position);
                    }
                    break;
                }
                if at == 0 {
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
        self.entries.binary_search_by(|(key, _)| key.cmp(id)).ok()
    }

    /// Index every entry's address anew.
    fn rebuild_index(&mut self) {
        let slots = (2 * self.entries.len()).next_power_of_two().max(16);
        self.by_address.clear();
        self.by_address.resize(slots, (0, 0));
        let mask = slots - 1;
        for (position, (id, _)) in self.entries.iter().enumerate() {
            let address = address(id);
            let mut slot = slot_of(address, mask);
            while self.by_address[slot].0 != 0 {
                slot = (slot + 1) & mask;
            }
            self.by_address[slot] = (address, position);
        }
    }

    pub(crate) fn get(&self, id: &ContainerId) -> Option<&V> {
        self.position(id).map(|at| &self.entries[at].1)
    }

    pub(crate) fn get_mut(&mut self, id: &ContainerId) -> Option<&mut V> {
        self.position(id).map(|at| &mut self.entries[at].1)
    }

    pub(crate) fn contains_key(&self, id: &ContainerId) -> bool {
        self.position(id).is_some()
    }

    /// Insert a record for an id not in the table.
    pub(crate) fn insert_new(&mut self, id: ContainerId, value: V) {
        let at = self.entries.binary_search_by(|(key, _)| key.cmp(&id)).expect_err("a new id");
        self.entries.insert(at, (id, value));
        self.rebuild_index();
    }

    pub(crate) fn remove(&mut self, id: &ContainerId) -> Option<V> {
        let at = self.position(id)?;
        let value = self.entries.remove(at).1;
        self.rebuild_index();
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The records in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ContainerId, &V)> {
        self.entries.iter().map(|(id, value)| (id, value))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &ContainerId> {
        self.entries.iter().map(|(id, _)| id)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> ContainerId {
        ContainerId::new(text.repeat(64 / text.len()))
    }

    #[test]
    fn records_are_found_by_any_copy_of_their_id_and_kept_in_id_order() {
        let mut table = ContainerTable::default();
        let ids: Vec<ContainerId> = ["c", "a", "e", "b", "d"].into_iter().map(id).collect();
        for (value, id) in ids.iter().enumerate() {
            table.insert_new(id.clone(), value);
        }
        assert_eq!(table.values().copied().collect::<Vec<_>>(), vec![1, 3, 0, 4, 2]);
        for (value, key) in ids.iter().enumerate() {
            // A clone shares the key's `Arc`; a new id with the same text does not.
            assert_eq!(table.get(&key.clone()), Some(&value));
            assert_eq!(table.get(&ContainerId::new(key.0.to_string())), Some(&value));
        }
        assert_eq!(table.remove(&id("a")), Some(1));
        assert_eq!(table.remove(&ids[1]), None);
        *table.get_mut(&ids[4]).expect("present") += 10;
        assert_eq!(
            table.iter().map(|(id, value)| (id.clone(), *value)).collect::<Vec<_>>(),
            vec![(ids[3].clone(), 3), (ids[0].clone(), 0), (ids[4].clone(), 14), (ids[2].clone(), 2)]
        );
        for (value, key) in ids.iter().enumerate().filter(|(value, _)| *value != 1) {
            let expected = if value == 4 { 14 } else { value };
            assert_eq!(table.get(key), Some(&expected));
        }
        assert!(!table.contains_key(&ids[1]) && table.contains_key(&ids[2]));
        assert_eq!((table.len(), table.keys().count()), (4, 4));
    }
}
