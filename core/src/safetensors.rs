//! A reader for the Hugging Face `safetensors` format: an 8-byte little-endian header
//! length, a JSON header (`name -> {dtype, shape, data_offsets}` plus an optional
//! `__metadata__` map of strings), then the tensor data.
//!
//! Everything the header claims is checked before any tensor is used: the header fits
//! in the file and is UTF-8 JSON, every dtype is known, every shape's byte size equals
//! its `data_offsets` span (with overflow checks), and the spans tile the data section
//! exactly (no overlap, no hole, nothing past the end), as the reference implementation
//! requires. A malformed file is a [`SafetensorsError`], never a panic.
//!
//! Tensor data stays in the [`ByteSource`]; [`TensorEntry::offset`] is absolute, so a
//! memory holding the whole file can serve F32/F16/BF16 matrices directly as weights
//! (row-major `[rows, cols]` safetensors data is exactly ggml's row layout).

use std::collections::HashMap;

use crate::gguf::ByteSource;
use crate::quant::GgmlType;

/// The reference implementation refuses headers above 100 MB.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("I/O error while reading {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("not a safetensors file: {len} bytes is too short for the 8-byte header length")]
    TooShort { len: u64 },
    #[error("header length {header_len} does not fit in the file ({file_len} bytes)")]
    HeaderOutOfBounds { header_len: u64, file_len: u64 },
    #[error("header length {0} exceeds the {MAX_HEADER_BYTES}-byte limit")]
    HeaderTooLarge(u64),
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    #[error("tensor '{name}': {reason}")]
    BadEntry { name: String, reason: String },
    #[error("tensor '{name}' has unknown dtype '{dtype}'")]
    UnknownDtype { name: String, dtype: String },
    #[error("tensor '{name}': shape {shape:?} of {dtype} needs {expected} bytes, data_offsets span {found}")]
    SizeMismatch {
        name: String,
        dtype: Dtype,
        shape: Vec<u64>,
        expected: u64,
        found: u64,
    },
    #[error("tensor data does not tile the data section: {0}")]
    BadLayout(String),
    #[error("tensor '{0}' is missing")]
    Missing(String),
    #[error("tensor '{name}' has dtype {dtype}, which cannot be read as {wanted}")]
    WrongDtype {
        name: String,
        dtype: Dtype,
        wanted: &'static str,
    },
}

/// Element types of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    F8E4M3,
    F8E5M2,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

impl Dtype {
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "BOOL" => Self::Bool,
            "U8" => Self::U8,
            "I8" => Self::I8,
            "F8_E4M3" => Self::F8E4M3,
            "F8_E5M2" => Self::F8E5M2,
            "I16" => Self::I16,
            "U16" => Self::U16,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "I32" => Self::I32,
            "U32" => Self::U32,
            "F32" => Self::F32,
            "F64" => Self::F64,
            "I64" => Self::I64,
            "U64" => Self::U64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::U8 => "U8",
            Self::I8 => "I8",
            Self::F8E4M3 => "F8_E4M3",
            Self::F8E5M2 => "F8_E5M2",
            Self::I16 => "I16",
            Self::U16 => "U16",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::I32 => "I32",
            Self::U32 => "U32",
            Self::F32 => "F32",
            Self::F64 => "F64",
            Self::I64 => "I64",
            Self::U64 => "U64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Self::Bool | Self::U8 | Self::I8 | Self::F8E4M3 | Self::F8E5M2 => 1,
            Self::I16 | Self::U16 | Self::F16 | Self::BF16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 | Self::I64 | Self::U64 => 8,
        }
    }

    /// The ggml type with the same element encoding (only the float types the kernels use).
    pub fn ggml_type(self) -> Option<GgmlType> {
        match self {
            Self::F32 => Some(GgmlType::F32),
            Self::F16 => Some(GgmlType::F16),
            Self::BF16 => Some(GgmlType::BF16),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: Dtype,
    /// Row-major (PyTorch) order: the last dimension is the innermost.
    pub shape: Vec<u64>,
    /// Absolute offset of the data in the source.
    pub offset: u64,
    pub size_bytes: u64,
}

impl TensorEntry {
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// The shape in ggml order (innermost first), as GGUF stores it.
    pub fn ggml_dims(&self) -> Vec<u64> {
        self.shape.iter().rev().copied().collect()
    }
}

/// A parsed safetensors header.
#[derive(Clone, Debug)]
pub struct SafeTensors {
    /// In file order (sorted by offset).
    pub tensors: Vec<TensorEntry>,
    /// The `__metadata__` map.
    pub metadata: Vec<(String, String)>,
    /// Absolute offset of the data section (8 + header length).
    pub data_offset: u64,
    index: HashMap<String, usize>,
}

impl SafeTensors {
    /// Parses and validates the header of `src` (which must hold the whole file).
    pub fn read<S: ByteSource + ?Sized>(src: &S) -> Result<Self, SafetensorsError> {
        let file_len = src.len();
        if file_len < 8 {
            return Err(SafetensorsError::TooShort { len: file_len });
        }
        let mut n = [0u8; 8];
        src.read_at(0, &mut n)
            .map_err(|e| io("the header length", e))?;
        let header_len = u64::from_le_bytes(n);
        if header_len > MAX_HEADER_BYTES {
            return Err(SafetensorsError::HeaderTooLarge(header_len));
        }
        if header_len > file_len - 8 {
            return Err(SafetensorsError::HeaderOutOfBounds {
                header_len,
                file_len,
            });
        }
        let mut header = vec![0u8; header_len as usize];
        src.read_at(8, &mut header)
            .map_err(|e| io("the header", e))?;
        let data_offset = 8 + header_len;
        Self::parse_header(&header, data_offset, file_len - data_offset)
    }

    /// Validates a header given the size of the data section that follows it.
    fn parse_header(
        header: &[u8],
        data_offset: u64,
        data_len: u64,
    ) -> Result<Self, SafetensorsError> {
        let bad = |m: String| SafetensorsError::InvalidHeader(m);
        let text = std::str::from_utf8(header).map_err(|e| bad(format!("not UTF-8 ({e})")))?;
        if !text.starts_with('{') {
            return Err(bad("does not start with '{'".into()));
        }
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON ({e})")))?;
        let obj = json
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let mut tensors = Vec::with_capacity(obj.len());
        let mut metadata = Vec::new();
        for (name, v) in obj {
            if name == "__metadata__" {
                let m = v
                    .as_object()
                    .ok_or_else(|| bad("__metadata__ is not an object".into()))?;
                for (k, val) in m {
                    let s = val
                        .as_str()
                        .ok_or_else(|| bad(format!("__metadata__ value '{k}' is not a string")))?;
                    metadata.push((k.clone(), s.to_string()));
                }
                continue;
            }
            tensors.push(parse_entry(name, v)?);
        }
        // Spans must tile [0, data_len): sorted by start, each begins where the last ended.
        tensors.sort_by_key(|t: &(TensorEntry, u64, u64)| (t.1, t.2));
        let mut pos = 0u64;
        let mut prev = "";
        for (t, begin, end) in &tensors {
            if *begin != pos {
                return Err(SafetensorsError::BadLayout(if *begin < pos {
                    format!("'{}' overlaps '{prev}'", t.name)
                } else {
                    format!("{} unused bytes before '{}'", begin - pos, t.name)
                }));
            }
            if *end > data_len {
                return Err(SafetensorsError::BadLayout(format!(
                    "'{}' ends at {end}, past the {data_len}-byte data section",
                    t.name
                )));
            }
            pos = *end;
            prev = &t.name;
        }
        if pos != data_len {
            return Err(SafetensorsError::BadLayout(format!(
                "the tensors cover {pos} bytes of a {data_len}-byte data section"
            )));
        }
        let tensors: Vec<TensorEntry> = tensors
            .into_iter()
            .map(|(mut t, begin, _)| {
                t.offset = data_offset + begin;
                t
            })
            .collect();
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            tensors,
            metadata,
            data_offset,
            index,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// Reads a float tensor (F32, F16 or BF16) as f32 values.
    pub fn read_f32<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        name: &str,
    ) -> Result<Vec<f32>, SafetensorsError> {
        let t = self
            .tensor(name)
            .ok_or_else(|| SafetensorsError::Missing(name.into()))?;
        read_f32(src, t)
    }
}

/// Reads a float tensor (F32, F16 or BF16) as f32 values.
pub fn read_f32<S: ByteSource + ?Sized>(
    src: &S,
    t: &TensorEntry,
) -> Result<Vec<f32>, SafetensorsError> {
    let ty = t.dtype.ggml_type().ok_or(SafetensorsError::WrongDtype {
        name: t.name.clone(),
        dtype: t.dtype,
        wanted: "f32",
    })?;
    let n = t.n_elements() as usize;
    let mut raw = vec![0u8; t.size_bytes as usize];
    src.read_at(t.offset, &mut raw)
        .map_err(|e| io(&format!("tensor '{}'", t.name), e))?;
    let mut out = vec![0f32; n];
    crate::quant::dequantize_row(ty, &raw, &mut out).map_err(|e| SafetensorsError::BadEntry {
        name: t.name.clone(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

fn io(what: &str, source: std::io::Error) -> SafetensorsError {
    SafetensorsError::Io {
        what: what.to_string(),
        source,
    }
}

/// One header entry, with its relative `data_offsets`.
fn parse_entry(
    name: &str,
    v: &serde_json::Value,
) -> Result<(TensorEntry, u64, u64), SafetensorsError> {
    let bad = |reason: &str| SafetensorsError::BadEntry {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let obj = v.as_object().ok_or_else(|| bad("entry is not an object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data_offsets"))
    {
        return Err(bad(&format!("unexpected field '{k}'")));
    }
    let dtype_name = obj
        .get("dtype")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("missing or non-string dtype"))?;
    let dtype = Dtype::from_name(dtype_name).ok_or_else(|| SafetensorsError::UnknownDtype {
        name: name.to_string(),
        dtype: dtype_name.to_string(),
    })?;
    let shape = obj
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("missing or non-array shape"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .ok_or_else(|| bad("shape has a non-integer or negative dimension"))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    let offs = obj
        .get("data_offsets")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad("missing or non-array data_offsets"))?;
    let (begin, end) = match offs.as_slice() {
        [a, b] => (
            a.as_u64()
                .ok_or_else(|| bad("data_offsets are not non-negative integers"))?,
            b.as_u64()
                .ok_or_else(|| bad("data_offsets are not non-negative integers"))?,
        ),
        _ => return Err(bad("data_offsets must hold two integers")),
    };
    if end < begin {
        return Err(bad("data_offsets end before they begin"));
    }
    let expected = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("shape size overflows"))?;
    if expected != end - begin {
        return Err(SafetensorsError::SizeMismatch {
            name: name.to_string(),
            dtype,
            shape,
            expected,
            found: end - begin,
        });
    }
    let entry = TensorEntry {
        name: name.to_string(),
        dtype,
        shape,
        offset: 0,
        size_bytes: expected,
    };
    Ok((entry, begin, end))
}

/// Writes a safetensors file (tests, tools). `tensors`: name, dtype, shape, raw bytes.
pub fn write(
    tensors: &[(&str, Dtype, &[u64], &[u8])],
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>, SafetensorsError> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(m));
    }
    let mut pos = 0u64;
    for (name, dtype, shape, data) in tensors {
        let size = shape.iter().product::<u64>() * dtype.size();
        if size != data.len() as u64 {
            return Err(SafetensorsError::BadEntry {
                name: name.to_string(),
                reason: format!("{} bytes of data for {size}", data.len()),
            });
        }
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [pos, pos + size]}),
        );
        pos += size;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + pos as usize);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for (_, _, _, data) in tensors {
        out.extend_from_slice(data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn round_trip() {
        let a = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = [0x00u8, 0x3c, 0x00, 0xc0]; // f16 1.0, -2.0
        let file = write(
            &[("a", Dtype::F32, &[2, 3], &a), ("b", Dtype::F16, &[2], &b)],
            &[("format", "pt")],
        )
        .unwrap();
        let st = SafeTensors::read(file.as_slice()).unwrap();
        assert_eq!(st.metadata, [("format".to_string(), "pt".to_string())]);
        let t = st.tensor("a").unwrap();
        assert_eq!(t.ggml_dims(), [3, 2]);
        assert_eq!(
            st.read_f32(file.as_slice(), "a").unwrap(),
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(st.read_f32(file.as_slice(), "b").unwrap(), [1.0, -2.0]);
    }

    #[test]
    fn rejects_bad_headers() {
        let a = f32_bytes(&[1.0, 2.0]);
        let good = write(&[("a", Dtype::F32, &[2], &a)], &[]).unwrap();
        // Every truncation is an error.
        for n in 0..good.len() {
            assert!(SafeTensors::read(&good[..n]).is_err(), "truncated to {n}");
        }
        // Trailing garbage is a hole at the end.
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            SafeTensors::read(long.as_slice()),
            Err(SafetensorsError::BadLayout(_))
        ));
        // Huge header length.
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            SafeTensors::read(huge.as_slice()),
            Err(SafetensorsError::HeaderTooLarge(_))
        ));
        let hdr = |h: &str, data: &[u8]| {
            let mut f = (h.len() as u64).to_le_bytes().to_vec();
            f.extend_from_slice(h.as_bytes());
            f.extend_from_slice(data);
            f
        };
        let cases = [
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#,
            r#"{"a":{"dtype":"X","shape":[2],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[2]}}"#,
            r#"{"a":[1,2]}"#,
            r#"[1,2]"#,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#,
            r#"{"__metadata__":{"x":1}}"#,
        ];
        for h in cases {
            assert!(SafeTensors::read(hdr(h, &a).as_slice()).is_err(), "{h}");
        }
        assert!(SafeTensors::read(hdr("{\"a\":\u{FFFD}}", &a).as_slice()).is_err());
        let mut not_utf8 = hdr(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &a,
        );
        not_utf8[10] = 0xff;
        assert!(SafeTensors::read(not_utf8.as_slice()).is_err());
    }
}
