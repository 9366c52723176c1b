//! The world's own count of the bytes the agent holds: what the log streams handed it
//! and nothing has settled yet, checked against `queue_bytes_max` at every chunk handed.
//!
//! Owns: per container log and output stream, the line ranges counted as handed to the
//! running agent and not settled, their weight, the bytes rendered but not handed, and
//! per open stream the slack the agent may hold uncharged.
//!
//! ## Definition
//! - **Handed**: a line is counted once its last entry is rendered for a reader of the
//!   running agent (the bytes rendered and not yet handed out, `pending`, are subtracted
//!   back), weighing [`LINE_FRAME_BYTES`](super::log::LINE_FRAME_BYTES) plus its content up to `content_cap` (the
//!   agent's `line_bytes_max` plus the truncation marker: the rest a reader discards at
//!   once, counted as truncated). A line already counted for this agent is not counted
//!   again, nor is one Loki has already answered (in any incarnation of the agent): a
//!   reopen's replay, and a restart's, is skipped (settled) as it is handed. Nor is the
//!   first timestamp group a `tail` open hands, which the agent drops unread
//!   (`ContainerLog::past_tail_cut_groups`).
//! - **Settled**: when Loki answers a line (stores it, or refuses it with a count), every
//!   counted line of that stream up to it is settled: the pipeline is FIFO per source, so
//!   lines before it were stored, refused or dropped by the agent with a counted reason.
//!   A crash or stop settles everything (what the agent held is gone with it).
//! - **Slack**, per open stream: the bytes it handed since it last handed a chunk that
//!   ended at a line boundary (the chunk the agent is parsing or waiting to queue, plus
//!   the partial frames and lines its reader holds). At most one model chunk, unless a
//!   line spans chunks.
//!
//! Promise checked: `handed − settled ≤ queue_bytes_max + Σ slack` every time a stream
//! hands a chunk (not during a graceful shutdown: see [`Unsettled::stopping`]). The agent charges each line its content plus 128 bytes, more than
//! [`LINE_FRAME_BYTES`](super::log::LINE_FRAME_BYTES), so the bound holds with room for a correct agent, and an agent
//! that charged content alone would hold nine times its budget of short lines.

use std::ops::Range;

use engine::model::StdStream;

use super::log::{ContainerLog, LogCursor};

#[derive(Default)]
struct Counted {
    /// Per output stream: ranges of sequence numbers counted and not settled, in order.
    ranges: [Vec<Range<u64>>; 2],
    /// Per output stream: every line before this one was counted for this agent.
    through: [u64; 2],
}

/// One open stream's slack, held by its reader: nothing but the sum of all of them is
/// read here, so it needs no table by stream id (an insert at a stream's first chunk, a
/// lookup per chunk, a removal per close; a search at the close of a stream that never
/// handed a chunk). Callgrind: seed 2 433.3 M → 429.9 M instructions, seed 3 473.7 M →
/// 469.9 M, seed 19 870.0 M → 864.6 M.
#[derive(Default)]
pub(crate) struct Slack {
    bytes: u64,
    /// The last chunk ended at a line boundary: the next one starts the slack afresh.
    at_boundary: bool,
}

#[derive(Default)]
pub(crate) struct Unsettled {
    /// `queue_bytes_max` of the running agent; `None`: nothing checked.
    limit: Option<u64>,
    content_cap: u64,
    /// By log serial (a log never counted has a default entry, which counts nothing):
    /// a `Vec`, not a `BTreeMap`, as both are looked up at every render and every
    /// stream Loki answers (seed 19: 1,329.6 M instructions before, 1,317.8 M after;
    /// seed 85: 534.7 M, 529.2 M).
    counted: Vec<Counted>,
    /// Per log (by serial) and output stream, every line before this one was answered
    /// by Loki (in any incarnation): a reader handed it again holds a replay it skips.
    answered: Vec<[u64; 2]>,
    counted_bytes: u64,
    /// Rendered for a reader, not handed out yet (every open stream).
    pending_bytes: u64,
    /// The sum of the open streams' [`Slack`].
    slack_bytes: u64,
    /// The highest `handed − settled` seen at a hand-out.
    pub(crate) max_seen: u64,
    pub(crate) violation: Option<String>,
    /// The agent is shutting down: not checked until it is gone ([`Self::forget`]).
    stopping: bool,
}

impl Unsettled {
    pub(crate) fn set_bound(&mut self, queue_bytes_max: u64, content_cap: u64) {
        self.limit = Some(queue_bytes_max);
        self.content_cap = content_cap;
    }

    /// The first line per stream a stream opened at `cursor` (with its `since` filter
    /// already resolved to `from` per stream) can count.
    pub(crate) fn start_lines(log: &ContainerLog, from: [LogCursor; 2]) -> [u64; 2] {
        [log.lines_before(StdStream::Stdout, from[0]), log.lines_before(StdStream::Stderr, from[1])]
    }

    /// Every line of log `serial` before `lines` (per stream) counts as counted for this
    /// agent: a `tail` reader's first timestamp group, which the agent drops unread, and
    /// the lines before its window, which a later replay hands again and the agent skips
    /// as at or before that group's key. Without it a reopen's replay counted them anew
    /// (seed 89064: 1,554 lines of a job's log, never to settle).
    pub(crate) fn count_as_counted(&mut self, serial: usize, lines: [u64; 2]) {
        if self.counted.len() <= serial {
            self.counted.resize_with(serial + 1, Counted::default);
        }
        let through = &mut self.counted[serial].through;
        for (through, lines) in through.iter_mut().zip(lines) {
            *through = (*through).max(lines);
        }
    }

    /// A reader of log `serial`, counting from `start` on, rendered from `from_cursor` (where
    /// its cursor was) up to `cursor`, `pending` bytes more than before. Lines rotation
    /// deleted before `from_cursor` was reached were never handed: not counted. Nor are the
    /// lines its request's `since` skipped after a host clock step (`skipped`, per
    /// stream in order, from [`ContainerLog::since_skipped`]): the agent never sees them,
    /// so nothing it holds can settle them, and they would stay unsettled until Loki
    /// answers a later line of their stream (a flood stamped before the step, skipped
    /// during a Loki outage, held the bound of seeds 1183, 2072, 2573 past its budget).
    /// Counting stops at `cursor` all the same: a later reader whose `since` lets them
    /// through does not count them (under-counted: the safe side).
    pub(crate) fn rendered(
        &mut self,
        log: &ContainerLog,
        serial: usize,
        start: [u64; 2],
        (from_cursor, cursor): (LogCursor, LogCursor),
        pending: u64,
        skipped: &[(StdStream, Range<u64>)],
    ) {
        self.pending_bytes += pending;
        if self.limit.is_none() {
            return;
        }
        if self.counted.len() <= serial {
            self.counted.resize_with(serial + 1, Counted::default);
        }
        let counted = &mut self.counted[serial];
        let answered = self.answered.get(serial).copied().unwrap_or_default();
        // Both streams' at once (one look-up; callgrind: seed 19 841.27 M -> 840.45 M).
        let nexts = log.lines_before_both(cursor);
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            let next = nexts[index];
            // A replay of lines already counted or answered (most renders of a reopened
            // stream) counts nothing, whatever line it rendered first: asked first, it
            // spares the search for that line (callgrind: seed 85 443.3 M → 442.4 M
            // instructions, seed 19 1,090.8 M → 1,086.4 M).
            let from = start[index].max(counted.through[index]).max(answered[index]);
            if next <= from {
                continue;
            }
            let from = from.max(log.lines_before(stream, from_cursor.max(log.first_kept())));
            if next <= from {
                continue;
            }
            counted.through[index] = next;
            // The lines handed: `from..next` but the skipped ones, counted in order as
            // they are found (not gathered in a `Vec` first: an allocation per render).
            let (counted_bytes, content_cap) = (&mut self.counted_bytes, self.content_cap);
            let mut count = |lines: Range<u64>| {
                if lines.is_empty() {
                    return;
                }
                *counted_bytes += log.lines_cost(stream, lines.clone(), content_cap);
                match counted.ranges[index].last_mut() {
                    Some(last) if last.end == lines.start => last.end = lines.end,
                    _ => counted.ranges[index].push(lines),
                }
            };
            let mut at = from;
            for lines in skipped.iter().filter(|(of, _)| *of == stream).map(|(_, lines)| lines) {
                let (start, end) = (lines.start.max(at), lines.end.min(next));
                if start < end {
                    count(at..start);
                    at = end;
                }
            }
            count(at..next);
        }
    }

    /// The stream whose slack is `slack` handed `len` bytes (and dropped `discarded`
    /// more it had rendered); `at_boundary`: it has handed out everything rendered and
    /// the reader holds no partial line. Checks the bound.
    pub(crate) fn handed(&mut self, slack: &mut Slack, len: u64, discarded: u64, at_boundary: bool) {
        self.pending_bytes -= len + discarded;
        let before = slack.bytes;
        slack.bytes = if slack.at_boundary { len } else { slack.bytes + len };
        slack.at_boundary = at_boundary;
        self.slack_bytes = self.slack_bytes - before + slack.bytes;
        let Some(limit) = self.limit.filter(|_| !self.stopping) else { return };
        let unsettled = self.counted_bytes.saturating_sub(self.pending_bytes);
        self.max_seen = self.max_seen.max(unsettled);
        if unsettled > limit + self.slack_bytes && self.violation.is_none() {
            let mut held: Vec<(usize, usize, Range<u64>)> = self
                .counted
                .iter()
                .enumerate()
                .flat_map(|(serial, counted)| {
                    counted.ranges.iter().enumerate().flat_map(move |(stream, ranges)| {
                        ranges.iter().map(move |range| (serial, stream, range.clone()))
                    })
                })
                .collect();
            held.sort_by_key(|(_, _, range)| std::cmp::Reverse(range.end - range.start));
            held.truncate(3);
            self.violation = Some(format!(
                "the agent holds {unsettled} bytes the world handed it and nothing settled \
                 (lines stored or refused by Loki, or before them), queue_bytes_max is {limit}, \
                 slack of the open streams {}; longest unsettled (log, stream, lines): {held:?}",
                self.slack_bytes
            ));
        }
    }

    /// A reader dropped what it had rendered without handing it all out: the lines of
    /// log `serial` from `back` on (per stream: the first of its last render) are not
    /// counted any more (the part it did hand out is under-counted: the safe side).
    pub(crate) fn uncount(&mut self, log: &ContainerLog, serial: usize, back: [u64; 2]) {
        let Some(counted) = self.counted.get_mut(serial) else { return };
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let (index, back) = (stream.index(), back[stream.index()]);
            let ranges = &mut counted.ranges[index];
            while let Some(last) = ranges.last_mut() {
                if last.end <= back {
                    break;
                }
                let from = last.start.max(back);
                self.counted_bytes -= log.lines_cost(stream, from..last.end, self.content_cap);
                if from > last.start {
                    last.end = from;
                    break;
                }
                ranges.pop();
            }
            counted.through[index] = counted.through[index].min(back);
        }
    }

    /// The stream whose slack is `slack` is gone with `pending` bytes rendered and
    /// never handed.
    pub(crate) fn closed(&mut self, slack: &Slack, pending: u64) {
        self.pending_bytes -= pending;
        self.slack_bytes -= slack.bytes;
    }

    /// Loki answered the lines of `stream` of log `serial` before `through`.
    pub(crate) fn settle(&mut self, log: &ContainerLog, serial: usize, stream: StdStream, through: u64) {
        if self.answered.len() <= serial {
            self.answered.resize(serial + 1, [0; 2]);
        }
        let answered = &mut self.answered[serial][stream.index()];
        *answered = (*answered).max(through);
        let Some(counted) = self.counted.get_mut(serial) else { return };
        let ranges = &mut counted.ranges[stream.index()];
        let mut settled = 0;
        for range in ranges.iter_mut() {
            if range.start >= through {
                break;
            }
            let until = range.end.min(through);
            self.counted_bytes -= log.lines_cost(stream, range.start..until, self.content_cap);
            if until < range.end {
                range.start = until;
                break;
            }
            settled += 1;
        }
        ranges.drain(..settled);
    }

    /// Handed and not settled now, and the open streams' slack.
    pub(crate) fn now(&self) -> (u64, u64) {
        (self.counted_bytes.saturating_sub(self.pending_bytes), self.slack_bytes)
    }

    /// The agent begins a graceful shutdown: it cancels its readers, some in the middle
    /// of queueing a chunk's lines, which it then drops unqueued (the shutdown report
    /// counts what it abandons); their streams' slack goes with them, so the bound is not
    /// checked until the agent is gone.
    pub(crate) fn stopping(&mut self) {
        self.stopping = true;
    }

    /// The agent is gone: nothing it held is unsettled any more.
    pub(crate) fn forget(&mut self) {
        self.counted.clear();
        self.counted_bytes = 0;
        self.stopping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::docker::log::{Qualify, LINE_FRAME_BYTES};

    /// A log of `bursts` × 10 stdout lines of 5 content bytes (45 bytes each as frames).
    fn log(bursts: usize) -> (ContainerLog, Vec<LogCursor>) {
        let mut log = ContainerLog::new(false, false);
        let mut ends = vec![LogCursor::default()];
        for burst in 0..bursts {
            log.append(StdStream::Stdout, 10, 5, 1_000 * burst as i64, 1);
            ends.push(log.end());
        }
        (log, ends)
    }

    fn unsettled(limit: u64) -> Unsettled {
        let mut unsettled = Unsettled::default();
        unsettled.set_bound(limit, 1_000);
        unsettled
    }

    #[test]
    fn lines_count_once_handed_and_leave_once_loki_answers_them() {
        let (log, ends) = log(2);
        assert_eq!(log.lines_cost(StdStream::Stdout, 0..10, 1_000), 10 * (LINE_FRAME_BYTES + 5));
        let mut count = unsettled(500);
        let mut slack: [Slack; 10] = Default::default();
        count.rendered(&log, 0, [0, 0], (ends[0], ends[1]), 450, &[]);
        assert_eq!(count.now().0, 0, "rendered, not handed");
        count.handed(&mut slack[7], 400, 0, false);
        assert_eq!(count.now(), (400, 400));
        count.handed(&mut slack[7], 50, 0, true);
        assert_eq!(count.now(), (450, 450));
        count.settle(&log, 0, StdStream::Stdout, 4);
        assert_eq!(count.now().0, 450 - 4 * 45);
        // A replay of lines Loki answered is not counted again.
        count.settle(&log, 0, StdStream::Stdout, 10);
        count.rendered(&log, 0, [0, 0], (ends[0], ends[1]), 450, &[]);
        count.handed(&mut slack[8], 450, 0, true);
        assert_eq!(count.now().0, 0);
        assert!(count.violation.is_none());
    }

    #[test]
    fn more_than_the_bound_and_the_open_streams_slack_is_a_violation() {
        let (log, ends) = log(3);
        let mut count = unsettled(500);
        let mut slack: [Slack; 10] = Default::default();
        count.rendered(&log, 0, [0, 0], (ends[0], ends[1]), 450, &[]);
        count.handed(&mut slack[7], 450, 0, true);
        count.rendered(&log, 0, [0, 0], (ends[1], ends[2]), 450, &[]);
        count.handed(&mut slack[7], 450, 0, true);
        assert!(count.violation.is_none(), "900 ≤ 500 + the 450 of the last chunk");
        count.rendered(&log, 0, [0, 0], (ends[2], ends[3]), 450, &[]);
        count.handed(&mut slack[7], 450, 0, true);
        let violation = count.violation.clone().expect("1350 > 500 + 450");
        assert!(violation.contains("1350 bytes"), "{violation}");
    }

    #[test]
    fn a_stream_dropped_with_frames_unhanded_uncounts_them_and_a_crash_forgets_all() {
        let (log, ends) = log(1);
        let mut count = unsettled(500);
        let mut slack: [Slack; 10] = Default::default();
        count.rendered(&log, 0, [0, 0], (ends[0], ends[1]), 450, &[]);
        count.handed(&mut slack[7], 90, 0, false);
        count.uncount(&log, 0, [0, 0]);
        count.closed(&slack[7], 360);
        assert_eq!(count.now(), (0, 0), "the two lines handed are under-counted: the safe side");
        count.rendered(&log, 0, [0, 0], (ends[0], ends[1]), 450, &[]);
        count.handed(&mut slack[9], 450, 0, true);
        assert_eq!(count.now().0, 450);
        count.forget();
        assert_eq!(count.now().0, 0);
    }

    #[test]
    fn lines_a_since_filter_skips_after_a_clock_step_are_not_counted() {
        // Three bursts of ten lines; the host clock steps back before the second, which
        // is stamped before the third's request `since`, and passes no line.
        let mut log = ContainerLog::new(false, false);
        log.append(StdStream::Stdout, 10, 5, 1_000, 1);
        log.clock_stepped_back(900);
        log.append(StdStream::Stdout, 10, 5, 100, 1);
        log.append(StdStream::Stdout, 10, 5, 2_000, 1);
        let mut qualify = [Qualify::Each(1_500), Qualify::Each(1_500)];
        log.refresh_qualify(&mut qualify, Some(1_500));
        let (from, to) = (LogCursor::default(), log.end());
        let skipped: Vec<_> =
            log.since_skipped(from, to, &qualify).into_iter().map(|(_, stream, lines)| (stream, lines)).collect();
        assert_eq!(skipped, vec![(StdStream::Stdout, 0..10), (StdStream::Stdout, 10..20)]);
        let mut count = unsettled(500);
        let mut slack: [Slack; 10] = Default::default();
        count.rendered(&log, 0, [0, 0], (from, to), 450, &skipped);
        count.handed(&mut slack[7], 450, 0, true);
        assert_eq!(count.now().0, 10 * 45, "only the ten lines that passed");
        // Loki answers the last line: nothing is left, the skipped lines were never held.
        count.settle(&log, 0, StdStream::Stdout, 30);
        assert_eq!(count.now().0, 0);
        assert!(count.violation.is_none());
    }
}
