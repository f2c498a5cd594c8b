//! GGUF: the model file format of llama.cpp. Reader (over any [`ByteSource`]) and writer.

mod error;
mod reader;
mod source;
mod value;
mod writer;

pub use error::GgufError;
pub use source::{ByteSource, FileSource};
pub use value::{Metadata, Value, ValueType};
pub use writer::GgufWriter;

use crate::quant::GgmlType;

/// A parsed GGUF header: metadata and tensor table. Tensor data stays in the source.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment` (32 when absent).
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
}

/// Where one tensor lives and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the innermost (row length).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset relative to the data section, as stored in the file.
    pub rel_offset: u64,
    /// Absolute offset in the source.
    pub offset: u64,
    pub size_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims[0]
    }

    /// Number of rows (product of the outer dimensions).
    pub fn n_rows(&self) -> u64 {
        self.dims[1..].iter().product()
    }
}

impl Gguf {
    /// Parses a complete GGUF file: every tensor's data must lie inside `src`.
    pub fn read<S: ByteSource + ?Sized>(src: &S) -> Result<Self, GgufError> {
        reader::parse(src, reader::DataCheck::Required)
    }

    /// Parses only the header; tensor data may be missing (a truncated download,
    /// or a header-only package used for its tokenizer).
    pub fn read_header<S: ByteSource + ?Sized>(src: &S) -> Result<Self, GgufError> {
        reader::parse(src, reader::DataCheck::HeaderOnly)
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.metadata.get_str("general.architecture")
    }
}
