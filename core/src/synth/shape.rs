//! The tensor table of a synthetic model: the source header's table, optionally
//! reshaped (layer count, widths, head counts) for smaller test models or larger
//! layouts, with the metadata keys that describe the shape updated to match.

use std::collections::HashMap;

use super::SynthError;
use crate::gguf::{Gguf, Metadata, Value};
use crate::quant::GgmlType;

/// Shape changes relative to the source header; `None` keeps the source value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShapeOverrides {
    /// Number of transformer blocks (`{arch}.block_count`).
    pub layers: Option<u64>,
    /// Model width (`{arch}.embedding_length`).
    pub embedding_length: Option<u64>,
    /// Feed-forward width (`{arch}.feed_forward_length`).
    pub feed_forward_length: Option<u64>,
    /// Attention heads; default: the new width over the source head dimension.
    pub head_count: Option<u64>,
    /// Key/value heads; default: the source's grouping ratio kept.
    pub head_count_kv: Option<u64>,
}

/// One tensor of the synthetic file, in write order.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

/// The hyper-parameters that shape the tensors, as the header states them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub layers: u64,
    pub embd: u64,
    pub ff: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub head_dim: u64,
}

impl Dims {
    fn read(md: &Metadata, arch: &str) -> Result<Self, SynthError> {
        let key = |k: &str| format!("{arch}.{k}");
        let get = |k: &str| md.get_u64(&key(k)).map_err(SynthError::from);
        let embd = get("embedding_length")?;
        let n_head = get("attention.head_count")?;
        let n_head_kv = match md.get(&key("attention.head_count_kv")) {
            Some(_) => get("attention.head_count_kv")?,
            None => n_head,
        };
        let head_dim = match md.get(&key("attention.key_length")) {
            Some(_) => get("attention.key_length")?,
            None if n_head > 0 => embd / n_head,
            None => 0,
        };
        Ok(Self {
            layers: get("block_count")?,
            embd,
            ff: get("feed_forward_length")?,
            n_head,
            n_head_kv,
            head_dim,
        })
    }

    fn q_dim(&self) -> u64 {
        self.n_head * self.head_dim
    }

    fn kv_dim(&self) -> u64 {
        self.n_head_kv * self.head_dim
    }
}

/// The reshaped metadata and tensor table, plus the layer count (for the init scales).
pub(super) struct Reshaped {
    pub metadata: Metadata,
    pub tensors: Vec<PlannedTensor>,
    pub layers: u64,
}

pub(super) fn reshape(g: &Gguf, o: &ShapeOverrides) -> Result<Reshaped, SynthError> {
    let arch = g.architecture()?.to_string();
    let src = Dims::read(&g.metadata, &arch)?;
    let bad = |m: String| Err(SynthError::Shape(m));
    if src.layers == 0 || src.head_dim == 0 || src.n_head_kv == 0 {
        return bad(format!("the header's shape {src:?} is degenerate"));
    }
    let embd = o.embedding_length.unwrap_or(src.embd);
    let n_head = match o.head_count {
        Some(n) => n,
        None if embd == src.embd => src.n_head,
        None if embd.is_multiple_of(src.head_dim) => embd / src.head_dim,
        None => {
            return bad(format!(
                "width {embd} is not a multiple of the head dimension {}: pass the head count",
                src.head_dim
            ))
        }
    };
    let group = src.n_head / src.n_head_kv;
    let n_head_kv = match o.head_count_kv {
        Some(n) => n,
        None if n_head == src.n_head => src.n_head_kv,
        None if n_head.is_multiple_of(group) => n_head / group,
        None => {
            return bad(format!(
                "{n_head} heads cannot keep the {group}:1 key/value grouping: pass the key/value head count"
            ))
        }
    };
    let new = Dims {
        layers: o.layers.unwrap_or(src.layers),
        embd,
        ff: o.feed_forward_length.unwrap_or(src.ff),
        n_head,
        n_head_kv,
        head_dim: src.head_dim,
    };
    if new.layers == 0 || new.embd == 0 || new.ff == 0 || new.n_head == 0 || new.n_head_kv == 0 {
        return bad(format!("every dimension must be positive: {new:?}"));
    }
    if !new.n_head.is_multiple_of(new.n_head_kv) {
        return bad(format!(
            "{} heads are not a multiple of {} key/value heads",
            new.n_head, new.n_head_kv
        ));
    }
    let map = DimMap::new(&src, &new, vocab_size(&g.metadata, &arch))?;

    let mut metadata = g.metadata.clone();
    let key = |k: &str| format!("{arch}.{k}");
    let set = |md: &mut Metadata, k: &str, v: u64, old: u64| {
        // Keys stay in place and keep their integer type when the value is unchanged,
        // so that a synthetic file of the source shape has the source's header bytes.
        if v != old || md.get(&key(k)).is_none() {
            md.insert(key(k), Value::U32(v as u32));
        }
    };
    for (k, v, old) in [
        ("block_count", new.layers, src.layers),
        ("embedding_length", new.embd, src.embd),
        ("feed_forward_length", new.ff, src.ff),
        ("attention.head_count", new.n_head, src.n_head),
    ] {
        if v > u32::MAX as u64 {
            return bad(format!("{k} {v} does not fit the header's u32"));
        }
        set(&mut metadata, k, v, old);
    }
    if new.n_head_kv != src.n_head_kv || metadata.get(&key("attention.head_count_kv")).is_some() {
        set(
            &mut metadata,
            "attention.head_count_kv",
            new.n_head_kv,
            src.n_head_kv,
        );
    }

    let mut tensors = Vec::with_capacity(g.tensors.len());
    let reshape_one = |name: String, dims: &[u64], ty| PlannedTensor {
        name,
        dims: dims.iter().map(|&d| map.apply(d)).collect(),
        ty,
    };
    if new.layers == src.layers {
        for t in &g.tensors {
            tensors.push(reshape_one(t.name.clone(), &t.dims, t.ty));
        }
    } else {
        // Blocks are placed where the source's first block was; block `i` copies the
        // tensor list (and types, e.g. Q4_K_M's Q6_K layers) of the source block at
        // the same relative depth.
        let first_block = g
            .tensors
            .iter()
            .position(|t| block_of(&t.name).is_some())
            .ok_or_else(|| SynthError::Shape("the header has no blk.N tensors".into()))?;
        let (before, from_first) = g.tensors.split_at(first_block);
        for t in before {
            tensors.push(reshape_one(t.name.clone(), &t.dims, t.ty));
        }
        for i in 0..new.layers {
            let template = i * src.layers / new.layers;
            for t in from_first {
                if let Some((b, rest)) = block_of(&t.name) {
                    if b == template {
                        tensors.push(reshape_one(format!("blk.{i}.{rest}"), &t.dims, t.ty));
                    }
                }
            }
        }
        for t in from_first.iter().filter(|t| block_of(&t.name).is_none()) {
            tensors.push(reshape_one(t.name.clone(), &t.dims, t.ty));
        }
    }
    Ok(Reshaped {
        metadata,
        tensors,
        layers: new.layers,
    })
}

/// `blk.N.rest` → (N, rest).
fn block_of(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (n, rest) = rest.split_once('.')?;
    Some((n.parse().ok()?, rest))
}

fn vocab_size(md: &Metadata, arch: &str) -> Option<u64> {
    md.get(&format!("{arch}.vocab_size"))
        .and_then(Value::as_u64)
        .or_else(|| {
            md.get("tokenizer.ggml.tokens")
                .and_then(Value::as_array)
                .map(|a| a.len() as u64)
        })
}

/// Tensor dimensions are rewritten by value: every dimension equal to a source width
/// (model, query, key/value, feed-forward) becomes the new one. That covers every
/// tensor of the llama family without a per-name table, provided equal source values
/// map to equal new ones (checked), and the vocabulary is never renamed.
struct DimMap(HashMap<u64, u64>);

impl DimMap {
    fn new(src: &Dims, new: &Dims, vocab: Option<u64>) -> Result<Self, SynthError> {
        let mut map = HashMap::new();
        let pairs = [
            ("width", src.embd, new.embd),
            ("query width", src.q_dim(), new.q_dim()),
            ("key/value width", src.kv_dim(), new.kv_dim()),
            ("feed-forward width", src.ff, new.ff),
        ];
        let vocab_pair = vocab.map(|v| ("vocabulary", v, v));
        for (what, from, to) in pairs.into_iter().chain(vocab_pair) {
            match map.insert(from, to) {
                Some(prev) if prev != to => {
                    return Err(SynthError::Shape(format!(
                        "the source's {what} {from} equals another dimension of the header, \
                         which would become {prev}, not {to}: choose consistent sizes"
                    )))
                }
                _ => {}
            }
        }
        Ok(Self(map))
    }

    fn apply(&self, d: u64) -> u64 {
        self.0.get(&d).copied().unwrap_or(d)
    }
}
