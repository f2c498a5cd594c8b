//! Writes GGUF v3 files (used by `chord quantize`, `convert` and `synth`).

use std::io::{self, Write};

use super::{GgufError, Metadata, Value};
use crate::quant::GgmlType;

/// A GGUF file being assembled: metadata and a tensor table whose data is streamed
/// by the caller at write time (so multi-GB models never sit in memory twice).
pub struct GgufWriter {
    metadata: Metadata,
    tensors: Vec<PlannedTensor>,
    alignment: u64,
}

struct PlannedTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    size: u64,
}

impl GgufWriter {
    /// Takes `general.alignment` from the metadata when present (default 32).
    pub fn new(metadata: Metadata) -> Self {
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_u64)
            .filter(|a| a.is_power_of_two())
            .unwrap_or(32);
        Self {
            metadata,
            tensors: Vec::new(),
            alignment,
        }
    }

    /// Declares the next tensor. Its data is produced later by `write`'s callback.
    pub fn add_tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> Result<u64, GgufError> {
        let bad = |reason: &str| GgufError::Write(format!("tensor '{name}': {reason}"));
        if dims.is_empty() || dims.len() > 4 {
            return Err(bad("needs 1 to 4 dimensions"));
        }
        if !dims[0].is_multiple_of(ty.block_size() as u64) {
            return Err(bad("row length is not a multiple of the block size"));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(bad("duplicate name"));
        }
        let n: u64 = dims.iter().product();
        let size = n / ty.block_size() as u64 * ty.type_size() as u64;
        self.tensors.push(PlannedTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            size,
        });
        Ok(size)
    }

    /// Writes the file. `data(i, out)` must write exactly the bytes of tensor `i`
    /// (in `add_tensor` order); the writer checks the count and adds the padding.
    pub fn write<W: Write>(
        &self,
        out: &mut W,
        mut data: impl FnMut(usize, &mut dyn Write) -> io::Result<()>,
    ) -> Result<(), GgufError> {
        let io = |e: io::Error| GgufError::Write(e.to_string());
        let mut w = Counting { inner: out, n: 0 };
        w.write_all(b"GGUF").map_err(io)?;
        w.write_all(&3u32.to_le_bytes()).map_err(io)?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())
            .map_err(io)?;
        for (key, value) in self.metadata.iter() {
            write_str(&mut w, key).map_err(io)?;
            w.write_all(&value.value_type().id().to_le_bytes())
                .map_err(io)?;
            write_value(&mut w, value).map_err(io)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_str(&mut w, &t.name).map_err(io)?;
            w.write_all(&(t.dims.len() as u32).to_le_bytes())
                .map_err(io)?;
            for d in &t.dims {
                w.write_all(&d.to_le_bytes()).map_err(io)?;
            }
            w.write_all(&t.ty.id().to_le_bytes()).map_err(io)?;
            w.write_all(&offset.to_le_bytes()).map_err(io)?;
            offset = (offset + t.size).div_ceil(self.alignment) * self.alignment;
        }
        pad(&mut w, self.alignment).map_err(io)?;
        for (i, t) in self.tensors.iter().enumerate() {
            let start = w.n;
            data(i, &mut w).map_err(io)?;
            if w.n - start != t.size {
                return Err(GgufError::Write(format!(
                    "tensor '{}': wrote {} bytes, expected {}",
                    t.name,
                    w.n - start,
                    t.size
                )));
            }
            pad(&mut w, self.alignment).map_err(io)?;
        }
        w.flush().map_err(io)
    }
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad<W: Write>(w: &mut Counting<'_, W>, alignment: u64) -> io::Result<()> {
    let target = w.n.div_ceil(alignment) * alignment;
    let zeros = vec![0u8; (target - w.n) as usize];
    w.write_all(&zeros)
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, v: &Value) -> io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&x.to_le_bytes()),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[*x as u8]),
        Value::String(s) => write_str(w, s),
        Value::Array(ty, items) => {
            w.write_all(&ty.id().to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|item| write_value(w, item))
        }
    }
}
