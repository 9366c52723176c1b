//! Tests for [`super`]: TTY entries survive any chunking, `"\r\n"` and `"\n"` both end a
//! line, Docker's 16 KiB partial entries are found, an endless entry is an error.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const ENTRY_BYTES_MAX: usize = 64 * 1024;
const TS: &str = "2026-11-22T19:35:40.123456789Z";

/// Pushes `bytes` cut at `cuts` (any offsets), draining after every push; returns the
/// entries' payloads and the first error.
fn decode_chunked(decoder: &mut TtyDecoder, bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut entries = Vec::new();
    for chunk in crate::parse::chunks_cut_at(bytes, cuts) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert_eq!(frame.stream, StdStream::Stdout);
                    entries.push(frame.payload.to_vec());
                }
                Ok(None) => break,
                Err(error) => return (entries, Some(error)),
            }
        }
    }
    (entries, None)
}

/// Takes the next line as `next_frame` hands it out (with its `'\n'`, without a `'\r'`
/// before it), with its stream: the one a walk refused, if it refused one (`refused`, in
/// that form); `None` once no whole line is left.
fn next_line_is(
    decoder: &mut TtyDecoder,
    refused: Option<Vec<u8>>,
) -> Result<Option<(StdStream, Vec<u8>)>, TestCaseError> {
    match decoder.next_frame().map_err(|error| TestCaseError::fail(error.to_string()))? {
        Some(frame) => {
            let line = frame.payload.to_vec();
            if let Some(refused) = refused {
                prop_assert_eq!(&refused, &line);
            }
            Ok(Some((frame.stream, line)))
        }
        None => {
            prop_assert!(refused.is_none());
            Ok(None)
        }
    }
}

fn entry(content: &str, end: &str) -> String {
    format!("{TS} {content}{end}")
}

#[test]
fn crlf_and_lf_end_lines_and_the_cr_is_dropped() {
    let stream = [entry("one", "\r\n"), entry("", "\r\n"), entry("two\rthree", "\n"), entry("tail", "")].concat();
    let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
    let (entries, error) = decode_chunked(&mut decoder, stream.as_bytes(), &[]);
    assert_eq!(error, None);
    let expected = [entry("one", "\n"), entry("", "\n"), entry("two\rthree", "\n")];
    assert_eq!(entries, expected.map(String::into_bytes));
    assert_eq!(decoder.buffered_bytes(), entry("tail", "").len(), "a line without its end stays unread");
}

#[test]
fn a_line_within_one_chunk_is_a_zero_copy_slice() {
    let chunk = Bytes::from(entry("hello", "\n"));
    let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
    decoder.push(chunk.clone());
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(frame.payload.as_ptr(), chunk.as_ptr());
}

#[test]
fn dockers_partial_entries_are_cut_where_docker_cut_them() {
    // A 40,000-byte line: Docker writes 16 KiB, 16 KiB, then the rest with the newline,
    // each after its own timestamp. The content holds newlines-free digits and dashes
    // that must not be mistaken for a timestamp anywhere else.
    let content: String = (0..40_000).map(|index| if index % 11 == 0 { '-' } else { '7' }).collect();
    let pieces = [&content[..16_384], &content[16_384..32_768], &content[32_768..]];
    let stream = [entry(pieces[0], ""), entry(pieces[1], ""), entry(pieces[2], "\r\n"), entry("next", "\n")].concat();
    for cuts in [vec![], vec![16_000, 16_420, 16_600], (0..stream.len()).step_by(997).collect()] {
        let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
        let (entries, error) = decode_chunked(&mut decoder, stream.as_bytes(), &cuts);
        assert_eq!(error, None);
        let expected = [entry(pieces[0], ""), entry(pieces[1], ""), entry(pieces[2], "\n"), entry("next", "\n")];
        assert_eq!(entries, expected.map(String::into_bytes));
    }
    // Exactly 16 KiB of content and then its newline: one whole line.
    let exact = entry(&"x".repeat(DOCKER_PARTIAL_BYTES), "\n");
    let (entries, _) = decode_chunked(&mut TtyDecoder::new(ENTRY_BYTES_MAX), exact.as_bytes(), &[]);
    assert_eq!(entries, [exact.into_bytes()]);
}

#[test]
fn an_endless_entry_is_an_error_that_poisons_until_cleared() {
    let mut decoder = TtyDecoder::new(1024);
    decoder.push(Bytes::from(entry(&"y".repeat(2000), "")));
    assert!(matches!(decoder.next_frame(), Err(FrameError::TooLarge { max: 1024, .. })));
    decoder.push(Bytes::from(entry("later", "\n")));
    assert!(decoder.next_frame().is_err());
    assert_eq!(decoder.buffered_bytes(), 0);
    decoder.clear();
    decoder.push(Bytes::from(entry("later", "\n")));
    assert_eq!(decoder.next_frame().unwrap().unwrap().payload, entry("later", "\n").as_bytes());
}

fn arb_entries() -> impl Strategy<Value = Vec<(String, &'static str)>> {
    let content = proptest::string::string_regex("[a-z0-9 \\-:T]{0,40}").unwrap();
    proptest::collection::vec((content, prop_oneof![Just("\n"), Just("\r\n")]), 0..30)
}

proptest! {
    #[test]
    fn any_split_decodes_the_same_entries(
        entries in arb_entries(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let stream: String = entries.iter().map(|(content, end)| entry(content, end)).collect();
        let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
        let (decoded, error) = decode_chunked(&mut decoder, stream.as_bytes(), &cuts);
        prop_assert_eq!(error, None);
        let expected: Vec<Vec<u8>> = entries.iter().map(|(content, _)| entry(content, "\n").into_bytes()).collect();
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn skip_while_skips_what_peek_and_skip_would(
        entries in arb_entries(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        skips in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        let stream: String = entries.iter().map(|(content, end)| entry(content, end)).collect();
        let bytes = stream.as_bytes();
        let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
        let mut seen = Vec::new();
        let mut step = 0;
        for chunk in crate::parse::chunks_cut_at(bytes, &cuts) {
            decoder.push(chunk);
            loop {
                let mut refused = None;
                let _ = decoder.skip_while(|stream, raw: &[u8]| {
                    let skip = skips.get(step % 64).copied().unwrap_or(false);
                    step += 1;
                    if skip {
                        seen.push((stream, raw.to_vec()));
                    } else {
                        // The decoder hands a `\r\n` line out as `\n`.
                        refused = Some(raw.strip_suffix(b"\r\n").map_or(raw.to_vec(), |line| [line, b"\n"].concat()));
                    }
                    skip
                });
                match next_line_is(&mut decoder, refused)? {
                    Some(line) => seen.push(line),
                    None => break,
                }
            }
        }
        prop_assert_eq!(seen.len(), entries.len());
        for ((stream, raw), (content, end)) in seen.iter().zip(&entries) {
            prop_assert_eq!(*stream, StdStream::Stdout);
            let as_skipped = entry(content, end).into_bytes();
            let as_taken = entry(content, "\n").into_bytes();
            prop_assert!(raw == &as_skipped || raw == &as_taken);
        }
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn take_lines_while_takes_what_next_frame_would(
        entries in arb_entries(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        takes in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        let stream: String = entries.iter().map(|(content, end)| entry(content, end)).collect();
        let bytes = stream.as_bytes();
        let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
        let mut seen = Vec::new();
        let mut step = 0;
        for chunk in crate::parse::chunks_cut_at(bytes, &cuts) {
            decoder.push(chunk);
            loop {
                let mut refused = None;
                let mut buffered_after = None;
                let _ = decoder.take_lines_while(|stream, line: &[u8], chunk: &Bytes, start, buffered| {
                    assert_eq!(stream, StdStream::Stdout);
                    assert_eq!(&chunk[start..start + line.len()], line, "the line lies in the chunk at `start`");
                    let take = takes.get(step % 64).copied().unwrap_or(true);
                    step += 1;
                    // As `next_frame` hands it out: with its `\n`, without a `\r` before it.
                    let payload = [line, b"\n"].concat();
                    if take {
                        seen.push(payload);
                        buffered_after = Some(buffered);
                    } else {
                        refused = Some(payload);
                    }
                    take
                });
                if let Some(buffered) = buffered_after {
                    prop_assert_eq!(decoder.buffered_bytes(), buffered);
                }
                match next_line_is(&mut decoder, refused)? {
                    Some((_, line)) => seen.push(line),
                    None => break,
                }
            }
        }
        let expected: Vec<Vec<u8>> = entries.iter().map(|(content, _)| entry(content, "\n").into_bytes()).collect();
        prop_assert_eq!(seen, expected);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn a_peeked_entry_is_the_next_one_and_skipping_it_is_taking_it(
        entries in arb_entries(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        skips in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        let stream: String = entries.iter().map(|(content, end)| entry(content, end)).collect();
        let bytes = stream.as_bytes();
        let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
        let mut seen = 0;
        let mut step = 0;
        for chunk in crate::parse::chunks_cut_at(bytes, &cuts) {
            decoder.push(chunk);
            loop {
                step += 1;
                if let Some((stream, raw)) = decoder.peek_frame() {
                    let raw_len = raw.len();
                    prop_assert_eq!(stream, StdStream::Stdout);
                    let expected = entry(&entries[seen].0, entries[seen].1);
                    prop_assert_eq!(raw, expected.as_bytes());
                    if skips.get(step % 64).copied().unwrap_or(false) {
                        decoder.skip_frame(raw_len);
                        seen += 1;
                        continue;
                    }
                }
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        prop_assert_eq!(frame.payload.to_vec(), entry(&entries[seen].0, "\n").into_bytes());
                        seen += 1;
                    }
                    Ok(None) => break,
                    Err(error) => prop_assert!(false, "{}", error),
                }
            }
        }
        prop_assert_eq!(seen, entries.len());
    }
}

/// Through the whole reader: a TTY stream's lines come out as stdout without their
/// `\r`, and after a reopen (Docker's `since` replays the second) the replayed lines are
/// skipped as duplicates, by the zero-copy skip path and the general one alike.
#[test]
fn the_reader_reads_a_tty_stream_and_skips_its_replay_after_reopen() {
    use crate::container::reader::{LogReader, ReadStats};
    use crate::port::ContainerCheckpoint;

    let stream = [entry("one", "\r\n"), entry("two", "\r\n"), entry("three", "\n")].concat();
    let mut reader = LogReader::new(1 << 20, 1 << 20, 4 << 20, ContainerCheckpoint::default());
    reader.set_tty(true);
    reader.reopen();
    let (mut runs, mut stats) = (Vec::new(), ReadStats::default());
    reader.handle_chunk(Bytes::from(stream.clone()), &mut runs, &mut stats).unwrap();
    let lines: Vec<&[u8]> = runs.iter().flat_map(|run| run.lines.iter().map(|line| &line.bytes[..])).collect();
    assert_eq!(lines, [&b"one"[..], b"two", b"three"]);
    assert!(runs.iter().all(|run| run.stream == StdStream::Stdout));
    assert_eq!((stats.lines, stats.duplicates), (3, 0));

    // Reopened: the same entries again (whole, then cut mid-entry), then a new one.
    reader.reopen();
    let replay = [stream.clone(), entry("four", "\r\n")].concat();
    let (mut runs, mut stats) = (Vec::new(), ReadStats::default());
    for piece in [&replay[..5], &replay[5..]] {
        reader.handle_chunk(Bytes::copy_from_slice(piece.as_bytes()), &mut runs, &mut stats).unwrap();
    }
    let lines: Vec<&[u8]> = runs.iter().flat_map(|run| run.lines.iter().map(|line| &line.bytes[..])).collect();
    assert_eq!(lines, [&b"four"[..]]);
    assert_eq!((stats.lines, stats.duplicates), (1, 3));

    // Back to a framed container: frames are read again.
    reader.set_tty(false);
    reader.reopen();
    let mut framed = Vec::new();
    crate::parse::frame::encode_frame(StdStream::Stderr, entry("five", "\n").as_bytes(), &mut framed);
    let (mut runs, mut stats) = (Vec::new(), ReadStats::default());
    reader.handle_chunk(Bytes::from(framed), &mut runs, &mut stats).unwrap();
    assert_eq!((runs[0].stream, &runs[0].lines[0].bytes[..]), (StdStream::Stderr, &b"five"[..]));
}

/// A lone line is a chunk that is one whole entry ending a line, pushed into an empty
/// decoder: what taking it from the decoder would hand out, less its line end.
#[test]
fn a_lone_line_is_one_whole_entry_into_an_empty_decoder() {
    let mut decoder = TtyDecoder::new(ENTRY_BYTES_MAX);
    for end in ["\n", "\r\n"] {
        let one = entry("hello", end);
        assert_eq!(decoder.lone_line(one.as_bytes()), Some((StdStream::Stdout, 0..entry("hello", "").len())));
    }
    let two = [entry("a", "\n"), entry("b", "\n")].concat();
    assert_eq!(decoder.lone_line(two.as_bytes()), None, "two entries");
    assert_eq!(decoder.lone_line(entry("no end", "").as_bytes()), None, "a partial line");
    decoder.push(Bytes::from(entry("x", "")));
    assert_eq!(decoder.lone_line(entry("hello", "\n").as_bytes()), None, "something buffered");
}
