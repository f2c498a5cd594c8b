//! The GGUF reader on real files, the writer round trip, and a corpus of broken files.

mod common;

use chord_core::gguf::{
    ByteSource, FileSource, Gguf, GgufError, GgufWriter, Metadata, Value, ValueType,
};
use chord_core::quant::GgmlType;

#[test]
fn reads_smollm2() {
    let g =
        Gguf::read(&FileSource::open(common::model("smollm2-135m-instruct-q4_1.gguf")).unwrap())
            .unwrap();
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.metadata.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(
        g.metadata.get_array("tokenizer.ggml.tokens").unwrap().len(),
        49152
    );
    let t = g.tensor("token_embd.weight").unwrap();
    assert_eq!(t.dims, vec![576, 49152]);
    assert_eq!(t.offset % g.alignment, 0);
    println!(
        "smollm2: {} tensors, {} keys",
        g.tensors.len(),
        g.metadata.len()
    );
}

#[test]
fn reads_gemma3() {
    let g =
        Gguf::read(&FileSource::open(common::model("gemma-3-270m-q4_k_m.gguf")).unwrap()).unwrap();
    assert_eq!(g.architecture().unwrap(), "gemma3");
    let types: std::collections::HashSet<_> = g.tensors.iter().map(|t| t.ty).collect();
    assert!(
        types.contains(&GgmlType::Q4K) || types.contains(&GgmlType::Q6K),
        "{types:?}"
    );
}

#[test]
fn header_only_file_needs_read_header() {
    let src = FileSource::open(common::model("qwen2-7b-header.gguf")).unwrap();
    // The package holds only the first 99.6 MB: the full read must refuse, naming a tensor.
    match Gguf::read(&src) {
        Err(GgufError::BadTensor { reason, .. }) => {
            assert!(reason.contains("beyond the end"), "{reason}")
        }
        other => panic!("expected a missing-data error, got {other:?}"),
    }
    let g = Gguf::read_header(&src).unwrap();
    assert_eq!(g.architecture().unwrap(), "qwen2");
    assert_eq!(g.metadata.get_u32("qwen2.block_count").unwrap(), 28);
    assert_eq!(
        g.metadata.get_array("tokenizer.ggml.tokens").unwrap().len(),
        152064
    );
}

/// A small but complete file exercising every value type, nested arrays and several tensors.
fn sample_file() -> Vec<u8> {
    let mut md = Metadata::default();
    md.insert("general.architecture", Value::String("llama".into()));
    md.insert("general.alignment", Value::U32(64));
    md.insert("a.u8", Value::U8(7));
    md.insert("a.i8", Value::I8(-7));
    md.insert("a.u16", Value::U16(700));
    md.insert("a.i16", Value::I16(-700));
    md.insert("a.u32", Value::U32(70_000));
    md.insert("a.i32", Value::I32(-70_000));
    md.insert("a.f32", Value::F32(1.5));
    md.insert("a.bool", Value::Bool(true));
    md.insert("a.u64", Value::U64(1 << 40));
    md.insert("a.i64", Value::I64(-(1 << 40)));
    md.insert("a.f64", Value::F64(-2.25));
    md.insert(
        "a.nested",
        Value::Array(
            ValueType::Array,
            vec![
                Value::Array(
                    ValueType::String,
                    vec![Value::String("x".into()), Value::String("ÿz".into())],
                ),
                Value::Array(ValueType::I32, vec![]),
            ],
        ),
    );
    let mut w = GgufWriter::new(md);
    w.add_tensor("t.f32", &[8, 3], GgmlType::F32).unwrap();
    w.add_tensor("t.q8", &[64], GgmlType::Q8_0).unwrap();
    let mut out = Vec::new();
    w.write(&mut out, |i, o| {
        let n = [8 * 3 * 4, 2 * 34][i];
        o.write_all(&vec![i as u8 + 1; n])
    })
    .unwrap();
    out
}

#[test]
fn writer_round_trip() {
    let bytes = sample_file();
    let g = Gguf::read(bytes.as_slice()).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.alignment, 64);
    assert_eq!(g.metadata.get("a.i16"), Some(&Value::I16(-700)));
    assert_eq!(g.metadata.get_u64("a.u64").unwrap(), 1 << 40);
    assert_eq!(g.metadata.get_f32("a.f64").unwrap(), -2.25);
    let nested = g.metadata.get_array("a.nested").unwrap();
    assert_eq!(nested[0].as_array().unwrap()[1].as_str(), Some("ÿz"));
    assert!(matches!(
        g.metadata.get_u32("a.i32"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        g.metadata.get_str("nope"),
        Err(GgufError::MissingKey(_))
    ));
    let t = g.tensor("t.q8").unwrap();
    assert_eq!(t.offset % 64, 0);
    let mut data = vec![0u8; t.size_bytes as usize];
    bytes.as_slice().read_at(t.offset, &mut data).unwrap();
    assert!(data.iter().all(|&b| b == 2));
}

fn must_fail(bytes: &[u8], what: &str) -> GgufError {
    let r = std::panic::catch_unwind(|| Gguf::read(bytes));
    match r {
        Ok(Err(e)) => e,
        Ok(Ok(_)) => panic!("{what}: parsed a broken file"),
        Err(_) => panic!("{what}: the reader panicked"),
    }
}

#[test]
fn truncated_anywhere_is_an_error() {
    let bytes = sample_file();
    // Trailing alignment padding after the last tensor is optional: cut before its data ends.
    let g = Gguf::read(bytes.as_slice()).unwrap();
    let data_end = g
        .tensors
        .iter()
        .map(|t| t.offset + t.size_bytes)
        .max()
        .unwrap() as usize;
    for cut in 0..data_end {
        must_fail(&bytes[..cut], &format!("truncated at {cut}"));
    }
}

/// Overwrites 8 bytes at `at` (a count, length, dimension or offset) with `v`.
fn patched(bytes: &[u8], at: usize, v: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + v.len()].copy_from_slice(v);
    b
}

#[test]
fn lying_fields_are_errors() {
    let bytes = sample_file();
    let e = must_fail(&patched(&bytes, 0, b"GGUX"), "magic");
    assert!(matches!(e, GgufError::BadMagic(_)));
    let e = must_fail(&patched(&bytes, 4, &1u32.to_le_bytes()), "version 1");
    assert!(matches!(e, GgufError::UnsupportedVersion(1)));
    must_fail(
        &patched(&bytes, 4, &0x0300_0000u32.to_le_bytes()),
        "big endian",
    );
    must_fail(&patched(&bytes, 8, &u64::MAX.to_le_bytes()), "tensor count");
    must_fail(
        &patched(&bytes, 16, &(1u64 << 60).to_le_bytes()),
        "kv count",
    );
    // The first key's length.
    must_fail(&patched(&bytes, 24, &u64::MAX.to_le_bytes()), "key length");
    must_fail(
        &patched(&bytes, 24, &1_000_000u64.to_le_bytes()),
        "key length",
    );

    // Every 8-byte window of the header, set to huge values, must give an error or a
    // valid parse, never a panic or a huge allocation.
    let header_end = Gguf::read(bytes.as_slice()).unwrap().data_offset as usize;
    for at in 0..header_end.saturating_sub(8) {
        for v in [u64::MAX, 1 << 62, 0xFFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF] {
            let b = patched(&bytes, at, &v.to_le_bytes());
            let r = std::panic::catch_unwind(|| Gguf::read(b.as_slice()));
            assert!(r.is_ok(), "panic with {v:#x} at {at}");
        }
        let b = patched(&bytes, at, &[0xFF]);
        assert!(
            std::panic::catch_unwind(|| Gguf::read(b.as_slice())).is_ok(),
            "panic with 0xFF at {at}"
        );
    }
}

/// Builds a file with one tensor whose info we control.
fn one_tensor(dims: &[u64], type_id: u32, offset: u64, name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&2u64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    for n in [name, "other"] {
        b.extend_from_slice(&(n.len() as u64).to_le_bytes());
        b.extend_from_slice(n.as_bytes());
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&type_id.to_le_bytes());
        b.extend_from_slice(&offset.to_le_bytes());
    }
    b.resize(b.len().div_ceil(32) * 32 + 4096, 0);
    b
}

#[test]
fn bad_tensor_infos_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (one_tensor(&[32], 0, 0, "other"), "duplicate"),
        (one_tensor(&[32, 2], 99, 0, "t"), "unknown type"),
        (one_tensor(&[33], 2, 0, "t"), "not a multiple"),
        (one_tensor(&[1 << 40, 1 << 40], 0, 0, "t"), "overflow"),
        (one_tensor(&[1 << 30, 1 << 20], 0, 0, "t"), "beyond"),
        (one_tensor(&[32], 0, 7, "t"), "alignment"),
        (one_tensor(&[32, 0], 0, 0, "t"), "zero"),
        (one_tensor(&[32, 1, 1, 1, 1], 0, 0, "t"), "dimensions"),
        (one_tensor(&[32], 0, u64::MAX - 31, "t"), "overflow"),
    ];
    for (bytes, what) in cases {
        let e = must_fail(&bytes, what);
        let msg = e.to_string();
        assert!(
            msg.contains('t'),
            "{what}: error does not name the tensor: {msg}"
        );
        println!("{what}: {msg}");
    }
}
