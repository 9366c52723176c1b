//! The log model's `since` once the host clock stepped back: Docker filters each entry
//! by its timestamp, wherever it lies, and the lines so skipped that no reader had are
//! the world's named `clock_step` loss.

use super::*;

fn lost_to_clock_step(docker: &SimDocker, id: &ContainerId) -> [u64; 2] {
    docker.containers().into_iter().find(|report| &report.id == id).unwrap().lost_to_clock_step
}

/// A follow request made now with `since`, read by a task until it ends: its chunks.
fn follow(executor: &mut Executor, docker: &SimDocker, id: &ContainerId, since: i64) -> Arc<Mutex<Vec<Bytes>>> {
    let (docker, id) = (docker.clone(), id.clone());
    let got = Arc::new(Mutex::new(Vec::new()));
    let got_in_task = got.clone();
    executor.spawn_world("reader", async move {
        let (chunks, _) = drain(docker.logs(&id, opts(true, since)).await.unwrap()).await;
        *got_in_task.lock().unwrap() = chunks;
    });
    executor.run_until_stalled();
    got
}

/// The world of `seed` with a container that printed stdout 0..3 at host time 100 s,
/// followed from 99 s, after which the host clock stepped back 20 s.
fn followed_then_stepped_back(seed: u64) -> (Executor, SimDocker, ContainerId, Arc<Mutex<Vec<Bytes>>>) {
    let (mut executor, docker) = world(seed);
    let id = running(&docker, "app");
    executor.advance_for(Duration::from_secs(100));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 3)).unwrap();
    let got = follow(&mut executor, &docker, &id, WALL_START / SECOND + 99);
    docker.step_clock_back(Duration::from_secs(20));
    (executor, docker, id, got)
}

#[test]
fn since_filters_each_entry_after_a_clock_step_back() {
    let (mut executor, docker) = world(21);
    let id = running(&docker, "app");
    let at = |secs: i64| WALL_START / SECOND + secs;
    // Host time 100 s: stdout 0..5. Host time 110 s, the clock steps back 30 s: stdout
    // 5..10 and stderr 0..2 are stamped 80 s. Wall 125 s (host 95 s): stdout 10..12.
    executor.advance_for(Duration::from_secs(100));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    executor.advance_for(Duration::from_secs(10));
    docker.step_clock_back(Duration::from_secs(30));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 5)).unwrap();
    docker.emit(&id, Burst::lines(StdStream::Stderr, 2)).unwrap();
    executor.advance_for(Duration::from_secs(15));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();

    // A first request at 90 s: the lines stamped 80 s are skipped, wherever they lie;
    // those written after 95 s pass although they follow skipped ones.
    let since = read_all(&mut executor, &docker, &id, opts(false, at(90)));
    assert_eq!(seqs(&since, StdStream::Stdout), vec![0, 1, 2, 3, 4, 10, 11]);
    assert_eq!(seqs(&since, StdStream::Stderr), Vec::<u64>::new());
    assert!(since.iter().all(|entry| entry.ts >= at(90) * SECOND));
    // No reader had them: the world counts them lost to the clock step.
    assert_eq!(lost_to_clock_step(&docker, &id), [5, 2]);

    // Every line is still in the log, in arrival order; timestamps stepped back.
    let all = read_all(&mut executor, &docker, &id, opts(false, 0));
    assert_eq!(seqs(&all, StdStream::Stdout), (0..12).collect::<Vec<_>>());
    let stdout: Vec<UnixNanos> =
        all.iter().filter(|entry| entry.stream == StdStream::Stdout).map(|entry| entry.ts).collect();
    assert!(stdout[5] < stdout[4] && stdout[5] >= at(80) * SECOND && stdout[10] >= at(95) * SECOND);
    let at_80 = read_all(&mut executor, &docker, &id, opts(false, at(80)));
    assert_eq!(at_80.len(), 14);
    // A request after 100 s: only the lines before the step pass (the later ones are
    // stamped 95 s); nothing more is lost, the skipped lines were read.
    let late = read_all(&mut executor, &docker, &id, opts(false, at(100)));
    assert_eq!(seqs(&late, StdStream::Stdout), vec![0, 1, 2, 3, 4]);
    assert_eq!(lost_to_clock_step(&docker, &id), [5, 2]);
}

#[test]
fn a_follow_opened_before_a_clock_step_skips_later_lines_stamped_before_its_since() {
    let (mut executor, docker, id, got) = followed_then_stepped_back(22);
    // The next lines are stamped 80 s, then 105 s (wall 125 s).
    docker.emit(&id, Burst::lines(StdStream::Stdout, 2)).unwrap();
    executor.advance_for(Duration::from_secs(25));
    docker.emit(&id, Burst::lines(StdStream::Stdout, 1)).unwrap();
    docker.stop(&id).unwrap();
    executor.advance_for(Duration::from_secs(1));
    let (entries, _) = decode(&got.lock().unwrap());
    assert_eq!(seqs(&entries, StdStream::Stdout), vec![0, 1, 2, 5]);
    assert_eq!(lost_to_clock_step(&docker, &id), [2, 0]);
}

#[test]
fn a_replay_that_shows_earlier_lines_stamped_after_the_resume_line_may_count_a_gap() {
    use super::log::ContainerLog;
    // Lines 0..5 at 100 s, then the clock steps back 30 s and lines 5..10 are stamped
    // 80 s: a request that resumes from line 7 with a `since` at or before 100 s is
    // replayed lines 0..5 (stamped after it) before its resume line, which the agent
    // cannot tell from a deleted resume line.
    let mut log = ContainerLog::new(false, false);
    log.append(StdStream::Stdout, 5, 20, WALL_START + 100 * SECOND, 1_000);
    log.clock_stepped_back(30 * SECOND);
    log.append(StdStream::Stdout, 5, 20, WALL_START + 80 * SECOND, 1_000);
    log.reset_reader([Some(3), None]);
    log.note_stepped_replay(Some(WALL_START + 98 * SECOND));
    assert_eq!(log.gaps_possible(), [0, 0], "a resume line before the step is replayed first");
    log.reset_reader([Some(7), None]);
    log.note_stepped_replay(Some(WALL_START + 101 * SECOND));
    assert_eq!(log.gaps_possible(), [0, 0], "the since filter skips the earlier lines");
    log.note_stepped_replay(Some(WALL_START + 78 * SECOND));
    assert_eq!(log.gaps_possible(), [1, 0]);
}

#[test]
fn lines_a_clock_step_already_lost_are_not_lost_again_to_the_removal() {
    // Seed 414: a follow skipped lines its `since` filtered after a clock step (the
    // step's loss) and was handed nothing after them; the container's removal then
    // deleted nothing unread, so it names nothing lost to it and owes no tail.
    let (mut executor, docker, id, got) = followed_then_stepped_back(23);
    docker.emit(&id, Burst::lines(StdStream::Stdout, 4)).unwrap();
    executor.advance_for(Duration::from_secs(1));
    assert_eq!(lost_to_clock_step(&docker, &id), [4, 0]);
    docker.remove(&id).unwrap();
    executor.advance_for(Duration::from_secs(1));
    let (entries, _) = decode(&got.lock().unwrap());
    assert_eq!(seqs(&entries, StdStream::Stdout), vec![0, 1, 2]);
    let report = docker.containers().into_iter().find(|report| report.id == id).unwrap();
    assert!(report.removed);
    assert_eq!((report.lost_to_clock_step, report.lost_to_removal), ([4, 0], [0, 0]));
}

#[test]
fn a_deleted_resume_line_is_noticeable_at_the_first_line_stamped_after_it() {
    use super::log::{ContainerLog, LogCursor, ReaderInfo};
    // Seed 34291: stdout 0..5 at 100 s, read to its end (resume line 4). The clock steps
    // back 30 s: lines 5..8 are stamped 80 s, then 9..11 110 s. A rotation keeping 6
    // entries deletes lines 0..5, the resume line among them.
    let mut log = ContainerLog::new(false, false);
    log.append(StdStream::Stdout, 5, 20, WALL_START + 100 * SECOND, 1_000);
    let first = ReaderInfo { opened_epoch: 0, since: None, tail: false };
    log.mark_read_by(LogCursor { burst: 1, entry: 0 }, first);
    log.clock_stepped_back(30 * SECOND);
    log.append(StdStream::Stdout, 3, 20, WALL_START + 80 * SECOND, 1_000);
    log.append(StdStream::Stdout, 3, 20, WALL_START + 110 * SECOND, 1_000);
    log.rotate(6);
    let reopened = ReaderInfo { opened_epoch: 1, since: Some(WALL_START + 98 * SECOND), tail: false };
    // Lines 5 and 6, stamped before the resume line: the agent takes them for replayed
    // lines (their keys are below its resume key), so it has nothing to notice yet.
    log.mark_read_by(LogCursor { burst: 1, entry: 2 }, reopened);
    assert_eq!(log.gaps_noticeable(), [0, 0]);
    // Line 9, stamped after it: past its resume key without having seen it.
    log.mark_read_by(LogCursor { burst: 2, entry: 1 }, reopened);
    assert_eq!(log.gaps_noticeable(), [1, 0]);
}

/// The agent runs on the Docker host: its wall clock (the runtime's) steps back with the
/// stamps, and events carry that clock (Docker's `timeNano`); Loki's clock, another
/// host's, does not step.
#[test]
fn the_agents_clock_and_event_times_step_back_with_the_host() {
    let (mut executor, docker) = world(23);
    let rt = executor.handle();
    executor.advance_for(Duration::from_secs(100));
    let (host, other) = (rt.wall(), rt.reference_wall());
    assert_eq!(host, other);
    let times = Arc::new(Mutex::new(Vec::new()));
    let (events_docker, times_seen) = (docker.clone(), times.clone());
    executor.spawn_world("events", async move {
        let mut events = events_docker.events().await.unwrap();
        while let Some(Ok(event)) = events.next().await {
            times_seen.lock().unwrap().push(event.time);
        }
    });
    executor.run_until_stalled();
    docker.step_clock_back(Duration::from_secs(30));
    assert_eq!(rt.wall(), host - 30 * SECOND);
    assert_eq!(rt.reference_wall(), other);
    running(&docker, "app");
    executor.run_until_stalled();
    let stepped = Some(host - 30 * SECOND);
    assert_eq!(*times.lock().unwrap(), [stepped, stepped], "create and start");
}
