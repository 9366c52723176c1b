//! Micro-benchmark of the executor's cost per poll (run with `--release`).
//!
//! Three shapes: tasks that only sleep (timer heap + clock jumps), tasks that wake each
//! other through channels at one instant (ready queue + wakers), and a Docker-like mix
//! (followers woken by world bursts, with sleeps). Prints nanoseconds per poll.

use std::time::{Duration, Instant as WallInstant};

use engine::rt::Instant;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use sim::executor::{Executor, SimRng};

fn report(name: &str, executor: &Executor, started: WallInstant) {
    let elapsed = started.elapsed();
    let polls = executor.polls();
    println!(
        "{name:<28} {polls:>9} polls  {:>7.1} ms  {:>6.1} ns/poll",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / polls as f64
    );
}

fn sleepers() {
    let mut executor = Executor::new(1, 0);
    let handle = executor.handle();
    for task in 0..200u64 {
        let handle = handle.clone();
        executor.spawn_world("sleeper", async move {
            let mut rng = SimRng::new(task);
            for _ in 0..2_500 {
                handle.sleep(Duration::from_micros(rng.range(1..100_000))).await;
            }
        });
    }
    let started = WallInstant::now();
    executor.run_until(Instant::from_nanos(u64::MAX));
    report("sleepers (timers)", &executor, started);
}

fn ping_pong() {
    let mut executor = Executor::new(2, 0);
    for _ in 0..100 {
        let (mut to_b, mut from_a) = mpsc::channel::<u64>(1);
        let (mut to_a, mut from_b) = mpsc::channel::<u64>(1);
        executor.spawn_world("ping", async move {
            for i in 0..2_500u64 {
                to_b.send(i).await.unwrap();
                from_b.next().await.unwrap();
            }
        });
        executor.spawn_world("pong", async move {
            while let Some(i) = from_a.next().await {
                to_a.send(i).await.unwrap();
            }
        });
    }
    let started = WallInstant::now();
    executor.run_until(Instant::from_nanos(u64::MAX));
    report("ping-pong (wakers)", &executor, started);
}

fn engine_tasks() {
    let mut executor = Executor::new(3, 0);
    let tasks = engine::task::Tasks::new(executor.rt());
    let mut handles = Vec::new();
    for _ in 0..55 {
        let rt = tasks.rt().clone();
        handles.push(tasks.spawn(engine::task::TaskKind::Container, async move {
            for _ in 0..10_000 {
                let jitter = rt.jitter(Duration::from_millis(500), 0.2);
                rt.sleep(jitter).await;
            }
        }));
    }
    let started = WallInstant::now();
    executor.run_until(Instant::from_nanos(u64::MAX));
    report("engine tasks (Tasks::spawn)", &executor, started);
    drop(handles);
}

/// Tasks that only wake themselves: the bare cost of the scheduling loop.
fn yielders() {
    let mut executor = Executor::new(4, 0);
    for _ in 0..100 {
        executor.spawn_world("yielder", async move {
            for _ in 0..5_000 {
                let mut yielded = false;
                futures::future::poll_fn(|cx| {
                    if yielded {
                        return std::task::Poll::Ready(());
                    }
                    yielded = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                })
                .await;
            }
        });
    }
    executor.set_polls_per_instant_max(u64::MAX);
    let started = WallInstant::now();
    executor.run_until(Instant::from_nanos(u64::MAX));
    report("yielders (bare loop)", &executor, started);
}

fn main() {
    for _ in 0..2 {
        yielders();
        sleepers();
        ping_pong();
        engine_tasks();
    }
}
