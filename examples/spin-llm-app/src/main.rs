//! An application written against Spin's LLM API (`fermyon:spin/llm@2.0.0`) and
//! nothing else: it does not know about wasm-chord. Built for `wasm32-wasip2` it is
//! a `wasi:cli` command component whose only non-WASI import is Spin's `llm`
//! interface; plugging the wasm-chord engine into it (`wac plug` or
//! `chord compose`) gives a component that runs on any Wasmtime host, without Spin's
//! host-side LLM. See README.md.
//!
//! ```text
//! spin-llm-app infer MODEL PROMPT [MAX_TOKENS]   greedy completion on stdout
//! spin-llm-app embed MODEL TEXT...               one JSON array per text on stdout
//! ```

use std::process::ExitCode;

wit_bindgen::generate!({
    inline: "
        package wasm-chord:spin-llm-app;
        world app {
            import fermyon:spin/llm@2.0.0;
        }
    ",
    path: "../../wit/deps/spin",
    generate_all,
});

use fermyon::spin::llm;

const USAGE: &str = "usage: spin-llm-app infer MODEL PROMPT [MAX_TOKENS] | embed MODEL TEXT...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spin-llm-app: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, model, prompt, rest @ ..] if cmd == "infer" && rest.len() <= 1 => {
            let max_tokens = match rest.first() {
                Some(n) => n.parse().map_err(|_| format!("bad MAX_TOKENS {n:?}"))?,
                None => 32,
            };
            // Greedy, no repeat penalty: the output is reproducible.
            let params = llm::InferencingParams {
                max_tokens,
                repeat_penalty: 1.0,
                repeat_penalty_last_n_token_count: 64,
                temperature: 0.0,
                top_k: 40,
                top_p: 0.9,
            };
            let r = llm::infer(model, prompt, Some(params)).map_err(describe)?;
            print!("{}", r.text);
            eprintln!(
                "usage: {} prompt tokens, {} generated",
                r.usage.prompt_token_count, r.usage.generated_token_count
            );
            Ok(())
        }
        [cmd, model, texts @ ..] if cmd == "embed" && !texts.is_empty() => {
            let r = llm::generate_embeddings(model, texts).map_err(describe)?;
            for e in &r.embeddings {
                let values: Vec<String> = e.iter().map(|v| v.to_string()).collect();
                println!("[{}]", values.join(","));
            }
            eprintln!("usage: {} prompt tokens", r.usage.prompt_token_count);
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}

fn describe(e: llm::Error) -> String {
    match e {
        llm::Error::ModelNotSupported => "model not supported".to_string(),
        llm::Error::RuntimeError(m) => format!("runtime error: {m}"),
        llm::Error::InvalidInput(m) => format!("invalid input: {m}"),
    }
}
