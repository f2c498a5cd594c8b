//! `chord`: run wasm-chord models from the command line.
//!
//! Every command that runs a model takes `--native` to use the engine compiled into
//! this binary; without it the model runs inside the wasm component (Wasmtime).

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chord", version, about = "LLM inference inside WebAssembly")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt (streams to stdout).
    Generate(commands::generate::Args),
    /// Print llama.cpp-style parity data: prompt logits and a greedy continuation.
    Eval(commands::eval::Args),
    /// Tokenize strings as the fixtures do (ids, ids_no_special, ids_parse_special).
    Tokenize(commands::tokenize::Args),
    /// Re-encode a GGUF model's matrices in another format (f16, q8_0, q4_0, q4_1, ...).
    Quantize(commands::quantize::Args),
    /// Show a model's architecture, size and tensors.
    Info(commands::info::Args),
    /// Embed texts (one JSON line per text: case, ids, dim, embedding).
    Embed(commands::embed::Args),
    /// Convert a Hugging Face BERT directory (safetensors) to GGUF (f32, f16, q8_0).
    Convert(commands::convert::Args),
    /// Write a full-size GGUF with random weights from a real model's header.
    Synth(commands::synth::Args),
    /// Build a packed component: the engine with a GGUF model built in (weights in shard modules).
    Pack(commands::pack::Args),
    /// Measure prefill and decode throughput (tokens/s), like llama-bench's pp/tg.
    Bench(commands::bench::Args),
    /// Serve the OpenAI-compatible HTTP API (the wasi:http component in Wasmtime).
    Serve(commands::serve::Args),
    /// Run a wasi:cli app composed onto the engine (e.g. a Spin LLM app after `wac plug`).
    RunApp(commands::run_app::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => commands::generate::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Tokenize(a) => commands::tokenize::run(a),
        Command::Quantize(a) => commands::quantize::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Embed(a) => commands::embed::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Synth(a) => commands::synth::run(a),
        Command::Pack(a) => commands::pack::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::RunApp(a) => commands::run_app::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
