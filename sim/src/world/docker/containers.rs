//! A table of the live containers by id, found first by the address of the id's text.
//!
//! Owns: the records, in id order (iteration visits them as a `BTreeMap` would, so
//! lists, reports and wake-ups keep their order), and an index of their positions by
//! the address of each key's `Arc<str>` ([`ByAddress`]).
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

use crate::world::by_address::{address, ByAddress};

pub(crate) struct ContainerTable<V> {
    /// Sorted by id, ids distinct.
    entries: Vec<(ContainerId, V)>,
    /// Address of each key's text → its position in `entries`: a hash of the address
    /// finds a record where a binary search by address took six steps (~108 instructions
    /// a lookup; 375 k lookups over seeds 100..119, mostly `logs` and `emit`). Rebuilt at
    /// each insert and removal (rare: a container's creation and removal). The std map
    /// the oracle uses too, not a table written for this one (that saved 0.3 %: callgrind
    /// seed 3 355.9 M -> 354.7 M, seed 19 813.5 M -> 811.8 M).
    by_address: ByAddress,
}

impl<V> Default for ContainerTable<V> {
    fn default() -> Self {
        ContainerTable { entries: Vec::new(), by_address: ByAddress::default() }
    }
}

impl<V> ContainerTable<V> {
    fn position(&self, id: &ContainerId) -> Option<usize> {
        if let Some(&position) = self.by_address.get(&address(id)) {
            if Arc::ptr_eq(&self.entries[position].0 .0, &id.0) {
                return Some(position);
            }
        }
        self.entries.binary_search_by(|(key, _)| key.cmp(id)).ok()
    }

    /// Index every entry's address anew.
    fn rebuild_index(&mut self) {
        self.by_address.clear();
        self.by_address.extend(self.entries.iter().enumerate().map(|(position, (id, _))| (address(id), position)));
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
