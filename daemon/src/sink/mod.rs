//! The sink transports, and the one place that builds the configured one.
//!
//! - [`loki::LokiTransport`]: push to Loki over HTTP(S).
//! - [`file::FileTransport`]: JSON lines appended to `<dir>/logs.jsonl` (the default).
//! - [`stdout::StdoutTransport`]: JSON lines on standard output.
//!
//! Each implements `engine::port::SinkTransport`: it encodes and sends one batch and
//! says what happened; the engine's sink worker owns retries and acknowledgements.

pub mod file;
pub mod loki;
pub mod stdout;

use std::sync::Arc;

use engine::port::SinkTransport;
use engine::rt::Rt;

use crate::config::SinkChoice;

/// Build the configured sink. Reads the auth secret (Loki) now, at start.
pub fn build(choice: &SinkChoice, rt: Arc<dyn Rt>) -> anyhow::Result<Arc<dyn SinkTransport>> {
    Ok(match choice {
        SinkChoice::Loki(config) => {
            let auth = match &config.auth {
                Some(auth) => Some(auth.resolve()?),
                None => None,
            };
            let transport = loki::LokiTransport::new(config, auth, rt)?;
            tracing::info!(url = %transport.push_url(), encoding = ?config.encoding, "sink: loki");
            Arc::new(transport)
        }
        SinkChoice::File(config) => {
            let transport = file::FileTransport::open(&config.dir)
                .map_err(|error| anyhow::anyhow!("sinks.file.dir: cannot open {}: {error}", config.dir.display()))?;
            tracing::info!(path = %transport.path().display(), "sink: file");
            Arc::new(transport)
        }
        SinkChoice::Stdout(_) => {
            tracing::info!("sink: stdout");
            Arc::new(stdout::StdoutTransport)
        }
    })
}

/// A two-line batch for sink tests.
#[cfg(test)]
pub fn test_batch() -> Arc<engine::model::Batch> {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use engine::model::{Batch, BatchStream, ContainerId, Line, Position, ResumeKey, SourceId, StdStream};

    let labels = Arc::new(BTreeMap::from([
        ("container".to_string(), "web".to_string()),
        ("stream".to_string(), "stdout".to_string()),
    ]));
    let line = |ts: i64, text: &'static str| Line {
        ts,
        bytes: Bytes::from_static(text.as_bytes()),
        position: Position::Container(ResumeKey { ts, seq: 0 }),
    };
    Arc::new(Batch {
        streams: vec![BatchStream {
            source: SourceId::Container { id: ContainerId::new("c0ffee"), stream: StdStream::Stdout },
            labels,
            lines: vec![line(1_700_000_000_000_000_001, "hello"), line(1_700_000_000_000_000_002, "world")],
        }],
        bytes: 10,
        lines: 2,
    })
}
