//! The numeric building blocks of a forward pass, on f32 activations.
//! Each mirrors the ggml operation llama.cpp uses, including its summation precision.

mod attention;
mod matmul;
mod norm;
mod rope;

pub use attention::attend;
pub use matmul::{embedding_row, matmul, MatmulScratch, WeightMatrix};
pub use norm::rms_norm;
pub use rope::Rope;

/// SiLU as ggml computes it: `x / (1 + e^-x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `a[i] += b[i]`.
pub fn add_assign(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
