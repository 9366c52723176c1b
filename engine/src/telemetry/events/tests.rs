//! Tests for [`super`]: each event moves exactly its counters and gauges, and health
//! follows the sink, Docker and checkpoint events.

use std::time::Duration;

use super::*;

fn at(seconds: u64) -> Instant {
    Instant::from_nanos(seconds * 1_000_000_000)
}

#[test]
fn sink_events_count_requests_latency_and_health() {
    let telemetry = Telemetry::default();
    SinkResponded { status: SinkStatus::Ok, elapsed: Duration::from_millis(10) }.emit(&telemetry);
    assert!(telemetry.health(Component::Sink).is_up());
    SinkResponded { status: SinkStatus::Retry, elapsed: Duration::from_millis(20) }.emit(&telemetry);
    SinkRetrying { reason: "http_503", failures: 1, delay: Duration::from_secs(1) }.emit(&telemetry, at(1));
    assert!(!telemetry.health(Component::Sink).is_up());
    assert_eq!(telemetry.health(Component::Sink).failing_since(), Some(at(1)));
    SinkResponded { status: SinkStatus::Ok, elapsed: Duration::from_millis(40) }.emit(&telemetry);
    assert!(telemetry.health(Component::Sink).is_up());
    // A 413 says nothing about the sink's health.
    SinkResponded { status: SinkStatus::TooLarge, elapsed: Duration::ZERO }.emit(&telemetry);
    assert_eq!(telemetry.sink_requests(SinkStatus::Retry), 1);
    assert_eq!(telemetry.sink_requests(SinkStatus::Ok), 2);
    assert_eq!(telemetry.sink_requests(SinkStatus::TooLarge), 1);
    assert_eq!(telemetry.batch_send_seconds.snapshot().1, 4);
    LinesDelivered { lines: 3, bytes: 30 }.emit(&telemetry);
    assert_eq!((Telemetry::get(&telemetry.lines_out_total), Telemetry::get(&telemetry.bytes_out_total)), (3, 30));
}

#[test]
fn drops_are_counted_by_reason() {
    let telemetry = Telemetry::default();
    LinesDropped { reason: DropReason::SinkTooOld, lines: 4, detail: "too old" }.emit(&telemetry, at(0));
    // Within the burst window: counted, not logged again.
    LinesDropped { reason: DropReason::SinkTooOld, lines: 1, detail: "too old" }.emit(&telemetry, at(1));
    MalformedFrame { container: "abc", detail: "bad header" }.emit(&telemetry, at(2));
    assert_eq!(telemetry.dropped(DropReason::SinkTooOld), 5);
    assert_eq!(telemetry.dropped(DropReason::MalformedFrame), 1);
    assert_eq!(telemetry.dropped(DropReason::SinkRejected), 0);
}

#[test]
fn source_events_count_streams_and_lines() {
    let telemetry = Telemetry::default();
    StreamOpened.emit(&telemetry);
    StreamProbed { behind: true }.emit(&telemetry);
    StreamProbed { behind: false }.emit(&telemetry);
    StreamProbed { behind: false }.emit(&telemetry);
    StreamRotated.emit(&telemetry);
    StreamFailed { container: "abc", error: &"connection reset" }.emit(&telemetry, at(0));
    LinesRead { lines: 5, bytes: 50, truncated: 1, duplicates: 2 }.emit(&telemetry);
    let get = Telemetry::get;
    assert_eq!(get(&telemetry.container_stream_opens_total), 1);
    assert_eq!(telemetry.container_stream_probes_total.each_ref().map(get), [2, 1]);
    assert_eq!(get(&telemetry.container_stream_rotations_total), 1);
    assert_eq!(get(&telemetry.container_stream_errors_total), 1);
    assert_eq!(get(&telemetry.lines_in_total), 5);
    assert_eq!(get(&telemetry.bytes_in_total), 50);
    assert_eq!(get(&telemetry.lines_truncated_total), 1);
    assert_eq!(get(&telemetry.lines_duplicate_skipped_total), 2);
}

#[test]
fn yields_gaps_unread_tails_and_inspect_failures() {
    let telemetry = Telemetry::default();
    let get = Telemetry::get;
    // A yield is a planned drop and reopen: counted as a rotation, not an error.
    StreamYielded.emit(&telemetry);
    StreamRotated.emit(&telemetry);
    assert_eq!(get(&telemetry.container_stream_rotations_total), 2);
    assert_eq!(get(&telemetry.container_stream_errors_total), 0);
    // Gaps count what the reader found; the log line is burst-limited, the count is not.
    LogGapFound { container: "abc", gaps: 2 }.emit(&telemetry, at(0));
    LogGapFound { container: "abc", gaps: 1 }.emit(&telemetry, at(1));
    assert_eq!(get(&telemetry.container_log_gaps_total), 3);
    TailUnread.emit(&telemetry);
    assert_eq!(get(&telemetry.container_tails_unread_total), 1);
    // An inspect failure logs (within the window of the gap's line: suppressed) and
    // counts nothing: it is not a stream error, and Docker's health is discovery's call.
    InspectFailed { container: "abc", error: &"timeout" }.emit(&telemetry, at(2));
    assert_eq!(get(&telemetry.container_stream_errors_total), 0);
    assert_eq!(telemetry.health(Component::Docker).last_error(), "");
    // The gap at 0 s was logged; the gap at 1 s, the inspect failure and this probe
    // fall in its window and are suppressed; the next window reports all three.
    assert_eq!(telemetry.docker_log.should_log(at(3)), None);
    assert_eq!(telemetry.docker_log.should_log(at(11)), Some(3));
}

#[test]
fn gauges_go_up_and_back_down() {
    let telemetry = Telemetry::default();
    let get = Telemetry::get;
    StreamSlotWaiting.emit(&telemetry);
    StreamSlotWaitEnded.emit(&telemetry);
    StreamSlotAcquired.emit(&telemetry);
    assert_eq!((get(&telemetry.container_streams_waiting), get(&telemetry.container_streams_active)), (0, 1));
    StreamSlotReleased.emit(&telemetry);
    assert_eq!(get(&telemetry.container_streams_active), 0);

    QueueChanged { lines_delta: 2, bytes_delta: 200 }.emit(&telemetry);
    QueueChanged { lines_delta: -2, bytes_delta: -200 }.emit(&telemetry);
    assert_eq!((get(&telemetry.queue_lines), get(&telemetry.queue_bytes)), (0, 0));
    assert_eq!(get(&telemetry.queue_bytes_max_seen), 200);

    ContainersCounted { monitored: 3, retiring: 1 }.emit(&telemetry);
    assert_eq!((get(&telemetry.containers_monitored), get(&telemetry.containers_retiring)), (3, 1));
}

#[test]
fn docker_and_checkpoint_health() {
    let telemetry = Telemetry::default();
    DockerDown { error: &"connection refused" }.emit(&telemetry, at(5));
    assert_eq!(telemetry.health(Component::Docker).last_error(), "connection refused");
    assert!(!telemetry.health(Component::Docker).is_up());
    DockerUp.emit(&telemetry);
    assert!(telemetry.health(Component::Docker).is_up());

    CheckpointCommitFailed { error: &"disk full" }.emit(&telemetry, at(1));
    assert!(!telemetry.health(Component::Checkpoint).is_up());
    CheckpointCommitted.emit(&telemetry);
    assert!(telemetry.health(Component::Checkpoint).is_up());
    assert_eq!(Telemetry::get(&telemetry.checkpoint_commits_total), 1);
    assert_eq!(Telemetry::get(&telemetry.checkpoint_errors_total), 1);
}
