//! The GGUF parser. Every count, size and offset read from the file is checked
//! against the bytes that remain before anything is allocated from it.

use std::collections::HashSet;

use super::{ByteSource, Gguf, GgufError, Metadata, TensorInfo, Value, ValueType};
use crate::quant::GgmlType;

const MAGIC: &[u8; 4] = b"GGUF";
/// Arrays nested deeper than this are rejected (no real file nests at all beyond 1).
const MAX_NESTING: u32 = 8;
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// How much of the source the cursor fetches at once.
const WINDOW: usize = 1 << 16;

/// Whether tensor data must be present in the source.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DataCheck {
    /// Every tensor's bytes must lie inside the source.
    Required,
    /// Only the header is needed (e.g. the tokenizer of a file whose data is missing).
    HeaderOnly,
}

/// A sequential reader over a [`ByteSource`] with a read-ahead window.
struct Cursor<'a, S: ?Sized> {
    src: &'a S,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a, S: ByteSource + ?Sized> Cursor<'a, S> {
    fn new(src: &'a S) -> Self {
        Self {
            src,
            len: src.len(),
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn need(&self, n: u64, what: &dyn Fn() -> String) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos,
                needed: n,
                len: self.len,
            });
        }
        Ok(())
    }

    /// Reads `out.len()` bytes (already checked to be available).
    fn fill(&mut self, out: &mut [u8], what: &dyn Fn() -> String) -> Result<(), GgufError> {
        self.need(out.len() as u64, what)?;
        let mut done = 0;
        while done < out.len() {
            let buf_end = self.buf_start + self.buf.len() as u64;
            if self.pos < self.buf_start || self.pos >= buf_end {
                let n = (self.remaining().min(WINDOW as u64)) as usize;
                self.buf.resize(n, 0);
                self.src
                    .read_at(self.pos, &mut self.buf)
                    .map_err(|source| GgufError::Io {
                        what: what(),
                        source,
                    })?;
                self.buf_start = self.pos;
                continue;
            }
            let off = (self.pos - self.buf_start) as usize;
            let n = (self.buf.len() - off).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.buf[off..off + n]);
            done += n;
            self.pos += n as u64;
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length-prefixed UTF-8 string. The length is checked against the remaining bytes first.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        self.need(n, what)?;
        let mut bytes = vec![0u8; n as usize];
        self.fill(&mut bytes, what)?;
        String::from_utf8(bytes).map_err(|_| GgufError::BadValue {
            key: what(),
            reason: "string is not valid UTF-8".into(),
        })
    }

    fn value(
        &mut self,
        ty: ValueType,
        depth: u32,
        what: &dyn Fn() -> String,
    ) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(GgufError::BadValue {
                        key: what(),
                        reason: format!("bool byte is {b}, not 0 or 1"),
                    })
                }
            },
            ValueType::String => Value::String(self.string(what)?),
            ValueType::Array => {
                if depth >= MAX_NESTING {
                    return Err(GgufError::BadValue {
                        key: what(),
                        reason: format!("arrays nested deeper than {MAX_NESTING}"),
                    });
                }
                let elem_id = self.u32(what)?;
                let elem = ValueType::from_id(elem_id).ok_or_else(|| GgufError::BadValue {
                    key: what(),
                    reason: format!("unknown array element type id {elem_id}"),
                })?;
                let count = self.u64(what)?;
                // Each element takes at least min_size bytes: a count the file cannot hold
                // is rejected before the vector is allocated.
                let min =
                    count
                        .checked_mul(elem.min_size())
                        .ok_or_else(|| GgufError::BadValue {
                            key: what(),
                            reason: format!("array count {count} overflows"),
                        })?;
                self.need(min, &|| format!("{} ({count} array elements)", what()))?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1, what)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

pub(super) fn parse<S: ByteSource + ?Sized>(src: &S, check: DataCheck) -> Result<Gguf, GgufError> {
    let mut c = Cursor::new(src);
    let magic: [u8; 4] = c.array(&|| "magic".into())?;
    if &magic != MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = c.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let n_kv = c.u64(&|| "metadata count".into())?;
    // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes,
    // a tensor info at least 8 + 4 + 8 + 4 + 8.
    let min = n_kv
        .checked_mul(13)
        .and_then(|a| n_tensors.checked_mul(32).and_then(|b| a.checked_add(b)))
        .ok_or_else(|| GgufError::Limit(format!("{n_kv} keys and {n_tensors} tensors overflow")))?;
    c.need(min, &|| {
        format!("{n_kv} metadata entries and {n_tensors} tensor infos")
    })?;

    let mut metadata = Metadata::default();
    for index in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{index}"))?;
        if key.is_empty() {
            return Err(GgufError::BadKey {
                index,
                reason: "empty key".into(),
            });
        }
        let what = || format!("metadata value '{key}'");
        let ty_id = c.u32(&what)?;
        let ty = ValueType::from_id(ty_id).ok_or_else(|| GgufError::BadValue {
            key: key.clone(),
            reason: format!("unknown value type id {ty_id}"),
        })?;
        let value = c.value(ty, 0, &what)?;
        metadata.insert_new(key, value)?;
    }

    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
            _ => {
                return Err(GgufError::BadValue {
                    key: "general.alignment".into(),
                    reason: format!("{v:?} is not a power of two in 1..=1MiB"),
                })
            }
        },
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::new();
    for index in 0..n_tensors {
        let name = c.string(&|| format!("tensor #{index} name"))?;
        let bad = |reason: String| GgufError::BadTensor {
            name: name.clone(),
            reason,
        };
        let what = || format!("tensor '{name}' info");
        let n_dims = c.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!("{n_dims} dimensions (1..={MAX_DIMS} allowed)")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(&what)?);
        }
        let type_id = c.u32(&what)?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownType {
            name: name.clone(),
            id: type_id,
        })?;
        let rel_offset = c.u64(&what)?;

        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n < i64::MAX as u64)
            .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
        if dims.contains(&0) {
            return Err(bad(format!("zero-sized dimension in {dims:?}")));
        }
        if !dims[0].is_multiple_of(ty.block_size() as u64) {
            return Err(bad(format!(
                "first dimension {} is not a multiple of the {ty} block size {}",
                dims[0],
                ty.block_size()
            )));
        }
        let size_bytes = (n_elements / ty.block_size() as u64)
            .checked_mul(ty.type_size() as u64)
            .ok_or_else(|| bad("byte size overflows".into()))?;
        if rel_offset % alignment != 0 {
            return Err(bad(format!(
                "data offset {rel_offset} is not a multiple of the alignment {alignment}"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor(name));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            rel_offset,
            offset: 0,
            size_bytes,
        });
    }

    let data_offset = c.pos.div_ceil(alignment) * alignment;
    for t in &mut tensors {
        let bad = |reason: String| GgufError::BadTensor {
            name: t.name.clone(),
            reason,
        };
        t.offset = data_offset
            .checked_add(t.rel_offset)
            .ok_or_else(|| bad("data offset overflows".into()))?;
        let end = t
            .offset
            .checked_add(t.size_bytes)
            .ok_or_else(|| bad("data end overflows".into()))?;
        if check == DataCheck::Required && end > c.len {
            return Err(bad(format!(
                "data {}..{end} lies beyond the end of the file ({} bytes)",
                t.offset, c.len
            )));
        }
    }

    Ok(Gguf {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}
