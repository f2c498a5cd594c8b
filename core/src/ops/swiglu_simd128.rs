//! WebAssembly SIMD128 form of `ggml_order::swiglu_reference`, four lanes at a time:
//! each lane goes through the scalar code's operations (`0 - x`, the same `expf` as
//! [`expf4`], `1 + e`, `x / ..`, `* up`) in the same order, so the results are
//! bit-identical (`cargo test -p wasm-chord-core --target wasm32-wasip2 --test
//! attention_simd` compares them).

use core::arch::wasm32::*;

use super::attention_simd128::expf4;

/// `gate[i] = silu(gate[i]) * up[i]`.
pub(super) fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_feature = "relaxed-simd")]
    if crate::quant::simd128::madd_is_fused() {
        return swiglu_with::<true>(gate, up);
    }
    swiglu_with::<false>(gate, up)
}

#[inline(always)]
fn swiglu_with<const FUSED: bool>(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let (gate, up) = (&mut gate[..n], &up[..n]);
    let mut g4 = gate.chunks_exact_mut(4);
    for (g, u) in (&mut g4).zip(up.chunks_exact(4)) {
        // SAFETY: `g` and `u` are 4 floats each.
        unsafe {
            let x = v128_load(g.as_ptr() as *const v128);
            let e = expf4::<FUSED>(f32x4_sub(f32x4_splat(0.0), x));
            let silu = f32x4_div(x, f32x4_add(f32x4_splat(1.0), e));
            let u = v128_load(u.as_ptr() as *const v128);
            v128_store(g.as_mut_ptr() as *mut v128, f32x4_mul(silu, u));
        }
    }
    let done = n - n % 4;
    super::ggml_order::swiglu_reference(g4.into_remainder(), &up[done..]);
}
