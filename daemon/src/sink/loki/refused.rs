//! What a Loki `400` refused: the refused lines of one batch, counted by reason.
//!
//! Loki's `400` is per entry. Its distributor validates every entry of a push request,
//! sends the valid ones on to the ingesters (they are stored) and then answers `400`
//! with the message of the *last* validation error only (`pkg/distributor`,
//! `pkg/validation`). An ingester refuses entries of one stream and names them instead,
//! ending its message with `total ignored: N out of M` (`pkg/ingester/stream.go`). So a
//! `400` is never resent, and [`refused_lines`] reads the body to learn how many lines
//! were refused and why:
//!
//! - `total ignored: N out of M` (the ingester): `N` lines. The reason is read from the
//!   listed entries (`entry with timestamp … ignored, reason: '…'`): Loki lists at most
//!   `max_returned_errors` of them, the rest are counted under the last listed reason.
//! - `entry for stream '…' has timestamp too old: …, oldest acceptable timestamp is: T`
//!   (`greater_than_max_sample_age`): every line of the batch older than `T`, which is
//!   exactly what the distributor refused (up to `T`'s whole-second rounding).
//! - `Max entry size 'L' bytes exceeded …` (`line_too_long`): every line longer than `L`.
//! - `Error parsing labels '…'`, `… label names; limit …`, `label name too long`,
//!   `label value too long`, `duplicate label name`, `at least one label pair is
//!   required` (`invalid_labels` and friends): the lines of the stream Loki names.
//! - `entry out of order` / `entry too far behind` alone: the lines of the stream named.
//! - `… timestamp too new …` (`too_far_in_future`): the named stream's lines, counted as
//!   `sink_rejected`.
//!
//! Where a message names a stream that is not in the batch (or none), every line of the
//! batch is counted under the reason: a loss is over-counted rather than hidden. Other
//! reasons the distributor found in the same request are not in its answer (it keeps the
//! last one), so they cannot be counted; those lines are counted as delivered.
//!
//! A body that is none of the above returns `None`: the caller rejects the whole batch
//! (every line counted as `sink_rejected`) with the body in the detail.
//!
//! Line lengths are the batch's bytes; an encoder that replaced invalid UTF-8 (U+FFFD)
//! made the line Loki measured a little longer, so `line_too_long` can be under-counted
//! by lines within a few bytes of the limit.

use std::collections::BTreeMap;

use engine::model::{Batch, BatchStream};
use engine::telemetry::DropReason;

/// The refused lines of `batch` by reason, as read from a `400` body; `None` when the
/// body is not one of Loki's per-entry messages. Reasons appear once each, in
/// [`DropReason::ALL`] order, with non-zero counts; the sum is at most `batch.lines`.
pub fn refused_lines(body: &str, batch: &Batch) -> Option<Vec<(DropReason, u64)>> {
    let mut counts: BTreeMap<DropReason, u64> = BTreeMap::new();
    if body.contains(TOTAL_IGNORED) {
        ingester_refusals(body, &mut counts)?;
    } else {
        distributor_refusals(body, batch, &mut counts)?;
    }
    let mut left = batch.lines as u64;
    let refused = DropReason::ALL
        .iter()
        .filter_map(|reason| {
            let lines = counts.get(reason).copied().unwrap_or(0).min(left);
            left -= lines;
            (lines > 0).then_some((*reason, lines))
        })
        .collect();
    Some(refused)
}

const TOTAL_IGNORED: &str = "total ignored: ";
const ENTRY_REASON: &str = "ignored, reason: '";

/// `entry with timestamp … ignored, reason: '…',` lines and `total ignored: N out of M`.
fn ingester_refusals(body: &str, counts: &mut BTreeMap<DropReason, u64>) -> Option<()> {
    let mut total = 0u64;
    for (at, _) in body.match_indices(TOTAL_IGNORED) {
        let digits: String = body[at + TOTAL_IGNORED.len()..].chars().take_while(char::is_ascii_digit).collect();
        total += digits.parse::<u64>().ok()?;
    }
    let listed: Vec<DropReason> = body
        .match_indices(ENTRY_REASON)
        .map(|(at, _)| {
            let entry = body[at + ENTRY_REASON.len()..].lines().next().unwrap_or_default();
            reason_of(entry).unwrap_or(DropReason::SinkRejected)
        })
        .collect();
    let last = listed.last().copied().unwrap_or(DropReason::SinkRejected);
    if listed.len() as u64 > total {
        *counts.entry(last).or_default() += total;
        return Some(());
    }
    for reason in &listed {
        *counts.entry(*reason).or_default() += 1;
    }
    *counts.entry(last).or_default() += total - listed.len() as u64;
    Some(())
}

/// One validation message from the distributor (the last one it saw).
fn distributor_refusals(body: &str, batch: &Batch, counts: &mut BTreeMap<DropReason, u64>) -> Option<()> {
    let reason = reason_of(body)?;
    let lines = if body.contains("timestamp too old") {
        match oldest_acceptable(body) {
            Some(oldest) => lines_where(batch, |_, line| line.ts < oldest),
            None => named_stream_lines(body, batch),
        }
    } else if let Some(limit) = max_entry_size(body) {
        lines_where(batch, |_, line| line.bytes.len() > limit)
    } else {
        named_stream_lines(body, batch)
    };
    *counts.entry(reason).or_default() += lines;
    Some(())
}

/// Which reason a Loki message (or the text right after `reason: '`) gives.
fn reason_of(message: &str) -> Option<DropReason> {
    const TOO_OLD: [&str; 4] = ["timestamp too old", "too far behind", "out of order", "greater_than_max_sample_age"];
    const LINE_TOO_LONG: [&str; 2] = ["Max entry size", "line too long"];
    const INVALID_LABELS: [&str; 7] = [
        "Error parsing labels",
        "error parsing labels",
        "invalid labels",
        "label names; limit",
        "label name too long",
        "label value too long",
        "duplicate label name",
    ];
    const MISSING_LABELS: &str = "at least one label pair is required";
    const OTHER: [&str; 2] = ["timestamp too new", "structured metadata"];
    // The first matching phrase of the message decides (a listed entry's text is
    // followed by the rest of the body).
    let candidates = TOO_OLD
        .iter()
        .map(|phrase| (*phrase, DropReason::SinkTooOld))
        .chain(LINE_TOO_LONG.iter().map(|phrase| (*phrase, DropReason::SinkLineTooLong)))
        .chain(INVALID_LABELS.iter().map(|phrase| (*phrase, DropReason::SinkInvalidLabels)))
        .chain(std::iter::once((MISSING_LABELS, DropReason::SinkInvalidLabels)))
        .chain(OTHER.iter().map(|phrase| (*phrase, DropReason::SinkRejected)));
    candidates.filter_map(|(phrase, reason)| message.find(phrase).map(|at| (at, reason))).min().map(|(_, r)| r)
}

/// `oldest acceptable timestamp is: 2024-01-01T00:00:00Z` → Unix nanoseconds.
fn oldest_acceptable(body: &str) -> Option<i64> {
    const MARK: &str = "oldest acceptable timestamp is: ";
    let start = body.find(MARK)? + MARK.len();
    let text: &str = body[start..].split([' ', ',', '\n', '\'']).next()?;
    engine::parse::timestamp::parse_rfc3339_nanos(text.as_bytes())
}

/// `Max entry size '262144' bytes exceeded …` → 262144.
fn max_entry_size(body: &str) -> Option<usize> {
    const MARK: &str = "Max entry size '";
    let start = body.find(MARK)? + MARK.len();
    body[start..].split('\'').next()?.parse().ok()
}

/// The lines of the streams whose labels Loki names (`stream '{…}'`, `labels '{…}'`),
/// or of the whole batch when it names none that is in the batch.
fn named_stream_lines(body: &str, batch: &Batch) -> u64 {
    let named = named_labels(body);
    let matched = match &named {
        Some(named) => lines_where(batch, |stream, _| labels_match(stream, named)),
        None => 0,
    };
    if matched > 0 {
        matched
    } else {
        batch.lines as u64
    }
}

/// The first `'{…}'` of the message: the stream's labels as Loki printed them.
fn named_labels(body: &str) -> Option<&str> {
    let start = body.find("'{")? + 1;
    let end = start + body[start..].find("}'")? + 1;
    Some(&body[start..end])
}

fn labels_match(stream: &BatchStream, named: &str) -> bool {
    if engine::loki::protobuf::render_labels(&stream.labels) == named {
        return true;
    }
    matches!(engine::loki::protobuf::parse_labels(named), Ok(parsed) if parsed == *stream.labels)
}

fn lines_where(batch: &Batch, refused: impl Fn(&BatchStream, &engine::model::Line) -> bool) -> u64 {
    batch.streams.iter().map(|stream| stream.lines.iter().filter(|line| refused(stream, line)).count() as u64).sum()
}

#[cfg(test)]
#[path = "refused_tests.rs"]
mod tests;
