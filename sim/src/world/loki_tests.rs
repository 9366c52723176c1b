//! Tests of the Loki model: outcomes, timing, and what the observer is told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engine::model::{Batch, BatchStream, ContainerId, Line, Position, ResumeKey, SourceId, StdStream};
use engine::port::{SendOutcome, SinkTransport};
use engine::rt::{Instant, UnixNanos};

use super::*;
use crate::executor::Executor;

const WALL_START: UnixNanos = 1_700_000_000_000_000_000;

fn batch(line_ts: &[UnixNanos]) -> Arc<Batch> {
    let lines: Vec<Line> = line_ts
        .iter()
        .map(|&ts| Line {
            ts,
            bytes: Bytes::from_static(b"0xxx"),
            position: Position::Container(ResumeKey { ts, seq: 0 }),
        })
        .collect();
    let stream = BatchStream {
        source: SourceId::Container { id: ContainerId::new("c1"), stream: StdStream::Stdout },
        labels: Default::default(),
        lines,
    };
    Arc::new(Batch { bytes: 4 * line_ts.len(), lines: line_ts.len(), streams: vec![stream] })
}

/// (ambiguous, rejected_before, at) of every delivery.
type Log = Arc<Mutex<Vec<(bool, Option<UnixNanos>, Instant)>>>;

fn world(seed: u64, behaviour: LokiBehaviour) -> (Executor, SimLoki, Log) {
    let executor = Executor::new(seed, WALL_START);
    let loki = SimLoki::new(executor.handle(), seed);
    loki.set_behaviour(behaviour);
    let log: Log = Arc::default();
    let log_in_observer = log.clone();
    loki.set_observer(move |delivery| {
        log_in_observer.lock().unwrap().push((delivery.ambiguous, delivery.rejected_before, delivery.at));
    });
    (executor, loki, log)
}

fn send(executor: &mut Executor, loki: &SimLoki, batch: Arc<Batch>) -> (SendOutcome, Duration) {
    let loki = loki.clone();
    let start = executor.now();
    let outcome = executor.block_on(async move { loki.send(batch).await }).unwrap();
    (outcome, executor.now() - start)
}

fn fixed_latency(millis: u64) -> LokiBehaviour {
    let latency = Duration::from_millis(millis);
    LokiBehaviour { latency_min: latency, latency_max: latency, ..LokiBehaviour::default() }
}

#[test]
fn a_healthy_server_accepts_after_the_round_trip() {
    let (mut executor, loki, log) = world(1, fixed_latency(20));
    let (outcome, took) = send(&mut executor, &loki, batch(&[WALL_START; 3]));
    assert_eq!(outcome, SendOutcome::Ok);
    assert_eq!(took, Duration::from_millis(20));
    assert_eq!(*log.lock().unwrap(), vec![(false, None, Instant::ZERO + Duration::from_millis(10))]);
    let counters = loki.counters();
    assert_eq!((counters.requests, counters.batches_accepted, counters.lines_accepted), (1, 1, 3));
    assert_eq!((counters.in_flight, counters.in_flight_max), (0, 1));
}

#[test]
fn ambiguous_acceptance_counts_as_delivered_but_replies_retry() {
    let behaviour = LokiBehaviour { ambiguous_chance: 1.0, ..fixed_latency(10) };
    let (mut executor, loki, log) = world(2, behaviour);
    let (outcome, _) = send(&mut executor, &loki, batch(&[WALL_START]));
    assert!(matches!(outcome, SendOutcome::Retry { after: None, .. }));
    assert_eq!(log.lock().unwrap().len(), 1);
    assert!(log.lock().unwrap()[0].0, "flagged ambiguous");
    assert_eq!(loki.counters().ambiguous, 1);
    assert_eq!(loki.counters().lines_accepted, 1);
}

#[test]
fn throttling_and_server_errors_store_nothing() {
    let throttled = LokiBehaviour { throttle_chance: 1.0, retry_after: Duration::from_secs(7), ..fixed_latency(10) };
    let (mut executor, loki, log) = world(3, throttled);
    let (outcome, _) = send(&mut executor, &loki, batch(&[WALL_START]));
    assert!(matches!(outcome, SendOutcome::Retry { after: Some(after), .. } if after == Duration::from_secs(7)));
    loki.set_behaviour(LokiBehaviour { server_error_chance: 1.0, ..fixed_latency(10) });
    let (outcome, _) = send(&mut executor, &loki, batch(&[WALL_START]));
    assert!(matches!(outcome, SendOutcome::Retry { after: None, .. }));
    assert!(log.lock().unwrap().is_empty());
    let counters = loki.counters();
    assert_eq!((counters.throttled, counters.server_errors, counters.batches_accepted), (1, 1, 0));
}

#[test]
fn timeouts_hang_until_the_client_timeout() {
    let behaviour = LokiBehaviour { timeout_chance: 1.0, timeout: Duration::from_secs(10), ..fixed_latency(10) };
    let (mut executor, loki, log) = world(4, behaviour);
    let (outcome, took) = send(&mut executor, &loki, batch(&[WALL_START]));
    assert!(matches!(outcome, SendOutcome::Retry { .. }));
    assert_eq!(took, Duration::from_secs(10));
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn outages_refuse_or_hang_then_heal() {
    let (mut executor, loki, log) = world(5, fixed_latency(10));
    loki.outage_for(Outage::Down, Duration::from_secs(60));
    let (outcome, took) = send(&mut executor, &loki, batch(&[WALL_START]));
    assert!(matches!(outcome, SendOutcome::Retry { .. }));
    assert_eq!(took, Duration::from_millis(10));
    loki.outage_for(Outage::Partition, Duration::from_secs(60));
    let (outcome, took) = send(&mut executor, &loki, batch(&[WALL_START]));
    assert!(matches!(outcome, SendOutcome::Retry { .. }));
    assert_eq!(took, LokiBehaviour::default().timeout);
    // The outage ends on its own.
    executor.advance_for(Duration::from_secs(60));
    assert_eq!(send(&mut executor, &loki, batch(&[WALL_START])).0, SendOutcome::Ok);
    loki.outage_for(Outage::Down, Duration::from_secs(60));
    loki.heal();
    assert_eq!(send(&mut executor, &loki, batch(&[WALL_START])).0, SendOutcome::Ok);
    assert_eq!(log.lock().unwrap().len(), 2);
    assert_eq!(loki.counters().outage_failures, 2);
}

#[test]
fn too_large_and_too_old() {
    let behaviour = LokiBehaviour { batch_bytes_max: Some(8), ..fixed_latency(10) };
    let (mut executor, loki, log) = world(6, behaviour);
    assert_eq!(send(&mut executor, &loki, batch(&[WALL_START; 3])).0, SendOutcome::TooLarge);
    assert!(log.lock().unwrap().is_empty());
    let hour = Duration::from_secs(3600);
    loki.set_behaviour(LokiBehaviour { reject_older_than: Some(hour), ..fixed_latency(10) });
    executor.advance_for(2 * hour);
    let old = WALL_START;
    let fresh = WALL_START + 2 * 3600 * 1_000_000_000;
    let (outcome, _) = send(&mut executor, &loki, batch(&[old, fresh, fresh]));
    let SendOutcome::Partial { refused, .. } = outcome else { panic!("a 400 with partial acceptance") };
    assert_eq!(refused, vec![(engine::telemetry::DropReason::SinkTooOld, 1)]);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1, "the fresh lines are stored");
    let cutoff = log[0].1.expect("partial rejection");
    assert!(old < cutoff && cutoff <= fresh);
    assert_eq!((loki.counters().lines_accepted, loki.counters().lines_rejected), (2, 1));
}

#[test]
fn a_send_dropped_before_arrival_stores_nothing_and_after_arrival_stores_it() {
    let (mut executor, loki, log) = world(7, fixed_latency(20));
    for (cancel_after_ms, stored) in [(5, 0), (15, 1)] {
        let loki2 = loki.clone();
        let handle = executor.handle();
        executor
            .block_on(async move {
                let send = loki2.send(batch(&[WALL_START]));
                let timeout = handle.sleep(Duration::from_millis(cancel_after_ms));
                futures::pin_mut!(timeout);
                let outcome = futures::future::select(send, timeout).await;
                assert!(matches!(outcome, futures::future::Either::Right(_)));
            })
            .unwrap();
        assert_eq!(log.lock().unwrap().len(), stored);
        assert_eq!(loki.counters().in_flight, 0);
    }
}

#[test]
fn a_send_dropped_before_arrival_cancels_the_arrival() {
    let (mut executor, loki, log) = world(9, fixed_latency(20));
    let tasks = engine::task::Tasks::new(executor.rt());
    let sender = loki.clone();
    let _handle = tasks.spawn(engine::task::TaskKind::Sink, async move {
        sender.send(batch(&[WALL_START])).await;
    });
    executor.run_until(Instant::ZERO + Duration::from_millis(5));
    // In flight: the arrival (a callback at 10 ms) and the reply (the task's sleep).
    assert_eq!((loki.counters().requests, loki.counters().in_flight), (1, 1));
    assert_eq!(executor.timers_pending(), 2);
    // A crash drops the sink's task before the request arrives.
    assert_eq!(executor.drop_engine_tasks(), 1);
    assert_eq!(executor.timers_pending(), 0, "the arrival is cancelled with the send");
    assert_eq!(executor.run_until(Instant::ZERO + Duration::from_secs(60)), crate::executor::RunOutcome::Idle);
    assert!(log.lock().unwrap().is_empty(), "a request that never arrived stores nothing");
    let counters = loki.counters();
    assert_eq!((counters.batches_accepted, counters.in_flight), (0, 0));
    assert_eq!(executor.callbacks(), 0);
}

#[test]
fn a_send_wakes_its_task_once_per_request() {
    let (mut executor, loki, log) = world(10, fixed_latency(20));
    let start_polls = executor.polls();
    let (outcome, took) = send(&mut executor, &loki, batch(&[WALL_START]));
    assert_eq!((outcome, took), (SendOutcome::Ok, Duration::from_millis(20)));
    assert_eq!(log.lock().unwrap().len(), 1);
    // The first poll sends, the reply's timer wakes it once; the arrival is a callback.
    assert_eq!(executor.polls() - start_polls, 2);
    assert_eq!(executor.callbacks(), 1);
}

#[test]
fn concurrent_sends_count_in_flight_and_decide_deterministically() {
    let run = |seed| {
        let behaviour = LokiBehaviour { ambiguous_chance: 0.3, server_error_chance: 0.2, ..LokiBehaviour::default() };
        let (mut executor, loki, log) = world(seed, behaviour);
        for _ in 0..20 {
            let loki = loki.clone();
            executor.spawn_world("sender", async move {
                loki.send(batch(&[WALL_START])).await;
            });
        }
        executor.run_until(Instant::from_nanos(u64::MAX));
        assert_eq!(loki.counters().in_flight_max, 20);
        let log = log.lock().unwrap().clone();
        log
    };
    assert_eq!(run(8), run(8));
}
