//! F32, F16 and BF16 rows, and the half-precision conversions every format uses.
//!
//! The conversions are ggml's own (`ggml_compute_fp16_to_fp32`,
//! `ggml_compute_fp32_to_fp16`, `ggml_compute_fp32_to_bf16` in `ggml-impl.h`): exact
//! widening, round-to-nearest-even narrowing, the same NaN encodings. They are written
//! with float arithmetic and bit operations only (selects, no data-dependent branches), so
//! they behave identically natively and in wasm (where `half` falls back to a branchy
//! software path). The unit tests below check them against the `half` crate.

// Kernels index several block fields with one counter; iterator chains would hide that.
#![allow(clippy::needless_range_loop)]

/// Widens an IEEE binary16 value (as bits) to f32, exactly.
///
/// Moves exponent and mantissa into f32 position and rescales by 2^112 (exact, and it
/// normalizes f16 subnormals too); the all-ones exponent (inf/NaN) is fixed up. Same
/// results as ggml's `ggml_compute_fp16_to_fp32` and F16C's `vcvtph2ps`.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let em = (h & 0x7fff) << 13;
    let bits = if em >= 0x0f80_0000 {
        // Infinity, NaN (same payload).
        em | 0x7f80_0000
    } else if em >= 1 << 23 {
        // Normal: the exponent rebiased by 112.
        em + (112 << 23)
    } else {
        // Zero, subnormal: (1 + m / 2^10) 2^-14 - 2^-14 = m 2^-24, exact, with normal
        // operands (f32 subnormal arithmetic takes a microcode assist on x86).
        let magic = f32::from_bits(113 << 23);
        (f32::from_bits(em + (113 << 23)) - magic).to_bits()
    };
    f32::from_bits(sign | bits)
}

/// Narrows f32 to IEEE binary16 bits, rounding to nearest even (NaN -> 0x7E00 with the
/// sign of the input), as `GGML_FP32_TO_FP16`.
#[inline(always)]
pub fn f32_to_f16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }

    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    ((sign >> 16)
        | if shl1_w > 0xFF00_0000 {
            0x7E00
        } else {
            nonsign
        }) as u16
}

/// Widens bfloat16 bits to f32, exactly.
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Narrows f32 to bfloat16 bits, rounding to nearest even; NaNs stay NaN (made quiet),
/// as `GGML_FP32_TO_BF16`.
#[inline(always)]
pub fn f32_to_bf16(s: f32) -> u16 {
    let u = s.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

// ---------------------------------------------------------------- rows

pub(crate) fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(4)) {
        d.copy_from_slice(&x.to_le_bytes());
    }
}

pub(crate) fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub(crate) fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&f32_to_f16(*x).to_le_bytes());
    }
}

pub(crate) fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    // Eight at a time through fixed-size arrays, so the conversion vectorizes.
    let sc = src.chunks_exact(16);
    let tail_src = sc.remainder();
    let mut dc = dst.chunks_exact_mut(8);
    for (b, y) in sc.zip(&mut dc) {
        for (yl, &hl) in y.iter_mut().zip(&u16x8(b)) {
            *yl = f16_to_f32(hl);
        }
    }
    for (b, y) in tail_src.chunks_exact(2).zip(dc.into_remainder()) {
        *y = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

pub(crate) fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&f32_to_bf16(*x).to_le_bytes());
    }
}

pub(crate) fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

// ---------------------------------------------------------------- dots
//
// Products of two f32 values are exact in f64 (24 + 24 significant bits < 53), so these
// accumulate in f64 like ggml's scalar `ggml_vec_dot_f16`/`_bf16` (`ggml_float` sums):
// the result is the exact dot product up to the f64 additions and the final rounding.
// Eight elements per step in independent lanes, so the compiler can keep it pipelined.

/// Dots `n` elements of `W` bytes from `w` and `a`. `get8` decodes eight elements from
/// `8 * W` bytes, `get1` one element from `W` bytes.
#[inline(always)]
fn dot_f64<const W: usize>(
    w: &[u8],
    a: &[u8],
    n: usize,
    get8: impl Fn(&[u8]) -> [f32; 8],
    get1: impl Fn(&[u8]) -> f32,
) -> f32 {
    let mut acc = [0f64; 8];
    let wc = w[..n * W].chunks_exact(W * 8);
    let ac = a[..n * W].chunks_exact(W * 8);
    let (wr, ar) = (wc.remainder(), ac.remainder());
    for (wb, ab) in wc.zip(ac) {
        let x = get8(wb);
        let y = get8(ab);
        for l in 0..8 {
            acc[l] += x[l] as f64 * y[l] as f64;
        }
    }
    let mut tail = 0f64;
    for (wb, ab) in wr.chunks_exact(W).zip(ar.chunks_exact(W)) {
        tail += get1(wb) as f64 * get1(ab) as f64;
    }
    let s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    (s + tail) as f32
}

/// Eight little-endian u16 from 16 bytes, through two u64 loads (byte-wise assembly
/// defeats vectorization).
#[inline(always)]
fn u16x8(b: &[u8]) -> [u16; 8] {
    let mut h = [0u16; 8];
    for (hc, c) in h.chunks_exact_mut(4).zip(b.chunks_exact(8)) {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        for (k, hk) in hc.iter_mut().enumerate() {
            *hk = (v >> (16 * k)) as u16;
        }
    }
    h
}

#[inline(always)]
fn f32x8(b: &[u8]) -> [f32; 8] {
    let mut v = [0f32; 8];
    for (vl, c) in v.iter_mut().zip(b.chunks_exact(4)) {
        *vl = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    v
}

/// F32 · F32 over `n` elements.
pub(crate) fn vec_dot_f32(w: &[u8], a: &[u8], n: usize) -> f32 {
    let get1 = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    dot_f64::<4>(w, a, n, f32x8, get1)
}

/// F16 · F16 over `n` elements.
pub(crate) fn vec_dot_f16(w: &[u8], a: &[u8], n: usize) -> f32 {
    let get8 = |b: &[u8]| u16x8(b).map(f16_to_f32);
    let get1 = |b: &[u8]| f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    dot_f64::<2>(w, a, n, get8, get1)
}

/// BF16 · BF16 over `n` elements.
pub(crate) fn vec_dot_bf16(w: &[u8], a: &[u8], n: usize) -> f32 {
    let get8 = |b: &[u8]| u16x8(b).map(bf16_to_f32);
    let get1 = |b: &[u8]| bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    dot_f64::<2>(w, a, n, get8, get1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic 32-bit patterns covering every exponent, both signs, NaN/inf,
    /// subnormals and the rounding boundaries.
    fn patterns() -> impl Iterator<Item = u32> {
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let random = (0..200_000).map(move |_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u32
        });
        // Every f16 value widened, plus the halfway points between neighbours.
        let halfway = (0..=u16::MAX).flat_map(|h| {
            let f = half::f16::from_bits(h).to_f32().to_bits();
            [
                f,
                f.wrapping_add(1 << 12),
                f.wrapping_add(1 << 13),
                f.wrapping_sub(1),
            ]
        });
        random.chain(halfway)
    }

    #[test]
    fn f16_widening_matches_half_for_all_values() {
        for h in 0..=u16::MAX {
            let ours = f16_to_f32(h);
            let theirs = half::f16::from_bits(h).to_f32();
            if theirs.is_nan() {
                assert!(ours.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(ours.to_bits(), theirs.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn f16_narrowing_matches_half_round_to_nearest_even() {
        for bits in patterns() {
            let f = f32::from_bits(bits);
            let ours = f32_to_f16(f);
            let theirs = half::f16::from_f32(f).to_bits();
            if f.is_nan() {
                assert_eq!(ours & 0x7fff, 0x7E00, "{bits:#010x}");
            } else {
                assert_eq!(ours, theirs, "{bits:#010x}");
            }
        }
    }

    #[test]
    fn bf16_narrowing_matches_half_round_to_nearest_even() {
        for bits in patterns() {
            let f = f32::from_bits(bits);
            let ours = f32_to_bf16(f);
            let theirs = half::bf16::from_f32(f).to_bits();
            if f.is_nan() {
                assert!(bf16_to_f32(ours).is_nan(), "{bits:#010x}");
            } else {
                assert_eq!(ours, theirs, "{bits:#010x}");
            }
        }
    }
}
