//! The log stream of a container with a TTY (`docker run -t`): no frame headers, the
//! entries (`timestamp SP content`) follow each other raw, and all of it is stdout.
//!
//! Owns the sans-IO [`TtyDecoder`], which cuts that stream back into entries and hands
//! them out as [`Frame`]s of [`StdStream::Stdout`], so the rest of the reader (timestamps,
//! partial-entry merging, resume keys) is the same for both formats. Same interface as
//! [`super::frame::FrameDecoder`]: [`TtyDecoder::push`] chunks, [`TtyDecoder::next_frame`]
//! entries.
//!
//! Where an entry ends:
//! - at `'\n'`. A terminal writes `"\r\n"`; the `'\r'` is dropped, so the line is the
//!   same as a framed container's (that one entry is copied; a `"\n"`-only entry is a
//!   zero-copy slice of its chunk when it lies inside one);
//! - or where Docker cut a line longer than its 16 KiB buffer into partial entries:
//!   exactly [`DOCKER_PARTIAL_BYTES`] of content after the timestamp, when the next
//!   timestamp starts right there. That entry is handed out without `'\n'`, so the
//!   assembler merges it with the rest of its line as it does for framed partials.
//!
//! Promises:
//! - Chunks may be split anywhere: any split of a byte sequence yields the same entries.
//! - An entry longer than `entry_bytes_max` without an end is
//!   [`FrameError::TooLarge`] once that many bytes are buffered, and poisons the
//!   decoder until [`TtyDecoder::clear`], as the framed decoder does. The decoder never
//!   holds more than `entry_bytes_max` plus one pushed chunk.
//! - Bytes after the last end stay buffered: a stream that ends mid-line leaves its
//!   partial line unread, to be read again after reopening.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{Frame, FrameError};
use crate::model::StdStream;

/// Content bytes of a partial entry: Docker's log copier buffer (16 KiB).
pub const DOCKER_PARTIAL_BYTES: usize = 16 * 1024;

/// `2006-01-02T15:04:05`: what a timestamp starts with.
const TIMESTAMP_START_LEN: usize = 19;

/// Where the timestamp prefix ends: the first space within this many bytes.
const TIMESTAMP_PREFIX_MAX: usize = 40;

/// Sans-IO decoder of a TTY container's log stream. See the module docs.
#[derive(Debug)]
pub struct TtyDecoder {
    entry_bytes_max: usize,
    /// The rest of the chunk pushed last, not yet consumed (entries are sliced from it).
    current: Bytes,
    /// Bytes of an entry that began in an earlier chunk, with what followed it.
    pending: BytesMut,
    poisoned: Option<FrameError>,
}

/// Where the first entry of `bytes` ends: its length and whether it ends a line.
///
/// Looks for the `'\n'` only as far as it must: first up to the partial cut, then (no
/// timestamp at the cut) past it. With `memchr` instead of a byte-by-byte scan of the
/// whole buffer this took seed 1's `entry_end` from 276 M to 32 M instructions (callgrind).
fn entry_end(bytes: &[u8]) -> Option<(usize, bool)> {
    // Every cut below is past `DOCKER_PARTIAL_BYTES`, and with no space in the head the
    // first newline ends the entry: a newline in that first stretch (a line of common
    // length) ends it whatever the timestamp's length, without looking for the space
    // (callgrind: seed 85 383.0 M -> 382.3 M, 31.6 k entries).
    if let Some(newline) = memchr::memchr(b'\n', &bytes[..bytes.len().min(DOCKER_PARTIAL_BYTES + 1)]) {
        return Some((newline + 1, true));
    }
    let head = &bytes[..bytes.len().min(TIMESTAMP_PREFIX_MAX)];
    let Some(prefix) = memchr::memchr(b' ', head) else {
        // Not an entry Docker wrote: cut at the line end, and let the timestamp parser say so.
        return memchr::memchr(b'\n', bytes).map(|newline| (newline + 1, true));
    };
    let partial_end = prefix + 1 + DOCKER_PARTIAL_BYTES;
    if let Some(newline) = memchr::memchr(b'\n', &bytes[..bytes.len().min(partial_end)]) {
        return Some((newline + 1, true));
    }
    // No newline before the cut. A newline this close to the cut means no timestamp
    // starts at it; a timestamp there means Docker cut the line.
    if bytes.len() >= partial_end + TIMESTAMP_START_LEN
        && looks_like_timestamp(&bytes[partial_end..partial_end + TIMESTAMP_START_LEN])
    {
        return Some((partial_end, false));
    }
    let rest = bytes.get(partial_end..).unwrap_or_default();
    memchr::memchr(b'\n', rest).map(|newline| (partial_end + newline + 1, true))
}

/// `DDDD-DD-DDTDD:DD:DD`.
fn looks_like_timestamp(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(index, byte)| match index {
        4 | 7 => *byte == b'-',
        10 => *byte == b'T',
        13 | 16 => *byte == b':',
        _ => byte.is_ascii_digit(),
    })
}

/// The entry as the reader wants it: a terminal's `"\r\n"` becomes `"\n"`.
fn without_carriage_return(entry: Bytes) -> Bytes {
    if !entry.ends_with(b"\r\n") {
        return entry;
    }
    let mut line = BytesMut::with_capacity(entry.len() - 1);
    line.extend_from_slice(&entry[..entry.len() - 2]);
    line.extend_from_slice(b"\n");
    line.freeze()
}

impl TtyDecoder {
    pub fn new(entry_bytes_max: usize) -> Self {
        assert!(entry_bytes_max > 0);
        TtyDecoder { entry_bytes_max, current: Bytes::new(), pending: BytesMut::new(), poisoned: None }
    }

    /// Appends a chunk read from the stream. Ignored while poisoned.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() || self.poisoned.is_some() {
            return;
        }
        if !self.current.is_empty() {
            // Not drained since the last push: keep everything in order in `pending`.
            self.pending.extend_from_slice(&self.current);
        }
        self.current = chunk;
    }

    /// The next complete entry, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(error) = &self.poisoned {
            return Err(error.clone());
        }
        if self.pending.is_empty() {
            if let Some((len, complete)) = entry_end(&self.current) {
                let entry = self.current.split_to(len);
                return Ok(Some(self.frame(entry, complete)));
            }
            self.pending.extend_from_slice(&self.current);
            self.current = Bytes::new();
        } else if !self.current.is_empty() {
            self.pending.extend_from_slice(&self.current);
            self.current = Bytes::new();
        }
        if let Some((len, complete)) = entry_end(&self.pending) {
            let entry = self.pending.split_to(len).freeze();
            if self.pending.is_empty() {
                self.pending = BytesMut::new();
            }
            return Ok(Some(self.frame(entry, complete)));
        }
        if self.pending.len() > self.entry_bytes_max {
            let error = FrameError::TooLarge {
                len: u32::try_from(self.pending.len()).unwrap_or(u32::MAX),
                max: self.entry_bytes_max,
            };
            self.clear();
            self.poisoned = Some(error.clone());
            return Err(error);
        }
        Ok(None)
    }

    fn frame(&self, entry: Bytes, complete: bool) -> Frame {
        let payload = if complete { without_carriage_return(entry) } else { entry };
        Frame { stream: StdStream::Stdout, payload }
    }

    /// The next entry, if it is a whole line inside the current chunk with nothing
    /// pending before it: its stream and raw bytes (a `"\r\n"` still in), left in place.
    pub fn peek_frame(&self) -> Option<(StdStream, &[u8])> {
        if self.poisoned.is_some() || !self.pending.is_empty() {
            return None;
        }
        match entry_end(&self.current)? {
            (len, true) => Some((StdStream::Stdout, &self.current[..len])),
            (_, false) => None,
        }
    }

    /// Consume entries while `skip` says so, each one what [`Self::peek_frame`] would
    /// return next: exactly a loop of `peek_frame` and [`Self::skip_frame`] that stops
    /// at the first entry `skip` refuses or the first one not peekable, with the chunk
    /// advanced once.
    pub fn skip_while<S: super::FrameSkipper>(&mut self, mut skip: S) -> S {
        self.walk_current(|current, start, end| skip.skip(StdStream::Stdout, &current[start..end]));
        skip
    }

    /// Consume whole lines while `take` says so, like [`Self::skip_while`]. `take` gets
    /// the stream, the entry without its line end (`"\n"`, or a terminal's `"\r\n"`: the
    /// line [`Self::next_frame`] hands out, less its `'\n'`), the chunk it lies in with
    /// the entry's offset there, to slice out what it keeps (zero-copy, where
    /// `next_frame` copies a `"\r\n"` entry), and the bytes buffered after the entry.
    pub fn take_lines_while<T: super::LineTaker>(&mut self, mut take: T) -> T {
        self.walk_current(|current, start, end| {
            let raw = &current[start..end];
            let line = raw.strip_suffix(b"\r\n").or_else(|| raw.strip_suffix(b"\n")).expect("a whole line");
            take.take(StdStream::Stdout, line, current, start, current.len() - end)
        });
        take
    }

    /// The line `chunk` holds if, pushed now, it would be all the decoder holds and one
    /// whole entry ending a line: its stream and where the entry, less its line end, lies
    /// in `chunk` (what [`Self::take_lines_while`] would hand out). Taking that line
    /// leaves the decoder as it is, so the chunk need not be pushed at all.
    pub fn lone_line(&self, chunk: &[u8]) -> Option<(StdStream, Range<usize>)> {
        if self.poisoned.is_some() || !self.pending.is_empty() || !self.current.is_empty() {
            return None;
        }
        if entry_end(chunk)? != (chunk.len(), true) {
            return None;
        }
        let line = chunk.strip_suffix(b"\r\n").or_else(|| chunk.strip_suffix(b"\n")).expect("a whole line");
        Some((StdStream::Stdout, 0..line.len()))
    }

    /// The walk of [`Self::skip_while`]: `visit` gets the current chunk and where each
    /// whole line's raw entry starts and ends in it, and says whether to consume it.
    fn walk_current(&mut self, mut visit: impl FnMut(&Bytes, usize, usize) -> bool) {
        if self.poisoned.is_some() || !self.pending.is_empty() {
            return;
        }
        let current = &self.current;
        let mut offset = 0;
        while let Some((len, true)) = entry_end(&current[offset..]) {
            if !visit(current, offset, offset + len) {
                break;
            }
            offset += len;
        }
        if offset > 0 {
            self.current.advance(offset);
        }
    }

    /// Consume the entry [`Self::peek_frame`] returned (`raw_len` bytes) without handing
    /// it out. Takes the length instead of finding the entry's end again: that second
    /// scan was 12 M of seed 1's instructions.
    pub fn skip_frame(&mut self, raw_len: usize) {
        debug_assert_eq!(self.peek_frame().map(|(_, raw)| raw.len()), Some(raw_len), "an entry was peeked");
        self.current.advance(raw_len);
    }

    /// Copy what is left of the chunk pushed last into a buffer of its own size: what
    /// is sliced out of it from now on (and what stays buffered) no longer keeps the
    /// buffer it came in alive. Nothing to do if it was consumed already.
    pub fn compact_last(&mut self) {
        if !self.current.is_empty() {
            self.current = Bytes::copy_from_slice(&self.current);
        }
    }

    /// Bytes pushed and not yet returned in an entry.
    pub fn buffered_bytes(&self) -> usize {
        self.current.len() + self.pending.len()
    }

    /// Forgets everything buffered and any error: ready for a new stream.
    pub fn clear(&mut self) {
        self.current = Bytes::new();
        self.pending = BytesMut::new();
        self.poisoned = None;
    }
}

#[cfg(test)]
#[path = "tty_tests.rs"]
mod tests;
