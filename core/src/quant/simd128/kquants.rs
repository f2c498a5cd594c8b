//! The K-quant formats (Q2_K..Q6_K, and Q8_K as weights) against Q8_K activations.
//!
//! Each super-block's integer sum is computed exactly: 16-bit pair sums of unsigned
//! codes times signed activations (the relaxed dot), scaled by the group scales and
//! widened by one `i32x4.dot_i16x8_s`, the code offsets and the mins applied through
//! the activations' `bsums`. Then the `f32` formula of the scalar kernel is applied in
//! the same order, so results are bit-identical to it.
//!
//! A super-block goes in chunks of 64 or 128 elements, unrolled, for `R` weight rows at
//! a time ([`kernel`], decoding; the accumulators passed through `prim::opaque` after
//! each chunk) or for one weight row against four tokens, each chunk's codes unpacked
//! once for the four ([`kernel_tokens`], prefill; each token's accumulator through
//! `opaque` after its work, [`tile_barrier`]). Q4_K and Q5_K have kernels
//! of their own ([`k4_rows`], [`k4_four_tokens`]).

use core::arch::wasm32::*;

use super::super::{f16_to_f32, q2_k, q3_k, q4_k, q5_k, q6_k, q8_k, GgmlType};
use super::prim::*;

const QK_K: usize = super::super::QK_K;
const AB: usize = q8_k::BLOCK_BYTES;
/// Offset of the codes and of the `bsums` in a Q8_K block.
const A_QS: usize = 4;
const A_BSUMS: usize = 4 + QK_K;

/// i16 lane `K` of `v` in every lane.
#[inline(always)]
fn splat16<const K: usize>(v: v128) -> v128 {
    i16x8_shuffle::<K, K, K, K, K, K, K, K>(v, v)
}

/// `acc + sum(p * s)` over pairs of i16 lanes, widened to i32 (the group scale `s` is
/// applied by the same instruction that widens).
#[inline(always)]
fn scaled(acc: v128, p: v128, s: v128) -> v128 {
    i32x4_add(acc, i32x4_dot_i16x8(p, s))
}

/// `sum_g bsums[g] * s[g]` over the 16 group sums of a Q8_K block and sixteen i16
/// factors (`s_lo` for groups 0..8, `s_hi` for 8..16). Safety: `y` is a Q8_K block.
#[inline(always)]
unsafe fn bsums_dot(y: *const u8, s_lo: v128, s_hi: v128) -> i32 {
    let b_lo = ld(y.add(A_BSUMS));
    let b_hi = ld(y.add(A_BSUMS + 16));
    hsum(i32x4_add(
        i32x4_dot_i16x8(b_lo, s_lo),
        i32x4_dot_i16x8(b_hi, s_hi),
    ))
}

/// `u16x8_shl`/`shr` by `s - to` of 16-bit lanes, so that bit `s` of each byte lands
/// on bit `to` (bits of other positions are garbage: mask after).
#[inline(always)]
fn move_bit(v: v128, s: u32, to: u32) -> v128 {
    if s <= to {
        i16x8_shl(v, to - s)
    } else {
        u16x8_shr(v, s - to)
    }
}

/// A tile's accumulator `acc` after one token's work: through `opaque`, which keeps
/// that work above the next token's loads (else LLVM loads every token's activations
/// first and Cranelift spills them: Q4_K tiles 34 -> 38 GMAC/s without). One-token
/// kernels place their barrier per chunk instead.
#[inline(always)]
fn tile_barrier<const T: usize>(acc: v128) -> v128 {
    if T > 1 {
        opaque(acc)
    } else {
        acc
    }
}

/// `acc[t]` plus the scaled dots of two groups of 16 codes (`c0` with scale `s0`, `c1`
/// with `s1`, splatted) with token `t`'s activation codes at `a[t] + off` and
/// `a[t] + off + 16`. Safety: those 32 bytes of every `a[t]` are readable.
#[inline(always)]
unsafe fn two_groups<const T: usize>(
    c0: v128,
    c1: v128,
    s0: v128,
    s1: v128,
    a: &[*const u8; T],
    off: usize,
    acc: &mut [v128; T],
) {
    for t in 0..T {
        acc[t] = scaled(acc[t], dot2_u7_i8(c0, ld(a[t].add(off))), s0);
        acc[t] = tile_barrier::<T>(scaled(acc[t], dot2_u7_i8(c1, ld(a[t].add(off + 16))), s1));
    }
}

/// The f16 at `p`, widened exactly.
/// Safety: `p..p + 2` readable.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    f16_to_f32(ld_u16(p))
}

/// What differs between the K-quant formats.
trait KFormat {
    /// Bytes of a weight block.
    const WB: usize;
    /// Elements per chunk: 64 or 128.
    const CHUNK: usize;
    /// Per-row state of a super-block (decoded scales, integer corrections).
    type Row;
    /// Decodes the block `x` (with the Q8_K block `y` for the `bsums` corrections).
    ///
    /// Safety: `x` and `y` point to whole blocks.
    unsafe fn prepare(x: *const u8, y: *const u8) -> Self::Row;
    /// `acc[t]` plus the scaled integer dot of chunk `c` (elements `CHUNK * c..`) of
    /// block `x` with the activation codes at `q8[t]` (those of the chunk of token
    /// `t`): the weight codes are unpacked once for the `T` tokens. `row` is any of
    /// the tokens' (the group scales are the weights').
    ///
    /// Safety: `x` points to a whole block, each `q8[t]` to a chunk's codes,
    /// `c < 256 / CHUNK`.
    unsafe fn chunk<const T: usize>(
        x: *const u8,
        row: &Self::Row,
        c: usize,
        q8: &[*const u8; T],
        acc: &mut [v128; T],
    );
    /// The block's `f32` term, from the exact integer sum of the chunks, as the scalar
    /// kernel computes it.
    ///
    /// Safety: `x` and `y` point to whole blocks.
    unsafe fn term(x: *const u8, y: *const u8, row: &Self::Row, isum: i32) -> f32;
    /// The block's `f32` terms of four tokens as one vector computation: lane `t`
    /// equals `term(x, y[t], &rows[t], isums[t])`.
    ///
    /// Safety: `x` and each `y[t]` point to whole blocks.
    unsafe fn terms4(x: *const u8, y: &[*const u8; 4], rows: &[Self::Row; 4], isums: v128) -> v128;
}

/// The scales `d` of four Q8_K blocks. Safety: each `y[t]` is a Q8_K block.
#[inline(always)]
unsafe fn q8k_d4(y: &[*const u8; 4]) -> v128 {
    let d = |t: usize| q8_k::d(core::slice::from_raw_parts(y[t], 4));
    f32x4(d(0), d(1), d(2), d(3))
}

/// `d * dy * (isum - k * corr)` per lane, as the scalar Q3_K/Q6_K terms
/// `d * dy * isum.wrapping_sub(corr.wrapping_mul(k)) as f32` (`k` a power of two).
#[inline(always)]
fn offset_terms<const LOG2_K: u32>(d: f32, dy: v128, isums: v128, corr: v128) -> v128 {
    let isums = i32x4_sub(isums, i32x4_shl(corr, LOG2_K));
    f32x4_mul(f32x4_mul(f32x4_splat(d), dy), f32x4_convert_i32x4(isums))
}

/// `out[r] = dot(row r, activations)` for `R` weight rows `row_bytes` apart in `w`,
/// `nb` super-blocks each.
#[inline(always)]
fn kernel<F: KFormat, const R: usize>(
    w: &[u8],
    row_bytes: usize,
    a: &[u8],
    nb: usize,
    out: &mut [f32],
) {
    // Every pointer below stays inside the first `nb` blocks of each row and of `a`.
    assert!(row_bytes >= nb * F::WB && a.len() >= nb * AB && out.len() >= R);
    assert!(w.len() >= (R - 1) * row_bytes + nb * F::WB);
    let x0: [*const u8; R] = core::array::from_fn(|r| w[r * row_bytes..].as_ptr());
    let mut sumf = [0f32; R];
    for i in 0..nb {
        // SAFETY: block i of every row and of `a` is in bounds (checked above).
        unsafe {
            let x: [*const u8; R] = core::array::from_fn(|r| x0[r].add(i * F::WB));
            let y = a.as_ptr().add(i * AB);
            let rows: [F::Row; R] = core::array::from_fn(|r| F::prepare(x[r], y));
            let mut acc = [zero(); R];
            for c in 0..QK_K / F::CHUNK {
                let q8 = y.add(A_QS + F::CHUNK * c);
                for r in 0..R {
                    let mut a = [acc[r]];
                    F::chunk::<1>(x[r], &rows[r], c, &[q8], &mut a);
                    acc[r] = a[0];
                }
                // Unrolled, LLVM would schedule the loads of all the chunks first (and
                // Cranelift, which does not reorder, spill them): the accumulators
                // through `opaque` keep each chunk's work above the next one's loads.
                acc = opaque(acc);
            }
            for r in 0..R {
                sumf[r] += F::term(x[r], y, &rows[r], hsum(acc[r]));
            }
        }
    }
    out[..R].copy_from_slice(&sumf);
}

/// One weight row (`nb` super-blocks of `w`) against four activation rows `a[t]`:
/// each chunk's weight codes unpacked once for the four tokens (prefill); per token,
/// the same integer sums and `f32` terms in the same order as [`kernel`], the four
/// tokens' terms computed as one vector.
#[inline(always)]
fn kernel_tokens<F: KFormat>(w: &[u8], a: &[&[u8]; TILE_TOKENS], nb: usize) -> [f32; TILE_TOKENS] {
    const T: usize = TILE_TOKENS;
    // Every pointer below stays inside the first `nb` blocks of `w` and of each `a[t]`.
    assert!(w.len() >= nb * F::WB && a.iter().all(|a| a.len() >= nb * AB));
    let mut sumf = f32x4_splat(0.0);
    for i in 0..nb {
        // SAFETY: block i of `w` and of every `a[t]` is in bounds (checked above).
        unsafe {
            let x = w.as_ptr().add(i * F::WB);
            let y: [*const u8; T] = core::array::from_fn(|t| a[t].as_ptr().add(i * AB));
            let rows: [F::Row; T] = core::array::from_fn(|t| F::prepare(x, y[t]));
            let mut acc = [zero(); T];
            for c in 0..QK_K / F::CHUNK {
                let q8: [*const u8; T] = core::array::from_fn(|t| y[t].add(A_QS + F::CHUNK * c));
                F::chunk::<T>(x, &rows[0], c, &q8, &mut acc);
            }
            let isums = hsum4(acc[0], acc[1], acc[2], acc[3]);
            sumf = f32x4_add(sumf, F::terms4(x, &y, &rows, isums));
        }
    }
    f32_lanes(sumf)
}

/// Activation rows per tile of [`token_tiles`].
const TILE_TOKENS: usize = 4;

/// Tiles of [`TILE_TOKENS`] activation rows against one weight row at a time (`job`'s
/// blocks are super-blocks). Returns how many activation rows were done (whole tiles,
/// from the first), 0 for formats without a tile kernel.
pub(super) fn token_tiles(ty: GgmlType, job: &super::TokenTiles, out: &mut [f32]) -> usize {
    type Tile = [f32; TILE_TOKENS];
    #[inline(always)]
    fn go(
        job: &super::TokenTiles,
        out: &mut [f32],
        kernel: impl Fn(&[u8], &[&[u8]; TILE_TOKENS], usize) -> Tile,
    ) -> usize {
        const TT: usize = TILE_TOKENS;
        let tiles = job.tiles(TT);
        for i in 0..tiles {
            let t0 = i * TT;
            let a = job.tokens::<TT>(t0);
            for r in 0..job.rows {
                let o = kernel(job.weights_from(r), &a, job.nb);
                job.store::<1, TT>(out, t0, r, &o.map(|v| [v]));
            }
        }
        tiles * TT
    }
    match ty {
        GgmlType::Q2K => go(job, out, kernel_tokens::<Q2K>),
        GgmlType::Q3K => go(job, out, kernel_tokens::<Q3K>),
        GgmlType::Q4K => go(job, out, k4_four_tokens::<Q4KCodes>),
        GgmlType::Q5K => go(job, out, k4_four_tokens::<Q5KCodes>),
        GgmlType::Q6K => go(job, out, kernel_tokens::<Q6K>),
        _ => 0,
    }
}

/// One row of `nb` blocks of `block_bytes` through a one-row `kernel`.
#[inline(always)]
fn one(
    (w, a, nb): (&[u8], &[u8], usize),
    block_bytes: usize,
    kernel: impl Fn(&[u8], usize, &[u8], usize, &mut [f32]),
) -> f32 {
    let mut out = [0f32];
    kernel(w, nb * block_bytes, a, nb, &mut out);
    out[0]
}

// ---------------------------------------------------------------- Q2_K

struct Q2K;

/// Q2_K: the 4-bit scales of the groups of each half (i16 lanes), and
/// `sum(bsums * mins)`.
struct Q2Row {
    s: [v128; 2],
    summs: i32,
}

impl KFormat for Q2K {
    const WB: usize = q2_k::BLOCK_BYTES;
    const CHUNK: usize = 128;
    type Row = Q2Row;

    #[inline(always)]
    unsafe fn prepare(x: *const u8, y: *const u8) -> Q2Row {
        let scv = ld(x);
        let sc = v128_and(scv, u8x16_splat(0x0F));
        let mn = v128_and(u16x8_shr(scv, 4), u8x16_splat(0x0F));
        Q2Row {
            s: [u16x8_extend_low_u8x16(sc), u16x8_extend_high_u8x16(sc)],
            summs: bsums_dot(y, u16x8_extend_low_u8x16(mn), u16x8_extend_high_u8x16(mn)),
        }
    }

    #[inline(always)]
    unsafe fn chunk<const T: usize>(
        x: *const u8,
        row: &Q2Row,
        h: usize,
        a: &[*const u8; T],
        acc: &mut [v128; T],
    ) {
        // Half h: bit pairs j of bytes 32h..32h+32 are elements 32j.. of the half.
        let q0 = ld(x.add(16 + 32 * h));
        let q1 = ld(x.add(32 + 32 * h));
        let m3 = u8x16_splat(3);
        let s = row.s[h & 1];
        macro_rules! group {
            ($j:literal) => {
                let c0 = v128_and(u16x8_shr(q0, 2 * $j), m3);
                let c1 = v128_and(u16x8_shr(q1, 2 * $j), m3);
                let (s0, s1) = (splat16::<{ 2 * $j }>(s), splat16::<{ 2 * $j + 1 }>(s));
                two_groups(c0, c1, s0, s1, a, 32 * $j, acc);
            };
        }
        group!(0);
        group!(1);
        group!(2);
        group!(3);
    }

    #[inline(always)]
    unsafe fn term(x: *const u8, y: *const u8, row: &Q2Row, isum: i32) -> f32 {
        let dy = q8_k::d(core::slice::from_raw_parts(y, 4));
        let dall = dy * f16_at(x.add(80));
        let dmin = dy * f16_at(x.add(82));
        dall * isum as f32 - dmin * row.summs as f32
    }

    #[inline(always)]
    unsafe fn terms4(x: *const u8, y: &[*const u8; 4], rows: &[Q2Row; 4], isums: v128) -> v128 {
        let dy = q8k_d4(y);
        let summs = i32x4(rows[0].summs, rows[1].summs, rows[2].summs, rows[3].summs);
        let dall = f32x4_mul(dy, f32x4_splat(f16_at(x.add(80))));
        let dmin = f32x4_mul(dy, f32x4_splat(f16_at(x.add(82))));
        f32x4_sub(
            f32x4_mul(dall, f32x4_convert_i32x4(isums)),
            f32x4_mul(dmin, f32x4_convert_i32x4(summs)),
        )
    }
}

// ---------------------------------------------------------------- Q3_K

struct Q3K;

/// Q3_K: the signed scales of the groups of each half (i16 lanes), and
/// `sum(scales * bsums)`.
struct Q3Row {
    s: [v128; 2],
    offs: i32,
}

/// The sixteen signed scales of a Q3_K block (already minus 32) as i8 lanes.
/// Safety: `s..s + 12` readable.
#[inline(always)]
unsafe fn q3k_scales(s: *const u8) -> v128 {
    const K1: u32 = 0x0303_0303;
    const K2: u32 = 0x0f0f_0f0f;
    let r = |k: usize| u32::from_le(core::ptr::read_unaligned(s.add(4 * k) as *const u32));
    let (a0, a1, t) = (r(0), r(1), r(2));
    let v = u32x4(
        (a0 & K2) | ((t & K1) << 4),
        (a1 & K2) | (((t >> 2) & K1) << 4),
        ((a0 >> 4) & K2) | (((t >> 4) & K1) << 4),
        ((a1 >> 4) & K2) | (((t >> 6) & K1) << 4),
    );
    i8x16_sub(v, i8x16_splat(32))
}

impl KFormat for Q3K {
    const WB: usize = q3_k::BLOCK_BYTES;
    const CHUNK: usize = 128;
    type Row = Q3Row;

    #[inline(always)]
    unsafe fn prepare(x: *const u8, y: *const u8) -> Q3Row {
        let sc = q3k_scales(x.add(96));
        let (lo, hi) = (i16x8_extend_low_i8x16(sc), i16x8_extend_high_i8x16(sc));
        Q3Row {
            s: [lo, hi],
            offs: bsums_dot(y, lo, hi),
        }
    }

    #[inline(always)]
    unsafe fn chunk<const T: usize>(
        x: *const u8,
        row: &Q3Row,
        h: usize,
        a: &[*const u8; T],
        acc: &mut [v128; T],
    ) {
        // Half h: low bit pairs j of bytes 32 + 32h.., high bits 4h + j of `hmask`.
        let q0 = ld(x.add(32 + 32 * h));
        let q1 = ld(x.add(48 + 32 * h));
        let hb0 = u16x8_shr(ld(x), 4 * h as u32);
        let hb1 = u16x8_shr(ld(x.add(16)), 4 * h as u32);
        let (m3, m4) = (u8x16_splat(3), u8x16_splat(4));
        let s = row.s[h & 1];
        macro_rules! group {
            ($j:literal) => {
                let c0 = v128_or(
                    v128_and(u16x8_shr(q0, 2 * $j), m3),
                    v128_and(move_bit(hb0, $j, 2), m4),
                );
                let c1 = v128_or(
                    v128_and(u16x8_shr(q1, 2 * $j), m3),
                    v128_and(move_bit(hb1, $j, 2), m4),
                );
                let (s0, s1) = (splat16::<{ 2 * $j }>(s), splat16::<{ 2 * $j + 1 }>(s));
                two_groups(c0, c1, s0, s1, a, 32 * $j, acc);
            };
        }
        group!(0);
        group!(1);
        group!(2);
        group!(3);
    }

    #[inline(always)]
    unsafe fn term(x: *const u8, y: *const u8, row: &Q3Row, isum: i32) -> f32 {
        // Codes are stored + 4: sum(sc * (c - 4) * y) = sum(sc * c * y) - 4 sum(sc * bsum).
        let isum = isum.wrapping_sub(row.offs.wrapping_mul(4));
        f16_at(x.add(108)) * q8_k::d(core::slice::from_raw_parts(y, 4)) * isum as f32
    }

    #[inline(always)]
    unsafe fn terms4(x: *const u8, y: &[*const u8; 4], rows: &[Q3Row; 4], isums: v128) -> v128 {
        let offs = i32x4(rows[0].offs, rows[1].offs, rows[2].offs, rows[3].offs);
        offset_terms::<2>(f16_at(x.add(108)), q8k_d4(y), isums, offs)
    }
}

// ---------------------------------------------------------------- Q4_K / Q5_K

/// The eight 6-bit scales and the eight 6-bit mins of a Q4_K/Q5_K block as u16 lanes,
/// from its 12 packed bytes `s[0..12]`: for `j < 4`, scale `s[j] & 63` and min
/// `s[j + 4] & 63`; for `j >= 4`, the low (scale) and high (min) nibble of `s[j + 4]`
/// below the top two bits of `s[j - 4]` (scale) and of `s[j]` (min).
/// Safety: `s..s + 16` readable.
#[inline(always)]
unsafe fn k4_scales_mins(s: *const u8) -> (v128, v128) {
    let v = ld(s);
    // Byte lanes 0..8 become the scales, 8..16 the mins.
    let low = i8x16_shuffle::<0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11>(v, v);
    let top = i8x16_shuffle::<0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7>(v, v);
    let bytes = v128_or(
        v128_or(
            // Lanes 0..4 and 8..12: six bits; lanes 4..8: the low nibble.
            v128_and(low, u64x2(0x0f0f_0f0f_3f3f_3f3f, 0x0000_0000_3f3f_3f3f)),
            // Lanes 12..16: the high nibble.
            v128_and(u16x8_shr(low, 4), u64x2(0, 0x0f0f_0f0f_0000_0000)),
        ),
        // Lanes 4..8 and 12..16: the top two bits (6, 7) moved to bits 4, 5.
        v128_and(u16x8_shr(top, 2), u64x2_splat(0x3030_3030_0000_0000)),
    );
    (
        u16x8_extend_low_u8x16(bytes),
        u16x8_extend_high_u8x16(bytes),
    )
}

/// The sums of the activation codes of each 32-element group (the Q4_K/Q5_K scale
/// groups) of a Q8_K block, as i16 lanes (|sum| <= 32 * 128). Safety: `y` is a Q8_K
/// block.
#[inline(always)]
unsafe fn q8k_group32_sums(y: *const u8) -> v128 {
    i16x8_narrow_i32x4(
        i32x4_extadd_pairwise_i16x8(ld(y.add(A_BSUMS))),
        i32x4_extadd_pairwise_i16x8(ld(y.add(A_BSUMS + 16))),
    )
}

/// Q4_K and Q5_K share the scales, the mins and the block term; they differ in where
/// a chunk's codes are stored.
trait K4Codes {
    /// Bytes of a weight block.
    const WB: usize;
    /// The codes of chunk `c` (elements `64c..64c + 64`, the scale groups `2c` and
    /// `2c + 1`), 16 per vector, in order.
    ///
    /// Safety: `x` points to a whole block, `c < 4`.
    unsafe fn codes(x: *const u8, c: usize) -> [v128; 4];
}

/// `acc[t]` plus the two scaled group dots of a chunk: `l0`/`l1` the codes of the low
/// group (elements 0..16, 16..32 of the chunk) with scale `s_lo`, `h0`/`h1` those of
/// the high group with scale `s_hi` (splatted), `a[t]` the chunk's activation codes of
/// token `t`. Safety: each `a[t]..a[t] + 64` readable.
#[inline(always)]
unsafe fn k4_chunk<const T: usize>(
    [l0, l1, h0, h1]: [v128; 4],
    s_lo: v128,
    s_hi: v128,
    a: &[*const u8; T],
    acc: &mut [v128; T],
) {
    for t in 0..T {
        let a = a[t];
        // Two 16-bit pair sums of codes below 32 add up below 2^15.
        let lo = i16x8_add(dot2_u7_i8(l0, ld(a)), dot2_u7_i8(l1, ld(a.add(16))));
        let hi = i16x8_add(dot2_u7_i8(h0, ld(a.add(32))), dot2_u7_i8(h1, ld(a.add(48))));
        acc[t] = tile_barrier::<T>(scaled(scaled(acc[t], lo, s_lo), hi, s_hi));
    }
}

/// Decoding, Q4_K/Q5_K: `R` (1 or 2) weight rows `row_bytes` apart in `w` against one
/// Q8_K activation row, `nb` super-blocks each, with the sums and `f32` terms of the
/// scalar kernel, in its order. Laid out for the loop body: the four chunks unrolled
/// (each chunk's scales are constant lane picks), the 6-bit scales and mins decoded in
/// vector lanes, and the block terms of both rows one vector computation
/// (`[d0, d1, dmin0, dmin1] * dy * [isum0, isum1, summins0, summins1]`; with one row,
/// its lanes twice).
#[inline(always)]
fn k4_rows<C: K4Codes, const R: usize>(
    w: &[u8],
    row_bytes: usize,
    a: &[u8],
    nb: usize,
    out: &mut [f32],
) {
    const { assert!(R == 1 || R == 2) };
    // Every pointer below stays inside the first `nb` blocks of the rows and of `a`.
    assert!(row_bytes >= nb * C::WB && a.len() >= nb * AB && out.len() >= R);
    assert!(w.len() >= (R - 1) * row_bytes + nb * C::WB);
    let x0: [*const u8; R] = core::array::from_fn(|r| w[r * row_bytes..].as_ptr());
    let mut sumf = f32x4_splat(0.0);
    for i in 0..nb {
        // SAFETY: block i of the rows and of `a` is in bounds (checked above).
        unsafe {
            let x = x0.map(|x| x.add(i * C::WB));
            let y = a.as_ptr().add(i * AB);
            let sm = x.map(|x| k4_scales_mins(x.add(4)));
            let mut acc = [zero(); R];
            macro_rules! chunk {
                ($c:literal) => {
                    let q8 = [y.add(A_QS + 64 * $c)];
                    for r in 0..R {
                        let s = sm[r].0;
                        let (s_lo, s_hi) = (splat16::<{ 2 * $c }>(s), splat16::<{ 2 * $c + 1 }>(s));
                        let mut a = [acc[r]];
                        k4_chunk(C::codes(x[r], $c), s_lo, s_hi, &q8, &mut a);
                        // Unrolled, LLVM would schedule the loads of all the chunks
                        // (and rows) first, and Cranelift, which does not reorder,
                        // spill them: the accumulator through `opaque` keeps each
                        // row's work above the next one's loads.
                        acc[r] = opaque(a[0]);
                    }
                };
            }
            chunk!(0);
            chunk!(1);
            chunk!(2);
            chunk!(3);
            let g = q8k_group32_sums(y);
            let isums = hsum4(
                acc[0],
                acc[R - 1],
                i32x4_dot_i16x8(g, sm[0].1),
                i32x4_dot_i16x8(g, sm[R - 1].1),
            );
            // u16 lanes [d0, dmin0, d1, dmin1] spread to u32 lanes [d0, d1, dmin0, dmin1].
            let h = v128_load32_zero(x[0] as *const u32);
            let h = v128_load32_lane::<1>(h, x[R - 1] as *mut u32);
            let d = f16x4_to_f32x4(i16x8_shuffle::<0, 8, 2, 8, 1, 8, 3, 8>(h, zero()));
            let dy = f32x4_splat(q8_k::d(core::slice::from_raw_parts(y, 4)));
            let t = f32x4_mul(f32x4_mul(d, dy), f32x4_convert_i32x4(isums));
            sumf = f32x4_add(sumf, f32x4_sub(t, i32x4_shuffle::<2, 3, 2, 3>(t, t)));
        }
    }
    out[..R].copy_from_slice(&f32_lanes(sumf)[..R]);
}

/// Prefill, Q4_K/Q5_K: one weight row (`nb` super-blocks of `w`) against four
/// activation rows, each chunk's codes unpacked once for the four; as [`k4_rows`],
/// the chunks unrolled and the four tokens' block terms one vector computation
/// (`d * [dy_t] * [isum_t] - dmin * [dy_t] * [summins_t]`).
#[inline(always)]
fn k4_four_tokens<C: K4Codes>(w: &[u8], a: &[&[u8]; 4], nb: usize) -> [f32; 4] {
    // Every pointer below stays inside the first `nb` blocks of `w` and of each `a[t]`.
    assert!(w.len() >= nb * C::WB && a.iter().all(|a| a.len() >= nb * AB));
    let mut sumf = f32x4_splat(0.0);
    for i in 0..nb {
        // SAFETY: block i of `w` and of every `a[t]` is in bounds (checked above).
        unsafe {
            let x = w.as_ptr().add(i * C::WB);
            let y: [*const u8; 4] = core::array::from_fn(|t| a[t].as_ptr().add(i * AB));
            let (sc, mn) = k4_scales_mins(x.add(4));
            let mut acc = [zero(); 4];
            macro_rules! chunk {
                ($c:literal) => {
                    let q8 = y.map(|y| y.add(A_QS + 64 * $c));
                    let (s_lo, s_hi) = (splat16::<{ 2 * $c }>(sc), splat16::<{ 2 * $c + 1 }>(sc));
                    k4_chunk(C::codes(x, $c), s_lo, s_hi, &q8, &mut acc);
                };
            }
            chunk!(0);
            chunk!(1);
            chunk!(2);
            chunk!(3);
            let isums = hsum4(acc[0], acc[1], acc[2], acc[3]);
            let [m0, m1, m2, m3] = y.map(|y| i32x4_dot_i16x8(q8k_group32_sums(y), mn));
            let summins = hsum4(m0, m1, m2, m3);
            let dy = q8k_d4(&y);
            let (d, dmin) = (f32x4_splat(f16_at(x)), f32x4_splat(f16_at(x.add(2))));
            let t = f32x4_sub(
                f32x4_mul(f32x4_mul(d, dy), f32x4_convert_i32x4(isums)),
                f32x4_mul(f32x4_mul(dmin, dy), f32x4_convert_i32x4(summins)),
            );
            sumf = f32x4_add(sumf, t);
        }
    }
    f32_lanes(sumf)
}

struct Q4KCodes;

impl K4Codes for Q4KCodes {
    const WB: usize = q4_k::BLOCK_BYTES;

    #[inline(always)]
    unsafe fn codes(x: *const u8, c: usize) -> [v128; 4] {
        // Chunk c: the low nibbles of bytes 16 + 32c.. are its first 32 codes, the
        // high nibbles the next 32.
        let q0 = ld(x.add(16 + 32 * c));
        let q1 = ld(x.add(32 + 32 * c));
        let m = u8x16_splat(0x0F);
        [
            v128_and(q0, m),
            v128_and(q1, m),
            v128_and(u16x8_shr(q0, 4), m),
            v128_and(u16x8_shr(q1, 4), m),
        ]
    }
}

struct Q5KCodes;

impl K4Codes for Q5KCodes {
    const WB: usize = q5_k::BLOCK_BYTES;

    #[inline(always)]
    unsafe fn codes(x: *const u8, c: usize) -> [v128; 4] {
        let q0 = ld(x.add(48 + 32 * c));
        let q1 = ld(x.add(64 + 32 * c));
        // Bits 2c and 2c + 1 of each `qh` byte, moved to bits 0 and 1.
        let qh0 = u16x8_shr(ld(x.add(16)), 2 * c as u32);
        let qh1 = u16x8_shr(ld(x.add(32)), 2 * c as u32);
        let (m, b4) = (u8x16_splat(0x0F), u8x16_splat(0x10));
        [
            v128_or(v128_and(q0, m), v128_and(i16x8_shl(qh0, 4), b4)),
            v128_or(v128_and(q1, m), v128_and(i16x8_shl(qh1, 4), b4)),
            v128_or(
                v128_and(u16x8_shr(q0, 4), m),
                v128_and(i16x8_shl(qh0, 3), b4),
            ),
            v128_or(
                v128_and(u16x8_shr(q1, 4), m),
                v128_and(i16x8_shl(qh1, 3), b4),
            ),
        ]
    }
}

// ---------------------------------------------------------------- Q6_K

struct Q6K;

/// Q6_K: the signed scales of the groups of each half (i16 lanes), and
/// `sum(scales * bsums)`.
struct Q6Row {
    s: [v128; 2],
    offs: i32,
}

impl KFormat for Q6K {
    const WB: usize = q6_k::BLOCK_BYTES;
    const CHUNK: usize = 128;
    type Row = Q6Row;

    #[inline(always)]
    unsafe fn prepare(x: *const u8, y: *const u8) -> Q6Row {
        let sc = ld(x.add(192));
        let (lo, hi) = (i16x8_extend_low_i8x16(sc), i16x8_extend_high_i8x16(sc));
        Q6Row {
            s: [lo, hi],
            offs: bsums_dot(y, lo, hi),
        }
    }

    #[inline(always)]
    unsafe fn chunk<const T: usize>(
        x: *const u8,
        row: &Q6Row,
        h: usize,
        a: &[*const u8; T],
        acc: &mut [v128; T],
    ) {
        let ql = x.add(64 * h);
        let qh = x.add(128 + 32 * h);
        let (ql0, ql1, ql2, ql3) = (ld(ql), ld(ql.add(16)), ld(ql.add(32)), ld(ql.add(48)));
        let (qh0, qh1) = (ld(qh), ld(qh.add(16)));
        let (m4, m2, m2_2, m2_4) = (
            u8x16_splat(0x0F),
            u8x16_splat(0x03),
            u8x16_splat(0x0C),
            u8x16_splat(0x30),
        );
        let s = row.s[h & 1];
        macro_rules! group {
            ($k:literal, $c:expr) => {
                let c = $c;
                for t in 0..T {
                    acc[t] = tile_barrier::<T>(scaled(
                        acc[t],
                        dot2_u7_i8(c, ld(a[t].add(16 * $k))),
                        splat16::<$k>(s),
                    ));
                }
            };
        }
        // The 16 codes of each group of this half, in order.
        group!(
            0,
            v128_or(v128_and(ql0, m4), i16x8_shl(v128_and(qh0, m2), 4))
        );
        group!(
            1,
            v128_or(v128_and(ql1, m4), i16x8_shl(v128_and(qh1, m2), 4))
        );
        group!(
            2,
            v128_or(v128_and(ql2, m4), i16x8_shl(v128_and(qh0, m2_2), 2))
        );
        group!(
            3,
            v128_or(v128_and(ql3, m4), i16x8_shl(v128_and(qh1, m2_2), 2))
        );
        group!(
            4,
            v128_or(v128_and(u16x8_shr(ql0, 4), m4), v128_and(qh0, m2_4))
        );
        group!(
            5,
            v128_or(v128_and(u16x8_shr(ql1, 4), m4), v128_and(qh1, m2_4))
        );
        group!(
            6,
            v128_or(
                v128_and(u16x8_shr(ql2, 4), m4),
                v128_and(u16x8_shr(qh0, 2), m2_4)
            )
        );
        group!(
            7,
            v128_or(
                v128_and(u16x8_shr(ql3, 4), m4),
                v128_and(u16x8_shr(qh1, 2), m2_4)
            )
        );
    }

    #[inline(always)]
    unsafe fn term(x: *const u8, y: *const u8, row: &Q6Row, isum: i32) -> f32 {
        // Codes are stored + 32.
        let isum = isum.wrapping_sub(row.offs.wrapping_mul(32));
        f16_at(x.add(208)) * q8_k::d(core::slice::from_raw_parts(y, 4)) * isum as f32
    }

    #[inline(always)]
    unsafe fn terms4(x: *const u8, y: &[*const u8; 4], rows: &[Q6Row; 4], isums: v128) -> v128 {
        let offs = i32x4(rows[0].offs, rows[1].offs, rows[2].offs, rows[3].offs);
        offset_terms::<5>(f16_at(x.add(208)), q8k_d4(y), isums, offs)
    }
}

// ---------------------------------------------------------------- entry points

/// Q2_K · Q8_K.
pub(crate) fn q2_k_q8_k(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one((w, a, nb), Q2K::WB, kernel::<Q2K, 1>)
}

/// Q3_K · Q8_K.
pub(crate) fn q3_k_q8_k(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one((w, a, nb), Q3K::WB, kernel::<Q3K, 1>)
}

/// Q4_K · Q8_K.
pub(crate) fn q4_k_q8_k(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one((w, a, nb), Q4KCodes::WB, k4_rows::<Q4KCodes, 1>)
}

/// Q5_K · Q8_K.
pub(crate) fn q5_k_q8_k(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one((w, a, nb), Q5KCodes::WB, k4_rows::<Q5KCodes, 1>)
}

/// Q6_K · Q8_K.
pub(crate) fn q6_k_q8_k(w: &[u8], a: &[u8], nb: usize) -> f32 {
    one((w, a, nb), Q6K::WB, kernel::<Q6K, 1>)
}

/// Rows of `row_bytes` in `w`, `R` at a time, for the K-quant formats; returns how many
/// rows of `out` were written (a multiple of `R`), 0 for other formats.
pub(crate) fn rows(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    a: &[u8],
    nb: usize,
    out: &mut [f32],
) -> usize {
    #[inline(always)]
    fn go<const R: usize>(
        (w, rb, a, nb, out): (&[u8], usize, &[u8], usize, &mut [f32]),
        kernel: impl Fn(&[u8], usize, &[u8], usize, &mut [f32]),
    ) -> usize {
        let n = out.len() / R * R;
        for (o, wr) in out[..n].chunks_exact_mut(R).zip(w.chunks(R * rb)) {
            kernel(wr, rb, a, nb, o);
        }
        n
    }
    let job = (w, row_bytes, a, nb, out);
    match ty {
        // Two rows at a time where measured faster; Q3_K and Q6_K, with more weight
        // vectors per chunk, run out of registers with two.
        GgmlType::Q2K => go::<2>(job, kernel::<Q2K, 2>),
        GgmlType::Q3K => go::<1>(job, kernel::<Q3K, 1>),
        GgmlType::Q4K => go::<2>(job, k4_rows::<Q4KCodes, 2>),
        GgmlType::Q5K => go::<2>(job, k4_rows::<Q5KCodes, 2>),
        GgmlType::Q6K => go::<1>(job, kernel::<Q6K, 1>),
        _ => 0,
    }
}

// ---------------------------------------------------------------- Q8_K

/// Q8_K · Q8_K.
pub(crate) fn q8_k_q8_k(w: &[u8], a: &[u8], nb: usize) -> f32 {
    assert!(w.len() >= nb * AB && a.len() >= nb * AB);
    let mut sumf = 0f32;
    for i in 0..nb {
        // SAFETY: block i of both rows is in bounds (checked).
        let sumi = unsafe {
            let x = w.as_ptr().add(i * AB + A_QS);
            let y = a.as_ptr().add(i * AB + A_QS);
            let mut acc0 = zero();
            let mut acc1 = zero();
            for k in 0..opaque(QK_K / 32) {
                acc0 = i32x4_add(acc0, dot4_i8_i8(ld(x.add(32 * k)), ld(y.add(32 * k))));
                acc1 = i32x4_add(
                    acc1,
                    dot4_i8_i8(ld(x.add(32 * k + 16)), ld(y.add(32 * k + 16))),
                );
            }
            hsum(i32x4_add(acc0, acc1))
        };
        let (x, y) = (&w[i * AB..], &a[i * AB..]);
        sumf += q8_k::d(x) * q8_k::d(y) * sumi as f32;
    }
    sumf
}
