//! Request bodies of `/v1/completions`, `/v1/chat/completions` and `/v1/embeddings`:
//! parsing and validation into what the engine takes.

use serde::Deserialize;

use super::error::ApiError;
use crate::chat::Message;
use crate::sampler::SamplingParams;

/// Most stop strings per request (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// A string or a list of strings (`prompt`, `stop`, `input`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The parameters completions and chat completions share. Unknown fields are
/// ignored, as OpenAI-compatible servers do (clients send `user`, `logprobs`...).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
struct Common {
    model: Option<String>,
    max_tokens: Option<u32>,
    /// The chat API's newer name for `max_tokens`.
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    min_p: Option<f32>,
    seed: Option<u64>,
    stop: Option<OneOrMany>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    n: Option<u32>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
}

/// What a completion or chat completion asks for, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Generate {
    pub model: Option<String>,
    /// Sampling; `max_tokens` is the requested one (the server may lower it to what
    /// the context leaves, see `max_tokens_requested`).
    pub params: SamplingParams,
    /// Whether the client set `max_tokens`.
    pub max_tokens_requested: bool,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    pub prompt: String,
    pub gen: Generate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub gen: Generate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingRequest {
    pub model: Option<String>,
    pub input: Vec<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            "the request body is empty: send a JSON object",
            None,
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}"), None))
}

impl Common {
    fn validate(self) -> Result<Generate, ApiError> {
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(ApiError::invalid(
                format!("n = {n} is not supported: this server returns one choice (n = 1)"),
                Some("n"),
            ));
        }
        let stop = self.stop.map(OneOrMany::into_vec).unwrap_or_default();
        if stop.len() > MAX_STOP {
            return Err(ApiError::invalid(
                format!("at most {MAX_STOP} stop sequences are allowed"),
                Some("stop"),
            ));
        }
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                "stop sequences must not be empty",
                Some("stop"),
            ));
        }
        let d = SamplingParams::default();
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        let params = SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.unwrap_or(d.top_k),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            seed: self.seed.unwrap_or(d.seed),
            max_tokens: max_tokens.unwrap_or(d.max_tokens),
            ..d
        };
        check_range("temperature", params.temperature, 0.0, 2.0)?;
        check_range("presence_penalty", params.presence_penalty, -2.0, 2.0)?;
        check_range("frequency_penalty", params.frequency_penalty, -2.0, 2.0)?;
        params.validate().map_err(|e| {
            let param = match &e {
                crate::sampler::SamplerError::InvalidParameter { name, .. } => Some(*name),
                _ => None,
            };
            ApiError::invalid(e.to_string(), param)
        })?;
        Ok(Generate {
            model: self.model,
            params,
            max_tokens_requested: max_tokens.is_some(),
            stop,
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
        })
    }
}

fn check_range(name: &'static str, v: f32, lo: f32, hi: f32) -> Result<(), ApiError> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            format!("{name} = {v} is out of range [{lo}, {hi}]"),
            Some(name),
        ))
    }
}

impl CompletionRequest {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        struct Raw {
            prompt: Option<OneOrMany>,
            #[serde(flatten)]
            common: Common,
        }
        let raw: Raw = parse(body)?;
        let prompt = match raw.prompt {
            Some(OneOrMany::One(p)) => p,
            Some(OneOrMany::Many(mut v)) if v.len() == 1 => v.remove(0),
            Some(OneOrMany::Many(_)) => {
                return Err(ApiError::invalid(
                    "only one prompt per request is supported",
                    Some("prompt"),
                ))
            }
            None => return Err(ApiError::invalid("'prompt' is required", Some("prompt"))),
        };
        if prompt.is_empty() {
            return Err(ApiError::invalid(
                "the prompt must not be empty",
                Some("prompt"),
            ));
        }
        Ok(Self {
            prompt,
            gen: raw.common.validate()?,
        })
    }
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        struct Raw {
            messages: Option<Vec<Message>>,
            #[serde(flatten)]
            common: Common,
        }
        let raw: Raw = parse(body)?;
        let messages = raw.messages.filter(|m| !m.is_empty()).ok_or_else(|| {
            ApiError::invalid("'messages' must be a non-empty list", Some("messages"))
        })?;
        Ok(Self {
            messages,
            gen: raw.common.validate()?,
        })
    }
}

impl EmbeddingRequest {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        struct Raw {
            model: Option<String>,
            input: Option<OneOrMany>,
            encoding_format: Option<String>,
        }
        let raw: Raw = parse(body)?;
        if let Some(f) = raw.encoding_format.filter(|f| f != "float") {
            return Err(ApiError::invalid(
                format!("encoding_format '{f}' is not supported (use \"float\")"),
                Some("encoding_format"),
            ));
        }
        let input = raw
            .input
            .map(OneOrMany::into_vec)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    "'input' must be a string or a non-empty list of strings",
                    Some("input"),
                )
            })?;
        if input.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                "inputs must not be empty strings",
                Some("input"),
            ));
        }
        Ok(Self {
            model: raw.model,
            input,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_defaults_and_params() {
        let r = CompletionRequest::parse(br#"{"prompt":"Hi","user":"x"}"#).unwrap();
        assert_eq!(r.prompt, "Hi");
        assert_eq!(r.gen.params, SamplingParams::default());
        assert!(!r.gen.max_tokens_requested && !r.gen.stream);
        let r = CompletionRequest::parse(
            br#"{"model":"m","prompt":["Hi"],"max_tokens":5,"temperature":0,"top_p":0.5,
                "top_k":3,"min_p":0.1,"seed":7,"stop":"\n","presence_penalty":0.5,
                "frequency_penalty":-0.5,"n":1,"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        let p = r.gen.params;
        assert_eq!(
            (
                p.max_tokens,
                p.temperature,
                p.top_p,
                p.top_k,
                p.min_p,
                p.seed
            ),
            (5, 0.0, 0.5, 3, 0.1, 7)
        );
        assert_eq!((p.presence_penalty, p.frequency_penalty), (0.5, -0.5));
        assert_eq!(r.gen.stop, ["\n"]);
        assert!(r.gen.stream && r.gen.include_usage && r.gen.max_tokens_requested);
        assert_eq!(r.gen.model.as_deref(), Some("m"));
    }

    fn err(body: &str) -> ApiError {
        CompletionRequest::parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn invalid_completions() {
        assert_eq!(err("{").status, 400);
        assert_eq!(err("").status, 400);
        assert_eq!(err("[]").status, 400);
        assert_eq!(err(r#"{"max_tokens":3}"#).param.as_deref(), Some("prompt"));
        assert_eq!(err(r#"{"prompt":""}"#).param.as_deref(), Some("prompt"));
        assert_eq!(
            err(r#"{"prompt":["a","b"]}"#).param.as_deref(),
            Some("prompt")
        );
        assert_eq!(err(r#"{"prompt":"a","n":2}"#).param.as_deref(), Some("n"));
        assert_eq!(
            err(r#"{"prompt":"a","temperature":-1}"#).param.as_deref(),
            Some("temperature")
        );
        assert_eq!(
            err(r#"{"prompt":"a","top_p":0}"#).param.as_deref(),
            Some("top_p")
        );
        assert_eq!(
            err(r#"{"prompt":"a","max_tokens":0}"#).param.as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            err(r#"{"prompt":"a","stop":["a","b","c","d","e"]}"#)
                .param
                .as_deref(),
            Some("stop")
        );
        assert_eq!(err(r#"{"prompt":"a","max_tokens":"x"}"#).status, 400);
    }

    #[test]
    fn chat_and_embeddings() {
        let r = ChatRequest::parse(
            br#"{"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":9}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0].content, "Hi");
        assert_eq!(r.gen.params.max_tokens, 9);
        assert!(ChatRequest::parse(br#"{"messages":[]}"#).is_err());
        assert!(ChatRequest::parse(br#"{"messages":[{"role":"user"}]}"#).is_err());
        let e = EmbeddingRequest::parse(br#"{"input":"a"}"#).unwrap();
        assert_eq!(e.input, ["a"]);
        let e = EmbeddingRequest::parse(br#"{"input":["a","b"],"model":"m"}"#).unwrap();
        assert_eq!(e.input.len(), 2);
        assert!(EmbeddingRequest::parse(br#"{"input":[]}"#).is_err());
        assert!(EmbeddingRequest::parse(br#"{"input":"a","encoding_format":"base64"}"#).is_err());
    }
}
