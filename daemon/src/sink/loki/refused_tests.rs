//! `refused_lines` on the bodies Loki's distributor and ingesters answer with (message
//! formats of `pkg/validation/validate.go`, `pkg/distributor/validator.go` and
//! `pkg/ingester/stream.go`; timestamps RFC 3339 as the validator formats them).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use engine::model::{Batch, BatchStream, ContainerId, Line, Position, ResumeKey, SourceId, StdStream};
use engine::telemetry::DropReason;

use super::refused_lines;

const SECOND: i64 = 1_000_000_000;
/// 2023-11-08T12:00:00Z
const NOON: i64 = 1_699_444_800 * SECOND;

fn stream(container: &str, lines: &[(i64, usize)]) -> BatchStream {
    let labels = BTreeMap::from([
        ("container".to_string(), container.to_string()),
        ("stream".to_string(), "stdout".to_string()),
    ]);
    BatchStream {
        source: SourceId::Container { id: ContainerId::new(container), stream: StdStream::Stdout },
        labels: Arc::new(labels),
        lines: lines
            .iter()
            .map(|&(ts, len)| Line {
                ts,
                bytes: Bytes::from(vec![b'x'; len]),
                position: Position::Container(ResumeKey { ts, seq: 0 }),
            })
            .collect(),
    }
}

/// web: 3 lines an hour before noon, 2 at noon (one of 300,000 bytes); db: 4 at noon.
fn batch() -> Batch {
    let web = stream("web", &[(NOON - 3600 * SECOND, 10), (NOON - 3599 * SECOND, 10), (NOON - 3598 * SECOND, 10)]);
    let mut web = web;
    web.lines.extend(stream("web", &[(NOON, 300_000), (NOON + 1, 5)]).lines);
    let db = stream("db", &[(NOON, 1), (NOON, 2), (NOON, 3), (NOON, 262_145)]);
    let lines = web.lines.len() + db.lines.len();
    let bytes = web.lines.iter().chain(&db.lines).map(|line| line.bytes.len()).sum();
    Batch { streams: vec![web, db], bytes, lines }
}

#[test]
fn too_old_counts_every_line_before_the_oldest_acceptable_timestamp() {
    // Loki 2.9/3.x `greater_than_max_sample_age`, the distributor's last error.
    let body = "entry for stream '{container=\"web\", stream=\"stdout\"}' has timestamp too old: \
                2023-11-08T11:00:02Z, oldest acceptable timestamp is: 2023-11-08T11:30:00Z\n";
    assert_eq!(refused_lines(body, &batch()), Some(vec![(DropReason::SinkTooOld, 3)]));
}

#[test]
fn line_too_long_counts_every_line_over_the_limit_in_every_stream() {
    let body = "Max entry size '262144' bytes exceeded for stream '{container=\"db\", stream=\"stdout\"}' \
                while adding an entry with length '262145' bytes\n";
    assert_eq!(refused_lines(body, &batch()), Some(vec![(DropReason::SinkLineTooLong, 2)]));
}

#[test]
fn invalid_labels_count_the_named_stream() {
    let body = "Error parsing labels '{container=\"db\", stream=\"stdout\"}' with error: 1:2: parse error: \
                unexpected character inside braces: '1'\n";
    assert_eq!(refused_lines(body, &batch()), Some(vec![(DropReason::SinkInvalidLabels, 4)]));
    let too_many = "entry for stream '{container=\"web\", stream=\"stdout\"}' has 16 label names; limit 15\n";
    assert_eq!(refused_lines(too_many, &batch()), Some(vec![(DropReason::SinkInvalidLabels, 5)]));
    let value = "stream '{container=\"web\", stream=\"stdout\"}' has label value too long: 'aaaa'";
    assert_eq!(refused_lines(value, &batch()), Some(vec![(DropReason::SinkInvalidLabels, 5)]));
}

#[test]
fn a_stream_not_in_the_batch_counts_the_whole_batch() {
    let body = "stream '{app=\"other\"}' has duplicate label name: 'app'";
    assert_eq!(refused_lines(body, &batch()), Some(vec![(DropReason::SinkInvalidLabels, 9)]));
    let future = "entry for stream '{container=\"nope\"}' has timestamp too new: 2030-01-01T00:00:00Z";
    assert_eq!(refused_lines(future, &batch()), Some(vec![(DropReason::SinkRejected, 9)]));
}

#[test]
fn ingester_total_ignored_is_the_count_and_listed_reasons_split_it() {
    // Loki 3.x ingester: at most `max_returned_errors` (10) entries listed.
    let mut body = String::new();
    for second in 0..2 {
        body.push_str(&format!(
            "entry with timestamp 2023-11-08 11:00:0{second} +0000 UTC ignored, reason: 'entry too far behind, \
             entry timestamp is: 2023-11-08T11:00:0{second}Z, oldest acceptable timestamp is: 2023-11-08T11:30:00Z',\n"
        ));
    }
    body.push_str("user 'fake', total ignored: 3 out of 9 for stream: {container=\"web\", stream=\"stdout\"}");
    assert_eq!(refused_lines(&body, &batch()), Some(vec![(DropReason::SinkTooOld, 3)]));

    // Loki 2.x: `for stream:` inside each entry, `total ignored` last; mixed reasons.
    let old = "entry with timestamp 2023-11-08 11:00:00 +0000 UTC ignored, reason: 'entry out of order' for stream: \
               {container=\"web\"},\nentry with timestamp 2023-11-08 12:00:00 +0000 UTC ignored, reason: 'Max entry \
               size '262144' bytes exceeded for stream '{container=\"web\"}' while adding an entry with length \
               '300000' bytes' for stream: {container=\"web\"},\ntotal ignored: 4 out of 9";
    assert_eq!(refused_lines(old, &batch()), Some(vec![(DropReason::SinkTooOld, 1), (DropReason::SinkLineTooLong, 3)]));
}

#[test]
fn counts_never_exceed_the_batch() {
    let body = "user 'fake', total ignored: 500 out of 500 for stream: {container=\"web\"}";
    assert_eq!(refused_lines(body, &batch()), Some(vec![(DropReason::SinkRejected, 9)]));
}

#[test]
fn bodies_that_are_not_loki_validation_messages_are_none() {
    for body in ["", "snappy: corrupt input\n", "<html>Bad Request</html>", "total ignored: many"] {
        assert_eq!(refused_lines(body, &batch()), None, "{body:?}");
    }
}
