//! The line-level checks against a small world: each is shown to pass on what was
//! written and to fail on a broken delivery (a check that cannot fail proves nothing).

use std::sync::Arc;

use bytes::Bytes;
use engine::model::{Batch, BatchStream, ContainerId, Line, Position, ResumeKey, SourceId, StdStream};
use engine::port::{Checkpoint, ContainerCheckpoint};

use crate::check::completeness;
use crate::check::delivery::DeliveryChecker;
use crate::check::Invariant;
use crate::executor::Executor;
use crate::run::WALL_START;
use crate::world::docker::{line_content, Burst, RotationEffect, SimDocker};

const LINE_BYTES: u32 = 20;

fn world() -> (Executor, SimDocker, ContainerId) {
    let executor = Executor::new(1, WALL_START);
    let docker = SimDocker::new(executor.handle(), 1);
    let id = docker.create("app", "sim/app:latest", Default::default());
    docker.start(&id).unwrap();
    let burst = Burst { line_bytes: LINE_BYTES, ..Burst::lines(StdStream::Stdout, 10) };
    docker.emit(&id, burst).unwrap();
    (executor, docker, id)
}

/// A batch of the given lines of `id`'s stdout, each with content `content(seq)`.
fn batch(id: &ContainerId, seqs: &[u64], content: impl Fn(u64) -> Vec<u8>) -> Batch {
    let lines: Vec<Line> = seqs
        .iter()
        .map(|seq| Line {
            ts: WALL_START + *seq as i64,
            bytes: Bytes::from(content(*seq)),
            position: Position::Container(ResumeKey { ts: WALL_START + *seq as i64, seq: 0 }),
        })
        .collect();
    let bytes = lines.iter().map(|line| line.bytes.len()).sum();
    let count = lines.len();
    let source = SourceId::Container { id: id.clone(), stream: StdStream::Stdout };
    Batch { streams: vec![BatchStream { source, labels: Arc::default(), lines }], bytes, lines: count }
}

fn written(seq: u64) -> Vec<u8> {
    line_content(seq, LINE_BYTES)
}

#[test]
fn every_line_as_written_passes_and_is_complete() {
    let (_executor, docker, id) = world();
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&batch(&id, &(0..10).collect::<Vec<_>>(), written), false, None);
    assert_eq!(checker.first_violation, None);
    assert_eq!(checker.lines_delivered, 10);
    assert!(completeness::check(&docker, &checker).is_ok());
}

#[test]
fn a_line_with_other_content_is_caught() {
    let (_executor, docker, id) = world();
    let mut checker = DeliveryChecker::new(docker, 64 << 10);
    let mut wrong = written(3);
    *wrong.last_mut().unwrap() = b'y';
    checker.handle_delivery(
        &batch(&id, &[0, 1, 2, 3], |seq| if seq == 3 { wrong.clone() } else { written(seq) }),
        false,
        None,
    );
    let (invariant, detail) = checker.first_violation.expect("content is compared");
    assert_eq!(invariant, Invariant::NoLoss);
    assert!(detail.contains("content other than written"), "{detail}");
}

#[test]
fn a_missing_tail_is_caught_at_the_end_unless_the_world_deleted_it_unread() {
    let (_executor, docker, id) = world();
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&batch(&id, &[0, 1, 2, 3, 4], written), false, None);
    assert_eq!(checker.first_violation, None, "no later line arrived: the gap check cannot see it");
    let (invariant, detail) = completeness::check(&docker, &checker).expect_err("the tail is missing");
    assert_eq!(invariant, Invariant::NoLoss);
    assert!(detail.contains("line 5 of 10"), "{detail}");
    // Nobody had read the tail when `docker rm` deleted it: a named loss.
    docker.remove(&id).unwrap();
    let losses = completeness::check(&docker, &checker).expect("the removal is named");
    assert_eq!(losses.container_removed, 10, "nothing was ever handed to a reader");
}

#[test]
fn a_gap_is_allowed_only_over_lines_rotation_deleted_unread() {
    let (_executor, docker, id) = world();
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&batch(&id, &[7, 8, 9], written), false, None);
    assert!(checker.first_violation.is_some(), "lines 0-6 were neither delivered nor deleted");
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    docker.rotate_log(&id, 3, RotationEffect::Continue).unwrap();
    checker.handle_delivery(&batch(&id, &[7, 8, 9], written), false, None);
    assert_eq!(checker.first_violation, None);
    assert_eq!((checker.lines_excused, checker.lines_delivered), (7, 3));
    let losses = completeness::check(&docker, &checker).unwrap();
    assert_eq!(losses.json_file_rotation, 7);
}

/// Lines 0..96 numbered, then (a second later) 96..99 empty — the world writes the burst
/// starting at 96 empty, one in 97 — then 99..101 numbered. Returns each line's
/// timestamp as written.
fn world_with_empty_lines() -> (Executor, SimDocker, ContainerId, Vec<i64>) {
    let mut executor = Executor::new(1, WALL_START);
    let docker = SimDocker::new(executor.handle(), 1);
    let id = docker.create("app", "sim/app:latest", Default::default());
    docker.start(&id).unwrap();
    docker.emit(&id, Burst::lines(StdStream::Stdout, 96)).unwrap();
    executor.advance_for(std::time::Duration::from_secs(1));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    let micro = 1_000;
    let ts = (0..101)
        .map(|seq| if seq < 96 { WALL_START + seq * micro } else { WALL_START + 1_000_000_000 + (seq - 96) * micro })
        .collect();
    (executor, docker, id, ts)
}

/// A batch of `id`'s stdout lines `seqs` with the given timestamps, empty from 96 to 98.
fn batch_at(id: &ContainerId, lines: &[(u64, i64)]) -> Batch {
    let mut batch = batch(id, &[], written);
    let stream = &mut batch.streams[0];
    for &(seq, ts) in lines {
        let bytes = if (96..99).contains(&seq) {
            Bytes::new()
        } else {
            Bytes::from(line_content(seq, if seq < 96 { 2 } else { 3 }))
        };
        stream.lines.push(Line { ts, bytes, position: Position::Container(ResumeKey { ts, seq: 0 }) });
    }
    batch.lines = lines.len();
    batch
}

#[test]
fn empty_lines_are_named_by_their_timestamps() {
    let (_executor, docker, id, ts) = world_with_empty_lines();
    let all: Vec<(u64, i64)> = (0..101).map(|seq| (seq, ts[seq as usize])).collect();
    let check = |lines: &[(u64, i64)]| {
        let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
        checker.handle_delivery(&batch_at(&id, lines), false, None);
        checker
    };
    let checker = check(&all);
    assert_eq!(checker.first_violation, None);
    assert_eq!(checker.lines_delivered, 101);
    assert!(completeness::check(&docker, &checker).is_ok());
    // An empty line dropped: the next one is not the line expected.
    let dropped: Vec<_> = all.iter().copied().filter(|(seq, _)| *seq != 97).collect();
    let (invariant, detail) = check(&dropped).first_violation.expect("a dropped empty line is a loss");
    assert_eq!(invariant, Invariant::NoLoss);
    assert!(detail.contains("line 98 arrived but line 97 never did"), "{detail}");
    // An empty line delivered twice: a duplicate of the same line, not the next one.
    let twice: Vec<_> = all[..98].iter().chain(&all[97..]).copied().collect();
    let (invariant, detail) = check(&twice).first_violation.expect("an empty duplicate is caught");
    assert_eq!(invariant, Invariant::NoDuplicates);
    assert!(detail.contains("line 97 delivered again"), "{detail}");
    // An empty line with a timestamp the world gave no empty line.
    let mut moved = all.clone();
    moved[97].1 += 1;
    let (invariant, detail) = check(&moved).first_violation.expect("a restamped empty line is caught");
    assert_eq!(invariant, Invariant::NoLoss);
    assert!(detail.contains("no empty line was written at its timestamp"), "{detail}");
    // A numbered line shipped empty at its own timestamp names no empty line either.
    let mut emptied = batch_at(&id, &all);
    emptied.streams[0].lines[95].bytes = Bytes::new();
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&emptied, false, None);
    assert!(checker.first_violation.expect("an emptied line is caught").1.contains("no empty line"));
}

/// A line a json-file rotation cut between its 16 KiB entries: what the rotation kept
/// arrives as a line of its own (Docker serves it; no reader can tell it from a whole
/// line), and the check takes exactly that in the cut line's place — and nothing else:
/// other bytes, the same bytes out of place, or the remains of a line the rotation did
/// not delete unread (a reader had it before) all fail.
#[test]
fn the_remains_of_a_line_a_rotation_cut_pass_only_as_kept_in_place_and_unread() {
    const GIANT: usize = 40_000;
    const ENTRY: usize = 16 * 1024;
    let giant: Vec<u8> = (0..GIANT).map(|at| b'a' + (at % 26) as u8).collect();
    let remains = |id: &ContainerId, seq: u64, bytes: &[u8]| {
        let bytes = bytes.to_vec();
        batch(id, &[seq], move |_| bytes.clone())
    };
    // Lines 0..9, then line 10 of three entries; the rotation keeps its last two.
    let cut_world = || {
        let (executor, docker, id) = world();
        assert_eq!(docker.emit_line(&id, StdStream::Stdout, &giant).unwrap(), 10);
        (executor, docker, id)
    };
    let (_executor, docker, id) = cut_world();
    docker.rotate_log(&id, 2, RotationEffect::Continue).unwrap();
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&remains(&id, 10, &giant[ENTRY..]), false, None);
    assert_eq!(checker.first_violation, None);
    assert_eq!((checker.lines_excused, checker.lines_delivered), (11, 0), "the cut line is the rotation's loss");
    assert_eq!(completeness::check(&docker, &checker).unwrap().json_file_rotation, 11);
    // One byte other than kept.
    let mut changed = giant[ENTRY..].to_vec();
    changed[100] ^= 1;
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&remains(&id, 10, &changed), false, None);
    assert_eq!(checker.first_violation.as_ref().map(|(invariant, _)| *invariant), Some(Invariant::NoLoss));
    // The kept bytes, but again after the cut line's place (no crash window covers it).
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&remains(&id, 10, &giant[ENTRY..]), false, None);
    checker.handle_delivery(&remains(&id, 10, &giant[ENTRY..]), false, None);
    assert_eq!(checker.first_violation.as_ref().map(|(invariant, _)| *invariant), Some(Invariant::NoDuplicates));
    // A reader had the whole log before the rotation: nothing of line 10 was lost, so its
    // remains as a line are a line cut short on the way.
    let (mut executor, docker, id) = cut_world();
    let options = engine::port::LogOptions { follow: false, since_secs: 0, tail: None };
    let (reader_docker, reader_id) = (docker.clone(), id.clone());
    executor
        .block_on(async move {
            use engine::port::ContainerEngine;
            use futures::StreamExt;
            let mut stream = reader_docker.logs(&reader_id, options).await.unwrap();
            while stream.next().await.is_some() {}
        })
        .unwrap();
    docker.rotate_log(&id, 2, RotationEffect::Continue).unwrap();
    let mut checker = DeliveryChecker::new(docker.clone(), 64 << 10);
    checker.handle_delivery(&batch(&id, &(0..10).collect::<Vec<_>>(), written), false, None);
    checker.handle_delivery(&remains(&id, 10, &giant[ENTRY..]), false, None);
    let (invariant, detail) = checker.first_violation.expect("remains of a line nobody lost");
    assert_eq!(invariant, Invariant::NoLoss);
    assert!(detail.contains("deleted nothing of it unread"), "{detail}");
}

/// A checkpoint naming the given stdout position of `id`.
fn checkpoint_at(id: &ContainerId, stdout: ResumeKey) -> Checkpoint {
    let positions = ContainerCheckpoint { stdout: Some(stdout), ..ContainerCheckpoint::default() };
    Checkpoint { containers: [(id.clone(), positions)].into_iter().collect() }
}

#[test]
fn a_commit_may_name_the_key_of_a_line_delivered_again_and_no_key_past_what_loki_stored() {
    // After a host clock step back a line can reach Loki a second time (by its sequence
    // number) with a key greater than any before: seed 65174's restart shipped lines a
    // `tail` first open had left out, stamped after the lines it served. Loki stored it,
    // and the agent's next commit names its key.
    let (_executor, docker, id) = world();
    let mut checker = DeliveryChecker::new(docker, 64 << 10);
    checker.handle_delivery(&batch(&id, &(0..10).collect::<Vec<_>>(), written), false, None);
    checker.handle_crash(&checkpoint_at(&id, ResumeKey { ts: WALL_START + 4, seq: 0 }));
    let later = ResumeKey { ts: WALL_START + 100, seq: 0 };
    let mut again = batch(&id, &[6], written);
    again.streams[0].lines[0].position = Position::Container(later);
    checker.handle_delivery(&again, false, None);
    assert_eq!(checker.first_violation, None, "a duplicate inside the crash window");
    checker.handle_commit(&checkpoint_at(&id, later));
    assert_eq!(checker.first_violation, None, "Loki stored the line at that key");
    checker.handle_commit(&checkpoint_at(&id, ResumeKey { ts: WALL_START + 101, seq: 0 }));
    let (invariant, detail) = checker.first_violation.expect("a commit past every stored key");
    assert_eq!(invariant, Invariant::NoLoss);
    assert!(detail.contains("but Loki had only up to"), "{detail}");
}
