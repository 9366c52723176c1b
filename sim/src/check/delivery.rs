//! No loss, order, and duplicates only where a crash or an ambiguous sink failure
//! allows them.
//!
//! Every line the world writes carries its per-stream sequence number, and every line
//! Loki accepts is checked at once: the next new line of a stream must be exactly the
//! one after the last (a higher one is a loss, which also catches reordering); a lower
//! one is a duplicate, allowed only inside a window opened by a crash (lines after the
//! last committed checkpoint up to what had been delivered) or by an ambiguous
//! acceptance (the lines of that batch). Cost: one lookup per batch stream, one digit
//! parse per line.

use std::collections::BTreeMap;

use engine::model::{Batch, ContainerId, Position, ResumeKey, SourceId, StdStream};
use engine::port::Checkpoint;

use crate::check::Invariant;
use crate::world::docker::line_seq;

#[derive(Default)]
struct Track {
    /// Resume key of each delivered line, by sequence number (`len` = next expected).
    keys: Vec<ResumeKey>,
    /// Sequence ranges (inclusive) where duplicates are allowed.
    windows: Vec<(u64, u64)>,
    duplicates: u64,
}

#[derive(Default)]
pub struct DeliveryChecker {
    /// Per container, its stdout and stderr (looked up by id, not cloned per batch).
    tracks: BTreeMap<ContainerId, [Track; 2]>,
    pub lines_delivered: u64,
    pub duplicates: u64,
    pub duplicates_allowed: u64,
    pub first_violation: Option<(Invariant, String)>,
}

impl DeliveryChecker {
    fn fail(&mut self, invariant: Invariant, detail: String) {
        if self.first_violation.is_none() {
            self.first_violation = Some((invariant, detail));
        }
    }

    /// One accepted batch. `ambiguous`: stored, but the client was told to retry.
    pub fn handle_delivery(&mut self, batch: &Batch, ambiguous: bool) {
        for stream in &batch.streams {
            let SourceId::Container { id, stream: std_stream } = &stream.source;
            let mut failure = None;
            let tracks = match self.tracks.get_mut(id) {
                Some(tracks) => tracks,
                None => self.tracks.entry(id.clone()).or_default(),
            };
            let track = &mut tracks[std_stream.index()];
            let mut window: Option<(u64, u64)> = None;
            for line in &stream.lines {
                let Some(seq) = line_seq(&line.bytes) else {
                    failure = Some((
                        Invariant::NoLoss,
                        format!(
                            "container {} {}: a line without a sequence number: {:?}",
                            id.short(),
                            std_stream.as_str(),
                            String::from_utf8_lossy(&line.bytes[..line.bytes.len().min(40)])
                        ),
                    ));
                    break;
                };
                let next = track.keys.len() as u64;
                let Position::Container(resume_key) = line.position;
                if seq == next {
                    track.keys.push(resume_key);
                    self.lines_delivered += 1;
                } else if seq > next {
                    failure = Some((
                        Invariant::NoLoss,
                        format!(
                            "container {} {}: line {seq} arrived but line {next} never did",
                            id.short(),
                            std_stream.as_str()
                        ),
                    ));
                    break;
                } else {
                    track.duplicates += 1;
                    self.duplicates += 1;
                    if track.windows.iter().any(|(low, high)| (*low..=*high).contains(&seq)) {
                        self.duplicates_allowed += 1;
                    } else {
                        failure = Some((
                            Invariant::NoDuplicates,
                            format!("container {} {}: line {seq} delivered again with no crash or ambiguous failure covering it (windows {:?})", id.short(), std_stream.as_str(), track.windows),
                        ));
                        break;
                    }
                }
                if ambiguous {
                    window = Some(match window {
                        None => (seq, seq),
                        Some((low, high)) => (low.min(seq), high.max(seq)),
                    });
                }
            }
            if let Some(window) = window {
                track.windows.push(window);
            }
            if let Some((invariant, detail)) = failure {
                self.fail(invariant, detail);
            }
        }
    }

    /// The agent crashed: lines after the committed positions up to what was delivered
    /// may come again.
    pub fn handle_crash(&mut self, committed: &Checkpoint) {
        let tracks = self.tracks.iter_mut().flat_map(|(id, tracks)| {
            let [stdout, stderr] = tracks;
            [(id, StdStream::Stdout, stdout), (id, StdStream::Stderr, stderr)]
        });
        for (id, stream, track) in tracks {
            let delivered = track.keys.len() as u64;
            if delivered == 0 {
                continue;
            }
            let acked = committed.containers.get(id).and_then(|positions| match stream {
                StdStream::Stdout => positions.stdout,
                StdStream::Stderr => positions.stderr,
            });
            let first_unacked = match acked {
                // Keys are increasing per stream: the committed one is found by search.
                Some(key) => track.keys.partition_point(|delivered_key| *delivered_key <= key) as u64,
                None => 0,
            };
            if first_unacked < delivered {
                track.windows.push((first_unacked, delivered - 1));
            }
        }
    }

    /// Lines delivered for one stream of one container.
    pub fn delivered(&self, id: &ContainerId, stream: StdStream) -> u64 {
        self.tracks.get(id).map_or(0, |tracks| tracks[stream.index()].keys.len() as u64)
    }
}
