//! `Lock`: the executor's mutex for state that only one thread ever touches at a time.
//!
//! Owns nothing but the pattern. The simulation is single-threaded; its shared state sits
//! behind locks only because the engine's futures, wakers and runtime handle must be
//! `Send + Sync`. Such a lock is never contended, and what it costs is its atomic
//! read-modify-write instructions: `std::sync::Mutex` pays two per acquisition (the
//! unlock must learn whether anyone waits), this one pays one (an uncontended unlock is
//! a plain release store). Under contention, which the simulation never causes, a
//! waiter spins and yields: still correct, only slow.
//!
//! Promises: mutual exclusion with acquire/release ordering, like any mutex; no
//! poisoning (a guard dropped while unwinding unlocks; a panic inside a simulated task
//! unwinds out of the executor anyway, which is then dropped).

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub(crate) struct Lock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and at most one guard exists at a
// time (`locked`), with acquire/release ordering between holders: exactly a mutex.
unsafe impl<T: Send> Send for Lock<T> {}
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Lock<T> {
        Lock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    #[inline]
    pub(crate) fn lock(&self) -> LockGuard<'_, T> {
        while self.locked.swap(true, Ordering::Acquire) {
            while self.locked.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
        }
        LockGuard { lock: self }
    }
}

pub(crate) struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `Lock::lock`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one (see `Lock::lock`).
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
