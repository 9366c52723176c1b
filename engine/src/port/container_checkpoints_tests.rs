//! The map API its callers use, and the serialised form of the `LiteMap` it replaced:
//! the texts below are what `LiteMap<ContainerId, ContainerCheckpoint>` wrote.

use super::*;
use crate::model::ResumeKey;
use crate::port::Checkpoint;

fn at(ts: i64) -> ContainerCheckpoint {
    ContainerCheckpoint { stdout: Some(ResumeKey { ts, seq: 0 }), ..Default::default() }
}

#[test]
fn container_checkpoints_are_a_map_ordered_by_id() {
    let mut containers = ContainerCheckpoints::new();
    assert_eq!(containers.insert(ContainerId::new("b"), at(1)), None);
    assert_eq!(containers.insert(ContainerId::new("a"), at(2)), None);
    assert_eq!(containers.insert(ContainerId::new("c"), at(3)), None);
    assert_eq!(containers.insert(ContainerId::new("b"), at(4)), Some(at(1)));
    let keys: Vec<&str> = containers.keys().map(ContainerId::as_str).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(containers.get(&ContainerId::new("b")), Some(&at(4)));
    assert!(containers.contains_key(&ContainerId::new("c")));
    assert_eq!(containers.remove(&ContainerId::new("a")), Some(at(2)));
    assert_eq!(containers.remove(&ContainerId::new("a")), None);
    assert_eq!(containers.get(&ContainerId::new("a")), None);
    containers.insert(ContainerId::new("0"), ContainerCheckpoint { since: Some(7), ..Default::default() });
    assert_eq!(containers[&ContainerId::new("0")].since, Some(7));
    assert_eq!(containers.len(), 3);
    containers.values_mut().for_each(|positions| positions.since = None);
    containers.retain(|id, positions| id.as_str() != "c" && positions.since.is_none());
    let entries: Vec<(&str, ContainerCheckpoint)> = containers.iter().map(|(id, p)| (id.as_str(), *p)).collect();
    assert_eq!(entries, [("0", ContainerCheckpoint::default()), ("b", at(4))]);
    assert_eq!(containers.values().count(), 2);
    containers.retain(|_, _| false);
    assert!(containers.is_empty());
    assert_eq!(containers, ContainerCheckpoints::new());
}

#[test]
fn copies_share_the_ids_and_compare_by_content() {
    let built: ContainerCheckpoints =
        [(ContainerId::new("a"), at(1)), (ContainerId::new("b"), at(2))].into_iter().collect();
    let copy = built.clone();
    assert!(Arc::ptr_eq(copy.ids(), built.ids()), "a copy shares the ids");
    let (ids, mut positions) = copy.into_parts();
    positions[1] = at(3);
    let moved = ContainerCheckpoints::from_parts(ids, positions);
    assert_ne!(moved, built);
    assert_eq!(moved.positions(), [at(1), at(3)]);
    let apart: ContainerCheckpoints =
        [(ContainerId::new("b"), at(2)), (ContainerId::new("a"), at(1))].into_iter().collect();
    assert!(!Arc::ptr_eq(apart.ids(), built.ids()));
    assert_eq!(apart, built, "equal ids in other allocations");
    assert_eq!(
        format!("{built:?}"),
        format!(
            "{:?}",
            [("a", at(1)), ("b", at(2))]
                .into_iter()
                .map(|(id, p)| (ContainerId::new(id), p))
                .collect::<std::collections::BTreeMap<_, _>>()
        )
    );
}

#[test]
#[should_panic(expected = "one position per id")]
fn parts_of_different_lengths_are_refused() {
    ContainerCheckpoints::from_parts(vec![ContainerId::new("a")].into(), Vec::new());
}

/// Built and read as a map: a later entry of an id wins, the text is a JSON object.
#[test]
fn collected_in_any_order_a_later_entry_wins() {
    let built: ContainerCheckpoints =
        [(ContainerId::new("b"), at(1)), (ContainerId::new("a"), at(2)), (ContainerId::new("b"), at(4))]
            .into_iter()
            .collect();
    let text = serde_json::to_string(&built).unwrap();
    assert_eq!(text, r#"{"a":{"stdout":{"ts":2,"seq":0}},"b":{"stdout":{"ts":4,"seq":0}}}"#);
    assert_eq!(serde_json::from_str::<ContainerCheckpoints>(&text).unwrap(), built);
}

/// The daemon's file must stay byte-identical: these texts were written by the
/// `LiteMap` this type replaced (compact and pretty), from the same checkpoints.
#[test]
fn written_as_the_litemap_wrote_it() {
    let key = |ts, seq| Some(ResumeKey { ts, seq });
    let mut checkpoint = Checkpoint::default();
    assert_eq!(serde_json::to_string(&checkpoint).unwrap(), r#"{"containers":[]}"#, "empty: a sequence");
    assert_eq!(serde_json::to_string_pretty(&checkpoint).unwrap(), "{\n  \"containers\": []\n}");
    let containers = &mut checkpoint.containers;
    containers.insert(
        ContainerId::new("f00d"),
        ContainerCheckpoint { stdout: key(5, 1), stderr: key(-3, 0), since: None, ..Default::default() },
    );
    containers.insert(
        ContainerId::new("abc"),
        ContainerCheckpoint { stdout: None, stderr: None, since: Some(100), ..Default::default() },
    );
    containers.insert(
        ContainerId::new("0123456789abcdef0123"),
        ContainerCheckpoint {
            stdout: key(1_700_000_000_123_456_789, u32::MAX),
            stderr: None,
            since: Some(-1),
            ..Default::default()
        },
    );
    let old = concat!(
        r#"{"containers":{"0123456789abcdef0123":{"stdout":{"ts":1700000000123456789,"seq":4294967295},"since":-1},"#,
        r#""abc":{"since":100},"f00d":{"stdout":{"ts":5,"seq":1},"stderr":{"ts":-3,"seq":0}}}}"#
    );
    assert_eq!(serde_json::to_string(&checkpoint).unwrap(), old);
    assert_eq!(serde_json::to_vec(&checkpoint).unwrap(), old.as_bytes());
    assert_eq!(serde_json::from_str::<Checkpoint>(old).unwrap(), checkpoint);
    let pretty = serde_json::to_string_pretty(&checkpoint).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pretty).unwrap(),
        serde_json::from_str::<serde_json::Value>(old).unwrap()
    );
    assert_eq!(serde_json::from_str::<Checkpoint>(&pretty).unwrap(), checkpoint);
}

/// Everything the `LiteMap` read: a map in any order (a later entry of an id wins), a
/// sequence of pairs, an empty map or sequence, no `containers` at all.
#[test]
fn read_as_the_litemap_read_it() {
    let read = |text: &str| serde_json::to_string(&serde_json::from_str::<Checkpoint>(text).unwrap()).unwrap();
    let since = |text: &str| format!(r#"{{"containers":{text}}}"#);
    assert_eq!(
        read(&since(r#"{"b":{"since":1},"a":{"since":2},"b":{"since":3}}"#)),
        since(r#"{"a":{"since":2},"b":{"since":3}}"#)
    );
    assert_eq!(read(&since(r#"[["b",{"since":1}],["a",{"since":2}]]"#)), since(r#"{"a":{"since":2},"b":{"since":1}}"#));
    assert_eq!(read(&since("{}")), since("[]"));
    assert_eq!(read(&since("[]")), since("[]"));
    assert_eq!(read("{}"), since("[]"));
    assert!(serde_json::from_str::<Checkpoint>(&since("3")).is_err());
    assert!(serde_json::from_str::<Checkpoint>(&since(r#"{"a":true}"#)).is_err());
}
