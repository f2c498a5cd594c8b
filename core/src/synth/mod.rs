//! Synthetic models (`chord synth`): a full-size GGUF with random but numerically
//! sane weights, built from the header (metadata, tokenizer and tensor table) of a
//! real model, e.g. the first 100 MB of a 7B download.
//!
//! The output keeps the source's metadata and exact tensor table (names, shapes,
//! types, offsets, alignment): with no shape override its header bytes are the
//! source's. Values are drawn per row from a seeded generator (see [`fill`]) and
//! encoded into each tensor's type (see [`grid`]), so the file is deterministic for
//! a seed. The data is streamed: only a batch of rows is in memory at a time.

mod fill;
mod grid;
mod shape;

use std::io::{self, Write};

use crate::gguf::{Gguf, GgufError, GgufWriter};
use crate::quant::{self, QuantError};

use fill::Init;
pub use shape::{PlannedTensor, ShapeOverrides};

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("cannot reshape the model: {0}")]
    Shape(String),
}

/// Bytes of output produced per batch of rows (split between the threads).
const BATCH_BYTES: usize = 8 << 20;

/// A synthetic model ready to be written.
pub struct Synth {
    writer: GgufWriter,
    tensors: Vec<PlannedTensor>,
    inits: Vec<Init>,
    seed: u64,
    data_bytes: u64,
    tensor_bytes: u64,
}

/// Where a write is (for progress reports).
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    pub tensor: &'a str,
    pub tensor_index: usize,
    pub tensor_count: usize,
    /// Tensor bytes written so far, and in total (alignment padding not counted).
    pub done_bytes: u64,
    pub total_bytes: u64,
}

impl Synth {
    /// Plans the file from a parsed header (its tensor data may be missing).
    pub fn new(header: &Gguf, shape: &ShapeOverrides, seed: u64) -> Result<Self, SynthError> {
        let r = shape::reshape(header, shape)?;
        let mut writer = GgufWriter::new(r.metadata);
        let alignment = header.alignment;
        let (mut data_bytes, mut tensor_bytes) = (0u64, 0u64);
        let mut inits = Vec::with_capacity(r.tensors.len());
        for t in &r.tensors {
            let size = writer.add_tensor(&t.name, &t.dims, t.ty)?;
            data_bytes = (data_bytes + size).div_ceil(alignment) * alignment;
            tensor_bytes += size;
            inits.push(Init::for_tensor(&t.name, &t.dims, r.layers));
        }
        Ok(Self {
            writer,
            tensors: r.tensors,
            inits,
            seed,
            data_bytes,
            tensor_bytes,
        })
    }

    /// The tensors in file order.
    pub fn tensors(&self) -> &[PlannedTensor] {
        &self.tensors
    }

    /// Bytes of the tensor data section (the file is this plus the header).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Writes the file, generating rows on `threads` threads (the output does not
    /// depend on it). `progress` is called after every batch of rows.
    pub fn write(
        &self,
        out: &mut impl Write,
        threads: usize,
        mut progress: impl FnMut(Progress<'_>),
    ) -> Result<(), SynthError> {
        let threads = threads.max(1);
        let mut done = 0u64;
        let mut failure = None;
        let result = self.writer.write(out, |i, o| {
            let t = &self.tensors[i];
            let report = |done| Progress {
                tensor: &t.name,
                tensor_index: i,
                tensor_count: self.tensors.len(),
                done_bytes: done,
                total_bytes: self.tensor_bytes,
            };
            match self.write_tensor(i, o, threads, &mut done, &mut |d| progress(report(d))) {
                Ok(()) => Ok(()),
                Err(TensorError::Io(e)) => Err(e),
                Err(TensorError::Quant(e)) => {
                    failure = Some(e);
                    Err(io::Error::other("quantization failed"))
                }
            }
        });
        match (result, failure) {
            (_, Some(q)) => Err(SynthError::Quant(q)),
            (Err(e), None) => Err(SynthError::Gguf(e)),
            (Ok(()), None) => Ok(()),
        }
    }

    fn write_tensor(
        &self,
        i: usize,
        out: &mut dyn Write,
        threads: usize,
        done: &mut u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), TensorError> {
        let t = &self.tensors[i];
        let init = self.inits[i];
        let hash = fill::name_hash(&t.name);
        let row_len = t.dims[0] as usize;
        let rows: u64 = t.dims[1..].iter().product();
        let row_bytes = quant::row_bytes(t.ty, row_len)?;
        let per_thread = (BATCH_BYTES / threads / row_bytes).max(1) as u64;
        let mut buf = Vec::new();
        let mut values: Vec<Vec<f32>> = vec![vec![0.0; row_len]; threads];
        let mut r0 = 0u64;
        while r0 < rows {
            let n = (per_thread * threads as u64).min(rows - r0);
            buf.resize(n as usize * row_bytes, 0);
            let chunk = per_thread as usize * row_bytes;
            let results: Vec<Result<(), QuantError>> = std::thread::scope(|s| {
                let mut parts = buf
                    .chunks_mut(chunk)
                    .zip(values.iter_mut())
                    .enumerate()
                    .map(|(k, (dst, vals))| {
                        let first = r0 + k as u64 * per_thread;
                        move || fill::fill_rows(t.ty, init, self.seed, hash, first, vals, dst)
                    });
                // The calling thread does the first share itself.
                let own = parts.next();
                let spawned: Vec<_> = parts.map(|run| s.spawn(run)).collect();
                let mut results: Vec<_> = own.map(|mut run| run()).into_iter().collect();
                for h in spawned {
                    results.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
                }
                results
            });
            results.into_iter().collect::<Result<(), _>>()?;
            out.write_all(&buf)?;
            r0 += n;
            *done += buf.len() as u64;
            progress(*done);
        }
        Ok(())
    }
}

enum TensorError {
    Io(io::Error),
    Quant(QuantError),
}

impl From<io::Error> for TensorError {
    fn from(e: io::Error) -> Self {
        TensorError::Io(e)
    }
}

impl From<QuantError> for TensorError {
    fn from(e: QuantError) -> Self {
        TensorError::Quant(e)
    }
}
