//! The conformance script's TTY part (issue 8): one container created with a TTY
//! (`docker run -t`), run through the `ContainerEngine` port in any world, recording
//! what must be the same in every world ([`TtyFacts`]).
//!
//! The program prints a stdout line, a stderr line, a stdout line and a 40 KiB line at
//! once. What a TTY container's log looks like on Docker 20.10.24 ([`tty_reference_facts`]):
//! inspect says `tty`; the stream has no frame headers (it starts with a timestamp);
//! every line ends in `\r\n` (the terminal's line end, never a bare `\n`); the stderr
//! line is stdout (the terminal merges them), in write order; and a long line is cut
//! every 16 KiB like a framed one. The raw bytes are decoded with the engine's own
//! [`TtyDecoder`], which drops the `\r`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use engine::model::ContainerId;
use engine::parse::timestamp::split_timestamp;
use engine::parse::tty::TtyDecoder;
use engine::port::docker::{ContainerEngine, LogOptions};
use engine::rt::Rt;
use futures::StreamExt;
use serde::Serialize;

use crate::conformance::{within, Entry, Program, Step, WorldControl};

/// The long line's length: 2.5 times Docker's 16 KiB entry limit.
const LONG_LINE_BYTES: usize = 40 * 1024;
/// Entries one run writes: three short lines and the long line's three pieces.
const ENTRIES: usize = 6;
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// What must be the same in every world for a TTY container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TtyFacts {
    /// `inspect` says the container has a TTY.
    pub inspect_tty: bool,
    /// The log starts with a timestamp's digits (no 8-byte frame header).
    pub starts_with_timestamp: bool,
    /// Lines ending in `\r\n`, and `\n` without a `\r` before it, in the raw log.
    pub crlf_line_ends: usize,
    pub bare_newlines: usize,
    /// The entries decoded, in order ([`Entry::tagged`]; the decoder drops the `\r`).
    pub entries: Vec<String>,
    /// Every piece of the long line carries the very same timestamp.
    pub long_line_pieces_share_one_timestamp: bool,
}

/// The TTY script's program.
pub fn tty_program() -> Program {
    Program {
        steps: vec![
            Step::Stdout("out 1".into()),
            Step::Stderr("err 1".into()),
            Step::Stdout("out 2".into()),
            Step::LongStdout { byte: b'z', len: LONG_LINE_BYTES, chunk: LONG_LINE_BYTES, pause: Duration::ZERO },
        ],
    }
}

/// What Docker 20.10.24 did with [`tty_program`] in a TTY container (checked by
/// `conformance_tty_script_on_the_real_engine` in `tests/e2e.rs`).
pub fn tty_reference_facts() -> TtyFacts {
    TtyFacts {
        inspect_tty: true,
        starts_with_timestamp: true,
        crlf_line_ends: 4,
        bare_newlines: 0,
        entries: ["out 1⏎", "err 1⏎", "out 2⏎", "z×16384", "z×16384", "z×8192⏎"]
            .map(|summary| format!("stdout:{summary}"))
            .to_vec(),
        long_line_pieces_share_one_timestamp: true,
    }
}

/// Runs the TTY script once: a TTY container runs [`tty_program`], its log is read once
/// it holds every entry, then it is removed.
pub async fn run_tty_script(
    engine: Arc<dyn ContainerEngine>,
    world: Arc<dyn WorldControl>,
    rt: Arc<dyn Rt>,
) -> Result<TtyFacts> {
    let id = world.run_tty("conformance-tty", &tty_program()).await?;
    let facts = observe(&engine, &rt, &id).await;
    world.remove(&id).await.context("remove")?;
    facts
}

async fn observe(engine: &Arc<dyn ContainerEngine>, rt: &Arc<dyn Rt>, id: &ContainerId) -> Result<TtyFacts> {
    let inspect_tty = engine.inspect(id).await?.tty;
    let deadline = rt.now() + STEP_DEADLINE;
    let (raw, entries) = loop {
        let raw = read_raw(engine, rt, id).await?;
        let entries = decode(&raw)?;
        if entries.len() >= ENTRIES {
            break (raw, entries);
        }
        if rt.now() >= deadline {
            bail!("TTY log has {} entries, not {ENTRIES}, after {STEP_DEADLINE:?}", entries.len());
        }
        rt.sleep(Duration::from_millis(200)).await;
    };
    let crlf_line_ends = raw.windows(2).filter(|pair| *pair == b"\r\n").count();
    let newlines = raw.iter().filter(|byte| **byte == b'\n').count();
    let pieces: Vec<&Entry> = entries.iter().filter(|entry| entry.content.len() > 64).collect();
    Ok(TtyFacts {
        inspect_tty,
        starts_with_timestamp: raw.len() >= 4 && raw[..4].iter().all(u8::is_ascii_digit),
        crlf_line_ends,
        bare_newlines: newlines - crlf_line_ends,
        entries: entries.iter().map(Entry::tagged).collect(),
        long_line_pieces_share_one_timestamp: pieces.windows(2).all(|pair| pair[0].ts == pair[1].ts),
    })
}

/// The whole log as of now (no follow), raw.
async fn read_raw(engine: &Arc<dyn ContainerEngine>, rt: &Arc<dyn Rt>, id: &ContainerId) -> Result<Vec<u8>> {
    let options = LogOptions { follow: false, since_secs: 0, tail: None };
    let read = async {
        let mut stream = engine.logs(id, options).await?;
        let mut raw = Vec::new();
        while let Some(chunk) = stream.next().await {
            raw.extend_from_slice(&chunk?);
        }
        Ok::<_, anyhow::Error>(raw)
    };
    within(rt, STEP_DEADLINE, read).await.ok_or_else(|| anyhow!("TTY logs did not end within {STEP_DEADLINE:?}"))?
}

/// Entries of a raw TTY log, by the engine's decoder.
fn decode(raw: &[u8]) -> Result<Vec<Entry>> {
    let mut decoder = TtyDecoder::new(1 << 20);
    decoder.push(Bytes::copy_from_slice(raw));
    let mut entries = Vec::new();
    while let Some(frame) = decoder.next_frame().map_err(|error| anyhow!("TTY decoder: {error:?}"))? {
        let (ts, content) = split_timestamp(&frame.payload).map_err(|error| anyhow!("timestamp: {error:?}"))?;
        entries.push(Entry { stream: frame.stream, ts, content });
    }
    Ok(entries)
}
