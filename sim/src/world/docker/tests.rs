//! Tests of the Docker model's semantics: the log, the streams, the events, the faults.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use engine::model::{ContainerId, StdStream};
use engine::parse::frame::FrameDecoder;
use engine::parse::timestamp::split_timestamp;
use engine::port::{ContainerEngine, ContainerEventKind, EngineError, LogOptions, LogStream};
use engine::rt::{Instant, UnixNanos};
use futures::StreamExt;

use super::*;
use crate::executor::Executor;

const WALL_START: UnixNanos = 1_700_000_000_000_000_000;
const SECOND: i64 = 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    stream: StdStream,
    ts: UnixNanos,
    content: Bytes,
}

fn world(seed: u64) -> (Executor, SimDocker) {
    let executor = Executor::new(seed, WALL_START);
    let docker = SimDocker::new(executor.handle(), seed);
    (executor, docker)
}

fn running(docker: &SimDocker, name: &str) -> ContainerId {
    let id = docker.create(name, "busybox", BTreeMap::new());
    docker.start(&id).unwrap();
    id
}

fn opts(follow: bool, since_secs: i64) -> LogOptions {
    LogOptions { follow, since_secs, tail: None }
}

/// Decode frames from raw chunks.
fn decode(chunks: &[Bytes]) -> (Vec<Entry>, usize) {
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut entries = Vec::new();
    for chunk in chunks {
        decoder.push(chunk.clone());
        while let Some(frame) = decoder.next_frame().unwrap() {
            let (ts, content) = split_timestamp(&frame.payload).unwrap();
            entries.push(Entry { stream: frame.stream, ts, content });
        }
    }
    (entries, decoder.buffered_bytes())
}

/// Read a stream to its end: (chunks, error if one ended it).
async fn drain(mut stream: LogStream) -> (Vec<Bytes>, Option<EngineError>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(error) => {
                assert!(stream.next().await.is_none(), "an error ends the stream");
                return (chunks, Some(error));
            }
        }
    }
    (chunks, None)
}

/// A `logs` request answered now: the stream, or the error.
fn open_logs(
    executor: &mut Executor,
    docker: &SimDocker,
    id: &ContainerId,
    options: LogOptions,
) -> Result<LogStream, EngineError> {
    let (docker, id) = (docker.clone(), id.clone());
    executor.block_on(async move { docker.logs(&id, options).await }).unwrap()
}

/// A `logs` request read to its end: its chunks and the error that ended it, if any.
fn drain_logs(
    executor: &mut Executor,
    docker: &SimDocker,
    id: &ContainerId,
    options: LogOptions,
) -> (Vec<Bytes>, Option<EngineError>) {
    let stream = open_logs(executor, docker, id, options).unwrap();
    executor.block_on(drain(stream)).unwrap()
}

fn read_all(executor: &mut Executor, docker: &SimDocker, id: &ContainerId, options: LogOptions) -> Vec<Entry> {
    let (chunks, error) = drain_logs(executor, docker, id, options);
    assert_eq!(error, None);
    let (entries, leftover) = decode(&chunks);
    assert_eq!(leftover, 0);
    entries
}

fn seqs(entries: &[Entry], stream: StdStream) -> Vec<u64> {
    entries.iter().filter(|e| e.stream == stream).map(|e| line_seq(&e.content).unwrap()).collect()
}

#[test]
fn lines_carry_per_stream_sequence_numbers_in_arrival_order() {
    let (mut executor, docker) = world(1);
    let id = running(&docker, "app");
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap(), 0..3);
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stderr, 2)).unwrap(), 0..2);
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap(), 3..5);
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    let streams: Vec<StdStream> = entries.iter().map(|e| e.stream).collect();
    use StdStream::{Stderr as E, Stdout as O};
    assert_eq!(streams, vec![O, O, O, E, E, O, O]);
    assert_eq!(seqs(&entries, O), vec![0, 1, 2, 3, 4]);
    assert_eq!(seqs(&entries, E), vec![0, 1]);
    assert_eq!(entries[0].content, Bytes::from_static(b"0\n"));
    for stream in [O, E] {
        let ts: Vec<i64> = entries.iter().filter(|e| e.stream == stream).map(|e| e.ts).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "per-stream ts never go back");
    }
}

#[test]
fn padding_and_content_decode() {
    assert_eq!(line_content(42, 6), b"42xxxx".to_vec());
    assert_eq!(line_content(12345, 2), b"12345".to_vec());
    assert_eq!(line_seq(b"42xxxx"), Some(42));
    assert_eq!(line_seq(b"xx"), None);
    assert_eq!(line_seq(b""), None);
    assert_eq!(line_seq(b"0"), Some(0));
    assert_eq!(line_seq(b"18446744073709551615x"), Some(u64::MAX));
    assert_eq!(line_seq(b"18446744073709551616"), None, "over u64");
    assert_eq!(line_seq(b"000000000000000000001"), None, "over 20 digits");
    let (mut executor, docker) = world(1);
    let id = running(&docker, "app");
    let burst = Burst { line_bytes: 100, ..Burst::lines(StdStream::Stdout, 12) };
    docker.emit(&id, burst).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    for (seq, entry) in entries.iter().enumerate() {
        let mut expected = line_content(seq as u64, 100);
        expected.push(b'\n');
        assert_eq!(entry.content, expected);
    }
}

#[test]
fn stderr_lagging_behind_stdout_interleaves_out_of_timestamp_order() {
    let (mut executor, docker) = world(2);
    let id = running(&docker, "app");
    executor.advance_for(Duration::from_secs(10));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    let lagging = Burst { lag: Duration::from_millis(500), ..Burst::lines(StdStream::Stderr, 2) };
    docker.emit(&id, lagging).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(entries[2].stream, StdStream::Stderr);
    assert!(entries[2].ts < entries[1].ts, "stderr behind stdout in arrival order");
    // A second lagging burst cannot go behind stderr's own last timestamp.
    let lagging_more = Burst { lag: Duration::from_secs(5), ..Burst::lines(StdStream::Stderr, 1) };
    docker.emit(&id, lagging_more).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert!(entries[4].ts >= entries[3].ts);
}

#[test]
fn since_keeps_entries_at_or_after_it_per_stream() {
    let (mut executor, docker) = world(3);
    let id = running(&docker, "app");
    // t = 10 s: stdout 0..3; t = 20 s: stdout 3..6, stderr 0..3 lagging 15 s (ts = 5 s,
    // raised to nothing: first stderr), then t = 30 s stderr 3..5.
    executor.advance_for(Duration::from_secs(10));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    executor.advance_for(Duration::from_secs(10));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    let lagging = Burst { lag: Duration::from_secs(15), ..Burst::lines(StdStream::Stderr, 3) };
    docker.emit(&id, lagging).unwrap();
    executor.advance_for(Duration::from_secs(10));
    docker.emit(&id, Burst::lines(StdStream::Stderr, 2)).unwrap();
    let wall_secs = |offset: i64| (WALL_START / SECOND) + offset;

    let all = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(all.len(), 11);
    let since = read_all(&mut executor, &docker, &id, opts(false, wall_secs(15)));
    // stdout 3..6 (ts 20 s) and stderr 3..5 (ts 30 s); stderr 0..3 (ts 5 s) filtered out
    // although it arrived after stdout entries that pass.
    assert_eq!(seqs(&since, StdStream::Stdout), vec![3, 4, 5]);
    assert_eq!(seqs(&since, StdStream::Stderr), vec![3, 4]);
    assert!(since.iter().all(|e| e.ts >= wall_secs(15) * SECOND));
    // Whole-second since at exactly an entry's second keeps it (>=).
    let at_ten = read_all(&mut executor, &docker, &id, opts(false, wall_secs(10)));
    assert_eq!(seqs(&at_ten, StdStream::Stdout), vec![0, 1, 2, 3, 4, 5]);
    let future = read_all(&mut executor, &docker, &id, opts(false, wall_secs(100)));
    assert!(future.is_empty());
}

#[test]
fn since_on_a_follow_stream_filters_entries_written_later() {
    let (mut executor, docker) = world(4);
    let id = running(&docker, "app");
    executor.advance_for(Duration::from_secs(10));
    let since = WALL_START / SECOND + 8;
    let (docker2, id2) = (docker.clone(), id.clone());
    let reader = executor.handle().clone();
    let got = Arc::new(Mutex::new(Vec::new()));
    let got_in_task = got.clone();
    executor.spawn_world("reader", async move {
        let _ = reader;
        let (chunks, _) = drain(docker2.logs(&id2, opts(true, since)).await.unwrap()).await;
        *got_in_task.lock().unwrap() = chunks;
    });
    executor.run_until_stalled();
    // Lags 5 s: ts = 5 s < since: filtered; then a fresh one passes.
    docker.emit(&id, Burst { lag: Duration::from_secs(5), ..Burst::lines(StdStream::Stderr, 2) }).unwrap();
    executor.advance_for(Duration::from_secs(10));
    docker.emit(&id, Burst::lines(StdStream::Stderr, 1)).unwrap();
    docker.stop(&id).unwrap();
    executor.advance_for(Duration::from_secs(1));
    let (entries, _) = decode(&got.lock().unwrap());
    assert_eq!(seqs(&entries, StdStream::Stderr), vec![2]);
}

#[test]
fn long_lines_split_into_16k_entries_sharing_the_line_timestamp() {
    let (mut executor, docker) = world(5);
    let id = running(&docker, "app");
    let long = Burst { line_bytes: 40_000, ..Burst::lines(StdStream::Stdout, 2) };
    docker.emit(&id, long).unwrap();
    let exact = Burst { line_bytes: 16_384, ..Burst::lines(StdStream::Stderr, 1) };
    docker.emit(&id, exact).unwrap();
    let just_under = Burst { line_bytes: 16_383, ..Burst::lines(StdStream::Stderr, 1) };
    docker.emit(&id, just_under).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    let lens: Vec<usize> = entries.iter().map(|e| e.content.len()).collect();
    assert_eq!(lens, vec![16_384, 16_384, 7_233, 16_384, 16_384, 7_233, 16_384, 1, 16_384]);
    for (entry, ends_line) in entries.iter().zip([false, false, true, false, false, true, false, true, true]) {
        assert_eq!(entry.content.ends_with(b"\n"), ends_line);
    }
    assert_eq!(entries[7].content, Bytes::from_static(b"\n"));
    // Every piece of a line carries the line's timestamp (Docker's copier stamps them
    // all with the first piece's time); lines differ.
    assert!(entries[0].ts == entries[1].ts && entries[1].ts == entries[2].ts);
    assert!(entries[2].ts < entries[3].ts && entries[3].ts == entries[5].ts);
    assert_eq!(entries[6].ts, entries[7].ts);
    // Reassembled, each line is its content.
    let mut line = Vec::new();
    let mut lines = Vec::new();
    for entry in entries.iter().filter(|e| e.stream == StdStream::Stdout) {
        line.extend_from_slice(&entry.content);
        if line.ends_with(b"\n") {
            line.pop();
            lines.push(std::mem::take(&mut line));
        }
    }
    assert_eq!(lines, vec![line_content(0, 40_000), line_content(1, 40_000)]);
    assert_eq!(docker.container(&id).unwrap().entries_written, 9);
}

#[test]
fn tail_counts_entries_from_the_end() {
    let (mut executor, docker) = world(6);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    docker.emit(&id, Burst::lines(StdStream::Stderr, 3)).unwrap();
    let tail = LogOptions { follow: false, since_secs: 0, tail: Some(4) };
    let entries = read_all(&mut executor, &docker, &id, tail);
    assert_eq!(seqs(&entries, StdStream::Stdout), vec![4]);
    assert_eq!(seqs(&entries, StdStream::Stderr), vec![0, 1, 2]);
    let none = LogOptions { tail: Some(0), ..tail };
    assert!(read_all(&mut executor, &docker, &id, none).is_empty());
    let more = LogOptions { tail: Some(100), ..tail };
    assert_eq!(read_all(&mut executor, &docker, &id, more).len(), 8);
}

#[test]
fn random_chunking_splits_anywhere_but_decodes_the_same() {
    let (mut executor, docker) = world(7);
    let id = running(&docker, "app");
    for round in 0..50u32 {
        let stream = if round % 3 == 0 { StdStream::Stderr } else { StdStream::Stdout };
        let burst = Burst { line_bytes: (round * 997) % 20_000, ..Burst::lines(stream, 1 + round % 7) };
        docker.emit(&id, burst).unwrap();
    }
    docker.set_chunking(64 * 1024, 0.0);
    let whole = read_all(&mut executor, &docker, &id, opts(false, 0));
    docker.set_chunking(4096, 0.9);
    let (chunks, _) = drain_logs(&mut executor, &docker, &id, opts(false, 0));
    assert!(chunks.len() > whole.len() / 4, "many small chunks");
    assert!(chunks.iter().all(|chunk| !chunk.is_empty() && chunk.len() <= 4096 + 20_000 + 64));
    let (entries, leftover) = decode(&chunks);
    assert_eq!(leftover, 0);
    assert_eq!(entries, whole);
}

#[test]
fn follow_waits_for_output_and_ends_when_the_container_stops() {
    let (mut executor, docker) = world(8);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    let got = Arc::new(Mutex::new(None));
    let (docker2, id2, got2) = (docker.clone(), id.clone(), got.clone());
    executor.spawn_world("reader", async move {
        let stream = docker2.logs(&id2, opts(true, 0)).await.unwrap();
        *got2.lock().unwrap() = Some(drain(stream).await);
    });
    executor.advance_for(Duration::from_secs(60));
    assert!(got.lock().unwrap().is_none(), "follow stays open while the container runs");
    assert_eq!(docker.counters().log_streams_open, 1);
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    // Stop and start again before the reader runs: the stream still ends, after
    // everything written before the stop, and nothing written after.
    docker.stop(&id).unwrap();
    docker.start(&id).unwrap();
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    executor.advance_for(Duration::from_secs(1));
    let (chunks, error) = got.lock().unwrap().take().expect("the stream ended");
    assert_eq!(error, None);
    let (entries, _) = decode(&chunks);
    assert_eq!(seqs(&entries, StdStream::Stdout), vec![0, 1, 2, 3]);
    assert_eq!(docker.counters().log_streams_open, 0);
    assert_eq!(docker.counters().log_streams_open_max, 1);
}

#[test]
fn follow_on_a_stopped_container_returns_the_log_and_ends() {
    let (mut executor, docker) = world(9);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    docker.stop(&id).unwrap();
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 1)), Err(CommandError::NotRunning));
    let entries = read_all(&mut executor, &docker, &id, opts(true, 0));
    assert_eq!(seqs(&entries, StdStream::Stdout), vec![0, 1, 2]);
}

#[test]
fn restart_keeps_the_id_and_the_log() {
    let (mut executor, docker) = world(10);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    docker.restart(&id).unwrap();
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap(), 3..5);
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(seqs(&entries, StdStream::Stdout), vec![0, 1, 2, 3, 4]);
    let report = docker.container(&id).unwrap();
    assert!(report.running && !report.removed);
    assert_eq!(report.lines_written, [5, 0]);
    assert_eq!(report.opens_total, 1);
}

#[test]
fn remove_deletes_the_log_and_ends_open_streams() {
    let (mut executor, docker) = world(11);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    let got = Arc::new(Mutex::new(None));
    let (docker2, id2, got2) = (docker.clone(), id.clone(), got.clone());
    docker.fault_next_open(&id, StreamFault::Stall).unwrap();
    executor.spawn_world("reader", async move {
        let stream = docker2.logs(&id2, opts(true, 0)).await.unwrap();
        *got2.lock().unwrap() = Some(drain(stream).await);
    });
    executor.advance_for(Duration::from_secs(5));
    docker.remove(&id).unwrap();
    executor.advance_for(Duration::from_secs(1));
    assert_eq!(got.lock().unwrap().take().map(|(_, error)| error), Some(None));
    let result = open_logs(&mut executor, &docker, &id, opts(false, 0)).err();
    assert_eq!(result, Some(EngineError::NotFound(id.to_string())));
    let (docker2, id2) = (docker.clone(), id.clone());
    let result = executor.block_on(async move { docker2.inspect(&id2).await.err() });
    assert!(matches!(result.unwrap(), Some(EngineError::NotFound(_))));
    let report = docker.container(&id).unwrap();
    assert!(report.removed && !report.running);
    assert_eq!(report.lines_written, [3, 0]);
    assert!(docker.container_ids().is_empty());
    assert_eq!(docker.counters().log_streams_open, 0);
}

#[test]
fn remove_lets_open_streams_read_to_the_last_write_then_deletes_the_log() {
    let (mut executor, docker) = world(11);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    // Opened, nothing read yet: the removal does not cut it (moby's follower drains).
    let stream = open_logs(&mut executor, &docker, &id, opts(true, 0)).unwrap();
    docker.remove(&id).unwrap();
    let report = docker.container(&id).unwrap();
    assert!(report.removed && report.streams_open == 1);
    // Not deleted while the stream reads: nothing lost yet; new requests say NotFound.
    assert_eq!(report.lost_to_removal, [0, 0]);
    let result = open_logs(&mut executor, &docker, &id, opts(false, 0)).err();
    assert_eq!(result, Some(EngineError::NotFound(id.to_string())));
    let (chunks, error) = executor.block_on(drain(stream)).unwrap();
    assert_eq!(error, None);
    assert_eq!(decode(&chunks).0.len(), 3);
    let report = docker.container(&id).unwrap();
    assert_eq!((report.lost_to_removal, report.streams_open, report.unread), ([0, 0], 0, false));
    assert_eq!(docker.counters().log_streams_open, 0);
}

#[test]
fn a_stream_dropped_unread_after_the_removal_leaves_its_lines_lost_to_removal() {
    let (mut executor, docker) = world(11);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    let stream = open_logs(&mut executor, &docker, &id, opts(true, 0)).unwrap();
    docker.remove(&id).unwrap();
    drop(stream);
    assert_eq!(docker.container(&id).unwrap().lost_to_removal, [3, 0]);
}

/// Every event a subscriber saw: its kind and attributes, or the stream's error.
type EventLog = Arc<Mutex<Vec<Result<(ContainerEventKind, BTreeMap<String, String>), EngineError>>>>;

fn collect_events(executor: &mut Executor, docker: &SimDocker) -> EventLog {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (docker2, log2) = (docker.clone(), log.clone());
    executor.spawn_world("events", async move {
        let mut events = docker2.events().await.unwrap();
        while let Some(event) = events.next().await {
            log2.lock().unwrap().push(event.map(|e| (e.kind, e.attributes)));
        }
    });
    executor.run_until_stalled();
    log
}

#[test]
fn events_follow_the_lifecycle() {
    let (mut executor, docker) = world(12);
    let log = collect_events(&mut executor, &docker);
    let labels: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
    let id = docker.create("web", "nginx", labels);
    docker.start(&id).unwrap();
    docker.rename(&id, "web2").unwrap();
    docker.restart(&id).unwrap();
    docker.stop(&id).unwrap();
    docker.start(&id).unwrap();
    docker.exit(&id, 3).unwrap();
    docker.remove(&id).unwrap();
    executor.run_until_stalled();
    use ContainerEventKind::*;
    let log = log.lock().unwrap();
    let kinds: Vec<ContainerEventKind> = log.iter().map(|e| e.as_ref().unwrap().0).collect();
    assert_eq!(kinds, vec![Create, Start, Rename, Die, Stop, Start, Restart, Die, Stop, Start, Die, Destroy]);
    let attributes = |i: usize| log[i].as_ref().unwrap().1.clone();
    assert_eq!(attributes(0)["name"], "web");
    assert_eq!(attributes(0)["image"], "nginx");
    assert_eq!(attributes(0)["team"], "a");
    assert_eq!(attributes(2)["name"], "web2");
    assert_eq!(attributes(2)["oldName"], "/web");
    assert_eq!(attributes(10)["exitCode"], "3");
    assert_eq!(docker.counters().events_delivered, 12);
}

#[test]
fn events_faults_lose_duplicate_and_hold_back_the_next_events() {
    use ContainerEventKind::*;
    let (mut executor, docker) = world(21);
    let log = collect_events(&mut executor, &docker);
    let id = docker.create("job", "busybox", BTreeMap::new());
    // Lost: the start never arrives; the world remembers when.
    docker.fault_events(EventFault::Lose, 1);
    docker.start(&id).unwrap();
    assert_eq!(docker.events_disturbed_at(&id), Some(executor.now()));
    // Duplicated: the rename twice.
    docker.fault_events(EventFault::Duplicate, 1);
    docker.rename(&id, "job2").unwrap();
    // Held back: the die (and the stop) arrive after the start that follows them, stale.
    docker.fault_events(EventFault::Delay, 2);
    docker.stop(&id).unwrap();
    docker.start(&id).unwrap();
    // The die and the destroy of an `rm -f` lost: the removal is unannounced.
    docker.fault_events(EventFault::Lose, 2);
    docker.remove(&id).unwrap();
    executor.run_until_stalled();
    let kinds: Vec<ContainerEventKind> = log.lock().unwrap().iter().map(|e| e.as_ref().unwrap().0).collect();
    assert_eq!(kinds, vec![Create, Rename, Rename, Start, Die, Stop]);
    let counters = docker.counters();
    assert_eq!((counters.events_lost, counters.events_duplicated, counters.events_delayed), (3, 1, 2));
    assert_eq!(docker.unannounced_removals_since(Instant::ZERO), 1);
}

#[test]
fn events_held_back_die_with_the_connection() {
    let (mut executor, docker) = world(22);
    let log = collect_events(&mut executor, &docker);
    let id = running(&docker, "app");
    docker.fault_events(EventFault::Delay, 1);
    docker.stop(&id).unwrap();
    docker.drop_event_streams();
    executor.run_until_stalled();
    let log2 = collect_events(&mut executor, &docker);
    docker.start(&id).unwrap();
    executor.run_until_stalled();
    let kinds: Vec<ContainerEventKind> = log2.lock().unwrap().iter().map(|e| e.as_ref().unwrap().0).collect();
    assert_eq!(kinds, vec![ContainerEventKind::Start], "the held die is not replayed to a new connection");
    assert!(log.lock().unwrap().last().unwrap().is_err());
}

#[test]
fn a_paused_container_runs_writes_nothing_and_keeps_its_stream_open() {
    let (mut executor, docker) = world(23);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    docker.pause(&id).unwrap();
    assert_eq!(docker.pause(&id), Err(CommandError::Paused));
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 1)), Err(CommandError::Paused));
    let docker2 = docker.clone();
    let (listed, inspected) = executor
        .block_on(async move { (docker2.list().await.unwrap(), docker2.inspect(&docker2.container_ids()[0]).await) })
        .unwrap();
    assert!(listed[0].running && inspected.unwrap().running, "paused is running for list and inspect");
    let got = Arc::new(Mutex::new(None));
    let (docker2, id2, got2) = (docker.clone(), id.clone(), got.clone());
    executor.spawn_world("reader", async move {
        let stream = docker2.logs(&id2, opts(true, 0)).await.unwrap();
        *got2.lock().unwrap() = Some(drain(stream).await);
    });
    executor.run_until_stalled();
    assert_eq!(docker.counters().log_streams_open, 1, "the follow stream stays open, silent");
    docker.unpause(&id).unwrap();
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 1)), Ok(2..3));
    // A stop of a paused container unfreezes it first; its stream ends.
    docker.pause(&id).unwrap();
    docker.stop(&id).unwrap();
    executor.run_until_stalled();
    let (chunks, error) = got.lock().unwrap().take().unwrap();
    assert!(error.is_none());
    assert_eq!(decode(&chunks).0.len(), 3);
    assert_eq!(docker.counters().pauses, 2);
}

#[test]
fn daemon_restart_ends_events_and_log_streams_and_fails_calls_while_down() {
    let (mut executor, docker) = world(13);
    let id = running(&docker, "app");
    let events = collect_events(&mut executor, &docker);
    let got = Arc::new(Mutex::new(None));
    let (docker2, id2, got2) = (docker.clone(), id.clone(), got.clone());
    executor.spawn_world("reader", async move {
        let stream = docker2.logs(&id2, opts(true, 0)).await.unwrap();
        *got2.lock().unwrap() = Some(drain(stream).await);
    });
    executor.run_until_stalled();
    assert_eq!(docker.counters().event_streams_open, 1);
    docker.daemon_down();
    executor.run_until_stalled();
    assert!(matches!(events.lock().unwrap().last(), Some(Err(EngineError::Unavailable(_)))));
    assert!(matches!(got.lock().unwrap().take(), Some((_, Some(EngineError::Unavailable(_))))));
    assert_eq!(docker.counters().event_streams_open, 0);
    assert_eq!(docker.counters().log_streams_open, 0);
    let docker2 = docker.clone();
    let down = executor.block_on(async move { docker2.list().await.err() }).unwrap();
    assert!(matches!(down, Some(EngineError::Unavailable(_))));
    docker.daemon_up();
    let docker2 = docker.clone();
    let listed = executor.block_on(async move { docker2.list().await.unwrap() }).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].running, "live-restore: containers keep running");
}

#[test]
fn injected_call_failures_fail_exactly_the_next_calls() {
    let (mut executor, docker) = world(14);
    docker.fail_next(ApiCall::List, 2);
    let docker2 = docker.clone();
    let results = executor
        .block_on(async move {
            let mut results = Vec::new();
            for _ in 0..3 {
                results.push(docker2.list().await.is_ok());
            }
            results
        })
        .unwrap();
    assert_eq!(results, vec![false, false, true]);
    assert_eq!(docker.counters().api_failures, 2);
}

#[test]
fn a_stalled_stream_never_wakes_and_never_ends() {
    let (mut executor, docker) = world(15);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    let outcome = Arc::new(Mutex::new(Vec::new()));
    let (docker2, id2, outcome2) = (docker.clone(), id.clone(), outcome.clone());
    let handle = executor.handle();
    executor.spawn_world("reader", async move {
        let mut stream = docker2.logs(&id2, opts(true, 0)).await.unwrap();
        // Read what is there, then stall.
        let first = stream.next().await;
        outcome2.lock().unwrap().push(format!("first:{}", first.is_some()));
        docker2.fault_open_streams(&id2, StreamFault::Stall);
        let next = stream.next();
        let timeout = handle.sleep(Duration::from_secs(3600));
        futures::pin_mut!(timeout);
        match futures::future::select(next, timeout).await {
            futures::future::Either::Left(_) => outcome2.lock().unwrap().push("woke".into()),
            futures::future::Either::Right(_) => outcome2.lock().unwrap().push("timed out".into()),
        }
    });
    executor.advance_for(Duration::from_secs(1));
    let polls = executor.polls();
    for _ in 0..10 {
        docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    }
    docker.stop(&id).unwrap();
    executor.advance_for(Duration::from_secs(60));
    assert_eq!(executor.polls(), polls, "a stalled stream is never woken");
    executor.advance_for(Duration::from_secs(3600));
    assert_eq!(*outcome.lock().unwrap(), vec!["first:true".to_string(), "timed out".to_string()]);
    assert_eq!(docker.counters().log_streams_open, 0);
}

#[test]
fn error_mid_frame_cuts_a_frame_then_errors_then_ends() {
    let (mut executor, docker) = world(16);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 10)).unwrap();
    docker.fault_next_open(&id, StreamFault::ErrorMidFrame).unwrap();
    let (chunks, error) = drain_logs(&mut executor, &docker, &id, opts(true, 0));
    assert!(matches!(error, Some(EngineError::Unavailable(_))));
    let (entries, leftover) = decode(&chunks);
    assert!(leftover > 0, "the stream broke inside a frame");
    assert_eq!(seqs(&entries, StdStream::Stdout), (0..9).collect::<Vec<_>>());
    // The entries are still in the log for the next request.
    let again = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(again.len(), 10);
}

#[test]
fn end_fault_ends_the_stream_while_the_container_runs() {
    let (mut executor, docker) = world(17);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    docker.fault_next_open(&id, StreamFault::End).unwrap();
    let (chunks, error) = drain_logs(&mut executor, &docker, &id, opts(true, 0));
    assert_eq!((chunks.len(), error), (0, None));
    assert!(docker.container(&id).unwrap().running);
}

#[test]
fn trickle_hands_out_small_chunks_slowly() {
    let (mut executor, docker) = world(18);
    let id = running(&docker, "app");
    docker.emit(&id, Burst { line_bytes: 100, ..Burst::lines(StdStream::Stdout, 10) }).unwrap();
    let delay = Duration::from_millis(250);
    docker.fault_next_open(&id, StreamFault::Trickle { chunk_bytes: 64, delay }).unwrap();
    let start = executor.now();
    let (chunks, error) = drain_logs(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(error, None);
    assert!(chunks.iter().all(|chunk| chunk.len() <= 64));
    let total: usize = chunks.iter().map(|chunk| chunk.len()).sum();
    assert_eq!(total, 10 * (8 + 30 + 1 + 100 + 1));
    let elapsed = executor.now() - start;
    assert!(elapsed >= delay * (chunks.len() as u32 - 1), "{elapsed:?} for {} chunks", chunks.len());
    assert_eq!(decode(&chunks).0.len(), 10);
}

#[test]
fn rotation_deletes_old_entries_and_reports_what_is_retained() {
    let (mut executor, docker) = world(19);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    docker.emit(&id, Burst { line_bytes: 20_000, ..Burst::lines(StdStream::Stderr, 2) }).unwrap();
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    // 5 + 4 + 5 = 14 entries; keep the last 8: stderr line 0's second part + line 1.
    assert_eq!(docker.rotate_log(&id, 8, RotationEffect::Continue).unwrap(), 6);
    let report = docker.container(&id).unwrap();
    assert_eq!(report.retained_from, [5, 1]);
    assert_eq!(report.entries_deleted, 6);
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(entries.len(), 8);
    assert_eq!(seqs(&entries, StdStream::Stdout), (5..10).collect::<Vec<_>>());
    assert_eq!(docker.counters().entries_deleted_by_rotation, 6);
}

#[test]
fn only_a_running_containers_log_rotates() {
    // The json-file driver rotates when a write would pass `max-size`: nothing writes to
    // a paused or stopped container's log, so it never rotates under a reader.
    let (_executor, docker) = world(21);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    docker.pause(&id).unwrap();
    assert_eq!(docker.rotate_log(&id, 1, RotationEffect::End), Err(CommandError::Paused));
    docker.unpause(&id).unwrap();
    docker.stop(&id).unwrap();
    assert_eq!(docker.rotate_log(&id, 1, RotationEffect::End), Err(CommandError::NotRunning));
    assert_eq!(docker.counters().entries_deleted_by_rotation, 0);
    docker.start(&id).unwrap();
    assert_eq!(docker.rotate_log(&id, 1, RotationEffect::Continue), Ok(4));
}

#[test]
fn rotation_can_end_or_stall_open_followers() {
    for (effect, ends) in
        [(RotationEffect::End, true), (RotationEffect::Stall, false), (RotationEffect::Continue, false)]
    {
        let (mut executor, docker) = world(20);
        let id = running(&docker, "app");
        let ended = Arc::new(Mutex::new(false));
        let (docker2, id2, ended2) = (docker.clone(), id.clone(), ended.clone());
        executor.spawn_world("reader", async move {
            drain(docker2.logs(&id2, opts(true, 0)).await.unwrap()).await;
            *ended2.lock().unwrap() = true;
        });
        executor.run_until_stalled();
        docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
        docker.rotate_log(&id, 1, effect).unwrap();
        executor.advance_for(Duration::from_secs(1));
        assert_eq!(*ended.lock().unwrap(), ends, "{effect:?}");
    }
}

#[test]
fn counters_track_opens_and_open_streams() {
    let (mut executor, docker) = world(21);
    let a = running(&docker, "a");
    let b = running(&docker, "b");
    let (docker2, a2, b2) = (docker.clone(), a.clone(), b.clone());
    let handle = executor.handle();
    executor.spawn_world("readers", async move {
        let s1 = docker2.logs(&a2, opts(true, 0)).await.unwrap();
        let s2 = docker2.logs(&a2, opts(true, 0)).await.unwrap();
        let s3 = docker2.logs(&b2, opts(true, 0)).await.unwrap();
        handle.sleep(Duration::from_secs(10)).await;
        drop((s1, s2, s3));
    });
    executor.advance_for(Duration::from_secs(1));
    let counters = docker.counters();
    assert_eq!((counters.log_streams_open, counters.log_opens_total), (3, 3));
    assert_eq!(docker.container(&a).unwrap().streams_open, 2);
    executor.advance_for(Duration::from_secs(10));
    let counters = docker.counters();
    assert_eq!((counters.log_streams_open, counters.log_streams_open_max), (0, 3));
    assert_eq!(docker.container(&a).unwrap().opens_total, 2);
    assert_eq!(docker.container(&b).unwrap().opens_total, 1);
}

#[test]
fn api_latency_lets_the_world_change_in_between() {
    let (mut executor, docker) = world(22);
    let id = running(&docker, "app");
    docker.set_api_latency(Duration::from_millis(50));
    let (docker2, id2) = (docker.clone(), id.clone());
    executor.spawn_world("late reader", async move {
        let result = docker2.logs(&id2, opts(true, 0)).await;
        assert!(matches!(result, Err(EngineError::NotFound(_))));
    });
    executor.advance_for(Duration::from_millis(10));
    docker.remove(&id).unwrap();
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), crate::executor::RunOutcome::Idle);
    assert_eq!(executor.live_world_tasks(), 0);
}

#[test]
fn container_ids_are_deterministic_per_seed() {
    let ids = |seed| {
        let (_executor, docker) = world(seed);
        (0..3).map(|i| docker.create(&format!("c{i}"), "img", BTreeMap::new())).collect::<Vec<_>>()
    };
    assert_eq!(ids(1), ids(1));
    assert_ne!(ids(1), ids(2));
    assert_eq!(ids(1)[0].as_str().len(), 64);
}

#[test]
fn since_never_cuts_a_long_line() {
    let (mut executor, docker) = world(23);
    let id = running(&docker, "app");
    executor.advance_for(Duration::from_millis(999));
    // Three lines 1 ms apart, each three entries: the second line starts exactly at the
    // next whole second.
    let burst = Burst { line_bytes: 40_000, entry_gap: Duration::from_millis(1), ..Burst::lines(StdStream::Stdout, 3) };
    docker.emit(&id, burst).unwrap();
    let since = WALL_START / SECOND + 1;
    let entries = read_all(&mut executor, &docker, &id, opts(false, since));
    assert_eq!(entries.len(), 6, "two whole lines of three entries");
    assert_eq!(line_seq(&entries[0].content), Some(1));
}

#[test]
fn literal_lines_are_written_verbatim_and_split_like_any_other() {
    let (mut executor, docker) = world(24);
    let id = running(&docker, "app");
    docker.emit_line(&id, StdStream::Stdout, b"out 1").unwrap();
    assert_eq!(docker.emit_line(&id, StdStream::Stderr, b"err 1").unwrap(), 0);
    let long = vec![b'y'; 40 * 1024];
    assert_eq!(docker.emit_line(&id, StdStream::Stdout, &long).unwrap(), 1);
    docker.emit(&id, Burst::lines(StdStream::Stdout, 1)).unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    let contents: Vec<(StdStream, usize)> = entries.iter().map(|e| (e.stream, e.content.len())).collect();
    use StdStream::{Stderr as E, Stdout as O};
    assert_eq!(contents, vec![(O, 6), (E, 6), (O, 16_384), (O, 16_384), (O, 8_193), (O, 2)]);
    assert_eq!(entries[0].content, Bytes::from_static(b"out 1\n"));
    assert!(entries[2..5].iter().all(|e| e.ts == entries[2].ts));
    assert_eq!(line_seq(&entries[5].content), Some(2));
}

#[test]
fn timestamp_text_matches_the_engine_formatter_across_seconds() {
    let mut text = super::log::TimestampText::default();
    let mut rng = crate::executor::SimRng::new(5);
    let mut ts: i64 = -3 * SECOND;
    for _ in 0..10_000 {
        ts += rng.range(0..400_000_000) as i64;
        let ours = text.text(ts).to_vec();
        let mut expected = Vec::new();
        engine::parse::timestamp::format_rfc3339_nanos(ts, &mut expected);
        assert_eq!(ours, expected, "ts {ts}");
    }
    // Jumps of up to two days either way (a reader after another, a host clock step):
    // a new day is formatted afresh, a new second of the same day patched.
    for _ in 0..10_000 {
        ts += rng.range(0..4 * 86_400 * SECOND as u64) as i64 - 2 * 86_400 * SECOND;
        let ours = text.text(ts).to_vec();
        let mut expected = Vec::new();
        engine::parse::timestamp::format_rfc3339_nanos(ts, &mut expected);
        assert_eq!(ours, expected, "ts {ts}");
    }
}

#[test]
fn a_line_written_over_time_is_readable_piece_by_piece_with_the_first_cuts_timestamp() {
    // As Docker 20.10 did with `head -c 8192` five times, 300 ms apart, then `echo`: the
    // 16 KiB pieces appear as they are cut, all stamped when the first was cut.
    let (mut executor, docker) = world(25);
    let id = running(&docker, "app");
    docker.emit_line(&id, StdStream::Stdout, b"out 1").unwrap();
    executor.advance_for(Duration::from_millis(300));
    let cut_at = WALL_START + 300 * 1_000_000;
    assert_eq!(docker.emit_line_head(&id, StdStream::Stdout, &[b'y'; 16_384]).unwrap(), 1);
    docker.emit_line(&id, StdStream::Stderr, b"err 1").unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    let summary = |entries: &[Entry]| -> Vec<(StdStream, usize, bool, UnixNanos)> {
        entries.iter().map(|e| (e.stream, e.content.len(), e.content.ends_with(b"\n"), e.ts)).collect()
    };
    use StdStream::{Stderr as E, Stdout as O};
    assert_eq!(summary(&entries), vec![(O, 6, true, WALL_START), (O, 16_384, false, cut_at), (E, 6, true, cut_at)]);
    executor.advance_for(Duration::from_millis(600));
    assert_eq!(docker.emit_line_head(&id, StdStream::Stdout, &[b'y'; 16_384]).unwrap(), 1);
    executor.advance_for(Duration::from_millis(600));
    assert_eq!(docker.emit_line(&id, StdStream::Stdout, &[b'y'; 8_192]).unwrap(), 1);
    docker.emit_line(&id, StdStream::Stdout, b"out 3").unwrap();
    let entries = read_all(&mut executor, &docker, &id, opts(false, 0));
    let now = WALL_START + 1_500 * 1_000_000;
    assert_eq!(
        summary(&entries),
        vec![
            (O, 6, true, WALL_START),
            (O, 16_384, false, cut_at),
            (E, 6, true, cut_at),
            (O, 16_384, false, cut_at),
            (O, 8_193, true, cut_at),
            (O, 6, true, now),
        ]
    );
    assert_eq!(docker.container(&id).unwrap().lines_written, [3, 1]);
    // `tail` counts the pieces as entries; a stop ends a line still open.
    assert_eq!(read_all(&mut executor, &docker, &id, LogOptions { tail: Some(2), ..opts(false, 0) }).len(), 2);
    docker.emit_line_head(&id, StdStream::Stdout, &[b'z'; 16_384]).unwrap();
    docker.stop(&id).unwrap();
    docker.start(&id).unwrap();
    assert_eq!(docker.emit_line(&id, StdStream::Stdout, b"out 5").unwrap(), 4);
    let last = read_all(&mut executor, &docker, &id, opts(false, 0)).pop().unwrap();
    assert_eq!((last.content, last.ts), (Bytes::from_static(b"out 5\n"), now));
}

#[test]
fn rotation_inside_a_line_written_over_time_excuses_that_line() {
    let (_executor, docker) = world(26);
    let id = running(&docker, "app");
    docker.emit_line(&id, StdStream::Stdout, b"out 0").unwrap();
    docker.emit_line_head(&id, StdStream::Stdout, &[b'y'; 32_768]).unwrap();
    docker.emit_line(&id, StdStream::Stdout, b"tail").unwrap();
    // Entries: out 0, y, y, tail⏎. Keeping the last two deletes the line's head; keeping
    // the last one deletes the whole open burst.
    docker.rotate_log(&id, 2, RotationEffect::Continue).unwrap();
    assert_eq!(docker.container(&id).unwrap().retained_from, [2, 0]);
    docker.rotate_log(&id, 1, RotationEffect::Continue).unwrap();
    assert_eq!(docker.container(&id).unwrap().retained_from, [2, 0]);
}

/// Read `id`'s whole log once (no follow): the world then counts every line as read.
fn read_whole_log(executor: &mut Executor, docker: &SimDocker, id: &ContainerId) {
    let (_, error) = drain_logs(executor, docker, id, opts(false, 0));
    assert_eq!(error, None);
}

#[test]
fn lines_read_but_undelivered_of_a_removed_container_are_lost_when_the_agent_dies() {
    let (mut executor, docker) = world(12);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    read_whole_log(&mut executor, &docker, &id);
    docker.remove(&id).unwrap();
    // Read before the removal: the removal itself takes nothing.
    assert_eq!(docker.container(&id).unwrap().lost_to_removal, [0, 0]);
    assert_eq!(docker.excused_through(&id, StdStream::Stdout, 2), 2);
    // The agent dies having delivered 2: lines 2..5 are gone with it.
    assert_eq!(docker.abandon_removed_reads(|_, _| 2), 3);
    assert_eq!(docker.container(&id).unwrap().lost_to_removal, [3, 0]);
    assert_eq!(docker.excused_through(&id, StdStream::Stdout, 2), 5);
    docker.forget_reads();
    // Named once; and a removal before the last death is not the next agent's.
    assert_eq!(docker.abandon_removed_reads(|_, _| 0), 0);
}

#[test]
fn a_removal_before_the_last_death_is_not_excused_by_the_next() {
    let (mut executor, docker) = world(13);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 4)).unwrap();
    read_whole_log(&mut executor, &docker, &id);
    docker.remove(&id).unwrap();
    docker.forget_reads();
    assert_eq!(docker.abandon_removed_reads(|_, _| 1), 0);
    assert_eq!(docker.excused_through(&id, StdStream::Stdout, 1), 1);
}

#[test]
fn lines_read_but_undelivered_then_rotated_away_are_lost_when_the_agent_dies() {
    let (mut executor, docker) = world(14);
    let id = running(&docker, "app");
    docker.emit(&id, Burst::lines(StdStream::Stdout, 6)).unwrap();
    read_whole_log(&mut executor, &docker, &id);
    // Read before the rotation: the rotation itself takes nothing.
    assert_eq!(docker.rotate_log(&id, 2, RotationEffect::Continue).unwrap(), 4);
    assert_eq!(docker.container(&id).unwrap().lost_to_rotation, [0, 0]);
    // The agent dies having delivered 1: lines 1..4 were deleted, 4 and 5 can be read again.
    assert_eq!(docker.abandon_removed_reads(|_, _| 1), 3);
    assert_eq!(docker.container(&id).unwrap().lost_to_rotation, [3, 0]);
    assert_eq!(docker.excused_through(&id, StdStream::Stdout, 1), 4);
    docker.forget_reads();
    assert_eq!(docker.abandon_removed_reads(|_, _| 1), 0);
}

/// Read a whole (non-follow) log as raw bytes.
fn read_raw(executor: &mut Executor, docker: &SimDocker, id: &ContainerId) -> Vec<u8> {
    let docker = docker.clone();
    let id = id.clone();
    let (chunks, error) =
        executor.block_on(async move { drain(docker.logs(&id, opts(false, 0)).await.unwrap()).await }).unwrap();
    assert_eq!(error, None);
    chunks.concat()
}

#[test]
fn a_tty_container_serves_raw_entries_ending_in_crlf_all_on_stdout() {
    use engine::parse::tty::TtyDecoder;
    let (mut executor, docker) = world(8);
    let id = docker.create_tty("term", "busybox", BTreeMap::new(), true);
    docker.start(&id).unwrap();
    let info = executor.block_on({
        let (docker, id) = (docker.clone(), id.clone());
        async move { docker.inspect(&id).await.unwrap() }
    });
    assert!(info.unwrap().tty, "inspect says tty");
    // stderr writes land on stdout: one sequence across both.
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap(), 0..2);
    assert_eq!(docker.emit(&id, Burst::lines(StdStream::Stderr, 2)).unwrap(), 2..4);
    let long = Burst { line_bytes: 40_000, ..Burst::lines(StdStream::Stderr, 1) };
    assert_eq!(docker.emit(&id, long).unwrap(), 4..5);
    assert_eq!(docker.emit_line(&id, StdStream::Stderr, b"hello").unwrap(), 5);
    assert_eq!(docker.container(&id).unwrap().lines_written, [6, 0]);

    let raw = read_raw(&mut executor, &docker, &id);
    // No frame headers: the log starts with a timestamp, and each short line is
    // `timestamp SP content \r\n`.
    let first_line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
    let (ts, content) = split_timestamp(&Bytes::copy_from_slice(&raw[..first_line_end])).unwrap();
    assert!(ts >= WALL_START);
    assert_eq!(content, Bytes::from_static(b"0"));
    assert_eq!(raw.windows(2).filter(|w| *w == b"\r\n").count(), 6, "every line ends in \\r\\n");
    assert_eq!(raw.iter().filter(|b| **b == b'\n').count(), 6, "no bare \\n");
    assert!(raw.ends_with(b" hello\r\n"));

    // The engine's TTY decoder reads it back: all stdout, lines in order, the long one
    // in 16 KiB pieces that all carry its timestamp.
    let mut decoder = TtyDecoder::new(1 << 20);
    decoder.push(Bytes::from(raw));
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut line = Vec::new();
    let mut pieces = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        assert_eq!(frame.stream, StdStream::Stdout);
        let (ts, content) = split_timestamp(&frame.payload).unwrap();
        pieces.push((ts, content.len()));
        line.extend_from_slice(&content);
        if line.ends_with(b"\n") {
            line.pop();
            lines.push(std::mem::take(&mut line));
        }
    }
    let expected: Vec<Vec<u8>> =
        vec![line_content(0, 0), line_content(1, 0), line_content(2, 0), line_content(3, 0), line_content(4, 40_000)];
    assert_eq!(lines[..5], expected[..]);
    assert_eq!(lines[5], b"hello".to_vec());
    let long_pieces: Vec<_> = pieces[4..7].to_vec();
    assert_eq!(long_pieces.iter().map(|p| p.1).collect::<Vec<_>>(), vec![16_384, 16_384, 40_000 - 32_768 + 1]);
    assert!(long_pieces.iter().all(|p| p.0 == long_pieces[0].0));
}

#[test]
fn a_tty_log_decodes_the_same_under_random_chunking() {
    use engine::parse::tty::TtyDecoder;
    let (mut executor, docker) = world(9);
    docker.set_chunking(97, 0.9);
    let id = docker.create_tty("term", "busybox", BTreeMap::new(), true);
    docker.start(&id).unwrap();
    docker.emit(&id, Burst { line_bytes: 30, ..Burst::lines(StdStream::Stdout, 50) }).unwrap();
    docker.emit(&id, Burst { line_bytes: 20_000, ..Burst::lines(StdStream::Stderr, 2) }).unwrap();
    let (chunks, error) = drain_logs(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(error, None);
    assert!(chunks.len() > 10, "chunked");
    let mut decoder = TtyDecoder::new(1 << 20);
    let mut seqs = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(frame) = decoder.next_frame().unwrap() {
            let (_, content) = split_timestamp(&frame.payload).unwrap();
            if let Some(seq) = line_seq(&content) {
                seqs.push(seq);
            }
        }
    }
    assert_eq!(seqs, (0..52).collect::<Vec<u64>>());
}

#[test]
fn whole_frames_in_a_cut_render_are_exactly_the_frames_before_the_cut() {
    use super::log::{ContainerLog, LogCursor, Qualify, ReadRequest, RenderedRun, TimestampText};
    for tty in [false, true] {
        let mut log = ContainerLog::new(tty, false);
        log.append(StdStream::Stdout, 5, 20, WALL_START, 1_000);
        log.append(StdStream::Stderr, 1, 40_000, WALL_START + SECOND, 0);
        log.append(StdStream::Stdout, 3, 16_384, WALL_START + 2 * SECOND, 7);
        log.append(StdStream::Stderr, 4, 3, WALL_START + 3 * SECOND, 1);
        for since in [None, Some(WALL_START + 2 * SECOND + 10)] {
            let start = log.seek(ReadRequest { since, tail: None });
            let (mut cursor, mut qualify) = (start.cursor, start.qualify);
            let (mut out, mut runs) = (BytesMut::new(), Vec::<RenderedRun>::new());
            let far = LogCursor { burst: usize::MAX, entry: 0 };
            log.render(&mut cursor, &mut qualify, far, usize::MAX, &mut out, &mut TimestampText::default(), &mut runs);
            // The frames one by one: where each ends, and the position after it.
            let (mut one, mut ends) = (start.cursor, Vec::new());
            let mut qualify_one: [Qualify; 2] = start.qualify;
            let mut single = BytesMut::new();
            while one < log.end() {
                let mut frame = BytesMut::new();
                log.render(
                    &mut one,
                    &mut qualify_one,
                    far,
                    1,
                    &mut frame,
                    &mut TimestampText::default(),
                    &mut Vec::new(),
                );
                assert!(!frame.is_empty());
                single.extend_from_slice(&frame);
                ends.push((single.len(), one));
            }
            assert_eq!(single, out, "tty={tty} since={since:?}");
            let lines =
                |at: LogCursor| [StdStream::Stdout, StdStream::Stderr].map(|stream| log.lines_before(stream, at));
            for bytes in 0..=out.len() {
                let expected = ends.iter().take_while(|(end, _)| *end <= bytes).last().map(|(_, at)| lines(*at));
                let got = log.whole_frames_in(&runs, bytes).map(lines);
                assert_eq!(got, expected, "tty={tty} since={since:?} bytes={bytes}");
            }
        }
    }
}

#[path = "clock_step_tests.rs"]
mod clock_step;

#[path = "empty_lines_tests.rs"]
mod empty_lines;

#[test]
fn first_sight_now_excuses_only_the_first_answered_list_of_a_first_run() {
    let (mut executor, docker) = world(31);
    let before_list = running(&docker, "before-list");
    let by_inspect = running(&docker, "by-inspect");
    docker.emit(&before_list, Burst::lines(StdStream::Stdout, 3)).unwrap();
    docker.emit(&by_inspect, Burst::lines(StdStream::Stdout, 2)).unwrap();
    docker.set_first_sight_now(true);
    // An event or inspect names a container the agent reads from its beginning.
    let (inspecting, id) = (docker.clone(), by_inspect.clone());
    executor.block_on(async move { inspecting.inspect(&id).await.unwrap() }).unwrap();
    let listing = docker.clone();
    executor.block_on(async move { listing.list().await.unwrap() }).unwrap();
    let later = running(&docker, "later");
    docker.emit(&later, Burst::lines(StdStream::Stdout, 4)).unwrap();
    let listing = docker.clone();
    executor.block_on(async move { listing.list().await.unwrap() }).unwrap();
    let excused: BTreeMap<ContainerId, u64> =
        docker.containers().into_iter().map(|report| (report.id.clone(), report.lost_to_first_sight[0])).collect();
    assert_eq!(excused[&before_list], 3, "written before the first list");
    assert_eq!(excused[&by_inspect], 0, "seen first by an inspect");
    assert_eq!(excused[&later], 0, "first seen by a later list");
}
