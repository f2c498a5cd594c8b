//! Random tensor contents: f32 values drawn per row from a seeded generator, then
//! encoded into the tensor's type: Q4_K and Q6_K matrices on a fixed grid
//! ([`super::grid`]), everything else with the project's reference quantizers.

use super::grid;
use crate::quant::{self, QuantError};
use crate::sampler::Xoshiro256StarStar;

/// How a tensor's values are distributed (chosen from its name and shape).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Centred values of standard deviation `sigma` (weight matrices, biases).
    Normal { sigma: f32 },
    /// `1 + N(0, sigma)`: RMSNorm gains, which real checkpoints keep near 1.
    NearOne { sigma: f32 },
}

/// Standard deviation of biases: small next to the unit-scale projections.
const BIAS_SIGMA: f32 = 0.02;
/// Spread of the norm gains around 1.
const NORM_SIGMA: f32 = 0.1;

impl Init {
    /// The distribution for tensor `name` of shape `dims` in a model of `layers` blocks.
    ///
    /// Matrices get `N(0, 1/sqrt(fan_in))` (fan-in = row length), so that every
    /// projection of a unit-RMS (normed) input has unit-scale outputs and attention
    /// scores stay O(1). The two projections that add into the residual stream
    /// (`attn_output`, `ffn_down`) are scaled down by `sqrt(2 * layers)`, as GPT-2
    /// and Megatron initialise them, so that the residual stream does not grow with
    /// depth. The logits then have a spread of about 1 at any depth.
    pub fn for_tensor(name: &str, dims: &[u64], layers: u64) -> Self {
        if dims.len() == 1 {
            if name.ends_with("norm.weight") {
                return Init::NearOne { sigma: NORM_SIGMA };
            }
            if name.ends_with(".bias") {
                return Init::Normal { sigma: BIAS_SIGMA };
            }
            // Any other vector (e.g. RoPE frequency factors): exactly 1, the neutral value.
            return Init::NearOne { sigma: 0.0 };
        }
        let fan_in = dims[0].max(1) as f32;
        let mut sigma = fan_in.sqrt().recip();
        if name.ends_with("attn_output.weight") || name.ends_with("ffn_down.weight") {
            sigma /= ((2 * layers.max(1)) as f32).sqrt();
        }
        Init::Normal { sigma }
    }

    fn offset_scale(self) -> (f32, f32) {
        match self {
            Init::Normal { sigma } => (0.0, sigma),
            Init::NearOne { sigma } => (1.0, sigma),
        }
    }
}

/// Irwin–Hall with four terms: the sum of the four 16-bit lanes of one random `u64`,
/// centred and scaled to unit variance. Close enough to a normal distribution for
/// weights (bounded at ±3.46σ), and one generator call per value, which keeps a
/// multi-GB synthesis quick.
#[inline]
fn unit_normal(bits: u64) -> f32 {
    const MEAN: f32 = 2.0 * 65535.0;
    // sqrt(4 * (65536^2 - 1) / 12)
    const STD: f32 = 37_837.23;
    let sum = (bits & 0xFFFF) + ((bits >> 16) & 0xFFFF) + ((bits >> 32) & 0xFFFF) + (bits >> 48);
    (sum as f32 - MEAN) * (1.0 / STD)
}

/// A per-row seed: rows are generated independently (so in parallel, in any order)
/// and a tensor's values depend only on the seed, its name and the row index.
pub fn row_seed(seed: u64, name_hash: u64, row: u64) -> u64 {
    let mut z = seed ^ name_hash.rotate_left(17) ^ row.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a 64 of a tensor name.
pub fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Fills `out` (whole rows of `ty`, `values.len()` elements each) with quantized
/// random rows `first_row..`. `values` is the caller's f32 row buffer.
pub fn fill_rows(
    ty: quant::GgmlType,
    init: Init,
    seed: u64,
    name_hash: u64,
    first_row: u64,
    values: &mut [f32],
    out: &mut [u8],
) -> Result<(), QuantError> {
    let row_bytes = quant::row_bytes(ty, values.len())?;
    let (offset, scale) = init.offset_scale();
    for (i, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
        let mut rng =
            Xoshiro256StarStar::seed_from_u64(row_seed(seed, name_hash, first_row + i as u64));
        for v in values.iter_mut() {
            *v = offset + scale * unit_normal(rng.next_u64());
        }
        match init {
            Init::Normal { sigma } if sigma > 0.0 && grid::supports(ty) => {
                grid::encode(ty, values, sigma, dst)
            }
            _ => quant::quantize_row(ty, values, dst)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_normal_has_unit_variance() {
        let mut rng = Xoshiro256StarStar::seed_from_u64(7);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| unit_normal(rng.next_u64()) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!(xs.iter().all(|x| x.abs() <= 3.47));
    }

    #[test]
    fn residual_projections_are_scaled_by_depth() {
        let q = Init::for_tensor("blk.0.attn_q.weight", &[4096, 4096], 32);
        let o = Init::for_tensor("blk.0.attn_output.weight", &[4096, 4096], 32);
        assert_eq!(q, Init::Normal { sigma: 1.0 / 64.0 });
        assert_eq!(
            o,
            Init::Normal {
                sigma: 1.0 / 64.0 / 8.0
            }
        );
        assert_eq!(
            Init::for_tensor("blk.0.ffn_norm.weight", &[4096], 32),
            Init::NearOne { sigma: NORM_SIGMA }
        );
    }
}
