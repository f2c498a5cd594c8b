//! Building blocks of the SIMD128 kernels.
//!
//! Byte shifts are written as 16-bit shifts followed by a byte mask: wasm's
//! `i8x16.shr_u` has no x86 counterpart and costs the same shift and mask anyway.

use core::arch::wasm32::*;

/// Unaligned 16-byte load. Safety: `p..p + 16` must be readable.
#[inline(always)]
pub(super) unsafe fn ld(p: *const u8) -> v128 {
    v128_load(p as *const v128)
}

/// Little-endian u16 at `p`. Safety: `p..p + 2` must be readable.
#[inline(always)]
pub(super) unsafe fn ld_u16(p: *const u8) -> u16 {
    u16::from_le(core::ptr::read_unaligned(p as *const u16))
}

#[inline(always)]
pub(super) fn zero() -> v128 {
    i32x4_splat(0)
}

/// `dot(w, a)` per group of four bytes, for weight codes `w` in 0..127 and signed
/// activation bytes `a`: the relaxed dot with relaxed-SIMD (the 7-bit operand is `w`,
/// so the result is exact on every engine), 16-bit dots of even and odd bytes without.
#[inline(always)]
pub(super) fn dot4_u7_i8(w: v128, a: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        // Pairs cannot saturate the 16-bit sums: 2 * 127 * 128 < 2^15.
        i32x4_extadd_pairwise_i16x8(i16x8_relaxed_dot_i8x16_i7x16(a, w))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let m = u16x8_splat(0x00FF);
        let w_even = v128_and(w, m);
        let w_odd = u16x8_shr(w, 8);
        let a_even = i16x8_shr(i16x8_shl(a, 8), 8);
        let a_odd = i16x8_shr(a, 8);
        i32x4_add(
            i32x4_dot_i16x8(w_even, a_even),
            i32x4_dot_i16x8(w_odd, a_odd),
        )
    }
}

/// Pair sums `w[2j] * a[2j] + w[2j+1] * a[2j+1]` as i16 lanes, for weight codes `w` in
/// 0..127 and signed activation bytes `a` (|sum| <= 2 * 127 * 128 < 2^15).
#[inline(always)]
pub(super) fn dot2_u7_i8(w: v128, a: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        i16x8_relaxed_dot_i8x16_i7x16(a, w)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let w_even = v128_and(w, u16x8_splat(0x00FF));
        let w_odd = u16x8_shr(w, 8);
        let a_even = i16x8_shr(i16x8_shl(a, 8), 8);
        let a_odd = i16x8_shr(a, 8);
        i16x8_add(i16x8_mul(w_even, a_even), i16x8_mul(w_odd, a_odd))
    }
}

/// `v`, hidden from the optimizer: loops up to it are not unrolled, and (a volatile
/// access being a barrier to LLVM's instruction selection) loads after it are not
/// scheduled above the work that computed it. (Fully unrolled kernels otherwise get all
/// their loads hoisted to the top by LLVM, and Cranelift, which does not reorder, then
/// spills them.)
#[inline(always)]
pub(super) fn opaque<T: Copy>(v: T) -> T {
    // `black_box` does not hide the value on wasm32 (LLVM still unrolls); a volatile
    // read does.
    // SAFETY: reads a local.
    unsafe { core::ptr::read_volatile(&v) }
}

/// `dot(x, y)` per group of four bytes, both operands signed bytes (any value).
#[inline(always)]
pub(super) fn dot4_i8_i8(x: v128, y: v128) -> v128 {
    let x_even = i16x8_shr(i16x8_shl(x, 8), 8);
    let x_odd = i16x8_shr(x, 8);
    let y_even = i16x8_shr(i16x8_shl(y, 8), 8);
    let y_odd = i16x8_shr(y, 8);
    i32x4_add(
        i32x4_dot_i16x8(x_even, y_even),
        i32x4_dot_i16x8(x_odd, y_odd),
    )
}

/// `acc + dot(x, y)` per group of four bytes, both operands signed bytes (any value).
#[inline(always)]
pub(super) fn dot_i8_i8(acc: v128, x: v128, y: v128) -> v128 {
    let x_even = i16x8_shr(i16x8_shl(x, 8), 8);
    let x_odd = i16x8_shr(x, 8);
    let y_even = i16x8_shr(i16x8_shl(y, 8), 8);
    let y_odd = i16x8_shr(y, 8);
    i32x4_add(
        acc,
        i32x4_add(
            i32x4_dot_i16x8(x_even, y_even),
            i32x4_dot_i16x8(x_odd, y_odd),
        ),
    )
}

/// The sum of the four i32 lanes (wrapping, like the scalar kernels' sums).
#[inline(always)]
pub(super) fn hsum(v: v128) -> i32 {
    let s = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let s = i32x4_add(s, i32x4_shuffle::<1, 0, 3, 2>(s, s));
    i32x4_extract_lane::<0>(s)
}

/// `[hsum(a), hsum(b), hsum(c), hsum(d)]`.
#[inline(always)]
pub(super) fn hsum4(a: v128, b: v128, c: v128, d: v128) -> v128 {
    let ab = i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(a, b),
        i32x4_shuffle::<2, 3, 6, 7>(a, b),
    );
    let cd = i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(c, d),
        i32x4_shuffle::<2, 3, 6, 7>(c, d),
    );
    i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(ab, cd),
        i32x4_shuffle::<1, 3, 5, 7>(ab, cd),
    )
}

/// Widens four IEEE binary16 values (the low 16 bits of each u32 lane, upper bits
/// zero) to f32 exactly, as the scalar `f16_to_f32` (same NaN payloads).
#[inline(always)]
pub(super) fn f16x4_to_f32x4(h: v128) -> v128 {
    let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
    let em = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
    // Normal: the exponent rebiased by 112 (an integer addition). Zero and subnormal
    // (`m * 2^-24`): (1 + m / 2^10) 2^-14 - 2^-14, exact, and without the f32 subnormal
    // arithmetic of `em * 2^112` (a microcode assist on x86).
    let normal = i32x4_add(em, i32x4_splat(112 << 23));
    let magic = i32x4_splat(113 << 23);
    let tiny = f32x4_sub(i32x4_add(em, magic), magic);
    let scaled = v128_bitselect(tiny, normal, i32x4_lt(em, i32x4_splat(1 << 23)));
    // Exponent all ones: inf/NaN keep their mantissa. `em` < 2^28: signed compare.
    let special = i32x4_gt(em, i32x4_splat(0x0f7f_ffff));
    let bits = v128_bitselect(v128_or(em, u32x4_splat(0x7f80_0000)), scaled, special);
    v128_or(bits, sign)
}

/// Eight f16 values (u16 lanes) widened to two f32x4: lanes 0..4 and 4..8 (exact).
#[inline(always)]
pub(super) fn f16x8_to_f32x4x2(h: v128) -> (v128, v128) {
    (
        f16x4_to_f32x4(u32x4_extend_low_u16x8(h)),
        f16x4_to_f32x4(u32x4_extend_high_u16x8(h)),
    )
}

/// Sign, exponent and mantissa of an f16 sign-extended to 32 bits and shifted left by
/// 13 keep their places once bits 28..31 (copies of the sign) are cleared, except bit
/// 31 itself.
const F16_SHIFTED_MASK: u32 = 0x8FFF_E000;
/// 2^112: rebiases an f16 exponent shifted into f32 position.
const F16_REBIAS: f32 = f32::from_bits(0x7780_0000);

/// The f16 values in the low halves of the u32 lanes, widened to f32. Exact for finite
/// values; infinities and NaNs come out finite: check [`f16x8_special`] first.
/// Subnormals are multiplied as f32 subnormals, which x86 does through a microcode
/// assist (~100 cycles): fine for the block scales of the 32-element formats, where
/// they are rare (testing every lane for them cost 6% of the decode kernels).
#[inline(always)]
pub(super) fn f16_even_to_f32(v: v128) -> v128 {
    let bits = v128_and(
        i32x4_shr(i32x4_shl(v, 16), 3),
        u32x4_splat(F16_SHIFTED_MASK),
    );
    f32x4_mul(bits, f32x4_splat(F16_REBIAS))
}

/// The f16 values in the high halves of the u32 lanes, widened to f32 (see
/// [`f16_even_to_f32`]).
#[inline(always)]
pub(super) fn f16_odd_to_f32(v: v128) -> v128 {
    let bits = v128_and(i32x4_shr(v, 3), u32x4_splat(F16_SHIFTED_MASK));
    f32x4_mul(bits, f32x4_splat(F16_REBIAS))
}

/// Lanes (u16) of `v` holding an f16 infinity or NaN: all ones, else zero.
#[inline(always)]
pub(super) fn f16x8_special(v: v128) -> v128 {
    let e = u16x8_splat(0x7c00);
    i16x8_eq(v128_and(v, e), e)
}

/// `f16(low half) * f16(high half)` of each u32 lane of `v`, in f32, exactly as the
/// scalar `f16_to_f32(lo) * f16_to_f32(hi)`.
#[inline(always)]
pub(super) fn f16_pair_products(v: v128) -> v128 {
    if v128_any_true(f16x8_special(v)) {
        return f16_pair_products_special(v);
    }
    f32x4_mul(f16_even_to_f32(v), f16_odd_to_f32(v))
}

#[cold]
#[inline(never)]
fn f16_pair_products_special(v: v128) -> v128 {
    f32x4_mul(
        f16x4_to_f32x4(v128_and(v, u32x4_splat(0xFFFF))),
        f16x4_to_f32x4(u32x4_shr(v, 16)),
    )
}

/// Pairs of u16 from `x + k * XS` and `y + k * YS` (`k` in 0..4) as the halves of u32
/// lanes: lane `k` is `x_k | y_k << 16`. Safety: the 16 bytes must be readable.
#[inline(always)]
pub(super) unsafe fn gather_pairs_u16<const XS: usize, const YS: usize>(
    x: *const u8,
    y: *const u8,
) -> v128 {
    let v = u16x8_replace_lane::<0>(zero(), ld_u16(x));
    let v = u16x8_replace_lane::<1>(v, ld_u16(y));
    let v = u16x8_replace_lane::<2>(v, ld_u16(x.add(XS)));
    let v = u16x8_replace_lane::<3>(v, ld_u16(y.add(YS)));
    let v = u16x8_replace_lane::<4>(v, ld_u16(x.add(2 * XS)));
    let v = u16x8_replace_lane::<5>(v, ld_u16(y.add(2 * YS)));
    let v = u16x8_replace_lane::<6>(v, ld_u16(x.add(3 * XS)));
    u16x8_replace_lane::<7>(v, ld_u16(y.add(3 * YS)))
}

/// The four f32 lanes of `v`.
#[inline(always)]
pub(super) fn f32_lanes(v: v128) -> [f32; 4] {
    // SAFETY: a plain bit reinterpretation of 16 bytes (every bit pattern is an f32).
    unsafe { core::mem::transmute(v) }
}

/// The u32 at `p + k * stride` in lane `k` (0..4). Safety: the 16 bytes must be
/// readable.
#[inline(always)]
pub(super) unsafe fn gather_u32(p: *const u8, stride: usize) -> v128 {
    let r = |k: usize| u32::from_le(core::ptr::read_unaligned(p.add(k * stride) as *const u32));
    u32x4(r(0), r(1), r(2), r(3))
}

/// The four f32 lanes added to `sum` one after the other (lane 0 first), as a scalar
/// loop over the blocks would.
#[inline(always)]
pub(super) fn add_lanes_in_order(sum: f32, t: v128) -> f32 {
    let s = sum + f32x4_extract_lane::<0>(t);
    let s = s + f32x4_extract_lane::<1>(t);
    let s = s + f32x4_extract_lane::<2>(t);
    s + f32x4_extract_lane::<3>(t)
}

/// Bytes `0x10` where bit `j` of the 32-bit `qh` (in every u32 lane) is set, for bytes
/// `j` in `16*half..16*half + 16` (Q5_0/Q5_1 fifth bits), else 0.
#[inline(always)]
pub(super) fn fifth_bits(qh: v128, half: usize) -> v128 {
    // Byte j of the result looks at byte 2 * half + j / 8 of qh and bit j % 8 of it.
    let idx = if half == 0 {
        u64x2(0, 0x0101_0101_0101_0101)
    } else {
        u64x2(0x0202_0202_0202_0202, 0x0303_0303_0303_0303)
    };
    let bytes = i8x16_swizzle(qh, idx);
    // Hidden from LLVM, which would otherwise turn `x & bit == bit` into `x & bit != 0`
    // (one bit per lane), which Cranelift compiles to a compare and a negation.
    let bit = opaque(u64x2_splat(0x8040_2010_0804_0201));
    let set = i8x16_eq(v128_and(bytes, bit), bit);
    v128_and(set, u8x16_splat(0x10))
}
