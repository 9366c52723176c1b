//! An index by the address of a [`ContainerId`]'s text: the model and the oracle find a
//! record with an id the engine got from the model (a clone of the very `Arc`) by a hash
//! of one integer, not by comparing 64-hex-digit ids.
//!
//! Owns: nothing but the index type, the address of an id, and the hasher.
//! Promises: nothing about soundness by itself; a user maps an address only while its
//! record holds that `Arc` (so no other live id has it) and checks a hit with
//! `Arc::ptr_eq` where records can go.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use engine::model::ContainerId;

/// Address of an id's text → the position of its record.
pub(crate) type ByAddress = HashMap<usize, usize, BuildHasherDefault<AddressHasher>>;

/// The address of `id`'s text: the same for every clone of one `Arc`.
#[inline]
pub(crate) fn address(id: &ContainerId) -> usize {
    Arc::as_ptr(&id.0).cast::<u8>() as usize
}

/// Hashes one address: a multiply spreads it, the rotation brings the well-mixed high
/// bits down to where the table takes its bucket index (addresses are aligned, so their
/// low bits, and those of any odd multiple, are zero).
#[derive(Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}
