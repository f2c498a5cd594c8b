//! Rotary position embeddings, as ggml's `rope` (no YaRN extrapolation).

use super::ggml_order::{fma, with_fma};
use crate::math;
use crate::model::RopeStyle;

/// RoPE parameters of one model.
pub struct Rope {
    style: RopeStyle,
    /// Rotated dimensions per head.
    n_rot: usize,
    /// `base^(-2/n_rot)`: the ratio between consecutive pairs' frequencies.
    theta_scale: f32,
    freq_scale: f32,
}

impl Rope {
    pub fn new(style: RopeStyle, n_rot: usize, freq_base: f32, freq_scale: f32) -> Self {
        Self {
            style,
            n_rot,
            theta_scale: math::powf(freq_base, -2.0 / n_rot as f32),
            freq_scale,
        }
    }

    /// The (sin, cos) of every pair's angle for the `n` positions from `pos0`, one row
    /// of `n_rot / 2` pairs per position: built once per forward pass, shared by every
    /// layer's queries and keys.
    ///
    /// ggml builds the angles as a running product starting from the position
    /// (`theta = pos; theta *= theta_scale`) and takes glibc's `sinf`/`cosf` of them;
    /// rounding that exact sequence, with [`math::sincosf`] rather than the platform's
    /// libm, keeps our logits bit-equal to llama.cpp's natively and in wasm.
    pub fn angle_table(&self, pos0: usize, n: usize) -> Vec<(f32, f32)> {
        let mut table = Vec::with_capacity(n * self.n_rot / 2);
        for pos in pos0..pos0 + n {
            let mut theta = pos as f32;
            for _ in 0..self.n_rot / 2 {
                table.push(math::sincosf(self.freq_scale * theta));
                theta *= self.theta_scale;
            }
        }
        table
    }

    /// Rotates every head of `x` (`n_heads * head_dim` values) of the token at
    /// row `t` of `table` (from [`Rope::angle_table`]).
    pub fn apply(&self, x: &mut [f32], head_dim: usize, table: &[(f32, f32)], t: usize) {
        let half = self.n_rot / 2;
        let sc = &table[t * half..(t + 1) * half];
        with_fma(
            #[inline(always)]
            || self.rotate(x, head_dim, sc),
        )
    }

    /// `rotate_pairs` of ggml's `rope_f32` with the (sin, cos) row `sc`.
    #[inline(always)]
    fn rotate(&self, x: &mut [f32], head_dim: usize, sc: &[(f32, f32)]) {
        for head in x.chunks_exact_mut(head_dim) {
            for (i, &(sin, cos)) in sc.iter().enumerate() {
                let (a, b) = match self.style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + self.n_rot / 2),
                };
                let (x0, x1) = (head[a], head[b]);
                // ggml's `x0*cos - x1*sin` and `x0*sin + x1*cos`, as compilers contract
                // them for an FMA target: the first product is fused.
                head[a] = fma(x0, cos, -(x1 * sin));
                head[b] = fma(x0, sin, x1 * cos);
            }
        }
    }
}
