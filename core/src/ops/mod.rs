//! The numeric building blocks of a forward pass, on f32 activations.
//! Each mirrors the ggml operation llama.cpp uses, including its summation precision.

mod attention;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod attention_simd128;
pub mod ggml_order;
mod matmul;
mod norm;
mod rope;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod swiglu_simd128;

pub use attention::{attend, attend_reference, AttnKernel, AttnScratch, AttnShape};
pub use matmul::{embedding_row, matmul, MatmulScratch, WeightMatrix};
pub use norm::{rms_norm, rms_norm_in_place};
pub use rope::Rope;

/// `a[i] += b[i]`.
pub fn add_assign(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}
