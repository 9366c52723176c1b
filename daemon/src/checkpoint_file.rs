//! `FileCheckpointStore`: the engine's [`CheckpointStore`] as one JSON file
//! (`[positions] path`), with the generation before it kept beside it.
//!
//! Promises:
//! - `commit` is atomic across crashes and power loss: the JSON goes to a temp file in
//!   the same directory, which is fsynced; the current file is renamed to
//!   `<path>.prev` (the previous generation), the temp file is renamed over `<path>`,
//!   and then the directory is fsynced. `load` sees the old or the new checkpoint, never
//!   a mix.
//! - A lost checkpoint is never taken for a first run (where `first_sight = "now"`
//!   would lose every line written while the agent was down). `load_with_origin`:
//!   - `<path>` reads: `Current`.
//!   - `<path>` is corrupt (not a checkpoint, empty included): it is quarantined as
//!     `<path>.corrupt` (replacing an older one, logged as an error) and `<path>.prev`
//!     is tried; `<path>` missing (a crash between the two renames of a commit, or a
//!     person deleting it): `<path>.prev` is tried.
//!   - `<path>.prev` reads: `Previous` (what was acknowledged since it is delivered
//!     again: at most one `commit_every` plus what was in flight).
//!   - neither reads, and there is evidence that a checkpoint existed (a corrupt
//!     generation just now, or a `<path>.corrupt` / `<path>.prev.corrupt` left by an
//!     earlier start): `Lost`, with an empty checkpoint; the agent reads every
//!     container from the beginning. A corrupt `<path>.prev` is quarantined as
//!     `<path>.prev.corrupt`.
//!   - nothing at all: `Fresh`, a first run. Deleting `<path>*` is how a person asks
//!     for a first run.
//! - Errors other than "not found" (permissions, I/O) are `CheckpointError::Io`: the
//!   daemon does not start rather than guess.
//! - File I/O runs on tokio's blocking pool; commits are serialised by a mutex.
//!
//! The format is the engine's `Checkpoint` serialised with serde_json:
//! `{"containers":{"<id>":{"stdout":{"ts":…,"seq":…},"stderr":{…}}}}`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use engine::port::{Checkpoint, CheckpointError, CheckpointOrigin, CheckpointStore, LoadedCheckpoint};
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
        Box::pin(async move { blocking(move || load(&path).map(|loaded| loaded.checkpoint)).await })
    }

    fn load_with_origin(&self) -> BoxFuture<Result<LoadedCheckpoint, CheckpointError>> {
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

/// `<path><suffix>`, beside it.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The previous generation of the checkpoint at `path`.
pub fn previous_path(path: &Path) -> PathBuf {
    sibling(path, ".prev")
}

/// One generation: `Ok(None)` when the file does not exist.
pub fn read_generation(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("cannot read", path, error)),
    };
    // serde would also read a struct from a JSON array (`[]` is an empty checkpoint to
    // it); only the object this store writes is a checkpoint.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CheckpointError::Corrupt(format!("{}: not a JSON object", path.display())));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| CheckpointError::Corrupt(format!("{}: {error}", path.display())))
}

/// The checkpoint and where it came from; see the module docs for the rule.
pub fn load(path: &Path) -> Result<LoadedCheckpoint, CheckpointError> {
    let loaded = |checkpoint, origin| Ok(LoadedCheckpoint { checkpoint, origin });
    let mut corrupt_now = false;
    match read_generation(path) {
        Ok(Some(checkpoint)) => return loaded(checkpoint, CheckpointOrigin::Current),
        Ok(None) => {}
        Err(CheckpointError::Corrupt(problem)) => {
            quarantine(path, ".corrupt", &problem)?;
            corrupt_now = true;
        }
        Err(io) => return Err(io),
    }
    let previous = previous_path(path);
    match read_generation(&previous) {
        Ok(Some(checkpoint)) => return loaded(checkpoint, CheckpointOrigin::Previous),
        Ok(None) => {}
        Err(CheckpointError::Corrupt(problem)) => {
            quarantine(&previous, ".corrupt", &problem)?;
            corrupt_now = true;
        }
        Err(io) => return Err(io),
    }
    let existed = corrupt_now || sibling(path, ".corrupt").exists() || sibling(&previous, ".corrupt").exists();
    let origin = if existed { CheckpointOrigin::Lost } else { CheckpointOrigin::Fresh };
    loaded(Checkpoint::default(), origin)
}

/// Move a corrupt generation aside as `<file><suffix>` (replacing an older one), loudly.
fn quarantine(file: &Path, suffix: &str, problem: &str) -> Result<(), CheckpointError> {
    let aside = sibling(file, suffix);
    std::fs::rename(file, &aside).map_err(|error| {
        CheckpointError::Io(format!("{problem}; and it cannot be moved aside to {}: {error}", aside.display()))
    })?;
    tracing::error!(path = %file.display(), moved_to = %aside.display(), %problem, "positions file is corrupt: moved aside");
    Ok(())
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
    // The current generation becomes the previous one. A crash before the next rename
    // leaves no `<path>`: `load` then takes `<path>.prev`, which is this very file.
    let previous = previous_path(path);
    match std::fs::rename(path, &previous) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            return Err(io_error("cannot rename into", &previous, error));
        }
    }
    if let Err(error) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error("cannot rename into", path, error));
    }
    File::open(&dir).and_then(|dir_handle| dir_handle.sync_all()).map_err(|error| io_error("cannot fsync", &dir, error))
}

#[cfg(test)]
mod tests {
    use engine::model::{ContainerId, ResumeKey};
    use engine::port::ContainerCheckpoint;

    use super::*;

    fn sample(seq: u32) -> Checkpoint {
        let mut checkpoint = Checkpoint::default();
        checkpoint.containers.insert(
            ContainerId::new("abc"),
            ContainerCheckpoint {
                stdout: Some(ResumeKey { ts: 1_700_000_000_123_456_789, seq }),
                stderr: None,
                since: None,
                ..Default::default()
            },
        );
        checkpoint
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        names
    }

    fn loaded(checkpoint: Checkpoint, origin: CheckpointOrigin) -> LoadedCheckpoint {
        LoadedCheckpoint { checkpoint, origin }
    }

    #[tokio::test]
    async fn a_first_sight_without_a_position_is_kept_and_makes_the_store_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let store = FileCheckpointStore::new(path.clone());
        let mut checkpoint = Checkpoint::default();
        checkpoint
            .containers
            .insert(ContainerId::new("abc"), ContainerCheckpoint { since: Some(1_700_000_000), ..Default::default() });
        store.commit(checkpoint.clone()).await.unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains(r#""since":1700000000"#));
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(checkpoint, CheckpointOrigin::Current));
    }

    #[tokio::test]
    async fn nothing_is_fresh_and_commits_keep_the_previous_generation() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = FileCheckpointStore::new(state.join("positions.json"));
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(Checkpoint::default(), CheckpointOrigin::Fresh));
        store.commit(sample(1)).await.unwrap();
        assert_eq!(names(&state), vec!["positions.json"], "no previous generation yet, no temp files");
        store.commit(sample(2)).await.unwrap();
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(sample(2), CheckpointOrigin::Current));
        assert_eq!(read_generation(&state.join("positions.json.prev")).unwrap(), Some(sample(1)));
        store.commit(Checkpoint::default()).await.unwrap();
        // Every container removed: still not a first run.
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(Checkpoint::default(), CheckpointOrigin::Current));
        assert_eq!(store.load().await.unwrap(), Checkpoint::default());
        assert_eq!(read_generation(&state.join("positions.json.prev")).unwrap(), Some(sample(2)));
        assert_eq!(names(&state), vec!["positions.json", "positions.json.prev"]);
    }

    #[tokio::test]
    async fn a_corrupt_current_generation_is_quarantined_and_the_previous_one_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let store = FileCheckpointStore::new(&path);
        store.commit(sample(1)).await.unwrap();
        store.commit(sample(2)).await.unwrap();
        std::fs::write(&path, b"{\"containers\": {\"abc\": tru").unwrap();
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(sample(1), CheckpointOrigin::Previous));
        assert_eq!(names(dir.path()), vec!["positions.json.corrupt", "positions.json.prev"]);
        // Loading again (the daemon loads before the agent does) gives the same answer.
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(sample(1), CheckpointOrigin::Previous));
        // The next commit writes a current generation and keeps the previous one.
        store.commit(sample(3)).await.unwrap();
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(sample(3), CheckpointOrigin::Current));
        assert_eq!(read_generation(&sibling(&path, ".prev")).unwrap(), Some(sample(1)));
    }

    #[tokio::test]
    async fn an_empty_or_missing_current_generation_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let store = FileCheckpointStore::new(&path);
        store.commit(sample(1)).await.unwrap();
        store.commit(sample(2)).await.unwrap();
        std::fs::write(&path, b"").unwrap();
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(sample(1), CheckpointOrigin::Previous));
        // A crash between a commit's two renames leaves only the previous generation.
        std::fs::remove_file(sibling(&path, ".corrupt")).unwrap();
        assert!(!path.exists());
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(sample(1), CheckpointOrigin::Previous));
    }

    #[tokio::test]
    async fn no_readable_generation_after_one_existed_is_lost_not_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions.json");
        let store = FileCheckpointStore::new(&path);
        // One commit only, then corrupted: nothing to fall back to.
        store.commit(sample(1)).await.unwrap();
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(Checkpoint::default(), CheckpointOrigin::Lost));
        // A restart before anything was committed: the quarantined file still says so.
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(Checkpoint::default(), CheckpointOrigin::Lost));
        // Both generations corrupt: both quarantined.
        store.commit(sample(2)).await.unwrap();
        store.commit(sample(3)).await.unwrap();
        std::fs::write(&path, b"{").unwrap();
        std::fs::write(sibling(&path, ".prev"), b"[]").unwrap();
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(Checkpoint::default(), CheckpointOrigin::Lost));
        assert_eq!(names(dir.path()), vec!["positions.json.corrupt", "positions.json.prev.corrupt"]);
        // Deleting every generation and quarantined file is how a person asks for a first run.
        for name in names(dir.path()) {
            std::fs::remove_file(dir.path().join(name)).unwrap();
        }
        assert_eq!(store.load_with_origin().await.unwrap(), loaded(Checkpoint::default(), CheckpointOrigin::Fresh));
    }

    #[tokio::test]
    async fn io_errors_are_errors_not_guesses() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be cannot be read as one.
        let path = dir.path().join("positions.json");
        std::fs::create_dir(&path).unwrap();
        let store = FileCheckpointStore::new(&path);
        match store.load_with_origin().await {
            Err(CheckpointError::Io(message)) => assert!(message.contains("positions.json"), "{message}"),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn format_is_plain_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        commit(&path, &sample(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, r#"{"containers":{"abc":{"stdout":{"ts":1700000000123456789,"seq":2}}}}"#);
    }
}
