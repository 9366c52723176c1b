//! `FileCheckpointStore`: the engine's [`CheckpointStore`] as one JSON file
//! (`[positions] path`).
//!
//! Promises:
//! - `commit` is atomic across crashes and power loss: the JSON goes to a temp file in
//!   the same directory, which is fsynced, renamed over the real file, and then the
//!   directory is fsynced. `load` sees the old or the new checkpoint, never a mix.
//! - `load` of a missing file is an empty checkpoint (first run). A file that is not a
//!   valid checkpoint is `CheckpointError::Corrupt`; [`quarantine_corrupt`] moves it
//!   aside as `<path>.corrupt` so the daemon can start from empty and a person can look.
//! - File I/O runs on tokio's blocking pool; commits are serialised by a mutex.
//!
//! The format is the engine's `Checkpoint` serialised with serde_json:
//! `{"containers":{"<id>":{"stdout":{"ts":…,"seq":…},"stderr":{…}}}}`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use engine::port::{Checkpoint, CheckpointError, CheckpointStore};
use engine::rt::BoxFuture;

pub struct FileCheckpointStore {
    path: PathBuf,
    commit_lock: Arc<Mutex<()>>,
}

impl FileCheckpointStore {
    pub fn new(path: impl Into<PathBuf>) -> FileCheckpointStore {
        FileCheckpointStore { path: path.into(), commit_lock: Arc::new(Mutex::new(())) }
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load(&self) -> BoxFuture<Result<Checkpoint, CheckpointError>> {
        let path = self.path.clone();
        Box::pin(async move { blocking(move || load(&path)).await })
    }

    fn commit(&self, checkpoint: Checkpoint) -> BoxFuture<Result<(), CheckpointError>> {
        let path = self.path.clone();
        let lock = self.commit_lock.clone();
        Box::pin(async move {
            blocking(move || {
                let _serialised = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                commit(&path, &checkpoint)
            })
            .await
        })
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, CheckpointError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join_error| Err(CheckpointError::Io(format!("checkpoint I/O task failed: {join_error}"))))
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> CheckpointError {
    CheckpointError::Io(format!("{what} {}: {error}", path.display()))
}

pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
        Err(error) => return Err(io_error("cannot read", path, error)),
    };
    serde_json::from_slice(&bytes).map_err(|error| CheckpointError::Corrupt(format!("{}: {error}", path.display())))
}

pub fn commit(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|error| io_error("cannot create", &dir, error))?;
    let json = serde_json::to_vec(checkpoint)
        .map_err(|error| CheckpointError::Io(format!("cannot serialise the checkpoint: {error}")))?;
    let file_name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
        file.write_all(&json)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error("cannot write", &temp, error));
    }
    if let Err(error) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error("cannot rename into", path, error));
    }
    File::open(&dir).and_then(|dir_handle| dir_handle.sync_all()).map_err(|error| io_error("cannot fsync", &dir, error))
}

/// Move a corrupt checkpoint file aside as `<path>.corrupt` (replacing an older one).
/// Returns where it went.
pub fn quarantine_corrupt(path: &Path) -> std::io::Result<PathBuf> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use engine::model::{ContainerId, ResumeKey};
    use engine::port::ContainerCheckpoint;

    use super::*;

    fn sample() -> Checkpoint {
        let mut checkpoint = Checkpoint::default();
        checkpoint.containers.insert(
            ContainerId::new("abc"),
            ContainerCheckpoint { stdout: Some(ResumeKey { ts: 1_700_000_000_123_456_789, seq: 2 }), stderr: None },
        );
        checkpoint
    }

    #[tokio::test]
    async fn missing_file_is_empty_and_commit_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().join("state/positions.json"));
        assert_eq!(store.load().await.unwrap(), Checkpoint::default());
        store.commit(sample()).await.unwrap();
        assert_eq!(store.load().await.unwrap(), sample());
        store.commit(Checkpoint::default()).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Checkpoint::default());
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.path().join("state")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("positions.json")], "no temp files left");
    }

    #[tokio::test]
    async fn corrupt_file_is_reported_and_can_be_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        std::fs::write(&path, b"{\"containers\": {\"abc\": tru").unwrap();
        let store = FileCheckpointStore::new(&path);
        match store.load().await {
            Err(CheckpointError::Corrupt(message)) => assert!(message.contains("positions.json"), "{message}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let aside = quarantine_corrupt(&path).unwrap();
        assert!(aside.ends_with("positions.json.corrupt"));
        assert_eq!(store.load().await.unwrap(), Checkpoint::default());
    }

    #[test]
    fn format_is_plain_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        commit(&path, &sample()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, r#"{"containers":{"abc":{"stdout":{"ts":1700000000123456789,"seq":2}}}}"#);
    }
}
