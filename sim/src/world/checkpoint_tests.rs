//! Tests of the checkpoint store: atomic commits, crash during commit, injected errors.

use std::time::Duration;

use engine::model::{ContainerId, ResumeKey};
use engine::port::{
    Checkpoint, CheckpointError, CheckpointOrigin, CheckpointStore, ContainerCheckpoint, LoadedCheckpoint,
};
use engine::rt::Instant;

use super::*;
use crate::executor::Executor;

fn checkpoint(ts: i64) -> Checkpoint {
    let mut checkpoint = Checkpoint::default();
    let position =
        ContainerCheckpoint { stdout: Some(ResumeKey { ts, seq: 0 }), stderr: None, since: None, ..Default::default() };
    checkpoint.containers.insert(ContainerId::new("c1"), position);
    checkpoint
}

#[test]
fn commit_then_load_returns_it() {
    let mut executor = Executor::new(1, 0);
    let store = SimCheckpointStore::new(executor.handle());
    let store2 = store.clone();
    let loaded = executor
        .block_on(async move {
            assert_eq!(store2.load().await.unwrap(), Checkpoint::default());
            store2.commit(checkpoint(5)).await.unwrap();
            store2.load().await.unwrap()
        })
        .unwrap();
    assert_eq!(loaded, checkpoint(5));
    assert_eq!(store.committed(), checkpoint(5));
    assert_eq!(store.commits_total(), 1);
}

#[test]
fn a_commit_cut_short_by_a_crash_keeps_the_previous_checkpoint() {
    let mut executor = Executor::new(2, 0);
    let store = SimCheckpointStore::with_checkpoint(executor.handle(), checkpoint(1));
    store.set_commit_latency(Duration::from_millis(10));
    let tasks = engine::task::Tasks::new(executor.rt());
    let store2 = store.clone();
    let _committer = tasks.spawn(engine::task::TaskKind::Checkpoint, async move {
        store2.commit(checkpoint(2)).await.unwrap();
        store2.commit(checkpoint(3)).await.unwrap();
    });
    executor.run_until(Instant::ZERO + Duration::from_millis(15));
    assert_eq!(executor.drop_engine_tasks(), 1, "crash in the middle of the second commit");
    assert_eq!(store.committed(), checkpoint(2));
    executor.run_until(Instant::ZERO + Duration::from_secs(1));
    assert_eq!(store.committed(), checkpoint(2));
    assert_eq!(store.commits_total(), 1);
}

#[test]
fn injected_failures_change_nothing() {
    let mut executor = Executor::new(3, 0);
    let store = SimCheckpointStore::with_checkpoint(executor.handle(), checkpoint(1));
    store.fail_next_commits(1);
    store.fail_next_loads(1);
    let store2 = store.clone();
    let results = executor
        .block_on(async move {
            let load = store2.load().await;
            let commit = store2.commit(checkpoint(2)).await;
            (load, commit, store2.load().await)
        })
        .unwrap();
    assert!(matches!(results.0, Err(CheckpointError::Io(_))));
    assert!(matches!(results.1, Err(CheckpointError::Io(_))));
    assert_eq!(results.2, Ok(checkpoint(1)));
    assert_eq!(store.commit_failures(), 1);
}

fn load_now(executor: &mut Executor, store: &SimCheckpointStore) -> LoadedCheckpoint {
    let store = store.clone();
    executor.block_on(async move { store.load_with_origin().await.unwrap() }).unwrap()
}

fn commit_now(executor: &mut Executor, store: &SimCheckpointStore, checkpoint: Checkpoint) {
    let store = store.clone();
    executor.block_on(async move { store.commit(checkpoint).await.unwrap() }).unwrap();
}

#[test]
fn a_corrupt_current_generation_falls_back_to_the_previous_one() {
    let mut executor = Executor::new(3, 0);
    let store = SimCheckpointStore::new(executor.handle());
    commit_now(&mut executor, &store, checkpoint(1));
    commit_now(&mut executor, &store, checkpoint(2));
    store.damage(CheckpointDamage::Corrupt);
    let expected = LoadedCheckpoint { checkpoint: checkpoint(1), origin: CheckpointOrigin::Previous };
    assert_eq!(store.to_be_loaded(), expected);
    assert_eq!(load_now(&mut executor, &store), expected);
    // Quarantined: the next load still finds the previous generation.
    assert_eq!(load_now(&mut executor, &store), expected);
    // The next commit is current again; the previous generation stays what it was.
    commit_now(&mut executor, &store, checkpoint(3));
    assert_eq!(load_now(&mut executor, &store).origin, CheckpointOrigin::Current);
    commit_now(&mut executor, &store, checkpoint(4));
    store.damage(CheckpointDamage::Corrupt);
    assert_eq!(load_now(&mut executor, &store).checkpoint, checkpoint(3));
}

#[test]
fn a_missing_current_generation_is_the_previous_rename_half_done() {
    let mut executor = Executor::new(4, 0);
    let store = SimCheckpointStore::new(executor.handle());
    commit_now(&mut executor, &store, checkpoint(1));
    commit_now(&mut executor, &store, checkpoint(2));
    store.damage(CheckpointDamage::Missing);
    // The crash fell between the renames: `<path>.prev` is the last commit.
    let expected = LoadedCheckpoint { checkpoint: checkpoint(2), origin: CheckpointOrigin::Previous };
    assert_eq!(load_now(&mut executor, &store), expected);
}

#[test]
fn a_corrupt_only_generation_is_lost_never_fresh() {
    let mut executor = Executor::new(5, 0);
    let store = SimCheckpointStore::new(executor.handle());
    commit_now(&mut executor, &store, checkpoint(1));
    // Missing with no previous generation would be a first run: corrupt instead.
    store.damage(CheckpointDamage::Missing);
    let lost = LoadedCheckpoint { checkpoint: Checkpoint::default(), origin: CheckpointOrigin::Lost };
    assert_eq!(load_now(&mut executor, &store), lost);
    assert_eq!(load_now(&mut executor, &store), lost, "the quarantined file is evidence");
    assert_eq!(store.damages(), 1);
}

#[test]
fn only_a_store_never_written_is_fresh() {
    // As the daemon's file store: an empty checkpoint that was committed (every
    // container the first run saw was removed) is the current one, not a first run.
    let mut executor = Executor::new(6, 0);
    let store = SimCheckpointStore::new(executor.handle());
    assert_eq!(load_now(&mut executor, &store).origin, CheckpointOrigin::Fresh);
    commit_now(&mut executor, &store, Checkpoint::default());
    let current = LoadedCheckpoint { checkpoint: Checkpoint::default(), origin: CheckpointOrigin::Current };
    assert_eq!(load_now(&mut executor, &store), current);
    // What only the simulator's probe committed is forgotten with its files.
    store.forget_first_sights();
    assert_eq!(load_now(&mut executor, &store).origin, CheckpointOrigin::Fresh);
    commit_now(&mut executor, &store, checkpoint(1));
    store.forget_first_sights();
    assert_eq!(load_now(&mut executor, &store).origin, CheckpointOrigin::Current, "a position is kept");
}
