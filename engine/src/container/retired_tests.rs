//! When a run heard after a container's removal counts its tail unread (`Retired`).

use crate::container::retired::{Retired, TailOutcome, RETIRED_MAX};
use crate::model::ContainerId;

fn id(n: usize) -> ContainerId {
    ContainerId(format!("{n:064x}").into())
}

#[test]
fn a_run_heard_after_the_removal_of_a_container_believed_stopped_counts_once() {
    // The event after the supervisor's end.
    let mut retired = Retired::default();
    retired.retire(&id(1), false);
    assert!(!retired.joined(&id(1), TailOutcome::Read));
    assert!(retired.ran_late(&id(1)), "its later run's lines were deleted unread");
    assert!(!retired.ran_late(&id(1)), "counted once: a second event says nothing new");
    // The event before it.
    retired.retire(&id(2), false);
    assert!(!retired.ran_late(&id(2)));
    assert!(retired.joined(&id(2), TailOutcome::Read));
}

#[test]
fn no_count_when_the_supervisor_counted_read_on_or_was_not_collecting() {
    let mut retired = Retired::default();
    // The supervisor counted the tail itself.
    retired.retire(&id(1), false);
    assert!(!retired.joined(&id(1), TailOutcome::Counted));
    assert!(!retired.ran_late(&id(1)));
    // Believed running at the removal: the late `die` is the removal's own.
    retired.retire(&id(2), true);
    assert!(!retired.ran_late(&id(2)));
    assert!(!retired.joined(&id(2), TailOutcome::Read));
    // Not collected, or shutting down.
    retired.retire(&id(3), false);
    assert!(!retired.ran_late(&id(3)));
    assert!(!retired.joined(&id(3), TailOutcome::Other));
    // Never retired.
    assert!(!retired.contains(&id(4)));
    assert!(!retired.ran_late(&id(4)));
    assert!(!retired.joined(&id(4), TailOutcome::Read));
}

#[test]
fn only_the_last_retirements_are_remembered() {
    let mut retired = Retired::default();
    for n in 0..RETIRED_MAX + 10 {
        retired.retire(&id(n), false);
    }
    assert!(!retired.contains(&id(9)), "the oldest are forgotten");
    assert!(retired.contains(&id(10)));
    assert!(retired.contains(&id(RETIRED_MAX + 9)));
    // A second retirement of one container takes no second place.
    retired.retire(&id(RETIRED_MAX + 9), false);
    assert!(retired.contains(&id(10)));
}
