//! The packed GGUF header: the model's own header bytes with every tensor's data
//! offset patched so that the absolute offset the reader computes
//! (`data_offset + rel_offset`) is the tensor's virtual address in the shards.

use chord_core::gguf::{Gguf, Value};

use crate::PackError;

/// Serialized size of one metadata value (GGUF v2/v3 encoding).
fn value_len(v: &Value) -> u64 {
    match v {
        Value::U8(_) | Value::I8(_) | Value::Bool(_) => 1,
        Value::U16(_) | Value::I16(_) => 2,
        Value::U32(_) | Value::I32(_) | Value::F32(_) => 4,
        Value::U64(_) | Value::I64(_) | Value::F64(_) => 8,
        Value::String(s) => 8 + s.len() as u64,
        Value::Array(_, items) => 4 + 8 + items.iter().map(value_len).sum::<u64>(),
    }
}

/// `header` is the file's first `g.data_offset` bytes; `addresses[i]` the virtual
/// address of tensor `i`. Returns the patched header, checked by parsing it again.
pub fn packed_header(header: &[u8], g: &Gguf, addresses: &[u64]) -> Result<Vec<u8>, PackError> {
    let bad = |why: String| PackError::Header(why);
    if g.version < 2 {
        return Err(bad(format!(
            "GGUF version {} is not supported (need 2 or 3)",
            g.version
        )));
    }
    if header.len() as u64 != g.data_offset {
        return Err(bad("header length differs from the data offset".into()));
    }
    // Magic, version, tensor count, metadata count, then the metadata entries.
    let mut pos: u64 = 4 + 4 + 8 + 8;
    for (key, value) in g.metadata.iter() {
        pos += 8 + key.len() as u64 + 4 + value_len(value);
    }
    let mut out = header.to_vec();
    for (t, &address) in g.tensors.iter().zip(addresses) {
        let name_at = (pos + 8) as usize;
        let name_end = name_at + t.name.len();
        if out.get(name_at..name_end) != Some(t.name.as_bytes()) {
            return Err(bad(format!(
                "tensor table entry for '{}' not found where expected (offset {pos})",
                t.name
            )));
        }
        pos += 8 + t.name.len() as u64 + 4 + 8 * t.dims.len() as u64 + 4;
        let at = pos as usize;
        let rel = address
            .checked_sub(g.data_offset)
            .ok_or_else(|| bad(format!("tensor '{}' would overlap the header", t.name)))?;
        let field = out
            .get_mut(at..at + 8)
            .ok_or_else(|| bad("tensor table runs past the header".into()))?;
        field.copy_from_slice(&rel.to_le_bytes());
        pos += 8;
    }
    // The reader must now see exactly the virtual addresses.
    let check = Gguf::read_header(out.as_slice())?;
    let same = check.data_offset == g.data_offset
        && check.tensors.len() == addresses.len()
        && check
            .tensors
            .iter()
            .zip(addresses)
            .all(|(t, &a)| t.offset == a);
    if !same {
        return Err(bad(
            "the patched header does not read back as planned".into()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chord_core::gguf::{GgufWriter, Metadata};
    use chord_core::quant::GgmlType;

    #[test]
    fn offsets_become_virtual_addresses() {
        let mut md = Metadata::default();
        md.insert("general.architecture", Value::String("llama".into()));
        md.insert(
            "tokenizer.ggml.tokens",
            Value::Array(
                chord_core::gguf::ValueType::String,
                vec![Value::String("a".into()), Value::String("bc".into())],
            ),
        );
        md.insert("llama.block_count", Value::U32(1));
        let mut w = GgufWriter::new(md);
        w.add_tensor("token_embd.weight", &[32, 2], GgmlType::F32)
            .unwrap();
        w.add_tensor("blk.0.attn_q.weight", &[32, 4], GgmlType::F32)
            .unwrap();
        let mut bytes = Vec::new();
        w.write(&mut bytes, |i, out| {
            out.write_all(&vec![i as u8; [256, 512][i]])
        })
        .unwrap();
        let g = Gguf::read(bytes.as_slice()).unwrap();
        let header = &bytes[..g.data_offset as usize];
        let addresses = [g.data_offset + 64, (3 << 32) | 4096];
        let packed = packed_header(header, &g, &addresses).unwrap();
        let p = Gguf::read_header(packed.as_slice()).unwrap();
        assert_eq!(p.tensors[0].offset, addresses[0]);
        assert_eq!(p.tensors[1].offset, addresses[1]);
        assert_eq!(p.metadata.len(), g.metadata.len());
        assert_eq!(p.metadata.get_u32("llama.block_count").unwrap(), 1);

        // An address inside the header is refused.
        assert!(matches!(
            packed_header(header, &g, &[0, 64]),
            Err(PackError::Header(_))
        ));
    }
}
