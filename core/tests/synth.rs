//! `chord synth` library: a tiny qwen2 synthesized from the real 7B header is
//! deterministic, keeps the header's tensor table, and runs with sane logits; the
//! full-size plan reproduces the header byte for byte.

mod common;

use std::io::{self, Write};

use chord_core::gguf::{FileSource, Gguf};
use chord_core::model::{DecoderModel, Logits};
use chord_core::synth::{ShapeOverrides, Synth};
use chord_core::weights::SliceWeights;

fn header() -> Gguf {
    let src = FileSource::open(common::model("qwen2-7b-header.gguf")).unwrap();
    Gguf::read_header(&src).unwrap()
}

/// Two blocks of width 256 (two heads of 128, one key/value head): ~55 MB, mostly
/// the 152064-token embedding and output matrices.
fn tiny() -> ShapeOverrides {
    ShapeOverrides {
        layers: Some(2),
        embedding_length: Some(256),
        feed_forward_length: Some(512),
        head_count: None,
        head_count_kv: Some(1),
    }
}

fn synthesize(g: &Gguf, shape: &ShapeOverrides, seed: u64, threads: usize) -> Vec<u8> {
    let synth = Synth::new(g, shape, seed).unwrap();
    let mut out = Vec::new();
    synth.write(&mut out, threads, |_| {}).unwrap();
    out
}

#[test]
fn tiny_qwen2_is_deterministic_for_a_seed() {
    let g = header();
    let a = synthesize(&g, &tiny(), 1, 1);
    let b = synthesize(&g, &tiny(), 1, 3);
    assert!(a == b, "same seed, different thread counts: files differ");
    let c = synthesize(&g, &tiny(), 2, 2);
    assert_eq!(a.len(), c.len());
    assert!(a != c, "different seeds gave the same file");
}

#[test]
fn tiny_qwen2_keeps_the_header_tensor_table_reshaped() {
    let g = header();
    let bytes = synthesize(&g, &tiny(), 3, 2);
    let out = Gguf::read(bytes.as_slice()).unwrap();
    assert_eq!(out.metadata.get_u32("qwen2.block_count").unwrap(), 2);
    assert_eq!(out.metadata.get_u32("qwen2.embedding_length").unwrap(), 256);
    assert_eq!(
        out.metadata.get_u32("qwen2.feed_forward_length").unwrap(),
        512
    );
    assert_eq!(
        out.metadata.get_u32("qwen2.attention.head_count").unwrap(),
        2
    );
    assert_eq!(
        out.metadata
            .get_u32("qwen2.attention.head_count_kv")
            .unwrap(),
        1
    );
    // Same tokenizer and every other key unchanged.
    for (k, v) in g.metadata.iter() {
        if !k.starts_with("qwen2.") {
            assert_eq!(out.metadata.get(k), Some(v), "metadata key {k}");
        }
    }
    // The tensors of blocks 0..2, plus the non-block ones, in the header's order,
    // with the header's types.
    let expected: Vec<_> = g
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("blk.0.") || !t.name.starts_with("blk."))
        .collect();
    let names: Vec<_> = out.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(out.tensors.len(), g.tensors.len() - 26 * 12, "{names:?}");
    for t in &out.tensors {
        let src_name = match t.name.strip_prefix("blk.1.") {
            // Block 1 of 2 copies the source block at the same depth (14 of 28).
            Some(rest) => format!("blk.14.{rest}"),
            None => t.name.clone(),
        };
        let s = g.tensor(&src_name).unwrap();
        assert_eq!(t.ty, s.ty, "{}", t.name);
        assert_eq!(t.dims.len(), s.dims.len(), "{}", t.name);
        let remap = |d: u64| match d {
            3584 => 256,
            18944 => 512,
            512 => 128,
            d => d,
        };
        let dims: Vec<u64> = s.dims.iter().map(|&d| remap(d)).collect();
        assert_eq!(t.dims, dims, "{}", t.name);
    }
    assert!(expected
        .iter()
        .filter(|t| !t.name.starts_with("blk."))
        .all(|t| out.tensor(&t.name).is_some()));
}

#[test]
fn tiny_qwen2_gives_finite_logits_with_a_sane_spread() {
    let g = header();
    let bytes = synthesize(&g, &tiny(), 4, 2);
    let out = Gguf::read(bytes.as_slice()).unwrap();
    let model = DecoderModel::load(&out, Box::new(SliceWeights(bytes))).unwrap();
    let mut s = model.new_session(64);
    let prompt = [151646u32, 785, 6722, 315, 9625, 374];
    let logits = model.forward(&mut s, &prompt, Logits::All).unwrap();
    let vocab = model.cfg.vocab_size;
    let mut tops = Vec::new();
    for row in logits.chunks_exact(vocab) {
        assert!(row.iter().all(|x| x.is_finite()));
        let mean = row.iter().map(|&x| x as f64).sum::<f64>() / vocab as f64;
        let std =
            (row.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / vocab as f64).sqrt();
        assert!((0.1..10.0).contains(&std), "logit std {std}");
        let top = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        tops.push(top);
    }
    // The prediction depends on the input (activations have not collapsed).
    tops.dedup();
    assert!(tops.len() > 1, "the same top token everywhere: {tops:?}");
}

/// Compares what is written with the source file's header bytes, then stops the
/// write (the 4.7 GB of tensor data are not needed for this check).
struct HeaderCheck {
    expected: Vec<u8>,
    at: usize,
}

impl Write for HeaderCheck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.expected.len() - self.at);
        assert!(
            buf[..n] == self.expected[self.at..self.at + n],
            "output differs from the header within bytes {}..{}",
            self.at,
            self.at + n
        );
        self.at += n;
        if self.at == self.expected.len() {
            return Err(io::Error::other("header checked"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn full_size_plan_reproduces_the_header_bytes() {
    let path = common::model("qwen2-7b-header.gguf");
    let g = header();
    let synth = Synth::new(&g, &ShapeOverrides::default(), 0).unwrap();
    let planned: Vec<_> = synth
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), t.dims.clone(), t.ty))
        .collect();
    let source: Vec<_> = g
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.dims.clone(), t.ty))
        .collect();
    assert_eq!(planned, source);
    let last = g.tensors.iter().max_by_key(|t| t.rel_offset).unwrap();
    assert_eq!(
        synth.data_bytes(),
        (last.rel_offset + last.size_bytes).div_ceil(g.alignment) * g.alignment
    );
    // Metadata, tensor table (offsets included) and padding: the source's bytes.
    let bytes = std::fs::read(path).unwrap();
    let mut check = HeaderCheck {
        expected: bytes[..g.data_offset as usize].to_vec(),
        at: 0,
    };
    let err = synth.write(&mut check, 1, |_| {}).unwrap_err();
    assert!(err.to_string().contains("header checked"), "{err}");
    assert_eq!(check.at, g.data_offset as usize);
}
