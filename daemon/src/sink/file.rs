//! `FileTransport`: the [`SinkTransport`] that appends JSON lines to `<dir>/logs.jsonl`.
//!
//! One `{"ts":…,"labels":…,"line":…}` object per log line
//! (`engine::loki::json::encode_batch_json_lines`), one `write_all` per batch, appended
//! to a file opened once at start (the directory is created if missing). Promises:
//! - A batch is acknowledged (`Ok`) only after its bytes were written and flushed to the
//!   OS; there is no fsync per batch, so a power loss may lose the tail (a process crash
//!   does not).
//! - A failed write is `Retry` (disk full, I/O error): the sink worker backs off and
//!   sends the batch again; nothing is dropped here.
//! - The write runs on tokio's blocking pool, one batch at a time (a mutex), so a slow
//!   disk never stalls a runtime worker.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use engine::model::Batch;
use engine::port::{SendOutcome, SinkTransport};
use engine::rt::BoxFuture;

pub const FILE_NAME: &str = "logs.jsonl";

pub struct FileTransport {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl FileTransport {
    pub fn open(dir: &Path) -> std::io::Result<FileTransport> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(FileTransport { path, file: Arc::new(Mutex::new(file)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SinkTransport for FileTransport {
    fn send(&self, batch: Arc<Batch>) -> BoxFuture<SendOutcome> {
        let file = self.file.clone();
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || {
                let bytes = engine::loki::json::encode_batch_json_lines(&batch);
                let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                file.write_all(&bytes)?;
                file.flush()
            })
            .await;
            match written {
                Ok(Ok(())) => SendOutcome::Ok,
                Ok(Err(error)) => SendOutcome::Retry { after: None, reason: format!("io: {error}") },
                Err(join_error) => SendOutcome::Retry { after: None, reason: format!("io task: {join_error}") },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::test_batch;

    #[tokio::test]
    async fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileTransport::open(&dir.path().join("nested")).unwrap();
        assert_eq!(sink.send(test_batch()).await, SendOutcome::Ok);
        assert_eq!(sink.send(test_batch()).await, SendOutcome::Ok);
        let text = std::fs::read_to_string(sink.path()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["line"], "hello");
        assert_eq!(lines[3]["line"], "world");
        assert_eq!(lines[0]["labels"]["container"], "web");
    }
}
