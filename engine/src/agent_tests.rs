//! Unit tests of the agent's shutdown budget.

use std::time::Duration;

use super::commit_reserve;

#[test]
fn an_untimed_store_gets_a_quarter_of_the_deadline() {
    assert_eq!(commit_reserve(Duration::from_secs(10), Duration::ZERO), Duration::from_millis(2_500));
}

#[test]
fn a_slow_store_gets_its_slowest_commit() {
    // Seed 34: commits take 3 s; the drain must leave them that long.
    assert_eq!(commit_reserve(Duration::from_secs(10), Duration::from_secs(3)), Duration::from_secs(3));
}

#[test]
fn the_drain_keeps_half_the_deadline() {
    assert_eq!(commit_reserve(Duration::from_secs(10), Duration::from_secs(8)), Duration::from_secs(5));
}
