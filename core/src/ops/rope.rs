//! Rotary position embeddings, as ggml's `rope` (no YaRN extrapolation).

use super::ggml_order::with_fma;
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
            theta_scale: freq_base.powf(-2.0 / n_rot as f32),
            freq_scale,
        }
    }

    /// The (sin, cos) of every pair's angle at `pos`. ggml builds the angles as a running
    /// product starting from the position (`theta = pos; theta *= theta_scale`), and
    /// rounding that exact sequence is what keeps our logits bit-equal to llama.cpp's.
    fn angles(&self, pos: usize) -> impl Iterator<Item = (f32, f32)> + '_ {
        let mut theta = pos as f32;
        (0..self.n_rot / 2).map(move |_| {
            let angle = self.freq_scale * theta;
            theta *= self.theta_scale;
            angle.sin_cos()
        })
    }

    /// Rotates every head of `x` (`n_heads * head_dim` values) for position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let sc: Vec<(f32, f32)> = self.angles(pos).collect();
        with_fma(
            #[inline(always)]
            || self.rotate(x, head_dim, &sc),
        )
    }

    /// `rotate_pairs` of ggml's `rope_f32` with the (sin, cos) table `sc`.
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
                head[a] = x0.mul_add(cos, -(x1 * sin));
                head[b] = x0.mul_add(sin, x1 * cos);
            }
        }
    }
}
