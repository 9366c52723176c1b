//! Rendering a log's entries as a reader gets them: frames (or a TTY container's raw
//! entries) with RFC 3339 timestamps, written lazily into the reader's buffer, and the
//! positions of the whole frames in what was rendered.

use super::*;

impl ContainerLog {
    /// Render entries from `*cursor` as frames into `out`, skipping entries that fail
    /// their stream's `qualify` filter (which it updates), until `out` holds at least `target_bytes`, `limit`
    /// is reached, or the log ends. Advances `*cursor`; a cursor behind the log's start
    /// (entries deleted by rotation) first jumps to the start. Returns the length of the
    /// last frame rendered (0 if none) and the number of entries rendered. Appends to
    /// `runs` one [`RenderedRun`] per burst it rendered from, so that a reader handed
    /// only part of `out` knows which frames it got whole ([`Self::whole_frames_in`]).
    ///
    /// The definition of a render: [`Self::plan_render`], then each run's frames
    /// ([`Self::write_run`]). A reader gets the same bytes, mostly kept from an earlier
    /// reader's render (`FrameCache`).
    #[cfg(test)]
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
        let first_run = runs.len();
        let plan = self.plan_render(cursor, qualify, limit, target_bytes.saturating_sub(out.len()), runs);
        for run in &runs[first_run..] {
            self.write_run(run, out, timestamps);
        }
        (plan.last_frame, plan.entries)
    }

    /// Which entries [`Self::render`] renders from `*cursor` until their frames make at
    /// least `target_bytes`, without rendering them: advances `*cursor` and `qualify`,
    /// and appends the runs (each `at` counted from the first frame of this render).
    pub(crate) fn plan_render(
        &self,
        cursor: &mut LogCursor,
        qualify: &mut [Qualify; 2],
        limit: LogCursor,
        target_bytes: usize,
        runs: &mut Vec<RenderedRun>,
    ) -> RenderPlan {
        let limit = limit.min(self.end());
        *cursor = self.normalise((*cursor).max(self.start));
        let mut plan = RenderPlan::default();
        while *cursor < limit && plan.bytes < target_bytes {
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
            let run_at = plan.bytes;
            if from < burst_end && burst.has_short_lines() {
                // Frames of short lines all have one length: as many as reach the target.
                let frame_len = burst.frame_bytes_per_line(self.tty) as usize;
                let wanted = (target_bytes - plan.bytes).div_ceil(frame_len) as u64;
                let count = (burst_end - from).min(wanted);
                entry += count;
                plan.bytes += count as usize * frame_len;
                plan.last_frame = frame_len;
            }
            while entry < burst_end && plan.bytes < target_bytes {
                let frame_len = entry_frame_bytes(burst, self.tty, entry);
                plan.bytes += frame_len;
                plan.last_frame = frame_len;
                entry += 1;
            }
            if entry > from {
                plan.entries += entry - from;
                runs.push(RenderedRun { at: run_at, burst: cursor.burst, from, entries: entry - from });
            }
            *cursor = self.normalise(LogCursor { burst: cursor.burst, entry: entry.max(from) });
        }
        plan
    }

    /// The runs of the last `entries` entries, as a non-follow `tail` request hands them
    /// (the agent's stall probe asks for one), onto `runs`.
    pub(crate) fn tail_runs(&self, entries: u64, runs: &mut Vec<RenderedRun>) {
        if entries == 1 {
            runs.extend(self.last_entry_run());
            return;
        }
        // `seek`'s cursor for a `tail` and no `since`, without building its filters (at
        // every stall probe; callgrind: seed 3 371.49 M -> 370.53 M, seed 19 842.47 M ->
        // 841.27 M).
        let cursor = self.normalise(self.start.max(self.back_from_end(entries)));
        debug_assert_eq!(cursor, self.normalise(self.seek(ReadRequest { since: None, tail: Some(entries) }).cursor));
        let (mut cursor, mut qualify) = (cursor, [Qualify::From(cursor); 2]);
        self.plan_render(&mut cursor, &mut qualify, self.end(), usize::MAX, runs);
    }

    /// The run of the log's last entry, unless rotation deleted it: the stall probe's
    /// answer (`tail = 1`), with no plan and no run list.
    pub(crate) fn last_entry_run(&self) -> Option<RenderedRun> {
        let cursor = self.normalise(self.start.max(self.back_from_end(1)));
        debug_assert_eq!(cursor, self.normalise(self.seek(ReadRequest { since: None, tail: Some(1) }).cursor));
        (cursor.burst < self.bursts.len()).then_some(RenderedRun {
            at: 0,
            burst: cursor.burst,
            from: cursor.entry,
            entries: 1,
        })
    }

    /// The frames of `run`, rendered onto `out`.
    pub(crate) fn write_run(&self, run: &RenderedRun, out: &mut BytesMut, timestamps: &mut TimestampText) {
        let burst = &self.bursts[run.burst];
        let end = run.from + run.entries;
        if burst.has_short_lines() {
            render_short_lines(burst, self.tty, run.from, end, out, timestamps);
        } else {
            for entry in run.from..end {
                render_entry(burst, self.tty, entry, out, timestamps);
            }
        }
    }

    /// The bytes of every frame of burst `burst`, entries deleted by rotation included.
    pub(crate) fn burst_frames_len(&self, burst: usize) -> usize {
        let burst = &self.bursts[burst];
        let last = burst.entries() - 1;
        if burst.has_short_lines() {
            // As in `frames_range`: frames of one length, one per line (callgrind seeds
            // 100..119 4,461.0 M -> 4,457.3 M).
            let len = (last + 1) as usize * burst.frame_bytes_per_line(self.tty) as usize;
            debug_assert_eq!(len, frame_offset(burst, self.tty, last) + entry_frame_bytes(burst, self.tty, last));
            return len;
        }
        frame_offset(burst, self.tty, last) + entry_frame_bytes(burst, self.tty, last)
    }

    /// Every frame of burst `burst`, in one buffer of `len` bytes
    /// ([`Self::burst_frames_len`]): `out`, which is empty, if it has room for them.
    pub(crate) fn render_burst(
        &self,
        burst: usize,
        len: usize,
        mut out: BytesMut,
        timestamps: &mut TimestampText,
    ) -> BytesMut {
        debug_assert!(out.is_empty());
        if out.capacity() < len {
            out = BytesMut::with_capacity(len);
        }
        let entries = self.bursts[burst].entries();
        self.write_run(&RenderedRun { at: 0, burst, from: 0, entries }, &mut out, timestamps);
        debug_assert_eq!(out.len(), len);
        out
    }

    /// Where the frames of `run` lie in [`Self::render_burst`]'s output.
    pub(crate) fn frames_range(&self, run: &RenderedRun) -> Range<usize> {
        let burst = &self.bursts[run.burst];
        let last = run.from + run.entries - 1;
        if burst.has_short_lines() {
            // Frames of one length, one per line: no offset worked out per piece (at
            // every render and probe kept frames serve; callgrind seeds 100..119
            // 4,473.9 M -> 4,461.0 M, seed 19 856.2 M -> 853.4 M).
            let frame = burst.frame_bytes_per_line(self.tty) as usize;
            let range = run.from as usize * frame..(last + 1) as usize * frame;
            debug_assert_eq!(
                range,
                frame_offset(burst, self.tty, run.from)
                    ..frame_offset(burst, self.tty, last) + entry_frame_bytes(burst, self.tty, last)
            );
            return range;
        }
        frame_offset(burst, self.tty, run.from)
            ..frame_offset(burst, self.tty, last) + entry_frame_bytes(burst, self.tty, last)
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

/// The longest frame [`render_short_lines`] lays out on the stack.
const STACK_FRAME_MAX: usize = 256;

/// The frames of entries `from..end` of a burst of short lines (see
/// [`Burst::has_short_lines`]): the same bytes as [`render_entry_frame`] gives each
/// (debug builds check), written at once. The frames all differ only in timestamp and
/// sequence number: one frame is laid out (header, padding, line end), then per entry
/// those two are written into it and it is appended, one pass over the output. (Filling
/// the output with the padding first and writing into it was a second pass, and a
/// `memset` callgrind counts a byte at a time: seed 85 442.4 M → 433.0 M instructions,
/// seed 19 1,086.4 M → 1,069.9 M; user time over 100 seeds no worse.)
fn render_short_lines(
    burst: &Burst,
    tty: bool,
    from: u64,
    end: u64,
    out: &mut BytesMut,
    timestamps: &mut TimestampText,
) {
    let line_bytes = burst.line_bytes as usize;
    let payload_len = TIMESTAMP_BYTES + 1 + line_bytes + 1 + usize::from(tty);
    let header_len = if tty { 0 } else { FRAME_HEADER_BYTES };
    let frame_len = header_len + payload_len;
    #[cfg(debug_assertions)]
    let start = out.len();
    let count = end - from;
    out.reserve(count as usize * frame_len);
    // The frame is laid out on the stack when it fits (most lines are short): no
    // allocation per run, and the padding written once (callgrind: seed 85 371.2 M ->
    // 370.7 M, seed 19 925.1 M -> 924.6 M; 512 bytes cost more than they saved).
    let mut on_stack = [burst.pad; STACK_FRAME_MAX];
    let mut on_heap = Vec::new();
    let frame: &mut [u8] = if frame_len <= STACK_FRAME_MAX {
        &mut on_stack[..frame_len]
    } else {
        on_heap.resize(frame_len, burst.pad);
        &mut on_heap
    };
    if !tty {
        frame[0] = match burst.stream {
            StdStream::Stdout => 1,
            StdStream::Stderr => 2,
        };
        frame[1..4].fill(0);
        let len = u32::try_from(payload_len).expect("an entry fits in a frame").to_be_bytes();
        frame[4..FRAME_HEADER_BYTES].copy_from_slice(&len);
    }
    frame[header_len + TIMESTAMP_BYTES] = b' ';
    if tty {
        frame[frame_len - 2] = b'\r';
    }
    frame[frame_len - 1] = b'\n';
    // The sequence number's digit count only changes at a power of ten: tracked here
    // instead of a logarithm per frame (seed 1: 21 M of 2,147 M instructions). The
    // frame keeps the previous entry's digits, which are counted up in place (a carry
    // per ten entries) rather than written anew; a burst whose lines share one
    // timestamp (`ts_step` 0) has it written once (callgrind: seed 85 388.2 M -> 384.6 M,
    // seed 19 958.3 M -> 955.0 M). With a step of 1 µs (most bursts) the timestamp is
    // counted up likewise while it stays in its second, the steps left counted here
    // ([`TimestampText::micro_steps_left`]): no timestamp arithmetic or second check
    // per frame (callgrind: seed 85 369.5 M -> 368.9 M).
    let ts_at = header_len;
    let seq_at = header_len + TIMESTAMP_BYTES + 1;
    let first_seq = burst.first_seq + from;
    let mut digits = decimal_digits(first_seq) as usize;
    let mut next_power = 10u64.checked_pow(digits as u32).unwrap_or(u64::MAX);
    put_fixed_digits(&mut frame[seq_at..seq_at + digits], first_seq);
    let (step, slot) = (burst.ts_step, ts_at..ts_at + TIMESTAMP_BYTES);
    let mut ts = burst.first_ts + from as i64 * step;
    timestamps.write_into(ts, &mut frame[slot.clone()]);
    out.extend_from_slice(frame);
    let mut micro_left = if step == TimestampText::NANOS_PER_MICRO { timestamps.micro_steps_left(ts) } else { 0 };
    let mut seq = first_seq;
    for _ in from + 1..end {
        if step == TimestampText::NANOS_PER_MICRO {
            ts += step;
            if micro_left > 0 {
                micro_left -= 1;
                count_up_decimal(&mut frame[ts_at + 20..ts_at + 26]);
            } else {
                timestamps.write_into(ts, &mut frame[slot.clone()]);
                micro_left = timestamps.micro_steps_left(ts);
            }
            debug_check_text(ts, &frame[slot.clone()]);
        } else if step != 0 {
            ts += step;
            timestamps.write_next_into(ts, &mut frame[slot.clone()]);
        }
        seq += 1;
        if seq >= next_power {
            digits += 1;
            next_power = next_power.saturating_mul(10);
            put_fixed_digits(&mut frame[seq_at..seq_at + digits], seq);
        } else {
            count_up_decimal(&mut frame[seq_at..seq_at + digits]);
        }
        debug_assert_eq!(digits, decimal_digits(seq) as usize);
        out.extend_from_slice(frame);
    }
    #[cfg(debug_assertions)]
    {
        let mut expected = BytesMut::new();
        for entry in from..from + count {
            render_entry(burst, tty, entry, &mut expected, &mut TimestampText::default());
        }
        debug_assert!(expected[..] == out[start..], "short-line frames differ from render_entry");
    }
}

/// What [`ContainerLog::plan_render`] chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RenderPlan {
    /// Bytes of the frames.
    pub(crate) bytes: usize,
    /// Length of the last frame (0 if none).
    pub(crate) last_frame: usize,
    /// Entries rendered.
    pub(crate) entries: u64,
}

/// Where the frame of entry `entry` starts among the frames of its whole burst: every
/// line of a burst has the same pieces, and every piece but a line's last is full.
fn frame_offset(burst: &Burst, tty: bool, entry: u64) -> usize {
    let per_line = burst.entries_per_line();
    let (line, part) = (entry / per_line, entry % per_line);
    let header = if tty { 0 } else { FRAME_HEADER_BYTES };
    let full_piece = header + TIMESTAMP_BYTES + 1 + ENTRY_CONTENT_MAX;
    line as usize * burst.frame_bytes_per_line(tty) as usize + part as usize * full_piece
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
pub(super) fn put_content_part(burst: &Burst, entry: u64, out: &mut BytesMut) {
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
        out.extend_from_slice(&padding(burst.pad)[..part_end - shown]);
    } else {
        out.extend_from_slice(&padding(burst.pad)[..part_end - part_start]);
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
/// fraction digits are written per entry. A new second of the same day rewrites only
/// `HH:MM:SS`; only a new day calls `format_rfc3339_nanos`, which remains the
/// definition of the layout (debug builds check every prefix and every text against it).
/// One is shared by every reader of the world (seed 1: a fresh one per reader called
/// `format_rfc3339_nanos` 67 k times, 31 M of 2,087 M instructions).
#[derive(Clone, Debug, Default)]
pub(crate) struct TimestampText {
    /// Whether `prefix` holds a second yet.
    primed: bool,
    /// The first nanosecond of the second whose `YYYY-MM-DDTHH:MM:SS.` is in `prefix`
    /// (wrapping: the first second of the i64 range starts before it). An entry of that
    /// second is found by a subtraction and a comparison rather than a division.
    second_start: i64,
    /// The day whose `YYYY-MM-DD` is in `prefix`, if any.
    day: Option<i64>,
    prefix: [u8; 20],
    /// Where a new day is formatted (reused, so that it allocates once).
    scratch: Vec<u8>,
}

impl TimestampText {
    const NANOS_PER_SECOND: i64 = 1_000_000_000;
    pub(crate) const NANOS_PER_MICRO: i64 = 1_000;
    const SECONDS_PER_DAY: i64 = 86_400;

    /// Make `prefix` hold the date and time of day of `ts`.
    #[inline]
    fn set_second(&mut self, ts: UnixNanos) {
        let second = ts.div_euclid(Self::NANOS_PER_SECOND);
        let day = second.div_euclid(Self::SECONDS_PER_DAY);
        if self.day == Some(day) {
            let of_day = second.rem_euclid(Self::SECONDS_PER_DAY) as u64;
            put_fixed_digits(&mut self.prefix[11..13], of_day / 3600);
            put_fixed_digits(&mut self.prefix[14..16], of_day / 60 % 60);
            put_fixed_digits(&mut self.prefix[17..19], of_day % 60);
        } else {
            self.scratch.clear();
            format_rfc3339_nanos(ts, &mut self.scratch);
            debug_assert_eq!(self.scratch.len(), TIMESTAMP_BYTES);
            self.prefix.copy_from_slice(&self.scratch[..20]);
            self.day = Some(day);
        }
        self.second_start = second.wrapping_mul(Self::NANOS_PER_SECOND);
        self.primed = true;
        #[cfg(debug_assertions)]
        {
            let mut expected = Vec::new();
            format_rfc3339_nanos(ts, &mut expected);
            debug_assert!(expected[..20] == self.prefix[..], "timestamp prefix differs from format_rfc3339_nanos");
        }
    }

    /// Write the text of `ts` into `out` (30 bytes), in place.
    pub(crate) fn write_into(&mut self, ts: UnixNanos, out: &mut [u8]) {
        // `ts - second_start` is exact (modulo 2^64) and below a second iff `ts` is in it.
        let mut fraction = ts.wrapping_sub(self.second_start) as u64;
        if !self.primed || fraction >= Self::NANOS_PER_SECOND as u64 {
            self.set_second(ts);
            fraction = ts.rem_euclid(Self::NANOS_PER_SECOND) as u64;
        }
        out[..20].copy_from_slice(&self.prefix);
        put_nine_digits((&mut out[20..29]).try_into().expect("nine bytes"), fraction);
        out[29] = b'Z';
    }

    /// [`Self::write_into`] for an `out` that holds the text this last wrote: only the
    /// fraction is written while `ts` is in the same second (consecutive lines of a
    /// burst; callgrind: seed 85 384.6 M -> 383.2 M, seed 19 955.0 M -> 953.0 M).
    #[inline]
    pub(crate) fn write_next_into(&mut self, ts: UnixNanos, out: &mut [u8]) {
        let fraction = ts.wrapping_sub(self.second_start) as u64;
        if self.primed && fraction < Self::NANOS_PER_SECOND as u64 {
            put_nine_digits((&mut out[20..29]).try_into().expect("nine bytes"), fraction);
        } else {
            self.write_into(ts, out);
        }
        debug_check_text(ts, out);
    }

    /// How many steps of 1 µs after `ts`, whose text [`Self::write_into`] just wrote,
    /// stay in its second: so many texts after it differ from the one before only in
    /// the six digits up to the microseconds, which the caller counts up in place (a
    /// carry per ten lines) instead of writing all nine (callgrind: seed 85 373.4 M ->
    /// 371.2 M, seed 19 928.2 M -> 925.1 M, checking the second per text).
    #[inline]
    pub(crate) fn micro_steps_left(&self, ts: UnixNanos) -> u64 {
        let fraction = ts.wrapping_sub(self.second_start) as u64;
        debug_assert!(self.primed && fraction < Self::NANOS_PER_SECOND as u64);
        (Self::NANOS_PER_SECOND as u64 - 1 - fraction) / Self::NANOS_PER_MICRO as u64
    }

    /// The text of `ts`.
    pub(crate) fn text(&mut self, ts: UnixNanos) -> [u8; TIMESTAMP_BYTES] {
        let mut text = [0u8; TIMESTAMP_BYTES];
        self.write_into(ts, &mut text);
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

/// Debug builds: `out` holds the text [`format_rfc3339_nanos`] gives `ts` (the fast
/// paths of [`TimestampText`] that write only a part of it are checked against it).
#[inline]
fn debug_check_text(ts: UnixNanos, out: &[u8]) {
    #[cfg(debug_assertions)]
    {
        let mut expected = Vec::new();
        format_rfc3339_nanos(ts, &mut expected);
        debug_assert!(expected[..] == out[..TIMESTAMP_BYTES], "timestamp text differs from format_rfc3339_nanos");
    }
    #[cfg(not(debug_assertions))]
    let _ = (ts, out);
}

/// Add one to the decimal number `slot` holds, whose digits are not all nines (the
/// caller widens it at a power of ten).
#[inline]
fn count_up_decimal(slot: &mut [u8]) {
    for digit in slot.iter_mut().rev() {
        if *digit == b'9' {
            *digit = b'0';
        } else {
            *digit += 1;
            return;
        }
    }
    debug_assert!(false, "a decimal of nines counted up in place");
}

/// The nine digits of a timestamp's fraction (`n` below 10^9), zero-padded: the same
/// bytes as [`put_fixed_digits`] (debug builds check), without its loop and in 32-bit
/// arithmetic, the halves independent (once per rendered frame; seed 8: 2.3 M of
/// 1,399 M instructions fewer than the loop).
#[inline]
fn put_nine_digits(slot: &mut [u8; 9], n: u64) {
    debug_assert!(n < 1_000_000_000);
    let n = n as u32;
    let (high, low) = (n / 10_000, n % 10_000);
    let pair = |at: u32| {
        let at = 2 * (at % 100) as usize;
        [DIGIT_PAIRS[at], DIGIT_PAIRS[at + 1]]
    };
    slot[0] = b'0' + (high / 10_000 % 10) as u8;
    slot[1..3].copy_from_slice(&pair(high / 100));
    slot[3..5].copy_from_slice(&pair(high));
    slot[5..7].copy_from_slice(&pair(low / 100));
    slot[7..9].copy_from_slice(&pair(low));
    #[cfg(debug_assertions)]
    {
        let mut expected = [0u8; 9];
        put_fixed_digits(&mut expected, u64::from(n));
        debug_assert_eq!(expected, *slot, "fraction digits differ from put_fixed_digits");
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
