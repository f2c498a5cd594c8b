//! Chat templates: a list of messages rendered into one prompt string with the
//! model's `tokenizer.chat_template` (a Jinja template from Hugging Face), the way
//! `transformers.apply_chat_template` and llama.cpp's jinja mode render it.
//!
//! A model without a template gets ChatML, the fallback llama.cpp uses
//! (`llama_chat_apply_template` with no template and no name detects `chatml`).

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::gguf::Metadata;

/// GGUF key of the template.
pub const TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// ChatML, as llama.cpp's `LLM_CHAT_TEMPLATE_CHATML` formats it.
pub const CHATML: &str = "{%- for message in messages -%}\
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

/// One chat message (`{"role": ..., "content": ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("invalid chat template: {0}")]
    Template(String),
    /// The template itself refused the messages (`raise_exception(...)`), e.g. a
    /// role it does not know or roles out of order.
    #[error("the chat template rejected the messages: {0}")]
    Rejected(String),
}

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source` (a Hugging Face Jinja chat template).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ChatError> {
        let mut env = Environment::new();
        // HF templates call Python string methods (`.strip()`, `.startswith()`...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // transformers renders with `trim_blocks` and `lstrip_blocks`.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| ChatError::Template(e.to_string()))?;
        Ok(Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The model's template (ChatML if it has none). `bos`/`eos` are the texts of
    /// its BOS/EOS tokens (templates print them as `{{ bos_token }}`).
    pub fn from_metadata(md: &Metadata, bos: &str, eos: &str) -> Result<Self, ChatError> {
        let source = md.get_str(TEMPLATE_KEY).unwrap_or(CHATML);
        Self::new(source, bos, eos)
    }

    /// Renders `messages`; with `add_generation_prompt` the prompt ends where the
    /// assistant's answer starts.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| ChatError::Template(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidOperation => ChatError::Rejected(detail(&e)),
            _ => ChatError::Template(detail(&e)),
        })
    }
}

/// The message of a template error without minijinja's location suffix noise.
fn detail(e: &JinjaError) -> String {
    e.detail().map_or_else(|| e.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(pairs: &[(&str, &str)]) -> Vec<Message> {
        pairs
            .iter()
            .map(|(r, c)| Message {
                role: r.to_string(),
                content: c.to_string(),
            })
            .collect()
    }

    #[test]
    fn chatml_fallback() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let out = t
            .render(&msgs(&[("system", "Be brief."), ("user", "Hi")]), true)
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t.render(&msgs(&[("user", "Hi")]), false).unwrap();
        assert_eq!(out, "<|im_start|>user\nHi<|im_end|>\n");
    }

    #[test]
    fn special_tokens_and_python_methods() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}{{ m.content.strip() }}{{ eos_token }}{% endfor %}",
            "<s>",
            "</s>",
        )
        .unwrap();
        assert_eq!(
            t.render(&msgs(&[("user", "  a "), ("assistant", "b")]), false)
                .unwrap(),
            "<s>a</s>b</s>"
        );
    }

    #[test]
    fn raise_exception_is_a_rejection() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok",
            "",
            "",
        )
        .unwrap();
        assert!(matches!(
            t.render(&msgs(&[("system", "x")]), true),
            Err(ChatError::Rejected(m)) if m.contains("first must be user")
        ));
        assert_eq!(t.render(&msgs(&[("user", "x")]), true).unwrap(), "ok");
    }

    #[test]
    fn broken_template_is_an_error() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(ChatError::Template(_))
        ));
    }
}
