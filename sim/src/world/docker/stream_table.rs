//! A table of the open log streams' records, each at the position it got at its open.
//!
//! Owns: the records, and the positions of removed ones, which the next opens reuse.
//!
//! Why not a `BTreeMap`: a few dozen streams are open at a time and every poll, chunk,
//! wake-up and close looks a record up (seed 1: ~60 M of 2,147 M instructions went to
//! `BTreeMap` search and rebalancing). A stream keeps the [`Slot`] its record got, so
//! every lookup is an index.
//!
//! Why records never move (a slab, not a sorted `Vec`): a sorted `Vec` left removed
//! records vacant and swept them out once they were the majority, but the oldest streams
//! do not go first (a quiet container's stream outlives hundreds of rotations of the
//! others), so a sweep moved most of the table to free a few entries at its front, or
//! every record, after which each stream searched for its own (seed 3: 1,282 sweeps of
//! a table of ~100 records for 23.8 k closes). Only iteration needs an order, and it is
//! rare: [`StreamTable::values_mut`] sorts by id. Callgrind: seed 2 426.6 M → 418.4 M
//! instructions, seed 3 466.5 M → 456.6 M, seed 19 857.2 M → 852.6 M (of which `memcpy`,
//! mostly `rep movsb` counted per byte: 5.0 M, 6.4 M, 0.7 M).

/// A stream's id and the position of its record in its [`StreamTable`], from
/// [`StreamTable::insert`]: the record stays there until it is removed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    pub(crate) id: u64,
    at: usize,
}

pub(crate) struct StreamTable<V> {
    /// By position: the id of the record there (the last one, if removed) and the
    /// record, `None` once removed.
    entries: Vec<(u64, Option<V>)>,
    /// Positions of removed records, the latest last.
    free: Vec<usize>,
}

impl<V> Default for StreamTable<V> {
    fn default() -> Self {
        StreamTable { entries: Vec::new(), free: Vec::new() }
    }
}

impl<V> StreamTable<V> {
    /// Insert the record of a stream `id` (new: no record has it); returns its [`Slot`].
    pub(crate) fn insert(&mut self, id: u64, value: V) -> Slot {
        let at = match self.free.pop() {
            Some(at) => {
                self.entries[at] = (id, Some(value));
                at
            }
            None => {
                self.entries.push((id, Some(value)));
                self.entries.len() - 1
            }
        };
        Slot { id, at }
    }

    /// The record of `slot`'s stream, unless it was removed.
    pub(crate) fn get_mut_at(&mut self, slot: &Slot) -> Option<&mut V> {
        match self.entries.get_mut(slot.at) {
            Some((id, value)) if *id == slot.id => value.as_mut(),
            _ => None,
        }
    }

    /// Remove the record of `slot`'s stream; returns what `look` takes from it first.
    /// The record is dropped where it is, not moved out to the caller (a copy of a
    /// record, ~130 bytes, per close; callgrind: seed 2 418.4 M → 417.8 M instructions,
    /// seed 3 456.6 M → 455.9 M, seed 19 852.6 M → 850.8 M).
    pub(crate) fn remove_with<R>(&mut self, slot: &Slot, look: impl FnOnce(&V) -> R) -> Option<R> {
        let value = match self.entries.get_mut(slot.at) {
            Some((id, value)) if *id == slot.id => value,
            _ => return None,
        };
        let found = look(value.as_ref()?);
        *value = None;
        self.free.push(slot.at);
        Some(found)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// The records, in no particular order (for counts).
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().filter_map(|(_, value)| value.as_ref())
    }

    /// The records in id order (the order of their opens), as a `BTreeMap` by id would
    /// visit them: whatever is done to each (a wake-up) is done in an order that does
    /// not depend on where records are.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        let mut records: Vec<(u64, &mut V)> =
            self.entries.iter_mut().filter_map(|(id, value)| Some((*id, value.as_mut()?))).collect();
        records.sort_unstable_by_key(|(id, _)| *id);
        records.into_iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_finds_its_record_until_it_is_removed_even_once_its_position_is_reused() {
        let mut table = StreamTable::default();
        let mut slots: Vec<Slot> = (0..4).map(|id| table.insert(id, id * 10)).collect();
        assert_eq!(table.remove_with(&slots[1], |value| *value), Some(10));
        assert_eq!(table.remove_with(&slots[1], |value| *value), None);
        assert_eq!(table.get_mut_at(&slots[1]), None);
        // Stream 4 gets the position stream 1 had: stream 1's slot finds nothing there.
        slots.push(table.insert(4, 40));
        assert_eq!(table.get_mut_at(&slots[1]), None);
        assert_eq!(table.remove_with(&slots[1], |value| *value), None);
        *table.get_mut_at(&slots[4]).expect("open") += 1;
        for (slot, value) in slots.iter().zip([Some(0), None, Some(20), Some(30), Some(41)]) {
            assert_eq!(table.get_mut_at(slot).copied(), value, "{}", slot.id);
        }
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn iteration_visits_the_records_in_id_order_wherever_they_are() {
        let mut table = StreamTable::default();
        let slots: Vec<Slot> = (0..40).map(|id| table.insert(id, id)).collect();
        // The oldest go last: the newest get their positions.
        for slot in slots[..30].iter().rev() {
            assert_eq!(table.remove_with(slot, |value| *value), Some(slot.id));
        }
        for id in 40..50 {
            table.insert(id, id);
        }
        let ids: Vec<u64> = table.values_mut().map(|value| *value).collect();
        assert_eq!(ids, (30..50).collect::<Vec<_>>());
        let mut counted: Vec<u64> = table.values().copied().collect();
        counted.sort_unstable();
        assert_eq!(counted, ids);
        assert_eq!(table.len(), 20);
        table.values_mut().for_each(|value| *value += 1);
        assert_eq!(table.values().sum::<u64>(), ids.iter().sum::<u64>() + 20);
    }
}
