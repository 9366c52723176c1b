//! Tests for [`super`]: frames survive any chunking, zero-copy where promised, errors
//! poison the decoder until `clear`.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const FRAME_BYTES_MAX: usize = 1 << 20;

fn encode_all(frames: &[(StdStream, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (stream, payload) in frames {
        encode_frame(*stream, payload, &mut out);
    }
    out
}

/// Takes the next frame into `seen`: the one `expected` says (peeked, or refused by a
/// walk) if it says one, and none if it says none. False once no frame is left.
fn next_frame_is(
    decoder: &mut FrameDecoder,
    expected: Option<(StdStream, Vec<u8>)>,
    seen: &mut Vec<(StdStream, Vec<u8>)>,
) -> Result<bool, TestCaseError> {
    match decoder.next_frame().unwrap() {
        Some(frame) => {
            let taken = (frame.stream, frame.payload.to_vec());
            if let Some(expected) = expected {
                prop_assert_eq!(&expected, &taken);
            }
            seen.push(taken);
            Ok(true)
        }
        None => {
            prop_assert!(expected.is_none());
            Ok(false)
        }
    }
}

/// Pushes `bytes` cut at `cuts` (any offsets, sorted and clamped here), draining after
/// every push; returns the frames and the first error.
fn decode_chunked(
    decoder: &mut FrameDecoder,
    bytes: &[u8],
    cuts: &[usize],
) -> (Vec<(StdStream, Vec<u8>)>, Option<FrameError>) {
    let mut frames = Vec::new();
    for chunk in crate::parse::chunks_cut_at(bytes, cuts) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push((frame.stream, frame.payload.to_vec())),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

#[test]
fn encodes_docker_header() {
    let mut out = Vec::new();
    encode_frame(StdStream::Stderr, b"hi\n", &mut out);
    assert_eq!(out, [2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
    out.clear();
    encode_frame(StdStream::Stdout, &[7; 300], &mut out);
    assert_eq!(&out[..8], [1, 0, 0, 0, 0, 0, 1, 44]);
    assert_eq!(out.len(), 308);
}

#[test]
fn stdin_is_stdout_and_header_padding_is_ignored() {
    let mut decoder = FrameDecoder::new(16);
    decoder.push(Bytes::from_static(&[0, 9, 9, 9, 0, 0, 0, 1, b'x', 2, 0, 0, 0, 0, 0, 0, 0]));
    let first = decoder.next_frame().unwrap().unwrap();
    assert_eq!((first.stream, &first.payload[..]), (StdStream::Stdout, &b"x"[..]));
    let empty = decoder.next_frame().unwrap().unwrap();
    assert_eq!((empty.stream, empty.payload.len()), (StdStream::Stderr, 0));
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.buffered_bytes(), 0);
}

#[test]
fn payload_inside_one_chunk_is_zero_copy() {
    let mut bytes = Vec::new();
    encode_frame(StdStream::Stdout, b"first line\n", &mut bytes);
    encode_frame(StdStream::Stderr, b"second line\n", &mut bytes);
    let chunk = Bytes::from(bytes);
    let range = chunk.as_ptr_range();
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    decoder.push(chunk.clone());
    for _ in 0..2 {
        let frame = decoder.next_frame().unwrap().unwrap();
        assert!(range.contains(&frame.payload.as_ptr()), "payload was copied");
    }
    assert_eq!(decoder.next_frame(), Ok(None));
}

#[test]
fn header_split_across_chunks_then_payload_in_one_chunk_is_zero_copy() {
    let mut bytes = Vec::new();
    encode_frame(StdStream::Stderr, b"payload", &mut bytes);
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    decoder.push(Bytes::copy_from_slice(&bytes[..3]));
    assert_eq!(decoder.next_frame(), Ok(None));
    decoder.push(Bytes::copy_from_slice(&bytes[3..8]));
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.buffered_bytes(), 8);
    let payload_chunk = Bytes::copy_from_slice(&bytes[8..]);
    let pointer = payload_chunk.as_ptr();
    decoder.push(payload_chunk);
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(frame.payload.as_ptr(), pointer);
    assert_eq!(frame.stream, StdStream::Stderr);
    assert_eq!(decoder.buffered_bytes(), 0);
}

#[test]
fn bad_stream_type_poisons_until_clear() {
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    decoder.push(Bytes::from_static(&[3, 0, 0, 0, 0, 0, 0, 1, b'x']));
    assert_eq!(decoder.next_frame(), Err(FrameError::BadStreamType(3)));
    decoder.push(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 1, b'y']));
    assert_eq!(decoder.next_frame(), Err(FrameError::BadStreamType(3)));
    assert_eq!(decoder.buffered_bytes(), 0, "a poisoned decoder keeps nothing");
    decoder.clear();
    decoder.push(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 1, b'y']));
    assert_eq!(decoder.next_frame().unwrap().unwrap().payload, Bytes::from_static(b"y"));
}

#[test]
fn too_large_is_detected_from_the_header_alone() {
    let mut decoder = FrameDecoder::new(10);
    decoder.push(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 10]));
    assert_eq!(decoder.next_frame(), Ok(None), "exactly the limit is fine");
    decoder.push(Bytes::from_static(&[b'a'; 10]));
    assert_eq!(decoder.next_frame().unwrap().unwrap().payload.len(), 10);
    decoder.push(Bytes::from_static(&[2, 0, 0, 0, 0, 0, 0, 11]));
    assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge { len: 11, max: 10 }));
    decoder.push(Bytes::from_static(&[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge { len: 11, max: 10 }));
}

#[test]
fn clear_drops_a_half_read_frame() {
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    decoder.push(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 5, b'a', b'b']));
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.buffered_bytes(), 10);
    decoder.clear();
    assert_eq!(decoder.buffered_bytes(), 0);
    decoder.push(Bytes::from_static(&[2, 0, 0, 0, 0, 0, 0, 1, b'z']));
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!((frame.stream, &frame.payload[..]), (StdStream::Stderr, &b"z"[..]));
}

fn arb_stream() -> impl Strategy<Value = StdStream> {
    prop_oneof![Just(StdStream::Stdout), Just(StdStream::Stderr)]
}

fn arb_frames() -> impl Strategy<Value = Vec<(StdStream, Vec<u8>)>> {
    proptest::collection::vec((arb_stream(), proptest::collection::vec(any::<u8>(), 0..40)), 0..12)
}

proptest! {
    /// Joining what is pending to each chunk that ends a frame changes no frame, and
    /// leaves nothing pending on its own: every frame is whole in the front chunk then.
    #[test]
    fn joining_pending_frames_decodes_the_same_frames(
        frames in arb_frames(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let bytes = encode_all(&frames);
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        let mut decoded = Vec::new();
        for chunk in crate::parse::chunks_cut_at(&bytes, &cuts) {
            decoder.push(chunk);
            let buffered = decoder.buffered_bytes();
            if decoder.join_pending() {
                prop_assert_eq!(decoder.buffered_bytes(), buffered);
                prop_assert!(decoder.header.is_none() && decoder.chunks.len() == 1);
            }
            while let Some(frame) = decoder.next_frame().unwrap() {
                decoded.push((frame.stream, frame.payload.to_vec()));
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn any_split_decodes_the_same_frames(
        frames in arb_frames(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let bytes = encode_all(&frames);
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        let (decoded, error) = decode_chunked(&mut decoder, &bytes, &cuts);
        prop_assert_eq!(error, None);
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn a_peeked_frame_is_the_next_one_and_skipping_it_is_taking_it(
        frames in arb_frames(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        skips in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        let bytes = encode_all(&frames);
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        let mut seen = Vec::new();
        let mut step = 0;
        for chunk in crate::parse::chunks_cut_at(&bytes, &cuts) {
            decoder.push(chunk);
            loop {
                let peeked = decoder.peek_frame().map(|(stream, payload)| (stream, payload.to_vec()));
                let skip = skips.get(step).copied().unwrap_or(false);
                step += 1;
                match peeked {
                    Some(frame) if skip => {
                        let before = decoder.buffered_bytes();
                        decoder.skip_frame(frame.1.len());
                        prop_assert_eq!(decoder.buffered_bytes(), before - HEADER_LEN - frame.1.len());
                        seen.push(frame);
                    }
                    peeked => {
                        if !next_frame_is(&mut decoder, peeked, &mut seen)? {
                            break;
                        }
                    }
                }
            }
        }
        prop_assert_eq!(seen, frames);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn skip_while_skips_what_peek_and_skip_would(
        frames in arb_frames(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        skips in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        let bytes = encode_all(&frames);
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        let mut seen = Vec::new();
        let mut step = 0;
        for chunk in crate::parse::chunks_cut_at(&bytes, &cuts) {
            decoder.push(chunk);
            loop {
                let mut refused = None;
                let before = decoder.buffered_bytes();
                let mut skipped_bytes = 0;
                let _ = decoder.skip_while(|stream, payload: &[u8]| {
                    let skip = skips.get(step).copied().unwrap_or(false);
                    step += 1;
                    if skip {
                        skipped_bytes += HEADER_LEN + payload.len();
                        seen.push((stream, payload.to_vec()));
                    } else {
                        refused = Some((stream, payload.to_vec()));
                    }
                    skip
                });
                prop_assert_eq!(decoder.buffered_bytes(), before - skipped_bytes);
                if !next_frame_is(&mut decoder, refused, &mut seen)? {
                    break;
                }
            }
        }
        prop_assert_eq!(seen, frames);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn take_lines_while_takes_what_next_frame_would(
        frames in proptest::collection::vec((arb_stream(), proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        takes in proptest::collection::vec(any::<bool>(), 0..64),
    ) {
        // About half the payloads end a line.
        let frames: Vec<(StdStream, Vec<u8>)> = frames
            .into_iter()
            .map(|(stream, mut payload, line)| {
                if line {
                    payload.push(b'\n');
                }
                (stream, payload)
            })
            .collect();
        let bytes = encode_all(&frames);
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        let mut seen = Vec::new();
        let mut step = 0;
        for chunk in crate::parse::chunks_cut_at(&bytes, &cuts) {
            decoder.push(chunk);
            loop {
                let mut refused = None;
                let mut buffered_after = None;
                let _ = decoder.take_lines_while(|stream, line: &[u8], chunk: &Bytes, start, buffered| {
                    assert_eq!(&chunk[start..start + line.len()], line, "the line lies in the chunk at `start`");
                    let take = takes.get(step).copied().unwrap_or(true);
                    step += 1;
                    let payload = [line, b"\n"].concat();
                    if take {
                        seen.push((stream, payload));
                        buffered_after = Some(buffered);
                    } else {
                        refused = Some((stream, payload));
                    }
                    take
                });
                if let Some(buffered) = buffered_after {
                    prop_assert_eq!(decoder.buffered_bytes(), buffered);
                }
                if !next_frame_is(&mut decoder, refused, &mut seen)? {
                    break;
                }
            }
        }
        prop_assert_eq!(seen, frames);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn buffered_bytes_counts_the_undecoded_tail(
        frames in arb_frames(),
        cut in any::<usize>(),
    ) {
        let bytes = encode_all(&frames);
        let cut = cut % (bytes.len() + 1);
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        let (decoded, _) = decode_chunked(&mut decoder, &bytes[..cut], &[]);
        let consumed: usize = decoded.iter().map(|(_, payload)| HEADER_LEN + payload.len()).sum();
        prop_assert_eq!(decoder.buffered_bytes(), cut - consumed);
    }

    #[test]
    fn bad_stream_type_errors_after_the_good_frames(
        frames in arb_frames(),
        bad_type in 3u8..,
        trailing in arb_frames(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut bytes = encode_all(&frames);
        bytes.extend_from_slice(&[bad_type, 0, 0, 0, 0, 0, 0, 2, b'x', b'y']);
        bytes.extend_from_slice(&encode_all(&trailing));
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        let (decoded, error) = decode_chunked(&mut decoder, &bytes, &cuts);
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(error, Some(FrameError::BadStreamType(bad_type)));
        prop_assert_eq!(decoder.next_frame(), Err(FrameError::BadStreamType(bad_type)));
    }

    #[test]
    fn too_large_errors_after_the_good_frames(
        frames in arb_frames(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut bytes = encode_all(&frames);
        encode_frame(StdStream::Stdout, &[b'x'; 41], &mut bytes);
        let mut decoder = FrameDecoder::new(40);
        let (decoded, error) = decode_chunked(&mut decoder, &bytes, &cuts);
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(error, Some(FrameError::TooLarge { len: 41, max: 40 }));
    }
}

/// A lone line is a chunk that is one whole frame ending in `'\n'`, pushed into an empty
/// decoder: what taking it from the decoder would hand out.
#[test]
fn a_lone_line_is_one_whole_frame_into_an_empty_decoder() {
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    let one = encode_all(&[(StdStream::Stderr, b"ts line\n".to_vec())]);
    assert_eq!(decoder.lone_line(&one), Some((StdStream::Stderr, HEADER_LEN..one.len() - 1)));
    let two = encode_all(&[(StdStream::Stdout, b"a\n".to_vec()), (StdStream::Stdout, b"b\n".to_vec())]);
    assert_eq!(decoder.lone_line(&two), None, "two frames");
    assert_eq!(decoder.lone_line(&one[..one.len() - 1]), None, "a partial frame");
    let partial = encode_all(&[(StdStream::Stdout, b"no end".to_vec())]);
    assert_eq!(decoder.lone_line(&partial), None, "a partial line");
    decoder.push(Bytes::copy_from_slice(&one[..3]));
    assert_eq!(decoder.lone_line(&one), None, "something buffered");
}

/// A frame begun in one chunk, its header taken, and ended by the next: joined, it is
/// whole in one chunk, peeked and walked like any other.
#[test]
fn a_joined_frame_is_whole_in_one_chunk() {
    let bytes = encode_all(&[(StdStream::Stderr, b"ts a line\n".to_vec()), (StdStream::Stdout, b"ts b\n".to_vec())]);
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    decoder.push(Bytes::copy_from_slice(&bytes[..12]));
    assert_eq!(decoder.next_frame(), Ok(None));
    assert!(!decoder.join_pending(), "the frame is not ended yet");
    decoder.push(Bytes::copy_from_slice(&bytes[12..]));
    assert!(decoder.join_pending());
    assert_eq!(decoder.peek_frame(), Some((StdStream::Stderr, &b"ts a line\n"[..])));
    let mut lines = Vec::new();
    let _ = decoder.take_lines_while(|stream, line: &[u8], _: &Bytes, _, _| {
        lines.push((stream, line.to_vec()));
        true
    });
    assert_eq!(lines, [(StdStream::Stderr, b"ts a line".to_vec()), (StdStream::Stdout, b"ts b".to_vec())]);
    assert_eq!(decoder.buffered_bytes(), 0);
}
