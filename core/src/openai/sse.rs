//! Server-Sent Events framing as OpenAI streams it: one `data: <json>` event per
//! chunk, then `data: [DONE]`.

pub const CONTENT_TYPE: &str = "text/event-stream";

/// One event carrying `json`.
pub fn event(json: &serde_json::Value) -> String {
    format!("data: {json}\n\n")
}

/// The end of the stream.
pub const DONE: &str = "data: [DONE]\n\n";

/// Splits an SSE body into the payloads of its `data:` events (for clients/tests).
pub fn parse_events(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips() {
        let body = format!("{}{}", event(&serde_json::json!({"a": "x\ny"})), DONE);
        assert_eq!(body, "data: {\"a\":\"x\\ny\"}\n\ndata: [DONE]\n\n");
        assert_eq!(parse_events(&body), [r#"{"a":"x\ny"}"#, "[DONE]"]);
    }
}
