//! WebAssembly SIMD128 (and relaxed-SIMD) kernels for the fused dequantize-and-dot
//! products, selected at build time.
//!
//! * Built for `wasm32` with `-C target-feature=+simd128`, [`vec_dot`](super::vec_dot)
//!   runs the kernels of this module; natively on x86-64 the AVX2 kernels of
//!   `quant/x86/` run where the CPU and the format allow ([`kernels_for`]); anywhere
//!   else the scalar kernels of the format modules run. The scalar kernels stay the reference: [`vec_dot_reference`] runs
//!   them whatever the build, for tests and benchmarks.
//! * With `+simd128,+relaxed-simd` the products of unsigned weight codes with signed
//!   activation bytes use the relaxed dot (`i16x8`/`i32x4.relaxed_dot_i8x16_i7x16`).
//!   Its 7-bit operand always holds the weight codes (Q4 nibbles, Q6_K codes 0..63,
//!   ...), never activations, so the result is the same on every engine; offsets such
//!   as Q4_0's `- 8` are applied through activation sums (Q8_K's `bsums`, or sums
//!   computed for Q8_0). Without relaxed-SIMD, 16-bit dots of even and odd bytes do
//!   the same work in more instructions.
//!
//! Every quantized kernel computes the same exact integer sums as its scalar reference
//! and then the same `f32` operations in the same order, so its results are
//! **bit-identical** to the scalar ones (the tests check this):
//! * Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 follow the reference's ggml-x86 order (eight lanes
//!   of 4-element integer sums, each accumulated by a fused multiply-add): with
//!   relaxed-SIMD the fused multiply-add is `f32x4.relaxed_madd` when the engine fuses
//!   it (probed once; Wasmtime does on x86-64 with FMA and on aarch64), otherwise an
//!   exact emulation through `f64` (correct but several times slower).
//! * The K-quants sum each super-block exactly in integers (the group scales applied
//!   by `i32x4.dot_i16x8_s`), then apply the reference's `f32` formula.
//! * The F32/F16/BF16 dots accumulate in `f32` lanes (the scalar ones in `f64`), so
//!   those agree to rounding only.
//!
//! [`vec_dot_rows`] is the multi-row form for matrix products: one activation row
//! against consecutive weight rows (two at a time for most formats), sharing the
//! activation loads and the activation-side scale conversions between rows.

use super::{check_bytes, vec_dot_type, GgmlType, QuantError};
use super::{float, q2_k, q3_k, q4_0, q4_1, q4_k, q5_0, q5_1, q5_k, q6_k, q8_0, q8_1, q8_k};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod floats;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod kquants;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod legacy;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod prim;

#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    target_feature = "relaxed-simd"
))]
pub(crate) use legacy::madd_is_fused;

/// Which kernels [`vec_dot`](super::vec_dot) runs in this build: `"relaxed-simd"`,
/// `"simd128"` or `"scalar"`.
pub const KERNELS: &str = if cfg!(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    target_feature = "relaxed-simd"
)) {
    "relaxed-simd"
} else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
    "simd128"
} else {
    "scalar"
};

/// Which kernels [`vec_dot`](super::vec_dot) runs for weights of type `ty` in this
/// build on this CPU: [`KERNELS`] in wasm, `"avx2"` natively on x86-64 CPUs with
/// AVX2 and FMA for the formats that have an AVX2 kernel, else `"scalar"`.
pub fn kernels_for(ty: GgmlType) -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if super::x86::supports(ty) && super::x86::available() {
        return "avx2";
    }
    let _ = ty;
    KERNELS
}

/// The scalar reference kernel of [`vec_dot`](super::vec_dot), whatever the build
/// (same arguments and checks).
pub fn vec_dot_reference(ty: GgmlType, w: &[u8], act: &[u8], n: usize) -> Result<f32, QuantError> {
    check_bytes(ty, n, w.len())?;
    check_bytes(vec_dot_type(ty), n, act.len())?;
    Ok(scalar(ty, w, act, n / ty.block_size()))
}

/// The scalar kernels, lengths checked (`nb` blocks).
pub(super) fn scalar(ty: GgmlType, w: &[u8], act: &[u8], nb: usize) -> f32 {
    match ty {
        GgmlType::F32 => float::vec_dot_f32(w, act, nb),
        GgmlType::F16 => float::vec_dot_f16(w, act, nb),
        GgmlType::BF16 => float::vec_dot_bf16(w, act, nb),
        GgmlType::Q4_0 => q4_0::vec_dot_scalar(w, act, nb),
        GgmlType::Q4_1 => q4_1::vec_dot_scalar(w, act, nb),
        GgmlType::Q5_0 => q5_0::vec_dot_scalar(w, act, nb),
        GgmlType::Q5_1 => q5_1::vec_dot_scalar(w, act, nb),
        GgmlType::Q8_0 => q8_0::vec_dot_scalar(w, act, nb),
        GgmlType::Q8_1 => q8_1::vec_dot_scalar(w, act, nb),
        GgmlType::Q2K => q2_k::vec_dot_scalar(w, act, nb),
        GgmlType::Q3K => q3_k::vec_dot_scalar(w, act, nb),
        GgmlType::Q4K => q4_k::vec_dot_scalar(w, act, nb),
        GgmlType::Q5K => q5_k::vec_dot_scalar(w, act, nb),
        GgmlType::Q6K => q6_k::vec_dot_scalar(w, act, nb),
        GgmlType::Q8K => q8_k::vec_dot_scalar(w, act, nb),
    }
}

/// The SIMD128 kernels, lengths checked (`nb` blocks).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
pub(super) fn simd(ty: GgmlType, w: &[u8], act: &[u8], nb: usize) -> f32 {
    match ty {
        GgmlType::F32 => floats::f32_f32(w, act, nb),
        GgmlType::F16 => floats::f16_f16(w, act, nb),
        GgmlType::BF16 => floats::bf16_bf16(w, act, nb),
        GgmlType::Q4_0 => legacy::q4_0_q8_0(w, act, nb),
        GgmlType::Q4_1 => legacy::q4_1_q8_1(w, act, nb),
        GgmlType::Q5_0 => legacy::q5_0_q8_0(w, act, nb),
        GgmlType::Q5_1 => legacy::q5_1_q8_1(w, act, nb),
        GgmlType::Q8_0 => legacy::q8_0_q8_0(w, act, nb),
        GgmlType::Q8_1 => legacy::q8_1_q8_1(w, act, nb),
        GgmlType::Q2K => kquants::q2_k_q8_k(w, act, nb),
        GgmlType::Q3K => kquants::q3_k_q8_k(w, act, nb),
        GgmlType::Q4K => kquants::q4_k_q8_k(w, act, nb),
        GgmlType::Q5K => kquants::q5_k_q8_k(w, act, nb),
        GgmlType::Q6K => kquants::q6_k_q8_k(w, act, nb),
        GgmlType::Q8K => kquants::q8_k_q8_k(w, act, nb),
    }
}

/// Dots the activation row `act` (`n` elements in [`vec_dot_type`]`(ty)`) with each of
/// the `out.len()` weight rows of `n` elements of type `ty` stored back to back in `w`:
/// `out[r] = vec_dot(ty, w[r * row_bytes..][..row_bytes], act, n)`, bit for bit.
pub fn vec_dot_rows(
    ty: GgmlType,
    w: &[u8],
    act: &[u8],
    n: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_bytes(vec_dot_type(ty), n, act.len())?;
    let row = super::row_bytes(ty, n)?;
    let total = row
        .checked_mul(out.len())
        .ok_or(QuantError::LengthMismatch {
            what: "rows overflow usize",
            expected: usize::MAX,
            actual: out.len(),
        })?;
    if w.len() != total {
        return Err(QuantError::LengthMismatch {
            what: "weight bytes for the rows",
            expected: total,
            actual: w.len(),
        });
    }
    let nb = n / ty.block_size();
    if row == 0 {
        out.fill(0.0);
        return Ok(());
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let done = multi_rows(ty, w, act, nb, row, out);
        for (o, wr) in out[done..]
            .iter_mut()
            .zip(w[done * row..].chunks_exact(row))
        {
            *o = simd(ty, wr, act, nb);
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (o, wr) in out.iter_mut().zip(w.chunks_exact(row)) {
        *o = super::vec_dot_unchecked_len(ty, wr, act, nb);
    }
    Ok(())
}

/// Dots each of the `acts.len() / act_row` activation rows (`n` elements in
/// [`vec_dot_type`]`(ty)`, back to back in `acts`) with each of the `rows` weight rows
/// of `w`: `out[t * out_stride + r] = vec_dot(ty, row r, activation row t, n)`, bit for
/// bit. This is the prefill form of [`vec_dot_rows`]: in wasm SIMD builds the
/// 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) take two activation rows
/// at a time against two weight rows, and the K-quants (Q2_K..Q6_K) four activation
/// rows against one weight row, unpacking each weight block once for them.
pub fn vec_dot_tokens(
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    acts: &[u8],
    n: usize,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), QuantError> {
    let act_row = super::row_bytes(vec_dot_type(ty), n)?;
    let row = super::row_bytes(ty, n)?;
    let mismatch = |what, expected, actual| QuantError::LengthMismatch {
        what,
        expected,
        actual,
    };
    if act_row == 0 || !acts.len().is_multiple_of(act_row) {
        return Err(mismatch(
            "activation bytes (whole rows)",
            act_row,
            acts.len(),
        ));
    }
    let n_tokens = acts.len() / act_row;
    if w.len() != row * rows {
        return Err(mismatch("weight bytes for the rows", row * rows, w.len()));
    }
    if n_tokens > 0 && (out_stride < rows || out.len() < (n_tokens - 1) * out_stride + rows) {
        return Err(mismatch(
            "outputs for the rows and tokens",
            (n_tokens - 1) * out_stride.max(rows) + rows,
            out.len(),
        ));
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let done = {
        let job = TokenTiles {
            w,
            row_bytes: row,
            rows,
            acts,
            act_row,
            nb: n / ty.block_size(),
            out_stride,
        };
        match ty {
            GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
                kquants::token_tiles(ty, &job, out)
            }
            _ => legacy::token_tiles(ty, &job, out),
        }
    };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
    for (t, at) in acts.chunks_exact(act_row).enumerate().skip(done) {
        vec_dot_rows(ty, w, at, n, &mut out[t * out_stride..][..rows])?;
    }
    Ok(())
}

/// The operands of [`vec_dot_tokens`] for the formats' tile kernels: `rows` weight
/// rows `row_bytes` apart in `w` and activation rows `act_row` bytes apart in `acts`,
/// `nb` blocks each; results at `out[t * out_stride + r]`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
struct TokenTiles<'a> {
    w: &'a [u8],
    row_bytes: usize,
    rows: usize,
    acts: &'a [u8],
    act_row: usize,
    nb: usize,
    out_stride: usize,
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl TokenTiles<'_> {
    /// How many whole tiles of `tt` activation rows there are.
    fn tiles(&self, tt: usize) -> usize {
        self.acts.len().checked_div(self.act_row).unwrap_or(0) / tt
    }

    /// Activation rows `t0..t0 + T`.
    fn tokens<const T: usize>(&self, t0: usize) -> [&[u8]; T] {
        core::array::from_fn(|t| &self.acts[(t0 + t) * self.act_row..][..self.act_row])
    }

    /// Weight row `r` and the ones after it.
    fn weights_from(&self, r: usize) -> &[u8] {
        &self.w[r * self.row_bytes..]
    }

    /// Writes `o[t]` (results of `R` weight rows from `r`) for activation rows
    /// `t0..t0 + T`.
    fn store<const R: usize, const T: usize>(
        &self,
        out: &mut [f32],
        t0: usize,
        r: usize,
        o: &[[f32; R]; T],
    ) {
        for (t, ot) in o.iter().enumerate() {
            out[(t0 + t) * self.out_stride + r..][..R].copy_from_slice(ot);
        }
    }
}

/// The formats with a multi-row kernel handle as many rows as they can (a multiple of
/// their row count); returns how many rows of `out` were written.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn multi_rows(ty: GgmlType, w: &[u8], act: &[u8], nb: usize, row: usize, out: &mut [f32]) -> usize {
    match ty {
        GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
            kquants::rows(ty, w, row, act, nb, out)
        }
        _ => legacy::rows(ty, w, row, act, nb, out),
    }
}
