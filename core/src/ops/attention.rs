//! Causal multi-head attention with grouped-query heads over an f32 KV cache.

/// Attention for one query token at position `pos` (it sees cache positions `0..=pos`).
///
/// `q`: `n_head * head_dim`; `keys`/`values`: the layer's cache, `kv_dim` floats per
/// position; `out`: `n_head * head_dim`; `scores`: scratch of at least `pos + 1`.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    pos: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let kv_dim = n_head_kv * head_dim;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (head_dim as f32).sqrt();
    scores.resize(pos + 1, 0.0);
    for h in 0..n_head {
        let qh = &q[h * head_dim..(h + 1) * head_dim];
        let kv_off = (h / group) * head_dim;
        let mut max = f32::NEG_INFINITY;
        for (p, s) in scores.iter_mut().enumerate() {
            let k = &keys[p * kv_dim + kv_off..p * kv_dim + kv_off + head_dim];
            let dot: f32 = qh.iter().zip(k).map(|(a, b)| a * b).sum();
            *s = dot * scale;
            max = max.max(*s);
        }
        // ggml's softmax: exponentials in f32, their sum in f64.
        let mut sum = 0.0f64;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s as f64;
        }
        let inv = (1.0 / sum) as f32;
        let oh = &mut out[h * head_dim..(h + 1) * head_dim];
        oh.fill(0.0);
        for (p, &s) in scores.iter().enumerate() {
            let w = s * inv;
            let v = &values[p * kv_dim + kv_off..p * kv_dim + kv_off + head_dim];
            for (o, &vv) in oh.iter_mut().zip(v) {
                *o += w * vv;
            }
        }
    }
}
