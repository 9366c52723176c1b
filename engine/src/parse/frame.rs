//! Docker's multiplexed log stream: frames of `[type, 0, 0, 0, len (u32 BE)]` + payload.
//!
//! Owns the sans-IO [`FrameDecoder`] (chunks in with [`FrameDecoder::push`], frames out
//! with [`FrameDecoder::next_frame`]) and [`encode_frame`], its inverse, which the
//! simulator's Docker model uses.
//!
//! Promises:
//! - Chunks may be split anywhere, including inside a header: any split of a byte
//!   sequence yields the same frames.
//! - A payload lying inside one pushed chunk is returned as a zero-copy slice of that
//!   chunk; only payloads straddling chunks are copied (once: into a buffer of exactly
//!   their size, or with the chunk that ends them by [`FrameDecoder::join_pending`]).
//! - A payload longer than `frame_bytes_max` is an error as soon as its header is read,
//!   before any of it is buffered. The decoder itself holds only what was pushed and not
//!   yet returned ([`FrameDecoder::buffered_bytes`]); the caller bounds that by draining
//!   after each push.
//! - Stream type 0 (stdin, which Docker never sends for logs) is taken as stdout; a type
//!   above 2 is [`FrameError::BadStreamType`]. Bytes 1..4 of the header are ignored, as
//!   Docker's own `stdcopy` does.
//! - After an error the decoder is poisoned: [`FrameDecoder::next_frame`] repeats the
//!   error and pushed chunks are dropped, until [`FrameDecoder::clear`]. The caller is
//!   expected to drop the stream and reopen it.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::model::StdStream;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 8;

/// One frame's payload and the output it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream: StdStream,
    pub payload: Bytes,
}

/// A stream that cannot be decoded further. See the module docs for poisoning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("log stream frame has unknown stream type {0}")]
    BadStreamType(u8),
    #[error("log stream frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: u32, max: usize },
}

/// Sans-IO decoder of Docker's multiplexed log stream. See the module docs.
#[derive(Debug)]
pub struct FrameDecoder {
    frame_bytes_max: usize,
    /// Pushed chunks not yet consumed, oldest first; none is empty.
    chunks: VecDeque<Bytes>,
    /// Sum of the lengths of `chunks`.
    chunks_bytes: usize,
    /// A header already consumed from `chunks` whose payload is not complete yet.
    header: Option<(StdStream, usize)>,
    /// Set by the first error; repeated until `clear`.
    poisoned: Option<FrameError>,
}

impl FrameDecoder {
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameDecoder { frame_bytes_max, chunks: VecDeque::new(), chunks_bytes: 0, header: None, poisoned: None }
    }

    /// Appends a chunk read from the stream. Ignored while poisoned.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() || self.poisoned.is_some() {
            return;
        }
        self.chunks_bytes += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        if let Some(frame) = self.take_whole_front_frame() {
            return Ok(Some(frame));
        }
        let (stream, payload_len) = match self.header {
            Some(header) => header,
            None => {
                if self.chunks_bytes < HEADER_LEN {
                    return Ok(None);
                }
                match self.take_header() {
                    Ok(header) => {
                        self.header = Some(header);
                        header
                    }
                    Err(error) => {
                        self.poisoned = Some(error.clone());
                        self.chunks.clear();
                        self.chunks_bytes = 0;
                        return Err(error);
                    }
                }
            }
        };
        if self.chunks_bytes < payload_len {
            return Ok(None);
        }
        self.header = None;
        let payload = self.take_payload(payload_len);
        Ok(Some(Frame { stream, payload }))
    }

    /// The next frame, if it is whole in the first buffered chunk and nothing else is
    /// pending (no error, no header taken): its stream and payload, left in place. What
    /// [`Self::next_frame`] would return next; `None` says nothing about what it will.
    #[inline]
    pub fn peek_frame(&self) -> Option<(StdStream, &[u8])> {
        if self.poisoned.is_some() || self.header.is_some() {
            return None;
        }
        whole_frame(self.chunks.front()?, self.frame_bytes_max)
    }

    /// Consume frames while `skip` says so, each one what [`Self::peek_frame`] would
    /// return next (a whole frame in the front chunk): exactly a loop of `peek_frame`
    /// and [`Self::skip_frame`] that stops at the first frame `skip` refuses or at the
    /// first one not peekable. The frames of a chunk are walked by offset and the chunk
    /// advanced once, which is what makes it cheaper than that loop: a reopen's replay
    /// is 600 k skipped frames on seed 1, which went from 1,497.1 M to 1,475.1 M
    /// instructions with it (callgrind).
    #[inline]
    pub fn skip_while<S: super::FrameSkipper>(&mut self, mut skip: S) -> S {
        self.walk_front(|stream, payload, _, _, _| skip.skip(stream, payload));
        skip
    }

    /// Consume the frames that end a line while `take` says so, like [`Self::skip_while`]
    /// (it stops at the first frame without a final `'\n'` too). `take` gets the stream,
    /// the payload without its `'\n'`, and the chunk it lies in with the payload's offset
    /// there, to slice out what it keeps (one reference count per slice, where
    /// [`Self::next_frame`] and trimming the payload cost up to three), and the bytes
    /// buffered after the frame (what [`Self::buffered_bytes`] says once it is consumed).
    #[inline]
    pub fn take_lines_while<T: super::LineTaker>(&mut self, mut take: T) -> T {
        self.walk_front(|stream, payload, chunk, start, rest| match payload.strip_suffix(b"\n") {
            Some(line) => take.take(stream, line, chunk, start, rest),
            None => false,
        });
        take
    }

    /// The walk of [`Self::skip_while`]: `visit` gets each whole frame's stream and
    /// payload, the chunk holding it, the payload's offset there and the bytes buffered
    /// after the frame, and says whether to consume it.
    #[inline]
    fn walk_front(&mut self, mut visit: impl FnMut(StdStream, &[u8], &Bytes, usize, usize) -> bool) {
        if self.poisoned.is_some() || self.header.is_some() {
            return;
        }
        while let Some(front) = self.chunks.front_mut() {
            let mut offset = 0;
            let mut refused = false;
            while let Some((stream, payload)) = whole_frame(&front[offset..], self.frame_bytes_max) {
                let end = offset + HEADER_LEN + payload.len();
                if !visit(stream, payload, front, offset + HEADER_LEN, self.chunks_bytes - end) {
                    refused = true;
                    break;
                }
                offset = end;
            }
            if offset < front.len() {
                if offset > 0 {
                    front.advance(offset);
                    self.chunks_bytes -= offset;
                }
                return;
            }
            self.chunks_bytes -= offset;
            self.chunks.pop_front();
            if refused {
                return;
            }
        }
    }

    /// The line `chunk` holds if, pushed now, it would be all the decoder holds and one
    /// whole frame ending in `'\n'`: its stream and where its payload, less the `'\n'`,
    /// lies in `chunk` (what [`Self::take_lines_while`] would hand out). Taking that line
    /// leaves the decoder as it is, so the chunk need not be pushed at all.
    #[inline]
    pub fn lone_line(&self, chunk: &[u8]) -> Option<(StdStream, Range<usize>)> {
        if self.poisoned.is_some() || self.header.is_some() || self.chunks_bytes != 0 {
            return None;
        }
        let (stream, payload) = whole_frame(chunk, self.frame_bytes_max)?;
        if HEADER_LEN + payload.len() != chunk.len() || payload.last() != Some(&b'\n') {
            return None;
        }
        Some((stream, HEADER_LEN..chunk.len() - 1))
    }

    /// Consume the frame [`Self::peek_frame`] returned (a payload of `len` bytes), leaving
    /// the decoder as [`Self::next_frame`] would have, without handing out its payload.
    #[inline]
    pub fn skip_frame(&mut self, len: usize) {
        debug_assert_eq!(self.peek_frame().map(|(_, payload)| payload.len()), Some(len), "a frame was peeked");
        let front = self.chunks.front_mut().expect("a frame was peeked");
        if front.len() == HEADER_LEN + len {
            self.chunks.pop_front();
        } else {
            front.advance(HEADER_LEN + len);
        }
        self.chunks_bytes -= HEADER_LEN + len;
    }

    /// Copy what is left of the chunk pushed last into a buffer of its own size: what
    /// is sliced out of it from now on (and what stays buffered) no longer keeps the
    /// buffer it came in alive. Nothing to do if it was consumed already.
    pub fn compact_last(&mut self) {
        if let Some(last) = self.chunks.back_mut() {
            *last = Bytes::copy_from_slice(last);
        }
    }

    /// If the chunk pushed last ends a frame begun in earlier chunks (or all that was
    /// buffered before it is less than a header), copy them all into one buffer of their
    /// size, the frame's header written again if it was taken already: true if it did.
    /// That frame is then whole in one chunk, and taken as a slice of it like any other,
    /// where [`Self::next_frame`] copied its payload out on its own, for the general path
    /// only. Its bytes are copied once either way, and the rest of the last chunk as
    /// [`Self::compact_last`] would. A frame still incomplete is left as it is (a long
    /// frame coming in many small chunks is not copied again at each). Callgrind: seed 2
    /// 310.81 M -> 309.52 M, seed 3 (6.9 k such frames) 353.28 M -> 351.91 M, seed 19
    /// (18.8 k) 813.00 M -> 806.90 M.
    pub fn join_pending(&mut self) -> bool {
        let joins = match self.header {
            Some((_, len)) => self.chunks_bytes >= len,
            None => self.chunks.len() > 1,
        };
        if !joins {
            return false;
        }
        let mut buffer = Vec::with_capacity(self.buffered_bytes());
        if let Some((stream, len)) = self.header.take() {
            buffer.extend_from_slice(&header(stream, len));
        }
        for chunk in self.chunks.drain(..) {
            buffer.extend_from_slice(&chunk);
        }
        self.chunks_bytes = buffer.len();
        self.chunks.push_back(Bytes::from(buffer));
        true
    }

    /// Bytes pushed and not yet returned in a frame (a consumed header still counts).
    pub fn buffered_bytes(&self) -> usize {
        self.chunks_bytes + if self.header.is_some() { HEADER_LEN } else { 0 }
    }

    /// Forgets everything buffered and any error: ready for a new stream.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.chunks_bytes = 0;
        self.header = None;
        self.poisoned = None;
    }

    /// The common case of [`Self::next_frame`], taken without copying the header out:
    /// a valid frame with a payload, whole in the first chunk (what [`Self::peek_frame`]
    /// sees). Anything else (an error, a frame across chunks) is left to the general path.
    /// Saves seed 8 11 M of its 1,629 M instructions (callgrind).
    #[inline]
    fn take_whole_front_frame(&mut self) -> Option<Frame> {
        let (stream, len) = self.peek_frame().map(|(stream, payload)| (stream, payload.len()))?;
        if len == 0 {
            return None;
        }
        let front = self.chunks.front_mut().expect("a frame was peeked");
        front.advance(HEADER_LEN);
        self.chunks_bytes -= HEADER_LEN;
        Some(Frame { stream, payload: self.take_payload(len) })
    }

    /// Consumes and checks a header. Requires `chunks_bytes >= HEADER_LEN`.
    #[inline]
    fn take_header(&mut self) -> Result<(StdStream, usize), FrameError> {
        let mut header = [0u8; HEADER_LEN];
        self.copy_out(&mut header);
        let stream = match header[0] {
            0 | 1 => StdStream::Stdout,
            2 => StdStream::Stderr,
            other => return Err(FrameError::BadStreamType(other)),
        };
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len as usize > self.frame_bytes_max {
            return Err(FrameError::TooLarge { len, max: self.frame_bytes_max });
        }
        Ok((stream, len as usize))
    }

    /// Consumes `len` bytes: a slice of the front chunk if it holds them all, else a copy.
    #[inline]
    fn take_payload(&mut self, len: usize) -> Bytes {
        debug_assert!(self.chunks_bytes >= len);
        if len == 0 {
            return Bytes::new();
        }
        self.chunks_bytes -= len;
        let front = self.chunks.front_mut().expect("chunks_bytes > 0 implies a chunk");
        if front.len() > len {
            return front.split_to(len);
        }
        if front.len() == len {
            return self.chunks.pop_front().expect("front exists");
        }
        let mut payload = BytesMut::with_capacity(len);
        while payload.len() < len {
            let front = self.chunks.front_mut().expect("enough bytes are buffered");
            let wanted = len - payload.len();
            if front.len() > wanted {
                payload.extend_from_slice(&front[..wanted]);
                front.advance(wanted);
            } else {
                payload.extend_from_slice(front);
                self.chunks.pop_front();
            }
        }
        debug_assert_eq!(payload.len(), len);
        payload.freeze()
    }

    /// Consumes `out.len()` bytes into `out`. Requires that many to be buffered.
    #[inline]
    fn copy_out(&mut self, out: &mut [u8]) {
        debug_assert!(self.chunks_bytes >= out.len());
        self.chunks_bytes -= out.len();
        let mut filled = 0;
        while filled < out.len() {
            let front = self.chunks.front_mut().expect("enough bytes are buffered");
            let count = front.len().min(out.len() - filled);
            out[filled..filled + count].copy_from_slice(&front[..count]);
            filled += count;
            if count == front.len() {
                self.chunks.pop_front();
            } else {
                front.advance(count);
            }
        }
    }
}

/// The frame at the start of `bytes` if it is whole and valid (a known stream type, a
/// payload within `frame_bytes_max`): its stream and payload.
#[inline]
fn whole_frame(bytes: &[u8], frame_bytes_max: usize) -> Option<(StdStream, &[u8])> {
    if bytes.len() < HEADER_LEN {
        return None;
    }
    let stream = match bytes[0] {
        0 | 1 => StdStream::Stdout,
        2 => StdStream::Stderr,
        _ => return None,
    };
    let len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if len > frame_bytes_max || bytes.len() < HEADER_LEN + len {
        return None;
    }
    Some((stream, &bytes[HEADER_LEN..HEADER_LEN + len]))
}

/// Appends one frame of `payload` on `stream` to `out`.
///
/// Panics if `payload` is longer than `u32::MAX` bytes, which no frame can carry.
pub fn encode_frame(stream: StdStream, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&header(stream, payload.len()));
    out.extend_from_slice(payload);
}

/// The header of a frame of `len` payload bytes on `stream`.
///
/// Panics if `len` does not fit in `u32`, which no frame's length can exceed.
fn header(stream: StdStream, len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(len).expect("a frame payload fits in u32");
    let stream_type = match stream {
        StdStream::Stdout => 1,
        StdStream::Stderr => 2,
    };
    let [a, b, c, d] = len.to_be_bytes();
    [stream_type, 0, 0, 0, a, b, c, d]
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
