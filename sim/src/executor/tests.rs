//! Unit tests of the executor: determinism, virtual time, spawning, dropping, and the
//! engine's `Tasks` running on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use engine::rt::Instant;
use engine::task::{TaskKind, Tasks};

use super::*;

const WALL_START: UnixNanos = 1_700_000_000_000_000_000;

/// Yields once (wakes itself and returns Pending the first time).
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

/// A racy program: several tasks append their ids to a shared log, yielding between.
fn racy_program(seed: u64) -> (u64, Vec<u64>) {
    let mut executor = Executor::new(seed, WALL_START);
    let log = Arc::new(Mutex::new(Vec::new()));
    let rt = executor.rt();
    for id in 0..8u64 {
        let log = log.clone();
        let rt = rt.clone();
        executor.spawn_world("racer", async move {
            for step in 0..5u64 {
                log.lock().unwrap().push(id * 100 + step);
                if step % 2 == 0 {
                    yield_now().await;
                } else {
                    rt.sleep(Duration::from_millis(rt.rand_u64() % 3)).await;
                }
            }
        });
    }
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    let log = log.lock().unwrap().clone();
    (executor.trace_digest(), log)
}

#[test]
fn same_seed_same_digest_and_schedule() {
    for seed in [0, 1, 42, u64::MAX] {
        assert_eq!(racy_program(seed), racy_program(seed));
    }
}

#[test]
fn different_seeds_give_different_schedules() {
    let digests: std::collections::BTreeSet<u64> = (0..16).map(|seed| racy_program(seed).0).collect();
    assert!(digests.len() > 12, "only {} distinct digests of 16", digests.len());
}

#[test]
fn rng_streams_are_reproducible_and_independent() {
    let mut a = SimRng::new(7);
    let mut b = SimRng::new(7);
    let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
    assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
    let mut scheduler = SimRng::derive(7, streams::SCHEDULER);
    let mut world = SimRng::derive(7, streams::WORLD);
    assert_ne!(scheduler.next_u64(), world.next_u64());
    let mut rng = SimRng::new(3);
    for _ in 0..10_000 {
        assert!(rng.below(7) < 7);
        let x = rng.range(10..20);
        assert!((10..20).contains(&x));
    }
    assert!(!rng.chance(0.0));
    assert!(rng.chance(1.0));
    let hits = (0..10_000).filter(|_| rng.chance(0.25)).count();
    assert!((2_000..3_000).contains(&hits), "{hits}");
}

#[test]
fn four_hour_sleep_completes_instantly_in_virtual_time() {
    let mut executor = Executor::new(1, WALL_START);
    let rt = executor.rt();
    let done = Arc::new(AtomicU64::new(0));
    let done_in_task = done.clone();
    executor.spawn_world("sleeper", async move {
        rt.sleep(Duration::from_secs(4 * 3600)).await;
        done_in_task.store(rt.now().as_nanos(), Ordering::SeqCst);
    });
    let started = std::time::Instant::now();
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let four_hours = 4 * 3600 * 1_000_000_000u64;
    assert_eq!(done.load(Ordering::SeqCst), four_hours);
    assert_eq!(executor.now().as_nanos(), four_hours);
    assert_eq!(executor.wall(), WALL_START + four_hours as i64);
}

#[test]
fn run_until_stops_at_the_deadline_and_resumes() {
    let mut executor = Executor::new(1, WALL_START);
    let rt = executor.rt();
    let ticks = Arc::new(AtomicU64::new(0));
    let ticks_in_task = ticks.clone();
    executor.spawn_world("ticker", async move {
        loop {
            rt.sleep(Duration::from_secs(1)).await;
            ticks_in_task.fetch_add(1, Ordering::SeqCst);
        }
    });
    let outcome = executor.run_until(Instant::ZERO + Duration::from_millis(10_500));
    assert_eq!(outcome, RunOutcome::DeadlineReached);
    assert_eq!(ticks.load(Ordering::SeqCst), 10);
    assert_eq!(executor.now(), Instant::ZERO + Duration::from_millis(10_500));
    assert_eq!(executor.timers_pending(), 1);
    // A deadline exactly on a timer fires it.
    executor.run_until(Instant::ZERO + Duration::from_secs(20));
    assert_eq!(ticks.load(Ordering::SeqCst), 20);
    assert_eq!(executor.run_until_stalled(), RunOutcome::Stalled);
}

#[test]
fn dropped_sleep_cancels_its_timer() {
    let mut executor = Executor::new(1, WALL_START);
    let rt = executor.rt();
    executor.spawn_world("racer", async move {
        let long = rt.sleep(Duration::from_secs(3600));
        let short = rt.sleep(Duration::from_secs(1));
        futures::pin_mut!(long);
        futures::pin_mut!(short);
        // Poll both once (registers both timers), then let the short one win.
        futures::future::select(long, short).await;
    });
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert_eq!(executor.now(), Instant::ZERO + Duration::from_secs(1));
    assert_eq!(executor.timers_pending(), 0);
}

#[test]
fn a_reset_timer_fires_at_its_new_deadline_and_never_at_the_old_one() {
    let mut executor = Executor::new(1, WALL_START);
    let rt = executor.rt();
    let fired_at = Arc::new(Mutex::new(Vec::new()));
    let fired_in_task = fired_at.clone();
    executor.spawn_world("timer", async move {
        let mut timer = rt.timer(Instant::ZERO + Duration::from_secs(10));
        // Registered at 10 s, then moved later before it fires.
        futures::future::select(timer.as_mut(), rt.sleep(Duration::from_secs(1))).await;
        timer.as_mut().reset(Instant::ZERO + Duration::from_secs(30));
        timer.as_mut().await;
        fired_in_task.lock().unwrap().push(rt.now());
        // Moved earlier, and after it fired.
        timer.as_mut().reset(Instant::ZERO + Duration::from_secs(50));
        timer.as_mut().reset(Instant::ZERO + Duration::from_secs(40));
        timer.as_mut().await;
        fired_in_task.lock().unwrap().push(rt.now());
    });
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    let secs = |s| Instant::ZERO + Duration::from_secs(s);
    assert_eq!(*fired_at.lock().unwrap(), vec![secs(30), secs(40)]);
    // Polled at 0 s, 1 s, 30 s and 40 s: not at 10 s nor 50 s.
    assert_eq!(executor.polls(), 4);
    assert_eq!(executor.timers_pending(), 0);
}

#[test]
fn a_reset_timer_keeps_its_slot_until_polled_dropped_or_due() {
    // Reset parks the timer's slot: dropped while parked, or reset into the past, the
    // sleep gives the slot back and nothing fires; other timers keep their order.
    let mut executor = Executor::new(1, WALL_START);
    let rt = executor.rt();
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = order.clone();
    executor.spawn_world("timers", async move {
        let secs = |s| Instant::ZERO + Duration::from_secs(s);
        let mut dropped = rt.timer(secs(5));
        let mut past = rt.timer(secs(6));
        let mut moved = rt.timer(secs(7));
        for timer in [&mut dropped, &mut past, &mut moved] {
            assert!(futures::poll!(timer.as_mut()).is_pending());
        }
        rt.sleep(Duration::from_secs(1)).await;
        dropped.as_mut().reset(secs(20));
        past.as_mut().reset(secs(1));
        moved.as_mut().reset(secs(3));
        moved.as_mut().reset(secs(4));
        drop(dropped);
        past.as_mut().await;
        log.lock().unwrap().push(rt.now());
        let after = rt.sleep_until(secs(4));
        moved.as_mut().await;
        log.lock().unwrap().push(rt.now());
        after.await;
        log.lock().unwrap().push(rt.now());
    });
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    let secs = |s| Instant::ZERO + Duration::from_secs(s);
    assert_eq!(*order.lock().unwrap(), vec![secs(1), secs(4), secs(4)]);
    assert_eq!(executor.now(), secs(4), "the dropped timer's old and new deadlines fire nothing");
    assert_eq!(executor.timers_pending(), 0);
}

#[test]
fn sleep_in_the_past_is_ready_at_once() {
    let mut executor = Executor::new(1, WALL_START);
    let rt = executor.rt();
    let done = Arc::new(AtomicUsize::new(0));
    let done_in_task = done.clone();
    executor.spawn_world("past", async move {
        rt.sleep(Duration::from_secs(5)).await;
        rt.sleep_until(Instant::ZERO).await;
        rt.sleep(Duration::ZERO).await;
        done_in_task.fetch_add(1, Ordering::SeqCst);
    });
    executor.run_until(Instant::from_nanos(u64::MAX));
    assert_eq!(done.load(Ordering::SeqCst), 1);
    assert_eq!(executor.now(), Instant::ZERO + Duration::from_secs(5));
}

#[test]
fn tasks_spawned_from_tasks_run() {
    let mut executor = Executor::new(9, WALL_START);
    let handle = executor.handle();
    let count = Arc::new(AtomicUsize::new(0));
    let count_in_task = count.clone();
    executor.spawn_world("parent", async move {
        for depth in 0..10u64 {
            let count = count_in_task.clone();
            let inner = handle.clone();
            handle.spawn_world("child", async move {
                inner.sleep(Duration::from_millis(depth)).await;
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert_eq!(count.load(Ordering::SeqCst), 10);
    assert_eq!(executor.live_world_tasks(), 0);
    assert!(executor.live_tasks().is_empty());
}

struct SetOnDrop(Arc<AtomicUsize>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn drop_tasks_runs_destructors_and_spares_world_tasks() {
    let mut executor = Executor::new(5, WALL_START);
    let tasks = Tasks::new(executor.rt());
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for kind in [TaskKind::Container, TaskKind::Container, TaskKind::Sink] {
        let guard = SetOnDrop(dropped.clone());
        let rt = tasks.rt().clone();
        handles.push(tasks.spawn(kind, async move {
            let _guard = guard;
            rt.sleep(Duration::from_secs(3600)).await;
        }));
    }
    let world_guard = SetOnDrop(dropped.clone());
    let handle = executor.handle();
    executor.spawn_world("world", async move {
        let _guard = world_guard;
        handle.sleep(Duration::from_secs(7200)).await;
    });
    executor.run_until(Instant::ZERO + Duration::from_secs(1));
    assert_eq!(executor.live_engine_tasks(), 3);
    assert_eq!(tasks.registry().alive_total(), 3);
    assert_eq!(executor.timers_pending(), 4);

    let removed = executor.drop_tasks(|meta| meta.kind == TaskKind::Container);
    assert_eq!(removed, 2);
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    assert_eq!(tasks.registry().alive(TaskKind::Container), 0);
    assert_eq!(tasks.registry().alive(TaskKind::Sink), 1);
    assert_eq!(executor.timers_pending(), 2, "dropped sleeps cancel their timers");

    assert_eq!(executor.drop_engine_tasks(), 1);
    assert_eq!(tasks.registry().alive_total(), 0);
    assert_eq!(executor.live_engine_tasks(), 0);
    assert_eq!(executor.live_world_tasks(), 1);
    drop(handles);
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert_eq!(dropped.load(Ordering::SeqCst), 4);
}

#[test]
fn a_task_polled_many_times_is_still_woken_by_its_cancel() {
    // The task's waker is registered for cancelling once, at its first pending poll
    // (`engine::task::Task`): later polls skip it, and the cancel must still wake it.
    let mut executor = Executor::new(5, WALL_START);
    let tasks = Tasks::new(executor.rt());
    let rt = executor.rt();
    let turns = Arc::new(AtomicUsize::new(0));
    let turns_in_task = turns.clone();
    let ticker_rt = rt.clone();
    let ticker = tasks.spawn(TaskKind::Heartbeat, async move {
        loop {
            ticker_rt.sleep(Duration::from_secs(1)).await;
            turns_in_task.fetch_add(1, Ordering::SeqCst);
        }
    });
    let cancel = ticker.cancel_handle();
    let outcome = Arc::new(Mutex::new(None));
    let outcome_in_task = outcome.clone();
    executor.spawn_world("owner", async move {
        rt.sleep(Duration::from_millis(10_500)).await;
        cancel.cancel();
        *outcome_in_task.lock().unwrap() = Some((ticker.join().await, rt.now()));
    });
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    let at = Instant::ZERO + Duration::from_millis(10_500);
    assert_eq!(*outcome.lock().unwrap(), Some((Err(engine::task::Cancelled), at)));
    assert_eq!(turns.load(Ordering::SeqCst), 10);
    assert_eq!(tasks.registry().alive_total(), 0);
}

#[test]
fn engine_tasks_spawn_join_and_cancel_and_join() {
    let mut executor = Executor::new(11, WALL_START);
    let tasks = Tasks::new(executor.rt());
    let registry = tasks.registry().clone();
    let results = Arc::new(Mutex::new(Vec::new()));
    let results_in_task = results.clone();
    let owner_tasks = tasks.clone();
    // The owner is itself an engine task, as in the engine.
    let owner = tasks.spawn(TaskKind::Control, async move {
        let rt = owner_tasks.rt().clone();
        let worker_rt = rt.clone();
        let worker = owner_tasks.spawn(TaskKind::Dispatcher, async move {
            worker_rt.sleep(Duration::from_secs(2)).await;
            42u32
        });
        let forever_rt = rt.clone();
        let forever = owner_tasks.spawn(TaskKind::Stream, async move {
            loop {
                forever_rt.sleep(Duration::from_secs(60)).await;
            }
        });
        let joined = worker.join().await;
        let cancelled = forever.cancel_and_join().await;
        results_in_task.lock().unwrap().push((joined, cancelled.map(|_: ()| 0u32)));
        7u32
    });
    let joined_owner = Arc::new(Mutex::new(None));
    let joined_owner_in_task = joined_owner.clone();
    executor.spawn_world("joiner", async move {
        *joined_owner_in_task.lock().unwrap() = Some(owner.join().await);
    });
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert_eq!(*results.lock().unwrap(), vec![(Ok(42), Err(engine::task::Cancelled))]);
    assert_eq!(*joined_owner.lock().unwrap(), Some(Ok(7)));
    assert_eq!(registry.alive_total(), 0);
    for kind in [TaskKind::Control, TaskKind::Dispatcher, TaskKind::Stream] {
        assert_eq!(registry.spawned(kind), 1);
        assert_eq!(registry.finished(kind), 1);
    }
    assert_eq!(executor.live_engine_tasks(), 0);
    assert_eq!(executor.now(), Instant::ZERO + Duration::from_secs(2));
}

#[test]
fn live_tasks_report_kind_and_site() {
    let mut executor = Executor::new(2, WALL_START);
    let tasks = Tasks::new(executor.rt());
    let rt = executor.rt();
    let _handle = tasks.spawn(TaskKind::Container, async move {
        rt.sleep(Duration::from_secs(10)).await;
    });
    executor.spawn_world("driver", std::future::pending());
    let live = executor.live_tasks();
    assert_eq!(live.len(), 2);
    assert_eq!(live[0].kind(), Some(TaskKind::Container));
    assert!(live[0].site().unwrap().file.ends_with("tests.rs"));
    assert!(live[1].is_world());
    executor.run_until(Instant::ZERO + Duration::from_secs(1));
    let dump = executor.dump_live_tasks();
    assert!(dump.contains("container @ "), "{dump}");
    assert!(dump.contains("world:driver"), "{dump}");
    executor.run_until(Instant::ZERO + Duration::from_secs(11));
    assert_eq!(executor.live_engine_tasks(), 0);
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
}

#[test]
fn stale_wakers_are_ignored() {
    let mut executor = Executor::new(3, WALL_START);
    let kept = Arc::new(Mutex::new(None));
    let kept_in_task = kept.clone();
    executor.spawn_world(
        "leaves a waker",
        futures::future::poll_fn(move |cx| {
            *kept_in_task.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(())
        }),
    );
    executor.run_until_stalled();
    let polls_before = executor.polls();
    // A new task takes the freed slot; the old waker must not wake it.
    executor.spawn_world("new", std::future::pending());
    executor.run_until_stalled();
    assert_eq!(executor.polls(), polls_before + 1);
    kept.lock().unwrap().take().unwrap().wake();
    executor.run_until_stalled();
    assert_eq!(executor.polls(), polls_before + 1);
}

#[test]
fn livelock_is_reported() {
    let mut executor = Executor::new(3, WALL_START);
    executor.set_polls_per_instant_max(1_000);
    executor.spawn_world("spinner", async {
        loop {
            yield_now().await;
        }
    });
    assert!(matches!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Livelock { polls: 1_001, .. }));
}

#[test]
fn dropping_the_executor_drops_all_futures() {
    let dropped = Arc::new(AtomicUsize::new(0));
    {
        let mut executor = Executor::new(3, WALL_START);
        let handle = executor.handle();
        for _ in 0..3 {
            let guard = SetOnDrop(dropped.clone());
            let handle_in_task = handle.clone();
            executor.spawn_world("w", async move {
                let _guard = guard;
                handle_in_task.sleep(Duration::from_secs(1000)).await;
            });
        }
        executor.run_until(Instant::ZERO + Duration::from_secs(1));
        let guard = SetOnDrop(dropped.clone());
        executor.spawn_world("never admitted", async move {
            let _guard = guard;
        });
    }
    assert_eq!(dropped.load(Ordering::SeqCst), 4);
}

#[test]
fn advance_moves_the_clock_even_when_idle() {
    let mut executor = Executor::new(1, WALL_START);
    assert_eq!(executor.run_for(Duration::from_secs(5)), RunOutcome::Idle);
    assert_eq!(executor.now(), Instant::ZERO);
    assert_eq!(executor.advance_for(Duration::from_secs(5)), RunOutcome::Idle);
    assert_eq!(executor.now(), Instant::ZERO + Duration::from_secs(5));
}

#[test]
fn block_on_returns_the_output_while_other_tasks_keep_running() {
    let mut executor = Executor::new(1, WALL_START);
    let handle = executor.handle();
    let ticker = executor.handle();
    executor.spawn_world("ticker", async move {
        loop {
            ticker.sleep(Duration::from_secs(1)).await;
        }
    });
    let output = executor.block_on(async move {
        handle.sleep(Duration::from_millis(2500)).await;
        7
    });
    assert_eq!(output, Ok(7));
    assert_eq!(executor.now(), Instant::ZERO + Duration::from_millis(2500));
    let mut quiet = Executor::new(1, WALL_START);
    assert_eq!(quiet.block_on(std::future::pending::<()>()), Err(RunOutcome::Idle));
}

#[test]
fn handles_cross_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Executor>();
    send_sync::<SimRt>();
    send_sync::<crate::world::SimDocker>();
    send_sync::<crate::world::SimLoki>();
    send_sync::<crate::world::SimCheckpointStore>();
}

/// A program mixing sleeps and timer callbacks due at the same instants.
fn callback_program(seed: u64) -> (u64, Vec<&'static str>, u64) {
    let mut executor = Executor::new(seed, WALL_START);
    let handle = executor.handle();
    let log = Arc::new(Mutex::new(Vec::new()));
    let at = Instant::ZERO + Duration::from_millis(10);
    let push = |name: &'static str| {
        let log = log.clone();
        move || log.lock().unwrap().push(name)
    };
    let first = handle.call_at(at, push("first callback"));
    let (handle_in_task, log_in_task) = (handle.clone(), log.clone());
    executor.spawn_world("sleeper", async move {
        handle_in_task.sleep_until(at).await;
        log_in_task.lock().unwrap().push("sleeper");
    });
    executor.run_until_stalled();
    // Registered after the sleeper's timer: runs after the sleeper is woken, before it
    // is polled (a callback runs where the timer fires, the task on a later poll).
    let second = handle.call_at(at, push("second callback"));
    let later = handle.call_at(at + Duration::from_millis(1), push("never"));
    assert!(later.cancel(), "cancelled before its deadline");
    assert_eq!(executor.timers_pending(), 3);
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert!(!first.is_pending() && !second.is_pending());
    drop((first, second));
    let log = log.lock().unwrap().clone();
    (executor.trace_digest(), log, executor.polls())
}

#[test]
fn timer_callbacks_run_in_timer_order_without_a_poll() {
    let (digest, log, polls) = callback_program(4);
    assert_eq!(log, vec!["first callback", "second callback", "sleeper"]);
    assert_eq!(polls, 2, "the sleeper's two polls; callbacks are not polls");
    assert_eq!(callback_program(4).0, digest, "deterministic");
    let mut executor = Executor::new(4, WALL_START);
    let handle = executor.handle();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran_in_callback = ran.clone();
    let call = handle.call_after(Duration::from_secs(1), move || {
        ran_in_callback.fetch_add(1, Ordering::SeqCst);
    });
    let before = executor.trace_digest();
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert_eq!((ran.load(Ordering::SeqCst), executor.callbacks(), executor.polls()), (1, 1, 0));
    assert_eq!(executor.now(), Instant::ZERO + Duration::from_secs(1), "the clock moved to the callback");
    assert_ne!(executor.trace_digest(), before, "callbacks are in the trace digest");
    assert!(!call.cancel(), "nothing to cancel once it ran");
}

#[test]
fn a_dropped_callback_never_runs_and_is_freed() {
    let mut executor = Executor::new(5, WALL_START);
    let handle = executor.handle();
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = SetOnDrop(dropped.clone());
    let call = handle.call_after(Duration::from_secs(1), move || {
        let _guard = guard;
        panic!("a cancelled callback ran");
    });
    assert_eq!(executor.timers_pending(), 1);
    drop(call);
    assert_eq!((executor.timers_pending(), dropped.load(Ordering::SeqCst)), (0, 1));
    assert_eq!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Idle);
    assert_eq!(executor.now(), Instant::ZERO);
    // A callback still pending when the executor is dropped is dropped with it, even
    // one that holds a handle on the executor (no cycle keeps it alive).
    let guard = SetOnDrop(dropped.clone());
    let handle_in_callback = handle.clone();
    std::mem::forget(handle.call_after(Duration::from_secs(1), move || {
        let _guard = guard;
        drop(handle_in_callback);
    }));
    drop(handle);
    drop(executor);
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn callbacks_that_reschedule_themselves_at_one_instant_are_a_livelock() {
    fn again(handle: SimRt) {
        let next = handle.clone();
        std::mem::forget(handle.call_at(handle.now(), move || again(next)));
    }
    let mut executor = Executor::new(6, WALL_START);
    executor.set_polls_per_instant_max(100);
    again(executor.handle());
    assert!(matches!(executor.run_until(Instant::from_nanos(u64::MAX)), RunOutcome::Livelock { .. }));
}

/// The oracle's spawn hook holds the world, which holds runtimes (and so the executor's
/// shared state): dropping the executor must break that cycle, or every run leaks its
/// whole world (it did: 2.3 GB over the default sweep).
#[test]
fn dropping_the_executor_drops_the_spawn_hook_and_what_it_holds() {
    let executor = Executor::new(9, WALL_START);
    let rt = executor.rt();
    let held = Arc::new(());
    let in_hook = (held.clone(), rt);
    executor.set_spawn_hook(move |_| {
        let _ = &in_hook;
    });
    drop(executor);
    assert_eq!(Arc::strong_count(&held), 1, "the hook (and the runtime it holds) outlived the executor");
}
