//! `SlabAlloc`: the `capture-sim` binary's global allocator: small blocks come from
//! per-thread free lists, everything else from the system allocator.
//!
//! Owns: every heap block of at most [`SMALL_BYTES_MAX`] bytes and alignment at most
//! 16 that the binary allocates. Sizes round up to a multiple of 16, one class per
//! multiple. A thread takes a block of its class from its own free list, else cuts one
//! from its current slab (256 KiB from the system allocator); a freed block goes onto
//! the list of the thread that frees it, whichever thread cut it. Blocks are never
//! returned to the system, so a block may move between threads freely; what a thread
//! holds is at most, per class, the most it ever had live at once (the blocks on the
//! lists of a thread that exits are not reused).
//!
//! Promises: [`GlobalAlloc`]'s contract; no lock and no allocation besides slabs and
//! the blocks passed through; nothing else changes: the runs never depend on addresses
//! (per-seed digests are the same with the system allocator).
//!
//! Why: a seed makes about a million allocations, frees and reallocs (lines, chunks,
//! batches, futures); glibc's cost about 108 instructions a call there on average
//! (213M of seed 1's 2,205M instructions), a pop or a push on a free list a tenth of
//! that. Only the binary installs it (`main.rs`); the library and its tests use the
//! system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr::null_mut;

/// Block sizes are multiples of this, which is also the largest alignment served.
const CLASS_BYTES: usize = 16;
const CLASSES: usize = 64;
/// The largest block served from the free lists.
pub const SMALL_BYTES_MAX: usize = CLASS_BYTES * CLASSES;
/// What a thread takes from the system allocator when its slab is used up.
const SLAB_BYTES: usize = 256 * 1024;

/// The allocator (`#[global_allocator] static ALLOC: SlabAlloc = SlabAlloc;`).
pub struct SlabAlloc;

/// One thread's free lists (each block on one holds the address of the next in its
/// first word) and the rest of its slab.
struct ThreadCache {
    free: [Cell<*mut u8>; CLASSES],
    slab_next: Cell<*mut u8>,
    slab_end: Cell<usize>,
}

thread_local! {
    // Constant-initialised and without a destructor: usable at any point of a thread's
    // life, and touching it never allocates.
    static CACHE: ThreadCache = const {
        ThreadCache {
            free: [const { Cell::new(null_mut()) }; CLASSES],
            slab_next: Cell::new(null_mut()),
            slab_end: Cell::new(0),
        }
    };
}

/// The class of a layout the free lists serve: blocks of `(class + 1) * 16` bytes.
fn class_of(layout: Layout) -> Option<usize> {
    (layout.size() <= SMALL_BYTES_MAX && layout.align() <= CLASS_BYTES)
        .then(|| layout.size().saturating_sub(1) / CLASS_BYTES)
}

impl ThreadCache {
    fn take(&self, class: usize) -> *mut u8 {
        let head = self.free[class].get();
        if !head.is_null() {
            // SAFETY: a block on a free list is ours, at least 16 bytes and 16-aligned,
            // and holds the next block's address in its first word.
            self.free[class].set(unsafe { head.cast::<*mut u8>().read() });
            return head;
        }
        let bytes = (class + 1) * CLASS_BYTES;
        let mut next = self.slab_next.get();
        if self.slab_end.get() - (next as usize) < bytes {
            // The rest of the old slab (less than a block) is left unused.
            // SAFETY: the layout's size is not zero.
            let slab = unsafe { System.alloc(Layout::from_size_align_unchecked(SLAB_BYTES, CLASS_BYTES)) };
            if slab.is_null() {
                return slab;
            }
            next = slab;
            self.slab_end.set(slab as usize + SLAB_BYTES);
        }
        // SAFETY: `next + bytes` is within the slab (checked above).
        self.slab_next.set(unsafe { next.add(bytes) });
        next
    }

    /// # Safety
    /// `block` was served by [`Self::take`] (on any thread) for `class` and is not used
    /// any more.
    unsafe fn give(&self, class: usize, block: *mut u8) {
        // SAFETY: the block is at least 16 bytes, 16-aligned, and ours again.
        unsafe { block.cast::<*mut u8>().write(self.free[class].get()) };
        self.free[class].set(block);
    }
}

// SAFETY: small blocks are handed out once until given back (each thread's lists are its
// own), are `(class + 1) * 16` bytes from 16-aligned slabs, so they fit any layout of
// their class; everything else is the system allocator's.
unsafe impl GlobalAlloc for SlabAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => CACHE.with(|cache| cache.take(class)),
            // SAFETY: the caller's layout, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => {
                let block = CACHE.with(|cache| cache.take(class));
                if !block.is_null() {
                    // SAFETY: the block holds at least `layout.size()` bytes.
                    unsafe { block.write_bytes(0, layout.size()) };
                }
                block
            }
            // SAFETY: the caller's layout, passed on.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            // SAFETY: the caller's promise: `block` came from `alloc` with this layout.
            Some(class) => CACHE.with(|cache| unsafe { cache.give(class, block) }),
            // SAFETY: the caller's promise, passed on.
            None => unsafe { System.dealloc(block, layout) },
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's promise: `new_size`, rounded to the alignment, fits `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // SAFETY: the caller's promises, passed on.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            (Some(old), Some(new)) if old == new => block,
            _ => {
                // SAFETY: the caller's layout, with a size the caller vouches for.
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks hold at least the bytes copied and are distinct;
                    // `block` came from this allocator with `layout`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
#[path = "slab_alloc_tests.rs"]
mod tests;
