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

/// Lane `j` = sum of `u[k] * s[k]` over `k` in `4j..4j+4`, for unsigned bytes `u` in
/// 0..15 and signed bytes `s` (exact: a pair sum is at most 2 * 15 * 128 in `i16`).
#[inline(always)]
unsafe fn dot4_u4_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// Lane `j` = sum of the signed bytes `s[4j..4j+4]`.
#[inline(always)]
unsafe fn sum4_i8(s: __m256i) -> __m256i {
    dot4_u4_i8(_mm256_set1_epi8(1), s)
}

/// Lane `j` = sum of `x[k] * y[k]` over `k` in `4j..4j+4` for signed bytes: widened to
/// `i16` (ggml's sign trick would overflow on -128 * -128), pair sums, then adjacent
/// pairs, put back in element order.
#[inline(always)]
unsafe fn dot4_i8_i8(x: *const u8, y: *const u8) -> __m256i {
    let w = |p: *const u8| _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i));
    let lo = _mm256_madd_epi16(w(x), w(y));
    let hi = _mm256_madd_epi16(w(x.add(16)), w(y.add(16)));
    // [j0 j1 j4 j5 | j2 j3 j6 j7] -> [j0 j1 j2 j3 | j4 j5 j6 j7]
    _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0b11_01_10_00)
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
        let qy = _mm256_loadu_si256(y.add(2) as *const __m256i);
        // (q - 8) * y summed = q * y summed - 8 * (y summed), exactly.
        let s = _mm256_sub_epi32(
            dot4_u4_i8(nibbles(x.add(2)), qy),
            _mm256_slli_epi32(sum4_i8(qy), 3),
        );
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum8(acc)
}

/// Q4_1 · Q8_1 over `nb` blocks. Safety: AVX2 + FMA; `nb` blocks in `w` and `a`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn q4_1_q8_1(w: &[u8], a: &[u8], nb: usize) -> f32 {
    debug_assert!(w.len() >= nb * q4_1::BLOCK_BYTES && a.len() >= nb * q8_1::BLOCK_BYTES);
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for i in 0..nb {
        let (xo, yo) = (i * q4_1::BLOCK_BYTES, i * q8_1::BLOCK_BYTES);
        summs += rd_f16(w, xo + 2) * rd_f16(a, yo + 2);
        let d = _mm256_set1_ps(rd_f16(w, xo) * rd_f16(a, yo));
        let qy = _mm256_loadu_si256(a.as_ptr().add(yo + 4) as *const __m256i);
        let s = dot4_u4_i8(nibbles(w.as_ptr().add(xo + 4)), qy);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
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
        let s = dot4_i8_i8(w.as_ptr().add(o + 2), a.as_ptr().add(o + 2));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum8(acc)
}
