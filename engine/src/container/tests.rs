//! Tests of the sans-IO reader: resume keys, deduplication across reopen, runs.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::container::reader::{LogReader, ReadStats, Run};
use crate::model::{Position, ResumeKey, StdStream};
use crate::parse::frame::encode_frame;
use crate::parse::timestamp::format_rfc3339_nanos;
use crate::port::ContainerCheckpoint;

const SEC: i64 = 1_000_000_000;

/// One Docker log entry: (stream, timestamp, content including '\n' if it ends a line).
type Entry = (StdStream, i64, Vec<u8>);

fn render(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (stream, ts, content) in entries {
        let mut payload = Vec::new();
        format_rfc3339_nanos(*ts, &mut payload);
        payload.push(b' ');
        payload.extend_from_slice(content);
        encode_frame(*stream, &payload, &mut out);
    }
    out
}

/// What Docker returns for `since` (whole seconds; 0 = everything).
fn since_filter(entries: &[Entry], since_secs: i64) -> Vec<Entry> {
    entries.iter().filter(|(_, ts, _)| since_secs == 0 || *ts >= since_secs * SEC).cloned().collect()
}

fn reader() -> LogReader {
    LogReader::new(1024, 1 << 20, 64 << 10, ContainerCheckpoint::default())
}

fn feed(reader: &mut LogReader, bytes: &[u8], split: usize) -> Vec<Run> {
    feed_counting(reader, bytes, split).0
}

fn feed_counting(reader: &mut LogReader, bytes: &[u8], split: usize) -> (Vec<Run>, ReadStats) {
    let mut runs = Vec::new();
    let mut stats = ReadStats::default();
    for piece in bytes.chunks(split.max(1)) {
        reader.handle_chunk(Bytes::copy_from_slice(piece), &mut runs, &mut stats).unwrap();
    }
    (runs, stats)
}

fn texts(runs: &[Run], stream: StdStream) -> Vec<String> {
    runs.iter()
        .filter(|run| run.stream == stream)
        .flat_map(|run| run.lines.iter().map(|line| String::from_utf8(line.bytes.to_vec()).unwrap()))
        .collect()
}

#[test]
fn keys_count_lines_sharing_a_timestamp_per_stream() {
    let entries: Vec<Entry> = vec![
        (StdStream::Stdout, 5 * SEC, b"a\n".to_vec()),
        (StdStream::Stdout, 5 * SEC, b"b\n".to_vec()),
        (StdStream::Stderr, 5 * SEC, b"c\n".to_vec()),
        (StdStream::Stdout, 6 * SEC, b"d\n".to_vec()),
    ];
    let runs = feed(&mut reader(), &render(&entries), 7);
    let keys: Vec<(StdStream, ResumeKey)> = runs
        .iter()
        .flat_map(|run| {
            run.lines.iter().map(move |line| {
                let Position::Container(key) = line.position;
                (run.stream, key)
            })
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (StdStream::Stdout, ResumeKey { ts: 5 * SEC, seq: 0 }),
            (StdStream::Stdout, ResumeKey { ts: 5 * SEC, seq: 1 }),
            (StdStream::Stderr, ResumeKey { ts: 5 * SEC, seq: 0 }),
            (StdStream::Stdout, ResumeKey { ts: 6 * SEC, seq: 0 }),
        ]
    );
    // Runs follow log order: stdout, stderr, stdout.
    assert_eq!(
        runs.iter().map(|run| run.stream).collect::<Vec<_>>(),
        [StdStream::Stdout, StdStream::Stderr, StdStream::Stdout]
    );
}

#[test]
fn a_replay_skips_the_same_duplicates_whole_or_in_pieces() {
    // Whole frames in a chunk take the reader's skip-in-place path, pieces the general
    // one: the same lines, keys and counts either way.
    let entries: Vec<Entry> = vec![
        (StdStream::Stdout, 10 * SEC, b"out-1\n".to_vec()),
        (StdStream::Stdout, 10 * SEC, b"out-2\n".to_vec()),
        (StdStream::Stderr, 10 * SEC + 5, b"err-1\n".to_vec()),
        (StdStream::Stdout, 10 * SEC + 9, b"out-3\n".to_vec()),
        (StdStream::Stderr, 10 * SEC + 9, b"err-2\n".to_vec()),
        (StdStream::Stdout, 10 * SEC + 9, b"out-4\n".to_vec()),
        (StdStream::Stdout, 11 * SEC, b"out-5\n".to_vec()),
    ];
    let replay = |split: usize| {
        let mut reader = reader();
        let _ = feed(&mut reader, &render(&entries[..4]), split);
        reader.reopen();
        let (mut runs, mut stats) = (Vec::new(), ReadStats::default());
        for piece in render(&entries).chunks(split) {
            reader.handle_chunk(Bytes::copy_from_slice(piece), &mut runs, &mut stats).unwrap();
        }
        let lines: Vec<(String, Position)> = runs
            .iter()
            .flat_map(|run| {
                run.lines.iter().map(|line| (String::from_utf8(line.bytes.to_vec()).unwrap(), line.position))
            })
            .collect();
        (lines, stats, reader.queued(StdStream::Stdout), reader.queued(StdStream::Stderr))
    };
    let whole = replay(1 << 20);
    assert_eq!(whole.1.duplicates, 4);
    assert_eq!(whole.0.iter().map(|(text, _)| text.as_str()).collect::<Vec<_>>(), ["err-2", "out-4", "out-5"]);
    for split in [1, 5, 13, 40] {
        assert_eq!(replay(split), whole, "split {split}");
    }
}

#[test]
fn reopening_inside_a_second_skips_what_was_queued_even_when_stderr_runs_behind() {
    // Vector #19105: stderr timestamps behind stdout's in arrival order.
    let entries: Vec<Entry> = vec![
        (StdStream::Stdout, 10 * SEC + 500, b"out-1\n".to_vec()),
        (StdStream::Stderr, 10 * SEC + 100, b"err-1\n".to_vec()),
        (StdStream::Stdout, 10 * SEC + 900, b"out-2\n".to_vec()),
        (StdStream::Stderr, 10 * SEC + 800, b"err-2\n".to_vec()),
    ];
    let mut reader = reader();
    let first = feed(&mut reader, &render(&entries[..2]), 1000);
    assert_eq!(texts(&first, StdStream::Stdout), ["out-1"]);
    assert_eq!(texts(&first, StdStream::Stderr), ["err-1"]);
    let since = reader.since_secs(Duration::from_secs(2)).unwrap();
    assert_eq!(since, 8);
    reader.reopen();
    let second = feed(&mut reader, &render(&since_filter(&entries, since)), 3);
    assert_eq!(texts(&second, StdStream::Stdout), ["out-2"]);
    assert_eq!(texts(&second, StdStream::Stderr), ["err-2"]);
}

#[test]
fn a_split_line_is_merged_and_a_reopen_mid_line_reads_it_whole() {
    let entries: Vec<Entry> = vec![
        (StdStream::Stdout, 20 * SEC, b"short\n".to_vec()),
        (StdStream::Stdout, 21 * SEC, b"part-one,".to_vec()),
        (StdStream::Stdout, 21 * SEC + 1, b"part-two\n".to_vec()),
    ];
    let bytes = render(&entries);
    let mut reader = reader();
    // Stop after the first partial: the partial must not be emitted.
    let cut = render(&entries[..2]).len();
    let first = feed(&mut reader, &bytes[..cut], 5);
    assert_eq!(texts(&first, StdStream::Stdout), ["short"]);
    reader.reopen();
    let since = reader.since_secs(Duration::ZERO).unwrap();
    let second = feed(&mut reader, &render(&since_filter(&entries, since)), 5);
    assert_eq!(texts(&second, StdStream::Stdout), ["part-one,part-two"]);
}

#[test]
fn a_restart_resumes_after_the_acknowledged_keys() {
    let entries: Vec<Entry> =
        (0..6).map(|n| (StdStream::Stdout, 30 * SEC + n / 2, format!("line-{n}\n").into_bytes())).collect();
    let acknowledged = ContainerCheckpoint {
        stdout: Some(ResumeKey { ts: 30 * SEC + 1, seq: 0 }),
        stderr: None,
        since: None,
        ..Default::default()
    };
    let mut reader = LogReader::new(1024, 1 << 20, 64 << 10, acknowledged);
    let since = reader.since_secs(Duration::from_secs(1)).unwrap();
    let runs = feed(&mut reader, &render(&since_filter(&entries, since)), 9);
    assert_eq!(texts(&runs, StdStream::Stdout), ["line-3", "line-4", "line-5"]);
}

#[test]
fn live_lines_whose_timestamps_step_back_are_delivered_not_skipped() {
    // A host clock step back in the middle of a live stream, on both streams.
    let entries: Vec<Entry> = vec![
        (StdStream::Stdout, 50 * SEC, b"out-1\n".to_vec()),
        (StdStream::Stderr, 50 * SEC, b"err-1\n".to_vec()),
        (StdStream::Stdout, 20 * SEC, b"out-2\n".to_vec()),
        (StdStream::Stdout, 20 * SEC, b"out-3\n".to_vec()),
        (StdStream::Stderr, 10 * SEC, b"err-2\n".to_vec()),
    ];
    for split in [1, 7, 1 << 20] {
        let runs = feed(&mut reader(), &render(&entries), split);
        assert_eq!(texts(&runs, StdStream::Stdout), ["out-1", "out-2", "out-3"], "split {split}");
        assert_eq!(texts(&runs, StdStream::Stderr), ["err-1", "err-2"], "split {split}");
    }
    // After a reopen: the replay is skipped, the first line past the resume key closes
    // the window, and a later step back is delivered.
    let mut reader = reader();
    let _ = feed(&mut reader, &render(&entries[..1]), 1 << 20);
    reader.reopen();
    let replay: Vec<Entry> = vec![
        (StdStream::Stdout, 50 * SEC, b"out-1\n".to_vec()),
        (StdStream::Stdout, 51 * SEC, b"out-4\n".to_vec()),
        (StdStream::Stdout, 49 * SEC, b"out-5\n".to_vec()),
    ];
    let mut runs = Vec::new();
    let mut stats = ReadStats::default();
    reader.handle_chunk(Bytes::from(render(&replay)), &mut runs, &mut stats).unwrap();
    assert_eq!(texts(&runs, StdStream::Stdout), ["out-4", "out-5"]);
    assert_eq!(stats.duplicates, 1);
}

#[test]
fn a_replay_closes_at_the_resume_line_so_lines_stamped_before_it_after_a_clock_step_are_delivered() {
    // Read up to out-2 (50 s); the host clock then steps back 10 s and out-3, out-4 are
    // written stamped 40–41 s, after `since` (40 s) but before the resume key. The
    // reopen's replay serves out-1, out-2 (duplicates), then out-3, out-4: new lines.
    let before: Vec<Entry> =
        vec![(StdStream::Stdout, 45 * SEC, b"out-1\n".to_vec()), (StdStream::Stdout, 50 * SEC, b"out-2\n".to_vec())];
    let replay: Vec<Entry> = vec![
        (StdStream::Stdout, 45 * SEC, b"out-1\n".to_vec()),
        (StdStream::Stdout, 50 * SEC, b"out-2\n".to_vec()),
        (StdStream::Stdout, 40 * SEC, b"out-3\n".to_vec()),
        (StdStream::Stdout, 41 * SEC, b"out-4\n".to_vec()),
    ];
    for split in [1, 7, 1 << 20] {
        let mut reader = reader();
        let _ = feed(&mut reader, &render(&before), 1 << 20);
        reader.reopen();
        reader.expect_resume_position(40);
        let (runs, stats) = feed_counting(&mut reader, &render(&replay), split);
        assert_eq!(texts(&runs, StdStream::Stdout), ["out-3", "out-4"], "split {split}");
        assert_eq!((stats.duplicates, stats.gaps), (2, 0), "split {split}");
    }
}

#[test]
fn a_replay_after_a_clock_step_skips_the_lines_stamped_after_the_resume_key_that_came_before_it() {
    // Live: l-1, l-2 at 100–101 s, the clock steps back, p-1, p-2 at 75–76 s: all
    // queued; the resume key is p-2's (76 s). The reopen's `since` (75 s) replays l-1,
    // l-2 (stamped after the resume key, queued before it), p-1, p-2, then p-3 is new.
    let live: Vec<Entry> = vec![
        (StdStream::Stdout, 100 * SEC, b"l-1\n".to_vec()),
        (StdStream::Stdout, 101 * SEC, b"l-2\n".to_vec()),
        (StdStream::Stdout, 75 * SEC, b"p-1\n".to_vec()),
        (StdStream::Stdout, 76 * SEC, b"p-2\n".to_vec()),
    ];
    let mut replay = live.clone();
    replay.push((StdStream::Stdout, 77 * SEC, b"p-3\n".to_vec()));
    for split in [1, 7, 1 << 20] {
        let mut reader = reader();
        let runs = feed(&mut reader, &render(&live), 1 << 20);
        assert_eq!(texts(&runs, StdStream::Stdout), ["l-1", "l-2", "p-1", "p-2"]);
        reader.reopen();
        reader.expect_resume_position(75);
        let (runs, stats) = feed_counting(&mut reader, &render(&replay), split);
        assert_eq!(texts(&runs, StdStream::Stdout), ["p-3"], "split {split}");
        assert_eq!((stats.duplicates, stats.gaps), (4, 0), "split {split}");
    }
    // A `since` past the resume line (set by the other stream): the replay cannot show
    // it, so l-1, l-2 cannot be told from new lines: delivered again, never lost.
    let mut reader = reader();
    let _ = feed(&mut reader, &render(&live), 1 << 20);
    reader.reopen();
    reader.expect_resume_position(90);
    let served: Vec<Entry> = vec![live[0].clone(), live[1].clone(), (StdStream::Stdout, 95 * SEC, b"p-3\n".to_vec())];
    let runs = feed(&mut reader, &render(&served), 1 << 20);
    assert_eq!(texts(&runs, StdStream::Stdout), ["l-1", "l-2", "p-3"]);
}

#[test]
fn a_replay_that_lost_the_resume_position_counts_a_gap() {
    let entries: Vec<Entry> =
        (0..6).map(|n| (StdStream::Stdout, (40 + n) * SEC, format!("line-{n}\n").into_bytes())).collect();
    let replay = |served: &[Entry], since: i64| {
        let mut reader = reader();
        let _ = feed(&mut reader, &render(&entries[..3]), 1 << 20); // resume key: 42 s
        reader.reopen();
        reader.expect_resume_position(since);
        let (mut runs, mut stats) = (Vec::new(), ReadStats::default());
        reader.handle_chunk(Bytes::from(render(served)), &mut runs, &mut stats).unwrap();
        (texts(&runs, StdStream::Stdout), stats.gaps)
    };
    // The log still holds the resume line: no gap.
    assert_eq!(replay(&entries[1..], 41), (vec!["line-3".to_string(), "line-4".into(), "line-5".into()], 0));
    // Rotation deleted everything up to line-3: a gap, and what is left is delivered.
    assert_eq!(replay(&entries[4..], 41), (vec!["line-4".to_string(), "line-5".into()], 1));
    // The resume line is before `since` (stderr lag, for instance): nothing is expected.
    assert_eq!(replay(&entries[4..], 43), (vec!["line-4".to_string(), "line-5".into()], 0));
}

#[test]
fn a_replay_that_lost_its_resume_line_after_a_clock_step_skips_only_keys_queued_before() {
    // Seed 32,895: a-1, a-2 at 128–129 s queued, the clock steps back, a flood f-0..f-5
    // stamped 110 s (1 µs apart) follows; f-0..f-2 queued (resume key f-2's, high-water
    // key a-2's). json-file rotation deletes the log through f-3 (unread), and the reopen
    // (`since` 108 s) serves f-4, f-5, then g-1 at 236 s. f-4 and f-5 are stamped between
    // the resume key and the high-water key, but no queued key lies near them: new.
    let flood = |n: i64| (StdStream::Stdout, 110 * SEC + n * 1_000, format!("f-{n}\n").into_bytes());
    let mut log: Vec<Entry> =
        vec![(StdStream::Stdout, 128 * SEC, b"a-1\n".to_vec()), (StdStream::Stdout, 129 * SEC, b"a-2\n".to_vec())];
    log.extend((0..6).map(flood));
    log.push((StdStream::Stdout, 236 * SEC, b"g-1\n".to_vec()));
    for split in [1, 7, 1 << 20] {
        let replay = |served: &[Entry]| {
            let mut reader = reader();
            let runs = feed(&mut reader, &render(&log[..5]), 1 << 20);
            assert_eq!(texts(&runs, StdStream::Stdout), ["a-1", "a-2", "f-0", "f-1", "f-2"]);
            reader.reopen();
            reader.expect_resume_position(108);
            let (runs, stats) = feed_counting(&mut reader, &render(&since_filter(served, 108)), split);
            (texts(&runs, StdStream::Stdout), stats.gaps)
        };
        assert_eq!(replay(&log[6..]), (vec!["f-4".to_string(), "f-5".into(), "g-1".into()], 1), "split {split}");
        // The log still holds the resume line: a-1, a-2 and f-0..f-2 are skipped, no gap.
        assert_eq!(
            replay(&log),
            (vec!["f-3".to_string(), "f-4".into(), "f-5".into(), "g-1".into()], 0),
            "split {split}"
        );
    }
    // A line stamped inside a span of queued keys cannot be told from one of them: a
    // replay that lost its resume line skips it still (a-3 at 128.5 s, between a-1 and a-2).
    let mut reader = reader();
    let _ = feed(&mut reader, &render(&log[..5]), 1 << 20);
    reader.reopen();
    reader.expect_resume_position(108);
    let served: Vec<Entry> =
        vec![(StdStream::Stdout, 128 * SEC + SEC / 2, b"a-3\n".to_vec()), log[7].clone(), log[8].clone()];
    let runs = feed(&mut reader, &render(&served), 1 << 20);
    assert_eq!(texts(&runs, StdStream::Stdout), ["f-5", "g-1"]);
}

#[test]
fn a_replay_after_a_restart_and_a_clock_step_skips_the_lines_queued_before_the_restart() {
    // Seed 49,976: a-1, a-2 at 128–129 s queued and acknowledged; the clock steps back and
    // the agent restarts from a-2's key (`since` 126 s, a skew of 3 s); b-0..b-2 stamped
    // 127.5 s (1 µs apart) follow. The next reopen resumes from b-2 (`since` 124 s) and
    // its replay serves a-1 and a-2 again, stamped after the resume key: queued before
    // the restart, not new.
    let b = |n: i64| (StdStream::Stdout, 127 * SEC + SEC / 2 + n * 1_000, format!("b-{n}\n").into_bytes());
    let mut log: Vec<Entry> =
        vec![(StdStream::Stdout, 128 * SEC, b"a-1\n".to_vec()), (StdStream::Stdout, 129 * SEC, b"a-2\n".to_vec())];
    log.extend((0..3).map(b));
    log.push((StdStream::Stdout, 236 * SEC, b"c-1\n".to_vec()));
    for split in [1, 7, 1 << 20] {
        let acknowledged = ContainerCheckpoint {
            stdout: Some(ResumeKey { ts: 129 * SEC, seq: 0 }),
            stderr: None,
            since: None,
            ..Default::default()
        };
        let mut reader = LogReader::new(1024, 1 << 20, 64 << 10, acknowledged);
        let since = reader.since_secs(Duration::from_secs(3)).unwrap();
        assert_eq!(since, 126);
        reader.expect_resume_position(since);
        let runs = feed(&mut reader, &render(&since_filter(&log[..5], since)), split);
        assert_eq!(texts(&runs, StdStream::Stdout), ["b-0", "b-1", "b-2"], "split {split}");
        reader.reopen();
        let since = reader.since_secs(Duration::from_secs(3)).unwrap();
        assert_eq!(since, 124);
        reader.expect_resume_position(since);
        let (runs, stats) = feed_counting(&mut reader, &render(&since_filter(&log, since)), split);
        assert_eq!((texts(&runs, StdStream::Stdout), stats.gaps), (vec!["c-1".to_string()], 0), "split {split}");
    }
}

#[test]
fn a_restart_skips_the_lines_acknowledged_above_its_position_after_a_clock_step() {
    // Seed 117,342: a-0, a-1 stamped 105 s, then (the clock stepped back) b-0..b-2 stamped
    // 98 s, all acknowledged in one batch: the position is b-2's key, below a-0 and a-1,
    // and the checkpoint keeps a-1's as the stream's high key. The restart's replay
    // (`since` 95 s) serves a-0, a-1 again past the position: acknowledged, not new.
    let mut log: Vec<Entry> =
        (0..2).map(|n| (StdStream::Stdout, 105 * SEC + n * 1_000, format!("a-{n}\n").into_bytes())).collect();
    log.extend((0..3).map(|n| (StdStream::Stdout, 98 * SEC, format!("b-{n}\n").into_bytes())));
    log.push((StdStream::Stdout, 200 * SEC, b"c-0\n".to_vec()));
    let restart = |stdout_high: Option<ResumeKey>| {
        let acknowledged =
            ContainerCheckpoint { stdout: Some(ResumeKey { ts: 98 * SEC, seq: 2 }), stdout_high, ..Default::default() };
        let mut reader = LogReader::new(1024, 1 << 20, 64 << 10, acknowledged);
        let since = reader.since_secs(Duration::from_secs(3)).unwrap();
        assert_eq!(since, 95);
        reader.expect_resume_position(since);
        texts(&feed(&mut reader, &render(&since_filter(&log, since)), 1 << 20), StdStream::Stdout)
    };
    assert_eq!(restart(Some(ResumeKey { ts: 105 * SEC + 1_000, seq: 0 })), ["c-0"]);
    // A checkpoint written before high keys were kept: a-0 taken for new closes the
    // replay, and everything after it is delivered again (duplicates, as before).
    assert_eq!(restart(None), ["a-0", "a-1", "b-0", "b-1", "b-2", "c-0"]);
}

#[test]
fn a_replay_of_a_timestamp_group_whose_front_rotation_deleted_skips_only_the_lines_queued() {
    // Seed 28,193: lines g-0..g-5 share one timestamp (50 s); g-0..g-3 were queued (the
    // resume key is (50 s, 3)). json-file rotation deletes the front of the log, and the
    // replay counts what is left of the group from 0: the marks of the group's lines,
    // not their keys, say which were queued.
    let mut log: Vec<Entry> = (0..6).map(|n| (StdStream::Stdout, 50 * SEC, format!("g-{n}\n").into_bytes())).collect();
    log.push((StdStream::Stdout, 51 * SEC, b"h-1\n".to_vec()));
    for split in [1, 7, 1 << 20] {
        let replay = |served: &[Entry]| {
            let mut reader = reader();
            let runs = feed(&mut reader, &render(&log[..4]), 1 << 20);
            assert_eq!(texts(&runs, StdStream::Stdout), ["g-0", "g-1", "g-2", "g-3"]);
            reader.reopen();
            reader.expect_resume_position(49);
            let (runs, stats) = feed_counting(&mut reader, &render(served), split);
            (texts(&runs, StdStream::Stdout), stats.gaps)
        };
        // Deleted through g-4 (the resume line with it): g-5, keyed (50 s, 0), is new.
        assert_eq!(replay(&log[5..]), (vec!["g-5".to_string(), "h-1".into()], 1), "split {split}");
        // Deleted through g-1: the resume line g-3 comes keyed (50 s, 1), and g-4, g-5
        // after it are new.
        assert_eq!(replay(&log[2..]), (vec!["g-4".to_string(), "g-5".into(), "h-1".into()], 0), "split {split}");
        // Nothing deleted: as before.
        assert_eq!(replay(&log), (vec!["g-4".to_string(), "g-5".into(), "h-1".into()], 0), "split {split}");
        // Only g-0 was queued (the resume key (50 s, 0): the replay's fast path takes the
        // resume line by its mark). Deleted through g-0: g-1, keyed (50 s, 0) too, is new.
        let replay_of_one = |served: &[Entry]| {
            let mut reader = reader();
            let runs = feed(&mut reader, &render(&log[..1]), 1 << 20);
            assert_eq!(texts(&runs, StdStream::Stdout), ["g-0"]);
            reader.reopen();
            reader.expect_resume_position(49);
            let (runs, stats) = feed_counting(&mut reader, &render(served), split);
            (texts(&runs, StdStream::Stdout), stats.gaps)
        };
        let rest: Vec<String> = (1..6).map(|n| format!("g-{n}")).chain(["h-1".to_string()]).collect();
        assert_eq!(replay_of_one(&log[1..]), (rest.clone(), 1), "split {split}");
        assert_eq!(replay_of_one(&log), (rest, 0), "split {split}");
    }
}

/// A log whose streams each keep their own timestamps in order, with stderr allowed to
/// run up to 1.5 s behind stdout in arrival order, and some lines split in pieces.
fn arbitrary_log() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec((any::<bool>(), 0i64..700_000_000, 0i64..1_500_000_000, 1usize..4), 1..60).prop_map(|steps| {
        let mut clock = 100 * SEC;
        let mut last = [0i64; 2];
        let mut entries = Vec::new();
        for (index, (is_stderr, advance, lag, pieces)) in steps.into_iter().enumerate() {
            clock += advance;
            let stream = if is_stderr { StdStream::Stderr } else { StdStream::Stdout };
            let lag = if is_stderr { lag } else { 0 };
            for piece in 0..pieces {
                let ts = (clock - lag).max(last[stream.index()]);
                last[stream.index()] = ts;
                let last_piece = piece + 1 == pieces;
                let mut content = format!("{index}.{piece}").into_bytes();
                if last_piece {
                    content.push(b'\n');
                } else {
                    content.push(b'|');
                }
                entries.push((stream, ts, content));
            }
        }
        entries
    })
}

fn expected_lines(entries: &[Entry], stream: StdStream) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = Vec::new();
    for (entry_stream, _, content) in entries {
        if *entry_stream != stream {
            continue;
        }
        current.extend_from_slice(content);
        if current.ends_with(b"\n") {
            current.pop();
            lines.push(String::from_utf8(std::mem::take(&mut current)).unwrap());
        }
    }
    lines
}

proptest! {
    /// Cutting the stream anywhere, any number of times, and reopening from the reader's
    /// own `since` yields every line exactly once, in order, per stream.
    #[test]
    fn reopening_anywhere_loses_and_repeats_nothing(
        entries in arbitrary_log(),
        cuts in prop::collection::vec(0.0f64..1.0, 0..6),
        split in 1usize..40,
    ) {
        let mut reader = reader();
        let mut got = [Vec::new(), Vec::new()];
        let mut visible = entries.len();
        let mut since = 0;
        let mut cut_points: Vec<usize> = cuts.iter().map(|f| (f * entries.len() as f64) as usize).collect();
        cut_points.sort();
        for cut in cut_points.into_iter().chain(std::iter::once(entries.len())) {
            visible = visible.max(cut);
            // The log as Docker has it at this point, filtered by since; read up to `cut`.
            let served = since_filter(&entries[..cut], since);
            let (runs, stats) = feed_counting(&mut reader, &render(&served), split);
            // Nothing was deleted from this log: a gap would be a false alarm.
            prop_assert_eq!(stats.gaps, 0);
            for stream in [StdStream::Stdout, StdStream::Stderr] {
                got[stream.index()].extend(texts(&runs, stream));
            }
            since = reader.since_secs(Duration::from_secs(2)).unwrap_or(0);
            reader.reopen();
            reader.expect_resume_position(since);
        }
        let _ = visible;
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            // A reopen may cut a split line before its first piece: that line's prefix is
            // lost only if it was already queued whole, which is what dedup checks. So the
            // complete lines read must equal the log's lines.
            prop_assert_eq!(&got[stream.index()], &expected_lines(&entries, stream));
        }
    }
}

proptest! {
    /// Read in one session, without a reopen, every line of every stream comes out once
    /// and in order, whatever its timestamps do (steps back included).
    #[test]
    fn a_live_stream_delivers_every_line_whatever_its_timestamps(
        steps in prop::collection::vec((any::<bool>(), -3_000_000_000i64..3_000_000_000), 1..60),
        split in 1usize..40,
        resume in prop::option::of(0i64..200),
    ) {
        let mut clock = 100 * SEC;
        let entries: Vec<Entry> = steps
            .iter()
            .enumerate()
            .map(|(index, (is_stderr, step))| {
                clock = (clock + step).max(SEC);
                let stream = if *is_stderr { StdStream::Stderr } else { StdStream::Stdout };
                (stream, clock, format!("{index}\n").into_bytes())
            })
            .collect();
        // Whatever was queued before, the first live line past it closes the replay
        // window; from a fresh start there is no window at all.
        let queued = resume.map(|secs| ResumeKey { ts: secs * SEC, seq: 0 });
        let mut reader = LogReader::new(1024, 1 << 20, 64 << 10, ContainerCheckpoint { stdout: queued, stderr: queued, since: None, ..Default::default() });
        let runs = feed(&mut reader, &render(&entries), split);
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let expected: Vec<String> = entries
                .iter()
                .filter(|(entry_stream, _, _)| *entry_stream == stream)
                .skip_while(|(_, ts, _)| queued.is_some_and(|key| ResumeKey { ts: *ts, seq: 0 } <= key))
                .map(|(_, _, content)| String::from_utf8(content[..content.len() - 1].to_vec()).unwrap())
                .collect();
            prop_assert_eq!(texts(&runs, stream), expected);
        }
    }
}

/// `first_sight = { tail = N }`: Docker's tail counts entries, so it can start inside a
/// run of lines sharing one timestamp. The reader cannot tell how many lines of that
/// timestamp the cut hid (their keys would be wrong), so the first group of each stream
/// is skipped, and a later reopen's replay skips it too (the world's seed 64 with tail:
/// the replay delivered lines of the group again under other keys).
#[test]
fn a_tail_open_skips_the_first_timestamp_group_and_a_reopen_does_not_bring_it_back() {
    let all: Vec<Entry> = vec![
        (StdStream::Stdout, 5 * SEC, b"a\n".to_vec()),
        (StdStream::Stdout, 5 * SEC, b"b\n".to_vec()),
        (StdStream::Stdout, 5 * SEC, b"c\n".to_vec()),
        (StdStream::Stderr, 5 * SEC + 7, b"e1\n".to_vec()),
        (StdStream::Stdout, 6 * SEC, b"d\n".to_vec()),
        (StdStream::Stderr, 6 * SEC + 9, b"e2\n".to_vec()),
    ];
    let mut reader = reader();
    // The tail (4 entries) starts at "c": the group of 5 s is cut.
    reader.reopen();
    reader.cut_after_tail(6 * SEC + 10);
    let (runs, stats) = feed_counting(&mut reader, &render(&all[2..]), 5);
    assert_eq!(texts(&runs, StdStream::Stdout), ["d"]);
    assert_eq!(texts(&runs, StdStream::Stderr), ["e2"]);
    assert_eq!((stats.lines, stats.gaps), (2, 0));
    // A reopen from 2 s before the last line replays everything: nothing comes again.
    let since = reader.since_secs(Duration::from_secs(2)).unwrap();
    assert_eq!(since, 4);
    reader.reopen();
    reader.expect_resume_position(since);
    let (runs, stats) = feed_counting(&mut reader, &render(&since_filter(&all, since)), 3);
    assert!(runs.is_empty(), "{:?}", texts(&runs, StdStream::Stdout));
    assert_eq!((stats.lines, stats.gaps), (0, 0));
    // A tail open of a log that had nothing yet: the first line, written after the
    // open, is delivered.
    let mut reader = self::reader();
    reader.reopen();
    reader.cut_after_tail(5 * SEC);
    let (runs, _) = feed_counting(&mut reader, &render(&all[4..5]), 64);
    assert_eq!(texts(&runs, StdStream::Stdout), ["d"]);
}

/// After a tail's cut group, a line stamped before the group (the host clock stepped back
/// between them) is a new line, not part of the group: delivered, on the first open and
/// on a reopen that replays the cut (the world's seed 6976: `tail = 10`, a clock step of
/// 97 s between the first two lines; the reader skipped the second as a duplicate).
#[test]
fn a_line_after_a_tail_cut_stamped_before_it_is_delivered() {
    let all: Vec<Entry> = vec![
        (StdStream::Stdout, 9 * SEC, b"early\n".to_vec()),
        (StdStream::Stdout, 20 * SEC, b"cut\n".to_vec()),
        (StdStream::Stdout, 20 * SEC, b"cut too\n".to_vec()),
        // The clock stepped back 5 s.
        (StdStream::Stdout, 16 * SEC, b"stepped\n".to_vec()),
        (StdStream::Stdout, 17 * SEC, b"next\n".to_vec()),
    ];
    // The tail starts at "cut": its group is skipped, what follows it is delivered.
    let mut reader = reader();
    reader.reopen();
    reader.cut_after_tail(21 * SEC);
    let (runs, stats) = feed_counting(&mut reader, &render(&all[1..]), 7);
    assert_eq!(texts(&runs, StdStream::Stdout), ["stepped", "next"]);
    assert_eq!((stats.lines, stats.gaps), (2, 0));
    // Read up to the group only, then reopened: the replay from before the whole log
    // skips what came before the group and the group, and delivers what follows it.
    let mut reader = self::reader();
    reader.reopen();
    reader.cut_after_tail(21 * SEC);
    let (runs, _) = feed_counting(&mut reader, &render(&all[1..3]), 64);
    assert!(runs.is_empty());
    let since = reader.since_secs(Duration::from_secs(15)).unwrap();
    assert_eq!(since, 5);
    reader.reopen();
    reader.expect_resume_position(since);
    let (runs, stats) = feed_counting(&mut reader, &render(&since_filter(&all, since)), 5);
    assert_eq!(texts(&runs, StdStream::Stdout), ["stepped", "next"]);
    assert_eq!((stats.lines, stats.gaps), (2, 0));
}

/// A small read's lines are copied out of the buffer the read came in (a transport's,
/// much larger), also after a reopen's duplicates were skipped at its start; a large
/// read's lines are slices of it.
#[test]
fn lines_of_a_small_read_do_not_keep_its_buffer_alive() {
    let entries: Vec<Entry> =
        (0..6).map(|n| (StdStream::Stdout, 10 * SEC + n, format!("line {n}\n").into_bytes())).collect();
    let bytes = render(&entries);
    let within = |buffer: &Bytes, runs: &[Run]| {
        let range = buffer.as_ptr_range();
        runs.iter().flat_map(|run| &run.lines).any(|line| range.contains(&line.bytes.as_ptr()))
    };
    let read = |reader: &mut LogReader, buffer: &Bytes, len: usize| {
        let (mut runs, mut stats) = (Vec::new(), ReadStats::default());
        reader.handle_chunk(buffer.slice(..len), &mut runs, &mut stats).unwrap();
        (runs, stats)
    };
    // The read's bytes at the start of a 64 KiB transport buffer.
    let mut padded = bytes.clone();
    padded.resize(64 << 10, 0);
    let buffer = Bytes::from(padded);

    let mut reader = reader();
    let (runs, stats) = read(&mut reader, &buffer, bytes.len());
    assert_eq!((stats.lines, texts(&runs, StdStream::Stdout).len()), (6, 6));
    assert!(!within(&buffer, &runs), "a small read is copied");

    // Reopened: the first four lines again (skipped), then the rest.
    let mut reopened = LogReader::new(
        1024,
        1 << 20,
        64 << 10,
        ContainerCheckpoint { stdout: Some(entries_key(&entries, 3)), ..ContainerCheckpoint::default() },
    );
    reopened.reopen();
    let (runs, stats) = read(&mut reopened, &buffer, bytes.len());
    assert_eq!((stats.duplicates, stats.lines), (4, 2));
    assert_eq!(texts(&runs, StdStream::Stdout), ["line 4", "line 5"]);
    assert!(!within(&buffer, &runs), "what follows skipped duplicates is copied");

    // A read of COMPACT_BELOW_BYTES or more is sliced as it is.
    let many: Vec<Entry> =
        (0..200).map(|n| (StdStream::Stdout, 20 * SEC + n, format!("line {n:040}\n").into_bytes())).collect();
    let large = Bytes::from(render(&many));
    assert!(large.len() >= crate::container::reader::COMPACT_BELOW_BYTES);
    let mut reader = self::reader();
    let (runs, _) = read(&mut reader, &large, large.len());
    assert!(within(&large, &runs));
}

/// The resume key of the `index`-th entry (all at distinct timestamps).
fn entries_key(entries: &[Entry], index: usize) -> ResumeKey {
    ResumeKey { ts: entries[index].1, seq: 0 }
}

/// What a probe of the log's last entry (`tail = 1`) says about a reader: at the end of
/// its log or not.
fn probe_says_caught_up(reader: &LogReader, last_entry: &Entry) -> bool {
    let mut slot = None;
    let probe = reader.ready_probe(&mut slot);
    feed(probe, &render(std::slice::from_ref(last_entry)), 1 << 20);
    reader.ends_with(probe)
}

#[test]
fn a_probe_tells_a_silent_stream_from_one_behind_its_log() {
    let entries: Vec<Entry> = vec![
        (StdStream::Stdout, 10 * SEC, b"same text\n".to_vec()),
        (StdStream::Stdout, 10 * SEC, b"same texT\n".to_vec()),
        (StdStream::Stderr, 10 * SEC, b"same texT\n".to_vec()),
        (StdStream::Stdout, 11 * SEC, b"a long line, ".to_vec()),
        (StdStream::Stdout, 11 * SEC + 1, b"its end\n".to_vec()),
    ];
    for split in [1, 7, 1 << 20] {
        let mut reader = reader();
        assert!(!probe_says_caught_up(&reader, &entries[0]), "nothing read yet");
        feed(&mut reader, &render(&entries[..2]), split);
        assert!(probe_says_caught_up(&reader, &entries[1]), "split {split}: the last line read is the log's last");
        // One more line of the same stream and timestamp, or the same text on the other
        // stream: behind.
        assert!(!probe_says_caught_up(&reader, &entries[0]), "split {split}");
        assert!(!probe_says_caught_up(&reader, &entries[2]), "split {split}");
        // A reopen keeps what was read; its replay of the last line changes nothing.
        reader.reopen();
        feed(&mut reader, &render(&entries[..2]), split);
        assert!(probe_says_caught_up(&reader, &entries[1]), "split {split}: after a replay");
        // Half a line read: behind, whatever the log's last entry is.
        feed(&mut reader, &render(&entries[3..4]), split);
        assert!(!probe_says_caught_up(&reader, &entries[1]), "split {split}: a partial line pending");
        feed(&mut reader, &render(&entries[4..]), split);
        // The probe sees only the line's last piece: not the line read, so behind.
        assert!(!probe_says_caught_up(&reader, &entries[4]), "split {split}: a long line's last piece");
    }
}

/// After a restart nothing new may be read before the log's end: the replay's resume
/// line is then the last line handed out, and a probe of it says the stream is silent
/// (it said "behind" until a new line came, so a quiet container was reopened every
/// stall timeout after each restart). A replay that ends before the resume line, or a
/// resume line too long to compare, still says "behind".
#[test]
fn after_a_restart_the_replayed_resume_line_is_what_a_probe_compares_with() {
    let entries: Vec<Entry> = vec![
        (StdStream::Stdout, 40 * SEC, b"first\n".to_vec()),
        (StdStream::Stderr, 40 * SEC, b"an error\n".to_vec()),
        (StdStream::Stdout, 40 * SEC + 5, b"second\r\n".to_vec()),
        (StdStream::Stdout, 40 * SEC + 5, b"second\r\n".to_vec()),
    ];
    let checkpoint = ContainerCheckpoint {
        stdout: Some(ResumeKey { ts: 40 * SEC + 5, seq: 1 }),
        stderr: Some(ResumeKey { ts: 40 * SEC, seq: 0 }),
        since: None,
        ..Default::default()
    };
    for split in [1, 7, 1 << 20] {
        let mut reader = LogReader::new(1024, 1 << 20, 64 << 10, checkpoint);
        reader.reopen();
        let (runs, stats) = feed_counting(&mut reader, &render(&entries), split);
        assert_eq!((runs.len(), stats.duplicates), (0, 4), "split {split}: all of it is a replay");
        assert!(probe_says_caught_up(&reader, &entries[3]), "split {split}: the resume line is the log's last");
        assert!(!probe_says_caught_up(&reader, &entries[1]), "split {split}");

        // The replay stops before the resume line: the probe's last entry is not read.
        let mut reader = LogReader::new(1024, 1 << 20, 64 << 10, checkpoint);
        reader.reopen();
        feed(&mut reader, &render(&entries[..3]), split);
        assert!(!probe_says_caught_up(&reader, &entries[3]), "split {split}: short of the resume line");
    }
    // A resume line over `line_bytes_max` is truncated when read: not compared.
    let long: Vec<Entry> = vec![(StdStream::Stdout, 50 * SEC, [vec![b'x'; 40], b"\n".to_vec()].concat())];
    let checkpoint = ContainerCheckpoint { stdout: Some(ResumeKey { ts: 50 * SEC, seq: 0 }), ..Default::default() };
    let mut reader = LogReader::new(16, 1 << 20, 64 << 10, checkpoint);
    reader.reopen();
    feed(&mut reader, &render(&long), 1 << 20);
    assert!(!probe_says_caught_up(&reader, &long[0]));
}
