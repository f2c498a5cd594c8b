//! AVX2 kernels of the 32-element block formats Q4_0, Q4_1 (against Q8_0/Q8_1
//! activations) and Q8_0, in the reference's (ggml's AVX2) order.

use core::arch::x86_64::*;

use super::super::{q4_0, q4_1, q8_0, q8_1, rd_f16};

/// ggml's `hsum_float_8`: high half + low half, then pairwise, as the reference.
#[inline(always)]
unsafe fn hsum8(acc: __m256) -> f32 {
    let mut a = [0f32; 8];
    _mm256_storeu_ps(a.as_mut_ptr(), acc);
    let r = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// The 32 nibbles of 16 bytes at `p` as bytes 0..15 (low nibbles, elements 0..16)
/// and 16..31 (high nibbles, elements 16..32), values 0..15.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let q = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// Lane `j` = sum of `x[k] * y[k]` over `k` in `4j..4j+4` for the signed bytes of
/// `x` and `y` (element order): widened to `i16` (ggml's `maddubs` sign trick would
/// overflow on -128 * -128), pair sums, then adjacent pairs, put back in order.
#[inline(always)]
unsafe fn dot4(x: __m256i, y: __m256i) -> __m256i {
    let wide = |v: __m128i| _mm256_cvtepi8_epi16(v);
    let lo = _mm256_madd_epi16(
        wide(_mm256_castsi256_si128(x)),
        wide(_mm256_castsi256_si128(y)),
    );
    let hi = _mm256_madd_epi16(
        wide(_mm256_extracti128_si256::<1>(x)),
        wide(_mm256_extracti128_si256::<1>(y)),
    );
    // [j0 j1 j4 j5 | j2 j3 j6 j7] -> [j0 j1 j2 j3 | j4 j5 j6 j7]
    _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0b11_01_10_00)
}

/// The 32 bytes at `p`.
#[inline(always)]
unsafe fn ld32(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// Q4_0 · Q8_0 over `nb` blocks. Safety: AVX2 + FMA; `nb` blocks in `w` and `a`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn q4_0_q8_0(w: &[u8], a: &[u8], nb: usize) -> f32 {
    debug_assert!(w.len() >= nb * q4_0::BLOCK_BYTES && a.len() >= nb * q8_0::BLOCK_BYTES);
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let x = w.as_ptr().add(i * q4_0::BLOCK_BYTES);
        let y = a.as_ptr().add(i * q8_0::BLOCK_BYTES);
        let d = _mm256_set1_ps(rd_f16(w, i * q4_0::BLOCK_BYTES) * rd_f16(a, i * q8_0::BLOCK_BYTES));
        let qx = _mm256_sub_epi8(nibbles(x.add(2)), _mm256_set1_epi8(8));
        let s = dot4(qx, ld32(y.add(2)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum8(acc)
}

/// Q4_1 · Q8_1 over `nb` blocks. Safety: AVX2 + FMA; `nb` blocks in `w` and `a`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn q4_1_q8_1(w: &[u8], a: &[u8], nb: usize) -> f32 {
    debug_assert!(w.len() >= nb * q4_1::BLOCK_BYTES && a.len() >= nb * q8_1::BLOCK_BYTES);
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let (xo, yo) = (i * q4_1::BLOCK_BYTES, i * q8_1::BLOCK_BYTES);
        let d = _mm256_set1_ps(rd_f16(w, xo) * rd_f16(a, yo));
        let s = dot4(
            nibbles(w.as_ptr().add(xo + 4)),
            ld32(a.as_ptr().add(yo + 4)),
        );
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    // The minimums' terms in block order, as the reference (a separate loop keeps
    // their scalar dependency chain out of the vector one).
    let mut summs = 0f32;
    for i in 0..nb {
        summs += rd_f16(w, i * q4_1::BLOCK_BYTES + 2) * rd_f16(a, i * q8_1::BLOCK_BYTES + 2);
    }
    hsum8(acc) + summs
}

/// Q8_0 · Q8_0 over `nb` blocks. Safety: AVX2 + FMA; `nb` blocks in `w` and `a`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn q8_0_q8_0(w: &[u8], a: &[u8], nb: usize) -> f32 {
    debug_assert!(w.len() >= nb * q8_0::BLOCK_BYTES && a.len() >= nb * q8_0::BLOCK_BYTES);
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let o = i * q8_0::BLOCK_BYTES;
        let d = _mm256_set1_ps(rd_f16(w, o) * rd_f16(a, o));
        let s = dot4(ld32(w.as_ptr().add(o + 2)), ld32(a.as_ptr().add(o + 2)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum8(acc)
}
