//! The summation order of ggml's x86 (AVX2) kernels for the 32-element block formats.
//!
//! llama.cpp's reference logits come from those kernels: each block's 32 integer
//! products are summed in 8 lanes of 4 consecutive elements, each lane is scaled by the
//! block's `d` and accumulated with a fused multiply-add, and the 8 lanes are reduced
//! pairwise at the end (`hsum_float_8`). Reproducing that order (not just the maths)
//! makes our logits equal llama.cpp's bit for bit on Q4_1/Q8_0 models; a plain
//! sequential sum differs by up to ~0.5 logits at positions whose activations are
//! dominated by one outlier, because tiny differences then flip activation codes.

/// Eight f32 lanes, as one `__m256` accumulator.
pub(crate) struct Lanes8([f32; 8]);

impl Lanes8 {
    pub(crate) fn new() -> Self {
        Self([0.0; 8])
    }

    /// `acc[j] = fma(d, sum(x[4j..4j+4] * y[4j..4j+4]), acc[j])` for one block of
    /// weight codes `x` and signed activation codes `y` (32 bytes).
    #[inline(always)]
    pub(crate) fn fma_block(&mut self, d: f32, x: &[i8; 32], y: &[u8]) {
        for (j, acc) in self.0.iter_mut().enumerate() {
            let mut s = 0i32;
            for k in 4 * j..4 * j + 4 {
                s += x[k] as i32 * y[k] as i8 as i32;
            }
            *acc = d.mul_add(s as f32, *acc);
        }
    }

    /// ggml's `hsum_float_8`: high half + low half, then pairwise.
    #[inline(always)]
    pub(crate) fn hsum(&self) -> f32 {
        let a = &self.0;
        let r = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
        (r[0] + r[2]) + (r[1] + r[3])
    }
}

/// Unpacks 16 bytes of nibbles the way `bytes_from_nibbles_32` does: low nibbles are
/// elements 0..16, high nibbles 16..32; `offset` is subtracted from each.
#[inline(always)]
pub(crate) fn nibbles(qs: &[u8], offset: i8) -> [i8; 32] {
    let mut out = [0i8; 32];
    for j in 0..16 {
        out[j] = (qs[j] & 0x0F) as i8 - offset;
        out[j + 16] = (qs[j] >> 4) as i8 - offset;
    }
    out
}

/// Runs a kernel built on [`Lanes8`] (or any code using `f32::mul_add` for ggml's fused
/// multiply-adds) with the CPU's fused multiply-add instruction when there is one.
/// `f32::mul_add` is otherwise a libm call per lane, several times slower; the result is
/// the same either way (a fused multiply-add is exact). The kernel must be inlined into
/// the closure (`#[inline(always)]`) for the instruction to be used.
#[inline(always)]
pub(crate) fn with_fma<R>(kernel: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "fma")]
        unsafe fn fma_enabled<R>(kernel: impl FnOnce() -> R) -> R {
            kernel()
        }
        if std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA (checked just above).
            return unsafe { fma_enabled(kernel) };
        }
    }
    kernel()
}
