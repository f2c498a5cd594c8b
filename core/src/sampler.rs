//! The token sampler: turns one row of logits into the next token id.
//!
//! The chain and its semantics follow llama.cpp's default sampler chain
//! (`common_sampler` with `penalties → top-k → top-p → min-p → temp → dist`):
//!
//! 1. **penalties** (`llama_sampler_penalties_apply`), over the tokens of the last
//!    `repeat_last_n` calls to [`Sampler::accept`]: for a token seen `count > 0`
//!    times, a positive logit is divided by `repeat_penalty` and a non-positive one
//!    multiplied by it, then `count * frequency_penalty + presence_penalty` is
//!    subtracted;
//! 2. **top-k** keeps the `top_k` highest logits (`0` = off);
//! 3. **top-p** keeps the smallest set of most likely tokens whose probability (a
//!    softmax of the penalized logits, *before* temperature, as in llama.cpp)
//!    reaches `top_p` (`1` = off);
//! 4. **min-p** keeps the tokens whose probability is at least `min_p` times the
//!    most likely one's, i.e. `logit >= max_logit + ln(min_p)` (again before
//!    temperature; `0` = off);
//! 5. **temperature** divides the logits (`0` = greedy: penalties, then argmax);
//! 6. **softmax** and one **draw** from the seeded generator.
//!
//! Every stage keeps at least one token (llama.cpp's `min_keep` is 1 here).
//!
//! # Reproducibility
//!
//! The same seed, parameters, logits and accepted tokens give the same tokens on
//! every platform (native and wasm32): the generator is xoshiro256** seeded with
//! splitmix64, a draw is 53 random bits scaled into `[0, 1)`, and the probabilities
//! are computed in `f64` with an exponential implemented here from IEEE-754 basic
//! operations only (no platform `libm`, whose last-bit rounding differs between
//! platforms). Candidates are always visited in a canonical order (descending logit,
//! ties by ascending id, after a top-k cut; id order otherwise), never in an order
//! that depends on the standard library's sort or selection algorithms. A
//! non-greedy [`Sampler::sample`] consumes exactly one generator output; greedy
//! decoding consumes none.
//!
//! # Logits that are not finite
//!
//! NaN logits are treated as `-inf` (the token can never be drawn). If one or more
//! logits are `+inf` (after penalties), the draw is uniform among those tokens (the
//! first `top_k` of them by id, when there are more). If no logit is above `-inf`,
//! sampling fails with [`SamplerError::NoFiniteLogits`]; an empty slice gives
//! [`SamplerError::EmptyLogits`]. Nothing panics.
//!
//! # Cost
//!
//! Vocabularies have 50k–152k entries; the sampler never sorts them and never
//! allocates per call once its buffers have grown. Penalties are applied as a
//! sparse list of overridden logits (at most `repeat_last_n` of them) merged into
//! each pass over the slice, so the logits are never copied:
//!
//! * greedy: one pass (argmax);
//! * top-k (`0 < top_k < vocabulary`): one streaming pass that keeps the entries
//!   above the running k-th best logit in a buffer of about `2k`, cut back with
//!   `select_nth_unstable` when it fills; then a sort of the `k` survivors, on which
//!   top-p, min-p and the softmax run;
//! * no top-k: one pass for the maximum, then one that collects the candidates above
//!   the min-p bound and, when top-p is on, sums the probability mass in a
//!   histogram by distance to the maximum (1/16-nat buckets); only the bucket where
//!   the cumulative mass reaches `top_p` is sorted.

use crate::math;
use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

/// Parameters of the sampler. The defaults are llama.cpp's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy decoding (argmax of the penalized
    /// logits, ties to the lowest id). Must be finite and `>= 0`. Default 0.8.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` disables. Default 40.
    pub top_k: u32,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose
    /// probability reaches `top_p`. Must be in `(0, 1]`; `1` disables. Default 0.95.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the most likely one's.
    /// Must be in `[0, 1]`; `0` disables. Default 0.05.
    pub min_p: f32,
    /// Repetition penalty for tokens in the penalty window. Must be finite and
    /// `> 0`; `1` disables. Default 1.0.
    pub repeat_penalty: f32,
    /// Size of the penalty window: the last `repeat_last_n` accepted tokens. `0`
    /// disables all three penalties. Default 64.
    pub repeat_last_n: u32,
    /// Subtracted `count` times from the logit of a token seen `count` times in the
    /// window (OpenAI-style). Must be finite; negative values encourage repetition.
    /// Default 0.
    pub frequency_penalty: f32,
    /// Subtracted once from the logit of every token seen in the window
    /// (OpenAI-style). Must be finite. Default 0.
    pub presence_penalty: f32,
    /// Seed of the random generator. Every value, `0` included, is an ordinary
    /// seed: there is no "random seed" sentinel, so generation is reproducible
    /// unless the caller picks a seed from an entropy source. Default 0.
    pub seed: u64,
    /// Maximum number of tokens to generate (used by the generation loop, not by
    /// the sampler itself). Must be `>= 1`. Default 256.
    pub max_tokens: u32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
            max_tokens: 256,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: the defaults with `temperature = 0` and every filter off
    /// (they cannot change the argmax anyway) and no penalties.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Self::default()
        }
    }

    /// Whether these parameters decode greedily (`temperature == 0`).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Whether any of the three penalties changes logits.
    pub fn penalties_enabled(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }

    /// Checks every parameter; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), SamplerError> {
        fn invalid(name: &'static str, value: f32, expected: &'static str) -> SamplerError {
            SamplerError::InvalidParameter {
                name,
                value: f64::from(value),
                expected,
            }
        }
        let t = self.temperature;
        if !t.is_finite() || t < 0.0 {
            return Err(invalid("temperature", t, "a finite number >= 0"));
        }
        let p = self.top_p;
        if !(p > 0.0 && p <= 1.0) {
            return Err(invalid("top_p", p, "a number in (0, 1]"));
        }
        let m = self.min_p;
        if !(0.0..=1.0).contains(&m) {
            return Err(invalid("min_p", m, "a number in [0, 1]"));
        }
        let r = self.repeat_penalty;
        if !r.is_finite() || r <= 0.0 {
            return Err(invalid("repeat_penalty", r, "a finite number > 0"));
        }
        if !self.frequency_penalty.is_finite() {
            return Err(invalid(
                "frequency_penalty",
                self.frequency_penalty,
                "a finite number",
            ));
        }
        if !self.presence_penalty.is_finite() {
            return Err(invalid(
                "presence_penalty",
                self.presence_penalty,
                "a finite number",
            ));
        }
        if self.max_tokens == 0 {
            return Err(SamplerError::InvalidParameter {
                name: "max_tokens",
                value: 0.0,
                expected: "an integer >= 1",
            });
        }
        Ok(())
    }
}

/// Errors of the sampler.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SamplerError {
    /// A sampling parameter is out of range (or NaN).
    #[error("invalid sampling parameter `{name}` = {value}: expected {expected}")]
    InvalidParameter {
        /// The field of [`SamplingParams`], e.g. `"top_p"`.
        name: &'static str,
        /// The offending value.
        value: f64,
        /// What the field accepts.
        expected: &'static str,
    },
    /// The logits slice is empty.
    #[error("cannot sample from an empty logits vector")]
    EmptyLogits,
    /// No logit is above `-inf` (all are NaN or `-inf`, possibly after penalties).
    #[error("cannot sample: none of the {len} logits is above -inf (all NaN or -inf)")]
    NoFiniteLogits {
        /// Length of the logits vector.
        len: usize,
    },
    /// The logits vector is longer than the `u32` token id range.
    #[error("a vocabulary of {len} logits exceeds the u32 token id range")]
    VocabTooLarge {
        /// Length of the logits vector.
        len: usize,
    },
}

/// One penalized logit (llama.cpp's formula): the repeat penalty divides a positive
/// logit and multiplies a non-positive one, then the frequency and presence
/// penalties are subtracted. `count` is the number of occurrences in the window
/// (`0` leaves the logit unchanged).
#[inline]
fn penalize(logit: f32, count: u32, params: &SamplingParams) -> f32 {
    if count == 0 {
        return logit;
    }
    let mut l = logit;
    if l <= 0.0 {
        l *= params.repeat_penalty;
    } else {
        l /= params.repeat_penalty;
    }
    l - (count as f32 * params.frequency_penalty + params.presence_penalty)
}

/// Applies the repetition, frequency and presence penalties of `params` to `logits`
/// in place, over the last `params.repeat_last_n` tokens of `history` (oldest
/// first). Token ids outside `logits` are ignored. This is the first stage of
/// [`Sampler::sample`], exposed for tests and for callers that sample themselves.
pub fn apply_penalties(logits: &mut [f32], history: &[u32], params: &SamplingParams) {
    if !params.penalties_enabled() {
        return;
    }
    let n = (params.repeat_last_n as usize).min(history.len());
    let mut window = history[history.len() - n..].to_vec();
    window.sort_unstable();
    for run in window.chunk_by(|a, b| a == b) {
        let token = run[0] as usize;
        if let Some(l) = logits.get_mut(token) {
            *l = penalize(*l, run.len() as u32, params);
        }
    }
}

/// xoshiro256** (Blackman & Vigna), seeded by expanding a `u64` with splitmix64.
/// Integer-only, hence bit-identical on every platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xoshiro256StarStar {
    s: [u64; 4],
}

impl Xoshiro256StarStar {
    /// The generator whose state is the first four outputs of splitmix64 started
    /// at `seed` (the seeding recommended by the authors).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform number in `[0, 1)`: the top 53 bits of [`Self::next_u64`] times
    /// `2^-53` (exact, so identical everywhere).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A vocabulary entry on its way through the chain.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    id: u32,
    logit: f32,
}

/// Descending logit, ties by ascending id: a total order (no NaN ever reaches it),
/// so every sort or selection by it has one result.
#[inline]
fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// Calls `f(id, logit)` for every vocabulary entry in id order, with the logits of
/// `overrides` (ascending, in-range ids: the penalized tokens) replacing `logits`.
#[inline]
fn for_each_logit(logits: &[f32], overrides: &[(u32, f32)], mut f: impl FnMut(u32, f32)) {
    let mut start = 0usize;
    for &(id, value) in overrides {
        let id = id as usize;
        for (i, &l) in logits[start..id].iter().enumerate() {
            f((start + i) as u32, l);
        }
        f(id as u32, value);
        start = id + 1;
    }
    for (i, &l) in logits[start..].iter().enumerate() {
        f((start + i) as u32, l);
    }
}

/// Top-p without top-k histograms the probability mass by distance to the maximum
/// logit, in buckets of `1/BUCKETS_PER_NAT` nats (the last one takes everything
/// further than `N_BUCKETS / BUCKETS_PER_NAT` nats); only the bucket where the
/// cumulative mass reaches `top_p` is sorted.
const N_BUCKETS: usize = 512;
const BUCKETS_PER_NAT: f64 = 16.0;

/// The bucket of a logit `d = max - logit >= 0` nats below the maximum.
#[inline]
fn bucket(d: f64) -> usize {
    let b = d * BUCKETS_PER_NAT;
    if b < N_BUCKETS as f64 {
        b as usize
    } else {
        N_BUCKETS - 1
    }
}

/// A stateful sampler: parameters, random generator, penalty window and reusable
/// buffers. One per generation stream.
///
/// [`Sampler::sample`] does not record the token it returns: call
/// [`Sampler::accept`] with every token that enters the sequence (the generated
/// ones, and the prompt's too if it should count for the penalties), or use
/// [`Sampler::sample_and_accept`].
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    /// `ln(min_p)` (when `min_p > 0`), computed once.
    ln_min_p: f64,
    rng: Xoshiro256StarStar,
    /// The last `repeat_last_n` accepted tokens, oldest first.
    window: VecDeque<u32>,
    /// Occurrences of each token in `window` (no zero entries), ascending ids.
    counts: BTreeMap<u32, u32>,
    // Reusable buffers.
    /// The penalized logits of this call, ascending ids.
    overrides: Vec<(u32, f32)>,
    /// The surviving candidates.
    cands: Vec<Candidate>,
    /// The candidates of the top-p boundary bucket.
    scratch: Vec<Candidate>,
    /// Probability mass per bucket (top-p without top-k).
    buckets: Vec<f64>,
    /// Unnormalized probabilities of `cands`.
    weights: Vec<f64>,
}

impl Sampler {
    /// A sampler for `params` (validated), with its generator seeded from
    /// `params.seed` and an empty penalty window.
    pub fn new(params: &SamplingParams) -> Result<Self, SamplerError> {
        params.validate()?;
        let ln_min_p = if params.min_p > 0.0 {
            math::ln(f64::from(params.min_p))
        } else {
            f64::NEG_INFINITY
        };
        Ok(Self {
            params: *params,
            ln_min_p,
            rng: Xoshiro256StarStar::seed_from_u64(params.seed),
            window: VecDeque::new(),
            counts: BTreeMap::new(),
            overrides: Vec::new(),
            cands: Vec::new(),
            scratch: Vec::new(),
            buckets: Vec::new(),
            weights: Vec::new(),
        })
    }

    /// The parameters this sampler was built with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The tokens of the penalty window, oldest first.
    pub fn recent_tokens(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.window.iter().copied()
    }

    /// Records `token` into the penalty window (dropping the oldest token once the
    /// window holds `repeat_last_n`). Ids outside the vocabulary are kept but never
    /// penalize anything.
    pub fn accept(&mut self, token: u32) {
        let n = self.params.repeat_last_n as usize;
        if n == 0 {
            return;
        }
        if self.window.len() >= n {
            if let Some(old) = self.window.pop_front() {
                if let Some(c) = self.counts.get_mut(&old) {
                    *c -= 1;
                    if *c == 0 {
                        self.counts.remove(&old);
                    }
                }
            }
        }
        self.window.push_back(token);
        *self.counts.entry(token).or_insert(0) += 1;
    }

    /// Empties the penalty window and reseeds the generator with `params.seed`:
    /// the sampler then behaves exactly like a new one.
    pub fn reset(&mut self) {
        self.window.clear();
        self.counts.clear();
        self.rng = Xoshiro256StarStar::seed_from_u64(self.params.seed);
    }

    /// Samples the next token from `logits` (one per vocabulary entry) through the
    /// chain described in the module documentation. Does not record the token.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SamplerError> {
        if self.params.is_greedy() {
            return self.greedy(logits);
        }
        self.prepare(logits)?;
        let total: f64 = self.weights.iter().sum();
        let u = self.rng.next_f64() * total;
        let mut cum = 0.0;
        for (c, &w) in self.cands.iter().zip(&self.weights) {
            cum += w;
            if u < cum {
                return Ok(c.id);
            }
        }
        // Unreachable: `cum` ends equal to `total` (same additions in the same
        // order) and `u < total`. Fall back to the last token with a weight.
        let i = self.weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
        Ok(self.cands[i].id)
    }

    /// [`Sampler::sample`], then [`Sampler::accept`] of the sampled token.
    pub fn sample_and_accept(&mut self, logits: &[f32]) -> Result<u32, SamplerError> {
        let token = self.sample(logits)?;
        self.accept(token);
        Ok(token)
    }

    /// The distribution [`Sampler::sample`] would draw from for `logits`: the
    /// surviving `(token, probability)` pairs, probabilities summing to 1 — most
    /// likely first (ties by id) when top-k cut the vocabulary, otherwise in id
    /// order. Greedy parameters give the argmax with probability 1. Touches neither
    /// the generator nor the penalty window (for tests, diagnostics, logprobs).
    pub fn distribution(&mut self, logits: &[f32]) -> Result<Vec<(u32, f64)>, SamplerError> {
        if self.params.is_greedy() {
            return Ok(vec![(self.greedy(logits)?, 1.0)]);
        }
        self.prepare(logits)?;
        let total: f64 = self.weights.iter().sum();
        Ok(self
            .cands
            .iter()
            .zip(&self.weights)
            .map(|(c, &w)| (c.id, w / total))
            .collect())
    }

    /// Checks the length and fills `overrides` with the penalized logits.
    fn start(&mut self, logits: &[f32]) -> Result<(), SamplerError> {
        if logits.is_empty() {
            return Err(SamplerError::EmptyLogits);
        }
        if u32::try_from(logits.len()).is_err() {
            return Err(SamplerError::VocabTooLarge { len: logits.len() });
        }
        self.overrides.clear();
        if self.params.penalties_enabled() {
            let params = &self.params;
            self.overrides
                .extend(self.counts.iter().filter_map(|(&token, &count)| {
                    let l = *logits.get(token as usize)?;
                    Some((token, penalize(l, count, params)))
                }));
        }
        Ok(())
    }

    /// Penalties, then argmax (NaN skipped, ties to the lowest id). Never touches
    /// the generator.
    fn greedy(&mut self, logits: &[f32]) -> Result<u32, SamplerError> {
        self.start(logits)?;
        let mut best: Option<u32> = None;
        let mut best_logit = f32::NEG_INFINITY;
        for_each_logit(logits, &self.overrides, |id, l| {
            if l > best_logit {
                best_logit = l;
                best = Some(id);
            }
        });
        best.ok_or(SamplerError::NoFiniteLogits { len: logits.len() })
    }

    /// Runs the chain up to the softmax: `cands` = the survivors (sorted by
    /// descending logit after a top-k cut, otherwise in id order) and `weights` =
    /// their unnormalized probabilities `exp((l - max) / T)`.
    fn prepare(&mut self, logits: &[f32]) -> Result<(), SamplerError> {
        self.start(logits)?;
        let k = self.params.top_k as usize;
        let max = if k > 0 && k < logits.len() {
            self.top_k_chain(logits, k)
        } else {
            self.full_chain(logits)
        }
        .ok_or(SamplerError::NoFiniteLogits { len: logits.len() })?;

        // temperature + softmax (unnormalized).
        let t = f64::from(self.params.temperature);
        self.weights.clear();
        self.weights.extend(
            self.cands
                .iter()
                .map(|c| math::exp((f64::from(c.logit) - max) / t)),
        );
        Ok(())
    }

    /// If the best candidate is `+inf`, keeps only the `+inf` ones, at logit 0
    /// (a uniform draw among them). Returns whether it did.
    fn keep_infinite(&mut self, max: f32) -> bool {
        if max != f32::INFINITY {
            return false;
        }
        self.cands.retain(|c| c.logit == f32::INFINITY);
        self.cands.iter_mut().for_each(|c| c.logit = 0.0);
        true
    }

    /// Top-k (`0 < k < vocabulary`), then top-p and min-p on the `k` survivors.
    /// Leaves `cands` sorted; returns the maximum logit (`None`: nothing above
    /// `-inf`).
    fn top_k_chain(&mut self, logits: &[f32], k: usize) -> Option<f64> {
        // Streaming selection: a buffer of at most `cap` entries above the running
        // k-th best logit, cut back to the best k whenever it fills up. Entries
        // equal to the threshold come later in id order, so they rank below it.
        let cap = k.saturating_mul(2).max(k + 256);
        let cands = &mut self.cands;
        cands.clear();
        let mut threshold = f32::NEG_INFINITY; // also drops NaN and -inf
        for_each_logit(logits, &self.overrides, |id, logit| {
            if logit > threshold {
                cands.push(Candidate { id, logit });
                if cands.len() >= cap {
                    cands.select_nth_unstable_by(k - 1, by_logit_desc);
                    cands.truncate(k);
                    threshold = cands[k - 1].logit;
                }
            }
        });
        if cands.len() > k {
            cands.select_nth_unstable_by(k - 1, by_logit_desc);
            cands.truncate(k);
        }
        cands.sort_unstable_by(by_logit_desc);
        let max = cands.first()?.logit;
        if self.keep_infinite(max) {
            return Some(0.0);
        }
        let max = f64::from(max);
        let cands = &mut self.cands;

        // top-p, on the softmax at temperature 1.
        if self.params.top_p < 1.0 {
            let z: f64 = cands
                .iter()
                .map(|c| math::exp(f64::from(c.logit) - max))
                .sum();
            let target = f64::from(self.params.top_p) * z;
            let mut cum = 0.0;
            if let Some(i) = cands.iter().position(|c| {
                cum += math::exp(f64::from(c.logit) - max);
                cum >= target
            }) {
                cands.truncate(i + 1);
            }
        }

        // min-p: p_i >= min_p * p_max  <=>  l_i >= l_max + ln(min_p).
        if self.params.min_p > 0.0 {
            let floor = max + self.ln_min_p;
            cands.retain(|c| f64::from(c.logit) >= floor);
        }
        Some(max)
    }

    /// No top-k cut: top-p and min-p over the whole vocabulary without sorting it.
    /// Leaves `cands` in id order; returns the maximum logit (`None`: nothing above
    /// `-inf`).
    ///
    /// Both filters keep a prefix of the vocabulary in descending logit order and
    /// never drop the maximum, so their composition is the shorter prefix: min-p's
    /// is `logit >= max + ln(min_p)` and bounds what is collected at all; top-p's
    /// boundary is located through the mass histogram, sorting one bucket only.
    fn full_chain(&mut self, logits: &[f32]) -> Option<f64> {
        let p = self.params;
        let mut max = f32::NEG_INFINITY;
        for_each_logit(logits, &self.overrides, |_, l| {
            if l > max {
                max = l;
            }
        });
        if max == f32::NEG_INFINITY {
            return None;
        }
        if max == f32::INFINITY {
            self.cands.clear();
            let cands = &mut self.cands;
            for_each_logit(logits, &self.overrides, |id, logit| {
                if logit == f32::INFINITY {
                    cands.push(Candidate { id, logit });
                }
            });
            self.keep_infinite(max);
            return Some(0.0);
        }
        let max = f64::from(max);
        // min-p bound (-inf when off); NaN and -inf never pass `logit > -inf`.
        let floor = max + self.ln_min_p;
        let cands = &mut self.cands;
        cands.clear();

        if p.top_p >= 1.0 {
            for_each_logit(logits, &self.overrides, |id, logit| {
                if logit > f32::NEG_INFINITY && f64::from(logit) >= floor {
                    cands.push(Candidate { id, logit });
                }
            });
            return Some(max);
        }

        // top-p: total mass and mass per bucket, in one pass with the collection.
        let buckets = &mut self.buckets;
        buckets.clear();
        buckets.resize(N_BUCKETS, 0.0);
        let mut z = 0.0;
        for_each_logit(logits, &self.overrides, |id, logit| {
            if logit > f32::NEG_INFINITY {
                let l = f64::from(logit);
                let w = math::exp(l - max);
                z += w;
                buckets[bucket(max - l)] += w;
                if l >= floor {
                    cands.push(Candidate { id, logit });
                }
            }
        });
        let target = f64::from(p.top_p) * z;
        let mut before = 0.0; // mass of the buckets before the boundary one
        let Some(boundary_bucket) = buckets.iter().position(|&m| {
            if before + m >= target {
                true
            } else {
                before += m;
                false
            }
        }) else {
            return Some(max); // rounding: the whole mass is below the target
        };
        let in_bucket = |c: &Candidate| bucket(max - f64::from(c.logit));

        // Sort the collected candidates of the boundary bucket and find the token
        // where the cumulative mass reaches the target (if none, the rest of the
        // bucket lies below the min-p bound and the whole collected bucket stays).
        let scratch = &mut self.scratch;
        scratch.clear();
        scratch.extend(cands.iter().filter(|c| in_bucket(c) == boundary_bucket));
        scratch.sort_unstable_by(by_logit_desc);
        let mut cum = before;
        let last = scratch.iter().find(|c| {
            cum += math::exp(f64::from(c.logit) - max);
            cum >= target
        });
        match last.copied() {
            Some(last) => cands.retain(|c| {
                let b = in_bucket(c);
                b < boundary_bucket
                    || (b == boundary_bucket && by_logit_desc(c, &last) != Ordering::Greater)
            }),
            None => cands.retain(|c| in_bucket(c) <= boundary_bucket),
        }
        Some(max)
    }
}
