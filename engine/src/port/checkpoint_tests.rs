//! The default `load_with_origin`, for stores that keep no history: an empty checkpoint
//! is a first run, any other the current one. (The daemon's file store, which can tell a
//! lost checkpoint from a fresh store, is tested in `daemon/src/checkpoint_file.rs`.)

use std::sync::Arc;

use futures::FutureExt;

use super::*;
use crate::model::ContainerId;

struct Fixed(Checkpoint);

impl CheckpointStore for Fixed {
    fn load(&self) -> BoxFuture<Result<Checkpoint, CheckpointError>> {
        let checkpoint = self.0.clone();
        Box::pin(async move { Ok(checkpoint) })
    }

    fn commit(&self, _checkpoint: Checkpoint) -> BoxFuture<Result<(), CheckpointError>> {
        Box::pin(async { Ok(()) })
    }
}

#[test]
fn default_origin_is_fresh_only_for_an_empty_checkpoint() {
    let empty: Arc<dyn CheckpointStore> = Arc::new(Fixed(Checkpoint::default()));
    let loaded = empty.load_with_origin().now_or_never().expect("ready at once").unwrap();
    assert_eq!(loaded.origin, CheckpointOrigin::Fresh);

    let mut checkpoint = Checkpoint::default();
    checkpoint.containers.insert(ContainerId::new("abc"), ContainerCheckpoint::default());
    let known: Arc<dyn CheckpointStore> = Arc::new(Fixed(checkpoint.clone()));
    let loaded = known.load_with_origin().now_or_never().expect("ready at once").unwrap();
    assert_eq!(loaded, LoadedCheckpoint { checkpoint, origin: CheckpointOrigin::Current });
}

#[test]
fn origin_labels_are_stable() {
    let labels: Vec<&str> = CheckpointOrigin::ALL.iter().map(|origin| origin.as_str()).collect();
    assert_eq!(labels, ["fresh", "current", "previous", "lost"]);
    for (index, origin) in CheckpointOrigin::ALL.iter().enumerate() {
        assert_eq!(*origin as usize, index, "telemetry indexes its counters by discriminant");
    }
}

#[test]
fn a_first_sight_is_written_only_when_recorded_and_old_files_still_load() {
    // Written before `since` existed: positions only.
    let old = r#"{"containers":{"abc":{"stdout":{"ts":5,"seq":0}}}}"#;
    let loaded: Checkpoint = serde_json::from_str(old).unwrap();
    let positions = loaded.containers[&ContainerId::new("abc")];
    assert_eq!(positions.since, None);
    assert_eq!(serde_json::to_string(&loaded).unwrap(), old, "no `since` written when there is none");
    let mut checkpoint = Checkpoint::default();
    checkpoint
        .containers
        .insert(ContainerId::new("abc"), ContainerCheckpoint { since: Some(100), ..Default::default() });
    let text = serde_json::to_string(&checkpoint).unwrap();
    assert_eq!(text, r#"{"containers":{"abc":{"since":100}}}"#);
    assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), checkpoint);
}
