//! Tests of discovery's plumbing that need no runtime: the first-sight `since` (taken
//! and recorded), how often exited containers are rechecked, a Docker call that never
//! answers gives way to the shutdown signal, and the reconcile's in-order walks of the
//! known containers find what `get` finds and miss what `contains` misses.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use tokio::sync::watch;

use crate::container::discovery::{
    find_ahead, first_sight_since, not_in_sorted, or_shutdown, reconciles_per_recheck, recorded_first_sight,
};
use crate::rt::BoxFuture;

#[test]
fn exited_containers_are_rechecked_at_most_once_per_stall_timeout() {
    let secs = std::time::Duration::from_secs;
    // The defaults: every second reconcile.
    assert_eq!(reconciles_per_recheck(secs(120), secs(60)), 2);
    assert_eq!(reconciles_per_recheck(secs(60), secs(30)), 2);
    assert_eq!(reconciles_per_recheck(secs(300), secs(120)), 3);
    // Reconciles as rare as the watchdog or rarer: every one.
    assert_eq!(reconciles_per_recheck(secs(60), secs(60)), 1);
    assert_eq!(reconciles_per_recheck(secs(60), secs(300)), 1);
    assert_eq!(reconciles_per_recheck(secs(60), std::time::Duration::ZERO), u32::MAX);
}

#[test]
fn a_docker_call_that_never_answers_gives_way_to_shutdown() {
    let (stop, mut shutdown) = watch::channel(false);
    let never: BoxFuture<u32> = Box::pin(std::future::pending());
    let mut call = pin!(or_shutdown(&mut shutdown, never));
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    assert_eq!(call.as_mut().poll(&mut cx), Poll::Pending);
    stop.send(true).unwrap();
    assert_eq!(call.as_mut().poll(&mut cx), Poll::Ready(None));
}

#[test]
fn an_answer_that_comes_first_is_returned() {
    let (_stop, mut shutdown) = watch::channel(false);
    let answer: BoxFuture<u32> = Box::pin(std::future::ready(7));
    let mut call = pin!(or_shutdown(&mut shutdown, answer));
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    assert_eq!(call.as_mut().poll(&mut cx), Poll::Ready(Some(7)));
}

#[test]
fn first_sight_now_asks_for_since_skew_before_the_instant_seen() {
    // Seen at 100.3 s: stderr written at 100.5 s stamped 99.7 s (0.8 s lag) must pass
    // Docker's `since` filter, so `since` is floor(100.3 - 2) = 98, not 100.
    let skew = std::time::Duration::from_secs(2);
    assert_eq!(first_sight_since(100_300_000_000, skew), 98);
    assert_eq!(first_sight_since(100_300_000_000, std::time::Duration::ZERO), 100);
}

#[test]
fn a_recorded_first_sight_is_where_a_container_without_a_position_reopens() {
    let config = crate::container::MonitorConfig::default();
    let seen = crate::port::ContainerCheckpoint { since: Some(100), ..Default::default() };
    assert_eq!(recorded_first_sight(&config, &seen), Some(100));
    let key = crate::model::ResumeKey { ts: 101_000_000_000, seq: 0 };
    let acknowledged = crate::port::ContainerCheckpoint { stderr: Some(key), ..seen };
    assert_eq!(recorded_first_sight(&config, &acknowledged), None, "a position beats the first sight");
    assert_eq!(recorded_first_sight(&config, &Default::default()), None);
}

proptest! {
    /// Keys looked up in any order (sorted or not, present or not), with inserts between
    /// look-ups after which the walk restarts past the inserted key, as the reconcile
    /// does after an add: `find_ahead` answers what `get` answers.
    #[test]
    fn find_ahead_finds_what_get_finds(
        keys in proptest::collection::btree_set(0u16..200, 0..60),
        mut lookups in proptest::collection::vec((0u16..220, any::<bool>()), 0..80),
        sorted in any::<bool>(),
    ) {
        let mut map: BTreeMap<u16, u32> = keys.iter().map(|&key| (key, u32::from(key) * 3)).collect();
        if sorted {
            lookups.sort_unstable();
        }
        let mut ahead = map.range::<u16, _>(..).peekable();
        for &(key, insert) in &lookups {
            let found = find_ahead(&mut ahead, &map, &key).copied();
            prop_assert_eq!(found, map.get(&key).copied(), "key {}", key);
            if found.is_none() && insert {
                map.insert(key, 1);
                ahead = map.range((Bound::Excluded(key), Bound::Unbounded)).peekable();
            }
        }
    }
}

proptest! {
    /// `not_in_sorted` keeps exactly the keys a set of the sorted side does not hold, in
    /// order, whatever the two sides share (nothing, some, all; repeats on the sorted side).
    #[test]
    fn not_in_sorted_is_not_contains(
        keys in proptest::collection::btree_set(0u16..120, 0..60),
        mut listed in proptest::collection::vec(0u16..130, 0..70),
    ) {
        let set: std::collections::BTreeSet<u16> = listed.iter().copied().collect();
        listed.sort_unstable();
        let sorted: Vec<&u16> = listed.iter().collect();
        let walked: Vec<u16> = not_in_sorted(keys.iter(), &sorted).copied().collect();
        let expected: Vec<u16> = keys.iter().filter(|key| !set.contains(key)).copied().collect();
        prop_assert_eq!(walked, expected);
    }
}
