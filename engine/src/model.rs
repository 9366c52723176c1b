//! The data that flows through the engine: sources, lines and their resume keys.
//!
//! A [`Line`] is one complete log line (partial Docker entries already merged), with the
//! [`SourceId`] it came from and the [`Position`] that, once acknowledged by the sink,
//! lets the source resume after it. Lines carry their bytes as a [`Bytes`] slice of the
//! chunk they were read in, so moving them through the pipeline copies nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::rt::UnixNanos;

/// Which output of a container a line came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdStream {
    Stdout,
    Stderr,
}

impl StdStream {
    pub fn as_str(self) -> &'static str {
        match self {
            StdStream::Stdout => "stdout",
            StdStream::Stderr => "stderr",
        }
    }

    pub fn index(self) -> usize {
        match self {
            StdStream::Stdout => 0,
            StdStream::Stderr => 1,
        }
    }
}

/// A Docker container id (the full 64-hex id in production).
///
/// Ordered and compared as its text, but ids are the keys of every per-container map
/// and are looked up per chunk, batch and commit: the same `Arc` is equal (and ordered
/// equal: the last step of a look-up, callgrind seed 85 440.4 M -> 438.7 M) at once, and
/// two ids (random hex, so almost always different from the first byte) are ordered by
/// their first eight bytes in one integer comparison before the text is compared.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(pub Arc<str>);

impl PartialEq for ContainerId {
    fn eq(&self, other: &ContainerId) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for ContainerId {}

impl Ord for ContainerId {
    fn cmp(&self, other: &ContainerId) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        let (ours, theirs) = (self.0.as_bytes(), other.0.as_bytes());
        if let (Some(ours), Some(theirs)) = (ours.first_chunk::<8>(), theirs.first_chunk::<8>()) {
            // Big-endian: the integers order as the bytes do.
            let ordering = u64::from_be_bytes(*ours).cmp(&u64::from_be_bytes(*theirs));
            if ordering.is_ne() {
                return ordering;
            }
        }
        ours.cmp(theirs)
    }
}

impl PartialOrd for ContainerId {
    fn partial_cmp(&self, other: &ContainerId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for ContainerId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl ContainerId {
    pub fn new(id: impl Into<Arc<str>>) -> ContainerId {
        ContainerId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character short id Docker prints.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a line came from: one output stream of one container (files come later).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceId {
    Container { id: ContainerId, stream: StdStream },
}

/// The resume key of a container line: its Docker timestamp and how many earlier
/// complete lines of the same stream carried the same timestamp. Ordered (by `ts`, then
/// `seq`), so "already delivered" is `key <= acknowledged`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResumeKey {
    /// Unix nanoseconds of the entry that ended the line.
    pub ts: UnixNanos,
    /// Lines of the same stream seen before this one with the same `ts`.
    pub seq: u32,
}

/// The derived order, with `<` and `>` written out timestamp first: the reader compares
/// every replayed and every live line's key with a stream's high-water key, and keys
/// that differ in their timestamps (most) are told apart by one comparison, where the
/// derived operators compared both fields and selected (callgrind: seed 3 349.81 M ->
/// 348.11 M, seed 19 796.50 M -> 789.89 M, seed 2 307.16 M -> 305.27 M).
impl PartialOrd for ResumeKey {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }

    #[inline]
    fn lt(&self, other: &Self) -> bool {
        self.ts <= other.ts && (self.ts < other.ts || self.seq < other.seq)
    }

    #[inline]
    fn gt(&self, other: &Self) -> bool {
        self.ts >= other.ts && (self.ts > other.ts || self.seq > other.seq)
    }

    #[inline]
    fn le(&self, other: &Self) -> bool {
        !self.gt(other)
    }

    #[inline]
    fn ge(&self, other: &Self) -> bool {
        !self.lt(other)
    }
}

impl Ord for ResumeKey {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.ts.cmp(&other.ts).then(self.seq.cmp(&other.seq))
    }
}

/// A source's position: what to resume after.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Position {
    Container(ResumeKey),
}

/// Loki stream labels, sorted by name. Shared by every line of a source.
pub type Labels = Arc<BTreeMap<String, String>>;

/// One complete log line on its way to the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The line's timestamp (Docker's, or the wall clock at read time for files).
    pub ts: UnixNanos,
    /// The content without its trailing newline; truncated lines end with the marker.
    pub bytes: Bytes,
    /// Where this line leaves its source once acknowledged.
    pub position: Position,
}

/// The lines of one source inside a batch, in source order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchStream {
    pub source: SourceId,
    pub labels: Labels,
    pub lines: Vec<Line>,
}

/// One push request's worth of lines: what the sink transport sends at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Per source, in the order sources first appeared in the batch.
    pub streams: Vec<BatchStream>,
    /// Sum of line lengths.
    pub bytes: usize,
    pub lines: usize,
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
