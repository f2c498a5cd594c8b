//! Quantized block formats: one module per format, each with a scalar reference
//! quantizer/dequantizer and a fused dequantize-and-dot kernel.
//!
//! Everything here reproduces ggml bit for bit (checked against vectors written by
//! ggml itself, `fixtures/quant/blocks.jsonl`):
//!
//! * [`quantize_row`] writes what `ggml_quantize_chunk` writes without an importance
//!   matrix (what `llama-quantize` puts in model files): the `quantize_row_*_ref`
//!   functions of `ggml-quants.c`.
//! * [`quantize_activations`] (and [`QuantizedActivations`]) write what ggml's CPU
//!   backend writes when it quantizes the activation row of a matrix product (the
//!   `from_float` of the `vec_dot_type`). For Q8_0 and Q8_1 the x86 build of ggml
//!   uses AVX code whose rounding differs from the reference one (ties to even,
//!   `127/max` as multiplier); we reproduce that, so that our products see the same
//!   activation codes as llama.cpp on x86-64.
//! * [`dequantize_row`] is `dequantize_row_*`.
//! * [`vec_dot`] is the dot product of a weight row with an activation row quantized
//!   in [`vec_dot_type`]; it never expands the weights to `f32` buffers.
//!
//! Blocks are read from and written to raw little-endian byte slices of any alignment.
//! Every public function checks its lengths up front and returns a [`QuantError`]
//! instead of panicking; the per-format kernels assume checked lengths.

mod float;
mod ggml_type;
mod k_quant_helpers;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod q8_1;
mod q8_k;
pub mod simd128;
#[cfg(target_arch = "x86_64")]
mod x86;
pub(crate) mod x86_order;

pub use float::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use ggml_type::{GgmlType, QK_K};

/// Errors of the quantization API. Lengths are checked before any work is done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The element count is not a whole number of blocks of the type.
    #[error("{ty}: {n} elements is not a multiple of the block size {block_size}")]
    NotBlockMultiple {
        ty: GgmlType,
        n: usize,
        block_size: usize,
    },
    /// A byte buffer does not hold exactly the blocks for the element count.
    #[error("{ty}: {n} elements take {expected} bytes, but the buffer has {actual}")]
    ByteLength {
        ty: GgmlType,
        n: usize,
        expected: usize,
        actual: usize,
    },
    /// Two lengths that must agree do not.
    #[error("length mismatch ({what}): expected {expected}, got {actual}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// The operation is not defined for this type (or pair of types).
    #[error("{op} is not supported for {ty}")]
    Unsupported { ty: GgmlType, op: &'static str },
}

/// Bytes of a row of `n` elements of `ty`, or the error saying why there is none.
pub fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, QuantError> {
    if !n.is_multiple_of(ty.block_size()) {
        return Err(QuantError::NotBlockMultiple {
            ty,
            n,
            block_size: ty.block_size(),
        });
    }
    // `n / block_size * type_size` cannot overflow for an `n` that indexes memory
    // (type_size <= 292 < 256 * 4, block sizes >= 32 for the multi-byte blocks),
    // but keep it checked anyway.
    (n / ty.block_size())
        .checked_mul(ty.type_size())
        .ok_or(QuantError::LengthMismatch {
            what: "row size overflows usize",
            expected: usize::MAX,
            actual: n,
        })
}

fn check_bytes(ty: GgmlType, n: usize, actual: usize) -> Result<(), QuantError> {
    let expected = row_bytes(ty, n)?;
    if expected != actual {
        return Err(QuantError::ByteLength {
            ty,
            n,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Dequantizes the blocks in `src` into `dst` (`dst.len()` elements; `src` must be
/// exactly the row size of `dst.len()` elements), as ggml's `dequantize_row_*`.
///
/// Q8_K (an activation format) has no dequantizer among ggml's type traits; this one is
/// ggml's `dequantize_row_q8_K` (`d * q`). Q8_1 dequantizes as `d * q` (its `s` field
/// is redundant).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_bytes(ty, dst.len(), src.len())?;
    match ty {
        GgmlType::F32 => float::dequantize_f32(src, dst),
        GgmlType::F16 => float::dequantize_f16(src, dst),
        GgmlType::BF16 => float::dequantize_bf16(src, dst),
        GgmlType::Q4_0 => q4_0::dequantize(src, dst),
        GgmlType::Q4_1 => q4_1::dequantize(src, dst),
        GgmlType::Q5_0 => q5_0::dequantize(src, dst),
        GgmlType::Q5_1 => q5_1::dequantize(src, dst),
        GgmlType::Q8_0 => q8_0::dequantize(src, dst),
        GgmlType::Q8_1 => q8_1::dequantize(src, dst),
        GgmlType::Q2K => q2_k::dequantize(src, dst),
        GgmlType::Q3K => q3_k::dequantize(src, dst),
        GgmlType::Q4K => q4_k::dequantize(src, dst),
        GgmlType::Q5K => q5_k::dequantize(src, dst),
        GgmlType::Q6K => q6_k::dequantize(src, dst),
        GgmlType::Q8K => q8_k::dequantize(src, dst),
    }
    Ok(())
}

/// Quantizes `src` into `dst` (exactly the row size of `src.len()` elements) the way
/// `ggml_quantize_chunk` does without an importance matrix, i.e. with ggml's reference
/// quantizers `quantize_row_*_ref` (what `llama-quantize` writes into model files).
///
/// For activations that feed [`vec_dot`], use [`quantize_activations`]: for Q8_0 and
/// Q8_1 ggml's CPU backend rounds differently.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_bytes(ty, src.len(), dst.len())?;
    match ty {
        GgmlType::Q8_0 => q8_0::quantize_ref(src, dst),
        GgmlType::Q8_1 => q8_1::quantize_ref(src, dst),
        _ => quantize_common(ty, src, dst),
    }
    Ok(())
}

/// Quantizes an activation row into `dst` (exactly the row size of `src.len()`
/// elements) the way ggml's CPU backend does before a matrix product (`from_float` of
/// the type traits, x86-64 build): identical to [`quantize_row`] except for Q8_0 and
/// Q8_1, which use the rounding of ggml's AVX `quantize_row_q8_0`/`quantize_row_q8_1`
/// (multiplier `127/amax`, round half to even).
pub fn quantize_activations(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_bytes(ty, src.len(), dst.len())?;
    match ty {
        GgmlType::Q8_0 => q8_0::quantize_act(src, dst),
        GgmlType::Q8_1 => q8_1::quantize_act(src, dst),
        _ => quantize_common(ty, src, dst),
    }
    Ok(())
}

/// The formats whose weight and activation quantizers are the same. Lengths checked.
fn quantize_common(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    match ty {
        GgmlType::F32 => float::quantize_f32(src, dst),
        GgmlType::F16 => float::quantize_f16(src, dst),
        GgmlType::BF16 => float::quantize_bf16(src, dst),
        GgmlType::Q4_0 => q4_0::quantize(src, dst),
        GgmlType::Q4_1 => q4_1::quantize(src, dst),
        GgmlType::Q5_0 => q5_0::quantize(src, dst),
        GgmlType::Q5_1 => q5_1::quantize(src, dst),
        GgmlType::Q8_0 => q8_0::quantize_ref(src, dst),
        GgmlType::Q8_1 => q8_1::quantize_ref(src, dst),
        GgmlType::Q2K => q2_k::quantize(src, dst),
        GgmlType::Q3K => q3_k::quantize(src, dst),
        GgmlType::Q4K => q4_k::quantize(src, dst),
        GgmlType::Q5K => q5_k::quantize(src, dst),
        GgmlType::Q6K => q6_k::quantize(src, dst),
        GgmlType::Q8K => q8_k::quantize(src, dst),
    }
}

/// The format the activation row must be quantized into for [`vec_dot`] with a weight
/// row of type `ty` (ggml's `vec_dot_type`).
pub fn vec_dot_type(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::F32 => GgmlType::F32,
        GgmlType::F16 => GgmlType::F16,
        GgmlType::BF16 => GgmlType::BF16,
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => GgmlType::Q8_1,
        GgmlType::Q2K
        | GgmlType::Q3K
        | GgmlType::Q4K
        | GgmlType::Q5K
        | GgmlType::Q6K
        | GgmlType::Q8K => GgmlType::Q8K,
    }
}

/// Dot product of the weight row `w` (type `ty`, `n` elements) with the activation row
/// `act` (`n` elements quantized in [`vec_dot_type`]`(ty)`, e.g. by
/// [`quantize_activations`]). Summation order differs from ggml's SIMD kernels, so the
/// result agrees with ggml's to rounding, not bit for bit.
///
/// Q8_1·Q8_1 and Q8_K·Q8_K (activation formats used as weights, which ggml cannot
/// multiply) are provided for completeness.
pub fn vec_dot(ty: GgmlType, w: &[u8], act: &[u8], n: usize) -> Result<f32, QuantError> {
    check_bytes(ty, n, w.len())?;
    check_bytes(vec_dot_type(ty), n, act.len())?;
    let nb = n / ty.block_size();
    Ok(vec_dot_unchecked_len(ty, w, act, nb))
}

/// Dispatch to the kernels once lengths are known to be right (`nb` blocks of `ty` in
/// `w`, the matching activation blocks in `act`): the wasm SIMD128 (or relaxed-SIMD)
/// kernels when built with `+simd128` for wasm32, the AVX2 ones on x86-64 CPUs that
/// have it (for the formats they cover), the scalar reference ones otherwise (see
/// [`simd128`]).
#[inline]
pub(crate) fn vec_dot_unchecked_len(ty: GgmlType, w: &[u8], act: &[u8], nb: usize) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd128::simd(ty, w, act, nb)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        #[cfg(target_arch = "x86_64")]
        if let Some(d) = x86::dot(ty, w, act, nb) {
            return d;
        }
        simd128::scalar(ty, w, act, nb)
    }
}

/// An activation row quantized once (in the format of [`quantize_activations`]) and
/// reused for the dot products with every row of a weight matrix.
///
/// ```
/// use chord_core::quant::{quantize_row, row_bytes, GgmlType, QuantizedActivations};
/// let x = vec![0.5f32; 256];
/// let mut w = vec![0u8; row_bytes(GgmlType::Q4K, 256).unwrap()];
/// quantize_row(GgmlType::Q4K, &x, &mut w).unwrap();
/// let mut act = QuantizedActivations::for_weights(GgmlType::Q4K, &x).unwrap();
/// let d = act.dot(GgmlType::Q4K, &w).unwrap();
/// assert!((d - 64.0).abs() < 0.5);
/// act.requantize(&vec![1.0f32; 256]).unwrap(); // reuses the buffer
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedActivations {
    ty: GgmlType,
    n: usize,
    bytes: Vec<u8>,
}

impl QuantizedActivations {
    /// Quantizes `src` into the activation format `ty`.
    pub fn new(ty: GgmlType, src: &[f32]) -> Result<Self, QuantError> {
        let mut a = Self::empty(ty);
        a.requantize(src)?;
        Ok(a)
    }

    /// Quantizes `src` into the format the dot products with `weight_ty` rows need.
    pub fn for_weights(weight_ty: GgmlType, src: &[f32]) -> Result<Self, QuantError> {
        Self::new(vec_dot_type(weight_ty), src)
    }

    /// No elements yet, in format `ty`; fill with [`Self::requantize`].
    pub fn empty(ty: GgmlType) -> Self {
        Self {
            ty,
            n: 0,
            bytes: Vec::new(),
        }
    }

    /// Quantizes `src` (any length that is a whole number of blocks) in place of the
    /// current contents, keeping the format and reusing the allocation.
    pub fn requantize(&mut self, src: &[f32]) -> Result<(), QuantError> {
        let size = row_bytes(self.ty, src.len())?;
        self.bytes.resize(size, 0);
        quantize_activations(self.ty, src, &mut self.bytes)?;
        self.n = src.len();
        Ok(())
    }

    /// Like [`Self::requantize`], switching to format `ty` first.
    pub fn requantize_as(&mut self, ty: GgmlType, src: &[f32]) -> Result<(), QuantError> {
        // Validate before changing anything, so an error leaves `self` as it was.
        row_bytes(ty, src.len())?;
        self.ty = ty;
        self.requantize(src)
    }

    /// The activation format.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The quantized blocks.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Dot product with one weight row of type `weight_ty` and [`Self::len`] elements.
    /// The activation format must be `vec_dot_type(weight_ty)`.
    pub fn dot(&self, weight_ty: GgmlType, w: &[u8]) -> Result<f32, QuantError> {
        let want = vec_dot_type(weight_ty);
        if want != self.ty {
            return Err(QuantError::Unsupported {
                ty: weight_ty,
                op: match self.ty {
                    GgmlType::F32 => "dot with f32 activations",
                    GgmlType::F16 => "dot with f16 activations",
                    GgmlType::BF16 => "dot with bf16 activations",
                    GgmlType::Q8_0 => "dot with q8_0 activations",
                    GgmlType::Q8_1 => "dot with q8_1 activations",
                    GgmlType::Q8K => "dot with q8_K activations",
                    _ => "dot with these activations",
                },
            });
        }
        vec_dot(weight_ty, w, &self.bytes, self.n)
    }

    /// Dequantizes the activations (for tests and debugging).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.n];
        // Lengths hold by construction.
        let _ = dequantize_row(self.ty, &self.bytes, &mut out);
        out
    }
}

/// Little-endian field readers shared by the format modules. Callers index inside
/// blocks whose length is checked, so the slicing cannot fail.
#[inline(always)]
pub(crate) fn rd_f16(b: &[u8], off: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

#[inline(always)]
pub(crate) fn wr_f16(b: &mut [u8], off: usize, x: f32) {
    b[off..off + 2].copy_from_slice(&f32_to_f16(x).to_le_bytes());
}

/// Round-trips `x` through f16, as `GGML_FP16_TO_FP32(GGML_FP32_TO_FP16(x))`.
#[inline(always)]
pub(crate) fn round_f16(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}
