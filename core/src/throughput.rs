//! The throughput workload of `chord bench`, shared by the native engine and the
//! component so that both run exactly the same work: one prompt evaluation (logits
//! of the last position only, as llama.cpp's `llama-bench` asks for), then greedy
//! decoding steps that never stop at an end-of-generation token (a benchmark must
//! produce the number of tokens it was asked for).

use crate::eval::argmax;
use crate::model::{DecoderModel, Logits, ModelError};

/// Runs `ids` through a fresh session of `model`, then `steps` greedy single-token
/// steps; returns the last token chosen (so that the work cannot be optimised away
/// and callers can check it).
pub fn run_tokens(model: &DecoderModel, ids: &[u32], steps: usize) -> Result<u32, ModelError> {
    let mut session = model.new_session(ids.len() + steps);
    let mut logits = model.forward(&mut session, ids, Logits::Last)?;
    for _ in 0..steps {
        let token = argmax(&logits);
        logits = model.forward(&mut session, &[token], Logits::Last)?;
    }
    Ok(argmax(&logits))
}
