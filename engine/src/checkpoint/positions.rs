//! Acknowledged positions: what the sink has accepted, per container and stream.
//!
//! The sink worker acknowledges batches in queue order, so each container's entry is
//! the end of a prefix of its log (in log order) that is fully delivered. Only tracked
//! containers are kept: discovery tracks a container while it exists and untracks it
//! once it is removed and its supervisor joined, so the checkpoint does not grow with
//! every container ever seen. The checkpoint task is woken through [`Acks::changed`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::model::{Batch, ContainerId, Position, SourceId, StdStream};
use crate::port::{Checkpoint, ContainerCheckpoint, ContainerCheckpoints};

#[derive(Default)]
struct AcksState {
    /// Only tracked containers have an entry here; sorted, each once (found by index,
    /// see [`Hints`]). The positions of `ids[at]` are `positions[at]`.
    ids: Vec<ContainerId>,
    positions: Vec<ContainerCheckpoint>,
    /// `ids` as the last snapshot shared them with the checkpoints, while the set of
    /// containers has not changed since (`None` once it has): the next snapshot shares
    /// them again, one reference count, where a copy of the ids took one per container
    /// (see [`ContainerCheckpoints`]).
    shared_ids: Option<Arc<[ContainerId]>>,
    tracked: BTreeSet<ContainerId>,
    dirty: bool,
    hints: Hints,
}

/// Where a container's entry was last found, by its id's allocation: an acknowledgement
/// finds its container by one check of the hinted entry's `Arc` instead of a binary
/// search over the ids (about 200 instructions a look-up; callgrind: see `Acks::acknowledge`).
/// A hint is only ever believed after that check, so a stale one (entries moved, the
/// slot taken by another id) costs the search it would have cost anyway.
struct Hints([u32; HINTS]);

const HINTS: usize = 64;

impl Default for Hints {
    fn default() -> Hints {
        Hints([u32::MAX; HINTS])
    }
}

impl Hints {
    /// The slot of `id`'s allocation. Ids are allocated in one size class, so their
    /// addresses differ by a multiple of it (80 bytes for a 64-hex id): shifted by 4,
    /// an odd multiple of 5 or 1 apart, distinct modulo 64 for 64 neighbours.
    #[inline]
    fn slot(id: &ContainerId) -> usize {
        (Arc::as_ptr(&id.0) as *const u8 as usize >> 4) % HINTS
    }
}

impl AcksState {
    /// The index of `id`'s entry, or where it would go.
    #[inline]
    fn search(&mut self, id: &ContainerId) -> Result<usize, usize> {
        let slot = Hints::slot(id);
        let hint = self.hints.0[slot] as usize;
        if self.ids.get(hint).is_some_and(|held| Arc::ptr_eq(&held.0, &id.0)) {
            return Ok(hint);
        }
        let found = self.ids.binary_search(id);
        if let Ok(at) = found {
            self.hints.0[slot] = at as u32;
        }
        found
    }

    fn get(&self, id: &ContainerId) -> Option<&ContainerCheckpoint> {
        self.ids.binary_search(id).ok().map(|at| &self.positions[at])
    }

    /// A new entry at `at` (where the search said it goes): the set of containers changed.
    fn insert(&mut self, at: usize, id: &ContainerId, positions: ContainerCheckpoint) {
        self.ids.insert(at, id.clone());
        self.positions.insert(at, positions);
        self.shared_ids = None;
    }

    fn remove(&mut self, at: usize) {
        self.ids.remove(at);
        self.positions.remove(at);
        self.shared_ids = None;
    }

    /// The checkpoint of every entry: the ids shared (copied only when the set of
    /// containers changed since the last snapshot), the positions copied.
    fn snapshot(&mut self) -> Checkpoint {
        let ids = self.shared_ids.get_or_insert_with(|| self.ids.as_slice().into()).clone();
        Checkpoint { containers: ContainerCheckpoints::from_parts(ids, self.positions.clone()) }
    }
}

#[derive(Default)]
pub struct Acks {
    state: Mutex<AcksState>,
    changed: Notify,
    /// The longest a commit has taken so far: the shutdown reserves it for its final one.
    slowest_commit: Mutex<std::time::Duration>,
}

impl Acks {
    /// Start from a loaded checkpoint; every container in it is tracked.
    pub fn from_checkpoint(checkpoint: Checkpoint) -> Acks {
        let tracked = checkpoint.containers.keys().cloned().collect();
        let (shared_ids, positions) = checkpoint.containers.into_parts();
        let state = AcksState {
            ids: shared_ids.to_vec(),
            positions,
            shared_ids: Some(shared_ids),
            tracked,
            dirty: false,
            hints: Hints::default(),
        };
        Acks { state: Mutex::new(state), changed: Notify::new(), slowest_commit: Mutex::new(std::time::Duration::ZERO) }
    }

    /// Note how long one commit took (successful or not).
    pub fn note_commit_took(&self, took: std::time::Duration) {
        let mut slowest = self.slowest_commit.lock().unwrap();
        *slowest = (*slowest).max(took);
    }

    /// The longest any commit has taken so far.
    pub fn slowest_commit(&self) -> std::time::Duration {
        *self.slowest_commit.lock().unwrap()
    }

    /// The acknowledged positions of one container.
    pub fn get(&self, id: &ContainerId) -> ContainerCheckpoint {
        self.state.lock().unwrap().get(id).copied().unwrap_or_default()
    }

    pub fn track(&self, id: &ContainerId) {
        self.state.lock().unwrap().tracked.insert(id.clone());
    }

    /// Forget a removed container: its positions leave the next checkpoint.
    pub fn untrack(&self, id: &ContainerId) {
        let mut state = self.state.lock().unwrap();
        state.tracked.remove(id);
        if let Ok(at) = state.search(id) {
            state.remove(at);
            state.dirty = true;
            self.changed.notify_one();
        }
    }

    /// Record where a container first seen under `first_sight = "now"` was opened, so
    /// that a restart before any of its lines is acknowledged opens it there again. A
    /// change the checkpoint task commits (at once if it is the first).
    pub fn record_first_sight(&self, id: &ContainerId, since: i64) {
        let mut state = self.state.lock().unwrap();
        if !state.tracked.contains(id) {
            return;
        }
        let at = match state.search(id) {
            Ok(at) => at,
            Err(at) => {
                state.insert(at, id, ContainerCheckpoint::default());
                at
            }
        };
        let entry = &mut state.positions[at];
        if entry.has_position() || entry.since == Some(since) {
            return;
        }
        entry.since = Some(since);
        state.dirty = true;
        self.changed.notify_one();
    }

    /// Keep only the containers for which `keep` says yes (after the first reconcile).
    pub fn retain(&self, mut keep: impl FnMut(&ContainerId) -> bool) {
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        state.tracked.retain(|id| keep(id));
        let kept: Vec<bool> = state.ids.iter().map(&mut keep).collect();
        if kept.contains(&false) {
            let mut flags = kept.iter().copied();
            state.positions.retain(|_| flags.next() == Some(true));
            let mut flags = kept.iter().copied();
            state.ids.retain(|_| flags.next() == Some(true));
            state.shared_ids = None;
            state.dirty = true;
            self.changed.notify_one();
        }
    }

    /// Record a batch the sink accepted (or rejected for good).
    pub fn acknowledge(&self, batch: &Batch) {
        let mut guard = self.state.lock().unwrap();
        let state = &mut *guard;
        let mut any = false;
        for stream in &batch.streams {
            let Some(last) = stream.lines.last() else { continue };
            let SourceId::Container { id, stream: std_stream } = &stream.source;
            let Position::Container(key) = last.position;
            // The greatest key of the batch's lines: above the last one only after the
            // timestamps stepped back (see `ContainerCheckpoint::stdout_high`).
            let high = stream.lines.iter().map(|line| line.position).max().map(|Position::Container(high)| high);
            let advance = |entry: &mut ContainerCheckpoint| {
                let (slot, high_slot) = match std_stream {
                    StdStream::Stdout => (&mut entry.stdout, &mut entry.stdout_high),
                    StdStream::Stderr => (&mut entry.stderr, &mut entry.stderr_high),
                };
                let advanced = slot.is_none_or(|acked| acked < key);
                let before = (*slot).max(*high_slot);
                if advanced {
                    *slot = Some(key);
                    // A position beats the first sight from now on.
                    entry.since = None;
                }
                // The high key is kept only while it is above the position.
                let greatest = before.max(high).max(*slot);
                let raised = greatest > before;
                *high_slot = greatest.filter(|greatest| Some(*greatest) > *slot);
                advanced || raised
            };
            // The id is cloned only for a container's first position. Only tracked
            // containers have positions, so a container with one needs no look-up in
            // `tracked` (callgrind: seed 85 443.3 M -> 440.4 M, seed 19 1,107.7 M -> 1,105.2 M).
            // The entry is found by its hint (see `Hints`): seed 2 350.11 M -> 349.16 M,
            // seed 3 397.73 M -> 396.77 M, seed 19 868.64 M -> 867.70 M.
            any |= match state.search(id) {
                Ok(at) => {
                    debug_assert!(state.tracked.contains(id), "positions are kept for tracked containers only");
                    advance(&mut state.positions[at])
                }
                Err(_) if !state.tracked.contains(id) => continue,
                Err(at) => {
                    let mut entry = ContainerCheckpoint::default();
                    let advanced = advance(&mut entry);
                    state.insert(at, id, entry);
                    advanced
                }
            };
        }
        if any {
            state.dirty = true;
            self.changed.notify_one();
        }
    }

    /// The whole checkpoint if anything changed since the last call (and mark it clean).
    pub fn take_dirty(&self) -> Option<Checkpoint> {
        let mut state = self.state.lock().unwrap();
        if !state.dirty {
            return None;
        }
        state.dirty = false;
        Some(state.snapshot())
    }

    /// Mark dirty again (a commit failed).
    pub fn mark_dirty(&self) {
        self.state.lock().unwrap().dirty = true;
        self.changed.notify_one();
    }

    pub fn snapshot(&self) -> Checkpoint {
        self.state.lock().unwrap().snapshot()
    }

    /// Completes when positions changed since the last wake-up.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
#[path = "positions_tests.rs"]
mod tests;
