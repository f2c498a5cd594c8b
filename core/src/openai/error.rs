//! OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}` with the
//! HTTP status that goes with them.

use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `not_found_error`, `server_error`...
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// 400: malformed JSON, a missing or invalid parameter.
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            param: param.map(str::to_string),
            ..Self::new(400, "invalid_request_error", message)
        }
    }

    /// 400: the prompt (plus the tokens to generate) does not fit the context.
    pub fn context_length(message: impl Into<String>) -> Self {
        Self {
            code: Some("context_length_exceeded"),
            param: Some("messages".into()),
            ..Self::new(400, "invalid_request_error", message)
        }
    }

    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self {
            code: Some("unknown_url"),
            ..Self::new(
                404,
                "invalid_request_error",
                format!("unknown route: {method} {path}"),
            )
        }
    }

    pub fn unknown_model(model: &str, served: &str) -> Self {
        Self {
            code: Some("model_not_found"),
            param: Some("model".into()),
            ..Self::new(
                404,
                "invalid_request_error",
                format!("the model '{model}' does not exist (this server has '{served}')"),
            )
        }
    }

    pub fn method_not_allowed(method: &str, path: &str, allowed: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            format!("{method} is not allowed on {path} (use {allowed})"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 500: a fault of the server, not of the request.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message)
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}
