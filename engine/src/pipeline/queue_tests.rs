//! Unit tests of the queue's budget: what a chunk costs, who waits, what a reader holds.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::FutureExt;

use super::*;
use crate::model::{ContainerId, Position, ResumeKey, StdStream};

fn empty_lines(count: usize) -> Chunk {
    let lines: Vec<Line> = (0..count)
        .map(|n| Line {
            ts: n as i64,
            bytes: Bytes::new(),
            position: Position::Container(ResumeKey { ts: n as i64, seq: 0 }),
        })
        .collect();
    Chunk {
        source: SourceId::Container { id: ContainerId::new("c"), stream: StdStream::Stdout },
        labels: Arc::new(BTreeMap::new()),
        lines,
        bytes: 0,
    }
}

/// The figures [`LINE_OVERHEAD_BYTES`] states: a line record is 56 bytes and a chunk
/// record 64 on 64-bit targets, and both fit in the overhead.
#[test]
fn the_per_line_overhead_covers_a_line_and_its_chunk_record() {
    let (line, chunk) = (std::mem::size_of::<Line>(), std::mem::size_of::<Chunk>());
    if cfg!(target_pointer_width = "64") {
        assert_eq!((line, chunk), (56, 64), "update LINE_OVERHEAD_BYTES and its comment");
    }
    assert!(line + chunk <= LINE_OVERHEAD_BYTES);
    assert_eq!(Budget::cost(3, 10), 10 + 3 * LINE_OVERHEAD_BYTES);
}

/// A flood of empty lines is charged per line: it fills the budget and the next
/// send waits until a batch is refunded.
#[test]
fn empty_lines_fill_the_budget_and_make_the_source_wait() {
    let telemetry = Arc::new(Telemetry::default());
    let budget = Budget::new(10 * LINE_OVERHEAD_BYTES, telemetry.clone());
    let (sender, mut receiver) = queue(budget.clone());
    sender.send(empty_lines(10)).now_or_never().expect("fits at once").unwrap();
    assert_eq!(Telemetry::get(&telemetry.queue_bytes), 10 * LINE_OVERHEAD_BYTES as u64);
    let mut blocked = Box::pin(sender.send(empty_lines(1)));
    assert!((&mut blocked).now_or_never().is_none(), "an empty line still costs its overhead");
    let chunk = receiver.recv().now_or_never().unwrap().unwrap();
    budget.refund(chunk.lines.len(), chunk.bytes);
    blocked.now_or_never().expect("room again after the refund").unwrap();
    assert_eq!(Telemetry::get(&telemetry.queue_bytes_max_seen), 10 * LINE_OVERHEAD_BYTES as u64);
}

/// A reader's buffer is charged at once; beyond the permits it is debt, which the
/// next refund pays before a source may send again.
#[test]
fn a_reader_hold_is_charged_and_its_debt_paid_before_sources_send() {
    let unit = LINE_OVERHEAD_BYTES;
    let budget = Budget::new(4 * unit, Arc::new(Telemetry::default()));
    let (sender, mut receiver) = queue(budget.clone());
    sender.send(empty_lines(2)).now_or_never().expect("fits").unwrap();
    let mut hold = sender.reader_hold();
    hold.set(3 * unit);
    assert_eq!(hold.held(), 3 * unit);
    assert_eq!(budget.semaphore.available_permits(), 0);
    assert_eq!(budget.ledger.lock().unwrap().debt, unit);
    let mut waiting = Box::pin(sender.send(empty_lines(1)));
    assert!((&mut waiting).now_or_never().is_none(), "the budget is spent");
    let chunk = receiver.recv().now_or_never().unwrap().unwrap();
    budget.refund(chunk.lines.len(), chunk.bytes);
    // The refund of two lines paid the debt of one and freed one: room for one line.
    assert_eq!(budget.ledger.lock().unwrap().debt, 0);
    waiting.now_or_never().expect("room after the debt is paid").unwrap();
    drop(hold);
    assert_eq!(budget.semaphore.available_permits(), 3 * unit);
}

/// Seed 1190: a reader cancelled (graceful stop) while it waits for the budget with
/// lines it read is counted as holding them, the chunk it waits on and the ones after
/// it; the lines it queued are not.
#[test]
fn a_reader_cancelled_while_it_waits_to_queue_leaves_its_lines_counted() {
    let telemetry = Arc::new(Telemetry::default());
    let budget = Budget::new(3 * LINE_OVERHEAD_BYTES, telemetry.clone());
    let (sender, mut receiver) = queue(budget.clone());
    let mut chunks = vec![empty_lines(2), empty_lines(2), empty_lines(1)];
    let mut waiting = Box::pin(sender.send_read(&mut chunks));
    assert!((&mut waiting).now_or_never().is_none(), "the second chunk does not fit");
    assert_eq!(Telemetry::get(&telemetry.reader_lines_held), 3);
    drop(waiting);
    assert!(chunks.is_empty(), "the unqueued chunks are dropped with the future");
    assert_eq!(Telemetry::get(&telemetry.reader_lines_held), 3, "dropped unqueued: still counted");
    assert_eq!(Telemetry::get(&telemetry.queue_lines), 2);
    // A reader that queues everything holds nothing.
    let chunk = receiver.recv().now_or_never().unwrap().unwrap();
    budget.refund(chunk.lines.len(), chunk.bytes);
    let telemetry_after = Arc::new(Telemetry::default());
    let (sender, _receiver) = queue(Budget::new(3 * LINE_OVERHEAD_BYTES, telemetry_after.clone()));
    sender.send_read(&mut vec![empty_lines(1), empty_lines(2)]).now_or_never().expect("fits").unwrap();
    assert_eq!(Telemetry::get(&telemetry_after.reader_lines_held), 0);
}

/// A closed queue (shutdown) refuses a reader's chunks: their lines stay counted as
/// held, the refused chunk's and the ones after it, and its budget is refunded.
#[test]
fn a_closed_queue_leaves_a_readers_lines_counted() {
    let telemetry = Arc::new(Telemetry::default());
    let budget = Budget::new(8 * LINE_OVERHEAD_BYTES, telemetry.clone());
    let (sender, receiver) = queue(budget.clone());
    drop(receiver);
    let mut chunks = vec![empty_lines(2), empty_lines(1)];
    let refused = sender.send_read(&mut chunks).now_or_never().expect("nothing waits");
    assert!(refused.is_err());
    assert!(chunks.is_empty());
    assert_eq!(Telemetry::get(&telemetry.reader_lines_held), 3);
    assert_eq!(Telemetry::get(&telemetry.queue_lines), 0, "the refused chunk was refunded");
    assert_eq!(budget.semaphore.available_permits(), 8 * LINE_OVERHEAD_BYTES);
}

/// Readers' buffers alone never wedge the pipeline: an empty one takes a chunk.
#[test]
fn an_empty_pipeline_takes_a_chunk_even_when_readers_hold_the_budget() {
    let unit = LINE_OVERHEAD_BYTES;
    let budget = Budget::new(4 * unit, Arc::new(Telemetry::default()));
    let (sender, mut receiver) = queue(budget.clone());
    let mut hold = sender.reader_hold();
    hold.set(4 * unit);
    sender.send(empty_lines(2)).now_or_never().expect("an empty pipeline takes it").unwrap();
    let mut second = Box::pin(sender.send(empty_lines(1)));
    assert!((&mut second).now_or_never().is_none(), "no longer empty");
    let chunk = receiver.recv().now_or_never().unwrap().unwrap();
    budget.refund(chunk.lines.len(), chunk.bytes);
    second.now_or_never().expect("empty again").unwrap();
    assert_eq!(budget.ledger.lock().unwrap().pipeline, unit);
}
