//! Causal multi-head attention with grouped-query heads over an f32 KV cache, in the
//! float order of llama.cpp's graph without flash attention (`build_attn_mha`) on x86-64:
//! `kq = K·q` with `ggml_vec_dot_f32`, `soft_max_ext` (scale, then ggml's vectorised
//! exponentials), then `kqv = V·softmax` whose kernel depends on the batch size
//! ([`AttnKernel`]). See [`super::ggml_order`] for why the order matters.

use super::ggml_order::{
    fma, hsum16, reduce_dot_lanes, soft_max_exp, vec_dot_f32, with_fma, DOT_STEP, LANES,
};

/// The kernel llama.cpp's CPU backend picks for the `V · softmax(K·q)` product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnKernel {
    /// A batch of two tokens or more (prompt processing): llamafile's tinyBLAS, one
    /// 16-lane FMA accumulator per output, summed over the KV positions in order.
    Batch,
    /// One token (decoding): `ggml_vec_dot_f32`, four 16-lane accumulators.
    Single,
}

impl AttnKernel {
    /// llamafile's sgemm declines products with fewer than 2 columns ("only enable sgemm
    /// for prompt processing").
    pub fn for_batch(n_tokens: usize) -> Self {
        if n_tokens >= 2 {
            Self::Batch
        } else {
            Self::Single
        }
    }

    /// KV positions whose products share an accumulator lane: position `p` goes to lane
    /// `p % lanes()`.
    pub(super) fn lanes(self) -> usize {
        match self {
            Self::Batch => LANES,
            Self::Single => DOT_STEP,
        }
    }
}

/// Buffers reused across calls.
#[derive(Clone, Default)]
pub struct AttnScratch {
    scores: Vec<f32>,
    /// `lanes × head_dim` partial sums of the weighted values.
    acc: Vec<f32>,
}

/// Which cache positions one query sees, and the shape of its heads.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// The query's position: it sees cache positions `first..=pos`.
    pub pos: usize,
    /// The first position it sees: 0, or the start of a sliding window.
    pub first: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// What `K·q` is multiplied by before the softmax (`soft_max_ext`'s scale).
    pub scale: f32,
}

impl AttnShape {
    /// Causal attention over every earlier position, scaled by `1/sqrt(head_dim)`.
    pub fn causal(pos: usize, n_head: usize, n_head_kv: usize, head_dim: usize) -> Self {
        Self {
            pos,
            first: 0,
            n_head,
            n_head_kv,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }

    /// Only the `window` latest positions (the query's own included) are seen: llama.cpp
    /// masks key `p` when `pos - p >= window`.
    pub fn window(self, window: usize) -> Self {
        Self {
            first: (self.pos + 1).saturating_sub(window),
            ..self
        }
    }

    /// `K·q` multiplied by `scale`.
    pub fn scale(self, scale: f32) -> Self {
        Self { scale, ..self }
    }
}

/// Attention for one query token (`shape`: its position, the positions it sees, its
/// heads).
///
/// `q`: `n_head * head_dim`; `keys`/`values`: the layer's cache, `kv_dim` floats per
/// position; `out`: `n_head * head_dim`.
///
/// llama.cpp pads the KV window (to 256 positions) and masks the padding to `-inf`; those
/// slots contribute exact zeros, so only their effect on lane positions is reproduced.
/// Positions before a sliding window are masked the same way: they keep their lanes.
///
/// Built for wasm32 with `+simd128` this runs the SIMD kernels of
/// `attention_simd128.rs`, bit-identical to the scalar ones ([`attend_reference`]).
pub fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    shape: AttnShape,
    out: &mut [f32],
    scratch: &mut AttnScratch,
    kernel: AttnKernel,
) {
    attend_with(q, keys, values, shape, out, scratch, kernel, true)
}

/// [`attend`] with the scalar kernels whatever the build (same arguments): the
/// reference the SIMD kernels are tested and benchmarked against.
pub fn attend_reference(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    shape: AttnShape,
    out: &mut [f32],
    scratch: &mut AttnScratch,
    kernel: AttnKernel,
) {
    attend_with(q, keys, values, shape, out, scratch, kernel, false)
}

/// Query heads of one KV group and the cache rows they read.
pub(super) struct Head<'a> {
    /// The queries, `head_dim` floats each: one head (scalar code) or the group's
    /// heads back to back (SIMD code).
    pub(super) q: &'a [f32],
    pub(super) head_dim: usize,
    keys: &'a [f32],
    values: &'a [f32],
    kv_dim: usize,
    kv_off: usize,
    /// Positions before `first` are masked (their scores `-inf`, their weights 0).
    pub(super) first: usize,
    pub(super) scale: f32,
    pub(super) kernel: AttnKernel,
}

impl Head<'_> {
    /// The key of cache position `p` for these heads (their KV head).
    #[inline(always)]
    pub(super) fn key(&self, p: usize) -> &[f32] {
        &self.keys[p * self.kv_dim + self.kv_off..][..self.head_dim]
    }

    /// The value of cache position `p` for these heads (their KV head).
    #[inline(always)]
    pub(super) fn value(&self, p: usize) -> &[f32] {
        &self.values[p * self.kv_dim + self.kv_off..][..self.head_dim]
    }
}

#[allow(clippy::too_many_arguments)]
fn attend_with(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    shape: AttnShape,
    out: &mut [f32],
    scratch: &mut AttnScratch,
    kernel: AttnKernel,
    simd: bool,
) {
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let _ = simd; // no SIMD kernels in this build
    with_fma(
        #[inline(always)]
        || {
            let AttnShape {
                pos,
                first,
                n_head,
                n_head_kv,
                head_dim,
                scale,
            } = shape;
            let kv_dim = n_head_kv * head_dim;
            let group = n_head / n_head_kv;
            let AttnScratch { scores, acc } = scratch;
            acc.resize(kernel.lanes() * head_dim, 0.0);
            let head = |q| Head {
                q,
                head_dim,
                keys,
                values,
                kv_dim,
                kv_off: 0,
                first,
                scale,
                kernel,
            };
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            if simd {
                // A group's heads read the same cache rows: together.
                let gd = group * head_dim;
                scores.resize(group * (pos + 1), 0.0);
                for (j, (qg, og)) in q.chunks_exact(gd).zip(out.chunks_exact_mut(gd)).enumerate() {
                    let h = Head {
                        kv_off: j * head_dim,
                        ..head(qg)
                    };
                    super::attention_simd128::group(&h, scores, acc, og);
                }
                return;
            }
            scores.resize(pos + 1, 0.0);
            for h in 0..n_head {
                let head = Head {
                    kv_off: (h / group) * head_dim,
                    ..head(&q[h * head_dim..(h + 1) * head_dim])
                };
                head_scalar(
                    &head,
                    scores,
                    acc,
                    &mut out[h * head_dim..(h + 1) * head_dim],
                );
            }
        },
    )
}

/// One head in scalar code: the reference order.
#[inline(always)]
fn head_scalar(h: &Head, scores: &mut [f32], acc: &mut [f32], out: &mut [f32]) {
    let head_dim = out.len();
    let lanes = h.kernel.lanes();
    let mut max = f32::NEG_INFINITY;
    for (p, s) in scores.iter_mut().enumerate() {
        *s = if p < h.first {
            f32::NEG_INFINITY
        } else {
            vec_dot_f32(h.key(p), h.q) * h.scale
        };
        max = crate::math::max_f32(max, *s);
    }
    let inv = (1.0 / soft_max_exp(scores, max)) as f32;

    acc.fill(0.0);
    for (p, &s) in scores.iter().enumerate() {
        let w = s * inv;
        let lane = &mut acc[(p % lanes) * head_dim..][..head_dim];
        for (a, &vv) in lane.iter_mut().zip(h.value(p)) {
            *a = fma(vv, w, *a);
        }
    }
    for (d, o) in out.iter_mut().enumerate() {
        *o = match h.kernel {
            AttnKernel::Batch => hsum16(&std::array::from_fn(|l| acc[l * head_dim + d])),
            AttnKernel::Single => reduce_dot_lanes(&std::array::from_fn(|l| acc[l * head_dim + d])),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain f64 attention: the maths both kernels must agree with.
    fn reference(q: &[f32], keys: &[f32], values: &[f32], n: usize, hd: usize) -> Vec<f64> {
        let scale = 1.0 / (hd as f64).sqrt();
        let s: Vec<f64> = (0..n)
            .map(|p| {
                (0..hd)
                    .map(|i| q[i] as f64 * keys[p * hd + i] as f64)
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
        let z: f64 = e.iter().sum();
        (0..hd)
            .map(|i| (0..n).map(|p| e[p] / z * values[p * hd + i] as f64).sum())
            .collect()
    }

    #[test]
    fn both_kernels_compute_attention() {
        let (hd, n) = (64, 100);
        let gen = |k: usize| ((k * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5;
        let q: Vec<f32> = (0..hd).map(gen).collect();
        let keys: Vec<f32> = (0..n * hd).map(|k| gen(k + 3)).collect();
        let values: Vec<f32> = (0..n * hd).map(|k| gen(k + 11)).collect();
        let want = reference(&q, &keys, &values, n, hd);
        let mut scratch = AttnScratch::default();
        for kernel in [AttnKernel::Batch, AttnKernel::Single] {
            let mut out = vec![0f32; hd];
            let shape = AttnShape::causal(n - 1, 1, 1, hd);
            attend(&q, &keys, &values, shape, &mut out, &mut scratch, kernel);
            for (o, w) in out.iter().zip(&want) {
                assert!((*o as f64 - w).abs() < 1e-5, "{kernel:?}: {o} vs {w}");
            }
        }
    }

    #[test]
    fn a_window_sees_only_the_latest_positions() {
        let (hd, n, window) = (32, 40, 9);
        let gen = |k: usize| ((k * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5;
        let q: Vec<f32> = (0..hd).map(gen).collect();
        let keys: Vec<f32> = (0..n * hd).map(|k| gen(k + 3)).collect();
        let values: Vec<f32> = (0..n * hd).map(|k| gen(k + 11)).collect();
        let first = n - window;
        let want = reference(&q, &keys[first * hd..], &values[first * hd..], window, hd);
        let mut scratch = AttnScratch::default();
        for kernel in [AttnKernel::Batch, AttnKernel::Single] {
            let mut out = vec![0f32; hd];
            let shape = AttnShape::causal(n - 1, 1, 1, hd).window(window);
            assert_eq!(shape.first, first);
            attend(&q, &keys, &values, shape, &mut out, &mut scratch, kernel);
            for (o, w) in out.iter().zip(&want) {
                assert!((*o as f64 - w).abs() < 1e-5, "{kernel:?}: {o} vs {w}");
            }
        }
    }

    #[test]
    fn kernel_choice_follows_llamafile() {
        assert_eq!(AttnKernel::for_batch(1), AttnKernel::Single);
        assert_eq!(AttnKernel::for_batch(2), AttnKernel::Batch);
    }
}
