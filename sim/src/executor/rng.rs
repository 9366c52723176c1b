//! `SimRng`: the simulator's only source of randomness, a seeded xoshiro256**.
//!
//! Owns: the pseudo-random generator used by the executor (which runnable task goes
//! next), by [`crate::executor::SimRt::rand_u64`] (the engine's jitter) and by the world
//! models (what containers print, which faults strike when).
//!
//! Promises: the same seed gives the same sequence on every platform and every run; no
//! global state, no OS entropy. Independent streams come from [`SimRng::derive`] with a
//! distinct stream number ([`streams`]), so that drawing more numbers in one stream
//! (say the engine jitters once more on a later commit) never shifts another (the
//! world's schedule), which keeps saved seeds meaningful across commits.

use std::ops::Range;

/// Stream numbers for [`SimRng::derive`]. Each consumer of randomness owns one.
pub mod streams {
    /// The executor's choice of the next runnable task.
    pub const SCHEDULER: u64 = 1;
    /// [`engine::rt::Rt::rand_u64`]: the engine's jitter and tie-breaks.
    pub const ENGINE: u64 = 2;
    /// The world's schedule: containers, output, churn, faults (the scenario driver).
    pub const WORLD: u64 = 3;
    /// Per-model streams, if a model wants one of its own.
    pub const DOCKER: u64 = 4;
    pub const LOKI: u64 = 5;
    pub const CHECKPOINT: u64 = 6;
}

/// splitmix64: expands seeds, and is a fine mixer on its own.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRng {
    s: [u64; 4],
}

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        let mut state = seed;
        let s = [splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state)];
        // splitmix64 never yields four zeros in a row, but be explicit about the one
        // forbidden state.
        debug_assert!(s != [0; 4]);
        SimRng { s }
    }

    /// An independent stream of `seed`, numbered `stream` (see [`streams`]).
    pub fn derive(seed: u64, stream: u64) -> SimRng {
        let mut state = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mixed = splitmix64(&mut state) ^ stream;
        SimRng::new(mixed)
    }

    /// A child generator, seeded from this one (advances `self` by one draw).
    pub fn fork(&mut self) -> SimRng {
        SimRng::new(self.next_u64())
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)`; `n` must be positive. Unbiased (Lemire's method).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SimRng::below(0)");
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        let mut low = product as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
                low = product as u64;
            }
        }
        (product >> 64) as u64
    }

    /// Uniform in `[0, n)` as a `usize`, for indexing.
    #[inline]
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `range` (half-open, non-empty).
    pub fn range(&mut self, range: Range<u64>) -> u64 {
        assert!(range.start < range.end, "SimRng::range on an empty range {range:?}");
        range.start + self.below(range.end - range.start)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        self.unit_f64() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }

    /// Exponentially distributed with the given mean (for inter-arrival times).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        let u = 1.0 - self.unit_f64(); // (0, 1]
        -mean * u.ln()
    }
}
