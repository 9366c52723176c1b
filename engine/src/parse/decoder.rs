//! The decoder of one log stream, in the format chosen when the stream is opened:
//! Docker's frames ([`FrameDecoder`]) or a TTY container's raw entries ([`TtyDecoder`]).
//!
//! [`LogDecoder`] only delegates; both decoders hand out [`Frame`]s with the same
//! promises (any chunking, zero-copy where the entry lies in one chunk, bounded, poisoned
//! after an error until [`LogDecoder::clear`]).

use std::ops::Range;

use bytes::Bytes;

use super::frame::{Frame, FrameDecoder, FrameError};
use super::tty::TtyDecoder;
use crate::model::StdStream;

/// Framed or TTY. See the module docs.
#[derive(Debug)]
pub enum LogDecoder {
    Framed(FrameDecoder),
    Tty(TtyDecoder),
}

impl LogDecoder {
    /// A decoder for a container with (`tty`) or without a terminal; `bytes_max` bounds
    /// one frame or one TTY entry.
    pub fn new(tty: bool, bytes_max: usize) -> LogDecoder {
        if tty {
            LogDecoder::Tty(TtyDecoder::new(bytes_max))
        } else {
            LogDecoder::Framed(FrameDecoder::new(bytes_max))
        }
    }

    pub fn is_tty(&self) -> bool {
        matches!(self, LogDecoder::Tty(_))
    }

    #[inline]
    pub fn push(&mut self, chunk: Bytes) {
        match self {
            LogDecoder::Framed(decoder) => decoder.push(chunk),
            LogDecoder::Tty(decoder) => decoder.push(chunk),
        }
    }

    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self {
            LogDecoder::Framed(decoder) => decoder.next_frame(),
            LogDecoder::Tty(decoder) => decoder.next_frame(),
        }
    }

    #[inline]
    pub fn peek_frame(&self) -> Option<(StdStream, &[u8])> {
        match self {
            LogDecoder::Framed(decoder) => decoder.peek_frame(),
            LogDecoder::Tty(decoder) => decoder.peek_frame(),
        }
    }

    /// Consume frames while `skip` says so: a loop of [`Self::peek_frame`] and
    /// [`Self::skip_frame`], without the dispatch and the checks per frame.
    #[inline]
    pub fn skip_while<S: super::FrameSkipper>(&mut self, skip: S) -> S {
        match self {
            LogDecoder::Framed(decoder) => decoder.skip_while(skip),
            LogDecoder::Tty(decoder) => decoder.skip_while(skip),
        }
    }

    /// Consume whole lines while `take` says so: `take` gets each one's stream, its entry
    /// without the line end (as [`Self::next_frame`] would hand it out, less its `'\n'`),
    /// the chunk holding it with the entry's offset there (to slice what it keeps), and
    /// the bytes buffered after it. Stops where `skip_while` would, and at a partial entry.
    /// Hands `take` back, with whatever it gathered.
    #[inline]
    pub fn take_lines_while<T: super::LineTaker>(&mut self, take: T) -> T {
        match self {
            LogDecoder::Framed(decoder) => decoder.take_lines_while(take),
            LogDecoder::Tty(decoder) => decoder.take_lines_while(take),
        }
    }

    /// The line `chunk` holds if, pushed now, it would be all the decoder holds and one
    /// whole entry ending a line: its stream and where it lies in `chunk`, less its line
    /// end, as [`Self::take_lines_while`] would hand it out once `chunk` is pushed. Taking
    /// it leaves the decoder as it is (empty), so `chunk` need not be pushed.
    #[inline]
    pub fn lone_line(&self, chunk: &[u8]) -> Option<(StdStream, Range<usize>)> {
        match self {
            LogDecoder::Framed(decoder) => decoder.lone_line(chunk),
            LogDecoder::Tty(decoder) => decoder.lone_line(chunk),
        }
    }

    /// Consume what [`Self::peek_frame`] returned; `len` is the length of its bytes.
    #[inline]
    pub fn skip_frame(&mut self, len: usize) {
        match self {
            LogDecoder::Framed(decoder) => decoder.skip_frame(len),
            LogDecoder::Tty(decoder) => decoder.skip_frame(len),
        }
    }

    /// Copy what is left of the chunk pushed last into a buffer of its own size (see
    /// the decoders' `compact_last`).
    pub fn compact_last(&mut self) {
        match self {
            LogDecoder::Framed(decoder) => decoder.compact_last(),
            LogDecoder::Tty(decoder) => decoder.compact_last(),
        }
    }

    /// If the chunk pushed last ends a frame begun in earlier chunks, copy them into one
    /// buffer, where that frame is whole: what [`Self::compact_last`] does, with that
    /// frame in it (framed streams only: see [`FrameDecoder::join_pending`]). True if it
    /// did.
    pub fn join_pending(&mut self) -> bool {
        match self {
            LogDecoder::Framed(decoder) => decoder.join_pending(),
            LogDecoder::Tty(_) => false,
        }
    }

    pub fn buffered_bytes(&self) -> usize {
        match self {
            LogDecoder::Framed(decoder) => decoder.buffered_bytes(),
            LogDecoder::Tty(decoder) => decoder.buffered_bytes(),
        }
    }

    pub fn clear(&mut self) {
        match self {
            LogDecoder::Framed(decoder) => decoder.clear(),
            LogDecoder::Tty(decoder) => decoder.clear(),
        }
    }
}
