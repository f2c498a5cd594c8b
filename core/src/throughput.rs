//! The throughput workload of `chord bench`, shared by the native engine and the
//! component so that both run exactly the same work: one prompt evaluation (logits
//! of the last position only, as llama.cpp's `llama-bench` asks for), then greedy
//! decoding steps that never stop at an end-of-generation token (a benchmark must
//! produce the number of tokens it was asked for).

use crate::model::{DecoderModel, Logits, ModelError};

/// Index of the highest logit, lowest index on ties, in `f32::total_cmp` order (the
/// choice of `eval::argmax`), in one pass without allocating: llama-bench samples
/// nothing, so the benchmark's token choice must cost next to nothing.
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, l) in logits.iter().enumerate().skip(1) {
        if l.total_cmp(&logits[best]).is_gt() {
            best = i;
        }
    }
    best as u32
}

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

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_matches_eval_argmax() {
        let cases: [&[f32]; 5] = [
            &[0.0],
            &[1.0, 3.0, 3.0, -2.0],
            &[-1.0, -0.0, 0.0, -0.5],
            &[f32::NEG_INFINITY, f32::INFINITY, 2.0],
            &[1.0, f32::NAN, 5.0],
        ];
        for logits in cases {
            assert_eq!(argmax(logits), crate::eval::argmax(logits), "{logits:?}");
        }
    }
}
