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
//! A share of bursts is written empty instead (`line_bytes` 0: every line only its
//! newline; see [`empty`], which also says how the oracle names such a line).
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
mod empty;
mod reads;
mod render;

pub(crate) use render::TimestampText;

/// Docker's split size: content bytes per entry of a long line.
pub const ENTRY_CONTENT_MAX: usize = 16 * 1024;

static PAD_X: [u8; ENTRY_CONTENT_MAX] = [b'x'; ENTRY_CONTENT_MAX];
static PAD_CR: [u8; ENTRY_CONTENT_MAX] = [b'\r'; ENTRY_CONTENT_MAX];
static PAD_FF: [u8; ENTRY_CONTENT_MAX] = [0xFF; ENTRY_CONTENT_MAX];

/// A line's padding byte, by burst: content varies as real output does. Most bursts pad
/// with `x`; one in five with `0xFF` (invalid UTF-8: the pipeline carries bytes, the
/// Loki encoders replace them, unit-tested there); one in five, outside TTY containers,
/// with `\r` (a program writing `\r\n` line ends: json-file keeps the `\r`, and so must
/// the agent). Drawn from the burst's first sequence number, so no random stream moves.
fn content_pad(first_seq: u64, tty: bool) -> u8 {
    match first_seq % 5 {
        3 => 0xFF,
        1 if !tty => b'\r',
        _ => b'x',
    }
}

/// `ENTRY_CONTENT_MAX` bytes of `pad`.
fn padding(pad: u8) -> &'static [u8; ENTRY_CONTENT_MAX] {
    match pad {
        b'\r' => &PAD_CR,
        0xFF => &PAD_FF,
        _ => &PAD_X,
    }
}

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

/// `items.partition_point(pred)` (`pred` holds for a prefix of `items`), searched from
/// the end: probes 1, 3, 7, ... items back, then a binary search between the last two
/// probes. A log's searches by sequence number or time mostly ask about its last bursts
/// (the lines just rendered, handed, answered by Loki; a reopen's `since`): a probe or
/// two in cache, where a binary search over the whole stream walked the log's bursts
/// (a cache miss per step in wall time; `lines_cost` alone was 1.5 % of a sweep's).
fn partition_point_near_end<T>(items: &[T], mut pred: impl FnMut(&T) -> bool) -> usize {
    // `items[end..]` all fail `pred`.
    let (mut end, mut step) = (items.len(), 1);
    while end > 0 {
        let probe = end.saturating_sub(step);
        if pred(&items[probe]) {
            return probe + 1 + items[probe + 1..end].partition_point(pred);
        }
        end = probe;
        step *= 2;
    }
    0
}

/// How many bytes `body` starts with that are `seq` in decimal, or 0 if it does not
/// start so: the same test as `line_seq(&body[..decimal_digits(seq)]) == Some(seq)`
/// (digits with no leading zero name one number, and one number has one text) in one
/// pass and no logarithm (once per line Loki stores; seed 8: 14 M of 1,397 M
/// instructions fewer).
fn leading_seq(body: &[u8], seq: u64) -> usize {
    let mut value: u64 = 0;
    for (at, &byte) in body.iter().enumerate() {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        if at > 0 && value == 0 {
            return 0;
        }
        match value.checked_mul(10).and_then(|value| value.checked_add(u64::from(digit))) {
            Some(next) if next <= seq => value = next,
            _ => return 0,
        }
        if value == seq {
            return at + 1;
        }
    }
    0
}

/// Whether `rest` is only the padding `pad` is made of: one comparison for a line under
/// 16 KiB, the usual one. With the digits the oracle read passed in (not read again by
/// [`leading_seq`]) instead of an iterator of 16 KiB chunks: callgrind, seed 85
/// 474.3 M → 469.3 M Ir; seed 19 1,139.5 M → 1,133.6 M.
fn pads_with(mut rest: &[u8], pad: &[u8; ENTRY_CONTENT_MAX]) -> bool {
    while rest.len() > ENTRY_CONTENT_MAX {
        let (chunk, after) = rest.split_at(ENTRY_CONTENT_MAX);
        if chunk != pad {
            return false;
        }
        rest = after;
    }
    rest == &pad[..rest.len()]
}

/// The lines of one burst of generated content (not empty) that the agent keeps whole:
/// [`ContainerLog::line_matches_near`] for them without looking up the burst and its kind
/// again for every line. The oracle keeps one per batch stream, as its lines are mostly
/// consecutive ones of one burst (callgrind: seed 85 469.3 M → 463.1 M Ir; seed 19
/// 1,133.6 M → 1,125.8 M).
#[derive(Clone, Debug)]
pub(crate) struct GeneratedRun {
    seqs: Range<u64>,
    line_bytes: usize,
    pad: &'static [u8; ENTRY_CONTENT_MAX],
}

impl GeneratedRun {
    pub(crate) fn line_bytes(&self) -> usize {
        self.line_bytes
    }

    /// The byte its lines pad with.
    pub(crate) fn pad_byte(&self) -> u8 {
        self.pad[0]
    }

    pub(crate) fn holds(&self, seq: u64) -> bool {
        self.seqs.contains(&seq)
    }

    /// Make `out` the content of line `seq` of this run (its digits, then padding), if
    /// its digits fit in the line: the one content [`Self::matches`] passes for it.
    pub(crate) fn write_line(&self, seq: u64, out: &mut Vec<u8>) -> bool {
        let digits = decimal_digits(seq) as usize;
        out.clear();
        if digits > self.line_bytes {
            return false;
        }
        out.resize(self.line_bytes, self.pad[0]);
        let mut n = seq;
        for digit in out[..digits].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        true
    }

    /// [`ContainerLog::line_matches_near`] of a line this run [`holds`](Self::holds).
    pub(crate) fn matches(&self, seq_digits: usize, content: &[u8]) -> bool {
        content.len() == self.line_bytes
            && seq_digits != 0
            && seq_digits <= content.len()
            && pads_with(&content[seq_digits..], self.pad)
    }
}

/// A run of lines of one output stream, written at one virtual instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Burst {
    pub(crate) stream: StdStream,
    /// Per-stream sequence number of the first line.
    pub(crate) first_seq: u64,
    pub(crate) lines: u32,
    /// Content bytes of every line (no newline), at least the digits of the last seq;
    /// 0 for a burst of empty lines ([`Burst::is_empty_lines`]).
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
    /// The byte every line pads with after its sequence number ([`content_pad`]).
    pub(crate) pad: u8,
    /// [`Self::lines_are_short`], set when the burst is written: asked at every render
    /// and chunk, and its decimal logarithm cost more than the rest of the question
    /// (callgrind: seed 85 444.8 M → 443.8 M instructions, seed 19 1,099.0 M → 1,095.9 M).
    short_lines: bool,
    /// [`Self::entries_per_line`], set when the burst is written: asked of a burst
    /// whenever its entries are counted or found (callgrind: seed 85 365.9 M -> 365.3 M,
    /// seed 19 908.3 M -> 907.3 M).
    per_line: u32,
}

impl Burst {
    pub(crate) fn entries_per_line(&self) -> u64 {
        debug_assert_eq!(u64::from(self.per_line), self.worked_out_entries_per_line());
        u64::from(self.per_line)
    }

    /// [`Self::entries_per_line`], worked out: a 16 KiB piece per entry, the last
    /// holding the newline.
    fn worked_out_entries_per_line(&self) -> u64 {
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
    /// in the line), every line complete: what `render::render_short_lines` renders.
    fn has_short_lines(&self) -> bool {
        debug_assert_eq!(self.short_lines, self.lines_are_short());
        self.short_lines
    }

    /// [`Self::has_short_lines`], worked out.
    fn lines_are_short(&self) -> bool {
        let last_seq = self.first_seq + self.lines as u64 - 1;
        (self.line_bytes as usize) < ENTRY_CONTENT_MAX
            && self.literal.is_none()
            && !self.open
            // (No `u64` has more than 20 digits: no logarithm then, as in `append`;
            // callgrind seeds 100..119 4,457.3 M -> 4,454.8 M.)
            && (self.line_bytes >= 20 || decimal_digits(last_seq) <= self.line_bytes)
    }

    /// The last entry's timestamp: its line's, the burst's last line (a burst has a line,
    /// and every line an entry), without the divisions of [`Self::entry_ts`].
    pub(crate) fn last_ts(&self) -> UnixNanos {
        let last_ts = self.first_ts + (self.lines as i64 - 1) * self.ts_step;
        debug_assert_eq!(last_ts, self.entry_ts(self.entries() - 1));
        last_ts
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCursor {
    pub(crate) burst: usize,
    pub(crate) entry: u64,
}

/// Ordered by burst, then entry, as derived; written out so that `<`, `max` and `min`
/// compare the fields directly, not through an `Ordering` (cursors are compared at every
/// poll, render and hand-out; a derived `max` took ~19 instructions). Callgrind: seeds
/// 100..119 4,521.8 M -> 4,507.4 M, seed 19 862.7 M -> 859.5 M.
impl Ord for LogCursor {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.burst.cmp(&other.burst).then(self.entry.cmp(&other.entry))
    }

    #[inline]
    fn max(self, other: Self) -> Self {
        if other < self {
            self
        } else {
            other
        }
    }

    #[inline]
    fn min(self, other: Self) -> Self {
        if other < self {
            other
        } else {
            self
        }
    }
}

impl PartialOrd for LogCursor {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }

    #[inline]
    fn lt(&self, other: &Self) -> bool {
        self.burst < other.burst || (self.burst == other.burst && self.entry < other.entry)
    }

    #[inline]
    fn le(&self, other: &Self) -> bool {
        self.burst < other.burst || (self.burst == other.burst && self.entry <= other.entry)
    }

    #[inline]
    fn gt(&self, other: &Self) -> bool {
        other.lt(self)
    }

    #[inline]
    fn ge(&self, other: &Self) -> bool {
        other.le(self)
    }
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

impl Qualify {
    /// Whether a request's filters (`[stdout, stderr]`) filter a stream entry by entry
    /// ([`Qualify::Each`]: its log's host clock stepped back): only then can `since` skip
    /// lines past where a reader starts.
    pub(crate) fn any_each(qualify: &[Qualify; 2]) -> bool {
        qualify.iter().any(|qualify| matches!(qualify, Qualify::Each(_)))
    }
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
    /// Per burst (as `bursts`), how many bursts of each output stream come before it:
    /// where a cursor at that burst lies in `by_stream`, without a search
    /// ([`Self::stream_bursts_before`]).
    stream_bursts_before: Vec<[usize; 2]>,
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
    /// Whether a burst of an open line was ever appended (only a literal line's head
    /// is one): without one, no line is left open at a burst's end ([`Self::mid_line`]).
    any_open: bool,
    /// Per stream, the first line none of whose entries was deleted.
    retained_from: [u64; 2],
    /// Per stream, the lines of several entries (longer than one 16 KiB piece) a rotation
    /// cut, as (line, first entry of it kept): Docker still serves the rest, which a
    /// reader opened after the rotation takes for a line of its own (see
    /// [`Self::cut_line_fragment`]).
    cut_lines: [Vec<(u64, u64)>; 2],
    entries_total: u64,
    entries_deleted: u64,
    /// The furthest position whose frames some reader has been handed whole (reset when
    /// the agent crashes: what it had read is forgotten with it).
    read_frontier: LogCursor,
    /// Per stream, the lines the world deleted before any reader was handed them, as
    /// half-open sequence ranges in order, with their cause: the losses the oracle excuses.
    lost: [Vec<(u64, u64, LossCause)>; 2],
    /// Per stream, whether a range was pushed onto `lost` before a range it holds that
    /// starts later, since `lost` was last sorted ([`Self::push_lost`]): a sort of a list
    /// already sorted changes nothing, so the sorts skip it.
    lost_unsorted: [bool; 2],
    /// The sums [`Self::loss_totals`] gives, kept as ranges are pushed onto `lost` (the
    /// only way it grows; sorting moves nothing between causes): every report asks, and
    /// the liveness sample builds one per container each simulated minute (seed 85:
    /// 545.4 M instructions with a pass over the ranges per report, 543.1 M without).
    loss_totals: LossTotals,
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
    /// Empty lines written (see [`empty`]): counted here, as `SimDocker::containers`
    /// asks often (summing over the bursts there cost 1 % of seed 8's instructions).
    empty_lines: u64,
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

/// [`ContainerLog::loss_totals`]: per cause (`LossCause as usize`), per stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LossTotals {
    pub(crate) lines: [[u64; 2]; 4],
    pub(crate) ranges: [[u64; 2]; 4],
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
        // Room for the bursts of most logs from the start: a log grew its per-burst lists
        // from nothing by doubling, and a run creates a container per slot and per
        // replacement (seed 85: 4 k reallocations and their copies; callgrind
        // 366.2 M -> 365.9 M).
        const BURSTS: usize = 64;
        ContainerLog {
            tty,
            broken_merge,
            bursts: Vec::with_capacity(BURSTS),
            by_stream: [Vec::with_capacity(BURSTS), Vec::with_capacity(BURSTS / 4)],
            stream_bursts_before: Vec::with_capacity(BURSTS),
            last_ts_by_stream: [Vec::with_capacity(BURSTS), Vec::with_capacity(BURSTS / 4)],
            ..ContainerLog::default()
        }
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
        let first_ts = match self.last_ts[stream.index()] {
            Some(last) => ts.max(last - self.step_back[stream.index()]),
            None => ts,
        };
        let stream_max_ts = self.last_ts_by_stream[stream.index()].last().copied();
        let line_bytes = if empty::writes_empty_lines(first_seq, first_ts, ts_step, stream_max_ts) {
            self.empty_lines += lines as u64;
            0
        } else if line_bytes >= 20 {
            // No `u64` has more digits: no logarithm per burst (~40 instructions; callgrind
            // seeds 100..119 4,541.8 M -> 4,538.3 M).
            line_bytes
        } else {
            line_bytes.max(decimal_digits(last_seq))
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
            pad: content_pad(first_seq, self.tty),
            short_lines: false,
            per_line: 0,
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
        let burst = Burst {
            stream,
            first_seq,
            lines: 1,
            line_bytes,
            first_ts,
            ts_step: 0,
            literal: Some(content),
            open,
            pad: b'x',
            short_lines: false,
            per_line: 0,
        };
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

    fn push(&mut self, mut burst: Burst) {
        burst.per_line = u32::try_from(burst.worked_out_entries_per_line()).expect("at most u32::MAX / 16 KiB + 1");
        burst.short_lines = burst.lines_are_short();
        let stream = burst.stream;
        self.last_ts[stream.index()] = Some(burst.last_ts());
        // An open line is not written yet: the next burst continues it (same seq).
        self.next_seq[stream.index()] = burst.first_seq + u64::from(!burst.open) * burst.lines as u64;
        self.open_line[stream.index()] = burst.open;
        self.any_open |= burst.open;
        self.entries_total += burst.entries();
        self.stream_bursts_before.push([self.by_stream[0].len(), self.by_stream[1].len()]);
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
        let first = partition_point_near_end(&self.last_ts_by_stream[stream.index()], |&last_ts| last_ts < since);
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
            if let Some(cut) = self.cut_line(stream) {
                let cuts = &mut self.cut_lines[stream.index()];
                if cuts.last() != Some(&cut) {
                    cuts.push(cut);
                }
            }
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
        self.line_matches_near(stream, seq, leading_seq(content, seq), content, line_bytes_max, &mut 0)
    }

    /// [`Self::line_matches`], looking first at the burst `*near` (a position in the
    /// stream's bursts, updated to the one found) and the one after it: a batch holds
    /// runs of consecutive lines, so most lookups need no search. `seq_digits`: how many
    /// bytes `content` starts with that are `seq` in decimal, 0 if it does not start so
    /// ([`leading_seq`]; the oracle knows it from reading `seq`, so it is not read twice).
    pub(crate) fn line_matches_near(
        &self,
        stream: StdStream,
        seq: u64,
        seq_digits: usize,
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
            None if burst.is_empty_lines() => body.is_empty(),
            // `leading_seq(body, seq)` is `seq_digits` when that is within `body`, else 0.
            None if seq_digits == 0 || seq_digits > body.len() => false,
            None => pads_with(&body[seq_digits..], padding(burst.pad)),
        })
    }

    /// The burst at `near` (a position in `stream`'s bursts, as
    /// [`Self::line_matches_near`] leaves it) as a [`GeneratedRun`], if its lines are
    /// generated, not empty, and kept whole by `line_bytes_max`.
    pub(crate) fn generated_run(&self, stream: StdStream, near: usize, line_bytes_max: usize) -> Option<GeneratedRun> {
        let burst = &self.bursts[*self.by_stream[stream.index()].get(near)?];
        let line_bytes = burst.line_bytes as usize;
        (burst.literal.is_none() && line_bytes > 0 && line_bytes <= line_bytes_max).then(|| GeneratedRun {
            seqs: burst.first_seq..burst.first_seq + burst.lines as u64,
            line_bytes,
            pad: padding(burst.pad),
        })
    }

    /// Per stream, the sequence number of the first line whose first entry is at or
    /// after `start`.
    fn first_whole_line(&self, stream: StdStream) -> u64 {
        let indices = &self.by_stream[stream.index()];
        let first = self.stream_bursts_before(stream, self.start.burst);
        let Some(&index) = indices.get(first) else { return self.next_seq[stream.index()] };
        let burst = &self.bursts[index];
        let skip = if index == self.start.burst { self.start.entry } else { 0 };
        let per_line = burst.entries_per_line();
        // A burst continuing an open line whose head was deleted holds no whole line.
        let head_deleted = skip == 0 && first > 0 && self.bursts[indices[first - 1]].open;
        burst.first_seq + skip.div_ceil(per_line).max(u64::from(head_deleted))
    }

    /// The line of `stream` the log's first kept entry is in the middle of (a line of
    /// several entries whose first ones were deleted), and the first of its entries kept.
    fn cut_line(&self, stream: StdStream) -> Option<(u64, u64)> {
        let burst = self.bursts.get(self.start.burst).filter(|burst| burst.stream == stream)?;
        let per_line = burst.entries_per_line();
        let part = self.start.entry % per_line;
        (part != 0).then(|| (burst.first_seq + self.start.entry / per_line, part))
    }

    /// The line a rotation cut (see [`Self::cut_line`]) whose kept entries `content` is,
    /// as the agent's reader makes them one line (the truncation rule applied), if any:
    /// Docker serves what the rotation kept of it, and a reader cannot tell that from a
    /// whole line. The line itself is a loss the rotation named; this part is what the
    /// log still held of it.
    pub(crate) fn cut_line_fragment(&self, stream: StdStream, content: &[u8], line_bytes_max: usize) -> Option<u64> {
        let marker = engine::parse::assemble::TRUNCATION_MARKER;
        self.cut_lines[stream.index()].iter().rev().find_map(|&(seq, part)| {
            let indices = &self.by_stream[stream.index()];
            let at = indices.partition_point(|&index| self.bursts[index].first_seq <= seq).checked_sub(1)?;
            let burst = &self.bursts[indices[at]];
            // Its length first: most lines checked here are not it (only once the length
            // matches are its bytes rendered).
            let kept_len = burst.line_bytes as usize - part as usize * ENTRY_CONTENT_MAX;
            let len = if kept_len > line_bytes_max { line_bytes_max + marker.len() } else { kept_len };
            if len != content.len() {
                return None;
            }
            let per_line = burst.entries_per_line();
            let first_entry = (seq - burst.first_seq) * per_line;
            let mut kept = BytesMut::new();
            for entry in first_entry + part..first_entry + per_line {
                render::put_content_part(burst, entry, &mut kept);
            }
            if kept.len() > line_bytes_max {
                kept.truncate(line_bytes_max);
                kept.extend_from_slice(marker);
            }
            (kept[..] == *content).then_some(seq)
        })
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
}

#[cfg(test)]
mod tests {
    use super::{partition_point_near_end, ContainerLog, LogCursor, ReadRequest, StdStream};

    #[test]
    fn a_tail_reader_counts_past_the_first_timestamp_group_it_drops() {
        const SEC: i64 = 1_000_000_000;
        let mut log = ContainerLog::new(false, false);
        log.append(StdStream::Stdout, 5, 20, 10 * SEC, 1_000); // 0..5, 1 µs apart
        log.append(StdStream::Stdout, 4, 20, 11 * SEC, 0); // 5..9, one timestamp
        log.append(StdStream::Stderr, 3, 20, 12 * SEC, 1_000); // stderr 0..3
        log.append(StdStream::Stdout, 2, 20, 20 * SEC, 1_000); // 9..11, after the open
        let tail = |n: u64| log.seek(ReadRequest { since: None, tail: Some(n) }).cursor;
        // Tail 8 starts at stdout line 6, inside the group stamped 11 s: the agent drops
        // lines 6..9; stderr's first line is a group of one.
        assert_eq!(log.past_tail_cut_groups(tail(8), 15 * SEC), [9, 1]);
        // Tail 12 starts at stdout line 2, 1 µs from its neighbours: a group of one.
        assert_eq!(log.past_tail_cut_groups(tail(12), 15 * SEC), [3, 1]);
        // A first line stamped after the open is not dropped.
        assert_eq!(log.past_tail_cut_groups(tail(2), 15 * SEC), [9, 3]);
        assert_eq!(log.past_tail_cut_groups(tail(8), 10 * SEC), [6, 0]);
    }

    #[test]
    fn cursors_order_as_their_burst_then_entry() {
        let values = [0, 1, 2, usize::MAX];
        let cursors: Vec<LogCursor> = values
            .iter()
            .flat_map(|&burst| values.iter().map(move |&entry| LogCursor { burst, entry: entry as u64 }))
            .collect();
        for a in &cursors {
            for b in &cursors {
                let (ka, kb) = ((a.burst, a.entry), (b.burst, b.entry));
                assert_eq!(a.cmp(b), ka.cmp(&kb));
                assert_eq!(a.partial_cmp(b), ka.partial_cmp(&kb));
                assert_eq!((a < b, a <= b, a > b, a >= b), (ka < kb, ka <= kb, ka > kb, ka >= kb));
                assert_eq!(((*a).max(*b), (*a).min(*b)), {
                    let (max, min) = (ka.max(kb), ka.min(kb));
                    (LogCursor { burst: max.0, entry: max.1 }, LogCursor { burst: min.0, entry: min.1 })
                });
            }
        }
    }

    /// Docker's json-file rotation can cut a line of several 16 KiB entries: a reader
    /// opened after it is served the entries kept and takes them for a line. The model
    /// names the line lost to the rotation and knows exactly what it kept of it (the
    /// world's seed 7887: 88,055 bytes, the first four entries deleted).
    #[test]
    fn a_rotation_that_cuts_a_long_line_names_what_it_kept_of_it() {
        use engine::model::StdStream;
        use engine::parse::assemble::TRUNCATION_MARKER;

        use super::{ContainerLog, ENTRY_CONTENT_MAX};

        const SECOND: i64 = 1_000_000_000;
        let mut log = ContainerLog::new(false, false);
        log.append(StdStream::Stdout, 2, 20, 1_700_000_000 * SECOND, 1_000);
        // Line 2: three entries (16 KiB, 16 KiB, the rest).
        log.append(StdStream::Stdout, 1, 40_000, 1_700_000_001 * SECOND, 1_000);
        log.append(StdStream::Stderr, 1, 20, 1_700_000_002 * SECOND, 1_000);
        // Keeps the last three entries: line 2's last two and the stderr line.
        log.rotate(3);
        let pad = log.bursts[1].pad;
        let kept = vec![pad; 40_000 - ENTRY_CONTENT_MAX];
        assert_eq!(log.cut_line_fragment(StdStream::Stdout, &kept, 64 << 10), Some(2));
        assert_eq!(log.excused_through(StdStream::Stdout, 0), 3, "the cut line is the rotation's loss");
        // Nothing else is what the rotation kept: not less, not more, not on stderr.
        assert_eq!(log.cut_line_fragment(StdStream::Stdout, &kept[1..], 64 << 10), None);
        assert_eq!(log.cut_line_fragment(StdStream::Stdout, &[&kept[..], &[pad]].concat(), 64 << 10), None);
        assert_eq!(log.cut_line_fragment(StdStream::Stderr, &kept, 64 << 10), None);
        // Over `line_bytes_max`, it is what the reader makes of it: truncated, marked.
        let truncated = [&kept[..10_000], TRUNCATION_MARKER].concat();
        assert_eq!(log.cut_line_fragment(StdStream::Stdout, &truncated, 10_000), Some(2));
        assert_eq!(log.cut_line_fragment(StdStream::Stdout, &kept, 10_000), None);
        // A rotation that cuts no line names none.
        let mut whole = ContainerLog::new(false, false);
        whole.append(StdStream::Stdout, 1, 40_000, 1_700_000_001 * SECOND, 1_000);
        whole.append(StdStream::Stdout, 1, 20, 1_700_000_002 * SECOND, 1_000);
        whole.rotate(1);
        assert_eq!(whole.cut_line_fragment(StdStream::Stdout, &kept, 64 << 10), None);
    }

    #[test]
    fn the_search_from_the_end_finds_what_partition_point_finds() {
        for len in 0..40usize {
            let items: Vec<usize> = (0..len).collect();
            for boundary in 0..=len {
                let pred = |item: &usize| *item < boundary;
                assert_eq!(partition_point_near_end(&items, pred), items.partition_point(pred), "len={len}");
            }
        }
    }
}
