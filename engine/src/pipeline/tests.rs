//! Tests of the pure parts of the pipeline: batching and splitting.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use crate::model::{Batch, ContainerId, Line, Position, ResumeKey, SourceId, StdStream};
use crate::pipeline::dispatcher::BatchBuilder;
use crate::pipeline::queue::Chunk;
use crate::pipeline::sink::split_in_half;
use crate::rt::Instant;

fn chunk(container: &str, first: u32, lines: u32, line_bytes: usize) -> Chunk {
    let lines: Vec<Line> = (first..first + lines)
        .map(|n| Line {
            ts: i64::from(n),
            bytes: Bytes::from(vec![b'x'; line_bytes]),
            position: Position::Container(ResumeKey { ts: i64::from(n), seq: 0 }),
        })
        .collect();
    Chunk {
        source: SourceId::Container { id: ContainerId::new(container), stream: StdStream::Stdout },
        labels: Arc::new(BTreeMap::from([("container".to_string(), container.to_string())])),
        bytes: lines.iter().map(|line| line.bytes.len()).sum(),
        lines,
    }
}

fn flatten(batches: &[Batch]) -> Vec<(String, i64)> {
    batches
        .iter()
        .flat_map(|batch| batch.streams.iter())
        .flat_map(|stream| {
            let SourceId::Container { id, .. } = &stream.source;
            stream.lines.iter().map(move |line| (id.to_string(), line.ts))
        })
        .collect()
}

#[test]
fn batches_close_at_the_byte_bound_and_group_by_source() {
    let mut builder = BatchBuilder::new(100, 1000);
    let mut full = Vec::new();
    builder.handle_chunk(Instant::ZERO, chunk("a", 0, 4, 20), &mut full);
    builder.handle_chunk(Instant::ZERO, chunk("b", 0, 4, 20), &mut full);
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].bytes, 100);
    assert_eq!(full[0].streams.len(), 2, "a then b in one batch");
    let rest = builder.flush().unwrap();
    assert_eq!(rest.lines, 3);
    assert!(builder.flush().is_none());
    assert!(builder.opened_at().is_none(), "no timer once nothing is open");
}

#[test]
fn a_line_larger_than_a_batch_travels_alone() {
    let mut builder = BatchBuilder::new(10, 1000);
    let mut full = Vec::new();
    builder.handle_chunk(Instant::ZERO, chunk("a", 0, 1, 3), &mut full);
    builder.handle_chunk(Instant::ZERO, chunk("a", 1, 1, 50), &mut full);
    assert_eq!(full.iter().map(|batch| batch.lines).collect::<Vec<_>>(), [1, 1]);
    assert_eq!(full[1].bytes, 50);
}

#[test]
fn a_batch_of_many_sources_keeps_one_stream_per_source() {
    // 40 sources: more than the batch builder searches in place (16), so it indexes them.
    let mut builder = BatchBuilder::new(usize::MAX / 2, usize::MAX / 2);
    let mut full = Vec::new();
    for round in 0..3 {
        for source in 0..40 {
            builder.handle_chunk(Instant::ZERO, chunk(&format!("c{source}"), round, 1, 1), &mut full);
        }
    }
    let batch = builder.flush().unwrap();
    assert!(full.is_empty());
    assert_eq!(batch.streams.len(), 40);
    for (n, stream) in batch.streams.iter().enumerate() {
        let SourceId::Container { id, .. } = &stream.source;
        assert_eq!(id.as_str(), format!("c{n}"));
        assert_eq!(stream.lines.iter().map(|line| line.ts).collect::<Vec<_>>(), [0, 1, 2]);
    }
}

proptest! {
    #[test]
    fn batching_keeps_every_line_in_order_within_bounds(
        // Up to 40 sources: past the batch builder's in-place search (16), its index.
        chunks in prop::collection::vec((0u8..40, 1u32..20, 0usize..40), 1..80),
        bytes_max in 1usize..3000,
        lines_max in 1usize..300,
    ) {
        let mut builder = BatchBuilder::new(bytes_max, lines_max);
        let mut full = Vec::new();
        let mut expected = Vec::new();
        let mut next = [0u32; 40];
        for (source, lines, line_bytes) in chunks {
            let name = format!("c{source}");
            let first = next[source as usize];
            next[source as usize] += lines;
            expected.extend((first..first + lines).map(|n| (name.clone(), i64::from(n))));
            builder.handle_chunk(Instant::ZERO, chunk(&name, first, lines, line_bytes), &mut full);
        }
        full.extend(builder.flush());
        for batch in &full {
            prop_assert!(batch.lines <= lines_max);
            prop_assert!(batch.bytes <= bytes_max || batch.lines == 1);
            prop_assert_eq!(batch.lines, batch.streams.iter().map(|s| s.lines.len()).sum::<usize>());
            // One stream per source.
            let sources: std::collections::BTreeSet<_> = batch.streams.iter().map(|s| &s.source).collect();
            prop_assert_eq!(sources.len(), batch.streams.len());
        }
        // Per source, order is kept; overall every line appears once.
        let got = flatten(&full);
        for source in 0..40 {
            let name = format!("c{source}");
            let got_source: Vec<_> = got.iter().filter(|(id, _)| *id == name).collect();
            let expected_source: Vec<_> = expected.iter().filter(|(id, _)| *id == name).collect();
            prop_assert_eq!(got_source, expected_source);
        }
        prop_assert_eq!(got.len(), expected.len());
    }

    #[test]
    fn splitting_in_half_keeps_order(lines in prop::collection::vec(0u8..3, 2..50)) {
        let mut builder = BatchBuilder::new(usize::MAX / 2, usize::MAX / 2);
        let mut full = Vec::new();
        for (n, source) in lines.iter().enumerate() {
            builder.handle_chunk(Instant::ZERO, chunk(&format!("c{source}"), n as u32, 1, 1), &mut full);
        }
        let batch = builder.flush().unwrap();
        let (first, second) = split_in_half(&batch).unwrap();
        prop_assert_eq!(first.lines + second.lines, batch.lines);
        prop_assert!(first.lines.abs_diff(second.lines) <= 1);
        let mut halves = flatten(&[first, second]);
        let mut whole = flatten(&[batch]);
        halves.sort();
        whole.sort();
        prop_assert_eq!(halves, whole);
    }
}
