//! The sans-IO reader of one container log: raw stream bytes in, runs of new lines out.
//!
//! Frames are decoded, timestamps split off, partial entries merged per output stream,
//! and every complete line gets its resume key: (timestamp of the entry that ended it,
//! how many lines of the same stream ended at that same timestamp before it in this
//! session). Docker's `since` is whole seconds, so a reopened stream starts up to a
//! second (plus `since_skew`) before where we were: its replay window. Inside that window
//! every line whose key is not past the last one already queued for its stream is a
//! duplicate and is skipped; the window of a stream closes at the resume line itself or
//! at its first line past the resume key, and from then on every line is delivered, even one whose timestamp steps
//! back (a host clock step, stderr lagging beyond `since_skew`): dedupe never eats live
//! lines. Keys are per stream because stdout and stderr timestamps interleave out of
//! order. The resume key is always the last line queued; after a step back it is
//! stamped before lines queued earlier, which the next reopen replays again: so while
//! the replay must still show the resume line (it is at or after `since`), a line past
//! the resume key is a duplicate if its key is not past the greatest key queued (the
//! stream's high-water key) and lies in a span of keys queued (see `Spans`), and the
//! window closes at the resume line itself. Cost: if json-file rotation deleted the resume line, new lines
//! stamped inside a span of queued keys past it are skipped (after a step only; the
//! gap is counted at the first line taken as new).
//! Keys count the lines of a timestamp from the first one a stream served, so a replay
//! of a timestamp group whose front rotation deleted keys its lines low: the lines of the
//! resume line's timestamp are told apart by their marks instead (see `Group`).
//! A replay that cannot show the resume line (stamped before `since`) cannot tell the
//! lines stamped after it that were queued before it from new ones: it delivers them
//! (duplicates, never loss).
//!
//! Lines come out as [`Run`]s: maximal stretches of one stream in log order, so queueing
//! the runs in order keeps the container's log order through the pipeline, and an
//! acknowledged position is always the end of a delivered prefix of the log.

use std::time::Duration;

use bytes::Bytes;

use crate::model::{Line, Position, ResumeKey, StdStream};
use crate::parse::assemble::Assembler;
use crate::parse::decoder::LogDecoder;
use crate::parse::frame::FrameError;
use crate::parse::timestamp::{TimestampCache, TimestampError};
use crate::parse::{FrameSkipper, LineTaker};
use crate::pipeline::queue::Budget;
use crate::port::ContainerCheckpoint;
use crate::rt::UnixNanos;

/// A stretch of lines of one output stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub stream: StdStream,
    pub lines: Vec<Line>,
    pub bytes: usize,
}

/// What a chunk produced besides lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub lines: u64,
    pub bytes: u64,
    pub duplicates: u64,
    pub truncated: u64,
    /// Streams whose replay did not hold their resume position (see
    /// [`LogReader::expect_resume_position`]).
    pub gaps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("bad entry timestamp: {0:?}")]
    Timestamp(TimestampError),
}

/// The smallest frame that carries a line: header, shortest timestamp, space.
const MIN_FRAME_BYTES: usize = 8 + 20 + 1;
/// Lines reserved at most when a run starts (longer runs grow as usual).
const RUN_CAPACITY_MAX: usize = 64;

/// Whether a replay window closes (`DedupeLiveLines`, tests only, keeps it open).
fn closes_at_resume_line() -> bool {
    #[cfg(feature = "broken-variants")]
    let broken = crate::container::broken::is_active(crate::container::SupervisorVariant::DedupeLiveLines);
    #[cfg(not(feature = "broken-variants"))]
    let broken = false;
    !broken
}

/// Whether lines may take the paths that skip the general one (the broken variants,
/// tests only, change lines on the general path only).
fn fast_paths() -> bool {
    #[cfg(feature = "broken-variants")]
    let fast = crate::container::broken::is_active(crate::container::SupervisorVariant::Correct);
    #[cfg(not(feature = "broken-variants"))]
    let fast = true;
    fast
}

/// Chunks shorter than this are copied before lines are sliced from them.
pub const COMPACT_BELOW_BYTES: usize = 4096;

pub struct LogReader {
    /// Framed, or a TTY container's raw entries: see [`LogReader::set_tty`].
    decoder: LogDecoder,
    frame_bytes_max: usize,
    assemblers: [Assembler; 2],
    timestamps: TimestampCache,
    /// Per stream: (timestamp of the last complete line this session, lines at it).
    counters: [(UnixNanos, u32); 2],
    /// Per stream: the key of the last line queued (or acknowledged, after a restart).
    queued: [Option<ResumeKey>; 2],
    /// Per stream: the greatest key queued (the last one's, unless timestamps stepped
    /// back): what a replay skips up to.
    high: [Option<ResumeKey>; 2],
    /// Per stream: the spans of keys queued (see [`Spans`]): what a replay that lost its
    /// resume line must still skip past the resume key.
    spans: [Spans; 2],
    /// Per stream: the marks of the lines queued at the last queued line's timestamp (see
    /// [`Group`]): which lines of the resume line's timestamp a replay already queued.
    groups: [Group; 2],
    /// Per stream: nothing was queued yet from the stream being read, so what it hands
    /// out may still be a replay of queued lines (worth trying [`Self::skip_queued_line`]).
    replaying: [bool; 2],
    /// Per stream: the replay must hold the line at the resume key (it is at or after
    /// the reopen's `since`) and has not shown it yet.
    expecting: [bool; 2],
    /// Per stream: the stream was opened with `tail` at this wall time and has served no
    /// line yet (see [`LogReader::cut_after_tail`]).
    tail_cut: [Option<UnixNanos>; 2],
    /// Per stream: its queued key names a tail's cut group (`seq` at its maximum), and
    /// the stream being read served a line of that group: a line after the group stamped
    /// otherwise is new, even one stamped before it (see [`LogReader::cut_after_tail`]).
    cut_group_seen: [bool; 2],
    line_bytes_max: usize,
    run_bytes_max: usize,
    /// The last line handed out: what the stall watchdog's probe of the log's last entry
    /// is compared with ([`Self::ends_with`]).
    last_line: Option<LineMark>,
    /// A probe's reader ([`Self::ready_probe`]): its lines are only looked at, so small
    /// chunks are not copied before lines are sliced from them (see `read_chunk`), and
    /// its answer, one entry, is only marked by [`Self::mark_lone_line`].
    probe: bool,
    /// A probe's reader: the buffer its answers are read into, kept empty between probes
    /// (see [`Self::take_spare_runs`]).
    spare_runs: Vec<Run>,
    /// The replay windows of [`QueuedLines`], worked out at each skip (see
    /// [`Self::skip_queued_lines`]) and meaningless between skips. Kept here, behind a
    /// reference, so that the skip step loads a frame's stream's window by index: held
    /// by the step, both windows were kept apart and one selected per frame, field by
    /// field (callgrind: seed 19, 0.9 M skipped frames, 806.90 M -> 802.19 M; seed 3
    /// 351.91 M -> 351.50 M).
    windows: [Option<(ResumeKey, ResumeKey)>; 2],
}

/// What tells a line from its neighbours for [`LogReader::ends_with`]: its stream,
/// timestamp (nanoseconds), length and first bytes. Not the bytes themselves (a slice
/// would keep its whole chunk alive), nor a hash of them (SipHash over each chunk's last
/// line cost 4 % of a seed). Lines that share all of it are the same text at the same
/// nanosecond: taking one for the other only keeps a silent stream until the next
/// line, the next probe or the rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LineMark {
    stream: StdStream,
    ts: UnixNanos,
    len: usize,
    head: [u8; 32],
}

impl LineMark {
    fn of(stream: StdStream, line: &Line) -> LineMark {
        LineMark::of_content(stream, line.ts, &line.bytes)
    }

    /// The mark of a line of `content` (what its [`Line`] would hold) stamped `ts`.
    /// A line of 32 bytes or more (most) has its head copied as one array, not by a
    /// `memcpy` call of a length known only at run time (callgrind: seed 2 327.42 M ->
    /// 327.32 M, seed 19 847.17 M -> 846.86 M, seed 3 unchanged).
    fn of_content(stream: StdStream, ts: UnixNanos, content: &[u8]) -> LineMark {
        let head = match content.first_chunk::<32>() {
            Some(head) => *head,
            None => {
                let mut head = [0; 32];
                head[..content.len()].copy_from_slice(content);
                head
            }
        };
        LineMark { stream, ts, len: content.len(), head }
    }

    /// The mark of the line a replayed entry holds: its `payload` less the timestamp
    /// `prefix` and the line end (`"\n"`, or for a TTY a terminal's `"\r\n"`), as the
    /// live path would hand it out. `None` for a line the reader would truncate. Out of
    /// line: called once per replay, from the loop that skips every replayed line.
    #[inline(never)]
    fn of_replayed(
        stream: StdStream,
        ts: UnixNanos,
        payload: &[u8],
        prefix: usize,
        tty: bool,
        line_bytes_max: usize,
    ) -> Option<LineMark> {
        let line = payload[prefix..].strip_suffix(b"\n")?;
        let line = if tty { line.strip_suffix(b"\r").unwrap_or(line) } else { line };
        (line.len() <= line_bytes_max).then(|| LineMark::of_content(stream, ts, line))
    }
}

impl LogReader {
    pub fn new(
        line_bytes_max: usize,
        frame_bytes_max: usize,
        run_bytes_max: usize,
        resume: ContainerCheckpoint,
    ) -> LogReader {
        assert!(
            run_bytes_max >= Budget::cost(1, line_bytes_max + crate::parse::assemble::TRUNCATION_MARKER.len()),
            "a run must hold the longest line"
        );
        LogReader {
            decoder: LogDecoder::new(false, frame_bytes_max),
            frame_bytes_max,
            assemblers: [Assembler::new(line_bytes_max), Assembler::new(line_bytes_max)],
            timestamps: TimestampCache::default(),
            counters: [(UnixNanos::MIN, 0); 2],
            queued: [resume.stdout, resume.stderr],
            high: resume.high(),
            // A restart knows only its checkpoint's keys (see `Spans::through`).
            spans: resume.high().map(Spans::through),
            groups: Default::default(),
            replaying: [true; 2],
            expecting: [false; 2],
            tail_cut: [None; 2],
            cut_group_seen: [false; 2],
            line_bytes_max,
            run_bytes_max,
            last_line: None,
            probe: false,
            spare_runs: Vec::new(),
            windows: [None; 2],
        }
    }

    /// A buffer to read a probe's answer into, without lines: the one given back to
    /// [`Self::keep_spare_runs`] after the last probe, so that one is not allocated per
    /// probe. It may hold one run emptied of its lines, whose `Vec` the next answer's
    /// line of its stream goes into (a run is not allocated per probe either: callgrind,
    /// seed 2 327.32 M -> 326.73 M, seed 3 370.35 M -> 369.66 M). Only what the reader marks from a probe's lines is looked at
    /// ([`Self::ends_with`]), never the runs themselves.
    pub fn take_spare_runs(&mut self) -> Vec<Run> {
        std::mem::take(&mut self.spare_runs)
    }

    /// Keep `runs`, their lines dropped, for the next [`Self::take_spare_runs`].
    pub fn keep_spare_runs(&mut self, mut runs: Vec<Run>) {
        runs.truncate(1);
        if let Some(run) = runs.first_mut() {
            run.lines.clear();
            run.bytes = 0;
        }
        self.spare_runs = runs;
    }

    /// Make `probe` ready to read a probe of the log's last entry ([`Self::ends_with`]):
    /// this reader's limits and format, nothing to resume from, and this reader's
    /// timestamp cache: the log's last entry is most often of the second of the last line
    /// read (a new probe reader parsed each probe's timestamp in full, and one kept from
    /// the last probe still most of them: callgrind, seed 2 329.23 M -> 329.08 M, seed 3
    /// 372.38 M -> 372.08 M).
    pub fn ready_probe<'a>(&self, probe: &'a mut Option<LogReader>) -> &'a mut LogReader {
        let reader = probe.get_or_insert_with(|| {
            LogReader::new(
                self.line_bytes_max,
                self.frame_bytes_max,
                self.run_bytes_max,
                ContainerCheckpoint::default(),
            )
        });
        reader.set_tty(self.decoder.is_tty());
        reader.reopen();
        reader.timestamps.clone_from(&self.timestamps);
        reader.queued = [None; 2];
        reader.high = [None; 2];
        reader.spans = Default::default();
        reader.groups = Default::default();
        // With nothing queued, nothing it reads can be a replay: its entries take the
        // live path (callgrind: seed 2 326.73 M -> 321.40 M, seed 3 369.66 M -> 364.04 M).
        reader.replaying = [false; 2];
        reader.last_line = None;
        reader.probe = true;
        reader
    }

    /// Whether the log's last entry, as `probe` (from [`Self::ready_probe`]) read it, is a
    /// whole line and the last line this reader handed out, with nothing partial read
    /// after it: then the stream being read is at the end of its log. The probe's own
    /// mark of the last line it handed out is that of the last line of its runs (it
    /// resumes from nothing, so it skips no line), not worked out again from them.
    pub fn ends_with(&self, probe: &LogReader) -> bool {
        probe.last_line.is_some()
            && probe.buffered_bytes() == 0
            && self.buffered_bytes() == 0
            && self.last_line == probe.last_line
    }

    /// The format of the streams read from now on: a TTY container's (`tty`, raw
    /// entries, all stdout) or Docker's frames. Called before [`Self::reopen`].
    pub fn set_tty(&mut self, tty: bool) {
        if self.decoder.is_tty() != tty {
            self.decoder = LogDecoder::new(tty, self.frame_bytes_max);
        }
    }

    /// Forget the state of the previous stream (a new one is about to be read).
    pub fn reopen(&mut self) {
        self.decoder.clear();
        self.assemblers.iter_mut().for_each(Assembler::clear);
        self.counters = [(UnixNanos::MIN, 0); 2];
        self.replaying = [true; 2];
        self.expecting = [false; 2];
        self.tail_cut = [None; 2];
        self.cut_group_seen = [false; 2];
    }

    /// The stream was just opened with `tail = N`: Docker counted N json-file entries back
    /// from the end, which may cut a run of lines sharing one timestamp (or a long line's
    /// pieces) anywhere. A line's key counts the lines of its timestamp before it, which
    /// the cut hid, so the first timestamp group of each stream is skipped: its key is
    /// taken as queued (`seq` at its maximum), so the rest of the group is skipped as a
    /// replay is, and a reopen's replay skips all of it (without this, a reopen after a
    /// tail open delivered lines of that group again under other keys). Only a group
    /// stamped at or before `opened_at` (the wall clock at the open) can have been cut:
    /// a first line written after the open is delivered. The group is the lines of its
    /// timestamp that follow its first one; a line after them stamped otherwise is new,
    /// also one stamped before the group (the host clock stepped back between them), on
    /// this stream and on a reopen's replay once that has served the group again.
    pub fn cut_after_tail(&mut self, opened_at: UnixNanos) {
        self.tail_cut = [Some(opened_at); 2];
    }

    /// After [`Self::reopen`] for a stream opened with `since_secs` (no tail): the line
    /// at each stream's resume key is at or after `since`, so the replay must serve it
    /// again. If a stream's replay moves past its key without it, the log lost lines up to
    /// there (Docker's json-file rotation): counted in [`ReadStats::gaps`].
    pub fn expect_resume_position(&mut self, since_secs: i64) {
        let since = since_secs.saturating_mul(1_000_000_000);
        for (expecting, queued) in self.expecting.iter_mut().zip(self.queued) {
            // A tail's cut group (`seq` at its maximum) names no line to expect.
            *expecting = queued.is_some_and(|key| key.ts >= since && key.seq != u32::MAX);
        }
    }

    /// The Unix second to reopen from, if anything was queued: the last queued line's
    /// timestamp (the later of the two streams) minus `skew`, rounded down.
    pub fn since_secs(&self, skew: Duration) -> Option<i64> {
        let latest = self.queued.iter().flatten().map(|key| key.ts).max()?;
        let since = latest.saturating_sub(skew.as_nanos() as i64);
        Some(since.div_euclid(1_000_000_000).max(0))
    }

    pub fn queued(&self, stream: StdStream) -> Option<ResumeKey> {
        self.queued[stream.index()]
    }

    /// Bytes held in partial frames and partial lines.
    pub fn buffered_bytes(&self) -> usize {
        self.decoder.buffered_bytes() + self.assemblers.iter().map(Assembler::pending_bytes).sum::<usize>()
    }

    /// The duplicates a reopened stream replays, skipped where they lie: while the next
    /// frame is a whole line in one entry (nothing partial of its stream pending) with a
    /// key not past the last one queued, count it and consume it without taking its
    /// bytes out. Exactly what the general path does with such frames, minus a
    /// reference-counted slice made and dropped per frame.
    #[inline]
    fn skip_queued_lines(&mut self, stats: &mut ReadStats) {
        let LogReader {
            decoder,
            assemblers,
            timestamps,
            counters,
            queued,
            groups,
            replaying,
            expecting,
            last_line,
            line_bytes_max,
            windows,
            ..
        } = self;
        // The common case once the streams are live: no frame to look at. A TTY stream is
        // all stdout, so its stderr (replaying until it serves a line, which is never)
        // does not count: without this, every live TTY entry was cut twice, for the
        // refused skip and then for the reader (callgrind: seed 85 613.6 M -> 611.0 M).
        let live = if decoder.is_tty() { !replaying[StdStream::Stdout.index()] } else { replaying == &[false; 2] };
        if live {
            return;
        }
        // Per stream, while it replays with nothing partial pending: its resume key and
        // the greatest key its replay skips. Only the resume line changes them, so they
        // are worked out once per chunk, not per frame (callgrind: seed 1, 600 k skipped
        // frames, 1,400.3 M -> 1,387.4 M instructions).
        // With it, the mark the resume line must have, if the fast path is to take it.
        let window = |index: usize| -> (Option<(ResumeKey, ResumeKey)>, Option<GroupMark>) {
            if !replaying[index] || !assemblers[index].is_idle() {
                return (None, None);
            }
            let Some(resume) = queued[index] else { return (None, None) };
            // A tail's cut group ends the replay at its last line, which no key names:
            // the general path sees it through (rare: until the stream's next line).
            if resume.seq == u32::MAX {
                return (None, None);
            }
            // A key past the resume key may be a line queued before a step back or a
            // new one: the general path tells them apart (`Spans::holds`), rare. So it
            // does the lines of the resume line's timestamp when their marks are known
            // (`Group`), but for a resume line alone at its timestamp (most): the step
            // takes that one if its mark is the group's, as `Group::replayed` would
            // (through the general path, each reopen's resume line cost seed 19, 29 k
            // reopens, about 40 M instructions).
            if expecting[index] && groups[index].names(resume) {
                if resume.seq == 0 {
                    return (Some((resume, resume)), Some(groups[index].first));
                }
                return (Some((resume, ResumeKey { ts: resume.ts.saturating_sub(1), seq: u32::MAX })), None);
            }
            (Some((resume, resume)), None)
        };
        let ((window_0, mark_0), (window_1, mark_1)) = (window(0), window(1));
        *windows = [window_0, window_1];
        let tty = decoder.is_tty();
        let skipped = decoder.skip_while(QueuedLines {
            windows,
            resume_marks: [mark_0, mark_1],
            timestamps,
            counters,
            replaying,
            expecting,
            last_line,
            duplicates: 0,
            line_bytes_max: *line_bytes_max,
            tty,
        });
        stats.duplicates += skipped.duplicates;
    }

    /// The common case once a stream is live, taken without the handles of the general
    /// path (a frame, its payload, the assembled line): while the next entry is a whole
    /// line within `line_bytes_max`, of a stream past its replay with nothing partial
    /// pending, queue it with its content sliced out of the chunk at once. Exactly what
    /// the loop of [`Self::handle_chunk`] does with such an entry, minus up to two
    /// reference-count updates (a payload's slice, then its `'\n'` trimmed) and the decoder's
    /// bookkeeping per line (callgrind: seed 85 458.5 M -> 443.3 M, seed 19 1,119.3 M ->
    /// 1,107.7 M; 116 k of the 121 k lines read there come this way).
    #[inline]
    fn take_live_lines(&mut self, runs: &mut Vec<Run>, stats: &mut ReadStats) {
        // Taking a line leaves its stream live: worked out once per walk.
        let live = [self.is_live(0), self.is_live(1)];
        if live == [false; 2] {
            return;
        }
        let (line_bytes_max, run_bytes_max) = (self.line_bytes_max, self.run_bytes_max);
        let LogReader { decoder, timestamps, counters, queued, high, spans, groups, .. } = self;
        let walked = decoder.take_lines_while(LiveLines {
            live,
            timestamps,
            counters,
            queued,
            high,
            spans,
            groups,
            runs,
            lines: 0,
            bytes: 0,
            line_bytes_max,
            run_bytes_max,
        });
        stats.lines += walked.lines;
        stats.bytes += walked.bytes;
    }

    /// Whether the stream of `index` is past its replay with nothing partial pending:
    /// what [`Self::take_live_lines`] takes lines of.
    fn is_live(&self, index: usize) -> bool {
        !self.replaying[index]
            && !self.expecting[index]
            && self.tail_cut[index].is_none()
            && self.assemblers[index].is_idle()
    }

    /// A probe's answer: a chunk that is one whole line of a live stream (with nothing
    /// buffered before it, nothing replayed: see [`Self::ready_probe`]). Only what the
    /// reader marks of a probe's lines is looked at ([`Self::ends_with`]), so this one is
    /// marked, keyed and counted as [`Self::read_chunk`] would take it (no replay to skip
    /// on a live stream, [`LiveLines`], nothing left for the general path), but not
    /// handed out: nothing is pushed into the decoder and walked there, no line sliced
    /// out of the chunk or put in a run. False, with nothing done, if it is not such a
    /// line. Callgrind: seed 3 (15,934 probes) 355.97 M -> 353.28 M taken this way, then
    /// 348.11 M -> 346.10 M marked only (seed 2 305.27 M -> 303.39 M). Out of line:
    /// inlined, it cost every other chunk (seed 19, few probes: 813.00 M -> 813.92 M).
    #[inline(never)]
    fn mark_lone_line(&mut self, chunk: &[u8], stats: &mut ReadStats) -> bool {
        let Some((stream, line)) = self.decoder.lone_line(chunk) else { return false };
        let index = stream.index();
        if !self.is_live(index) {
            return false;
        }
        let entry = &chunk[line];
        let Ok((ts, prefix)) = self.timestamps.timestamp_prefix(entry) else { return false };
        let content = &entry[prefix..];
        if content.len() > self.line_bytes_max {
            return false;
        }
        let key = next_key(&mut self.counters[index], ts);
        self.spans[index].queue(key);
        self.groups[index].queue(key, Some(content));
        self.queued[index] = Some(key);
        self.raise_high(index);
        stats.lines += 1;
        stats.bytes += content.len() as u64;
        self.last_line = Some(LineMark::of_content(stream, ts, content));
        true
    }

    /// Whether a replayed line stamped `ts` comes after the tail's cut group its stream's
    /// queued key names, if any (see [`Self::cut_after_tail`]): a line of the group marks
    /// it served; the first line after it stamped otherwise is past it.
    fn past_cut_group(&mut self, index: usize, ts: UnixNanos) -> bool {
        let Some(cut) = self.queued[index].filter(|key| key.seq == u32::MAX) else { return false };
        if ts == cut.ts {
            self.cut_group_seen[index] = true;
            return false;
        }
        self.cut_group_seen[index]
    }

    /// The stream's high-water key is at least its last queued key.
    fn raise_high(&mut self, index: usize) {
        self.high[index] = self.high[index].max(self.queued[index]);
    }

    /// Feed one chunk of the raw stream; new lines are appended to `runs` (but for a
    /// probe's answer of one whole line, which a probe's reader only marks: see
    /// [`Self::mark_lone_line`]).
    pub fn handle_chunk(&mut self, chunk: Bytes, runs: &mut Vec<Run>, stats: &mut ReadStats) -> Result<(), ReadError> {
        if self.probe && fast_paths() && self.mark_lone_line(&chunk, stats) {
            return Ok(());
        }
        let lines_before = stats.lines;
        let result = self.read_chunk(chunk, runs, stats);
        // Only a line of this chunk: `runs` may hold earlier chunks' lines, and a replay's
        // resume line (marked as it is skipped) may be all this chunk held.
        if stats.lines != lines_before {
            if let Some((stream, line)) = runs.last().and_then(|run| Some((run.stream, run.lines.last()?))) {
                self.last_line = Some(LineMark::of(stream, line));
            }
        }
        result
    }

    fn read_chunk(&mut self, chunk: Bytes, runs: &mut Vec<Run>, stats: &mut ReadStats) -> Result<(), ReadError> {
        // Lines are slices of the chunk they came in, and a slice keeps the whole buffer
        // behind it alive. A small read usually sits in a much larger transport buffer
        // (hyper reserves ≥ 8 KiB per read), so queued lines would pin far more memory
        // than `queue_bytes_max` accounts for: copy small chunks into their own size.
        // Only what is left once a replay's duplicates are skipped is copied, before the
        // first line is sliced out (a chunk of duplicates only is not copied at all):
        // callgrind, seed 85 436.2 M -> 435.1 M, seed 19 1,101.1 M -> 1,088.2 M.
        let mut compact = !self.probe && !chunk.is_empty() && chunk.len() < COMPACT_BELOW_BYTES;
        self.decoder.push(chunk);
        // A frame begun in earlier chunks that this one ends: the skip below cannot pass
        // it, so nothing is saved by compacting later. Copied with this chunk into one
        // buffer, it is whole there, to be skipped or taken like any other.
        if compact && self.decoder.join_pending() {
            compact = false;
        }
        // `DuplicateReplay` (tests only) queues a reopen's replay again.
        #[cfg(feature = "broken-variants")]
        let dedupe = !crate::container::broken::is_active(crate::container::SupervisorVariant::DuplicateReplay);
        #[cfg(not(feature = "broken-variants"))]
        let dedupe = true;
        let fast = fast_paths();
        loop {
            if dedupe {
                self.skip_queued_lines(stats);
            }
            if std::mem::take(&mut compact) {
                self.decoder.compact_last();
            }
            if fast {
                self.take_live_lines(runs, stats);
            }
            let Some(frame) = self.decoder.next_frame()? else { break };
            let stream = frame.stream;
            let mut content = frame.payload;
            let ts = self.timestamps.take_timestamp(&mut content).map_err(ReadError::Timestamp)?;
            let index = stream.index();
            let Some(completed) = self.assemblers[index].complete(ts, content) else { continue };
            let line_ts = completed.ts();
            // Joined once it is known to be delivered, so that a replay's long line is
            // not copied only to be dropped (see `Assembler::complete`); the broken
            // variants look at its content first.
            #[cfg(feature = "broken-variants")]
            let completed = {
                let assembled = self.assemblers[index].join(completed);
                let assembled = crate::container::broken::strip_carriage_return(assembled);
                if crate::container::broken::drops_empty_line(&assembled) {
                    continue;
                }
                assembled
            };
            let key = next_key(&mut self.counters[index], line_ts);
            if std::mem::take(&mut self.tail_cut[index]).is_some_and(|opened_at| line_ts <= opened_at) {
                let cut = ResumeKey { ts: line_ts, seq: u32::MAX };
                self.spans[index].queue(cut);
                self.groups[index].queue(cut, None);
                self.queued[index] = Some(cut);
                self.raise_high(index);
                self.replaying[index] = true;
                self.cut_group_seen[index] = true;
                stats.duplicates += 1;
                continue;
            }
            // Only a reopen's replay is deduplicated: once this stream has handed out a
            // line past its resume point, a live line whose timestamp steps back (host
            // clock step, stderr lag beyond `since_skew`) is delivered, never skipped.
            if dedupe && self.replaying[index] {
                // Up to the resume key, a replay of queued lines. Past it, while the replay
                // must still show the resume line, a line queued before it (stamped after
                // it: the timestamps stepped back since) only if its key lies in a span of
                // queued keys; any other is new, and the resume line was deleted
                // (json-file rotation deletes the log's front: all the replay holds is
                // after it).
                // At the resume line's timestamp, a key counts the lines of that
                // timestamp this stream served before it, which rotation may have cut
                // at the front of the log: the lines' marks tell them apart instead.
                let by_mark = self.expecting[index]
                    .then(|| self.queued[index].filter(|resume| resume.ts == line_ts))
                    .flatten()
                    .and_then(|resume| {
                        #[cfg(not(feature = "broken-variants"))]
                        let line = self.assemblers[index].single_entry(&completed);
                        #[cfg(feature = "broken-variants")]
                        let line = Some(&completed.bytes[..]);
                        self.groups[index].replayed(resume, line?)
                    });
                let (replayed, resume_line) = match by_mark {
                    Some(seen) => seen,
                    None => (
                        self.queued[index].is_some_and(|resume| key <= resume)
                            || (self.expecting[index]
                                && self.high[index].is_some_and(|high| key <= high)
                                && self.spans[index].holds(key)),
                        self.queued[index] == Some(key),
                    ),
                };
                if replayed && !self.past_cut_group(index, line_ts) {
                    stats.duplicates += 1;
                    if resume_line {
                        // The resume line itself: everything after it in the log is new,
                        // even a line stamped before it (host clock stepped back). Marked
                        // as the fast path marks it (see `skip_queued_lines`), if it is one
                        // entry: a probe sees only a long line's last piece.
                        #[cfg(not(feature = "broken-variants"))]
                        let line = self.assemblers[index].single_entry(&completed);
                        #[cfg(feature = "broken-variants")]
                        let line = Some(&completed.bytes[..]);
                        self.last_line = line.map(|line| LineMark::of_content(stream, line_ts, line));
                        self.expecting[index] = false;
                        self.replaying[index] = !closes_at_resume_line();
                    }
                    continue;
                }
            }
            if self.expecting[index] {
                // Past the resume key without having seen it: the log lost it.
                self.expecting[index] = false;
                stats.gaps += 1;
            }
            #[cfg(feature = "broken-variants")]
            let assembled = completed;
            #[cfg(not(feature = "broken-variants"))]
            let assembled = self.assemblers[index].join(completed);
            self.spans[index].queue(key);
            self.groups[index].queue(key, (!assembled.truncated).then_some(&assembled.bytes[..]));
            self.queued[index] = Some(key);
            self.raise_high(index);
            self.replaying[index] = !closes_at_resume_line();
            stats.lines += 1;
            stats.bytes += assembled.bytes.len() as u64;
            stats.truncated += u64::from(assembled.truncated);
            let len = assembled.bytes.len();
            let line = Line { ts: assembled.ts, bytes: assembled.bytes, position: Position::Container(key) };
            #[cfg(feature = "broken-variants")]
            let again = crate::container::broken::duplicates_empty_line(&line).then(|| line.clone());
            push_line(runs, stream, line, len, self.run_bytes_max, self.decoder.buffered_bytes());
            #[cfg(feature = "broken-variants")]
            if let (Some(again), Some(run)) = (again, runs.last_mut()) {
                run.lines.push(again);
            }
        }
        Ok(())
    }
}

/// The step of [`LogReader::skip_queued_lines`] per frame: a type rather than a closure
/// so that it is inlined into the decoder's walk, as [`LiveLines`] is (callgrind: seed 3
/// 364.04 M -> 360.10 M, seed 19 846.86 M -> 821.73 M, seed 2 321.40 M -> 316.48 M).
struct QueuedLines<'a> {
    /// Per stream, while it replays with nothing partial pending: its resume key and the
    /// greatest key its replay skips.
    windows: &'a mut [Option<(ResumeKey, ResumeKey)>; 2],
    /// Per stream: the mark the resume line must have to be taken here (see
    /// `skip_queued_lines`); `None`: its key alone names it.
    resume_marks: [Option<GroupMark>; 2],
    timestamps: &'a mut TimestampCache,
    counters: &'a mut [(UnixNanos, u32); 2],
    replaying: &'a mut [bool; 2],
    expecting: &'a mut [bool; 2],
    last_line: &'a mut Option<LineMark>,
    /// Counted here and added once: `stats` behind a reference was loaded and stored per
    /// skipped line (callgrind: seed 19, ~1 M lines skipped, 928.2 M -> 922.1 M).
    duplicates: u64,
    line_bytes_max: usize,
    tty: bool,
}

impl FrameSkipper for QueuedLines<'_> {
    #[inline(always)]
    fn skip(&mut self, stream: StdStream, payload: &[u8]) -> bool {
        let index = stream.index();
        let Some((resume, high)) = self.windows[index] else { return false };
        if payload.last() != Some(&b'\n') {
            return false;
        }
        // `TS<space>` ends in its space, so the `'\n'` is past it: the line is what follows.
        let Ok((ts, prefix)) = self.timestamps.timestamp_prefix(payload) else { return false };
        let counter = self.counters[index];
        let seq = if counter.0 == ts { counter.1 + 1 } else { 0 };
        if (ResumeKey { ts, seq }) > high {
            return false;
        }
        if (ResumeKey { ts, seq }) == resume {
            if let Some(mark) = self.resume_marks[index] {
                // Not the resume line's mark: a line of its timestamp never queued (the
                // group's front deleted by rotation), the general path's.
                let line = payload[prefix..payload.len() - 1].as_ref();
                let line = if self.tty { line.strip_suffix(b"\r").unwrap_or(line) } else { line };
                if GroupMark::of(line) != mark {
                    return false;
                }
            }
        }
        self.counters[index] = (ts, seq);
        self.duplicates += 1;
        if (ResumeKey { ts, seq }) == resume {
            // The resume line: the window closes (see `handle_chunk`); not expecting any
            // more, a replay that stays open skips up to the resume key. It is the last
            // line handed out until a new one comes: what a probe compares with (after a
            // restart, nothing else read may name it).
            *self.last_line = LineMark::of_replayed(stream, ts, payload, prefix, self.tty, self.line_bytes_max);
            self.expecting[index] = false;
            self.replaying[index] = !closes_at_resume_line();
            self.windows[index] = self.replaying[index].then_some((resume, resume));
        }
        true
    }
}

/// The step of [`LogReader::take_live_lines`] per line, a type rather than a closure so
/// that it is inlined into the decoder's walk (callgrind: seed 85 387.9 M -> 383.0 M,
/// seed 19 956.4 M -> 943.8 M). The reader's per-stream keys and the counts for its
/// [`ReadStats`] are copies, written back once per walk: behind references they were
/// stored per line (callgrind: seed 2 329.56 M -> 329.23 M, seed 3 372.70 M -> 372.38 M).
struct LiveLines<'a> {
    /// Per stream: past its replay, nothing partial pending.
    live: [bool; 2],
    timestamps: &'a mut TimestampCache,
    counters: &'a mut [(UnixNanos, u32); 2],
    queued: &'a mut [Option<ResumeKey>; 2],
    high: &'a mut [Option<ResumeKey>; 2],
    spans: &'a mut [Spans; 2],
    groups: &'a mut [Group; 2],
    runs: &'a mut Vec<Run>,
    /// Lines taken and their content bytes, for [`ReadStats`].
    lines: u64,
    bytes: u64,
    line_bytes_max: usize,
    run_bytes_max: usize,
}

impl LineTaker for LiveLines<'_> {
    #[inline(always)]
    fn take(&mut self, stream: StdStream, entry: &[u8], chunk: &Bytes, start: usize, buffered: usize) -> bool {
        let index = stream.index();
        if !self.live[index] {
            return false;
        }
        let Ok((ts, prefix)) = self.timestamps.timestamp_prefix(entry) else { return false };
        let len = entry.len() - prefix;
        if len > self.line_bytes_max {
            return false;
        }
        let key = next_key(&mut self.counters[index], ts);
        self.spans[index].queue(key);
        self.groups[index].queue(key, Some(&entry[prefix..]));
        self.queued[index] = Some(key);
        if self.high[index].is_none_or(|high| high < key) {
            self.high[index] = Some(key);
        }
        self.lines += 1;
        self.bytes += len as u64;
        let bytes = chunk.slice(start + prefix..start + entry.len());
        let line = Line { ts, bytes, position: Position::Container(key) };
        push_line(self.runs, stream, line, len, self.run_bytes_max, buffered);
        true
    }
}

/// The keys one stream queued, as spans: a span grows while each key follows the last
/// within [`Spans::GAP_NANOS`], and a key stamped before the last (a host clock step back,
/// stderr lag beyond `since_skew`) or later than that starts the next. Every queued key
/// lies in a span, so a replayed line past the resume key that lies in none was never
/// queued: new. Lines queued before the resume line but stamped after it exist only after
/// a step back, and a replay that lost its resume line to json-file rotation cannot tell
/// them from new lines by their keys' order: with the high-water key alone it skipped
/// every line up to it. Seed 32,895 lost 237 lines of a flood stamped 110.76 s that
/// followed its deleted resume line (110.76 s), because lines at 128.6–129.7 s had been
/// queued before a 97.7 s step back; seed 30,736 49 lines at 993.35 s between spans at
/// 612.9 s and 1,053.6 s. Only the last [`Spans::KEPT`] are kept apart (a step goes back
/// minutes, not hours): older ones merge into one covering them (skipping more of a
/// replay, as before spans were kept). A restart knows no span before its checkpoint's
/// key: it takes every key up to it as queued (see [`Spans::through`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spans {
    /// (first, last) key of the span being queued: kept apart from the older ones, so a
    /// line queued looks at a field, not into a ring buffer.
    current: Option<(ResumeKey, ResumeKey)>,
    /// The older spans, oldest first.
    closed: std::collections::VecDeque<(ResumeKey, ResumeKey)>,
}

impl Spans {
    /// Keys further apart than this (1 s) start a new span.
    const GAP_NANOS: i64 = 1_000_000_000;
    const KEPT: usize = 64;

    /// What a restart knows of the keys queued before it: every key up to its
    /// checkpoint's `key`. Its high-water key is that key, but only until the host clock
    /// steps back: a later replay resumes from a line stamped before lines queued before
    /// the restart, and with no span of them it took them for new. Seed 49,976: stderr
    /// lines 25..34 stamped 2,859.47 s queued, the clock stepped back 98.5 s, the agent
    /// restarted from line 34's key and queued lines 35..68 stamped 2,857.09 s; the next
    /// rotation's replay resumed from line 68 and delivered lines 25..34 again. Cost: a
    /// replay after such a step that lost its resume line to json-file rotation skips
    /// new lines stamped before the checkpoint's key (as every replay did before spans).
    fn through(key: Option<ResumeKey>) -> Spans {
        let closed = key.map(|key| (ResumeKey { ts: UnixNanos::MIN, seq: 0 }, key)).into_iter().collect();
        Spans { current: None, closed }
    }

    #[inline(always)]
    fn queue(&mut self, key: ResumeKey) {
        match &mut self.current {
            Some((_, last)) if key >= *last && key.ts.saturating_sub(last.ts) <= Self::GAP_NANOS => *last = key,
            _ => self.start(key),
        }
    }

    #[inline(never)]
    fn start(&mut self, key: ResumeKey) {
        if let Some(span) = self.current.replace((key, key)) {
            if self.closed.len() >= Self::KEPT {
                if let (Some(oldest), Some(next)) = (self.closed.pop_front(), self.closed.front_mut()) {
                    *next = (oldest.0.min(next.0), oldest.1.max(next.1));
                }
            }
            self.closed.push_back(span);
        }
    }

    /// Whether `key` lies in a span of queued keys.
    fn holds(&self, key: ResumeKey) -> bool {
        self.current.iter().chain(&self.closed).any(|(first, last)| *first <= key && key <= *last)
    }
}

/// The marks of the lines one stream queued at one timestamp, in order: those of the
/// last queued line's. Keys count the lines of a timestamp from the first the stream
/// served, and json-file rotation may delete the front of such a group: a replay then
/// counts what is left from 0, so its lines' keys name lines queued before, and a
/// replay that lost its resume line skipped them all. Seed 28,193: 41 lines stamped
/// 1,919.52 s, the resume line the 19th; rotation deleted the first 32, and the 9 left
/// were keyed 0..8, at or before the resume key: skipped, never queued. Their marks
/// say which were queued. Unknown after a restart (no content in a checkpoint), for a
/// tail's cut group, a truncated line or a group of more than [`Group::MARKS_MAX`]
/// lines: then keys decide, as before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Group {
    /// The group's timestamp (`None` before the first line queued).
    ts: Option<UnixNanos>,
    /// Its first line's mark, and the rest's: a Vec written only for groups of more than
    /// one line (most are one line). Callgrind, seed 2: 314.8 M instructions before
    /// spans and groups, 324.6 M with spans, 352.1 M with a 56-byte mark pushed per line
    /// into a Vec, 335.3 M with these (a cost left to cut: see the session's report).
    first: GroupMark,
    rest: Vec<GroupMark>,
    /// Some line of the group has no mark kept.
    unknown: bool,
}

/// What tells the lines of a timestamp group apart: length and first 8 bytes (a line's
/// sequence number in the simulator; nanosecond timestamps rarely group real lines).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GroupMark {
    len: usize,
    head: u64,
}

impl GroupMark {
    #[inline(always)]
    fn of(content: &[u8]) -> GroupMark {
        let head = match content.first_chunk::<8>() {
            Some(head) => u64::from_le_bytes(*head),
            None => {
                let mut head = [0; 8];
                head[..content.len()].copy_from_slice(content);
                u64::from_le_bytes(head)
            }
        };
        GroupMark { len: content.len(), head }
    }
}

impl Group {
    const MARKS_MAX: usize = 256;

    /// `key` queued, a line of `content` (`None`: no mark kept).
    #[inline(always)]
    fn queue(&mut self, key: ResumeKey, content: Option<&[u8]>) {
        if self.ts != Some(key.ts) {
            self.ts = Some(key.ts);
            self.first = content.map(GroupMark::of).unwrap_or_default();
            self.unknown = content.is_none();
            if !self.rest.is_empty() {
                self.rest.clear();
            }
        } else {
            self.queue_more(content);
        }
    }

    #[inline(never)]
    fn queue_more(&mut self, content: Option<&[u8]>) {
        match content {
            Some(content) if !self.unknown && self.rest.len() < Self::MARKS_MAX => {
                self.rest.push(GroupMark::of(content))
            }
            _ => self.unknown = true,
        }
    }

    /// Whether the group holds every line queued at the resume key's timestamp, the
    /// resume line last.
    fn names(&self, resume: ResumeKey) -> bool {
        self.ts == Some(resume.ts) && !self.unknown && self.rest.len() == resume.seq as usize
    }

    /// For a replayed line of the resume key's timestamp holding `content`: (whether it
    /// was queued, whether it is the resume line), if the group says.
    fn replayed(&self, resume: ResumeKey, content: &[u8]) -> Option<(bool, bool)> {
        if !self.names(resume) {
            return None;
        }
        let mark = GroupMark::of(content);
        let (last, before) = match self.rest.split_last() {
            Some((last, before)) => (*last, Some(before)),
            None => (self.first, None),
        };
        Some(if last == mark {
            (true, true)
        } else {
            (before.is_some_and(|before| self.first == mark || before.contains(&mark)), false)
        })
    }
}

/// The key of the next complete line of a stream stamped `ts`: `counter` is the stream's
/// (timestamp of its last complete line, lines at it).
#[inline]
fn next_key(counter: &mut (UnixNanos, u32), ts: UnixNanos) -> ResumeKey {
    if counter.0 == ts {
        counter.1 += 1;
    } else {
        *counter = (ts, 0);
    }
    ResumeKey { ts, seq: counter.1 }
}

/// Append a line of `len` content bytes to the last run if it is of the same stream and
/// has room, else start a run with it. `buffered` is what the decoder still holds.
#[inline(always)]
fn push_line(runs: &mut Vec<Run>, stream: StdStream, line: Line, len: usize, run_bytes_max: usize, buffered: usize) {
    match runs.last_mut() {
        // A run's cost to the queue's budget (content plus per-line overhead) stays
        // within run_bytes_max, so a flood of tiny lines is split too.
        Some(run) if run.stream == stream && Budget::cost(run.lines.len() + 1, run.bytes + len) <= run_bytes_max => {
            run.lines.push(line);
            run.bytes += len;
        }
        _ => {
            // Room for the lines the buffered bytes can still hold (a frame is at least a
            // header, a timestamp and a space), up to RUN_CAPACITY_MAX.
            let mut lines = Vec::with_capacity((buffered / MIN_FRAME_BYTES + 1).min(RUN_CAPACITY_MAX));
            lines.push(line);
            runs.push(Run { stream, lines, bytes: len });
        }
    }
}
