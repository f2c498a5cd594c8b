//! OpenAI JSON response shapes.

use serde_json::{json, Value};

use crate::engine::{FinishReason, Usage};

/// Which endpoint a generation answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Completion,
    Chat,
}

/// Identity of one response: the same in every chunk of a stream.
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Meta {
    pub fn new(kind: Kind, model: &str) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let prefix = match kind {
            Kind::Completion => "cmpl",
            Kind::Chat => "chatcmpl",
        };
        Self {
            id: format!("{prefix}-{:x}", now.as_nanos()),
            created: now.as_secs(),
            model: model.to_string(),
        }
    }
}

pub fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

pub fn usage(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// The whole (non-streamed) answer.
pub fn full(kind: Kind, meta: &Meta, text: &str, finish: FinishReason, u: Usage) -> Value {
    let (object, choice) = match kind {
        Kind::Completion => (
            "text_completion",
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish_name(finish)}),
        ),
        Kind::Chat => (
            "chat.completion",
            json!({"index": 0, "message": {"role": "assistant", "content": text},
                   "logprobs": null, "finish_reason": finish_name(finish)}),
        ),
    };
    json!({
        "id": meta.id, "object": object, "created": meta.created, "model": meta.model,
        "choices": [choice], "usage": usage(u),
    })
}

/// One streamed chunk: `text` (for chat, `role` announces the assistant in the
/// first chunk) and, in the last one, the finish reason.
pub fn chunk(
    kind: Kind,
    meta: &Meta,
    text: Option<&str>,
    first: bool,
    finish: Option<FinishReason>,
) -> Value {
    let finish = finish.map(finish_name);
    let (object, choice) = match kind {
        Kind::Completion => (
            "text_completion",
            json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish}),
        ),
        Kind::Chat => {
            let mut delta = serde_json::Map::new();
            if first {
                delta.insert("role".into(), "assistant".into());
            }
            if let Some(t) = text {
                delta.insert("content".into(), t.into());
            }
            (
                "chat.completion.chunk",
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}),
            )
        }
    };
    json!({
        "id": meta.id, "object": object, "created": meta.created, "model": meta.model,
        "choices": [choice],
    })
}

/// The extra last chunk of `stream_options.include_usage`: no choices, the usage.
pub fn usage_chunk(kind: Kind, meta: &Meta, u: Usage) -> Value {
    let object = match kind {
        Kind::Completion => "text_completion",
        Kind::Chat => "chat.completion.chunk",
    };
    json!({
        "id": meta.id, "object": object, "created": meta.created, "model": meta.model,
        "choices": [], "usage": usage(u),
    })
}

pub fn embeddings(model: &str, vectors: &[Vec<f32>], prompt_tokens: usize) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })
}

pub fn models(model: &str) -> Value {
    json!({"object": "list", "data": [
        {"id": model, "object": "model", "created": 0, "owned_by": "wasm-chord"}
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let meta = Meta::new(Kind::Chat, "m");
        assert!(meta.id.starts_with("chatcmpl-"));
        let u = Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        };
        let v = full(Kind::Chat, &meta, "hi", FinishReason::Stop, u);
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 5);
        let c = chunk(Kind::Chat, &meta, Some("x"), true, None);
        assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(c["choices"][0]["delta"]["content"], "x");
        assert!(c["choices"][0]["finish_reason"].is_null());
        let c = chunk(Kind::Chat, &meta, None, false, Some(FinishReason::Length));
        assert_eq!(c["choices"][0]["delta"], json!({}));
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        let meta = Meta::new(Kind::Completion, "m");
        let v = full(Kind::Completion, &meta, "t", FinishReason::Length, u);
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["text"], "t");
        let e = embeddings("m", &[vec![0.5, 1.0]], 4);
        assert_eq!(e["data"][0]["embedding"], json!([0.5, 1.0]));
        assert_eq!(models("m")["data"][0]["id"], "m");
    }
}
