//! Parsing Docker's log stream into complete lines. Pure functions and sans-IO state
//! machines, tested without any runtime.
//!
//! - [`frame`]: the multiplexed stream (8-byte header: stream type, 3 zero bytes,
//!   big-endian u32 length; then the payload), fed in arbitrary chunks.
//! - [`timestamp`]: RFC 3339 with nanoseconds, as Docker writes it with
//!   `timestamps=1` (`2026-11-22T19:35:40.123456789Z`), parsed and formatted.
//! - [`tty`]: a TTY container's stream (no headers, raw `timestamp SP line` entries,
//!   `\r\n` or `\n`), cut into the same frames; [`decoder`] picks one of the two
//!   when a stream is opened.
//! - [`assemble`]: per-stream merging of 16 KiB partial entries into lines, with the
//!   `line_bytes_max` limit.

pub mod assemble;
pub mod decoder;
pub mod frame;
pub mod timestamp;
pub mod tty;

use bytes::Bytes;

use crate::model::StdStream;

/// What the decoders' `take_lines_while` hands each whole line to: its stream, its entry
/// without the line end, the chunk holding it with the entry's offset there, and the bytes
/// buffered after it; true to consume it. A closure is one, and so is a type whose
/// `take` is `#[inline(always)]`: the reader's live-line step is, since a closure that
/// size was not inlined into the walk and cost a call with five arguments per line.
pub trait LineTaker {
    fn take(&mut self, stream: StdStream, entry: &[u8], chunk: &Bytes, start: usize, buffered: usize) -> bool;
}

impl<F: FnMut(StdStream, &[u8], &Bytes, usize, usize) -> bool> LineTaker for F {
    #[inline]
    fn take(&mut self, stream: StdStream, entry: &[u8], chunk: &Bytes, start: usize, buffered: usize) -> bool {
        self(stream, entry, chunk, start, buffered)
    }
}

/// What the decoders' `skip_while` hands each whole frame to: its stream and payload;
/// true to consume it. A closure is one, and so is a type whose `skip` is
/// `#[inline(always)]`: the reader's replay step is, for the reason [`LineTaker`] gives.
pub trait FrameSkipper {
    fn skip(&mut self, stream: StdStream, payload: &[u8]) -> bool;
}

impl<F: FnMut(StdStream, &[u8]) -> bool> FrameSkipper for F {
    #[inline]
    fn skip(&mut self, stream: StdStream, payload: &[u8]) -> bool {
        self(stream, payload)
    }
}

/// Test support: `bytes` cut at `cuts` (any offsets: clamped into the string and
/// sorted here), as the chunks a stream would hand them, in order.
#[cfg(test)]
pub(crate) fn chunks_cut_at(bytes: &[u8], cuts: &[usize]) -> Vec<bytes::Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.windows(2).map(|window| bytes::Bytes::copy_from_slice(&bytes[window[0]..window[1]])).collect()
}
