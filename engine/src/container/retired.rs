//! Containers discovery retired (a `destroy`, or a list without them), remembered for
//! the events about them that come late.
//!
//! Docker's events can reach the agent delayed past later ones (the world's event
//! faults: held back, duplicated, out of order). A `start`, `restart`, `die` or `stop`
//! heard after the container's `destroy` says it ran again before the removal, unseen:
//! if discovery believed it not running at the removal, its supervisor finished
//! believing the log read to its end after the last stop it knew of, while the lines
//! of that later run were deleted unread. Such a container owes one
//! `container_tails_unread_total`, counted here unless its supervisor counted one (the
//! world's seed 38278: a container stopped at 3,255.9 s, its tail read; its `start` at
//! 3,453.3 s held back until after its `destroy` at 3,532.9 s, with three lines written
//! between; the agent counted nothing).
//!
//! Sans-IO: discovery tells it of each retirement, each supervisor's end
//! ([`TailOutcome`]) and each event about an id it no longer knows; it answers when to
//! count. It remembers the last [`RETIRED_MAX`] retirements (a bound on memory: an
//! event held back past a thousand later removals is not looked for).

use std::collections::{BTreeMap, VecDeque};

use crate::model::ContainerId;

/// How many retired containers are remembered (the id is shared: a few dozen bytes each).
pub const RETIRED_MAX: usize = 1024;

/// How a supervisor ended, as its task's output.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TailOutcome {
    /// Finished (the container removed) believing its log read to the end: nothing counted.
    Read,
    /// Finished and counted its tail unread.
    Counted,
    /// Ended otherwise: the container was not collected, or the agent is shutting down.
    Other,
}

#[derive(Debug)]
struct Entry {
    /// Discovery believed the container running when it retired it.
    believed_running: bool,
    /// The supervisor's end, once joined.
    outcome: Option<TailOutcome>,
    /// An event after the retirement said it ran unseen.
    ran_late: bool,
}

#[derive(Debug, Default)]
pub struct Retired {
    entries: BTreeMap<ContainerId, Entry>,
    order: VecDeque<ContainerId>,
}

impl Retired {
    /// Discovery retired `id`, believing it running or not.
    pub fn retire(&mut self, id: &ContainerId, believed_running: bool) {
        let entry = Entry { believed_running, outcome: None, ran_late: false };
        if self.entries.insert(id.clone(), entry).is_some() {
            return; // Retired again (listed again after its removal, by a list that raced it).
        }
        if self.order.len() == RETIRED_MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
        self.order.push_back(id.clone());
    }

    /// Whether `id` is a container retired (and still remembered).
    pub fn contains(&self, id: &ContainerId) -> bool {
        self.entries.contains_key(id)
    }

    /// The supervisor of `id` ended with `outcome`. True: count its tail unread now (a
    /// late event said it ran unseen, and the supervisor believed its tail read).
    pub fn joined(&mut self, id: &ContainerId, outcome: TailOutcome) -> bool {
        let Some(entry) = self.entries.get_mut(id) else { return false };
        entry.outcome = Some(outcome);
        Self::settle(entry)
    }

    /// An event of a run (`start`, `restart`, `die`, `stop`) about `id`, heard after
    /// its retirement. True: count its tail unread now.
    pub fn ran_late(&mut self, id: &ContainerId) -> bool {
        let Some(entry) = self.entries.get_mut(id) else { return false };
        if entry.believed_running {
            // Its supervisor read on to the end of the log (or counted): the event is
            // the removal's own `die`, held back, or says nothing new.
            return false;
        }
        entry.ran_late = true;
        Self::settle(entry)
    }

    /// Count once, when both the late run and a supervisor that believed its tail read
    /// are known.
    fn settle(entry: &mut Entry) -> bool {
        if entry.ran_late && entry.outcome == Some(TailOutcome::Read) {
            entry.outcome = Some(TailOutcome::Counted);
            return true;
        }
        false
    }
}
