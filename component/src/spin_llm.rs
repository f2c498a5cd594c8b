//! Spin's LLM interface (`fermyon:spin/llm@2.0.0`) over the engine's own exports, so
//! that an application written against Spin's LLM API can be composed onto this
//! component (`wac plug`) and run on any Wasmtime host.
//!
//! The `model` argument names a model the host provides, exactly as
//! `inference.select-model` does ("" is the host's default; a packed component
//! has only ""); any other name is `model-not-supported`.

use crate::exports::fermyon::spin::llm::{
    self, EmbeddingsResult, EmbeddingsUsage, InferencingParams, InferencingResult, InferencingUsage,
};
use crate::exports::wasm_chord::llm::inference::Guest as _;
use crate::wasm_chord::llm::types::{EmbedOptions, Error, SamplingParams};
use crate::Component;

/// Spin's documented defaults for `infer` without parameters.
const SPIN_DEFAULTS: InferencingParams = InferencingParams {
    max_tokens: 100,
    repeat_penalty: 1.1,
    repeat_penalty_last_n_token_count: 64,
    temperature: 0.8,
    top_k: 40,
    top_p: 0.9,
};

fn spin_error(e: Error) -> llm::Error {
    match e {
        Error::ModelNotFound | Error::UnsupportedModel(_) => llm::Error::ModelNotSupported,
        Error::InvalidInput(m) | Error::ContextOverflow(m) => llm::Error::InvalidInput(m),
        Error::OutOfMemory(m) | Error::Runtime(m) => llm::Error::RuntimeError(m),
    }
}

/// Switches to `model` (a no-op when it already is the instance's loaded model).
fn select(model: &str) -> Result<(), llm::Error> {
    Component::select_model(model.to_string()).map_err(spin_error)?;
    Ok(())
}

/// Spin's parameters in the engine's terms. Spin has no min-p, so it is off (0)
/// rather than the engine's default; a repeat penalty of 0, which Spin's own tests
/// pass to mean "none", disables the penalty.
fn sampling(p: &InferencingParams) -> SamplingParams {
    SamplingParams {
        max_tokens: Some(p.max_tokens),
        temperature: Some(p.temperature),
        top_k: Some(p.top_k),
        top_p: Some(p.top_p),
        min_p: Some(0.0),
        repeat_penalty: Some(if p.repeat_penalty == 0.0 {
            1.0
        } else {
            p.repeat_penalty
        }),
        repeat_last_n: Some(p.repeat_penalty_last_n_token_count),
        frequency_penalty: None,
        presence_penalty: None,
        seed: None,
    }
}

impl llm::Guest for Component {
    fn infer(
        model: String,
        prompt: String,
        params: Option<InferencingParams>,
    ) -> Result<InferencingResult, llm::Error> {
        select(&model)?;
        let params = sampling(params.as_ref().unwrap_or(&SPIN_DEFAULTS));
        let r = Component::generate(prompt, params).map_err(spin_error)?;
        Ok(InferencingResult {
            text: r.text,
            usage: InferencingUsage {
                prompt_token_count: r.usage.prompt_tokens,
                generated_token_count: r.usage.generated_tokens,
            },
        })
    }

    fn generate_embeddings(
        model: String,
        text: Vec<String>,
    ) -> Result<EmbeddingsResult, llm::Error> {
        select(&model)?;
        let options = EmbedOptions {
            pooling: None,
            normalize: None,
            truncate: false,
        };
        let e = Component::embed(text, options).map_err(spin_error)?;
        let prompt_token_count = e.data.iter().map(|d| d.ids.len() as u32).sum();
        Ok(EmbeddingsResult {
            embeddings: e.data.into_iter().map(|d| d.values).collect(),
            usage: EmbeddingsUsage { prompt_token_count },
        })
    }
}
