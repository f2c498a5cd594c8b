//! Where a kernel reads its weight bytes from.
//!
//! The kernels are written once against [`WeightSrc`]. Memory-0 pointers implement it
//! (tests, benchmarks, weights copied into scratch); the component implements it for
//! addresses in its 64-bit weights memory, whose loads a post-link pass turns into
//! `v128.load`/`i32.load` on memory 1. Decoding then reads each weight once, straight
//! from the weights memory, instead of copying it into scratch first and reading the
//! copy.

use core::arch::wasm32::*;

/// A read-only position in some weight memory. Offsets are in bytes.
pub trait WeightSrc: Copy {
    /// The position `off` bytes further.
    fn at(self, off: usize) -> Self;
    /// The 16 bytes at `self + off`.
    ///
    /// # Safety
    /// They must be readable (for memory 0); other memories trap when out of range.
    unsafe fn v128(self, off: usize) -> v128;
    /// The little-endian `u32` at `self + off`. Safety: as [`WeightSrc::v128`].
    unsafe fn u32(self, off: usize) -> u32;
    /// The little-endian `u16` at `self + off`. Safety: as [`WeightSrc::v128`].
    unsafe fn u16(self, off: usize) -> u16;
    /// Starts bringing the cache line at `self + off` in, for memories whose kernels
    /// would otherwise wait for it (wasm has no prefetch instruction: an unused load).
    /// Safety: as [`WeightSrc::v128`].
    #[inline(always)]
    unsafe fn touch(self, off: usize) {
        let _ = off;
    }
}

impl WeightSrc for *const u8 {
    #[inline(always)]
    fn at(self, off: usize) -> Self {
        self.wrapping_add(off)
    }
    #[inline(always)]
    unsafe fn v128(self, off: usize) -> v128 {
        v128_load(self.add(off) as *const v128)
    }
    #[inline(always)]
    unsafe fn u32(self, off: usize) -> u32 {
        u32::from_le(core::ptr::read_unaligned(self.add(off) as *const u32))
    }
    #[inline(always)]
    unsafe fn u16(self, off: usize) -> u16 {
        u16::from_le(core::ptr::read_unaligned(self.add(off) as *const u16))
    }
}
