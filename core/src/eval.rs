//! Parity evaluation in the shape of the llama.cpp reference fixtures: per-position
//! log-sum-exp and top-k logits of a prompt, then greedy decoding along an argmax path.

use crate::model::{DecoderModel, Logits, ModelError, Session};

/// The logits after one position, summarised.
#[derive(Clone, Debug, PartialEq)]
pub struct TopLogits {
    /// log-sum-exp over the whole vocabulary (so log p(t) = logit(t) - lse).
    pub lse: f32,
    /// The `k` highest `(token, logit)` pairs, highest first (ties: lower id first).
    pub top: Vec<(u32, f32)>,
}

/// One greedy step: the token fed, and the logits that followed it.
#[derive(Clone, Debug, PartialEq)]
pub struct GreedyStep {
    pub token: u32,
    pub next: TopLogits,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalResult {
    pub ids: Vec<u32>,
    pub positions: Vec<TopLogits>,
    pub greedy: Vec<GreedyStep>,
}

impl TopLogits {
    pub fn from_logits(logits: &[f32], k: usize) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
        let lse = max + sum.ln() as f32;
        Self {
            lse,
            top: top_k(logits, k),
        }
    }
}

/// The `k` largest logits, descending; equal logits in ascending token order.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let k = k.min(idx.len());
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, by_logit);
    }
    idx.truncate(k);
    idx.sort_by(by_logit);
    idx.into_iter().map(|i| (i, logits[i as usize])).collect()
}

/// Index of the highest logit (lowest index on ties), as greedy sampling picks it.
pub fn argmax(logits: &[f32]) -> u32 {
    top_k(logits, 1).first().map_or(0, |&(t, _)| t)
}

/// Logits of every prompt position (flattened), then each greedy step's (token, logits).
pub type GreedyRun = (Vec<f32>, Vec<(u32, Vec<f32>)>);

/// Full logits for every prompt position, then `steps` greedy steps: the token fed at
/// each step is `forced[s]` when given (forced decoding), else the argmax of the
/// previous logits. Returns the prompt logits and each step's (token, logits).
pub fn run_greedy(
    model: &DecoderModel,
    session: &mut Session,
    ids: &[u32],
    steps: usize,
    forced: Option<&[u32]>,
) -> Result<GreedyRun, ModelError> {
    let vocab = model.cfg.vocab_size;
    let prompt = model.forward(session, ids, Logits::All)?;
    let mut last = prompt[prompt.len() - vocab..].to_vec();
    let mut out = Vec::with_capacity(steps);
    for s in 0..steps {
        let token = match forced {
            Some(f) => *f.get(s).ok_or(ModelError::EmptyInput)?,
            None => argmax(&last),
        };
        last = model.forward(session, &[token], Logits::Last)?;
        out.push((token, last.clone()));
    }
    Ok((prompt, out))
}

/// What `chord eval` prints for one prompt.
pub fn evaluate(
    model: &DecoderModel,
    ids: &[u32],
    steps: usize,
    k: usize,
) -> Result<EvalResult, ModelError> {
    let mut session = model.new_session(ids.len() + steps);
    let (prompt, greedy) = run_greedy(model, &mut session, ids, steps, None)?;
    let vocab = model.cfg.vocab_size;
    Ok(EvalResult {
        ids: ids.to_vec(),
        positions: prompt
            .chunks_exact(vocab)
            .map(|l| TopLogits::from_logits(l, k))
            .collect(),
        greedy: greedy
            .into_iter()
            .map(|(token, l)| GreedyStep {
                token,
                next: TopLogits::from_logits(&l, k),
            })
            .collect(),
    })
}
