//! The host clock's steps back in one container's log (see the parent's "Host clock
//! steps"): the per-entry `since` filter they switch on, and the lines it skipped
//! that the world names lost to [`LossCause::ClockStep`].
//!
//! Owns nothing of its own: the methods of [`ContainerLog`] that only clock steps need.

use std::ops::Range;

use engine::model::StdStream;
use engine::rt::UnixNanos;

use super::{ContainerLog, LogCursor, LossCause, Qualify};

impl ContainerLog {
    /// The host clock stepped back by `back` nanoseconds: every stream's next burst may
    /// be stamped up to that much before its last line (see the module docs).
    pub(crate) fn clock_stepped_back(&mut self, back: i64) {
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            self.step_back[index] += back.max(0);
            self.stepped_from[index].get_or_insert(self.next_seq[index]);
        }
    }

    /// Whether the host clock stepped back while this container existed.
    pub(crate) fn stepped(&self) -> bool {
        self.stepped_from.iter().any(Option::is_some)
    }

    /// How many of the lines `seqs` of `stream` a range lost to `cause` names.
    pub(crate) fn lines_named(&self, stream: StdStream, seqs: Range<u64>, cause: LossCause) -> u64 {
        let mut covered: Vec<(u64, u64)> = self.lost[stream.index()]
            .iter()
            .filter(|(from, until, c)| *c == cause && *from < seqs.end && *until > seqs.start)
            .map(|(from, until, _)| ((*from).max(seqs.start), (*until).min(seqs.end)))
            .collect();
        covered.sort_unstable();
        let (mut count, mut reached) = (0, seqs.start);
        for (from, until) in covered {
            let from = from.max(reached);
            if from < until {
                count += until - from;
                reached = until;
            }
        }
        count
    }

    /// Record the lines `seqs` of `stream` as lost to `cause`, but those some range
    /// already names (each line is counted once). Returns how many it adds.
    pub(super) fn add_loss(&mut self, stream: StdStream, seqs: Range<u64>, cause: LossCause) -> u64 {
        let index = stream.index();
        let mut from = self.excused_through(stream, seqs.start);
        let mut added = 0;
        while from < seqs.end {
            let next_named = self.lost[index].iter().map(|(start, _, _)| *start).filter(|start| *start > from).min();
            let until = next_named.map_or(seqs.end, |start| start.min(seqs.end));
            self.push_lost(index, (from, until, cause));
            added += until - from;
            from = self.excused_through(stream, until);
        }
        self.sort_lost(index);
        added
    }

    /// A request made with `since` reads on after the host clock stepped back: its
    /// stepped streams filter each entry from now on ([`Qualify::Each`]). Exact: before
    /// the step the stream's entries behind its `From` position were all stamped before
    /// `since`.
    pub(crate) fn refresh_qualify(&self, qualify: &mut [Qualify; 2], since: Option<UnixNanos>) {
        let Some(since) = since else { return };
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            if self.stepped_from[stream.index()].is_some() {
                qualify[stream.index()] = Qualify::Each(since);
            }
        }
    }

    /// The whole lines of streams filtered per entry ([`Qualify::Each`]) among the
    /// entries `from..to` that `qualify` skipped, per burst in order: (burst, stream,
    /// lines). Never handed to the reader.
    ///
    /// Walks only the bursts of the filtered streams (through `by_stream`), and none
    /// when no stream is: `logs` asks this of the whole log before its start cursor at
    /// every open (seed 1: 86 M of 2,242 M instructions walking every burst before).
    pub(crate) fn since_skipped(
        &self,
        from: LogCursor,
        to: LogCursor,
        qualify: &[Qualify; 2],
    ) -> Vec<(usize, StdStream, Range<u64>)> {
        let mut skipped = Vec::new();
        if !Qualify::any_each(qualify) || self.near_bursts_skip_nothing((from, to), qualify) {
            return skipped;
        }
        let mut streams = 0;
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let Qualify::Each(since) = qualify[stream.index()] else { continue };
            let before = skipped.len();
            self.skipped_lines_of(stream, (from, to), since, 0, |burst, lines| skipped.push((burst, stream, lines)));
            streams += usize::from(skipped.len() > before);
        }
        if streams > 1 {
            // Both streams skipped lines: back to arrival order (bursts are distinct).
            skipped.sort_unstable_by_key(|(burst, _, _)| *burst);
        }
        skipped
    }

    /// Whether the entries `from..to` lie in a few bursts (a render's, mostly one or two)
    /// none of which a per-entry filter ([`Qualify::Each`]) skips an entry of: then
    /// [`Self::since_skipped`] and [`Self::record_since_skips`] find nothing there, and a
    /// look at those bursts says so without their searches by stream (a burst stamped
    /// from `since` on passes whole; an entry is skipped only in a burst that starts
    /// before it). `false` also when the range spans more bursts than are worth a look.
    ///
    /// Seed 85 (a clock step, so reopened readers filter per entry; 59 k calls at every
    /// render): 558.5 M instructions before, 545.4 M after (callgrind).
    fn near_bursts_skip_nothing(&self, (from, to): (LogCursor, LogCursor), qualify: &[Qualify; 2]) -> bool {
        const BURSTS_LOOKED_AT_MAX: usize = 8;
        let (first, end) = (from.burst, to.burst.saturating_add(1).min(self.bursts.len()));
        if end.saturating_sub(first) > BURSTS_LOOKED_AT_MAX {
            return false;
        }
        self.bursts.get(first..end).unwrap_or_default().iter().all(|burst| match qualify[burst.stream.index()] {
            Qualify::Each(since) => burst.first_ts >= since,
            Qualify::From(_) | Qualify::Since(_) => true,
        })
    }

    /// [`Self::since_skipped`] for one stream filtered with `since`, each (burst, lines)
    /// handed to `found` in order, leaving out bursts whose lines all come before line
    /// `above`.
    fn skipped_lines_of(
        &self,
        stream: StdStream,
        (from, to): (LogCursor, LogCursor),
        since: UnixNanos,
        above: u64,
        mut found: impl FnMut(usize, Range<u64>),
    ) {
        let to = to.min(self.end());
        let from = self.normalise(from.max(self.start));
        if from >= to {
            return;
        }
        let indices = &self.by_stream[stream.index()];
        let after_from = self.stream_bursts_before(stream, from.burst);
        let reaching_above = indices.partition_point(|&index| {
            let burst = &self.bursts[index];
            burst.first_seq + burst.lines as u64 <= above
        });
        for &index in &indices[after_from.max(reaching_above)..] {
            let start = if index == from.burst { from.entry } else { 0 };
            if (LogCursor { burst: index, entry: start }) >= to {
                break;
            }
            let burst = &self.bursts[index];
            let end = if index == to.burst { to.entry } else { burst.entries() };
            let passes_from = burst.first_entry_at_or_after(since).unwrap_or(burst.entries());
            let per_line = burst.entries_per_line();
            // Whole lines among the skipped entries `start..passes_from.min(end)`.
            let first = burst.first_seq + start.div_ceil(per_line);
            let until = burst.first_seq + passes_from.min(end) / per_line;
            if first < until {
                found(index, first..until);
            }
        }
    }

    /// A reader passed over the entries `from..to` with the filters `qualify`: the lines
    /// of a stepped stream ([`Qualify::Each`]) that the filter skipped, written after the
    /// first clock step and not handed to any reader, are lost to [`LossCause::ClockStep`].
    /// Returns how many it adds.
    ///
    /// Per stream, only lines from `floor` on (written after the step, not read) can
    /// be added, so the walk starts at the burst holding `floor` when the lost ranges
    /// are sorted: a range below it would only have sorted them. `logs` asks this of the
    /// whole log before its start at every open (seed 2, with clock steps: 419 M of
    /// 1,448 M instructions walking, sorting and searching for every burst of the log).
    ///
    /// The cheap refusals are inlined into the callers (every open and every render asks),
    /// the walk is not: a call of the whole function only to return cost seed 3 2 M of
    /// 456 M instructions (seed 2 0.3 M, seed 19 4 M).
    #[inline]
    pub(crate) fn record_since_skips(&mut self, from: LogCursor, to: LogCursor, qualify: &[Qualify; 2]) -> u64 {
        // A reader that passed over nothing (most polls of a following stream find no
        // new entry) skipped nothing: no search for its floor (seed 85: 51 k calls,
        // 19 M of 626 M instructions before, 5 M fewer after). Nor did one that filters
        // no stream per entry, as on logs the host clock never stepped back (every
        // `logs` and render of seed 19: 1,095.9 M → 1,092.3 M instructions; seed 85
        // 443.8 M → 443.4 M).
        if from >= to || !Qualify::any_each(qualify) {
            return 0;
        }
        self.record_stepped_skips(from, to, qualify)
    }

    /// [`Self::record_since_skips`] past its refusals.
    #[inline(never)]
    fn record_stepped_skips(&mut self, from: LogCursor, to: LogCursor, qualify: &[Qualify; 2]) -> u64 {
        // Every line of a burst before the read frontier's is complete before it, so
        // below every stream's floor: when the lost ranges are sorted (else a walk over
        // them sorts them, which must not be skipped) nothing there is added, and the
        // look starts at the frontier. `logs` asks from the log's start at every open.
        let frontier = LogCursor { burst: self.read_frontier.max(self.start).burst, entry: 0 };
        let from = if self.lost_unsorted.contains(&true) { from } else { from.max(frontier) };
        if from >= to || self.near_bursts_skip_nothing((from, to), qualify) {
            return 0;
        }
        let mut total = 0;
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            let Qualify::Each(since) = qualify[index] else { continue };
            let Some(stepped_from) = self.stepped_from[index] else { continue };
            let floor = stepped_from.max(self.first_unread_line(stream));
            let above = if self.lost_unsorted[index] { 0 } else { floor };
            let mut skipped = Vec::new();
            self.skipped_lines_of(stream, (from, to), since, above, |burst, lines| skipped.push((burst, lines)));
            for (burst, lines) in skipped {
                if self.bursts[burst].open {
                    continue;
                }
                let first = lines.start.max(floor);
                if first < lines.end {
                    total += self.add_loss(stream, first..lines.end, LossCause::ClockStep);
                } else {
                    // All that adding nothing would do.
                    self.sort_lost(index);
                }
            }
        }
        total
    }
}
