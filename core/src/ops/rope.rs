//! Rotary position embeddings, as ggml's `rope` (no YaRN extrapolation).

use crate::model::RopeStyle;

/// Precomputed inverse frequencies for one model.
pub struct Rope {
    style: RopeStyle,
    /// Rotated dimensions per head.
    n_rot: usize,
    /// `freq_scale * base^(-2i/n_rot)` for each pair i (ggml builds it as a running product).
    inv_freq: Vec<f32>,
}

impl Rope {
    pub fn new(style: RopeStyle, n_rot: usize, freq_base: f32, freq_scale: f32) -> Self {
        let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
        let mut inv_freq = Vec::with_capacity(n_rot / 2);
        let mut theta = 1.0f32;
        for _ in 0..n_rot / 2 {
            inv_freq.push(theta * freq_scale);
            theta *= theta_scale;
        }
        Self {
            style,
            n_rot,
            inv_freq,
        }
    }

    /// Rotates every head of `x` (`n_heads * head_dim` values) for position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let p = pos as f32;
        for head in x.chunks_exact_mut(head_dim) {
            for (i, &f) in self.inv_freq.iter().enumerate() {
                let (sin, cos) = (p * f).sin_cos();
                let (a, b) = match self.style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + self.n_rot / 2),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}
