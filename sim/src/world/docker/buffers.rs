//! Render buffers handed back by dropped log streams, for the next streams to reuse.
//!
//! Owns: up to [`BufferPool::KEPT`] render buffers (some may still back chunks the
//! engine holds) and as many run lists, oldest first.
//!
//! Why: most streams render once or twice before they are dropped (a reopen per json-file
//! rotation), so a buffer and a run list per stream cost an allocation and a free each
//! (seed 1: 55 k of each, ~45 M of 2,050 M instructions in malloc and free). A buffer is
//! reused only once the engine dropped every chunk cut from it ([`BytesMut::try_reclaim`]),
//! so what a stream hands out never changes: only where it is rendered.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::log::RenderedRun;

#[derive(Default)]
pub(crate) struct BufferPool {
    buffers: VecDeque<BytesMut>,
    runs: Vec<Vec<RenderedRun>>,
}

impl BufferPool {
    /// Buffers kept: a few more than the streams a world has open at once.
    const KEPT: usize = 32;

    /// An empty buffer with room for `wanted` bytes: a kept one the engine is done
    /// with, else a new one.
    pub(crate) fn buffer(&mut self, wanted: usize) -> BytesMut {
        match self.buffers.iter_mut().position(|buffer| buffer.try_reclaim(wanted)) {
            Some(at) => self.buffers.remove(at).expect("found"),
            None => BytesMut::with_capacity(wanted),
        }
    }

    /// An empty run list.
    pub(crate) fn runs(&mut self) -> Vec<RenderedRun> {
        self.runs.pop().unwrap_or_default()
    }

    /// A buffer a stream is done with (empty: what it rendered is split off), if it
    /// ever had one.
    pub(crate) fn give_buffer(&mut self, buffer: BytesMut) {
        if self.buffers.len() == Self::KEPT {
            self.buffers.pop_front();
        }
        self.buffers.push_back(buffer);
    }

    /// A dropped stream's run list.
    pub(crate) fn give_runs(&mut self, mut runs: Vec<RenderedRun>) {
        if runs.capacity() > 0 && self.runs.len() < Self::KEPT {
            runs.clear();
            self.runs.push(runs);
        }
    }
}
