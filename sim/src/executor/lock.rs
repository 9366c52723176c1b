//! `Lock`: the executor's cell for state that only the thread running the seed touches.
//!
//! Owns nothing but the pattern. A simulation runs on one thread; its shared state sits
//! behind locks only because the engine's futures, wakers and runtime handle must be
//! `Send + Sync`. Such a lock is never contended, and what a mutex costs here is its
//! atomic read-modify-write: `std::sync::Mutex` pays two per acquisition, the spin lock
//! this replaced paid one (a `swap`), and a time profile of the sweep (perf, cpu-clock)
//! put most of the time of the executor's wake and poll paths at or after those `lock`
//! instructions (about 20 cycles each, which callgrind counts as one instruction).
//!
//! So a `Lock` is confined to the thread that creates it ([`ThreadToken`], see
//! [`super::confine`]), and holds one word of state: the owner's token while it is free,
//! [`HELD`] (no thread's token) while a guard is alive. `lock()` compares that word with
//! the caller's token (one thread-local load): equal means "the owner, and free", and it
//! stores `HELD`; a guard's drop stores the token back. Anything else is a bug and panics
//! (another thread, or the owner locking again while it holds a guard). No atomic
//! read-modify-write at all: the word is an `AtomicU64` only so that a foreign thread may
//! read it without a data race (a relaxed load or store is a plain `mov`); only the owner
//! thread ever writes it. That is as many instructions per acquisition as the swap it
//! replaces (load, compare, branch, store; release: store), where an immutable owner
//! field checked first, then a `Cell<bool>` "held" flag, took two more: seed 2 takes
//! 470,641 locks in 28,016 polls. Callgrind, from that first version to this one (with
//! a by-value wake checked once instead of twice): seed 2 288.22 M -> 287.28 M, seed 3
//! 330.25 M -> 328.84 M, seed 19 708.12 M -> 705.26 M.
//!
//! Promises:
//! - Only the owner thread ever reaches the value; any other thread's `lock()` panics
//!   (it is a bug in the simulator: a seed's state must stay on the seed's thread).
//! - At most one guard exists at a time; locking again while a guard is alive panics
//!   (it would have spun forever before) instead of aliasing the value.
//! - No poisoning: a guard dropped while unwinding releases the lock.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

use super::confine::ThreadToken;

pub(crate) struct Lock<T> {
    /// The thread that created the lock: the only one that may lock it. Never changes.
    owner: ThreadToken,
    /// `owner`'s token while free, [`HELD`] while a guard is alive. Written by the owner
    /// thread only (in `lock()` after the check, and by the guard), read by any.
    state: AtomicU64,
    value: UnsafeCell<T>,
}

/// [`Lock::state`] while a guard is alive: no thread has this token, and it is not the
/// 0 a thread without a token reads either (see [`ThreadToken::current_is`]).
const HELD: u64 = u64::MAX;

// SAFETY: `value` is read or written only (a) through a guard, which `lock()` creates
// only after reading `state` equal to the caller's token. Only the owner thread writes
// `state`, and it writes its own token there only when no guard is alive (at creation and
// when its guard drops), so a thread that reads its own token is the owner (tokens are
// unique, see `ThreadToken`) and no other guard exists (the owner's own writes are seen
// in program order; `lock()` stores `HELD` before returning). A guard cannot leave the
// owner thread (it is neither `Send` nor `Sync`). Or (b) when the lock itself is dropped,
// through ownership, which moving it to another thread requires `T: Send` for. So `value`
// is touched by one thread at a time, handed over only by moving the whole lock (`T:
// Send`), and `&mut T` from a guard never aliases. `state` is atomic (relaxed loads and
// stores, no RMW), so a foreign thread's read is no data race either.
unsafe impl<T: Send> Send for Lock<T> {}
// SAFETY: as above: sharing `&Lock<T>` gives other threads nothing but a panicking
// `lock()`; `T` is reached on the owner thread only, so `T: Send` suffices.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T: Default> Default for Lock<T> {
    fn default() -> Lock<T> {
        Lock::new(T::default())
    }
}

impl<T> Lock<T> {
    /// A lock owned by the calling thread.
    pub(crate) fn new(value: T) -> Lock<T> {
        let owner = ThreadToken::current();
        Lock { owner, state: AtomicU64::new(owner.value()), value: UnsafeCell::new(value) }
    }

    #[inline]
    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        if !ThreadToken::current_is(self.state.load(Ordering::Relaxed)) {
            self.refuse();
        }
        self.state.store(HELD, Ordering::Relaxed);
        LockGuard { lock: self, confined: PhantomData }
    }

    /// Why `lock()` cannot proceed: another thread, or the owner's guard is alive.
    #[cold]
    #[inline(never)]
    fn refuse(&self) -> ! {
        if self.owner.is_current() {
            reentered()
        }
        foreign_thread()
    }
}

#[cold]
#[inline(never)]
fn foreign_thread() -> ! {
    panic!("an executor Lock was used by a thread other than the one that created it (a seed's state must stay on the seed's thread)");
}

#[cold]
#[inline(never)]
fn reentered() -> ! {
    panic!("an executor Lock was locked again while its guard is alive on the same thread");
}

pub(crate) struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
    /// Neither `Send` nor `Sync`: the guard stays on the owner thread (see the SAFETY of
    /// `Send for Lock`).
    confined: PhantomData<*const ()>,
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one, and lives on the owner thread (see
        // `Lock::lock`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one, and lives on the owner thread (see
        // `Lock::lock`).
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // The guard lives on the owner thread: free again.
        self.lock.state.store(self.lock.owner.value(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Lock;

    #[test]
    fn the_owner_locks_again_and_again() {
        let lock = Lock::new(1);
        *lock.lock() += 1;
        *lock.lock() += 1;
        assert_eq!(*lock.lock(), 3);
    }

    #[test]
    fn another_thread_panics() {
        let lock = Lock::new(5);
        let outcome = std::thread::scope(|scope| scope.spawn(|| *lock.lock()).join());
        let message = outcome.expect_err("a foreign lock must panic");
        let message = message.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(message.contains("other than the one that created it"), "{message}");
        // The owner is unaffected.
        assert_eq!(*lock.lock(), 5);
    }

    #[test]
    fn a_lock_moved_away_is_dropped_there() {
        let lock = Lock::new(vec![1, 2, 3]);
        let length = std::thread::spawn(move || {
            let lock = lock;
            let length = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lock.lock().len()));
            assert!(length.is_err(), "not the owner");
            drop(lock);
        })
        .join();
        assert!(length.is_ok());
    }

    #[test]
    fn another_thread_panics_while_the_owner_holds_it() {
        let lock = Lock::new(5);
        let held = lock.lock();
        // A fresh thread (no token yet) and one with a token.
        for take_token in [false, true] {
            let outcome = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        if take_token {
                            super::ThreadToken::current();
                        }
                        *lock.lock()
                    })
                    .join()
            });
            let message = outcome.expect_err("a foreign lock must panic");
            let message = message.downcast_ref::<&str>().copied().unwrap_or_default();
            assert!(message.contains("other than the one that created it"), "{message}");
        }
        drop(held);
        assert_eq!(*lock.lock(), 5);
    }

    #[test]
    #[should_panic(expected = "locked again while its guard is alive")]
    fn a_reentrant_lock_panics() {
        let lock = Lock::new(0);
        let _held = lock.lock();
        let _again = lock.lock();
    }

    #[test]
    fn a_guard_dropped_while_unwinding_releases() {
        let lock = Lock::new(0);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = lock.lock();
            panic!("inside");
        }));
        assert!(outcome.is_err());
        *lock.lock() += 1;
        assert_eq!(*lock.lock(), 1);
    }
}
