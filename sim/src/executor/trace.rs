//! The trace digest: a running hash of (virtual time, task id) at every poll.
//!
//! Owns: the fingerprint of a schedule. Two runs with the same seed must produce the
//! same digest; any divergence (a hidden source of nondeterminism in the engine or the
//! world) shows up as a different value. It costs two multiplies per poll.

/// A running 64-bit hash of the poll sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceDigest(u64);

impl Default for TraceDigest {
    fn default() -> TraceDigest {
        TraceDigest(0x243F_6A88_85A3_08D3)
    }
}

impl TraceDigest {
    #[inline]
    pub(crate) fn record(&mut self, now_nanos: u64, task_id: u64) {
        let h = (self.0 ^ now_nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h = (h.rotate_left(31) ^ task_id).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        self.0 = h ^ (h >> 29);
    }

    pub(crate) fn value(self) -> u64 {
        self.0
    }
}
