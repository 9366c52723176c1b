//! Thread confinement: which thread owns a piece of executor state.
//!
//! Owns: the calling thread's [`ThreadToken`]. A seed runs on one thread from start to end
//! (the sweep builds its executor and world on the worker thread that runs it, see
//! `crate::sweep`), yet the engine's futures, wakers and runtime handle must be
//! `Send + Sync`. The executor's [`super::Lock`] and task wakers therefore do no atomic
//! read-modify-write at all: each records the token of the thread that created it and
//! checks, on every use, that the caller holds the same token. A foreign caller is
//! stopped before it writes anything (a panic for a lock, an abort for a waker), so the
//! plain `Cell`s (and relaxed loads and stores) behind the check never race.
//!
//! Why a token and not `std::thread::current().id()`: that clones an `Arc` (two atomic
//! RMW per check), which is what this module exists to avoid. Why a counter and not the
//! address of a thread-local: addresses are reused by threads started after another
//! exited, and a counter never is, so "same token" means "same thread" without an
//! argument about how thread-local blocks are recycled.
//!
//! Promises:
//! - Two threads never have the same token (tokens are drawn once per thread from a
//!   64-bit counter, which does not wrap).
//! - [`ThreadToken::is_current`] is one thread-local load and a compare; it never assigns
//!   a token (a thread without one cannot own anything: tokens are nonzero).
//! - [`ThreadToken::current`] costs one atomic RMW the first time a thread calls it, and
//!   none after.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next token to hand out (0 means "none yet" in [`TOKEN`]).
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The calling thread's token, 0 until [`ThreadToken::current`] assigns one.
    static TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// A thread's identity, unique among all threads of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadToken(u64);

impl ThreadToken {
    /// The calling thread's token (assigned at the thread's first call).
    pub(crate) fn current() -> ThreadToken {
        TOKEN.with(|token| {
            if token.get() == 0 {
                token.set(NEXT_TOKEN.fetch_add(1, Ordering::Relaxed));
            }
            ThreadToken(token.get())
        })
    }

    /// Whether the calling thread is the one this token names.
    #[inline(always)]
    pub(crate) fn is_current(self) -> bool {
        Self::current_is(self.0)
    }

    /// Whether `value` is the calling thread's token (as [`Self::value`] gives it). Beware:
    /// true for 0 on a thread that has no token yet; never true for `u64::MAX` (the
    /// counter does not get there).
    #[inline(always)]
    pub(crate) fn current_is(value: u64) -> bool {
        TOKEN.with(Cell::get) == value
    }

    /// The token as a number (never 0).
    #[inline(always)]
    pub(crate) fn value(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::ThreadToken;

    #[test]
    fn a_token_names_its_thread_only() {
        let here = ThreadToken::current();
        assert_eq!(ThreadToken::current(), here);
        assert!(here.is_current());
        let there = std::thread::spawn(move || {
            assert!(!here.is_current(), "another thread before it has a token");
            let there = ThreadToken::current();
            assert!(!here.is_current(), "another thread with its own token");
            there
        })
        .join()
        .unwrap();
        assert_ne!(there, here);
        assert!(!there.is_current());
    }
}
