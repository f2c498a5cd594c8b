//! The 32-element block formats: Q4_0, Q5_0, Q8_0 against Q8_0 activations, Q4_1,
//! Q5_1, Q8_1 against Q8_1.
//!
//! Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 follow the reference's order, which is ggml's x86
//! one (`x86_order.rs`): eight lanes, lane `j` of a block being the integer sum of
//! elements `4j..4j+4`, each lane accumulated with a fused multiply-add by the block's
//! `d = dx * dy`, the lanes reduced pairwise at the end, and (Q4_1, Q5_1) the
//! minimums' terms summed in block order and added last. Two `f32x4` accumulators are
//! those eight lanes; the integer lane sums are what the relaxed dot (and the 16-bit
//! dots of even and odd bytes) produce anyway. The fused multiply-add is
//! `f32x4.relaxed_madd` when the engine fuses it (checked once), else an exact
//! emulation in `f64` (see [`fma_exact`]). Q8_1 keeps a sequential sum of per-block
//! terms, like its reference. All are bit-identical to the reference kernels.

// Kernels index several arrays (rows, blocks) with one counter.
#![allow(clippy::needless_range_loop)]

use core::arch::wasm32::*;

use super::super::{q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, rd_f16};
use super::prim::*;

// ---------------------------------------------------------------- fused multiply-add

/// `acc + d * s` lane-wise, rounded once, for integer lanes `s` (|s| <= 2^17) and `d`
/// (all lanes equal); `FUSED` says the engine's `f32x4.relaxed_madd` is a fused one.
#[inline(always)]
fn fma<const FUSED: bool>(d: v128, s: v128, acc: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    if FUSED {
        return f32x4_relaxed_madd(d, f32x4_convert_i32x4(s), acc);
    }
    fma_exact(d, s, acc)
}

/// Exact `fma(d, s, acc)` per lane without a fused instruction: `d * s` is exact in
/// `f64` (24 + 17 bits), so is the promotion of `acc`, and rounding their `f64` sum to
/// `f32` gives the correctly rounded result unless that sum is exactly halfway between
/// two `f32` (double rounding); those lanes, which need the discarded bits, take the
/// slow path. (With f16-derived `d` no result is an `f32` subnormal, where the halfway
/// test would not apply: every value is a multiple of 2^-71.)
#[inline(always)]
fn fma_exact(d: v128, s: v128, acc: v128) -> v128 {
    let d64 = f64x2_promote_low_f32x4(d);
    let t_lo = f64x2_add(
        f64x2_mul(d64, f64x2_convert_low_i32x4(s)),
        f64x2_promote_low_f32x4(acc),
    );
    let t_hi = f64x2_add(
        f64x2_mul(
            d64,
            f64x2_convert_low_i32x4(i32x4_shuffle::<2, 3, 2, 3>(s, s)),
        ),
        f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(acc, acc)),
    );
    let low = u64x2_splat(0x1FFF_FFFF);
    let half = u64x2_splat(0x1000_0000);
    let tie = v128_or(
        i64x2_eq(v128_and(t_lo, low), half),
        i64x2_eq(v128_and(t_hi, low), half),
    );
    if v128_any_true(tie) {
        return fma_slow(d, s, acc);
    }
    i32x4_shuffle::<0, 1, 4, 5>(f32x4_demote_f64x2_zero(t_lo), f32x4_demote_f64x2_zero(t_hi))
}

#[cold]
#[inline(never)]
fn fma_slow(d: v128, s: v128, acc: v128) -> v128 {
    let d = f32x4_extract_lane::<0>(d);
    // SAFETY: a plain bit reinterpretation of 16 bytes.
    let s: [i32; 4] = unsafe { core::mem::transmute(s) };
    let a = f32_lanes(acc);
    f32x4(
        d.mul_add(s[0] as f32, a[0]),
        d.mul_add(s[1] as f32, a[1]),
        d.mul_add(s[2] as f32, a[2]),
        d.mul_add(s[3] as f32, a[3]),
    )
}

/// Whether `f32x4.relaxed_madd` rounds once on this engine (probed once). Also used by
/// the attention kernels (`ops/attention_simd128.rs`).
#[cfg(target_feature = "relaxed-simd")]
pub(crate) fn madd_is_fused() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static FUSED: AtomicU8 = AtomicU8::new(0);
    match FUSED.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // (1 + 2^-12)^2 - 1 = 2^-11 + 2^-24 exactly; unfused, the square rounds the
            // 2^-24 away.
            let a = f32x4_splat(core::hint::black_box(1.0 + 1.0 / 4096.0));
            let r = f32x4_relaxed_madd(a, a, f32x4_splat(core::hint::black_box(-1.0)));
            let fused = f32x4_extract_lane::<0>(r) == 1.0 / 2048.0 + 1.0 / 16_777_216.0;
            FUSED.store(if fused { 1 } else { 2 }, Ordering::Relaxed);
            fused
        }
    }
}

// ---------------------------------------------------------------- helpers

/// ggml's `hsum_float_8` of the lanes `lo` (0..4) and `hi` (4..8).
#[inline(always)]
fn hsum8(lo: v128, hi: v128) -> f32 {
    let r = f32x4_add(lo, hi);
    let s = f32x4_add(r, i32x4_shuffle::<2, 3, 0, 1>(r, r));
    f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<1>(s)
}

/// `v[k]` in all four lanes, as a splatting load: Cranelift compiles `f32x4.splat` of
/// a loaded value to a scalar load, a move and a broadcast, `v128.load32_splat` to
/// one broadcast from memory.
#[inline(always)]
fn splat_at(v: &[f32], k: usize) -> v128 {
    assert!(k < v.len());
    // SAFETY: `k` is in bounds (checked above).
    unsafe { v128_load32_splat(v.as_ptr().add(k) as *const u32) }
}

/// Low and high nibbles of the 16 bytes at `p`. Safety: `p..p + 16` readable.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (v128, v128) {
    let q = ld(p);
    let m = u8x16_splat(0x0F);
    (v128_and(q, m), v128_and(u16x8_shr(q, 4), m))
}

/// Lane sums of `(c - OFF) * a` over four-byte groups, for codes `c` in 0..32.
#[inline(always)]
fn dot_offset<const OFF: i8>(c: v128, a: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        // The codes are unsigned: the relaxed dot, minus `OFF * sum(a)`, in 16 bits
        // (|2 * 31 * 128 + 16 * 256| < 2^15), then widened.
        let t = i16x8_relaxed_dot_i8x16_i7x16(a, c);
        let sum_a = i16x8_extadd_pairwise_i8x16(a);
        i32x4_extadd_pairwise_i16x8(i16x8_sub(t, i16x8_shl(sum_a, OFF.trailing_zeros())))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        // Signed codes cost the same here, and need no activation sums.
        dot4_i8_i8(i8x16_sub(c, i8x16_splat(OFF)), a)
    }
}

/// The 32 five-bit codes of a Q5 block: low nibbles at `qs`, fifth bits in the
/// little-endian u32 at `qh`. Safety: both readable.
#[inline(always)]
unsafe fn codes5(qs: *const u8, qh: *const u8) -> (v128, v128) {
    let (lo, hi) = nibbles(qs);
    let h = v128_load32_splat(qh as *const u32);
    (v128_or(lo, fifth_bits(h, 0)), v128_or(hi, fifth_bits(h, 1)))
}

// ---------------------------------------------------------------- x86-order kernels

/// What differs between the x86-order formats.
trait Format {
    /// Bytes of a weight block and of an activation block.
    const WB: usize;
    const AB: usize;
    /// Offset of the 32 codes in the activation block.
    const A_QS: usize;
    /// Whether `mx * sy` (the f16 at offset 2 of both blocks) is summed separately.
    const MINS: bool;
    /// A weight block's codes, unpacked once for every activation row they meet.
    type Codes: Copy;
    /// Unpacks the codes of the weight block at `x`.
    ///
    /// Safety: `x` points to a whole weight block.
    unsafe fn codes(x: *const u8) -> Self::Codes;
    /// The eight integer lane sums (elements `4j..4j+4`) of a block's codes against
    /// the activation codes `a0` (elements 0..16) and `a1` (16..32).
    fn dot(c: Self::Codes, a0: v128, a1: v128) -> (v128, v128);
    /// [`Format::dot`] of the block at `x`.
    ///
    /// Safety: `x` points to a whole weight block.
    #[inline(always)]
    unsafe fn sums(x: *const u8, a0: v128, a1: v128) -> (v128, v128) {
        Self::dot(Self::codes(x), a0, a1)
    }
}

struct Q4_0;
struct Q4_1;
struct Q5_0;
struct Q5_1;
struct Q8_0;

impl Format for Q4_0 {
    const WB: usize = q4_0::BLOCK_BYTES;
    const AB: usize = q8_0::BLOCK_BYTES;
    const A_QS: usize = 2;
    const MINS: bool = false;
    type Codes = (v128, v128);
    #[inline(always)]
    unsafe fn codes(x: *const u8) -> Self::Codes {
        nibbles(x.add(2))
    }
    #[inline(always)]
    fn dot((lo, hi): Self::Codes, a0: v128, a1: v128) -> (v128, v128) {
        (dot_offset::<8>(lo, a0), dot_offset::<8>(hi, a1))
    }
}

impl Format for Q4_1 {
    const WB: usize = q4_1::BLOCK_BYTES;
    const AB: usize = q8_1::BLOCK_BYTES;
    const A_QS: usize = 4;
    const MINS: bool = true;
    type Codes = (v128, v128);
    #[inline(always)]
    unsafe fn codes(x: *const u8) -> Self::Codes {
        nibbles(x.add(4))
    }
    #[inline(always)]
    fn dot((lo, hi): Self::Codes, a0: v128, a1: v128) -> (v128, v128) {
        (dot4_u7_i8(lo, a0), dot4_u7_i8(hi, a1))
    }
}

impl Format for Q5_0 {
    const WB: usize = q5_0::BLOCK_BYTES;
    const AB: usize = q8_0::BLOCK_BYTES;
    const A_QS: usize = 2;
    const MINS: bool = false;
    type Codes = (v128, v128);
    #[inline(always)]
    unsafe fn codes(x: *const u8) -> Self::Codes {
        codes5(x.add(6), x.add(2))
    }
    #[inline(always)]
    fn dot((lo, hi): Self::Codes, a0: v128, a1: v128) -> (v128, v128) {
        (dot_offset::<16>(lo, a0), dot_offset::<16>(hi, a1))
    }
}

impl Format for Q5_1 {
    const WB: usize = q5_1::BLOCK_BYTES;
    const AB: usize = q8_1::BLOCK_BYTES;
    const A_QS: usize = 4;
    const MINS: bool = true;
    type Codes = (v128, v128);
    #[inline(always)]
    unsafe fn codes(x: *const u8) -> Self::Codes {
        codes5(x.add(8), x.add(4))
    }
    #[inline(always)]
    fn dot((lo, hi): Self::Codes, a0: v128, a1: v128) -> (v128, v128) {
        (dot4_u7_i8(lo, a0), dot4_u7_i8(hi, a1))
    }
}

impl Format for Q8_0 {
    const WB: usize = q8_0::BLOCK_BYTES;
    const AB: usize = q8_0::BLOCK_BYTES;
    const A_QS: usize = 2;
    const MINS: bool = false;
    /// The even and odd bytes of each half, sign-extended to i16 lanes.
    type Codes = [v128; 4];
    #[inline(always)]
    unsafe fn codes(x: *const u8) -> Self::Codes {
        let (c0, c1) = (ld(x.add(2)), ld(x.add(18)));
        [
            i16x8_shr(i16x8_shl(c0, 8), 8),
            i16x8_shr(c0, 8),
            i16x8_shr(i16x8_shl(c1, 8), 8),
            i16x8_shr(c1, 8),
        ]
    }
    #[inline(always)]
    fn dot(c: Self::Codes, a0: v128, a1: v128) -> (v128, v128) {
        let half = |even: v128, odd: v128, a: v128| {
            i32x4_add(
                i32x4_dot_i16x8(even, i16x8_shr(i16x8_shl(a, 8), 8)),
                i32x4_dot_i16x8(odd, i16x8_shr(a, 8)),
            )
        };
        (half(c[0], c[1], a0), half(c[2], c[3], a1))
    }
}

/// The f16 at `p + k * stride` (`k` in 0..4) widened to f32 lanes, and the lanes (u16 mask)
/// holding an infinity or a NaN. Safety: the 4 fields must be readable.
#[inline(always)]
unsafe fn f16x4(p: *const u8, stride: usize) -> (v128, v128) {
    let v = u16x8_replace_lane::<0>(zero(), ld_u16(p));
    let v = u16x8_replace_lane::<1>(v, ld_u16(p.add(stride)));
    let v = u16x8_replace_lane::<2>(v, ld_u16(p.add(2 * stride)));
    let v = u16x8_replace_lane::<3>(v, ld_u16(p.add(3 * stride)));
    (f16_even_to_f32(u32x4_extend_low_u16x8(v)), f16x8_special(v))
}

/// The scales of an activation row's blocks as `f32`, converted once for all the
/// weight rows the row meets (not once per pair of rows): `d[k]` and (`MINS` formats,
/// Q8_1) `s[k]`.
struct ActScales {
    d: Scales,
    s: Scales,
}

/// `f32` values, inline up to [`Scales::INLINE`] (a one-row dot allocates nothing).
#[allow(clippy::large_enum_variant)] // inline on purpose: it lives on the stack
enum Scales {
    Inline([f32; Scales::INLINE], usize),
    Heap(Vec<f32>),
}

impl Scales {
    const INLINE: usize = 64;

    /// `n` zeros.
    fn zeros(n: usize) -> Self {
        if n <= Self::INLINE {
            Self::Inline([0.0; Self::INLINE], n)
        } else {
            Self::Heap(vec![0.0; n])
        }
    }

    fn as_mut(&mut self) -> &mut [f32] {
        match self {
            Self::Inline(v, n) => &mut v[..*n],
            Self::Heap(v) => v,
        }
    }
}

impl core::ops::Deref for Scales {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Self::Inline(v, n) => &v[..*n],
            Self::Heap(v) => v,
        }
    }
}

impl ActScales {
    /// The scales of the first `nb` blocks of the activation row `a` (whole blocks).
    fn new<F: Format>(a: &[u8], nb: usize) -> Self {
        let mut d = Scales::zeros(nb);
        let mut sy = Scales::zeros(if F::MINS { nb } else { 0 });
        f16_scales(a, F::AB, nb, d.as_mut(), sy.as_mut());
        Self { d, s: sy }
    }
}

/// The f16 at offset 0 of each of the `d.len()` blocks `stride` bytes apart in
/// `blocks`, widened exactly into `d`, and when `m` is not empty the f16 at offset 2
/// into `m`: four blocks at a time, the scalar conversion for blocks with an infinite
/// or NaN scale and for the last `len % 4`.
fn f16_scales(blocks: &[u8], stride: usize, nb: usize, d: &mut [f32], m: &mut [f32]) {
    let pair = !m.is_empty();
    assert!(d.len() == nb && (!pair || m.len() == nb));
    assert!(nb == 0 || blocks.len() >= (nb - 1) * stride + 4);
    let f = |b: &[u8]| super::super::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    let mut k = 0;
    while k + 4 <= nb {
        // SAFETY: the first four bytes of blocks k..k+4 are inside `blocks` (checked
        // above).
        let v = unsafe { gather_u32(blocks.as_ptr().add(k * stride), stride) };
        let special = if pair {
            f16x8_special(v)
        } else {
            f16x8_special(v128_and(v, u32x4_splat(0xFFFF)))
        };
        if v128_any_true(special) {
            for j in k..k + 4 {
                d[j] = f(&blocks[j * stride..]);
                if pair {
                    m[j] = f(&blocks[j * stride + 2..]);
                }
            }
        } else {
            // SAFETY: k + 4 <= nb, the length of `d` (and of `m`).
            unsafe {
                v128_store(d.as_mut_ptr().add(k) as *mut v128, f16_even_to_f32(v));
                if pair {
                    v128_store(m.as_mut_ptr().add(k) as *mut v128, f16_odd_to_f32(v));
                }
            }
        }
        k += 4;
    }
    for j in k..nb {
        d[j] = f(&blocks[j * stride..]);
        if pair {
            m[j] = f(&blocks[j * stride + 2..]);
        }
    }
}

/// The scales of four consecutive blocks of `R` weight rows (`x[r]`) combined with the
/// activations' (`dy`, `sy`: four values from block `k`): `d[r] = dx * dy` and
/// (`MINS`) `ms[r] = mx * sy`, lane `k` for block `k`, as the reference's `f32`
/// products.
///
/// Safety: the four blocks of every row must be readable, `dy` (and for `MINS`, `sy`)
/// hold four values.
#[inline(always)]
unsafe fn scales4<F: Format, const R: usize>(
    x: &[*const u8; R],
    dy: *const f32,
    sy: *const f32,
) -> ([v128; R], [v128; R]) {
    let mut d = [zero(); R];
    let mut ms = [zero(); R];
    let mut special = zero();
    let vdy = v128_load(dy as *const v128);
    if F::MINS {
        let vsy = v128_load(sy as *const v128);
        for r in 0..R {
            let vx = gather_u32(x[r], F::WB);
            special = v128_or(special, f16x8_special(vx));
            d[r] = f32x4_mul(f16_even_to_f32(vx), vdy);
            ms[r] = f32x4_mul(f16_odd_to_f32(vx), vsy);
        }
    } else {
        for r in 0..R {
            let (dx, spx) = f16x4(x[r], F::WB);
            special = v128_or(special, spx);
            d[r] = f32x4_mul(dx, vdy);
        }
    }
    if v128_any_true(special) {
        return scales4_special::<F, R>(x, dy, sy);
    }
    (d, ms)
}

/// [`scales4`] through the scalar (exact for every f16) conversion.
#[cold]
#[inline(never)]
unsafe fn scales4_special<F: Format, const R: usize>(
    x: &[*const u8; R],
    dy: *const f32,
    sy: *const f32,
) -> ([v128; R], [v128; R]) {
    let f = |p: *const u8| super::super::f16_to_f32(ld_u16(p));
    let lanes = |g: &dyn Fn(usize) -> f32| f32x4(g(0), g(1), g(2), g(3));
    let mut d = [zero(); R];
    let mut ms = [zero(); R];
    for r in 0..R {
        d[r] = lanes(&|k| f(x[r].add(k * F::WB)) * *dy.add(k));
        if F::MINS {
            ms[r] = lanes(&|k| f(x[r].add(k * F::WB + 2)) * *sy.add(k));
        }
    }
    (d, ms)
}

/// The `d = dx * dy` of blocks `c0..c0+cn` (`cn <= CHUNK`) of `R` rows into `dbuf`, and
/// (`MINS`) the `mx * sy` terms of row `r` added to lane `r` of `summs` in block order
/// (`R <= 4`).
///
/// Safety: those blocks of every row (`x0`) are readable; `ay` has them.
#[inline(never)]
unsafe fn scales_pass<F: Format, const R: usize>(
    x0: &[*const u8; R],
    ay: &ActScales,
    c0: usize,
    cn: usize,
    dbuf: &mut [[f32; CHUNK]; R],
    summs: &mut v128,
) {
    assert!(R <= 4 && ay.d.len() >= c0 + cn && (!F::MINS || ay.s.len() >= c0 + cn));
    let (dy, sy) = (ay.d.as_ptr().add(c0), ay.s.as_ptr().wrapping_add(c0));
    let mut k = 0;
    while k + 4 <= cn {
        let x: [*const u8; R] = core::array::from_fn(|r| x0[r].add((c0 + k) * F::WB));
        let (d, ms) = scales4::<F, R>(&x, dy.add(k), sy.wrapping_add(k));
        for r in 0..R {
            v128_store(dbuf[r][k..k + 4].as_mut_ptr() as *mut v128, d[r]);
        }
        if F::MINS {
            *summs = add_blocks_in_order(*summs, &ms, 0);
        }
        k += 4;
    }
    if k < cn && cn >= 4 {
        // The last `cn - k` blocks: the last four blocks again (their `d` come out the
        // same), only the new ones' minimum terms added.
        let k4 = cn - 4;
        let x: [*const u8; R] = core::array::from_fn(|r| x0[r].add((c0 + k4) * F::WB));
        let (d, ms) = scales4::<F, R>(&x, dy.add(k4), sy.wrapping_add(k4));
        for r in 0..R {
            v128_store(dbuf[r][k4..k4 + 4].as_mut_ptr() as *mut v128, d[r]);
        }
        if F::MINS {
            *summs = add_blocks_in_order(*summs, &ms, 4 - (cn - k));
        }
        return;
    }
    let f = |p: *const u8| super::super::f16_to_f32(ld_u16(p));
    while k < cn {
        let mut ms = [0f32; 4];
        for r in 0..R {
            let x = x0[r].add((c0 + k) * F::WB);
            dbuf[r][k] = f(x) * *dy.add(k);
            if F::MINS {
                ms[r] = f(x.add(2)) * *sy.add(k);
            }
        }
        if F::MINS {
            *summs = f32x4_add(*summs, f32x4(ms[0], ms[1], ms[2], ms[3]));
        }
        k += 1;
    }
}

/// `acc` plus the minimum terms of blocks `from..4` of [`scales4`]'s `ms` (rows by
/// blocks), block after block: lane `r` adds row `r`'s terms in block order, as the
/// reference's scalar sum; a 4 x 4 transpose makes it one vector addition per block.
#[inline(always)]
fn add_blocks_in_order<const R: usize>(acc: v128, ms: &[v128; R], from: usize) -> v128 {
    let row = |r: usize| if r < R { ms[r] } else { zero() };
    let (m0, m1, m2, m3) = (row(0), row(1), row(2), row(3));
    let t0 = i32x4_shuffle::<0, 4, 1, 5>(m0, m1);
    let t1 = i32x4_shuffle::<2, 6, 3, 7>(m0, m1);
    let t2 = i32x4_shuffle::<0, 4, 1, 5>(m2, m3);
    let t3 = i32x4_shuffle::<2, 6, 3, 7>(m2, m3);
    let blocks = [
        i32x4_shuffle::<0, 1, 4, 5>(t0, t2),
        i32x4_shuffle::<2, 3, 6, 7>(t0, t2),
        i32x4_shuffle::<0, 1, 4, 5>(t1, t3),
        i32x4_shuffle::<2, 3, 6, 7>(t1, t3),
    ];
    let mut acc = acc;
    for b in &blocks[from..] {
        acc = f32x4_add(acc, *b);
    }
    acc
}

/// The fused multiply-adds of blocks `c0..c0+cn` of `R` rows into their eight lanes
/// (`lo`, `hi`), with the blocks' `d` from `dbuf`.
///
/// Safety: those blocks of every row (`x0`) and of the activations (`ap`) are readable.
#[inline(never)]
unsafe fn dot_pass<F: Format, const FUSED: bool, const R: usize>(
    x0: &[*const u8; R],
    ap: *const u8,
    c0: usize,
    cn: usize,
    dbuf: &[[f32; CHUNK]; R],
    lo: &mut [v128; R],
    hi: &mut [v128; R],
) {
    let mut l = *lo;
    let mut h = *hi;
    for k in 0..cn {
        let y = ap.add((c0 + k) * F::AB + F::A_QS);
        let (a0, a1) = (ld(y), ld(y.add(16)));
        for r in 0..R {
            let (s0, s1) = F::sums(x0[r].add((c0 + k) * F::WB), a0, a1);
            let d = splat_at(&dbuf[r], k);
            l[r] = fma::<FUSED>(d, s0, l[r]);
            h[r] = fma::<FUSED>(d, s1, h[r]);
        }
    }
    *lo = l;
    *hi = h;
}

/// Blocks per chunk of [`kernel`].
const CHUNK: usize = 64;

/// `out[r] = dot(row r, activations)` for `R` weight rows `row_bytes` apart in `w`,
/// `nb` blocks each, in the reference's order.
#[inline(always)]
fn kernel<F: Format, const FUSED: bool, const R: usize>(
    w: &[u8],
    row_bytes: usize,
    a: &[u8],
    ay: &ActScales,
    nb: usize,
    out: &mut [f32],
    dbuf: &mut [[f32; CHUNK]; R],
) {
    // Every pointer below stays inside the first `nb` blocks of each row and of `a`.
    assert!(row_bytes >= nb * F::WB && a.len() >= nb * F::AB && out.len() >= R);
    assert!(w.len() >= (R - 1) * row_bytes + nb * F::WB);
    let x0: [*const u8; R] = core::array::from_fn(|r| w[r * row_bytes..].as_ptr());
    let ap = a.as_ptr();
    let mut lo = [zero(); R];
    let mut hi = [zero(); R];
    // Lane `r`: row `r`'s minimum terms.
    let mut summs = f32x4_splat(0.0);
    // The blocks' `d` of a chunk are computed first (four blocks at a time), then the
    // dot products; separate functions keep the accumulators' live ranges short
    // (Cranelift's register allocator spills long ones inside loops).
    let mut c0 = 0;
    while c0 < nb {
        let cn = CHUNK.min(nb - c0);
        // SAFETY: the blocks c0..c0+cn of every row and of `a` are in bounds (checked
        // above).
        unsafe {
            scales_pass::<F, R>(&x0, ay, c0, cn, dbuf, &mut summs);
            dot_pass::<F, FUSED, R>(&x0, ap, c0, cn, dbuf, &mut lo, &mut hi);
        }
        c0 += cn;
    }
    let summs_lanes = f32_lanes(summs);
    for r in 0..R {
        out[r] = if F::MINS {
            hsum8(lo[r], hi[r]) + summs_lanes[r]
        } else {
            hsum8(lo[r], hi[r])
        };
    }
}

/// [`kernel`] with the fused multiply-add if the engine has one.
#[inline(always)]
fn run<F: Format, const R: usize>(
    w: &[u8],
    row_bytes: usize,
    a: &[u8],
    ay: &ActScales,
    nb: usize,
    out: &mut [f32],
    dbuf: &mut [[f32; CHUNK]; R],
) {
    #[cfg(target_feature = "relaxed-simd")]
    if madd_is_fused() {
        return kernel::<F, true, R>(w, row_bytes, a, ay, nb, out, dbuf);
    }
    kernel::<F, false, R>(w, row_bytes, a, ay, nb, out, dbuf)
}

/// The block scales of a chunk of weight rows as `f32`, converted once for every
/// activation row that meets the chunk: prefill reuses each chunk for all its tokens.
/// `d` row by row (row `r`'s at `r * nb..`); `m` (`MINS` formats) by pairs of rows
/// (rows `2p`, `2p + 1` at `2p * nb..`, block `k` of the pair's row `j` at `2k + j`,
/// which is [`scales_pass_tiles`]'s order), an odd last row alone at its place.
struct WeightScales {
    nb: usize,
    d: Vec<f32>,
    m: Vec<f32>,
}

impl WeightScales {
    /// The scales of the first `nb` blocks of the `rows` rows `rb` bytes apart in `w`.
    fn new<F: Format>(w: &[u8], rb: usize, rows: usize, nb: usize) -> Self {
        let mut d = vec![0f32; rows * nb];
        let mut m = vec![0f32; if F::MINS { rows * nb } else { 0 }];
        if rb == nb * F::WB {
            // Rows back to back: one pass over all their blocks (no tail per row).
            f16_scales(w, F::WB, rows * nb, &mut d, &mut m);
        } else {
            for r in 0..rows {
                let m = if F::MINS {
                    &mut m[r * nb..][..nb]
                } else {
                    &mut [][..]
                };
                f16_scales(&w[r * rb..], F::WB, nb, &mut d[r * nb..][..nb], m);
            }
        }
        if F::MINS && nb > 0 {
            let mut pair = vec![0f32; 2 * nb];
            for p in m.chunks_exact_mut(2 * nb) {
                pair.copy_from_slice(p);
                let (m0, m1) = pair.split_at(nb);
                for (k, mk) in p.chunks_exact_mut(2).enumerate() {
                    mk[0] = m0[k];
                    mk[1] = m1[k];
                }
            }
        }
        Self { nb, d, m }
    }

    /// The `d` of rows `r..r + R`, and their `m` as [`scales_pass_tiles`] reads them
    /// (empty for formats without minimums): `R` is 2 (`r` even) or 1 (the last row).
    fn rows<const R: usize>(&self, r: usize) -> ([&[f32]; R], &[f32]) {
        let nb = self.nb;
        let d = core::array::from_fn(|j| &self.d[(r + j) * nb..][..nb]);
        let m = if self.m.is_empty() {
            &[][..]
        } else {
            &self.m[r * nb..][..R * nb]
        };
        (d, m)
    }
}

/// The tokens' `sy` of a tile by block, as [`scales_pass_tiles`] reads them: lanes
/// `4k..4k + 4` are `sy` of token `lane / 2` (`T` of 1: token 0 in all four).
fn tile_sy<const T: usize>(ay: &[ActScales; T], nb: usize, sy: &mut Vec<f32>) {
    sy.clear();
    for k in 0..nb {
        for lane in 0..4 {
            sy.push(ay[(lane / 2).min(T - 1)].s[k]);
        }
    }
}

/// [`scales_pass`] for `T` activation rows from converted weight scales (`wd[r]`, `wm`,
/// blocks `c0..c0+cn`): the same `f32` products; the `mx * sy` terms (`MINS`) added in
/// block order to lane `2t + r` of `summs`, one vector addition per block for the whole
/// tile (`wm` as [`WeightScales::rows`] gives it, `sy` as [`tile_sy`] makes it).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn scales_pass_tiles<F: Format, const R: usize, const T: usize>(
    wd: &[&[f32]; R],
    wm: &[f32],
    ay: &[ActScales; T],
    sy: &[f32],
    c0: usize,
    cn: usize,
    dbuf: &mut [[[f32; CHUNK]; R]; T],
    summs: &mut v128,
) {
    let end = c0 + cn;
    assert!(R <= 2 && T <= 2 && cn <= CHUNK && wd.iter().all(|d| d.len() >= end));
    assert!(!F::MINS || (wm.len() >= end * R && sy.len() >= end * 4));
    assert!(ay.iter().all(|a| a.d.len() >= end));
    let ld4 = |v: &[f32], k: usize| {
        // SAFETY: k + 4 <= v.len(), checked above against every slice read here.
        unsafe { v128_load(v.as_ptr().add(k) as *const v128) }
    };
    let mut k = 0;
    while k + 4 <= cn {
        let i = c0 + k;
        for r in 0..R {
            let vd = ld4(wd[r], i);
            for t in 0..T {
                let d = f32x4_mul(vd, ld4(&ay[t].d, i));
                // SAFETY: k + 4 <= cn <= CHUNK.
                unsafe { v128_store(dbuf[t][r][k..].as_mut_ptr() as *mut v128, d) };
            }
        }
        k += 4;
    }
    while k < cn {
        let i = c0 + k;
        for r in 0..R {
            for t in 0..T {
                dbuf[t][r][k] = wd[r][i] * ay[t].d[i];
            }
        }
        k += 1;
    }
    if F::MINS {
        let mut acc = *summs;
        for i in c0..end {
            let m = if R == 2 {
                // SAFETY: 2 * i + 2 <= wm.len() (checked above).
                unsafe { v128_load64_splat(wm.as_ptr().add(2 * i) as *const u64) }
            } else {
                f32x4_splat(wm[i])
            };
            acc = f32x4_add(acc, f32x4_mul(m, ld4(sy, 4 * i)));
        }
        *summs = acc;
    }
}

/// The fused multiply-adds of blocks `c0..c0+cn` of `R` weight rows (`x0`) against `T`
/// activation rows (`ap`), each block's codes unpacked once for the `T` activation
/// rows and each activation block loaded once for the `R` weight rows; the blocks' `d`
/// of activation row `t` in `dbuf[t]`.
///
/// Safety: those blocks of every weight row and of every activation row are readable.
#[inline(never)]
unsafe fn dot_pass_tiles<F: Format, const FUSED: bool, const R: usize, const T: usize>(
    x0: &[*const u8; R],
    ap: &[*const u8; T],
    c0: usize,
    cn: usize,
    dbuf: &[[[f32; CHUNK]; R]; T],
    lo: &mut [[v128; R]; T],
    hi: &mut [[v128; R]; T],
) {
    let mut l = *lo;
    let mut h = *hi;
    for k in 0..cn {
        let c: [F::Codes; R] = core::array::from_fn(|r| F::codes(x0[r].add((c0 + k) * F::WB)));
        for t in 0..T {
            let y = ap[t].add((c0 + k) * F::AB + F::A_QS);
            let (a0, a1) = (ld(y), ld(y.add(16)));
            for r in 0..R {
                let (s0, s1) = F::dot(c[r], a0, a1);
                let d = splat_at(&dbuf[t][r], k);
                l[t][r] = fma::<FUSED>(d, s0, l[t][r]);
                h[t][r] = fma::<FUSED>(d, s1, h[t][r]);
            }
        }
    }
    *lo = l;
    *hi = h;
}

/// `out[t][r] = dot(weight row r, activation row t)` for `R` weight rows `row_bytes`
/// apart in `w` and `T` activation rows `a[t]`, `nb` blocks each: per pair, the same
/// `d` products, the same `mx * sy` sums in block order ([`scales_pass_tiles`], from
/// the weight scales `ws[r]` converted once per chunk), the same
/// lanes and fused multiply-adds as [`kernel`], so the results are its results bit for
/// bit; only the unpacking of weight codes and the activation loads are shared.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn kernel_tiles<F: Format, const FUSED: bool, const R: usize, const T: usize>(
    w: &[u8],
    row_bytes: usize,
    (wd, wm): &([&[f32]; R], &[f32]),
    a: &[&[u8]; T],
    (ay, sy): (&[ActScales; T], &[f32]),
    nb: usize,
    out: &mut [[f32; R]; T],
    dbuf: &mut [[[f32; CHUNK]; R]; T],
) {
    // Every pointer below stays inside the first `nb` blocks of each row.
    assert!(row_bytes >= nb * F::WB && a.iter().all(|a| a.len() >= nb * F::AB));
    assert!(w.len() >= (R - 1) * row_bytes + nb * F::WB);
    let x0: [*const u8; R] = core::array::from_fn(|r| w[r * row_bytes..].as_ptr());
    let ap: [*const u8; T] = core::array::from_fn(|t| a[t].as_ptr());
    let mut lo = [[zero(); R]; T];
    let mut hi = [[zero(); R]; T];
    let mut summs = f32x4_splat(0.0);
    let mut c0 = 0;
    while c0 < nb {
        let cn = CHUNK.min(nb - c0);
        scales_pass_tiles::<F, R, T>(wd, wm, ay, sy, c0, cn, dbuf, &mut summs);
        // SAFETY: the blocks c0..c0+cn of every row and of every `a[t]` are in bounds
        // (checked above).
        unsafe {
            dot_pass_tiles::<F, FUSED, R, T>(&x0, &ap, c0, cn, dbuf, &mut lo, &mut hi);
        }
        c0 += cn;
    }
    let summs_lanes = f32_lanes(summs);
    for t in 0..T {
        for r in 0..R {
            out[t][r] = if F::MINS {
                hsum8(lo[t][r], hi[t][r]) + summs_lanes[2 * t + r]
            } else {
                hsum8(lo[t][r], hi[t][r])
            };
        }
    }
}

/// [`kernel_tiles`] with the fused multiply-add if the engine has one.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run_tiles<F: Format, const R: usize, const T: usize>(
    w: &[u8],
    row_bytes: usize,
    ws: &([&[f32]; R], &[f32]),
    a: &[&[u8]; T],
    ay: (&[ActScales; T], &[f32]),
    nb: usize,
    out: &mut [[f32; R]; T],
    dbuf: &mut [[[f32; CHUNK]; R]; T],
) {
    #[cfg(target_feature = "relaxed-simd")]
    if madd_is_fused() {
        return kernel_tiles::<F, true, R, T>(w, row_bytes, ws, a, ay, nb, out, dbuf);
    }
    kernel_tiles::<F, false, R, T>(w, row_bytes, ws, a, ay, nb, out, dbuf)
}

/// Activation rows per tile of [`token_tiles`].
const TILE_TOKENS: usize = 2;
/// Weight rows per tile: with [`TILE_TOKENS`], 8 accumulators, the codes and the
/// activation loads fit in 16 registers.
const TILE_ROWS: usize = 2;

/// Tiles of [`TILE_TOKENS`] activation rows against [`TILE_ROWS`] weight rows (the
/// last odd row alone). Returns how many activation rows were done (whole tiles, from
/// the first), 0 for formats without a tile kernel.
pub(super) fn token_tiles(
    ty: super::super::GgmlType,
    job: &super::TokenTiles,
    out: &mut [f32],
) -> usize {
    use super::super::GgmlType as T;
    fn go<F: Format>(job: &super::TokenTiles, out: &mut [f32]) -> usize {
        const TT: usize = TILE_TOKENS;
        let tiles = job.tiles(TT);
        if tiles == 0 {
            return 0;
        }
        let ws = WeightScales::new::<F>(job.w, job.row_bytes, job.rows, job.nb);
        // The blocks' `d` of a tile's chunk, written before they are read (kept here:
        // zeroing them per tile cost 4% of prefill).
        let mut dbuf = [[[0f32; CHUNK]; TILE_ROWS]; TT];
        let mut dbuf1 = [[[0f32; CHUNK]; 1]; TT];
        let mut sy = Vec::new();
        for i in 0..tiles {
            let t0 = i * TT;
            let a = job.tokens::<TT>(t0);
            let ay: [ActScales; TT] = core::array::from_fn(|t| ActScales::new::<F>(a[t], job.nb));
            if F::MINS {
                tile_sy(&ay, job.nb, &mut sy);
            }
            let tile = (&a, (&ay, &sy[..]));
            let mut r = 0;
            while r + TILE_ROWS <= job.rows {
                tile_rows::<F, TILE_ROWS>(job, &ws, r, t0, tile, out, &mut dbuf);
                r += TILE_ROWS;
            }
            while r < job.rows {
                tile_rows::<F, 1>(job, &ws, r, t0, tile, out, &mut dbuf1);
                r += 1;
            }
        }
        tiles * TT
    }
    match ty {
        T::Q4_0 => go::<Q4_0>(job, out),
        T::Q4_1 => go::<Q4_1>(job, out),
        T::Q5_0 => go::<Q5_0>(job, out),
        T::Q5_1 => go::<Q5_1>(job, out),
        T::Q8_0 => go::<Q8_0>(job, out),
        _ => 0,
    }
}

/// Weight rows `r..r + R` against a tile's activation rows `t0..` (their codes, scales
/// and [`tile_sy`]), into `out`.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn tile_rows<F: Format, const R: usize>(
    job: &super::TokenTiles,
    ws: &WeightScales,
    r: usize,
    t0: usize,
    (a, ay): (&[&[u8]; TILE_TOKENS], (&[ActScales; TILE_TOKENS], &[f32])),
    out: &mut [f32],
    dbuf: &mut [[[f32; CHUNK]; R]; TILE_TOKENS],
) {
    let mut o = [[0f32; R]; TILE_TOKENS];
    run_tiles::<F, R, TILE_TOKENS>(
        job.weights_from(r),
        job.row_bytes,
        &ws.rows(r),
        a,
        ay,
        job.nb,
        &mut o,
        dbuf,
    );
    job.store(out, t0, r, &o);
}

/// One row.
#[inline(always)]
fn one<F: Format>(w: &[u8], a: &[u8], nb: usize) -> f32 {
    let mut out = [0f32];
    let ay = ActScales::new::<F>(a, nb);
    run::<F, 1>(w, nb * F::WB, a, &ay, nb, &mut out, &mut [[0f32; CHUNK]; 1]);
    out[0]
}

/// Q4_0 · Q8_0.
pub(crate) fn q4_0_q8_0(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one::<Q4_0>(w, a, nb)
}

/// Q4_1 · Q8_1.
pub(crate) fn q4_1_q8_1(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one::<Q4_1>(w, a, nb)
}

/// Q5_0 · Q8_0.
pub(crate) fn q5_0_q8_0(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one::<Q5_0>(w, a, nb)
}

/// Q5_1 · Q8_1.
pub(crate) fn q5_1_q8_1(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one::<Q5_1>(w, a, nb)
}

/// Q8_0 · Q8_0.
pub(crate) fn q8_0_q8_0(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one::<Q8_0>(w, a, nb)
}

/// Rows of `row_bytes` in `w`, `ROWS` at a time (the last `len % ROWS` one by one), for the
/// formats with a multi-row kernel; returns how many rows of `out` were written (all,
/// or 0 for other formats).
pub(crate) fn rows(
    ty: super::super::GgmlType,
    w: &[u8],
    row_bytes: usize,
    a: &[u8],
    nb: usize,
    out: &mut [f32],
) -> usize {
    use super::super::GgmlType as T;
    // Four rows share each activation block load; their 8 accumulators, the
    // activation block and a row's codes still fit in 16 registers. The five-bit
    // formats' unpacking needs more: two rows (Q5_0 rows 6.9 -> 7.7 GMAC/s).
    fn go<F: Format, const ROWS: usize>(
        w: &[u8],
        rb: usize,
        a: &[u8],
        nb: usize,
        out: &mut [f32],
    ) -> usize {
        let n = out.len() / ROWS * ROWS;
        let ay = ActScales::new::<F>(a, nb);
        let mut dbuf = [[0f32; CHUNK]; ROWS];
        for (o, wr) in out[..n].chunks_exact_mut(ROWS).zip(w.chunks(ROWS * rb)) {
            run::<F, ROWS>(wr, rb, a, &ay, nb, o, &mut dbuf);
        }
        let mut dbuf1 = [[0f32; CHUNK]; 1];
        for (o, wr) in out[n..].chunks_exact_mut(1).zip(w[n * rb..].chunks(rb)) {
            run::<F, 1>(wr, rb, a, &ay, nb, o, &mut dbuf1);
        }
        out.len()
    }
    match ty {
        T::Q4_0 => go::<Q4_0, 4>(w, row_bytes, a, nb, out),
        T::Q4_1 => go::<Q4_1, 4>(w, row_bytes, a, nb, out),
        T::Q5_0 => go::<Q5_0, 2>(w, row_bytes, a, nb, out),
        T::Q5_1 => go::<Q5_1, 2>(w, row_bytes, a, nb, out),
        T::Q8_0 => go::<Q8_0, 4>(w, row_bytes, a, nb, out),
        _ => 0,
    }
}

/// Q8_1 · Q8_1: per-block terms `sumi * (dx * dy)` added in block order, four blocks'
/// integer sums and scales at a time.
pub(crate) fn q8_1_q8_1(w: &[u8], a: &[u8], nb: usize) -> f32 {
    const B: usize = q8_1::BLOCK_BYTES;
    assert!(w.len() >= nb * B && a.len() >= nb * B);
    // SAFETY: `x`, `y` point to whole blocks.
    let block = |x: *const u8, y: *const u8| unsafe {
        dot_i8_i8(
            dot_i8_i8(zero(), ld(x.add(4)), ld(y.add(4))),
            ld(x.add(20)),
            ld(y.add(20)),
        )
    };
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut sumf = 0f32;
    let mut i = 0;
    // SAFETY: blocks i..i+4 are in bounds (checked above).
    unsafe {
        while i + 4 <= nb {
            let (x, y) = (wp.add(i * B), ap.add(i * B));
            let s = hsum4(
                block(x, y),
                block(x.add(B), y.add(B)),
                block(x.add(2 * B), y.add(2 * B)),
                block(x.add(3 * B), y.add(3 * B)),
            );
            let d = f16_pair_products(gather_pairs_u16::<B, B>(x, y));
            sumf = add_lanes_in_order(sumf, f32x4_mul(f32x4_convert_i32x4(s), d));
            i += 4;
        }
    }
    while i < nb {
        let (x, y) = (&w[i * B..(i + 1) * B], &a[i * B..(i + 1) * B]);
        let s = hsum(block(x.as_ptr(), y.as_ptr()));
        sumf += s as f32 * (rd_f16(x, 0) * rd_f16(y, 0));
        i += 1;
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fma_exact` against the correctly rounded `f32::mul_add`, on random operands and
    /// on sums crafted to fall near and on halfway points between two `f32` (where the
    /// `f64` shortcut double-rounds and the slow path must take over).
    #[test]
    fn exact_fma_emulation_rounds_like_mul_add() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ties = 0;
        for i in 0..200_000 {
            let r = next();
            let s = ((r >> 8) as i32) >> (14 + (r % 8) as u32); // |s| <= 2^17
            let d =
                f32::from_bits(((r >> 32) as u32 & 0x807f_ffff) | (((r % 40) as u32 + 100) << 23));
            let acc = if i % 2 == 0 {
                // Random magnitude.
                f32::from_bits((next() as u32 & 0x807f_ffff) | (((next() % 60) as u32 + 100) << 23))
            } else {
                // acc such that d * s is about half an ulp of it, +- a little.
                let p = d as f64 * s as f64;
                let e = (p.abs().log2().floor() as i32 + 24).clamp(-100, 100);
                let base = 2f64.powi(e) * if next() % 2 == 0 { 1.0 } else { -1.0 };
                (base + (next() % 5) as f64 * 2f64.powi(e - 23)) as f32
            };
            let want = d.mul_add(s as f32, acc);
            let t = d as f64 * s as f64 + acc as f64;
            if t.to_bits() & 0x1FFF_FFFF == 0x1000_0000 {
                ties += 1;
            }
            let got = f32x4_extract_lane::<0>(fma_exact(
                f32x4_splat(d),
                i32x4_splat(s),
                f32x4_splat(acc),
            ));
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "fma({d:e}, {s}, {acc:e}): {got:e} vs {want:e}"
            );
        }
        // The slow path was exercised.
        assert!(ties > 100, "{ties} halfway sums");
    }
}
