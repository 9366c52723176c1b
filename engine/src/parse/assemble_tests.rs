//! Tests for [`super`]: zero-copy common case, merging of any split into entries, and
//! the truncation bounds.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn entry(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[test]
fn whole_line_is_a_zero_copy_slice() {
    let mut assembler = Assembler::new(100);
    let content = entry("hello\n");
    let pointer = content.as_ptr();
    let line = assembler.push(7, content).unwrap();
    assert_eq!(line.bytes.as_ptr(), pointer);
    assert_eq!(line, Assembled { ts: 7, first_ts: 7, bytes: entry("hello"), truncated: false, original_bytes: 5 });
    assert_eq!(assembler.pending_bytes(), 0);
}

#[test]
fn only_newline_is_stripped() {
    let mut assembler = Assembler::new(100);
    assert_eq!(assembler.push(1, entry("dos\r\n")).unwrap().bytes, entry("dos\r"));
    assert_eq!(assembler.push(2, entry("\n")).unwrap().bytes, Bytes::new());
    assert_eq!(assembler.push(3, entry("two\n\n")).unwrap().bytes, entry("two\n"));
}

#[test]
fn partials_merge_with_first_and_last_timestamps() {
    let mut assembler = Assembler::new(100);
    assert_eq!(assembler.push(10, entry("abc")), None);
    assert_eq!(assembler.push(11, entry("def")), None);
    assert_eq!(assembler.pending_bytes(), 6);
    let line = assembler.push(12, entry("gh\n")).unwrap();
    assert_eq!(line, Assembled { ts: 12, first_ts: 10, bytes: entry("abcdefgh"), truncated: false, original_bytes: 8 });
    assert_eq!(assembler.pending_bytes(), 0);
    // The next line starts fresh.
    assert_eq!(assembler.push(13, entry("x\n")).unwrap().first_ts, 13);
}

#[test]
fn single_entry_over_the_limit_is_truncated() {
    let mut assembler = Assembler::new(4);
    let line = assembler.push(1, entry("abcdefg\n")).unwrap();
    assert_eq!(line.bytes, Bytes::from([&b"abcd"[..], TRUNCATION_MARKER].concat()));
    assert!(line.truncated);
    assert_eq!(line.original_bytes, 7);
    // Exactly the limit is not truncated.
    let line = assembler.push(2, entry("abcd\n")).unwrap();
    assert_eq!((line.bytes, line.truncated), (entry("abcd"), false));
}

#[test]
fn partials_over_the_limit_are_discarded_until_newline() {
    let mut assembler = Assembler::new(5);
    assert_eq!(assembler.push(1, entry("abc")), None);
    assert_eq!(assembler.push(2, entry("defgh")), None);
    assert_eq!(assembler.pending_bytes(), 5);
    assert_eq!(assembler.push(3, entry("ijklmnop")), None);
    assert_eq!(assembler.pending_bytes(), 5);
    let line = assembler.push(4, entry("q\n")).unwrap();
    assert_eq!(line.bytes, Bytes::from([&b"abcde"[..], TRUNCATION_MARKER].concat()));
    assert_eq!((line.ts, line.first_ts, line.truncated, line.original_bytes), (4, 1, true, 17));
    assert_eq!(assembler.pending_bytes(), 0);
}

#[test]
fn partial_filling_the_limit_exactly_then_newline_is_not_truncated() {
    let mut assembler = Assembler::new(4);
    assert_eq!(assembler.push(1, entry("abcd")), None);
    let line = assembler.push(2, entry("\n")).unwrap();
    assert_eq!((line.bytes, line.truncated, line.original_bytes), (entry("abcd"), false, 4));
}

#[test]
fn take_pending_flushes_and_clear_drops() {
    let mut assembler = Assembler::new(3);
    assert_eq!(assembler.take_pending(), None);
    assembler.push(5, entry("ab"));
    assembler.push(6, entry("cd"));
    let flushed = assembler.take_pending().unwrap();
    assert_eq!(flushed.bytes, Bytes::from([&b"abc"[..], TRUNCATION_MARKER].concat()));
    assert_eq!((flushed.ts, flushed.first_ts, flushed.truncated, flushed.original_bytes), (6, 5, true, 4));
    assert_eq!(assembler.take_pending(), None);

    assembler.push(7, entry("zz"));
    assembler.clear();
    assert_eq!(assembler.pending_bytes(), 0);
    assert_eq!(assembler.take_pending(), None);
    let line = assembler.push(8, entry("new\n")).unwrap();
    assert_eq!((line.bytes, line.first_ts), (entry("new"), 8));
}

/// A line's body (no `'\n'`) and where Docker cut it into entries. Lengths are kept
/// close to the limits below so that "exactly at the limit" comes up often.
fn arb_line() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (
        proptest::collection::vec(any::<u8>().prop_filter("not a newline", |b| *b != b'\n'), 0..24),
        proptest::collection::vec(any::<usize>(), 0..4),
    )
}

/// Cuts `body` into entries; only the last ends in `'\n'`. Empty middle pieces are
/// dropped (Docker never sends them), so every partial is non-empty.
fn entries_of(body: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut entries = Vec::new();
    let mut start = 0;
    for cut in cuts {
        if cut > start {
            entries.push(body[start..cut].to_vec());
            start = cut;
        }
    }
    let mut last = body[start..].to_vec();
    last.push(b'\n');
    entries.push(last);
    entries
}

proptest! {
    #[test]
    fn any_split_yields_the_concatenation(
        lines in proptest::collection::vec(arb_line(), 0..8),
        line_bytes_max in 0usize..24,
    ) {
        let mut assembler = Assembler::new(line_bytes_max);
        let mut ts = 0;
        for (body, cuts) in &lines {
            let entries = entries_of(body, cuts);
            let first_ts = ts + 1;
            let mut output = None;
            for (index, content) in entries.iter().enumerate() {
                ts += 1;
                prop_assert!(output.is_none());
                output = assembler.push(ts, Bytes::copy_from_slice(content));
                prop_assert_eq!(output.is_some(), index + 1 == entries.len());
                prop_assert!(assembler.pending_bytes() <= line_bytes_max);
                prop_assert!(assembler.pending.capacity() <= line_bytes_max + TRUNCATION_MARKER.len());
            }
            let line = output.unwrap();
            let truncated = body.len() > line_bytes_max;
            let expected = if truncated {
                [&body[..line_bytes_max], TRUNCATION_MARKER].concat()
            } else {
                body.clone()
            };
            prop_assert_eq!(&line.bytes[..], &expected[..]);
            prop_assert!(line.bytes.len() <= line_bytes_max + TRUNCATION_MARKER.len());
            prop_assert_eq!(line.truncated, truncated);
            prop_assert_eq!(line.original_bytes, body.len());
            prop_assert_eq!((line.first_ts, line.ts), (first_ts, ts));
            prop_assert_eq!(assembler.pending_bytes(), 0);
        }
        prop_assert_eq!(assembler.take_pending(), None);
    }

    #[test]
    fn take_pending_matches_the_partials_so_far(
        pieces in proptest::collection::vec(
            proptest::collection::vec(any::<u8>().prop_filter("not a newline", |b| *b != b'\n'), 1..10),
            1..5,
        ),
        line_bytes_max in 0usize..40,
    ) {
        let mut assembler = Assembler::new(line_bytes_max);
        for (index, piece) in pieces.iter().enumerate() {
            prop_assert_eq!(assembler.push(index as i64, Bytes::copy_from_slice(piece)), None);
        }
        let body = pieces.concat();
        let flushed = assembler.take_pending().unwrap();
        let kept = body.len().min(line_bytes_max);
        prop_assert_eq!(&flushed.bytes[..kept], &body[..kept]);
        prop_assert_eq!(flushed.truncated, body.len() > line_bytes_max);
        prop_assert_eq!(&flushed.bytes[kept..], if flushed.truncated { TRUNCATION_MARKER } else { &[][..] });
        prop_assert_eq!((flushed.first_ts, flushed.ts), (0, pieces.len() as i64 - 1));
        prop_assert_eq!(assembler.pending_bytes(), 0);
    }
}
