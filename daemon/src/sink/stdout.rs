//! `StdoutTransport`: the [`SinkTransport`] that prints JSON lines on standard output.
//!
//! Same rendering as the file sink (`engine::loki::json::encode_batch_json_lines`), one
//! locked write + flush per batch on tokio's blocking pool (a full pipe blocks a pool
//! thread, never a runtime worker). A failed write (closed pipe) is `Retry`. The daemon's
//! own logs go to stderr, so stdout carries only captured lines.

use std::io::Write;
use std::sync::Arc;

use engine::model::Batch;
use engine::port::{SendOutcome, SinkTransport};
use engine::rt::BoxFuture;

#[derive(Default)]
pub struct StdoutTransport;

impl SinkTransport for StdoutTransport {
    fn send(&self, batch: Arc<Batch>) -> BoxFuture<SendOutcome> {
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || {
                let bytes = engine::loki::json::encode_batch_json_lines(&batch);
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&bytes)?;
                stdout.flush()
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
