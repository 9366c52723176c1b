//! A table of records keyed by stream id: the open log streams, and the per-stream
//! slack of the unsettled account.
//!
//! Owns: the records, in id order (iteration visits them as a `BTreeMap` would, so
//! wake-ups and reports keep their order).
//!
//! Why not a `BTreeMap`: a few dozen streams are open at a time, ids only grow (a new
//! stream goes at the end), and every chunk handed looks one up; a sorted `Vec` with a
//! binary search costs less per lookup, insert and remove (seed 1: ~60 M of 2,147 M
//! instructions went to `BTreeMap` search and rebalancing on these two maps).

use std::ops::{Index, IndexMut};

pub(crate) struct StreamTable<V> {
    /// Sorted by id, ids distinct.
    entries: Vec<(u64, V)>,
}

impl<V> Default for StreamTable<V> {
    fn default() -> Self {
        StreamTable { entries: Vec::new() }
    }
}

impl<V> StreamTable<V> {
    fn position(&self, id: u64) -> Result<usize, usize> {
        // Most lookups are of recent streams: a binary search over few entries.
        self.entries.binary_search_by_key(&id, |(key, _)| *key)
    }

    /// Insert or replace the record of `id`.
    pub(crate) fn insert(&mut self, id: u64, value: V) {
        match self.position(id) {
            Ok(at) => self.entries[at].1 = value,
            Err(at) => self.entries.insert(at, (id, value)),
        }
    }

    pub(crate) fn get(&self, id: &u64) -> Option<&V> {
        self.position(*id).ok().map(|at| &self.entries[at].1)
    }

    pub(crate) fn get_mut(&mut self, id: &u64) -> Option<&mut V> {
        self.position(*id).ok().map(|at| &mut self.entries[at].1)
    }

    /// The record of `id`, a default one inserted first if there is none.
    pub(crate) fn get_or_insert_default(&mut self, id: u64) -> &mut V
    where
        V: Default,
    {
        let at = match self.position(id) {
            Ok(at) => at,
            Err(at) => {
                self.entries.insert(at, (id, V::default()));
                at
            }
        };
        &mut self.entries[at].1
    }

    pub(crate) fn remove(&mut self, id: &u64) -> Option<V> {
        self.position(*id).ok().map(|at| self.entries.remove(at).1)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The records in id order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }

    /// The records in id order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, value)| value)
    }
}

impl<V> Index<&u64> for StreamTable<V> {
    type Output = V;

    fn index(&self, id: &u64) -> &V {
        self.get(id).expect("no stream with this id")
    }
}

impl<V> IndexMut<&u64> for StreamTable<V> {
    fn index_mut(&mut self, id: &u64) -> &mut V {
        self.get_mut(id).expect("no stream with this id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stay_in_id_order_whatever_the_order_of_inserts_and_removes() {
        let mut table = StreamTable::default();
        for id in [3, 1, 7, 5] {
            table.insert(id, id * 10);
        }
        table.insert(5, 55);
        assert_eq!(table.remove(&1), Some(10));
        assert_eq!(table.remove(&1), None);
        *table.get_or_insert_default(4) += 4;
        table[&7] += 1;
        assert_eq!(table.values().copied().collect::<Vec<_>>(), vec![30, 4, 55, 71]);
        assert_eq!((table.len(), table.get(&2), table[&3]), (4, None, 30));
    }
}
