//! A log's account of what readers were handed, and of what the world deleted before any
//! reader had it: the read frontier, the gaps a reader could notice, the named losses
//! (json-file rotation, `docker rm`, first sight, clock steps) the oracle excuses.

use super::*;

impl ContainerLog {
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
        // Stored only when it moves, not `max` and a store every time: at every chunk
        // handed (callgrind: seed 19 845.74 M -> 845.31 M).
        if self.read_frontier < cursor {
            self.read_frontier = cursor;
        }
        let befores = self.lines_before_both(cursor);
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            let before = befores[index];
            // Lines before the cursor that rotation deleted were not handed: a cursor that
            // only passed their place (a render of the other stream's lines up to the
            // stream's first kept line) handed nothing of this stream (seed 424).
            if before <= self.retained_from[index] {
                continue;
            }
            // Handed a line of the stream it had not had (any line after a deletion is).
            // (`before` is at least 1 here.) The key is stored only when it moves, and
            // whether it moved is that test, not a comparison of the `Option`s before and
            // after (callgrind: seed 3 372.14 M -> 371.62 M, seed 19 845.31 M -> 843.03 M).
            let last = before - 1;
            let moved = self.handed_key[index].is_none_or(|key| key < last);
            if moved {
                self.handed_key[index] = Some(last);
            }
            if moved && !reader.tail {
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
            // A line stamped before the resume line (the host clock stepped back between
            // them) is taken by the reader for one of the replay: it notices the gap at
            // the first line stamped after its resume line, not before (seed 34291: a
            // resume line at 13,729.5 s deleted, the replay from `since` 13,727 s handed
            // lines stamped 13,727..13,729 s after it, which the agent skipped).
            if self.line_ts(stream, last).is_some_and(|ts| ts < key.ts) {
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

    /// A request with `since` opened on a log whose host clock stepped back: per stream, if
    /// the log still holds a line before the last one handed (the agent's resume line;
    /// after a crash, the committed one) stamped after it and at or after `since`, the
    /// replay hands it before the resume line, and the agent, which cannot tell that from
    /// a resume line deleted by rotation, may count a gap (seeds 1197, 2472: a tail open
    /// after the step, then a rotation's reopen). One more gap it may notice, not one it
    /// must.
    pub(crate) fn note_stepped_replay(&mut self, since: Option<UnixNanos>) {
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            if self.stepped_from[index].is_none() {
                continue;
            }
            let Some(resume) = self.handed_key[index] else { continue };
            let Some(resume_ts) = self.line_ts(stream, resume) else { continue };
            // The bursts all before the resume line, and the latest time they reach: a
            // replay finds none stamped later unless it is later (one search instead of a
            // walk over the stream's bursts at every open; seed 85, 7.5 k opens: 543.1 M
            // instructions before, 534.7 M after, with `Burst::last_ts` undivided).
            let indices = &self.by_stream[index];
            let before_resume = partition_point_near_end(indices, |&burst| {
                let burst = &self.bursts[burst];
                burst.first_seq + u64::from(burst.lines) <= resume
            });
            let latest = before_resume.checked_sub(1).map(|at| self.last_ts_by_stream[index][at]);
            if latest.is_none_or(|latest| latest <= resume_ts || since.is_some_and(|since| latest < since)) {
                continue;
            }
            let earlier_stamped_later = self.by_stream[index]
                .iter()
                .filter(|&&burst| burst >= self.start.burst)
                .map(|&burst| &self.bursts[burst])
                .take_while(|burst| burst.first_seq + u64::from(burst.lines) <= resume)
                .any(|burst| burst.last_ts() > resume_ts && since.is_none_or(|since| burst.last_ts() >= since));
            if earlier_stamped_later {
                self.gaps_possible[index] += 1;
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
    pub(super) fn line_ts(&self, stream: StdStream, seq: u64) -> Option<UnixNanos> {
        let indices = &self.by_stream[stream.index()];
        let after = partition_point_near_end(indices, |&index| self.bursts[index].first_seq <= seq);
        let burst = &self.bursts[*indices.get(after.checked_sub(1)?)?];
        let line = seq.checked_sub(burst.first_seq)?;
        (line < burst.lines as u64).then(|| burst.first_ts + line as i64 * burst.ts_step)
    }

    /// The reader that had read this log is gone (the agent crashed): nothing counts as
    /// read any more.
    pub(crate) fn forget_reads(&mut self) {
        self.read_frontier = self.start.max(self.unread_floor);
    }

    /// How many of `stream`'s bursts come before burst `burst` (all of them at the end
    /// of the log): kept per burst, where a binary search over the stream's bursts was
    /// (`lines_before` and `mid_line`, several times per render and chunk; seed 19:
    /// 1,317.8 M instructions before, 1,310.1 M after; seed 85: 529.2 M, 527.2 M).
    pub(crate) fn stream_bursts_before(&self, stream: StdStream, burst: usize) -> usize {
        let before = match self.stream_bursts_before.get(burst) {
            Some(counts) => counts[stream.index()],
            None => self.by_stream[stream.index()].len(),
        };
        debug_assert_eq!(before, self.by_stream[stream.index()].partition_point(|&index| index < burst));
        before
    }

    /// Lines of `stream` complete before `cursor`: the sequence number of the first one
    /// a reader at `cursor` has not been handed whole (the world's account of what a
    /// reader holds, [`super::unsettled`]).
    pub(crate) fn lines_before(&self, stream: StdStream, cursor: LogCursor) -> u64 {
        let indices = &self.by_stream[stream.index()];
        let next = self.stream_bursts_before(stream, cursor.burst);
        match indices.get(next) {
            Some(&index) if index == cursor.burst => {
                let burst = &self.bursts[index];
                burst.first_seq + cursor.entry / burst.entries_per_line()
            }
            Some(&index) => self.bursts[index].first_seq,
            None => self.next_seq[stream.index()],
        }
    }

    /// Per stream, the first line past the group a reader opened with `tail` at
    /// `cursor` skips: the agent's reader cannot tell whether the tail cut its first
    /// timestamp group, so it drops the lines stamped as the first one it is handed, if
    /// that one is stamped at or before the open (`opened_at`, the host clock then):
    /// `LogReader::cut_after_tail`. Those lines are a first-sight loss, never queued, so
    /// the world's account of what the agent holds must not count them either (seed 340,
    /// with holders yielding later: 221 such lines, 27 KB, counted as held during a Loki
    /// outage that kept them from settling, broke the bound by 920 bytes). Only the
    /// group's lines in the first burst are found (lines of one timestamp are one burst
    /// but for a burst written at the same nanosecond as the last: under-counted, the
    /// safe side of the bound).
    pub(crate) fn past_tail_cut_groups(&self, cursor: LogCursor, opened_at: UnixNanos) -> [u64; 2] {
        [StdStream::Stdout, StdStream::Stderr].map(|stream| {
            let first = self.lines_before(stream, cursor);
            let next = self.stream_bursts_before(stream, cursor.burst);
            let Some(&index) = self.by_stream[stream.index()].get(next) else { return first };
            let burst = &self.bursts[index];
            let line = first - burst.first_seq;
            let ts = burst.first_ts + line as i64 * burst.ts_step;
            if line >= u64::from(burst.lines) || ts > opened_at {
                return first;
            }
            if burst.ts_step == 0 {
                burst.first_seq + u64::from(burst.lines)
            } else {
                first + 1
            }
        })
    }

    /// [`Self::lines_before`] of both streams (`[stdout, stderr]`), with one look-up of
    /// the bursts of each before the cursor's (at every chunk handed, `mark_read_by`; callgrind: seed 19 843.03 M -> 842.47 M).
    pub(crate) fn lines_before_both(&self, cursor: LogCursor) -> [u64; 2] {
        let counts = match self.stream_bursts_before.get(cursor.burst) {
            Some(counts) => *counts,
            None => [self.by_stream[0].len(), self.by_stream[1].len()],
        };
        let of = |index: usize| match self.by_stream[index].get(counts[index]) {
            Some(&burst) if burst == cursor.burst => {
                let burst = &self.bursts[burst];
                burst.first_seq + cursor.entry / burst.entries_per_line()
            }
            Some(&burst) => self.bursts[burst].first_seq,
            None => self.next_seq[index],
        };
        let both = [of(0), of(1)];
        debug_assert_eq!(
            both,
            [self.lines_before(StdStream::Stdout, cursor), self.lines_before(StdStream::Stderr, cursor)]
        );
        both
    }

    /// The first entry not deleted by rotation.
    pub(crate) fn first_kept(&self) -> LogCursor {
        self.start
    }

    /// Whether a line of either stream is started but not complete before `cursor`
    /// (a reader there holds a partial line).
    pub(crate) fn mid_line(&self, cursor: LogCursor) -> bool {
        if !self.any_open {
            // No burst ends in an open line: only a line of the cursor's own burst can be
            // cut at it, without a search per stream (at every chunk handed that empties
            // its render; callgrind seeds 100..119 4,507.4 M -> 4,502.8 M).
            let inside = self
                .bursts
                .get(cursor.burst)
                .is_some_and(|burst| !cursor.entry.is_multiple_of(burst.entries_per_line()));
            debug_assert_eq!(inside, self.mid_line_of_streams(cursor));
            return inside;
        }
        self.mid_line_of_streams(cursor)
    }

    /// [`Self::mid_line`], stream by stream.
    fn mid_line_of_streams(&self, cursor: LogCursor) -> bool {
        [StdStream::Stdout, StdStream::Stderr].into_iter().any(|stream| {
            let indices = &self.by_stream[stream.index()];
            let next = self.stream_bursts_before(stream, cursor.burst);
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
        // Mostly lines of the stream's last burst (a render's, a settle of the lines
        // just handed): no search. Only an open line's head shares its sequence number
        // with a later burst, and weighs nothing. Callgrind: seeds 100..119 4,492.2 M ->
        // 4,473.9 M, seed 3 394.6 M -> 393.2 M.
        if let Some(&index) = self.by_stream[stream.index()].last() {
            let burst = &self.bursts[index];
            if burst.first_seq <= seqs.start {
                let until = (burst.first_seq + burst.lines as u64).min(seqs.end);
                let cost = if burst.open {
                    0
                } else {
                    until.saturating_sub(seqs.start) * (LINE_FRAME_BYTES + (burst.line_bytes as u64).min(content_cap))
                };
                debug_assert_eq!(cost, self.lines_cost_searched(stream, seqs, content_cap));
                return cost;
            }
        }
        self.lines_cost_searched(stream, seqs, content_cap)
    }

    /// [`Self::lines_cost`], searching for the first burst of `seqs`.
    fn lines_cost_searched(&self, stream: StdStream, seqs: Range<u64>, content_cap: u64) -> u64 {
        let indices = &self.by_stream[stream.index()];
        let mut at = partition_point_near_end(indices, |&index| {
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
    pub(super) fn first_unread_line(&self, stream: StdStream) -> u64 {
        self.lines_before(stream, self.read_frontier.max(self.start))
    }

    /// Append `range` to the lost ranges of stream `index`, noting whether they stay
    /// sorted by start.
    pub(super) fn push_lost(&mut self, index: usize, range: (u64, u64, LossCause)) {
        let lost = &mut self.lost[index];
        if lost.last().is_some_and(|last| last.0 > range.0) {
            self.lost_unsorted[index] = true;
        }
        let (from, until, cause) = range;
        self.loss_totals.lines[cause as usize][index] += until - from;
        self.loss_totals.ranges[cause as usize][index] += 1;
        lost.push(range);
    }

    /// Sort the lost ranges of stream `index` by start (stable), unless they are: the
    /// same list either way, without a pass over it.
    pub(super) fn sort_lost(&mut self, index: usize) {
        if std::mem::take(&mut self.lost_unsorted[index]) {
            self.lost[index].sort_by_key(|(from, _, _)| *from);
        }
    }

    /// Record, per stream, the lines from the first unread one up to `until` (exclusive,
    /// per stream) as lost to `cause`, but those a range already names. Returns how many.
    ///
    /// Only a clock step names lines past the first unread one (a `since` filter skipped
    /// them, `record_since_skips`): on a stepped stream those are left out. Seed 414 lost
    /// nine such lines to the step, then named them lost again to the container's removal,
    /// and owed the agent a tail it had read: its stream had handed every line Docker
    /// would hand.
    pub(super) fn record_loss(&mut self, until: [u64; 2], cause: LossCause) -> u64 {
        let mut total = 0;
        for stream in [StdStream::Stdout, StdStream::Stderr] {
            let index = stream.index();
            let from = self.first_unread_line(stream).max(self.retained_from[index]);
            let until = until[index];
            if from >= until {
                continue;
            }
            if self.stepped_from[index].is_some() {
                self.sort_lost(index);
                total += self.add_loss(stream, from..until, cause);
            } else {
                self.push_lost(index, (from, until, cause));
                total += until - from;
            }
        }
        total
    }

    /// The agent sees this container for the first time (a `list`, `inspect` or event
    /// names it). `first_sight_now`: in the first list of a first run under
    /// `first_sight = "now"`, so what it wrote so far is not the agent's.
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
            let served = self.stream_bursts_before(stream, cursor.burst) < indices.len();
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
        let first = self.stream_bursts_before(stream, at.burst);
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

    /// Per cause (indexed by `LossCause as usize`), per stream: the lines lost to it
    /// and the ranges they were lost in, as [`Self::lost_lines`] and
    /// [`Self::loss_ranges`] give them: kept as ranges are added (a report's five
    /// counts were five passes: seed 1, 11.6 M of ~2,000 M instructions in the liveness
    /// sample's reports; then one pass; now none). Debug builds check them against a
    /// pass over the ranges.
    pub(crate) fn loss_totals(&self) -> LossTotals {
        #[cfg(debug_assertions)]
        {
            let mut totals = LossTotals::default();
            for (stream, lost) in self.lost.iter().enumerate() {
                for &(from, until, cause) in lost {
                    totals.lines[cause as usize][stream] += until - from;
                    totals.ranges[cause as usize][stream] += 1;
                }
            }
            debug_assert_eq!(totals, self.loss_totals, "kept loss totals differ from the ranges");
        }
        self.loss_totals
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
                self.push_lost(index, (from, read_until, cause));
                self.sort_lost(index);
                total += read_until - from;
            }
        }
        total
    }
}
