//! x86-64 AVX2 kernels for the native build, chosen at run time (AVX2 + FMA present).
//!
//! They follow the scalar reference's order exactly (ggml's AVX2 order, see
//! `x86_order.rs`): per 32-element block, eight `i32` lanes of four-element integer
//! sums, each turned into `f32` and accumulated by a fused multiply-add with the
//! block's `d = dx * dy`, the lanes reduced by `hsum_float_8` at the end, and (Q4_1)
//! the minimums' terms summed in block order and added last. The integer sums are
//! exact whatever instructions compute them, so the results are **bit-identical** to
//! the scalar reference (`core/tests/quant_simd.rs` checks it natively).
//!
//! Formats without a kernel here return `None` and take the scalar kernels.

mod legacy;

use super::GgmlType;
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether this CPU runs the AVX2 kernels (AVX2 and FMA), detected once.
pub(crate) fn available() -> bool {
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            STATE.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

/// Whether [`dot`] has a kernel for weights of type `ty`.
pub(crate) fn supports(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0)
}

/// The AVX2 dot product of `nb` blocks of weights `w` (type `ty`) with activations
/// `act` (lengths already checked), or `None` when there is no kernel for `ty` or the
/// CPU lacks AVX2/FMA.
#[inline]
pub(crate) fn dot(ty: GgmlType, w: &[u8], act: &[u8], nb: usize) -> Option<f32> {
    if !supports(ty) || !available() {
        return None;
    }
    // SAFETY: AVX2 and FMA are present (checked just above); the kernels index only
    // the first `nb` blocks, which the caller checked are there.
    Some(unsafe {
        match ty {
            GgmlType::Q4_0 => legacy::q4_0_q8_0(w, act, nb),
            GgmlType::Q4_1 => legacy::q4_1_q8_1(w, act, nb),
            GgmlType::Q8_0 => legacy::q8_0_q8_0(w, act, nb),
            _ => return None,
        }
    })
}
