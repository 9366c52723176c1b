//! Model conformance (DESIGN §6): one script of container actions, run through the
//! `ContainerEngine` port against any world, recording what the port showed.
//!
//! The script ([`run_script`]) needs three things from a world: the port itself
//! (`Arc<dyn ContainerEngine>`), a [`WorldControl`] to start, stop, restart and remove
//! containers running a [`Program`], and an `Arc<dyn Rt>` for its deadlines. The real
//! engine provides them through `daemon/src/docker` + [`crate::real_world::RealDocker`];
//! the simulator's `SimDocker` is meant to provide the same, so that
//! `run_script(real) .facts == run_script(sim) .facts` settles whether the model behaves
//! like the real thing.
//!
//! What is recorded is split in two:
//! - [`Facts`]: what must be equal in every world (order of entries per stream, how a
//!   long line is split, which entries `since` keeps, `tail`, what a restart keeps, when
//!   a following stream ends, errors after removal, the container's events in order);
//! - [`Notes`]: timing-dependent details worth reporting but not comparing (how stdout
//!   and stderr interleaved on arrival, how many entries fell in the first `since`
//!   second, ...).
//!
//! Every wait is bounded by a deadline on the world's own clock, so a world that never
//! delivers makes the script fail with a message, never hang.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use engine::model::{ContainerId, StdStream};
use engine::parse::frame::FrameDecoder;
use engine::parse::timestamp::split_timestamp;
use engine::port::docker::{ContainerEngine, ContainerEventKind, EngineError, EventStream, LogOptions, LogStream};
use engine::rt::{BoxFuture, Rt, UnixNanos};
use futures::future::Either;
use futures::StreamExt;
use serde::Serialize;

/// One thing a container's program does. After its last step a program idles until it
/// is stopped (SIGTERM ends it at once); a restart runs it again from the first step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Print this line (a newline is added) on stdout.
    Stdout(String),
    /// Print this line (a newline is added) on stderr.
    Stderr(String),
    /// Print one line of `len` bytes `byte` (then a newline) on stdout, written in
    /// pieces of `chunk` bytes with `pause` after each (`len` a multiple of `chunk`).
    LongStdout { byte: u8, len: usize, chunk: usize, pause: Duration },
    /// Do nothing for this long.
    Sleep(Duration),
}

/// What a container runs: [`Step`]s, then idle until stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub steps: Vec<Step>,
}

/// How a test drives a world's containers (the real engine, or the simulator's model).
pub trait WorldControl: Send + Sync {
    /// Create and start a container running `program`; returns its id.
    fn run(&self, name: &str, program: &Program) -> BoxFuture<Result<ContainerId>>;
    /// [`Self::run`] with a TTY (`docker run -t`): one output stream, `\r\n` line ends.
    fn run_tty(&self, name: &str, program: &Program) -> BoxFuture<Result<ContainerId>>;
    /// Stop it (SIGTERM, which every [`Program`] obeys at once).
    fn stop(&self, id: &ContainerId) -> BoxFuture<Result<()>>;
    /// Restart it: same id, same log, the program runs again from its first step.
    fn restart(&self, id: &ContainerId) -> BoxFuture<Result<()>>;
    /// Remove it and its log.
    fn remove(&self, id: &ContainerId) -> BoxFuture<Result<()>>;
}

/// The long line's length in the script: 2.5 times Docker's 16 KiB entry limit.
pub const LONG_LINE_BYTES: usize = 40 * 1024;
/// stdout/stderr pairs per burst; three bursts.
pub const PAIRS_PER_BURST: usize = 5;
/// The pause between bursts: longer than a second, so `since` can cut between them.
pub const BURST_PAUSE: Duration = Duration::from_millis(1100);

/// Pieces and pause of the slowly written long line.
pub const SLOW_CHUNK_BYTES: usize = 8 * 1024;
pub const SLOW_CHUNK_PAUSE: Duration = Duration::from_millis(300);

/// The script's program: three bursts of interleaved `out N` / `err N` lines with
/// [`BURST_PAUSE`] between bursts; the second burst is followed by a 40 KiB line of `x`
/// written at once, the third by a 40 KiB line of `y` written 8 KiB every 300 ms (does a
/// piece's timestamp say when it was cut, or when its line began?).
pub fn script_program() -> Program {
    let mut steps = Vec::new();
    let pairs = |steps: &mut Vec<Step>, burst: usize| {
        for n in burst * PAIRS_PER_BURST + 1..=(burst + 1) * PAIRS_PER_BURST {
            steps.push(Step::Stdout(format!("out {n}")));
            steps.push(Step::Stderr(format!("err {n}")));
        }
    };
    pairs(&mut steps, 0);
    steps.push(Step::Sleep(BURST_PAUSE));
    pairs(&mut steps, 1);
    steps.push(Step::LongStdout { byte: b'x', len: LONG_LINE_BYTES, chunk: LONG_LINE_BYTES, pause: Duration::ZERO });
    steps.push(Step::Sleep(BURST_PAUSE));
    pairs(&mut steps, 2);
    steps.push(Step::LongStdout { byte: b'y', len: LONG_LINE_BYTES, chunk: SLOW_CHUNK_BYTES, pause: SLOW_CHUNK_PAUSE });
    Program { steps }
}

/// One decoded log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub stream: StdStream,
    pub ts: UnixNanos,
    pub content: Bytes,
}

impl Entry {
    /// `out 1⏎`, or `x×16384` for long content; `⏎` marks a trailing newline.
    pub fn summary(&self) -> String {
        let (body, newline) = match self.content.strip_suffix(b"\n") {
            Some(body) => (body, "⏎"),
            None => (&self.content[..], ""),
        };
        if body.len() > 64 && body.iter().all(|byte| *byte == body[0]) {
            format!("{}×{}{newline}", body[0] as char, body.len())
        } else {
            format!("{}{newline}", String::from_utf8_lossy(body))
        }
    }

    /// `stdout:out 1⏎`.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.stream.as_str(), self.summary())
    }
}

/// Everything the script saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observations {
    pub facts: Facts,
    pub notes: Notes,
}

/// What must be the same in every world. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// stdout entries of one run of the program, in order ([`Entry::summary`]).
    pub stdout: Vec<String>,
    /// stderr entries of one run of the program, in order.
    pub stderr: Vec<String>,
    /// Each stream's own timestamps never go back.
    pub per_stream_timestamps_monotonic: bool,
    /// The program's long lines, in program order.
    pub long_lines: Vec<LongLineFacts>,
    pub since: SinceFacts,
    /// `tail=3` (with `since=0`, no follow): the entries returned, in order.
    pub tail_3: Vec<String>,
    /// `tail=1` (no follow) returns exactly the log's last entry, timestamp included:
    /// what the agent's stall probe compares with the last line it read.
    pub tail_1_is_the_last_entry: bool,
    pub restart: RestartFacts,
    pub stop: StopFacts,
    pub removed: RemovedFacts,
    /// Events of the container from subscription to `destroy`, in order (lower case).
    pub events: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LongLineFacts {
    /// The line's byte.
    pub byte: char,
    /// Byte length of each entry the long line arrived as, newline included.
    pub piece_bytes: Vec<usize>,
    /// Only the last piece ends in a newline.
    pub only_last_ends_in_newline: bool,
    /// Every piece carries the very same timestamp.
    pub pieces_share_one_timestamp: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SinceFacts {
    /// `since` = the second of the second burst's first entry: the entries returned are
    /// exactly those of the full log with `ts >= since * 10^9`, in the same order.
    pub keeps_exactly_at_or_after: bool,
    /// Entries before that second (the first burst: 10).
    pub dropped: usize,
    /// Entries returned.
    pub kept: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestartFacts {
    /// `inspect` after the restart finds the same id, running.
    pub same_id_running: bool,
    /// The first run's entries (bytes and timestamps) are still the head of the log.
    pub log_kept: bool,
    /// Entries after the second run printed everything (twice one run's).
    pub entries_after_second_run: usize,
    /// A following stream opened before the restart ended because of it.
    pub follow_ended_by_restart: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StopFacts {
    /// A following stream open across the stop ended because of it.
    pub follow_ended_by_stop: bool,
    /// `inspect` after the stop says not running.
    pub not_running: bool,
    /// `follow` on the stopped container returned the whole log and ended.
    pub follow_on_stopped_returns_all_and_ends: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemovedFacts {
    /// `inspect` after `rm`: `Ok`, or the error variant's name.
    pub inspect: String,
    /// `logs` after `rm`: `"gone"` (refused with `NotFound`, or ended empty).
    pub logs: String,
}

/// Timing-dependent details: reported, not compared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Notes {
    /// The first run's entries as they arrived (`stdout:out 1⏎`, ...).
    pub arrival_order: Vec<String>,
    /// Whether arrival order was also timestamp order across both streams.
    pub arrival_in_timestamp_order: bool,
    /// Adjacent arrivals whose timestamps go back: `stdout:out 3⏎ > stderr:err 1⏎ by 12µs`.
    pub arrival_timestamp_inversions: Vec<String>,
    /// Per long line (program order): nanoseconds between consecutive pieces' timestamps.
    pub long_line_piece_gaps_nanos: Vec<Vec<i64>>,
    /// Per long line: milliseconds from the stdout entry before it to its first piece.
    pub long_line_first_piece_after_previous_millis: Vec<i64>,
    /// The `since` second, relative to the first entry's second.
    pub since_second_offset: i64,
    /// Kept entries that lie inside the `since` second itself.
    pub since_kept_inside_first_second: usize,
    /// Entries the following stream delivered after the restart began, before it ended.
    pub follow_entries_after_restart: usize,
    /// Every event the container raised, with ids left out.
    pub event_attributes_seen: Vec<String>,
}

const FRAME_BYTES_MAX: usize = 1024 * 1024;
/// Bound on waiting for a world to do what was asked.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the conformance script once. See the module docs.
pub async fn run_script(
    engine: Arc<dyn ContainerEngine>,
    world: Arc<dyn WorldControl>,
    rt: Arc<dyn Rt>,
) -> Result<Observations> {
    let program = script_program();
    let expected_one_run = expected_entries(&program);
    let mut events = within(&rt, STEP_DEADLINE, engine.events()).await.context("subscribing to events timed out")??;

    let id = world.run("conformance", &program).await?;
    let script = Script { engine: engine.clone(), rt: rt.clone(), id: id.clone() };

    // 1. The whole log of one run.
    let first = script.wait_for_log(expected_one_run).await.context("first run")?;
    let stdout: Vec<String> = of_stream(&first, StdStream::Stdout).map(Entry::summary).collect();
    let stderr: Vec<String> = of_stream(&first, StdStream::Stderr).map(Entry::summary).collect();
    let per_stream_timestamps_monotonic = [StdStream::Stdout, StdStream::Stderr].iter().all(|stream| {
        let timestamps: Vec<UnixNanos> = of_stream(&first, *stream).map(|entry| entry.ts).collect();
        timestamps.windows(2).all(|pair| pair[0] <= pair[1])
    });
    let mut notes = Notes {
        arrival_order: first.iter().map(Entry::tagged).collect(),
        arrival_in_timestamp_order: first.windows(2).all(|pair| pair[0].ts <= pair[1].ts),
        arrival_timestamp_inversions: first
            .windows(2)
            .filter(|pair| pair[0].ts > pair[1].ts)
            .map(|pair| {
                let micros = (pair[0].ts - pair[1].ts) / 1000;
                format!("{} > {} by {micros}µs", pair[0].tagged(), pair[1].tagged())
            })
            .collect(),
        ..Notes::default()
    };

    // 2. The long lines.
    let mut long_lines = Vec::new();
    for step in &program.steps {
        let Step::LongStdout { byte, .. } = step else { continue };
        let stdout_entries: Vec<&Entry> = of_stream(&first, StdStream::Stdout).collect();
        let is_piece = |entry: &Entry| entry.content.len() > 64 && entry.content[0] == *byte;
        let first_piece = stdout_entries.iter().position(|entry| is_piece(entry));
        let pieces: Vec<&Entry> = stdout_entries.iter().copied().filter(|entry| is_piece(entry)).collect();
        long_lines.push(LongLineFacts {
            byte: *byte as char,
            piece_bytes: pieces.iter().map(|entry| entry.content.len()).collect(),
            only_last_ends_in_newline: !pieces.is_empty()
                && pieces
                    .iter()
                    .enumerate()
                    .all(|(index, entry)| entry.content.ends_with(b"\n") == (index + 1 == pieces.len())),
            pieces_share_one_timestamp: pieces.windows(2).all(|pair| pair[0].ts == pair[1].ts),
        });
        notes.long_line_piece_gaps_nanos.push(pieces.windows(2).map(|pair| pair[1].ts - pair[0].ts).collect());
        if let Some(index) = first_piece.filter(|index| *index > 0) {
            let gap = stdout_entries[index].ts - stdout_entries[index - 1].ts;
            notes.long_line_first_piece_after_previous_millis.push(gap / 1_000_000);
        }
    }

    // 3. `since` a whole second inside the output.
    // The second burst's earliest entry: more than a second after the first burst, so
    // its whole second lies after the first burst, whatever the interleaving.
    let second_burst: Vec<String> =
        (PAIRS_PER_BURST + 1..=2 * PAIRS_PER_BURST).flat_map(|n| [format!("out {n}⏎"), format!("err {n}⏎")]).collect();
    let second_burst_start = first
        .iter()
        .filter(|entry| second_burst.contains(&entry.summary()))
        .map(|entry| entry.ts)
        .min()
        .ok_or_else(|| anyhow!("no second burst in the log"))?;
    let since_secs = second_burst_start.div_euclid(1_000_000_000);
    let since_nanos = since_secs * 1_000_000_000;
    let with_since =
        script.read_all(LogOptions { follow: false, since_secs, tail: None }).await.context("logs with since")?;
    let expected_kept: Vec<&Entry> = first.iter().filter(|entry| entry.ts >= since_nanos).collect();
    let since = SinceFacts {
        keeps_exactly_at_or_after: with_since.iter().collect::<Vec<_>>() == expected_kept,
        dropped: first.len() - expected_kept.len(),
        kept: with_since.len(),
    };
    notes.since_second_offset = since_secs - first[0].ts.div_euclid(1_000_000_000);
    notes.since_kept_inside_first_second =
        with_since.iter().filter(|entry| entry.ts < since_nanos + 1_000_000_000).count();

    // 4. `tail`.
    let tail =
        script.read_all(LogOptions { follow: false, since_secs: 0, tail: Some(3) }).await.context("logs with tail")?;
    let tail_3 = tail.iter().map(Entry::tagged).collect();
    let last = script
        .read_all(LogOptions { follow: false, since_secs: 0, tail: Some(1) })
        .await
        .context("logs with tail 1")?;
    let tail_1_is_the_last_entry = last.len() == 1 && first.last() == last.first();

    // 5. Restart, with a following stream open across it.
    let mut follow = script.open(LogOptions { follow: true, since_secs: 0, tail: None }).await?;
    follow.read_until(&rt, expected_one_run, STEP_DEADLINE).await?;
    world.restart(&id).await.context("restart")?;
    let follow_ended_by_restart = follow.read_to_end(&rt, STEP_DEADLINE).await;
    notes.follow_entries_after_restart = follow.entries.len().saturating_sub(expected_one_run);
    drop(follow);
    let second = script.wait_for_log(2 * expected_one_run).await.context("second run")?;
    let restart = RestartFacts {
        same_id_running: matches!(
            engine.inspect(&id).await,
            Ok(info) if info.id == id && info.running
        ),
        log_kept: second.len() >= first.len() && second[..first.len()] == first[..],
        entries_after_second_run: second.len(),
        follow_ended_by_restart,
    };

    // 6. Stop, with a following stream open across it.
    let mut follow = script.open(LogOptions { follow: true, since_secs: 0, tail: None }).await?;
    follow.read_until(&rt, 2 * expected_one_run, STEP_DEADLINE).await?;
    world.stop(&id).await.context("stop")?;
    let follow_ended_by_stop = follow.read_to_end(&rt, STEP_DEADLINE).await;
    drop(follow);
    let not_running = matches!(engine.inspect(&id).await, Ok(info) if !info.running);
    let mut follow = script.open(LogOptions { follow: true, since_secs: 0, tail: None }).await?;
    let ended = follow.read_to_end(&rt, Duration::from_secs(5)).await;
    let follow_on_stopped_returns_all_and_ends = ended && follow.entries == second;
    drop(follow);
    let stop = StopFacts { follow_ended_by_stop, not_running, follow_on_stopped_returns_all_and_ends };

    // 7. Remove.
    world.remove(&id).await.context("remove")?;
    let removed = RemovedFacts {
        inspect: outcome_name(engine.inspect(&id).await.map(drop)),
        logs: removed_logs(&rt, engine.logs(&id, LogOptions { follow: false, since_secs: 0, tail: None }).await).await,
    };

    // 8. The container's events, up to its `destroy`.
    let (events, attributes) = collect_events(&rt, &mut events, &id).await?;
    notes.event_attributes_seen = attributes;

    Ok(Observations {
        facts: Facts {
            stdout,
            stderr,
            per_stream_timestamps_monotonic,
            long_lines,
            since,
            tail_3,
            tail_1_is_the_last_entry,
            restart,
            stop,
            removed,
            events,
        },
        notes,
    })
}

/// What Docker 20.10.24 (API 1.41, json-file driver) did with [`script_program`], the
/// reference a model must reproduce. Observed on the real engine by
/// `conformance_script_on_the_real_engine` in `tests/e2e.rs`, which checks it still holds.
pub fn reference_facts() -> Facts {
    let lines = |stream: &str, range: std::ops::RangeInclusive<usize>| -> Vec<String> {
        range.map(|n| format!("{stream} {n}⏎")).collect()
    };
    let piece = |byte: char, len: usize, newline: bool| format!("{byte}×{len}{}", if newline { "⏎" } else { "" });
    let mut stdout = lines("out", 1..=10);
    stdout.extend([piece('x', 16384, false), piece('x', 16384, false), piece('x', 8192, true)]);
    stdout.extend(lines("out", 11..=15));
    stdout.extend([piece('y', 16384, false), piece('y', 16384, false), piece('y', 8192, true)]);
    let long_line = |byte: char| LongLineFacts {
        byte,
        // 40 KiB + newline: cut every 16 KiB; only the last piece has the newline.
        piece_bytes: vec![16384, 16384, 8193],
        only_last_ends_in_newline: true,
        // All pieces carry the first piece's timestamp, even when written 600 ms apart.
        pieces_share_one_timestamp: true,
    };
    Facts {
        stdout,
        stderr: lines("err", 1..=15),
        per_stream_timestamps_monotonic: true,
        long_lines: vec![long_line('x'), long_line('y')],
        since: SinceFacts { keeps_exactly_at_or_after: true, dropped: 10, kept: 26 },
        // `tail` counts entries, not lines: the last three are the pieces of one line.
        tail_3: vec![
            format!("stdout:{}", piece('y', 16384, false)),
            format!("stdout:{}", piece('y', 16384, false)),
            format!("stdout:{}", piece('y', 8192, true)),
        ],
        tail_1_is_the_last_entry: true,
        restart: RestartFacts {
            same_id_running: true,
            log_kept: true,
            entries_after_second_run: 72,
            follow_ended_by_restart: true,
        },
        stop: StopFacts { follow_ended_by_stop: true, not_running: true, follow_on_stopped_returns_all_and_ends: true },
        removed: RemovedFacts { inspect: "NotFound".into(), logs: "gone".into() },
        // `kill` events (before each `die`) are not carried by the port.
        events: ["create", "start", "die", "stop", "start", "restart", "die", "stop", "destroy"]
            .map(String::from)
            .to_vec(),
    }
}

/// How many entries one run of `program` writes, counting a long line as Docker splits
/// it (16 KiB per entry).
pub fn expected_entries(program: &Program) -> usize {
    program
        .steps
        .iter()
        .map(|step| match step {
            Step::Stdout(_) | Step::Stderr(_) => 1,
            Step::LongStdout { len, .. } => (len + 1).div_ceil(16 * 1024),
            Step::Sleep(_) => 0,
        })
        .sum()
}

fn of_stream(entries: &[Entry], stream: StdStream) -> impl Iterator<Item = &Entry> {
    entries.iter().filter(move |entry| entry.stream == stream)
}

/// What reading a removed container's log gives: `"gone"` when the open is refused
/// with `NotFound` or the stream ends at once with nothing (bollard sends the request on
/// the first poll, so the real adapter reports a 404 as an empty, ended stream; the
/// supervisor takes both as "stopped", then inspects), else what came.
async fn removed_logs(rt: &Arc<dyn Rt>, opened: Result<LogStream, EngineError>) -> String {
    match opened {
        Err(EngineError::NotFound(_)) => "gone".into(),
        Err(error) => outcome_name(Err(error)),
        Ok(stream) => {
            let mut reader = LogReader::new(stream);
            let ended = reader.read_to_end(rt, Duration::from_secs(5)).await;
            match (ended, reader.entries.is_empty(), &reader.error) {
                (true, true, None) => "gone".into(),
                (_, _, Some(error)) => format!("error: {error}"),
                _ => format!("{} entries", reader.entries.len()),
            }
        }
    }
}

fn outcome_name(outcome: Result<(), EngineError>) -> String {
    match outcome {
        Ok(()) => "Ok".into(),
        Err(EngineError::NotFound(_)) => "NotFound".into(),
        Err(EngineError::Unavailable(_)) => "Unavailable".into(),
        Err(EngineError::Protocol(_)) => "Protocol".into(),
    }
}

fn event_name(kind: ContainerEventKind) -> &'static str {
    match kind {
        ContainerEventKind::Create => "create",
        ContainerEventKind::Start => "start",
        ContainerEventKind::Die => "die",
        ContainerEventKind::Stop => "stop",
        ContainerEventKind::Restart => "restart",
        ContainerEventKind::Destroy => "destroy",
        ContainerEventKind::Rename => "rename",
    }
}

/// Reads `events` until the container's `destroy`; its events in order, plus the
/// attribute names each carried (`start:image,name`).
async fn collect_events(
    rt: &Arc<dyn Rt>,
    events: &mut EventStream,
    id: &ContainerId,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut kinds = Vec::new();
    let mut attributes = Vec::new();
    loop {
        let next = within(rt, STEP_DEADLINE, events.next())
            .await
            .ok_or_else(|| anyhow!("no destroy event within {STEP_DEADLINE:?}; saw {kinds:?}"))?;
        let event = match next {
            Some(event) => event?,
            None => bail!("events stream ended before destroy; saw {kinds:?}"),
        };
        if &event.id != id {
            continue;
        }
        kinds.push(event_name(event.kind).to_owned());
        let names: Vec<&str> = event.attributes.keys().map(String::as_str).collect();
        attributes.push(format!("{}:{}", event_name(event.kind), names.join(",")));
        if event.kind == ContainerEventKind::Destroy {
            return Ok((kinds, attributes));
        }
    }
}

/// `future`'s output, or `None` once `limit` has passed on `rt`'s clock.
pub async fn within<F: Future>(rt: &Arc<dyn Rt>, limit: Duration, future: F) -> Option<F::Output> {
    let sleep = rt.sleep(limit);
    let future = std::pin::pin!(future);
    match futures::future::select(future, sleep).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

/// The script's view of its one container.
struct Script {
    engine: Arc<dyn ContainerEngine>,
    rt: Arc<dyn Rt>,
    id: ContainerId,
}

impl Script {
    async fn open(&self, options: LogOptions) -> Result<LogReader> {
        let stream = within(&self.rt, STEP_DEADLINE, self.engine.logs(&self.id, options))
            .await
            .ok_or_else(|| anyhow!("opening logs {options:?} timed out"))??;
        Ok(LogReader::new(stream))
    }

    /// The whole log as of now (no follow).
    async fn read_all(&self, options: LogOptions) -> Result<Vec<Entry>> {
        assert!(!options.follow);
        let mut reader = self.open(options).await?;
        if !reader.read_to_end(&self.rt, STEP_DEADLINE).await {
            bail!("logs {options:?} did not end within {STEP_DEADLINE:?}");
        }
        if let Some(error) = reader.error {
            bail!("logs {options:?}: {error}");
        }
        Ok(reader.entries)
    }

    /// Polls the whole log until it has `count` entries.
    async fn wait_for_log(&self, count: usize) -> Result<Vec<Entry>> {
        let deadline = self.rt.now() + STEP_DEADLINE;
        loop {
            let entries = self.read_all(LogOptions { follow: false, since_secs: 0, tail: None }).await?;
            if entries.len() >= count {
                return Ok(entries);
            }
            if self.rt.now() >= deadline {
                bail!("log has {} entries, not {count}, after {STEP_DEADLINE:?}", entries.len());
            }
            self.rt.sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A log stream and what was decoded from it so far.
pub struct LogReader {
    stream: LogStream,
    decoder: FrameDecoder,
    pub entries: Vec<Entry>,
    pub ended: bool,
    pub error: Option<String>,
}

impl LogReader {
    pub fn new(stream: LogStream) -> LogReader {
        LogReader {
            stream,
            decoder: FrameDecoder::new(FRAME_BYTES_MAX),
            entries: Vec::new(),
            ended: false,
            error: None,
        }
    }

    /// Reads one chunk and decodes what it completes. `false` once the stream is over.
    async fn read_chunk(&mut self) -> bool {
        if self.ended {
            return false;
        }
        match self.stream.next().await {
            Some(Ok(chunk)) => {
                self.decoder.push(chunk);
                loop {
                    match self.decoder.next_frame() {
                        Ok(Some(frame)) => match split_timestamp(&frame.payload) {
                            Ok((ts, content)) => self.entries.push(Entry { stream: frame.stream, ts, content }),
                            Err(error) => {
                                self.error = Some(format!("timestamp: {error:?}"));
                                self.ended = true;
                                return false;
                            }
                        },
                        Ok(None) => return true,
                        Err(error) => {
                            self.error = Some(format!("frame: {error:?}"));
                            self.ended = true;
                            return false;
                        }
                    }
                }
            }
            Some(Err(error)) => {
                self.error = Some(error.to_string());
                self.ended = true;
                false
            }
            None => {
                self.ended = true;
                false
            }
        }
    }

    /// Reads until `count` entries are in; fails if the stream ends or `limit` passes.
    pub async fn read_until(&mut self, rt: &Arc<dyn Rt>, count: usize, limit: Duration) -> Result<()> {
        let deadline = rt.now() + limit;
        while self.entries.len() < count {
            let left = deadline.saturating_duration_since(rt.now());
            match within(rt, left, self.read_chunk()).await {
                Some(true) => {}
                Some(false) => bail!("stream ended with {} of {count} entries ({:?})", self.entries.len(), self.error),
                None => bail!("{} of {count} entries after {limit:?}", self.entries.len()),
            }
        }
        Ok(())
    }

    /// Reads until the stream ends: `true` if it did within `limit`.
    pub async fn read_to_end(&mut self, rt: &Arc<dyn Rt>, limit: Duration) -> bool {
        let deadline = rt.now() + limit;
        while !self.ended {
            let left = deadline.saturating_duration_since(rt.now());
            if within(rt, left, self.read_chunk()).await.is_none() {
                return false;
            }
        }
        true
    }
}
