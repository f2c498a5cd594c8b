/// Keys and values of every past position, per layer, in f32 (as llama.cpp with an F32
/// cache). A layer's buffers take their full `n_ctx` capacity at the first push (the
/// session is sized for prompt + max tokens), so they are allocated once: growing by
/// doubling would leave freed smaller buffers behind in a wasm memory 0 that never
/// shrinks, up to ~1.9x the cache.
#[derive(Clone)]
pub struct KvCache {
    pub(crate) keys: Vec<Vec<f32>>,
    pub(crate) values: Vec<Vec<f32>>,
    kv_dim: usize,
    n_ctx: usize,
    len: usize,
}

impl KvCache {
    pub fn new(n_layer: usize, kv_dim: usize, n_ctx: usize) -> Self {
        Self {
            keys: vec![Vec::new(); n_layer],
            values: vec![Vec::new(); n_layer],
            kv_dim,
            n_ctx,
            len: 0,
        }
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.n_ctx
    }

    /// Appends `n` positions of keys and values for `layer`.
    pub(crate) fn push(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let full = self.n_ctx * self.kv_dim;
        for buf in [&mut self.keys[layer], &mut self.values[layer]] {
            // A context too large to reserve (max tokens far beyond what the request
            // will use) falls back to growing as needed.
            if buf.capacity() < full {
                let _ = buf.try_reserve_exact(full - buf.len());
            }
        }
        self.keys[layer].extend_from_slice(k);
        self.values[layer].extend_from_slice(v);
    }

    /// Marks `n` more positions as stored (after every layer pushed them).
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.keys.iter().all(|k| k.len() == self.len * self.kv_dim));
    }

    /// Drops everything after the first `len` positions (e.g. to reuse a prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            for k in self.keys.iter_mut().chain(self.values.iter_mut()) {
                k.truncate(len * self.kv_dim);
            }
            self.len = len;
        }
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        2 * self.keys.iter().map(Vec::len).sum::<usize>() * 4
    }
}
