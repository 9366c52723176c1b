//! Tests of [`super::SlabAlloc`], called directly (not installed as the allocator).

use std::alloc::{GlobalAlloc, Layout};

use super::{SlabAlloc, SMALL_BYTES_MAX};

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn small_blocks_are_distinct_aligned_and_reused_last_in_first_out() {
    let alloc = SlabAlloc;
    unsafe {
        let blocks: Vec<(*mut u8, Layout)> = (1..=SMALL_BYTES_MAX)
            .step_by(7)
            .map(|size| {
                let layout = layout(size, if size % 2 == 0 { 16 } else { 1 });
                let block = alloc.alloc(layout);
                assert!(!block.is_null());
                assert_eq!(block as usize % 16, 0);
                block.write_bytes((size % 251) as u8, size);
                (block, layout)
            })
            .collect();
        // No block overlaps another: each still holds its own pattern.
        for &(block, layout) in &blocks {
            let bytes = std::slice::from_raw_parts(block, layout.size());
            assert!(bytes.iter().all(|&byte| byte == (layout.size() % 251) as u8));
        }
        let (block, first) = blocks[3];
        alloc.dealloc(block, first);
        // Any size of the same class gets the block just freed.
        let again = alloc.alloc(layout(first.size().div_ceil(16) * 16, 8));
        assert_eq!(again, block);
        alloc.dealloc(again, layout(first.size().div_ceil(16) * 16, 8));
        for &(block, layout) in &blocks[..3] {
            alloc.dealloc(block, layout);
        }
        for &(block, layout) in &blocks[4..] {
            alloc.dealloc(block, layout);
        }
    }
}

#[test]
fn large_or_overaligned_blocks_and_reallocs_keep_their_bytes() {
    let alloc = SlabAlloc;
    unsafe {
        let big = alloc.alloc_zeroed(layout(SMALL_BYTES_MAX + 1, 8));
        assert!(std::slice::from_raw_parts(big, SMALL_BYTES_MAX + 1).iter().all(|&byte| byte == 0));
        alloc.dealloc(big, layout(SMALL_BYTES_MAX + 1, 8));
        let aligned = alloc.alloc(layout(64, 64));
        assert_eq!(aligned as usize % 64, 0);
        alloc.dealloc(aligned, layout(64, 64));
        // Grow a block from small to large and back, its content kept each time.
        let mut block = alloc.alloc(layout(10, 1));
        block.copy_from_nonoverlapping(b"0123456789".as_ptr(), 10);
        let mut size = 10;
        for new_size in [12, 40, 5000, 100_000, 900, 3] {
            block = alloc.realloc(block, layout(size, 1), new_size);
            assert!(!block.is_null());
            let kept = size.min(new_size).min(10);
            assert_eq!(std::slice::from_raw_parts(block, kept), &b"0123456789"[..kept]);
            size = new_size;
        }
        alloc.dealloc(block, layout(size, 1));
    }
}
