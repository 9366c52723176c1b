//! Empty lines in the log model: which bursts are written empty, how a reader gets
//! them, and how the oracle names one by its timestamp (`ContainerLog::empty_line_at`).

use super::*;

/// The oracle's two questions about line `seq` of `stream`: which empty line is
/// stamped `ts`, and whether `content` is line `seq` as written.
fn ask(docker: &SimDocker, id: &ContainerId, stream: StdStream, ts: UnixNanos) -> Option<u64> {
    docker.with_log(docker.log_serial(id), |log| log.unwrap().empty_line_at(stream, ts))
}

fn matches(docker: &SimDocker, id: &ContainerId, seq: u64, content: &[u8]) -> Option<bool> {
    docker.with_log(docker.log_serial(id), |log| log.unwrap().line_matches(StdStream::Stdout, seq, content, 1 << 16))
}

#[test]
fn one_burst_in_97_is_empty_lines_named_by_their_timestamps() {
    let (mut executor, docker) = world(3);
    let id = running(&docker, "app");
    // Lines 0..96 numbered; the burst starting at 96 is empty (96 % 97 == 96); 99.. not.
    docker.emit(&id, Burst::lines(StdStream::Stdout, 96)).unwrap();
    executor.advance_for(Duration::from_secs(1));
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap(), 96..99);
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(entries.len(), 101);
    assert_eq!(entries[95].content, Bytes::from_static(b"95\n"));
    for (seq, entry) in entries.iter().enumerate().skip(96).take(3) {
        assert_eq!(entry.content, Bytes::from_static(b"\n"), "line {seq} is only its newline");
        assert_eq!(ask(&docker, &id, StdStream::Stdout, entry.ts), Some(seq as u64));
        assert_eq!(matches(&docker, &id, seq as u64, b""), Some(true));
        assert_eq!(matches(&docker, &id, seq as u64, b"96"), Some(false));
    }
    assert_eq!(entries[99].content, Bytes::from_static(b"99x\n"), "padded to the digits of 100");
    // No empty line elsewhere: not at a numbered line's timestamp, not between two.
    assert_eq!(ask(&docker, &id, StdStream::Stdout, entries[95].ts), None);
    assert_eq!(ask(&docker, &id, StdStream::Stdout, entries[96].ts + 1), None);
    assert_eq!(ask(&docker, &id, StdStream::Stderr, entries[96].ts), None);
    // A numbered line is not empty.
    assert_eq!(matches(&docker, &id, 95, b""), Some(false));
    assert_eq!(docker.containers()[0].empty_lines_written, 3);
}

#[test]
fn lines_sharing_one_timestamp_are_never_empty() {
    // Two empty lines stamped alike would be one line in a real Loki (its ingester drops
    // an entry equal in timestamp and content): such a burst keeps its numbers.
    let (mut executor, docker) = world(4);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 96)).unwrap();
    let same_ts = Burst { entry_gap: Duration::ZERO, ..Burst::lines(StdStream::Stdout, 3) };
    docker.emit(&id, same_ts).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(entries[96].content, Bytes::from_static(b"96\n"));
    assert_eq!(docker.containers()[0].empty_lines_written, 0);
}

#[test]
fn a_burst_stamped_before_the_stream_s_latest_line_is_never_empty() {
    // After a host clock step back the burst at 96 is stamped before line 95: its
    // timestamps could repeat an earlier empty line's, so it keeps its numbers.
    let (mut executor, docker) = world(5);
    let id = running(&docker, "app");
    executor.advance_for(Duration::from_secs(10));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 96)).unwrap();
    docker.step_clock_back(Duration::from_secs(5));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert!(entries[96].ts < entries[95].ts);
    assert_eq!(entries[96].content, Bytes::from_static(b"96\n"));
}
