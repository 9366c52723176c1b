//! One container's log as the json-file driver keeps it, stored as bursts, rendered lazily.
//!
//! Owns: the entries of one container in arrival order, and the arithmetic that finds,
//! renders and counts them without materialising them.
//!
//! ## Storage
//! The world writes output as bursts: `lines` consecutive lines of one output stream,
//! each `line_bytes` long (its per-stream sequence number in decimal, then `x` padding;
//! see [`line_content`]). A line of `L` content bytes becomes `L / 16384 + 1` entries:
//! full 16 KiB partial entries without a newline, then the rest followed by `\n`
//! (exactly as Docker's copier splits: a line of exactly 16 KiB ends with an entry that
//! is only `\n`). Line `i` of a burst has timestamp `first_ts + i * ts_step`, and every
//! entry of a long line carries its line's timestamp: Docker's copier stamps all pieces
//! with the time of the first (moby `daemon/logger/copier.go`, `partialTS`; checked on
//! this machine's engine 20.10: three pieces of a 40,000-byte line, one timestamp).
//! A one-line burst may instead carry literal content (conformance scripts print known
//! text); it splits the same way. A literal line may also be written over time: an
//! *open* burst holds the whole 16 KiB pieces the copier cut while the newline was not
//! yet written (each readable at once, none ending in `\n`), and the stream's next
//! literal burst continues that line — same sequence number, and the timestamp of the
//! first cut, which every later piece of the line carries (moby `partialTS`; checked on
//! this machine: a 40 KiB line written 8 KiB every 300 ms is stamped 300 ms after it
//! began, when its first 16 KiB piece was cut).
//!
//! ## TTY containers
//! A container created with a TTY ([`ContainerLog::tty`]) keeps the same entries, but a
//! reader gets them as Docker serves a TTY container's log: no frame header, each entry
//! `timestamp SP content`, and a line's last entry ends in `\r\n` (the terminal's line
//! end) instead of `\n`. All its output is stdout: [`super::SimDocker`] writes its
//! stderr bursts to stdout, as the terminal merges them. Simplification: the `\r` is
//! not counted in the 16 KiB cut (Docker's copier counts it, so a line of exactly
//! 16,383 bytes would end in an entry that is only `\n` there; here its `\r\n` stays
//! with the content).
//!
//! ## Host clock steps
//! [`ContainerLog::clock_stepped_back`]: the host clock stepped back (an NTP correction):
//! each stream's next burst may be stamped up to that much before its last line. moby's
//! json-file reader filters `since` per entry (`if !since.IsZero() &&
//! msg.Timestamp.Before(since) { continue }` in `loggerutils`' tail and follow paths: it
//! never seeks by time), so a request's `since` skips every line stamped before it,
//! wherever it lies: once a stream stepped back its filter is [`Qualify::Each`], and
//! the search for the first entry at or after `since` runs on the running maximum of
//! its timestamps. Lines so skipped that no reader had, written after a step, are a
//! named loss ([`LossCause::ClockStep`], `ContainerLog::record_since_skips` in [`clock`]): Docker
//! offers no position but time, so a reopen cannot ask for them; the agent's own
//! replay dedupe closes at its resume line, so it loses nothing more.
//!
//! ## Promises
//! - Per output stream, timestamps never go back but at a host clock step, and sequence
//!   numbers are consecutive from 0 across the whole life of the container (restarts
//!   keep the log).
//! - stdout and stderr bursts interleave in arrival order whatever their timestamps, so
//!   a reader sees entries out of timestamp order across streams.
//! - A [`LogCursor`] is a position in arrival order; [`ContainerLog::seek`] finds the
//!   start of a request (`since`, `tail`, rotation) by binary search, and
//!   [`ContainerLog::render`] turns entries into frames from any cursor.
//! - [`ContainerLog::rotate`] (Docker's own `max-size` rotation) deletes entries from
//!   the front; [`ContainerLog::retained_from`] then says, per stream, the first line
//!   still whole in the log, so the oracle can excuse exactly the deleted lines.
//! - It also keeps the account the agent's `container_log_gaps_total` is checked against
//!   ([`ContainerLog::mark_read_by`]): per stream, gaps a reader could notice (its resume
//!   line deleted, read past by a request made after the rotation) and may notice.
//!   Lines count read (no deletion excuses them) at whole-frame boundaries of what a
//!   reader was handed: a chunk cut inside a frame marks the frames before the cut
//!   ([`ContainerLog::whole_frames_in`]), and the gap account's resume line moves there
//!   too. A cursor that only passed the place of lines rotation deleted (the other
//!   stream's lines rendered up to this stream's first kept line) handed nothing of
//!   this stream (seed 424: counted as a noticeable gap the agent could not see).

use engine::model::StdStream;
#[cfg(debug_assertions)]
use engine::parse::frame::encode_frame;
use engine::parse::timestamp::format_rfc3339_nanos;
use engine::rt::UnixNanos;
use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

mod clock;

/// Docker's split size: content bytes per entry of a long line.
pub const ENTRY_CONTENT_MAX: usize = 16 * 1024;

const PADDING: [u8; ENTRY_CONTENT_MAX] = [b'x'; ENTRY_CONTENT_MAX];

/// Docker's frame header, and its fixed-width `RFC3339NanoFixed` timestamp.
const FRAME_HEADER_BYTES: usize = 8;
const TIMESTAMP_BYTES: usize = 30;

/// A line's bytes besides its content when it is one frame: header, timestamp, space,
/// newline (a TTY entry has no header but `\r\n`: less).
pub(crate) const LINE_FRAME_BYTES: u64 = (FRAME_HEADER_BYTES + TIMESTAMP_BYTES + 1 + 1) as u64;

/// Number of decimal digits of `n`.
pub fn decimal_digits(n: u64) -> u32 {
    n.checked_ilog10().map_or(1, |log| log + 1)
}

/// The content of line `seq` of a burst whose lines are `line_bytes` long (without the
/// newline): `seq` in decimal, then `x` up to `line_bytes`. Lines are never shorter than
/// their sequence number.
pub fn line_content(seq: u64, line_bytes: u32) -> Vec<u8> {
    let mut content = seq.to_string().into_bytes();
    let padding = (line_bytes as usize).saturating_sub(content.len());
    content.extend(std::iter::repeat_n(b'x', padding));
    content
}

/// The sequence number a line's content starts with (the oracle's decoder). `None` if
/// the content does not start with a digit.
pub fn line_seq(content: &[u8]) -> Option<u64> {
    let mut value: Option<u64> = Some(0);
    let mut digits = 0;
    for &byte in content {
        if !byte.is_ascii_digit() {
            break;
        }
        digits += 1;
        if digits > 20 {
            return None;
        }
        value = value.and_then(|value| value.checked_mul(10)?.checked_add(u64::from(byte - b'0')));
    }
    if digits == 0 {
        return None;
    }
    value
}

/// A run of lines of one output stream, written at one virtual instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Burst {
    pub(crate) stream: StdStream,
    /// Per-stream sequence number of the first line.
    pub(crate) first_seq: u64,
    pub(crate) lines: u32,
    /// Content bytes of every line (no newline), at least the digits of the last seq.
    pub(crate) line_bytes: u32,
    pub(crate) first_ts: UnixNanos,
    /// Nanoseconds between consecutive lines (0: all lines share `first_ts`).
    pub(crate) ts_step: i64,
    /// The content of a one-line burst written verbatim (conformance scripts), instead
    /// of the sequence number and padding.
    pub(crate) literal: Option<Arc<[u8]>>,
    /// The head of a line whose newline is not written yet (a literal of whole 16 KiB
    /// pieces): no entry ends in `\n`, and the stream's next burst continues the line.
    pub(crate) open: bool,
}

impl Burst {
    pub(crate) fn entries_per_line(&self) -> u64 {
        self.line_bytes as u64 / ENTRY_CONTENT_MAX as u64 + u64::from(!self.open)
    }

    pub(crate) fn entries(&self) -> u64 {
        self.lines as u64 * self.entries_per_line()
    }

    pub(crate) fn entry_ts(&self, entry: u64) -> UnixNanos {
        let line = entry / self.entries_per_line();
        self.first_ts + line as i64 * self.ts_step
    }

    /// Bytes of frames (header, timestamp, space, content, newline) of one line; with a
    /// TTY no header and a `\r` more.
    fn frame_bytes_per_line(&self, tty: bool) -> u64 {
        let header = if tty { 0 } else { FRAME_HEADER_BYTES };
        let per_entry_overhead = (header + TIMESTAMP_BYTES + 1) as u64;
        self.entries_per_line() * per_entry_overhead + self.line_bytes as u64 + 1 + u64::from(tty)
    }

    /// One entry per line, generated content (the digits of every sequence number fit
    /// in the line), every line complete: what [`render_short_lines`] renders.
    fn has_short_lines(&self) -> bool {
        let last_seq = self.first_seq + self.lines as u64 - 1;
        (self.line_bytes as usize) < ENTRY_CONTENT_MAX
            && self.literal.is_none()
            && !self.open
            && decimal_digits(last_seq) <= self.line_bytes
    }

    pub(crate) fn last_ts(&self) -> UnixNanos {
        self.entry_ts(self.entries() - 1)
    }

    /// The first entry with `ts >= since`, if any.
    fn first_entry_at_or_after(&self, since: UnixNanos) -> Option<u64> {
        if self.first_ts >= since {
            return Some(0);
        }
        if self.ts_step <= 0 {
            return None;
        }
        let gap = since - self.first_ts;
        let line = ((gap + self.ts_step - 1) / self.ts_step) as u64;
        (line < self.lines as u64).then_some(line * self.entries_per_line())
    }
}

/// Consecutive entries `from..from + entries` of burst `burst`, rendered as frames
/// starting `at` bytes into a render's output (see [`ContainerLog::render`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RenderedRun {
    pub(crate) at: usize,
    pub(crate) burst: usize,
    pub(crate) from: u64,
    pub(crate) entries: u64,
}

/// A position in a log: entry `entry` of burst `burst` (arrival order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogCursor {
    pub(crate) burst: usize,
    pub(crate) entry: u64,
}

/// From where an output stream's entries pass a request's `since` filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Qualify {
    /// Every entry of the stream at or after this position passes.
    From(LogCursor),
    /// No entry of the stream has passed yet: the first with `ts >= since` will, and
    /// (timestamps never go back within a stream) every later one.
    Since(UnixNanos),
    /// The stream's timestamps stepped back (host clock): each entry passes if its
    /// `ts >= since`, wherever it is (Docker filters per entry).
    Each(UnixNanos),
}

/// Where a request starts reading, and from where each output stream qualifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadStart {
    /// The first entry the reader looks at.
    pub(crate) cursor: LogCursor,
    /// Per output stream, which entries pass the `since` filter.
    pub(crate) qualify: [Qualify; 2],
}

/// Which entries a request reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadRequest {
    pub(crate) since: Option<UnixNanos>,
    pub(crate) tail: Option<u64>,
}

/// The log of one container. See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct ContainerLog {
    bursts: Vec<Burst>,
    /// Indices into `bursts` per output stream, for binary search by timestamp.
    by_stream: [Vec<usize>; 2],
    /// Per output stream, the latest timestamp up to and including each of its bursts
    /// (as `by_stream`; a running maximum, so sorted even after a clock step): what the
    /// search compares, without recomputing it from a burst.
    last_ts_by_stream: [Vec<UnixNanos>; 2],
    /// Per stream, how far the host clock stepped back since its last burst: its next
    /// burst may be stamped that much before its last line.
    step_back: [i64; 2],
    /// Per stream, its first line written after the host clock first stepped back.
    stepped_from: [Option<u64>; 2],
    /// First entry not deleted by rotation.
    start: LogCursor,
    next_seq: [u64; 2],
    last_ts: [Option<UnixNanos>; 2],
    /// Per stream, whether its last burst is an open line (newline not yet written).
    open_line: [bool; 2],
    /// Per stream, the first line none of whose entries was deleted.
    retained_from: [u64; 2],
    entries_total: u64,
    entries_deleted: u64,
    /// The furthest position whose frames some reader has been handed whole (reset when
    /// the agent crashes: what it had read is forgotten with it).
    read_frontier: LogCursor,
    /// Per stream, the lines the world deleted before any reader was handed them, as
    /// half-open sequence ranges in order, with their cause: the losses the oracle excuses.
    lost: [Vec<(u64, u64, LossCause)>; 2],
    /// Per stream, json-file rotations that deleted at least one of its lines (read or
    /// not).
    rotations_deleting: [u64; 2],
    /// Rotations so far: a reader opened at epoch `e` saw the log after the first `e`.
    rotation_epoch: u64,
    /// Per stream, the last line handed to the agent's readers (its resume line); after
    /// a crash, the line its checkpoint had committed ([`Self::reset_reader`]).
    handed_key: [Option<u64>; 2],
    /// Per stream, the last line handed to a reader, once a rotation deleted it and no
    /// reader has been handed a later line of the stream yet (see [`ReaderInfo`]).
    key_deleted: [Option<KeyDeleted>; 2],
    /// Per stream, the gaps a reader could notice: see [`Self::mark_read_by`]; and
    /// those it may notice: the first reader opened after a rotation that deleted lines
    /// of the stream hands it a line ([`Self::deleted_since_read`]), whatever it had
    /// read, with a `since` at or before the last deleted line. This one does not rest
    /// on the account of what was handed (a split chunk's first part is handed and not
    /// marked), so it bounds the agent's count on every seed.
    gaps_noticeable: [u64; 2],
    gaps_possible: [u64; 2],
    /// Per stream, the epoch of the last rotation that deleted any of its lines, until
    /// a reader is handed a line of it.
    deleted_since_read: [Option<u64>; 2],
    /// The agent has seen this container (see [`ContainerLog::mark_seen`]).
    seen: bool,
    /// With `first_sight = "now"`: the end of the log when the agent first saw it;
    /// nothing before is the agent's to read, even after a crash.
    unread_floor: LogCursor,
    /// Per stream, the wall time of a `tail` request that served nothing of it yet (see
    /// [`ContainerLog::skip_before_tail`]).
    tail_pending: [Option<UnixNanos>; 2],
    /// The container has a TTY: entries render without frame headers, lines end `\r\n`.
    tty: bool,
    /// Test-only broken model (see `SimDocker::set_broken_tty_keeps_stderr`).
    broken_merge: bool,
}

/// The last line of a stream handed to a reader, deleted by a rotation (`epoch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KeyDeleted {
    seq: u64,
    ts: UnixNanos,
    epoch: u64,
}

/// Who reads: what a log request asked for, and when (in rotations) it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReaderInfo {
    pub(crate) opened_epoch: u64,
    pub(crate) since: Option<UnixNanos>,
    pub(crate) tail: bool,
}

/// Why the world deleted a line before the agent could read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LossCause {
    /// Docker's json-file rotation (`max-size`/`max-file`) deleted it.
    Rotation,
    /// `docker rm` deleted the container, and its log with it.
    Removal,
    /// Written before the agent first saw the container, with `first_sight = "now"`:
    /// not the agent's to read.
    FirstSight,
    /// Written after a host clock step back, stamped before a request's `since`: Docker
    /// skipped it (see the module docs).
    ClockStep,
}

impl LossCause {
    pub fn as_str(self) -> &'static str {
        match self {
            LossCause::Rotation => "json_file_rotation",
            LossCause::Removal => "container_removed",
            LossCause::FirstSight => "first_sight_now",
            LossCause::ClockStep => "clock_step",
        }
    }
}

impl ContainerLog {
    /// An empty log; `tty`: the container has a TTY (see the module docs).
    /// `broken_merge`: the test-only broken model that keeps stderr writes on stderr.
    pub(crate) fn new(tty: bool, broken_merge: bool) -> ContainerLog {
        ContainerLog { tty, broken_merge, ..ContainerLog::default() }
    }

    /// Where a write to `stream` lands: stdout for a TTY container (the terminal
    /// merges stderr into it), else `stream`.
    pub(crate) fn stream_of(&self, stream: StdStream) -> StdStream {
        if self.tty && !self.broken_merge {
            StdStream::Stdout
        } else {
            stream
        }
    }

    /// Append a burst of `lines` lines on `stream` with timestamps starting at `ts`
    /// (raised to the stream's last timestamp if it is earlier). Returns the sequence
    /// numbers of the new lines.
    pub(crate) fn append(
        &mut self,
        stream: StdStream,
        lines: u32,
        line_bytes: u32,
        ts: UnixNanos,
        ts_step: i64,
    ) -> std::ops::Range<u64> {
        let first_seq = self.next_seq[stream.index()];
        if lines == 0 {
            return first_seq..first_seq;
        }
        let last_seq = first_seq + lines as u64 - 1;
        let line_bytes = line_bytes.max(decimal_digits(last_seq));
        let first_ts = match self.last_ts[stream.index()] {
            Some(last) => ts.max(last - self.step_back[stream.index()]),
            None => ts,
        };
        if self.tail_pending[stream.index()].take().is_some_and(|opened_at| first_ts <= opened_at) {
            let group = if ts_step <= 0 { lines as u64 } else { 1 };
            let mut until = [0; 2];
            until[stream.index()] = first_seq + group;
            self.record_loss(until, LossCause::FirstSight);
        }
        let burst = Burst {
            stream,
            first_seq,
            lines,
            line_bytes,
            first_ts,
            ts_step: ts_step.max(0),
            literal: None,
            open: false,
        };
        self.push(burst);
        first_seq..last_seq + 1
    }

    /// Append one line with exactly `content` (no newline inside; one is added), at
    /// `ts` (raised to the stream's last timestamp). If `open`, the newline is not
    /// written yet: `content` is whole 16 KiB pieces, and the stream's next literal
    /// continues the line. A line continued carries its first piece's timestamp.
    /// Returns its sequence number.
    pub(crate) fn append_literal(&mut self, stream: StdStream, content: Arc<[u8]>, ts: UnixNanos, open: bool) -> u64 {
        debug_assert!(!content.contains(&b'\n'), "a literal line holds no newline");
        debug_assert!(!open || (!content.is_empty() && content.len().is_multiple_of(ENTRY_CONTENT_MAX)));
        let first_seq = self.next_seq[stream.index()];
        let first_ts = match (self.open_line[stream.index()], self.last_ts[stream.index()]) {
            (true, Some(last)) => last,
            (_, Some(last)) => ts.max(last - self.step_back[stream.index()]),
            (_, None) => ts,
        };
        let line_bytes = u32::try_from(content.len()).expect("a line under 4 GiB");
        let burst =
            Burst { stream, first_seq, lines: 1, line_bytes, first_ts, ts_step: 0, literal: Some(content), open };
        self.push(burst);
        first_seq
    }

    /// End the open lines (the container stopped while writing them): the pieces cut
    /// so far stay, and the stream's next line is a new one.
    pub(crate) fn close_open_lines(&mut self) {
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            if std::mem::take(&mut self.open_line[stream.index()]) {
                self.next_seq[stream.index()] += 1;
            }
        }
    }

    fn push(&mut self, burst: Burst) {
        let stream = burst.stream;
        self.last_ts[stream.index()] = Some(burst.last_ts());
        // An open line is not written yet: the next burst continues it (same seq).
        self.next_seq[stream.index()] = burst.first_seq + u64::from(!burst.open) * burst.lines as u64;
        self.open_line[stream.index()] = burst.open;
        self.entries_total += burst.entries();
        self.by_stream[stream.index()].push(self.bursts.len());
        let latest =
            self.last_ts_by_stream[stream.index()].last().map_or(burst.last_ts(), |ts| burst.last_ts().max(*ts));
        self.last_ts_by_stream[stream.index()].push(latest);
        self.step_back[stream.index()] = 0;
        self.bursts.push(burst);
    }

    /// The position after the last entry.
    pub(crate) fn end(&self) -> LogCursor {
        LogCursor { burst: self.bursts.len(), entry: 0 }
    }

    /// Lines written per stream (`[stdout, stderr]`), deleted ones included.
    pub(crate) fn lines_written(&self) -> [u64; 2] {
        self.next_seq
    }

    pub(crate) fn retained_from(&self) -> [u64; 2] {
        self.retained_from
    }

    pub(crate) fn rotations_deleting(&self) -> [u64; 2] {
        self.rotations_deleting
    }

    /// Per stream, the ranges of lines lost to `cause` (each a run of lines some
    /// deletion took unread).
    pub(crate) fn loss_ranges(&self, cause: LossCause) -> [u64; 2] {
        let count = |stream: usize| self.lost[stream].iter().filter(|(_, _, c)| *c == cause).count() as u64;
        [count(0), count(1)]
    }

    pub(crate) fn entries_total(&self) -> u64 {
        self.entries_total
    }

    pub(crate) fn entries_deleted(&self) -> u64 {
        self.entries_deleted
    }

    /// Normalise a cursor: an entry index at the end of its burst means the next burst.
    fn normalise(&self, cursor: LogCursor) -> LogCursor {
        match self.bursts.get(cursor.burst) {
            Some(burst) if cursor.entry >= burst.entries() => LogCursor { burst: cursor.burst + 1, entry: 0 },
            _ => cursor,
        }
    }

    /// Where a request reads from. Docker applies `tail` to the entries in the file, then
    /// filters by `since`; so do we.
    pub(crate) fn seek(&self, request: ReadRequest) -> ReadStart {
        let mut cursor = self.start;
        if let Some(tail) = request.tail {
            cursor = cursor.max(self.back_from_end(tail));
        }
        let mut qualify = [Qualify::From(cursor); 2];
        if let Some(since) = request.since {
            let mut first = self.end();
            for stream in [StdStream::Stdout, StdStream::Stderr] {
                let found = self.first_of_stream_at_or_after(stream, since);
                if let Some(found) = found {
                    first = first.min(found.max(cursor));
                }
                qualify[stream.index()] = match found {
                    _ if self.stepped_from[stream.index()].is_some() => Qualify::Each(since),
                    Some(found) => Qualify::From(found.max(cursor)),
                    None => Qualify::Since(since),
                };
            }
            cursor = first.max(cursor);
        }
        ReadStart { cursor, qualify }
    }

    /// The position `entries` entries before the end.
    fn back_from_end(&self, mut entries: u64) -> LogCursor {
        let mut burst = self.bursts.len();
        while burst > 0 && entries > 0 {
            let count = self.bursts[burst - 1].entries();
            if entries < count {
                return LogCursor { burst: burst - 1, entry: count - entries };
            }
            entries -= count;
            burst -= 1;
        }
        LogCursor { burst, entry: 0 }
    }

    /// The first entry of `stream` with `ts >= since`, if there is one yet.
    fn first_of_stream_at_or_after(&self, stream: StdStream, since: UnixNanos) -> Option<LogCursor> {
        let first = self.last_ts_by_stream[stream.index()].partition_point(|&last_ts| last_ts < since);
        let index = *self.by_stream[stream.index()].get(first)?;
        // The running maximum reaches `since` first at a burst whose own last entry does.
        let entry = self.bursts[index].first_entry_at_or_after(since).expect("the burst's last entry qualifies");
        Some(LogCursor { burst: index, entry })
    }

    /// Delete every entry before the last `keep_entries` (Docker's `max-size`
    /// rotation). Returns the number of entries deleted.
    pub(crate) fn rotate(&mut self, keep_entries: u64) -> u64 {
        self.rotation_epoch += 1;
        // Per stream, the last line handed to a reader (its resume line), if it is one
        // the reader took (not one `first_sight = "now"` skipped).
        let keys = [StdStream::Stdout, StdStream::Stderr]
            .map(|stream| self.handed_key[stream.index()].filter(|key| self.excused_through(stream, *key) == *key));
        let new_start = self.back_from_end(keep_entries).max(self.start);
        let deleted = self.count_between(self.start, new_start);
        let old_start = self.start;
        self.start = self.normalise(new_start);
        self.entries_deleted += deleted;
        let mut retained = self.retained_from;
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            retained[stream.index()] = self.first_whole_line(stream);
            if retained[stream.index()] > self.retained_from[stream.index()] {
                self.rotations_deleting[stream.index()] += 1;
                self.deleted_since_read[stream.index()] = Some(self.rotation_epoch);
            }
            let index = stream.index();
            if let Some(key) = keys[index].filter(|key| *key < retained[index]) {
                if self.key_deleted[index].is_none() {
                    let ts = self.line_ts(stream, key).expect("a handed line was written");
                    self.key_deleted[index] = Some(KeyDeleted { seq: key, ts, epoch: self.rotation_epoch });
                }
            }
        }
        // Losses are counted against the lines retained before this rotation.
        let new_start = self.start;
        self.start = old_start;
        self.record_loss(retained, LossCause::Rotation);
        self.start = new_start;
        self.retained_from = retained;
        deleted
    }

    /// Whether some entries are not handed to any reader yet.
    /// Lines the world named lost (a clock step's `since` skipped them: Docker will not
    /// serve them) are not unread.
    pub(crate) fn has_unread(&self) -> bool {
        let unread = self.normalise(self.read_frontier.max(self.start)) < self.end();
        unread
            && (!self.stepped()
                || [StdStream::Stdout, StdStream::Stderr].into_iter().any(|stream| {
                    let index = stream.index();
                    self.open_line[index]
                        || self.excused_through(stream, self.first_unread_line(stream)) < self.next_seq[index]
                }))
    }

    /// A reader has been handed every frame before `cursor`. A stream whose last handed line was
    /// deleted by a rotation, and whose next line this reader was handed, is a gap the
    /// reader could notice if it asked for the log after that rotation, with a `since`
    /// at or before the deleted line (so the replay had to show it again): counted in
    /// [`Self::gaps_noticeable`]. A reader opened before the rotation reads on past it
    /// with nothing to notice (the agent cannot know). The agent's
    /// `container_log_gaps_total` is checked against this count.
    pub(crate) fn mark_read_by(&mut self, cursor: LogCursor, reader: ReaderInfo) {
        self.read_frontier = self.read_frontier.max(cursor);
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            let before = self.lines_before(stream, cursor);
            // Lines before the cursor that rotation deleted were not handed: a cursor that
            // only passed their place (a render of the other stream's lines up to the
            // stream's first kept line) handed nothing of this stream (seed 424).
            if before <= self.retained_from[index] {
                continue;
            }
            let handed_before = self.handed_key[index];
            if let Some(last) = before.checked_sub(1) {
                self.handed_key[index] = Some(handed_before.map_or(last, |key| key.max(last)));
            }
            // Handed a line of the stream it had not had (any line after a deletion is).
            if self.handed_key[index] != handed_before && !reader.tail {
                if let Some(epoch) = self.deleted_since_read[index].take() {
                    // A resume line it could miss is a deleted one: at or before the last
                    // deleted line, whose timestamp the request's `since` must not pass.
                    let last_deleted = self.retained_from[index].checked_sub(1);
                    let since_allows = match (reader.since, last_deleted.and_then(|line| self.line_ts(stream, line))) {
                        (Some(since), Some(ts)) => ts >= since,
                        _ => true,
                    };
                    if reader.opened_epoch >= epoch && since_allows {
                        self.gaps_possible[index] += 1;
                    }
                }
            }
            let Some(key) = self.key_deleted[index] else { continue };
            if before <= key.seq + 1 {
                continue;
            }
            self.key_deleted[index] = None;
            let replay_holds_key = reader.since.is_none_or(|since| key.ts >= since);
            if reader.opened_epoch >= key.epoch && !reader.tail && replay_holds_key {
                self.gaps_noticeable[index] += 1;
            }
        }
    }

    /// The agent crashed and restarts from its checkpoint: per stream, the line it had
    /// committed is its resume line again. If a rotation deleted it, the restarted
    /// agent's first reopen can notice the gap (whatever it had read since).
    pub(crate) fn reset_reader(&mut self, committed: [Option<u64>; 2]) {
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            self.handed_key[index] = committed[index];
            self.key_deleted[index] = committed[index].filter(|key| *key < self.retained_from[index]).map(|key| {
                let ts = self.line_ts(stream, key).expect("a committed line was written");
                KeyDeleted { seq: key, ts, epoch: self.rotation_epoch }
            });
            if self.key_deleted[index].is_some() {
                self.deleted_since_read[index] = Some(self.rotation_epoch);
            }
        }
    }

    pub(crate) fn rotation_epoch(&self) -> u64 {
        self.rotation_epoch
    }

    pub(crate) fn gaps_noticeable(&self) -> [u64; 2] {
        self.gaps_noticeable
    }

    pub(crate) fn gaps_possible(&self) -> [u64; 2] {
        self.gaps_possible
    }

    /// The timestamp of line `seq` of `stream`, if it was written.
    fn line_ts(&self, stream: StdStream, seq: u64) -> Option<UnixNanos> {
        let indices = &self.by_stream[stream.index()];
        let after = indices.partition_point(|&index| self.bursts[index].first_seq <= seq);
        let burst = &self.bursts[*indices.get(after.checked_sub(1)?)?];
        let line = seq.checked_sub(burst.first_seq)?;
        (line < burst.lines as u64).then(|| burst.first_ts + line as i64 * burst.ts_step)
    }

    /// The reader that had read this log is gone (the agent crashed): nothing counts as
    /// read any more.
    pub(crate) fn forget_reads(&mut self) {
        self.read_frontier = self.start.max(self.unread_floor);
    }

    /// Lines of `stream` complete before `cursor`: the sequence number of the first one
    /// a reader at `cursor` has not been handed whole (the world's account of what a
    /// reader holds, [`super::unsettled`]).
    pub(crate) fn lines_before(&self, stream: StdStream, cursor: LogCursor) -> u64 {
        let indices = &self.by_stream[stream.index()];
        let next = indices.partition_point(|&index| index < cursor.burst);
        match indices.get(next) {
            Some(&index) if index == cursor.burst => {
                let burst = &self.bursts[index];
                burst.first_seq + cursor.entry / burst.entries_per_line()
            }
            Some(&index) => self.bursts[index].first_seq,
            None => self.next_seq[stream.index()],
        }
    }

    /// The first entry not deleted by rotation.
    pub(crate) fn first_kept(&self) -> LogCursor {
        self.start
    }

    /// Whether a line of either stream is started but not complete before `cursor`
    /// (a reader there holds a partial line).
    pub(crate) fn mid_line(&self, cursor: LogCursor) -> bool {
        [StdStream::Stdout, StdStream::Stderr].into_iter().any(|stream| {
            let indices = &self.by_stream[stream.index()];
            let next = indices.partition_point(|&index| index < cursor.burst);
            let inside = indices.get(next).is_some_and(|&index| {
                index == cursor.burst && !cursor.entry.is_multiple_of(self.bursts[index].entries_per_line())
            });
            inside || (next > 0 && self.bursts[indices[next - 1]].open)
        })
    }

    /// What the lines `seqs` of `stream` weigh in the world's account of unsettled
    /// bytes: per complete line, [`LINE_FRAME_BYTES`] (its bytes as one frame besides
    /// content) plus its content, counted up to `content_cap` (what a reader may keep of
    /// a line). Heads of open lines weigh nothing.
    pub(crate) fn lines_cost(&self, stream: StdStream, seqs: Range<u64>, content_cap: u64) -> u64 {
        let indices = &self.by_stream[stream.index()];
        let mut at = indices.partition_point(|&index| {
            let burst = &self.bursts[index];
            burst.first_seq + burst.lines as u64 <= seqs.start
        });
        let mut cost = 0;
        while let Some(&index) = indices.get(at) {
            let burst = &self.bursts[index];
            if burst.first_seq >= seqs.end {
                break;
            }
            if !burst.open {
                let from = burst.first_seq.max(seqs.start);
                let until = (burst.first_seq + burst.lines as u64).min(seqs.end);
                cost += until.saturating_sub(from) * (LINE_FRAME_BYTES + (burst.line_bytes as u64).min(content_cap));
            }
            at += 1;
        }
        cost
    }

    /// Per stream, the first line not wholly handed to a reader yet.
    fn first_unread_line(&self, stream: StdStream) -> u64 {
        self.lines_before(stream, self.read_frontier.max(self.start))
    }

    /// Record, per stream, the lines from the first unread one up to `until` (exclusive,
    /// per stream) as lost to `cause`. Returns how many.
    fn record_loss(&mut self, until: [u64; 2], cause: LossCause) -> u64 {
        let mut total = 0;
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let from = self.first_unread_line(stream).max(self.retained_from[stream.index()]);
            let until = until[stream.index()];
            if from < until {
                self.lost[stream.index()].push((from, until, cause));
                total += until - from;
            }
        }
        total
    }

    /// The agent sees this container for the first time (a `list`, `inspect` or event
    /// names it). With `first_sight = "now"`, what it wrote so far is not the agent's.
    pub(crate) fn mark_seen(&mut self, first_sight_now: bool) {
        if std::mem::replace(&mut self.seen, true) || !first_sight_now {
            return;
        }
        self.record_loss(self.next_seq, LossCause::FirstSight);
        self.unread_floor = self.end();
        self.read_frontier = self.read_frontier.max(self.unread_floor);
    }

    /// A `tail` request starts at `cursor`: the unread lines before it are lost to first
    /// sight, and not the agent's to read even after a crash. So is, per stream, the
    /// whole timestamp group of the first line it serves: the agent cannot tell how many
    /// lines of that timestamp the tail cut off (nor a long line's middle piece from a
    /// line), so it skips the group (`LogReader::cut_after_tail`).
    ///
    /// A stream with nothing at or after the cursor: its first line written later but
    /// stamped at or before `opened_at` (stderr's lag) is such a group too (the agent
    /// cannot tell it from one the tail cut): excused when it is written.
    pub(crate) fn skip_before_tail(&mut self, cursor: LogCursor, opened_at: UnixNanos) {
        let cursor = self.normalise(cursor.max(self.start));
        let mut until = [0; 2];
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            until[stream.index()] = self.first_line_after_first_group(stream, cursor);
            let indices = &self.by_stream[stream.index()];
            let served = indices.partition_point(|&index| index < cursor.burst) < indices.len();
            self.tail_pending[stream.index()] = (!served).then_some(opened_at);
        }
        self.record_loss(until, LossCause::FirstSight);
        self.unread_floor = self.unread_floor.max(cursor);
        self.read_frontier = self.read_frontier.max(self.unread_floor);
    }

    /// Per stream, the first line after the timestamp group of the first entry at or
    /// after `at` (all lines sharing that entry's line's timestamp).
    fn first_line_after_first_group(&self, stream: StdStream, at: LogCursor) -> u64 {
        let indices = &self.by_stream[stream.index()];
        let first = indices.partition_point(|&index| index < at.burst);
        let Some(&index) = indices.get(first) else { return self.next_seq[stream.index()] };
        let burst = &self.bursts[index];
        let skip = if index == at.burst { at.entry } else { 0 };
        let line = skip / burst.entries_per_line();
        let ts = burst.first_ts + line as i64 * burst.ts_step;
        let mut after =
            if burst.ts_step == 0 { burst.first_seq + burst.lines as u64 } else { burst.first_seq + line + 1 };
        for &next in &indices[first + 1..] {
            let next = &self.bursts[next];
            if next.first_ts != ts {
                break;
            }
            if next.ts_step == 0 {
                after = next.first_seq + next.lines as u64;
            } else {
                after = next.first_seq + 1;
                if next.lines > 1 {
                    break;
                }
            }
        }
        after
    }

    /// Nobody has seen this container yet (the agent's real first start is to come).
    pub(crate) fn forget_seen(&mut self) {
        self.seen = false;
    }

    /// `docker rm`: the whole log is deleted; the lines no reader had are lost.
    /// Returns how many.
    pub(crate) fn delete_all(&mut self) -> u64 {
        let lost = self.record_loss(self.next_seq, LossCause::Removal);
        self.start = self.end();
        self.entries_deleted = self.entries_total;
        self.retained_from = self.next_seq;
        lost
    }

    /// Per stream, lines lost to `cause`.
    pub(crate) fn lost_lines(&self, cause: LossCause) -> [u64; 2] {
        let count = |stream: usize| {
            self.lost[stream].iter().filter(|(_, _, c)| *c == cause).map(|(from, until, _)| until - from).sum()
        };
        [count(0), count(1)]
    }

    /// The first line at or after `seq` of `stream` that the world did not delete
    /// unread (`seq` itself if it was not). The ranges are sorted by their start and
    /// may overlap (see [`Self::abandon_deleted_reads`]).
    pub(crate) fn excused_through(&self, stream: StdStream, seq: u64) -> u64 {
        let mut seq = seq;
        for (from, until, _) in &self.lost[stream.index()] {
            if *until <= seq {
                continue;
            }
            if *from > seq {
                break;
            }
            seq = *until;
        }
        seq
    }

    /// The reader that had read this deleted log died (the agent crashed or stopped)
    /// with lines it had read but not delivered: per stream, the lines from
    /// `delivered` up to what the deletion itself took are lost to removal as well.
    /// A reader's memory is not durable: only Loki's copy outlives it, and the log it
    /// could read again is gone. Returns how many lines it adds.
    ///
    /// `removed: false` is the same for a live log's json-file rotation: the lines it
    /// deleted (before `retained_from`) that the dead reader had read and not delivered
    /// are lost to rotation (seed 205: rotated away while a full queue held them during
    /// a Loki outage, then the agent was stopped).
    pub(crate) fn abandon_deleted_reads(&mut self, delivered: [u64; 2], removed: bool) -> u64 {
        let mut total = 0;
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            let lost = &self.lost[index];
            let from = self.excused_through(stream, delivered[index]);
            let (deleted_until, cause) = if removed {
                // The deletion recorded the lines no reader had: up to its start, they were read.
                let until = lost
                    .iter()
                    .rev()
                    .find(|(_, _, cause)| *cause == LossCause::Removal)
                    .map_or(self.next_seq[index], |(from, _, _)| *from);
                (until, LossCause::Removal)
            } else {
                (self.retained_from[index], LossCause::Rotation)
            };
            // Up to the next range already named, so no line is counted twice.
            let next_named = lost.iter().map(|(start, _, _)| *start).filter(|start| *start > from).min();
            let read_until = next_named.map_or(deleted_until, |start| start.min(deleted_until));
            if from < read_until {
                self.lost[index].push((from, read_until, cause));
                self.lost[index].sort_by_key(|(from, _, _)| *from);
                total += read_until - from;
            }
        }
        total
    }

    /// Whether `content` is exactly line `seq` of `stream` as written, after the
    /// agent's truncation rule (`line_bytes_max` content bytes, then the marker).
    /// `None`: that line was not written.
    pub(crate) fn line_matches(
        &self,
        stream: StdStream,
        seq: u64,
        content: &[u8],
        line_bytes_max: usize,
    ) -> Option<bool> {
        self.line_matches_near(stream, seq, content, line_bytes_max, &mut 0)
    }

    /// [`Self::line_matches`], looking first at the burst `*near` (a position in the
    /// stream's bursts, updated to the one found) and the one after it: a batch holds
    /// runs of consecutive lines, so most lookups need no search.
    pub(crate) fn line_matches_near(
        &self,
        stream: StdStream,
        seq: u64,
        content: &[u8],
        line_bytes_max: usize,
        near: &mut usize,
    ) -> Option<bool> {
        let indices = &self.by_stream[stream.index()];
        let holds = |at: usize| {
            indices.get(at).is_some_and(|&index| {
                let burst = &self.bursts[index];
                burst.first_seq <= seq && seq < burst.first_seq + burst.lines as u64
            })
        };
        let at = if holds(*near) {
            *near
        } else if holds(*near + 1) {
            *near + 1
        } else {
            indices.partition_point(|&index| self.bursts[index].first_seq <= seq).checked_sub(1)?
        };
        *near = at;
        let burst = &self.bursts[*indices.get(at)?];
        if seq >= burst.first_seq + burst.lines as u64 {
            return None;
        }
        let marker = engine::parse::assemble::TRUNCATION_MARKER;
        let (written, truncated) = match &burst.literal {
            Some(literal) => (literal.len(), literal.len() > line_bytes_max),
            None => (burst.line_bytes as usize, burst.line_bytes as usize > line_bytes_max),
        };
        let kept = written.min(line_bytes_max);
        let (body, tail) = if truncated {
            if content.len() != kept + marker.len() {
                return Some(false);
            }
            content.split_at(kept)
        } else {
            if content.len() != written {
                return Some(false);
            }
            (content, &[][..])
        };
        if truncated && tail != marker {
            return Some(false);
        }
        Some(match &burst.literal {
            Some(literal) => body == &literal[..kept],
            None => {
                let digits = decimal_digits(seq) as usize;
                body.len() >= digits
                    && line_seq(&body[..digits]) == Some(seq)
                    && body[digits..].chunks(ENTRY_CONTENT_MAX).all(|chunk| chunk == &PADDING[..chunk.len()])
            }
        })
    }

    /// Per stream, the sequence number of the first line whose first entry is at or
    /// after `start`.
    fn first_whole_line(&self, stream: StdStream) -> u64 {
        let indices = &self.by_stream[stream.index()];
        let first = indices.partition_point(|&index| index < self.start.burst);
        let Some(&index) = indices.get(first) else { return self.next_seq[stream.index()] };
        let burst = &self.bursts[index];
        let skip = if index == self.start.burst { self.start.entry } else { 0 };
        let per_line = burst.entries_per_line();
        // A burst continuing an open line whose head was deleted holds no whole line.
        let head_deleted = skip == 0 && first > 0 && self.bursts[indices[first - 1]].open;
        burst.first_seq + skip.div_ceil(per_line).max(u64::from(head_deleted))
    }

    fn count_between(&self, from: LogCursor, to: LogCursor) -> u64 {
        if to <= from {
            return 0;
        }
        let mut count = 0;
        let mut cursor = from;
        while cursor.burst < to.burst {
            count += self.bursts[cursor.burst].entries() - cursor.entry;
            cursor = LogCursor { burst: cursor.burst + 1, entry: 0 };
        }
        count + to.entry.saturating_sub(cursor.entry)
    }

    /// About how many bytes [`Self::render`] will produce from `cursor` up to `limit`,
    /// capped at `cap` plus one line: the capacity to allocate for one render.
    pub(crate) fn render_bytes_estimate(&self, cursor: LogCursor, limit: LogCursor, cap: usize) -> usize {
        let limit = limit.min(self.end());
        let mut cursor = cursor.max(self.start);
        let mut total: u64 = 0;
        while cursor < limit && total < cap as u64 {
            let burst = &self.bursts[cursor.burst];
            let end = if cursor.burst == limit.burst { limit.entry } else { burst.entries() };
            let per_line = burst.entries_per_line();
            let lines = (end.saturating_sub(cursor.entry)).div_ceil(per_line);
            total += lines * burst.frame_bytes_per_line(self.tty);
            cursor = LogCursor { burst: cursor.burst + 1, entry: 0 };
        }
        total.min(cap as u64 + ENTRY_CONTENT_MAX as u64 + 64) as usize
    }

    /// Render entries from `*cursor` as frames into `out`, skipping entries that fail
    /// their stream's `qualify` filter (which it updates), until `out` holds at least `target_bytes`, `limit`
    /// is reached, or the log ends. Advances `*cursor`; a cursor behind the log's start
    /// (entries deleted by rotation) first jumps to the start. Returns the length of the
    /// last frame rendered (0 if none) and the number of entries rendered. Appends to
    /// `runs` one [`RenderedRun`] per burst it rendered from, so that a reader handed
    /// only part of `out` knows which frames it got whole ([`Self::whole_frames_in`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn render(
        &self,
        cursor: &mut LogCursor,
        qualify: &mut [Qualify; 2],
        limit: LogCursor,
        target_bytes: usize,
        out: &mut BytesMut,
        timestamps: &mut TimestampText,
        runs: &mut Vec<RenderedRun>,
    ) -> (usize, u64) {
        let limit = limit.min(self.end());
        *cursor = self.normalise((*cursor).max(self.start));
        let mut last_frame = 0;
        let mut rendered = 0;
        let base = out.len();
        while *cursor < limit && out.len() < target_bytes {
            let burst = &self.bursts[cursor.burst];
            let burst_end = if cursor.burst == limit.burst { limit.entry } else { burst.entries() };
            let passes_from = match qualify[burst.stream.index()] {
                Qualify::From(q) if q.burst > cursor.burst => burst_end,
                Qualify::From(q) if q.burst == cursor.burst => q.entry,
                Qualify::From(_) => 0,
                Qualify::Each(since) => burst.first_entry_at_or_after(since).unwrap_or(burst_end),
                Qualify::Since(since) => match burst.first_entry_at_or_after(since) {
                    Some(entry) => {
                        let found = LogCursor { burst: cursor.burst, entry };
                        qualify[burst.stream.index()] = Qualify::From(found);
                        entry
                    }
                    None => burst_end,
                },
            };
            let from = cursor.entry.max(passes_from);
            let mut entry = from;
            let run_at = out.len() - base;
            if from < burst_end && out.len() < target_bytes && burst.has_short_lines() {
                let (count, frame_len) =
                    render_short_lines(burst, self.tty, from, burst_end, target_bytes, out, timestamps);
                entry += count;
                rendered += count;
                last_frame = frame_len;
            }
            while entry < burst_end && out.len() < target_bytes {
                let before = out.len();
                render_entry(burst, self.tty, entry, out, timestamps);
                last_frame = out.len() - before;
                rendered += 1;
                entry += 1;
            }
            if entry > from {
                runs.push(RenderedRun { at: run_at, burst: cursor.burst, from, entries: entry - from });
            }
            *cursor = self.normalise(LogCursor { burst: cursor.burst, entry: entry.max(from) });
        }
        (last_frame, rendered)
    }

    /// The position after the last frame that lies whole in the first `bytes` of a
    /// render's output whose `runs` [`Self::render`] recorded: what a reader handed
    /// those bytes has been handed whole. `None` if not even the first frame is whole.
    /// Walks only the run the cut falls into (frames of a burst of short lines all have
    /// one length: a division).
    pub(crate) fn whole_frames_in(&self, runs: &[RenderedRun], bytes: usize) -> Option<LogCursor> {
        let index = runs.partition_point(|run| run.at <= bytes).checked_sub(1)?;
        let run = runs[index];
        let burst = &self.bursts[run.burst];
        let mut left = bytes - run.at;
        let whole = if burst.has_short_lines() {
            let frame = burst.frame_bytes_per_line(self.tty) as usize;
            (left / frame) as u64
        } else {
            let mut whole = 0;
            while whole < run.entries {
                let frame = entry_frame_bytes(burst, self.tty, run.from + whole);
                if frame > left {
                    break;
                }
                left -= frame;
                whole += 1;
            }
            whole
        }
        .min(run.entries);
        (index > 0 || whole > 0).then_some(LogCursor { burst: run.burst, entry: run.from + whole })
    }
}

/// The frames of entries `from..end` of a burst of short lines (see
/// [`Burst::has_short_lines`]), as many as [`ContainerLog::render`]'s loop would render
/// before `out` holds `target_bytes`: the same bytes as [`render_entry_frame`] gives
/// each (debug builds check), written at once. The frames all have one length, so `out`
/// grows once, filled with the padding byte, and only the header, timestamp, sequence
/// number and newline are written per frame. Returns how many and the frame length.
fn render_short_lines(
    burst: &Burst,
    tty: bool,
    from: u64,
    end: u64,
    target_bytes: usize,
    out: &mut BytesMut,
    timestamps: &mut TimestampText,
) -> (u64, usize) {
    let line_bytes = burst.line_bytes as usize;
    let payload_len = TIMESTAMP_BYTES + 1 + line_bytes + 1 + usize::from(tty);
    let header_len = if tty { 0 } else { FRAME_HEADER_BYTES };
    let frame_len = header_len + payload_len;
    let start = out.len();
    let wanted = (target_bytes - start).div_ceil(frame_len) as u64;
    let count = (end - from).min(wanted);
    out.resize(start + count as usize * frame_len, b'x');
    let mut header = [0u8; FRAME_HEADER_BYTES];
    header[0] = match burst.stream {
        StdStream::Stdout => 1,
        StdStream::Stderr => 2,
    };
    header[4..].copy_from_slice(&u32::try_from(payload_len).expect("an entry fits in a frame").to_be_bytes());
    for (index, frame) in out[start..].chunks_exact_mut(frame_len).enumerate() {
        let entry = from + index as u64;
        frame[..header_len].copy_from_slice(&header[..header_len]);
        let (ts, rest) = frame[header_len..].split_at_mut(TIMESTAMP_BYTES);
        timestamps.write_into(burst.first_ts + entry as i64 * burst.ts_step, ts);
        rest[0] = b' ';
        let seq = burst.first_seq + entry;
        let digits = decimal_digits(seq) as usize;
        put_fixed_digits(&mut rest[1..1 + digits], seq);
        if tty {
            rest[1 + line_bytes] = b'\r';
        }
        rest[1 + line_bytes + usize::from(tty)] = b'\n';
    }
    #[cfg(debug_assertions)]
    {
        let mut expected = BytesMut::new();
        for entry in from..from + count {
            render_entry(burst, tty, entry, &mut expected, &mut TimestampText::default());
        }
        debug_assert!(expected[..] == out[start..], "short-line frames differ from render_entry");
    }
    (count, frame_len)
}

/// The bytes [`render_entry`] writes for entry `entry` of `burst`.
fn entry_frame_bytes(burst: &Burst, tty: bool, entry: u64) -> usize {
    let per_line = burst.entries_per_line();
    let part = (entry % per_line) as usize;
    let part_start = part * ENTRY_CONTENT_MAX;
    let content = (part_start + ENTRY_CONTENT_MAX).min(burst.line_bytes as usize) - part_start;
    let newline = part as u64 == per_line - 1 && !burst.open;
    let header = if tty { 0 } else { FRAME_HEADER_BYTES };
    let line_end = if newline { 1 + usize::from(tty) } else { 0 };
    header + TIMESTAMP_BYTES + 1 + content + line_end
}

/// Entry `entry` of `burst` as a reader gets it: a frame ([`render_entry_frame`]), or
/// with a TTY the raw `RFC3339Nano SP content-part [\r\n]` ([`render_entry_tty`]).
fn render_entry(burst: &Burst, tty: bool, entry: u64, out: &mut BytesMut, timestamps: &mut TimestampText) {
    if tty {
        render_entry_tty(burst, entry, out, timestamps);
    } else {
        render_entry_frame(burst, entry, out, timestamps);
    }
}

/// A TTY container's entry: no header, the timestamp, a space, the content part, and
/// `\r\n` if it ends its line.
fn render_entry_tty(burst: &Burst, entry: u64, out: &mut BytesMut, timestamps: &mut TimestampText) {
    let per_line = burst.entries_per_line();
    let part = (entry % per_line) as usize;
    let newline = part as u64 == per_line - 1 && !burst.open;
    out.extend_from_slice(&timestamps.text(burst.entry_ts(entry)));
    out.put_u8(b' ');
    put_content_part(burst, entry, out);
    if newline {
        out.extend_from_slice(b"\r\n");
    }
}

/// The content bytes of entry `entry` of `burst` (without any line end).
fn put_content_part(burst: &Burst, entry: u64, out: &mut BytesMut) {
    let per_line = burst.entries_per_line();
    let seq = burst.first_seq + entry / per_line;
    let part = (entry % per_line) as usize;
    let line_bytes = burst.line_bytes as usize;
    let part_start = part * ENTRY_CONTENT_MAX;
    let part_end = (part_start + ENTRY_CONTENT_MAX).min(line_bytes);
    if let Some(literal) = &burst.literal {
        out.extend_from_slice(&literal[part_start..part_end]);
    } else if part == 0 {
        let mut digits = itoa_buffer(seq);
        let digits = digits.as_slice();
        let shown = digits.len().min(part_end);
        out.extend_from_slice(&digits[..shown]);
        out.extend_from_slice(&PADDING[..part_end - shown]);
    } else {
        out.extend_from_slice(&PADDING[..part_end - part_start]);
    }
}

/// The frame of entry `entry` of `burst`: header, then `RFC3339Nano SP content-part
/// [\n]`. The payload's length is known before it is written, so the header goes first
/// and each content byte is copied once; debug builds (every test) check each frame
/// against [`encode_frame`], the engine's definition of the format.
fn render_entry_frame(burst: &Burst, entry: u64, out: &mut BytesMut, timestamps: &mut TimestampText) {
    #[cfg(debug_assertions)]
    let header_at = out.len();
    let per_line = burst.entries_per_line();
    let part = (entry % per_line) as usize;
    let line_bytes = burst.line_bytes as usize;
    let part_start = part * ENTRY_CONTENT_MAX;
    let part_end = (part_start + ENTRY_CONTENT_MAX).min(line_bytes);
    let newline = part as u64 == per_line - 1 && !burst.open;
    let payload_len = TIMESTAMP_BYTES + 1 + (part_end - part_start) + usize::from(newline);
    let stream_type = match burst.stream {
        StdStream::Stdout => 1,
        StdStream::Stderr => 2,
    };
    let len = u32::try_from(payload_len).expect("an entry fits in a frame").to_be_bytes();
    let mut head = [0u8; FRAME_HEADER_BYTES + TIMESTAMP_BYTES + 1];
    head[0] = stream_type;
    head[4..FRAME_HEADER_BYTES].copy_from_slice(&len);
    head[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + TIMESTAMP_BYTES]
        .copy_from_slice(&timestamps.text(burst.entry_ts(entry)));
    head[FRAME_HEADER_BYTES + TIMESTAMP_BYTES] = b' ';
    out.extend_from_slice(&head);
    put_content_part(burst, entry, out);
    if newline {
        out.put_u8(b'\n');
    }
    #[cfg(debug_assertions)]
    {
        let mut expected = Vec::new();
        encode_frame(burst.stream, &out[header_at + FRAME_HEADER_BYTES..], &mut expected);
        debug_assert!(expected[..] == out[header_at..], "frame layout differs from encode_frame");
    }
}

/// Formats timestamps like [`format_rfc3339_nanos`], reusing the date and time of day
/// while consecutive entries fall in the same second (they mostly do): only the nine
/// fraction digits are written per entry. Debug builds check every result against
/// `format_rfc3339_nanos`, which remains the definition of the layout.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimestampText {
    /// The second whose `YYYY-MM-DDTHH:MM:SS.` is in `prefix`, if any.
    second: Option<i64>,
    prefix: [u8; 20],
    /// Where a new second is formatted (reused, so that it allocates once).
    scratch: Vec<u8>,
}

impl TimestampText {
    const NANOS_PER_SECOND: i64 = 1_000_000_000;

    /// Write the text of `ts` into `out` (30 bytes), in place.
    pub(crate) fn write_into(&mut self, ts: UnixNanos, out: &mut [u8]) {
        let second = ts.div_euclid(Self::NANOS_PER_SECOND);
        if self.second != Some(second) {
            self.scratch.clear();
            format_rfc3339_nanos(ts, &mut self.scratch);
            self.prefix.copy_from_slice(&self.scratch[..20]);
            self.second = Some(second);
        }
        out[..20].copy_from_slice(&self.prefix);
        put_fixed_digits(&mut out[20..29], ts.rem_euclid(Self::NANOS_PER_SECOND) as u64);
        out[29] = b'Z';
    }

    /// The text of `ts`.
    pub(crate) fn text(&mut self, ts: UnixNanos) -> [u8; TIMESTAMP_BYTES] {
        let second = ts.div_euclid(Self::NANOS_PER_SECOND);
        if self.second != Some(second) {
            self.scratch.clear();
            format_rfc3339_nanos(ts, &mut self.scratch);
            debug_assert_eq!(self.scratch.len(), TIMESTAMP_BYTES);
            self.prefix.copy_from_slice(&self.scratch[..20]);
            self.second = Some(second);
        }
        let mut text = [0u8; TIMESTAMP_BYTES];
        text[..20].copy_from_slice(&self.prefix);
        put_fixed_digits(&mut text[20..29], ts.rem_euclid(Self::NANOS_PER_SECOND) as u64);
        text[29] = b'Z';
        #[cfg(debug_assertions)]
        {
            let mut expected = Vec::new();
            format_rfc3339_nanos(ts, &mut expected);
            debug_assert!(expected[..] == text[..], "timestamp text differs from format_rfc3339_nanos");
        }
        text
    }
}

/// "00" to "99": two decimal digits per lookup.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        pairs[2 * n] = b'0' + (n / 10) as u8;
        pairs[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    pairs
};

/// Write the last `slot.len()` decimal digits of `n` into `slot`, zero-padded on the
/// left, two digits per step (timestamps' fractions and sequence numbers, once per
/// rendered frame).
#[inline]
fn put_fixed_digits(slot: &mut [u8], mut n: u64) {
    let mut end = slot.len();
    while end >= 2 {
        let pair = (n % 100) as usize;
        n /= 100;
        slot[end - 2..end].copy_from_slice(&DIGIT_PAIRS[2 * pair..2 * pair + 2]);
        end -= 2;
    }
    if end == 1 {
        slot[0] = b'0' + (n % 10) as u8;
    }
}

/// Decimal digits of `n` without allocating.
struct Digits {
    bytes: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_slice(&mut self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

fn itoa_buffer(mut n: u64) -> Digits {
    let mut bytes = [0u8; 20];
    let mut start = 20;
    loop {
        start -= 1;
        bytes[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { bytes, start }
}
