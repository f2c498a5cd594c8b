use crate::gguf::ValueType;

/// Everything that can be wrong with a GGUF file. Each case names what it is about.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file (magic {0:02x?})")]
    BadMagic([u8; 4]),
    #[error(
        "GGUF version {0} is not supported (only 2 and 3; big-endian files are not supported)"
    )]
    UnsupportedVersion(u32),
    #[error("file truncated: {what} at offset {offset} needs {needed} bytes, the file has {len}")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        len: u64,
    },
    #[error("I/O error while reading {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("metadata key #{index}: {reason}")]
    BadKey { index: u64, reason: String },
    #[error("metadata key '{key}': {reason}")]
    BadValue { key: String, reason: String },
    #[error("duplicate metadata key '{0}'")]
    DuplicateKey(String),
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: ValueType,
    },
    #[error("tensor #{index}: {reason}")]
    BadTensorInfo { index: u64, reason: String },
    #[error("tensor '{name}': {reason}")]
    BadTensor { name: String, reason: String },
    #[error("duplicate tensor name '{0}'")]
    DuplicateTensor(String),
    #[error("tensor '{name}' has unknown or unsupported type id {id}")]
    UnknownType { name: String, id: u32 },
    #[error("{0}")]
    Limit(String),
    #[error("writing GGUF: {0}")]
    Write(String),
}
