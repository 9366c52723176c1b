//! No loss, order, exact content, and duplicates only where a crash or an ambiguous sink
//! failure allows them.
//!
//! Every line the world writes carries its per-stream sequence number (an empty line
//! is named by its timestamp instead: `ContainerLog::empty_line_at`), and every line
//! Loki stores is checked at once: its bytes must be exactly what the container wrote
//! (after the agent's truncation rule); the next new line of a stream must be exactly
//! the one after the last, unless the lines between were deleted by the world before
//! any reader had them (json-file rotation, `docker rm`: asked of the Docker model), so
//! a higher one is a loss, which also catches reordering; a lower one is a duplicate,
//! allowed only inside a window opened by a crash (lines after the last committed
//! checkpoint up to what had been delivered) or by an ambiguous acceptance (the lines
//! of that batch), or by a host clock step back: the agent's resume key is its last
//! line's, which after a step is stamped before lines it had delivered, so a reopen
//! replays those again (a duplicate stamped after the stream's last delivered line:
//! impossible without a step), and the same replay then the lines after the step up
//! to the resume line (after a crash the reader has only the committed key, so it
//! cannot skip them: duplicates until the next new line). Keys are not increasing across a step: a committed
//! position is found by its exact key. Lines Loki refused (`400`, too old) count as accounted for, not
//! delivered. Cost: one lookup per batch stream, one digit parse and one content
//! comparison per line.

pub(crate) mod by_container;

use std::sync::Arc;

use engine::model::{Batch, ContainerId, Line, Position, ResumeKey, SourceId, StdStream};
use engine::port::{Checkpoint, ContainerCheckpoint};
use engine::rt::UnixNanos;

use crate::check::Invariant;
use crate::world::docker::{decimal_digits, line_seq, GeneratedRun, LossCause, SimDocker};

use self::by_container::ByContainer;

#[derive(Default)]
struct Track {
    /// Resume key of each delivered line, by sequence number (`len` = next expected).
    keys: Vec<ResumeKey>,
    /// Sequence ranges (inclusive) where duplicates are allowed.
    windows: Vec<(u64, u64)>,
    duplicates: u64,
    /// Where the last line was found among the stream's bursts: the next batch's lines
    /// usually follow it (see `ContainerLog::line_matches_near`).
    near: usize,
    /// The greatest key delivered, a line delivered again included (the last one, unless
    /// the host clock stepped back).
    max_key: Option<ResumeKey>,
    /// A clock step's duplicate was allowed and no new line came since: the replay that
    /// serves it goes on with the lines after the step (stamped before the resume key).
    step_replay: bool,
    /// The next line's content while it continues a generated run (see [`ExpectedLine`]).
    expected: ExpectedLine,
}

impl Track {
    #[inline]
    fn push_key(&mut self, key: ResumeKey) {
        self.keys.push(key);
        // `max < key`, the usual outcome (a later `ts`) decided by one comparison, not
        // the derived order's flags and selects (seed 85: 365.14 M -> 364.37 M Ir).
        if self.max_key.is_none_or(|max| key.ts > max.ts || (key.ts == max.ts && key.seq > max.seq)) {
            self.max_key = Some(key);
        }
    }

    /// How many of `lines`, from the first, are the usual line (see
    /// [`DeliveryChecker::handle_delivery`]): each the next one of the stream, one of
    /// `run`, with the content written. Their keys are taken as delivered.
    fn take_usual(&mut self, run: &GeneratedRun, lines: &[Line]) -> usize {
        // An empty line never passes: `run`'s lines are not empty (see `generated_run`).
        let mut taken = 0;
        for line in lines {
            let next = self.keys.len() as u64;
            let passes = if taken == 0 {
                run.holds(next) && self.expected.matches(run, next, &line.bytes)
            } else {
                // The expected text has `run`'s layout now (the line before passed).
                run.holds(next) && self.expected.matches_in_layout(run, next, &line.bytes)
            };
            if !passes {
                break;
            }
            let Position::Container(key) = line.position;
            self.push_key(key);
            taken += 1;
        }
        taken
    }

    /// The number of delivered lines up to and including the one at `key`: found by its
    /// exact key from the end (keys step back with the host clock), else by search.
    fn through_key(&self, key: ResumeKey) -> usize {
        match self.keys.iter().rposition(|delivered| *delivered == key) {
            Some(at) => at + 1,
            None => self.keys.partition_point(|delivered| *delivered <= key),
        }
    }
}

/// What the checker keeps of one container.
#[derive(Default)]
struct ContainerTracks {
    /// Its stdout and stderr.
    streams: [Track; 2],
    /// The world's handle of its log, once known: a container's never changes, and
    /// asking the world costs an id lookup (about 290 instructions) per batch stream.
    log: Option<usize>,
    /// Its first sight under `first_sight = "now"` as the restart's checkpoint recorded
    /// it (no position yet): no line stamped before it is the agent's (see
    /// [`DeliveryChecker::handle_crash`]).
    first_sight: Option<UnixNanos>,
}

/// What [`DeliveryChecker::handle_commit`] checked of the last checkpoint: its ids (held
/// by their `Arc`s, shared with the checkpoint: see [`engine::port::ContainerCheckpoints`])
/// and, at the same indexes, the two positions of each container. The `since` is left
/// out: the check does not read it.
#[derive(Default)]
struct CheckedCommit {
    ids: Arc<[ContainerId]>,
    /// Per entry, per stream, its position as [`CheckedKey`].
    keys: Vec<[CheckedKey; 2]>,
}

/// A position (`Option<ResumeKey>`) with no tag of its own: `seq` is the key's `seq`
/// widened, or `NO_KEY` (which no `u32` widens to) for none. Comparing one to a position
/// then tests its tag, its `ts` and its `seq`, not also a stored tag (callgrind, seed 85,
/// 7,018 commits, 381 k entries compared: 369.29 M -> 367.35 M Ir; the scan's loop 30 ->
/// 24 instructions an entry).
#[derive(Clone, Copy)]
struct CheckedKey {
    ts: UnixNanos,
    seq: u64,
}

const NO_KEY: u64 = u64::MAX;

/// Room for this many keys when a stream's first line arrives (16 bytes each).
const KEYS_FIRST: usize = 4096;

impl CheckedKey {
    #[inline]
    fn new(position: Option<ResumeKey>) -> CheckedKey {
        match position {
            Some(key) => CheckedKey { ts: key.ts, seq: u64::from(key.seq) },
            None => CheckedKey { ts: 0, seq: NO_KEY },
        }
    }

    /// Whether this is `position`.
    #[inline]
    fn is(&self, position: &Option<ResumeKey>) -> bool {
        match position {
            Some(key) => self.ts == key.ts && self.seq == u64::from(key.seq),
            None => self.seq == NO_KEY,
        }
    }
}

/// Whether `keys` are the positions of `positions`.
#[inline]
fn covers(keys: &[CheckedKey; 2], positions: &ContainerCheckpoint) -> bool {
    keys[0].is(&positions.stdout) && keys[1].is(&positions.stderr)
}

impl CheckedCommit {
    /// Whether the checkpoint of `ids` has the ids checked last, all of them (the same
    /// `Arc`): then [`Self::covered_keys_from`] answers for [`Self::covered_from`].
    #[inline]
    fn shares(&self, ids: &Arc<[ContainerId]>) -> bool {
        Arc::ptr_eq(&self.ids, ids)
    }

    /// How many entries of the checkpoint of `ids` and `positions`, from index `from` on,
    /// were checked already: same id allocation and same positions at the same index.
    /// The same allocation is the same id (held here, its address cannot be reused); an
    /// equal id in another allocation is only checked again, which changes nothing.
    #[inline]
    fn covered_from(&self, ids: &[ContainerId], positions: &[ContainerCheckpoint], from: usize) -> usize {
        let same_id = |at: usize| self.ids.get(at).is_some_and(|held| Arc::ptr_eq(&held.0, &ids[at].0));
        let mut at = from;
        while at < positions.len() && same_id(at) && covers(&self.keys[at], &positions[at]) {
            at += 1;
        }
        at - from
    }

    /// [`Self::covered_from`] for a checkpoint this [`Self::shares`] the ids of: only the
    /// positions to compare.
    #[inline]
    fn covered_keys_from(&self, positions: &[ContainerCheckpoint], from: usize) -> usize {
        covered_keys(&self.keys[from..], &positions[from..])
    }

    /// Note the positions of entry `at` (the entries before it noted already).
    #[inline]
    fn note(&mut self, at: usize, positions: &ContainerCheckpoint) {
        let keys = [CheckedKey::new(positions.stdout), CheckedKey::new(positions.stderr)];
        match self.keys.get_mut(at) {
            Some(noted) => *noted = keys,
            None => self.keys.push(keys),
        }
    }

    /// The checkpoint of `ids` is checked, all its entries noted.
    fn checked(&mut self, ids: &Arc<[ContainerId]>) {
        self.keys.truncate(ids.len());
        if !Arc::ptr_eq(&self.ids, ids) {
            self.ids = ids.clone();
        }
    }
}

/// How many of `positions`, from the first, `checked` has at the same places, for the
/// same ids: the scan of [`DeliveryChecker::handle_commit`] (two entries a step: seed 85
/// 367.35 M -> 366.60 M Ir; four a step gained 0.07 M more, not kept).
fn covered_keys(checked: &[[CheckedKey; 2]], positions: &[ContainerCheckpoint]) -> usize {
    let mut at = 0;
    for (checked, positions) in checked.chunks_exact(2).zip(positions.chunks_exact(2)) {
        if !covers(&checked[0], &positions[0]) {
            return at;
        }
        if !covers(&checked[1], &positions[1]) {
            return at + 1;
        }
        at += 2;
    }
    match (checked.get(at), positions.get(at)) {
        (Some(checked), Some(positions)) if covers(checked, positions) => at + 1,
        _ => at,
    }
}

/// [`line_seq`] (the sequence number a stored line starts with), with plain arithmetic
/// while it cannot overflow: up to 19 digits; a longer number is left to `line_seq`,
/// whose checked steps cost about 46 instructions more per stored line (callgrind, seed
/// 85: 553.0 M → 547.4 M Ir; seed 19: 1,338.1 M → 1,331.4 M).
///
/// With it, how many bytes `content` starts with that are that number in decimal (0 if
/// it does not start so: a leading zero), which the content check needs
/// (`ContainerLog::line_matches_near`) and would otherwise read again.
#[inline]
fn seq_and_text_of(content: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut digits = 0;
    for &byte in content {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        if digits == 19 {
            digits = content.iter().take_while(|byte| byte.is_ascii_digit()).count();
            return line_seq(content).map(|seq| (seq, seq_text(content, digits, seq)));
        }
        value = value * 10 + u64::from(digit);
        digits += 1;
    }
    (digits > 0).then(|| (value, seq_text(content, digits, value)))
}

/// How many bytes `content` starts with that are `seq` in decimal, given that its
/// leading digits, all `digits` of them, read `seq`: all of them without a leading
/// zero; with one, only the text `0` of a run of zeros.
#[inline]
fn seq_text(content: &[u8], digits: usize, seq: u64) -> usize {
    if digits == 1 || content[0] != b'0' {
        digits
    } else {
        usize::from(seq == 0)
    }
}

/// The content the next line of a stream must have while it is the next one of a
/// [`GeneratedRun`]: its sequence number's digits, counted up in place from line to
/// line, and the run's padding. The usual line is then checked by one comparison,
/// without parsing its number (callgrind: seed 85 383.2 M -> 381.0 M, seed 19 953.0 M
/// -> 949.7 M). Kept per stream: most checks after the first of a burst count up.
#[derive(Default)]
struct ExpectedLine {
    /// The sequence number `text` is the content of (`u64::MAX`: none).
    seq: u64,
    /// The padding byte it was written with.
    pad: u8,
    /// How many bytes of `text` are digits.
    digits: usize,
    text: Vec<u8>,
}

impl ExpectedLine {
    /// Whether `content` is line `seq` of `run` as written (the fast path's
    /// `seq_and_text_of` then `run.matches`, which pass the same contents: the padding
    /// is never a digit).
    #[inline]
    fn matches(&mut self, run: &GeneratedRun, seq: u64, content: &[u8]) -> bool {
        if self.seq != seq || self.text.len() != run.line_bytes() || self.pad != run.pad_byte() {
            if !run.write_line(seq, &mut self.text) {
                self.seq = u64::MAX;
                return false;
            }
            self.seq = seq;
            self.pad = run.pad_byte();
            self.digits = decimal_digits(seq) as usize;
        }
        if content != &self.text[..] {
            return false;
        }
        self.count_up();
        true
    }

    /// [`Self::matches`] once the text has `run`'s layout (the last line checked was one
    /// of `run`): only its line is compared (with the empty-line test gone from
    /// `Track::take_usual`, seed 85: 364.37 M -> 363.94 M Ir).
    #[inline]
    fn matches_in_layout(&mut self, run: &GeneratedRun, seq: u64, content: &[u8]) -> bool {
        if self.seq != seq {
            return self.matches(run, seq, content);
        }
        if content != &self.text[..] {
            return false;
        }
        self.count_up();
        true
    }

    /// Line `seq` of `run` passed the full checks: if this is its content, become the
    /// next line's, so that the next line's check needs no new text when a batch
    /// stream's first line (found by the full checks) starts another burst of the same
    /// layout (callgrind: seed 85 369.45 M -> 369.29 M Ir).
    #[inline]
    fn passed(&mut self, run: &GeneratedRun, seq: u64) {
        if self.seq == seq && self.text.len() == run.line_bytes() && self.pad == run.pad_byte() {
            self.count_up();
        }
    }

    /// Become line `seq + 1`: its digits in place, unless it has one more (a power of
    /// ten), which the next check writes anew.
    fn count_up(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        for digit in self.text[..self.digits].iter_mut().rev() {
            if *digit == b'9' {
                *digit = b'0';
            } else {
                *digit += 1;
                return;
            }
        }
        self.seq = u64::MAX;
    }
}

pub struct DeliveryChecker {
    /// The world, asked for written content and for lines it deleted unread.
    docker: SimDocker,
    /// The agent's truncation limit, to compare long lines.
    line_bytes_max: usize,
    /// Per container, its stdout and stderr (looked up by id, not cloned per batch).
    tracks: ByContainer<ContainerTracks>,
    /// The last checkpoint checked (see [`Self::handle_commit`]).
    last_commit: CheckedCommit,
    pub lines_delivered: u64,
    /// Lines skipped because the world deleted them unread, and lines Loki refused.
    pub lines_excused: u64,
    pub lines_refused: u64,
    /// Times a stream's next stored line came after lines the world deleted unread.
    pub losses_read_past: u64,
    pub duplicates: u64,
    pub duplicates_allowed: u64,
    /// Duplicates allowed because the host clock stepped back (see the module docs).
    pub duplicates_clock_step: u64,
    /// Lines skipped as excused that the world named lost to a host clock step
    /// (Docker's `since` skipped them): the named count of lines so lost, with the
    /// stream tails [`crate::check::completeness`] adds.
    pub lines_lost_clock_step: u64,
    pub first_violation: Option<(Invariant, String)>,
}

impl DeliveryChecker {
    pub fn new(docker: SimDocker, line_bytes_max: usize) -> DeliveryChecker {
        DeliveryChecker {
            docker,
            line_bytes_max,
            tracks: ByContainer::default(),
            last_commit: CheckedCommit::default(),
            lines_delivered: 0,
            lines_excused: 0,
            lines_refused: 0,
            losses_read_past: 0,
            duplicates: 0,
            duplicates_allowed: 0,
            duplicates_clock_step: 0,
            lines_lost_clock_step: 0,
            first_violation: None,
        }
    }

    fn fail(&mut self, invariant: Invariant, detail: String) {
        if self.first_violation.is_none() {
            self.first_violation = Some((invariant, detail));
        }
    }

    /// One accepted batch. `ambiguous`: stored, but the client was told to retry.
    /// `refused_before`: lines older than this were refused (`400`), the rest stored.
    pub fn handle_delivery(&mut self, batch: &Batch, ambiguous: bool, refused_before: Option<UnixNanos>) {
        for stream in &batch.streams {
            let SourceId::Container { id, stream: std_stream } = &stream.source;
            let mut failure = None;
            let tracks = self.tracks.get_or_default(id);
            // One lock of the world per batch stream, not per line.
            if tracks.log.is_none() {
                tracks.log = self.docker.log_serial(id);
            }
            let log = tracks.log;
            let first_sight = tracks.first_sight;
            let track = &mut tracks.streams[std_stream.index()];
            let mut window: Option<(u64, u64)> = None;
            let mut answered_through = 0;
            let (lines_delivered, lines_excused, lines_refused, losses_read_past, lines_lost_clock_step) = (
                &mut self.lines_delivered,
                &mut self.lines_excused,
                &mut self.lines_refused,
                &mut self.losses_read_past,
                &mut self.lines_lost_clock_step,
            );
            let (duplicates, duplicates_allowed, duplicates_clock_step, line_bytes_max) = (
                &mut self.duplicates,
                &mut self.duplicates_allowed,
                &mut self.duplicates_clock_step,
                self.line_bytes_max,
            );
            // A stream's keys start at `KEYS_FIRST` of room: grown from nothing by
            // doubling, each stream was reallocated about ten times on the way to its few
            // hundred or thousand lines (seed 3: 1,608 reallocations, 2.5 M Ir). Callgrind:
            // seed 2 353.23 M -> 351.82 M, seed 3 401.71 M -> 400.32 M, seed 19 871.78 M ->
            // 870.42 M (1,024 of room: seed 3 401.24 M).
            if track.keys.capacity() == 0 {
                track.keys.reserve(KEYS_FIRST);
            }
            track.keys.reserve(stream.lines.len());
            self.docker.with_log(log, |written| {
                // The burst of the last line checked, while it is one of generated lines.
                let mut run: Option<GeneratedRun> = None;
                // Nothing of the batch asks for more than the next line's checks.
                let plain = first_sight.is_none() && refused_before.is_none() && !ambiguous;
                let lines = &stream.lines[..];
                let mut at = 0;
                while at < lines.len() {
                    // The usual lines, checked first: the next ones of their stream, in the
                    // burst of the line before them, as written. The full checks below would
                    // pass them doing just this. Seed 85 (callgrind): the delivery observer
                    // 29.4 M → 27.8 M Ir; then as a loop of their own (`Track::take_usual`,
                    // its state in registers: about 87 → 73 instructions a line), 366.60 M →
                    // 365.14 M Ir for the run.
                    if let Some(run) = run.as_ref().filter(|_| plain) {
                        let taken = track.take_usual(run, &lines[at..]);
                        if taken > 0 {
                            at += taken;
                            answered_through = answered_through.max(track.keys.len() as u64);
                            track.step_replay = false;
                            *lines_delivered += taken as u64;
                            if at == lines.len() {
                                break;
                            }
                        }
                    }
                    let line = &lines[at];
                    at += 1;
                    // What a json-file rotation kept of a line it cut: the reader takes it
                    // for a line of its own (nothing tells it the head is gone), in the cut
                    // line's place. Checked as that line, whose loss the rotation named.
                    let fragment = written.and_then(|log| log.cut_line_fragment(*std_stream, &line.bytes, line_bytes_max));
                    // An empty line is named by its timestamp (see `ContainerLog::empty_line_at`).
                    let parsed = if let Some(seq) = fragment {
                        Some((seq, 0))
                    } else if line.bytes.is_empty() {
                        written.and_then(|log| log.empty_line_at(*std_stream, line.ts)).map(|seq| (seq, 0))
                    } else {
                        seq_and_text_of(&line.bytes)
                    };
                    let Some((seq, seq_digits)) = parsed else {
                        failure = Some((
                            Invariant::NoLoss,
                            format!(
                                "container {} {}: a line without a sequence number: {:?}{}",
                                id.short(),
                                std_stream.as_str(),
                                String::from_utf8_lossy(&line.bytes[..line.bytes.len().min(40)]),
                                if line.bytes.is_empty() { " (no empty line was written at its timestamp)" } else { "" }
                            ),
                        ));
                        break;
                    };
                    // A host clock step back stamps later lines before it: not checked.
                    if first_sight.is_some_and(|floor| line.ts < floor) && !written.is_some_and(|log| log.stepped()) {
                        failure = Some((
                            Invariant::FirstSight,
                            format!(
                                "container {} {}: line {seq} stamped {} delivered, before its first sight \
                                 under first_sight = \"now\" ({}, recorded in the checkpoint the restart loaded)",
                                id.short(),
                                std_stream.as_str(),
                                line.ts,
                                first_sight.unwrap_or_default()
                            ),
                        ));
                        break;
                    }
                    answered_through = answered_through.max(seq + 1);
                    let mut next = track.keys.len() as u64;
                    let Position::Container(resume_key) = line.position;
                    if seq > next {
                        // Lines the world deleted before anyone read them are skipped.
                        let through = written.map_or(next, |log| log.excused_through(*std_stream, next));
                        if through >= seq {
                            *lines_excused += seq - next;
                            *lines_lost_clock_step += written
                                .map_or(0, |log| log.lines_named(*std_stream, next..seq, LossCause::ClockStep));
                            *losses_read_past += 1;
                            track.keys.resize(seq as usize, resume_key);
                            track.max_key = Some(track.max_key.map_or(resume_key, |max| max.max(resume_key)));
                            next = seq;
                        }
                    }
                    if fragment.is_some() && written.is_some_and(|log| log.excused_through(*std_stream, seq) <= seq) {
                        failure = Some((
                            Invariant::NoLoss,
                            format!(
                                "container {} {}: the part of line {seq} a json-file rotation kept was delivered \
                                 as a line, but the rotation deleted nothing of it unread",
                                id.short(),
                                std_stream.as_str()
                            ),
                        ));
                        break;
                    }
                    let refused = refused_before.is_some_and(|cutoff| line.ts < cutoff);
                    if seq >= next && !refused && fragment.is_none() {
                        let matches = match run.as_ref().filter(|run| run.holds(seq)) {
                            Some(run) => Some(run.matches(seq_digits, &line.bytes)),
                            None => written.and_then(|log| {
                                let matches = log.line_matches_near(
                                    *std_stream,
                                    seq,
                                    seq_digits,
                                    &line.bytes,
                                    line_bytes_max,
                                    &mut track.near,
                                );
                                run = log.generated_run(*std_stream, track.near, line_bytes_max);
                                matches
                            }),
                        };
                        match matches {
                            Some(true) => {
                                if let Some(run) = run.as_ref().filter(|run| seq == next && run.holds(seq)) {
                                    track.expected.passed(run, seq);
                                }
                            }
                            found => {
                                failure = Some((
                                    Invariant::NoLoss,
                                    format!(
                                        "container {} {}: line {seq} stored with content other than written \
                                         ({} bytes: {:?}){}",
                                        id.short(),
                                        std_stream.as_str(),
                                        line.bytes.len(),
                                        String::from_utf8_lossy(&line.bytes[..line.bytes.len().min(40)]),
                                        if found.is_none() { "; no such line was written" } else { "" }
                                    ),
                                ));
                                break;
                            }
                        }
                    }
                    if seq == next {
                        track.push_key(resume_key);
                        track.step_replay = false;
                        if fragment.is_some() {
                            // The line is the rotation's loss; this is what was left of it.
                            *lines_excused += 1;
                        } else if refused {
                            *lines_refused += 1;
                        } else {
                            *lines_delivered += 1;
                        }
                    } else if seq > next {
                        failure = Some((
                            Invariant::NoLoss,
                            format!(
                                "container {} {}: line {seq} arrived but line {next} never did",
                                id.short(),
                                std_stream.as_str()
                            ),
                        ));
                        break;
                    } else {
                        // Loki stored it all the same, and a commit may name its key: a
                        // line counted as delivered (or excused) before by its sequence
                        // number may come only now, its key the greatest yet. Seed 65174:
                        // a `tail = 10` first open after a host clock step back cut the
                        // four lines written before the step (a first-sight loss), stamped
                        // 96 s after the lines the tail served; a restart's `since` replay
                        // handed them (Docker filters `since` per entry) and the agent,
                        // which had never queued them, shipped them and committed their
                        // key.
                        track.max_key = Some(track.max_key.map_or(resume_key, |max| max.max(resume_key)));
                        track.duplicates += 1;
                        *duplicates += 1;
                        let stepped = written.is_some_and(|log| log.stepped());
                        if track.windows.iter().any(|(low, high)| (*low..=*high).contains(&seq)) {
                            *duplicates_allowed += 1;
                        } else if stepped
                            && (track.step_replay || track.keys.last().is_some_and(|last| resume_key > *last))
                        {
                            track.step_replay = true;
                            *duplicates_allowed += 1;
                            *duplicates_clock_step += 1;
                        } else {
                            failure = Some((
                                Invariant::NoDuplicates,
                                format!("container {} {}: line {seq} delivered again with no crash or ambiguous failure covering it (windows {:?})", id.short(), std_stream.as_str(), track.windows),
                            ));
                            break;
                        }
                    }
                    if ambiguous {
                        window = Some(match window {
                            None => (seq, seq),
                            Some((low, high)) => (low.min(seq), high.max(seq)),
                        });
                    }
                }
            });
            if let Some(window) = window {
                track.windows.push(window);
            }
            // Everything of this stream up to the last line Loki answered is settled in
            // the world's count of what the agent holds (the pipeline is FIFO per source).
            if let Some(log) = log.filter(|_| answered_through > 0) {
                self.docker.settle(log, *std_stream, answered_through);
            }
            if let Some((invariant, detail)) = failure {
                self.fail(invariant, detail);
            }
        }
    }

    /// A checkpoint the agent commits: no position in it may be past the last line Loki
    /// had stored (or refused, or the world had deleted unread) of its stream by now, or
    /// a crash would lose the lines between. This, not the agent's own word, is what
    /// makes the duplicate window after a crash ([`Self::handle_crash`]) trustworthy.
    ///
    /// An entry whose id and positions are those at the same place in the last
    /// checkpoint checked is skipped: it passed then (or the run already failed), and
    /// what Loki had stored of a stream only grows. Between two commits only a few
    /// containers move (about 4 of 55 on seed 85), so this is a walk over the checkpoint
    /// instead of a lookup per container. Seed 85 (callgrind, 7,010 commits): this
    /// observer 46.4 M → 28.7 M Ir; then comparing positions (the id by its `Arc`, no
    /// `since`) in one tight scan over the checkpoint as a slice, 24.7 M → 13.9 M Ir.
    ///
    /// While the set of containers stays the same, a checkpoint's ids are those of the
    /// last one checked (one `Arc`, see [`engine::port::ContainerCheckpoints`]): only the
    /// positions are compared. Otherwise each id is compared by its own `Arc` as well.
    /// Both skip the same entries. Seed 3 (7,848 commits): this observer 11.06 M ->
    /// 9.84 M Ir, and no reference count taken per entry.
    pub fn handle_commit(&mut self, checkpoint: &Checkpoint) {
        let mut failures = Vec::new();
        let (ids, entries) = (checkpoint.containers.ids(), checkpoint.containers.positions());
        let checked = &mut self.last_commit;
        let shared = checked.shares(ids);
        let mut at = 0;
        loop {
            at += match shared {
                true => checked.covered_keys_from(entries, at),
                false => checked.covered_from(ids, entries, at),
            };
            let (Some(id), Some(positions)) = (ids.get(at), entries.get(at)) else { break };
            checked.note(at, positions);
            at += 1;
            // One lookup by the id's `Arc` (see `by_container`), not a walk over every
            // container ever delivered.
            let found = self.tracks.get(id);
            for (stream, key) in [(StdStream::Stdout, positions.stdout), (StdStream::Stderr, positions.stderr)] {
                let Some(key) = key else { continue };
                let last = found.and_then(|tracks| tracks.streams[stream.index()].max_key);
                if last.is_none_or(|last| last < key) {
                    failures.push(format!(
                        "checkpoint: container {} {} committed at {key:?}, but Loki had only up to {last:?}",
                        id.short(),
                        stream.as_str()
                    ));
                }
            }
        }
        checked.checked(ids);
        for detail in failures {
            self.fail(Invariant::NoLoss, detail);
        }
    }

    /// The agent crashed: lines after the committed positions up to what was delivered
    /// may come again. A container whose checkpoint has its first sight under "now" and
    /// no position is opened there by the restart: nothing stamped before that `since`
    /// may come (its backlog is not the agent's). The `since` is the agent's word, held
    /// to it by the loss check: lines written after the first sight and not delivered
    /// are a loss (unless the first-sight commit never completed: a first run again).
    pub fn handle_crash(&mut self, committed: &Checkpoint) {
        self.forget_first_sights();
        for (id, positions) in &committed.containers {
            if let Some(since) = positions.since.filter(|_| !positions.has_position()) {
                self.tracks.get_or_default(id).first_sight = Some(since.saturating_mul(1_000_000_000));
            }
        }
        let tracks = self.tracks.iter_mut().flat_map(|(id, tracks)| {
            let [stdout, stderr] = &mut tracks.streams;
            [(id, StdStream::Stdout, stdout), (id, StdStream::Stderr, stderr)]
        });
        for (id, stream, track) in tracks {
            let delivered = track.keys.len() as u64;
            if delivered == 0 {
                continue;
            }
            let acked = committed.containers.get(id).and_then(|positions| match stream {
                StdStream::Stdout => positions.stdout,
                StdStream::Stderr => positions.stderr,
            });
            let first_unacked = match acked {
                Some(key) => track.through_key(key) as u64,
                None => 0,
            };
            if first_unacked < delivered {
                track.windows.push((first_unacked, delivered - 1));
            }
        }
    }

    /// Check no first sight (the agent that recorded them was only the probe).
    pub fn forget_first_sights(&mut self) {
        for (_, tracks) in self.tracks.iter_mut() {
            tracks.first_sight = None;
        }
    }

    /// The last line of a stream that `committed` covers (its committed position is
    /// that line's resume key), if any.
    pub fn committed_line(&self, id: &ContainerId, stream: StdStream, committed: &Checkpoint) -> Option<u64> {
        let positions = committed.containers.get(id)?;
        let key = match stream {
            StdStream::Stdout => positions.stdout,
            StdStream::Stderr => positions.stderr,
        }?;
        (self.tracks.get(id)?.streams[stream.index()].through_key(key) as u64).checked_sub(1)
    }

    /// Lines accounted for (delivered, refused, or skipped as deleted unread) for one
    /// stream of one container: the next line expected is this one.
    pub fn delivered(&self, id: &ContainerId, stream: StdStream) -> u64 {
        self.tracks.get(id).map_or(0, |tracks| tracks.streams[stream.index()].keys.len() as u64)
    }
}

#[cfg(test)]
mod seq_of_tests {
    use super::{line_seq, seq_and_text_of};

    #[test]
    fn seq_and_text_of_reads_as_line_seq_does() {
        let cases: [&[u8]; 15] = [
            b"",
            b"x",
            b"0",
            b"00x",
            b"000",
            b"7xxx",
            b"0012x",
            b"123456",
            b"9999999999999999999",
            b"9999999999999999999x",
            b"18446744073709551615",
            b"18446744073709551616",
            b"99999999999999999999",
            b"123456789012345678901",
            b"12\xff",
        ];
        for content in cases {
            let parsed = seq_and_text_of(content);
            assert_eq!(parsed.map(|(seq, _)| seq), line_seq(content), "{:?}", String::from_utf8_lossy(content));
            let text = parsed.map(|(seq, _)| seq.to_string()).filter(|text| content.starts_with(text.as_bytes()));
            assert_eq!(parsed.map(|(_, digits)| digits), parsed.map(|_| text.map_or(0, |text| text.len())));
        }
    }
}

#[cfg(test)]
mod covered_from_tests {
    use std::sync::Arc;

    use engine::model::{ContainerId, ResumeKey};
    use engine::port::ContainerCheckpoint;

    use super::{CheckedCommit, CheckedKey};

    /// `covered_from` counts exactly the entries from `from` on equal (same id
    /// allocation, same positions) to the checked ones, whatever the lengths and wherever
    /// they differ, with the ids shared (one `Arc`) or not.
    #[test]
    fn covered_from_counts_the_equal_prefix() {
        let ids: Vec<ContainerId> = (0..7).map(|at| ContainerId::new(format!("{at:064}"))).collect();
        let keys = [
            None,
            Some(ResumeKey { ts: 0, seq: 0 }),
            Some(ResumeKey { ts: 0, seq: u32::MAX }),
            Some(ResumeKey { ts: 5, seq: 0 }),
            Some(ResumeKey { ts: i64::MIN, seq: u32::MAX }),
        ];
        let positions = |at: usize, shift: usize| ContainerCheckpoint {
            stdout: keys[(at + shift) % keys.len()],
            stderr: keys[(at * 3 + shift) % keys.len()],
            since: None,
            ..Default::default()
        };
        let entries: Vec<ContainerCheckpoint> = (0..ids.len()).map(|at| positions(at, 0)).collect();
        for checked_len in 0..=entries.len() {
            for entries_len in 0..=entries.len() {
                let entry_ids: Arc<[ContainerId]> = ids[..entries_len].into();
                for differ in 0..=checked_len {
                    for change in 0..4 {
                        let mut checked_ids = ids[..checked_len].to_vec();
                        let checked_keys = entries[..checked_len]
                            .iter()
                            .enumerate()
                            .map(|(at, positions)| {
                                let mut positions = *positions;
                                if at == differ {
                                    match change {
                                        0 => positions.stdout = keys[(at + 1) % keys.len()],
                                        1 => positions.stderr = keys[(at * 3 + 1) % keys.len()],
                                        2 => checked_ids[at] = ContainerId::new(ids[at].0.to_string()),
                                        _ => positions.since = Some(1),
                                    }
                                }
                                [CheckedKey::new(positions.stdout), CheckedKey::new(positions.stderr)]
                            })
                            .collect();
                        let naive = (0..checked_len.min(entries_len))
                            .take_while(|&at| {
                                at != differ || change == 3 || {
                                    let other = positions(at, 1);
                                    (change == 0 && other.stdout == entries[at].stdout)
                                        || (change == 1 && other.stderr == entries[at].stderr)
                                }
                            })
                            .count();
                        let apart = CheckedCommit { ids: checked_ids.into(), keys: checked_keys };
                        let shared = CheckedCommit { ids: entry_ids.clone(), keys: apart.keys.clone() };
                        let entries = &entries[..entries_len];
                        for from in 0..=naive {
                            let context = format!("{checked_len} {entries_len} {differ} {change} {from}");
                            assert!(!apart.shares(&entry_ids), "{context}");
                            assert_eq!(apart.covered_from(&entry_ids, entries, from), naive - from, "{context}");
                            if checked_len == entries_len && change != 2 {
                                assert!(shared.shares(&entry_ids));
                                assert_eq!(shared.covered_keys_from(entries, from), naive - from, "{context}");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod commit_check_tests {
    use std::sync::Arc;

    use engine::model::{ContainerId, ResumeKey};
    use engine::port::{Checkpoint, ContainerCheckpoint, ContainerCheckpoints};

    use super::DeliveryChecker;
    use crate::check::Invariant;
    use crate::executor::Executor;
    use crate::world::docker::SimDocker;

    fn checkpoint(ids: &Arc<[ContainerId]>, stdout: Option<ResumeKey>) -> Checkpoint {
        let positions =
            vec![ContainerCheckpoint { stdout, stderr: None, since: None, ..Default::default() }; ids.len()];
        Checkpoint { containers: ContainerCheckpoints::from_parts(ids.clone(), positions) }
    }

    /// A position committed past what Loki stored fails the commit check on both of its
    /// scans: a checkpoint that shares the last one's ids (one `Arc`: the checkpoint
    /// task's steady state, most commits) and one whose ids were listed anew (a container
    /// came or went). Nothing was delivered here, so any committed key is ahead of Loki.
    #[test]
    fn a_position_ahead_of_loki_fails_with_the_ids_shared_or_listed_anew() {
        let executor = Executor::new(1, 1_700_000_000 * 1_000_000_000);
        let ids: Arc<[ContainerId]> = (0..3).map(|at| ContainerId::new(format!("{at:064}"))).collect();
        let ahead = Some(ResumeKey { ts: 5, seq: 0 });
        for listed_anew in [false, true] {
            let mut checker = DeliveryChecker::new(SimDocker::new(executor.handle(), 1), 64 << 10);
            checker.handle_commit(&checkpoint(&ids, None));
            assert!(checker.first_violation.is_none(), "nothing committed yet");
            let next_ids = if listed_anew { ids.iter().cloned().collect() } else { ids.clone() };
            checker.handle_commit(&checkpoint(&next_ids, ahead));
            let (invariant, detail) = checker.first_violation.clone().expect("a position ahead of Loki");
            assert_eq!(invariant, Invariant::NoLoss, "listed anew: {listed_anew}");
            assert!(detail.starts_with("checkpoint:"), "{detail}");
        }
    }
}
