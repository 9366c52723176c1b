//! A first sight under "now" is recorded (and committed) until the container has a
//! position, and never over one.

use bytes::Bytes;

use super::*;
use crate::model::{BatchStream, Line, ResumeKey};

fn batch_of(id: &ContainerId, ts: i64) -> Batch {
    let key = ResumeKey { ts, seq: 0 };
    let line = Line { ts, bytes: Bytes::from_static(b"x"), position: Position::Container(key) };
    let source = SourceId::Container { id: id.clone(), stream: StdStream::Stdout };
    Batch { streams: vec![BatchStream { source, labels: Default::default(), lines: vec![line] }], bytes: 1, lines: 1 }
}

#[test]
fn a_first_sight_is_committed_until_a_position_replaces_it() {
    let acks = Acks::default();
    let id = ContainerId::new("abc");
    acks.record_first_sight(&id, 100);
    assert_eq!(acks.take_dirty(), None, "an untracked container is not recorded");
    acks.track(&id);
    acks.record_first_sight(&id, 100);
    let committed = acks.take_dirty().expect("a first sight is a change to commit");
    assert_eq!(committed.containers[&id], ContainerCheckpoint { since: Some(100), ..Default::default() });
    acks.record_first_sight(&id, 100);
    assert_eq!(acks.take_dirty(), None, "the same first sight again changes nothing");
    acks.acknowledge(&batch_of(&id, 101_000_000_000));
    let committed = acks.take_dirty().unwrap();
    assert_eq!(committed.containers[&id].since, None, "a position beats the first sight");
    assert!(committed.containers[&id].has_position());
    acks.record_first_sight(&id, 200);
    assert_eq!(acks.take_dirty(), None, "never recorded over a position");
}

#[test]
fn a_loaded_first_sight_is_kept() {
    let id = ContainerId::new("abc");
    let mut checkpoint = Checkpoint::default();
    checkpoint.containers.insert(id.clone(), ContainerCheckpoint { since: Some(100), ..Default::default() });
    let acks = Acks::from_checkpoint(checkpoint.clone());
    assert_eq!(acks.get(&id).since, Some(100));
    assert_eq!(acks.snapshot(), checkpoint);
}

/// Acknowledgements find their container by a hint of where it was last found: entries
/// that moved (a container removed or added before them) are still found, by the search.
#[test]
fn acknowledgements_land_on_their_container_while_entries_move() {
    let acks = Acks::default();
    let ids: Vec<ContainerId> = (0..5).map(|at| ContainerId::new(format!("{at:064}"))).collect();
    ids.iter().for_each(|id| acks.track(id));
    for (at, id) in ids.iter().enumerate() {
        acks.acknowledge(&batch_of(id, 10 + at as i64));
    }
    acks.untrack(&ids[1]);
    let late = ContainerId::new(format!("{:064}", 0));
    assert_eq!(late, ids[0], "an equal id in another allocation");
    acks.acknowledge(&batch_of(&late, 100));
    for (at, id) in ids.iter().enumerate().skip(2) {
        acks.acknowledge(&batch_of(id, 20 + at as i64));
    }
    let position = |id: &ContainerId| acks.get(id).stdout.map(|key| key.ts);
    assert_eq!(position(&ids[0]), Some(100));
    assert_eq!(position(&ids[1]), None, "untracked");
    for (at, id) in ids.iter().enumerate().skip(2) {
        assert_eq!(position(id), Some(20 + at as i64));
    }
    let taken = acks.take_dirty().unwrap();
    assert_eq!(taken.containers.len(), 4);
    assert_eq!(acks.snapshot(), taken);
}

/// Snapshots share their ids while the set of containers stays the same (one reference
/// count a commit, not one per container); a container added or removed gives new ones.
#[test]
fn snapshots_share_their_ids_until_the_set_of_containers_changes() {
    let acks = Acks::default();
    let ids: Vec<ContainerId> = (0..3).map(|at| ContainerId::new(format!("{at:064}"))).collect();
    ids.iter().for_each(|id| acks.track(id));
    acks.acknowledge(&batch_of(&ids[0], 10));
    acks.acknowledge(&batch_of(&ids[2], 10));
    let first = acks.take_dirty().unwrap();
    acks.acknowledge(&batch_of(&ids[2], 20));
    let second = acks.take_dirty().unwrap();
    assert!(Arc::ptr_eq(first.containers.ids(), second.containers.ids()), "the same containers: shared");
    assert_eq!(second.containers[&ids[2]].stdout.map(|key| key.ts), Some(20));
    assert_eq!(first.containers[&ids[2]].stdout.map(|key| key.ts), Some(10), "positions are copies");
    acks.acknowledge(&batch_of(&ids[1], 30));
    let third = acks.take_dirty().unwrap();
    assert!(!Arc::ptr_eq(second.containers.ids(), third.containers.ids()), "a container added");
    assert_eq!(third.containers.keys().collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>());
    assert!(Arc::ptr_eq(third.containers.ids(), acks.snapshot().containers.ids()));
    acks.untrack(&ids[0]);
    let fourth = acks.take_dirty().unwrap();
    assert_eq!(fourth.containers.keys().collect::<Vec<_>>(), ids[1..].iter().collect::<Vec<_>>());
    acks.retain(|id| *id != ids[1]);
    let fifth = acks.take_dirty().unwrap();
    assert_eq!(fifth.containers.keys().collect::<Vec<_>>(), [&ids[2]]);
    assert_eq!(fifth.containers[&ids[2]].stdout.map(|key| key.ts), Some(20));

    // A loaded checkpoint's ids are shared by the first snapshot.
    let loaded = Acks::from_checkpoint(fifth.clone());
    assert!(Arc::ptr_eq(loaded.snapshot().containers.ids(), fifth.containers.ids()));
}

/// Seed 117,342: a batch whose last line was stamped after a clock step back, before lines
/// acknowledged with it, keeps the greatest key apart from the position, until the
/// position passes it.
#[test]
fn an_acknowledgement_keeps_the_greatest_key_above_the_position() {
    let acks = Acks::default();
    let id = ContainerId::new("abc");
    acks.track(&id);
    let line =
        |ts: i64| Line { ts, bytes: Bytes::from_static(b"x"), position: Position::Container(ResumeKey { ts, seq: 0 }) };
    let source = SourceId::Container { id: id.clone(), stream: StdStream::Stdout };
    let lines = vec![line(105), line(106), line(98)];
    let stepped =
        Batch { streams: vec![BatchStream { source, labels: Default::default(), lines }], bytes: 3, lines: 3 };
    acks.acknowledge(&stepped);
    let committed = acks.take_dirty().unwrap();
    let entry = committed.containers[&id];
    assert_eq!(entry.stdout, Some(ResumeKey { ts: 98, seq: 0 }));
    assert_eq!(entry.stdout_high, Some(ResumeKey { ts: 106, seq: 0 }));
    assert_eq!(entry.high()[0], Some(ResumeKey { ts: 106, seq: 0 }));
    // A line below the high key moves the position only.
    acks.acknowledge(&batch_of(&id, 99));
    let entry = acks.take_dirty().unwrap().containers[&id];
    assert_eq!(
        (entry.stdout, entry.stdout_high),
        (Some(ResumeKey { ts: 99, seq: 0 }), Some(ResumeKey { ts: 106, seq: 0 }))
    );
    // Past it: the high key is the position again, not kept apart.
    acks.acknowledge(&batch_of(&id, 200));
    let entry = acks.take_dirty().unwrap().containers[&id];
    assert_eq!((entry.stdout, entry.stdout_high), (Some(ResumeKey { ts: 200, seq: 0 }), None));
}
