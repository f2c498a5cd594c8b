//! Fast encoders for the K-quant types of Q4_K_M files: centred values of known
//! standard deviation rounded onto a fixed grid, written as valid Q4_K / Q6_K blocks.
//!
//! The reference quantizers (`quant::quantize_row`) search the best scale of every
//! group, which runs at ~3-5 M weights/s here: over half an hour for a 7B. Random
//! weights do not need that search: their scale is known in advance (`sigma`), so
//! every group gets the same grid, wide enough for ±3σ, and encoding is a rounding.
//! The blocks are ordinary ones (`dequantize_row` reads them) whose quantization
//! noise (step/√12 ≈ 0.12σ for Q4_K, 0.03σ for Q6_K) is that of real Q4_K/Q6_K.

use crate::quant::{f16_to_f32, f32_to_f16, GgmlType, QK_K};

/// Half-width of the grid, in standard deviations (Irwin–Hall values stop at 3.46σ).
const RANGE_SIGMAS: f32 = 3.0;

/// Whether `ty` has a grid encoder.
pub fn supports(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4K | GgmlType::Q6K)
}

/// Encodes `values` (a whole number of 256-element super-blocks, centred, standard
/// deviation `sigma > 0`) into `dst` (exactly the row size). `ty` must be [`supports`]ed.
pub fn encode(ty: GgmlType, values: &[f32], sigma: f32, dst: &mut [u8]) {
    match ty {
        GgmlType::Q4K => q4_k(values, sigma, dst),
        GgmlType::Q6K => q6_k(values, sigma, dst),
        _ => unreachable!("grid::encode called for {ty}"),
    }
}

/// Q4_K (144 bytes: `d`, `dmin`, 12 bytes of 6-bit scales and mins, 128 bytes of
/// nibbles; element `64c + i` is the low nibble of `qs[32c + i]`, `64c + 32 + i` the
/// high one). Every group has scale = min = 63, so value = `63 d q - 63 dmin`, with
/// `63 dmin = 7.5 · 63 d`: a grid of 16 levels centred on 0.
fn q4_k(values: &[f32], sigma: f32, dst: &mut [u8]) {
    let step = RANGE_SIGMAS * sigma / 7.5;
    let d = f32_to_f16(step / 63.0);
    let dmin = f32_to_f16(7.5 * step / 63.0);
    // The grid the decoder will see, after f16 rounding.
    let (step, offset) = (63.0 * f16_to_f32(d), 63.0 * f16_to_f32(dmin));
    for (x, b) in values.chunks_exact(QK_K).zip(dst.chunks_exact_mut(144)) {
        b[0..2].copy_from_slice(&d.to_le_bytes());
        b[2..4].copy_from_slice(&dmin.to_le_bytes());
        // Six-bit scale and min 63 in all eight groups pack to all-ones.
        b[4..16].fill(0xFF);
        let code = |v: f32| ((v + offset) / step).round().clamp(0.0, 15.0) as u8;
        for c in 0..QK_K / 64 {
            for i in 0..32 {
                b[16 + 32 * c + i] = code(x[64 * c + i]) | (code(x[64 * c + 32 + i]) << 4);
            }
        }
    }
}

/// Q6_K (210 bytes: `ql[128]` low nibbles, `qh[64]` high bit pairs, 16 signed 8-bit
/// scales, `d`). Every group has scale 127, so value = `127 d (q - 32)`: 64 levels
/// centred on 0.
fn q6_k(values: &[f32], sigma: f32, dst: &mut [u8]) {
    let step = RANGE_SIGMAS * sigma / 32.0;
    let d = f32_to_f16(step / 127.0);
    let step = 127.0 * f16_to_f32(d);
    for (x, b) in values.chunks_exact(QK_K).zip(dst.chunks_exact_mut(210)) {
        let code = |v: f32| ((v / step).round().clamp(-32.0, 31.0) + 32.0) as u8;
        let (ql_all, rest) = b.split_at_mut(128);
        let (qh_all, rest) = rest.split_at_mut(64);
        rest[..16].fill(127);
        rest[16..18].copy_from_slice(&d.to_le_bytes());
        for h in 0..2 {
            let l = &x[128 * h..128 * h + 128];
            let ql = &mut ql_all[64 * h..64 * h + 64];
            let qh = &mut qh_all[32 * h..32 * h + 32];
            for i in 0..32 {
                let (l1, l2, l3, l4) = (
                    code(l[i]),
                    code(l[i + 32]),
                    code(l[i + 64]),
                    code(l[i + 96]),
                );
                ql[i] = (l1 & 0xF) | ((l3 & 0xF) << 4);
                ql[i + 32] = (l2 & 0xF) | ((l4 & 0xF) << 4);
                qh[i] = (l1 >> 4) | ((l2 >> 4) << 2) | ((l3 >> 4) << 4) | ((l4 >> 4) << 6);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{dequantize_row, row_bytes};

    /// Every value decodes to its grid point: within half a step (inside the range)
    /// of the input, through the library's own dequantizer.
    fn round_trip(ty: GgmlType, levels_per_side: f32) {
        let sigma = 0.02f32;
        let n = 4 * QK_K;
        let values: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.37).sin() * 2.5 * sigma)
            .collect();
        let mut blocks = vec![0u8; row_bytes(ty, n).unwrap()];
        encode(ty, &values, sigma, &mut blocks);
        let mut back = vec![0f32; n];
        dequantize_row(ty, &blocks, &mut back).unwrap();
        let step = RANGE_SIGMAS * sigma / levels_per_side;
        for (x, y) in values.iter().zip(&back) {
            assert!((x - y).abs() <= 0.51 * step * 1.01, "{ty}: {x} -> {y}");
        }
    }

    #[test]
    fn q4_k_blocks_decode_to_the_grid() {
        round_trip(GgmlType::Q4K, 7.5);
    }

    #[test]
    fn q6_k_blocks_decode_to_the_grid() {
        round_trip(GgmlType::Q6K, 32.0);
    }
}
