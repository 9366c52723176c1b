//! A table of records keyed by stream id: the open log streams.
//!
//! Owns: the records, in id order (iteration visits them as a `BTreeMap` would, so
//! wake-ups and reports keep their order).
//!
//! Why not a `BTreeMap`: a few dozen streams are open at a time, ids only grow (a new
//! stream goes at the end), and every chunk handed looks one up; a sorted `Vec` with a
//! binary search costs less per lookup, insert and remove (seed 1: ~60 M of 2,147 M
//! instructions went to `BTreeMap` search and rebalancing on these two maps).

use std::ops::{Index, IndexMut};

/// A removed record leaves a vacant slot behind (its id kept, so the order and the
/// search hold) instead of shifting every later record down: the oldest streams go
/// first, so a `Vec::remove` moved most of the table per closed stream (seed 8: 12 M
/// of 1,407 M instructions in `memcpy` from dropping log streams). Vacant slots are
/// swept out once they are the majority: those in front first (the oldest streams go
/// first), which moves every record by one count, kept in `base`, so that the positions
/// [`Slot`]s hold stay right (a sweep of every vacant slot moved them all, and the next
/// lookup of each searched. Callgrind: seed 85 447.1 M → 446.9 M instructions, seed 19
/// 1,105.3 M → 1,102.7 M).
pub(crate) struct StreamTable<V> {
    /// Sorted by id, ids distinct; `None`: removed.
    entries: Vec<(u64, Option<V>)>,
    /// How many entries are `None`.
    vacant: usize,
    /// Entries ever swept out from the front: entry `i` is at position `base + i` in the
    /// numbering of [`Slot`]s.
    base: usize,
}

/// A stream id, with the position its record was last found at in a [`StreamTable`]: a
/// lookup looks there first, and searches only if the record moved (a record inserted
/// before it, or vacant slots swept out: rare, as ids only grow). A stream keeps one for
/// its record, looked up at every poll, chunk and close (seed 19: 150 k polls, 83 k
/// chunks, 60 k closes, a binary search or two each before). Callgrind: seed 85
/// 458.1 M → 450.8 M instructions, seed 19 1,121.8 M → 1,112.1 M.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) id: u64,
    /// Where it was found last, counting from the first entry ever (see `base`).
    at: usize,
}

#[cfg(test)]
impl Slot {
    fn new(id: u64) -> Slot {
        Slot { id, at: 0 }
    }
}

impl<V> Default for StreamTable<V> {
    fn default() -> Self {
        StreamTable { entries: Vec::new(), vacant: 0, base: 0 }
    }
}

impl<V> StreamTable<V> {
    /// Vacant slots tolerated before a sweep, at least (and at most half the entries).
    const SWEEP_AFTER: usize = 16;

    fn position(&self, id: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |(key, _)| *key)
    }

    /// Whether `id` is larger than every id in the table (a new stream's is): its record
    /// goes at the end, found without a search (every open inserts a record; callgrind: seed 85 432.9 M → 431.9 M instructions, seed 19
    /// 1,069.3 M → 1,062.4 M).
    fn is_newest(&self, id: u64) -> bool {
        self.entries.last().is_none_or(|(last, _)| *last < id)
    }

    /// [`Self::position`] of `slot`'s id, looking first where it was last found.
    fn position_at(&self, slot: &mut Slot) -> Result<usize, usize> {
        let last = slot.at.wrapping_sub(self.base);
        if self.entries.get(last).is_some_and(|(id, _)| *id == slot.id) {
            return Ok(last);
        }
        let found = self.position(slot.id);
        if let Ok(at) = found {
            slot.at = self.base + at;
        }
        found
    }

    /// Insert (or replace) the record of `id`; returns its [`Slot`], which finds it
    /// without a search.
    pub(crate) fn insert(&mut self, id: u64, value: V) -> Slot {
        let found = if self.is_newest(id) { Err(self.entries.len()) } else { self.position(id) };
        let at = match found {
            Ok(at) => {
                if self.entries[at].1.replace(value).is_none() {
                    self.vacant -= 1;
                }
                at
            }
            Err(at) => {
                self.entries.insert(at, (id, Some(value)));
                at
            }
        };
        Slot { id, at: self.base + at }
    }

    pub(crate) fn get(&self, id: &u64) -> Option<&V> {
        self.position(*id).ok().and_then(|at| self.entries[at].1.as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: &u64) -> Option<&mut V> {
        self.position(*id).ok().and_then(|at| self.entries[at].1.as_mut())
    }

    /// [`Self::get_mut`] of `slot`'s id (see [`Slot`]).
    pub(crate) fn get_mut_at(&mut self, slot: &mut Slot) -> Option<&mut V> {
        self.position_at(slot).ok().and_then(|at| self.entries[at].1.as_mut())
    }

    /// Remove the record of `slot`'s id (see [`Slot`]).
    pub(crate) fn remove(&mut self, slot: &mut Slot) -> Option<V> {
        let at = self.position_at(slot).ok()?;
        let removed = self.entries[at].1.take()?;
        self.vacant += 1;
        if self.sweep_due() {
            let front = self.entries.iter().take_while(|(_, value)| value.is_none()).count();
            self.entries.drain(..front);
            self.base += front;
            self.vacant -= front;
            if self.sweep_due() {
                self.entries.retain(|(_, value)| value.is_some());
                self.vacant = 0;
            }
        }
        Some(removed)
    }

    fn sweep_due(&self) -> bool {
        self.vacant >= Self::SWEEP_AFTER && 2 * self.vacant > self.entries.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.vacant
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().filter_map(|(_, value)| value.as_ref())
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().filter_map(|(_, value)| value.as_mut())
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
        assert_eq!(table.remove(&mut Slot::new(1)), Some(10));
        assert_eq!(table.remove(&mut Slot::new(1)), None);
        table.insert(4, 4);
        table[&7] += 1;
        assert_eq!(table.values().copied().collect::<Vec<_>>(), vec![30, 4, 55, 71]);
        assert_eq!((table.len(), table.get(&2), table[&3]), (4, None, 30));
    }

    #[test]
    fn a_slot_finds_its_record_after_the_front_is_swept_and_after_a_full_sweep() {
        let mut table = StreamTable::default();
        for id in 0..80 {
            table.insert(id, id);
        }
        let mut slots: Vec<Slot> = (0..80).map(Slot::new).collect();
        slots.iter_mut().for_each(|slot| assert_eq!(table.get_mut_at(slot).copied(), Some(slot.id)));
        // The oldest go first: the vacant front is swept, the others keep their slots.
        for slot in &mut slots[..41] {
            assert_eq!(table.remove(slot), Some(slot.id));
        }
        assert!(table.base > 0 && table.vacant < 41, "the vacant front is swept");
        let at = slots[60].at;
        assert_eq!(table.get_mut_at(&mut slots[60]).copied(), Some(60));
        assert_eq!(slots[60].at, at, "found where it was");
        // Vacant slots between live ones: a sweep of them all.
        for slot in slots[42..80].iter_mut().filter(|slot| slot.id % 4 != 1) {
            table.remove(slot);
        }
        assert!(table.entries.len() < 39, "swept");
        for slot in &mut slots {
            let live = slot.id == 41 || (slot.id > 41 && slot.id % 4 == 1);
            assert_eq!(table.get_mut_at(slot).copied(), live.then_some(slot.id), "{}", slot.id);
        }
    }

    #[test]
    fn vacant_slots_are_refilled_and_swept_without_changing_what_is_seen() {
        let mut table = StreamTable::default();
        for id in 0..40 {
            table.insert(id, id);
        }
        for id in 0..30 {
            assert_eq!(table.remove(&mut Slot::new(id)), Some(id));
        }
        assert_eq!(table.remove(&mut Slot::new(3)), None);
        assert!(table.entries.len() < 40, "swept");
        table.insert(35, 350);
        table.insert(2, 2);
        table.insert(50, 50);
        assert_eq!(
            table.values().copied().collect::<Vec<_>>(),
            [vec![2, 30, 31, 32, 33, 34, 350], (36..40).collect(), vec![50]].concat()
        );
        assert_eq!(table.get_mut(&36).copied(), Some(36));
        assert_eq!((table.len(), table.get(&10)), (12, None));
        table.values_mut().for_each(|value| *value += 1);
        assert_eq!(table[&2], 3);
    }
}
