//! Empty lines: bursts whose every line is only a newline (`"\n"`; `"\r\n"` in a TTY
//! container), and how the oracle tells them apart without a number in them.
//!
//! Owns: which bursts the world writes empty ([`writes_empty_lines`]) and the lookup of
//! an empty line by its timestamp ([`ContainerLog::empty_line_at`]).
//!
//! ## What Docker and Loki do with one
//! json-file keeps an empty line as `{"log":"\n",...}` and a follow request hands it as
//! `TIMESTAMP SP \n` (a TTY: `TIMESTAMP SP \r\n`); the agent ships it as an empty line.
//! Loki stores it: the distributor's `Validator.ValidateEntry`
//! (grafana/loki `pkg/distributor/validator.go`) checks only age, future, line size and
//! structured metadata, never emptiness. The one thing Loki does drop is an entry equal
//! in timestamp *and* content to one it holds (`stream.validateEntries` in
//! `pkg/ingester/stream.go`, "If this entry matches our last appended line's timestamp
//! and contents, ignore it", and the unordered head block's duplicate check): two empty
//! lines of a stream stamped alike would be one line in a real Loki. The world never
//! writes such a pair (see [`writes_empty_lines`]), so the Loki model, which stores
//! every accepted entry, needs no rule for it.
//!
//! ## Identity
//! Every empty line of a stream is stamped after every earlier line of that stream and
//! before every later empty one, so its timestamp names it: the oracle finds its
//! sequence number from the timestamp Loki stored ([`ContainerLog::empty_line_at`]),
//! then checks it like any numbered line (next new one, excused gap, or allowed
//! duplicate; and that the line with that number IS empty). A line shipped with another
//! timestamp names no empty line, or another one, and fails.

use engine::model::StdStream;
use engine::rt::UnixNanos;

use super::{Burst, ContainerLog};

/// One burst in this many (by first sequence number) is written empty, when it may be:
/// a few hundred empty lines on a default seed (see the sweep report).
const EMPTY_BURST_EVERY: u64 = 97;

/// Whether a generated burst whose first line is `first_seq`, stamped from `first_ts`
/// `ts_step` apart, is written as empty lines. Drawn from the first sequence number like
/// the padding (no random stream moves), and only where its timestamps name its lines:
/// distinct (`ts_step > 0`) and after every line the stream has (`stream_max_ts`, the
/// running maximum, so also after a host clock step back). Hence no two empty lines of
/// a stream share a timestamp, which a real Loki would keep only once.
pub(super) fn writes_empty_lines(
    first_seq: u64,
    first_ts: UnixNanos,
    ts_step: i64,
    stream_max_ts: Option<UnixNanos>,
) -> bool {
    first_seq % EMPTY_BURST_EVERY == EMPTY_BURST_EVERY - 1
        && ts_step > 0
        && stream_max_ts.is_none_or(|max| first_ts > max)
}

impl Burst {
    /// Generated lines with no content: every line is only its newline.
    pub(crate) fn is_empty_lines(&self) -> bool {
        self.literal.is_none() && self.line_bytes == 0
    }
}

impl ContainerLog {
    /// The sequence number of the empty line of `stream` stamped `ts`, if the world
    /// wrote one (deleted or not). One binary search on the stream's running maximum of
    /// timestamps: an empty burst starts after every earlier entry of its stream, so the
    /// first burst whose running maximum reaches `ts` is the one that holds it.
    pub(crate) fn empty_line_at(&self, stream: StdStream, ts: UnixNanos) -> Option<u64> {
        let at = self.last_ts_by_stream[stream.index()].partition_point(|&last_ts| last_ts < ts);
        let burst = &self.bursts[*self.by_stream[stream.index()].get(at)?];
        if !burst.is_empty_lines() || ts < burst.first_ts || burst.ts_step <= 0 {
            return None;
        }
        let offset = ts - burst.first_ts;
        let line = (offset / burst.ts_step) as u64;
        (offset % burst.ts_step == 0 && line < burst.lines as u64).then_some(burst.first_seq + line)
    }

    /// Empty lines written (both streams, deleted ones included), for the report.
    pub(crate) fn empty_lines_written(&self) -> u64 {
        self.empty_lines
    }
}
