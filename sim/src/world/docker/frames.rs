//! The frames of the bursts readers rendered last, per log, kept whole for the next
//! readers: a render of one burst is then a slice of them, shared, not a copy.
//!
//! Owns: per log, the frames of up to [`FrameCache::BURSTS_KEPT`] bursts of at most
//! [`FrameCache::BURST_BYTES_MAX`] bytes each, as immutable [`Bytes`] (chunks handed
//! out may still share them after they are dropped from here), and the stall probe's
//! last answer ([`FrameCache::last_entry`]).
//!
//! Why: a reopen asks for the log since its last line's second minus a skew, so each
//! one renders the log's last burst or two again; a burst's frames never change (a log
//! only grows, rotation only moves its start), so they are rendered once and sliced.
//! Seed 1 (a starved stream pool, 27 k reopens) rendered 777 k entries, 688 k of them
//! again; seed 85 195 k, 135 k again. Of the entries rendered again, 99 % were in one
//! of the log's last four bursts. Kept this way, seed 1 costs 1,404 M instructions
//! instead of 1,555 M, seed 85 626 M instead of 643 M (callgrind); over seeds 0..99 a
//! world kept at most 4.5 MB of frames.
//!
//! What a reader is handed does not change: only where its bytes are rendered
//! (debug builds check every slice against [`ContainerLog::write_run`]).

use bytes::{Bytes, BytesMut};

use super::log::{ContainerLog, LogCursor, RenderedRun, TimestampText};

#[derive(Default)]
pub(crate) struct FrameCache {
    /// Per log (by serial): (burst, its frames), at most `BURSTS_KEPT`.
    logs: Vec<Vec<(usize, Bytes)>>,
    /// Per log (by serial): the last answer of [`Self::last_entry`], with the log's
    /// first kept entry and end it was found for.
    last_entries: Vec<Option<((LogCursor, LogCursor), Bytes)>>,
}

impl FrameCache {
    /// Bursts kept per log: the last burst or two of each stream.
    const BURSTS_KEPT: usize = 4;
    /// A larger burst is rendered for each reader, as much of it as the reader wants
    /// (64 KiB kept seed 1's floods of long lines out: 25 M instructions more).
    const BURST_BYTES_MAX: usize = 256 * 1024;
    /// A dropped burst's buffer is reused for a burst this small or half its size.
    const SPARE_ROOM_MAX: usize = 16 * 1024;

    /// The frames of `run` of log `serial`, if its burst is small enough to keep.
    pub(crate) fn run_frames(
        &mut self,
        log: &ContainerLog,
        serial: usize,
        run: &RenderedRun,
        timestamps: &mut TimestampText,
    ) -> Option<Bytes> {
        let frames = self.burst_frames(log, serial, run.burst, timestamps)?;
        let run_frames = frames.slice(log.frames_range(run));
        #[cfg(debug_assertions)]
        {
            let mut expected = bytes::BytesMut::new();
            log.write_run(run, &mut expected, &mut TimestampText::default());
            debug_assert!(expected[..] == run_frames[..], "kept frames differ from write_run");
        }
        Some(run_frames)
    }

    /// The frame of log `serial`'s last entry (empty if rotation deleted it): the stall
    /// probe's answer (`tail = 1`). It depends only on where the log starts and ends
    /// (entries are never changed, only added at the end or deleted from the start),
    /// so the answer for the same bounds is the one found before: a probe mostly asks
    /// of a quiet log, whose answer has not changed since its last probe (callgrind:
    /// seed 2 310.59 M -> 309.77 M, seed 3 353.03 M -> 351.73 M, seed 19 810.14 M ->
    /// 810.14 M).
    pub(crate) fn last_entry(&mut self, log: &ContainerLog, serial: usize, timestamps: &mut TimestampText) -> Bytes {
        let bounds = (log.first_kept(), log.end());
        if let Some(Some((found_for, answer))) = self.last_entries.get(serial) {
            if *found_for == bounds {
                return answer.clone();
            }
        }
        let answer = match log.last_entry_run() {
            None => Bytes::new(),
            Some(run) => self.run_frames(log, serial, &run, timestamps).unwrap_or_else(|| {
                let mut answer = BytesMut::new();
                log.write_run(&run, &mut answer, timestamps);
                answer.freeze()
            }),
        };
        if self.last_entries.len() <= serial {
            self.last_entries.resize_with(serial + 1, || None);
        }
        self.last_entries[serial] = Some((bounds, answer.clone()));
        answer
    }

    /// Every frame of burst `burst` of log `serial`, rendered now unless kept. Lent, not
    /// cloned: the caller's slice is the one reference it takes (a clone and its drop fewer
    /// per render: callgrind seed 85 446.9 M → 446.2 M instructions, seed 19 1,102.7 M →
    /// 1,100.3 M).
    fn burst_frames(
        &mut self,
        log: &ContainerLog,
        serial: usize,
        burst: usize,
        timestamps: &mut TimestampText,
    ) -> Option<&Bytes> {
        if self.logs.len() <= serial {
            self.logs.resize_with(serial + 1, Vec::new);
        }
        let kept = &mut self.logs[serial];
        // From the newest (a new burst is pushed last): mostly the one just written, or
        // the one before (callgrind: seed 3 372.70 M -> 372.22 M, seed 19 846.82 M ->
        // 845.74 M).
        if let Some(at) = kept.iter().rposition(|(kept_burst, _)| *kept_burst == burst) {
            return Some(&kept[at].1);
        }
        let len = log.burst_frames_len(burst);
        if len > Self::BURST_BYTES_MAX {
            return None;
        }
        // The oldest burst's frames make room, and lend their allocation when no chunk
        // shares them any more and it fits (callgrind: seed 85 370.7 M -> 370.2 M, seed 19
        // 924.6 M -> 923.4 M).
        let mut spare = BytesMut::new();
        if kept.len() == Self::BURSTS_KEPT {
            let oldest = (0..kept.len()).min_by_key(|at| kept[*at].0).expect("kept bursts");
            let (_, frames) = kept.swap_remove(oldest);
            if let Ok(mut buffer) = frames.try_into_mut() {
                buffer.clear();
                if (len..=Self::SPARE_ROOM_MAX.max(2 * len)).contains(&buffer.capacity()) {
                    spare = buffer;
                }
            }
        }
        // Frozen shared (`split` makes the buffer's storage shared first), not as a
        // promotable vector: its first slice would share it all the same, and every
        // clone and drop of a chunk sliced from it then dispatches through the promotable
        // vtable, which checks for a vector first (the engine slices each line out of a
        // chunk). Callgrind: seeds 100..119 4,555.9 M -> 4,547.2 M, seed 19 867.3 M -> 866.4 M.
        let frames = log.render_burst(burst, len, spare, timestamps).split().freeze();
        kept.push((burst, frames));
        kept.last().map(|(_, frames)| frames)
    }

    /// Log `serial` was deleted: nobody reads it again.
    pub(crate) fn forget(&mut self, serial: usize) {
        if let Some(kept) = self.logs.get_mut(serial) {
            *kept = Vec::new();
        }
        if let Some(last_entry) = self.last_entries.get_mut(serial) {
            *last_entry = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::BytesMut;
    use engine::model::StdStream;

    use super::*;

    #[test]
    fn the_last_entry_is_found_anew_once_the_log_grows_or_rotates() {
        const SECOND: i64 = 1_000_000_000;
        let last_frame = |log: &ContainerLog| {
            let mut frame = BytesMut::new();
            if let Some(run) = log.last_entry_run() {
                log.write_run(&run, &mut frame, &mut TimestampText::default());
            }
            frame
        };
        let mut log = ContainerLog::new(false, false);
        let (mut frames, mut timestamps) = (FrameCache::default(), TimestampText::default());
        assert!(frames.last_entry(&log, 0, &mut timestamps).is_empty());
        log.append(StdStream::Stdout, 3, 20, 1_700_000_000 * SECOND, 1_000);
        for _ in 0..2 {
            assert_eq!(frames.last_entry(&log, 0, &mut timestamps)[..], last_frame(&log)[..]);
        }
        log.append(StdStream::Stderr, 2, 30, 1_700_000_001 * SECOND, 1_000);
        assert_eq!(frames.last_entry(&log, 0, &mut timestamps)[..], last_frame(&log)[..]);
        log.rotate(0);
        assert!(frames.last_entry(&log, 0, &mut timestamps).is_empty());
    }

    #[test]
    fn every_run_of_a_kept_burst_is_the_frames_write_run_renders() {
        const SECOND: i64 = 1_000_000_000;
        for tty in [false, true] {
            let mut log = ContainerLog::new(tty, false);
            // Entries in the log after each burst: a burst's count is the step.
            let mut totals = vec![log.entries_total()];
            log.append(StdStream::Stdout, 7, 20, 1_700_000_000 * SECOND, 1_000);
            totals.push(log.entries_total());
            log.append(StdStream::Stderr, 3, 40_000, 1_700_000_001 * SECOND, 7);
            totals.push(log.entries_total());
            log.append(StdStream::Stdout, 2, 16_384, 1_700_000_002 * SECOND, 0);
            totals.push(log.entries_total());
            log.append(StdStream::Stderr, 4, 0, 1_700_000_003 * SECOND, 1);
            totals.push(log.entries_total());
            log.append_literal(StdStream::Stdout, Arc::from(vec![b'a'; 2 * 16_384]), 1_700_000_004 * SECOND, true);
            totals.push(log.entries_total());
            log.append_literal(StdStream::Stdout, Arc::from(&b"tail"[..]), 1_700_000_005 * SECOND, false);
            totals.push(log.entries_total());
            let entries_of: Vec<u64> = totals.windows(2).map(|pair| pair[1] - pair[0]).collect();
            let mut frames = FrameCache::default();
            let mut timestamps = TimestampText::default();
            for (burst, count) in entries_of.into_iter().enumerate() {
                let len = log.burst_frames_len(burst);
                let whole = log.render_burst(burst, len, BytesMut::new(), &mut TimestampText::default());
                assert_eq!(whole.len(), len, "tty={tty} burst={burst}");
                for from in 0..count {
                    for entries in 1..=count - from {
                        let run = RenderedRun { at: 0, burst, from, entries };
                        let mut expected = BytesMut::new();
                        log.write_run(&run, &mut expected, &mut TimestampText::default());
                        let kept = frames.run_frames(&log, 0, &run, &mut timestamps).expect("small bursts are kept");
                        assert_eq!(kept[..], expected[..], "tty={tty} burst={burst} from={from} entries={entries}");
                    }
                }
            }
        }
    }
}
