#!/usr/bin/env bash
# The 7B through the runtime-loaded memory64 path, on a synthetic model (random
# weights, the real DeepSeek-R1-Distill-Qwen-7B Q4_K_M header, 4.68 GB):
#
#   1. synthesizes it once into the model cache (`chord synth`, a few minutes);
#   2. native speed (`chord generate --native`, greedy);
#   3. `host/tests/large_models.rs` on it: component vs native greedy tokens on
#      three prompts, load time, component speed, and the memory-0 footprint (KV
#      cache, activations, tokenizer) at a full context next to the weights memory,
#      which must stay under 10% of the model size.
#
#   scripts/bench-7b.sh                       # a 2048-token session, 256-token prompt
#   PROMPT_TOKENS=2044 scripts/bench-7b.sh    # fill the context (a long prefill)
#
# Not part of CI (scripts/test.sh runs the same test on a tiny synthetic model).
# Lines starting with LARGE_MODEL are the results.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${WASM_CHORD_MODELS:-$HOME/.cache/wasm-chord/models}"
model="$cache/synth-qwen2-7b-q4_k_m.gguf"
context="${CONTEXT:-2048}"
prompt_tokens="${PROMPT_TOKENS:-256}"
log() { printf '[bench-7b] %s\n' "$*" >&2; }

scripts/fetch-models.sh qwen2-7b-header
cargo build -p chord --bin chord
chord="${CARGO_TARGET_DIR:-target}/debug/chord"

if [[ ! -f $model ]]; then
  log "synthesizing $model"
  "$chord" synth --header "$cache/qwen2-7b-header.gguf" --seed 1 -o "$model"
fi
if [[ ! -f target/wasm-chord.wasm ]]; then
  log "building the component"
  cargo xtask build --release
fi

log "native speed (greedy, 8 tokens)"
"$chord" generate --native --model "$model" --temperature 0 --max-tokens 8 \
  --prompt "Write a short story about a robot." >/dev/null

log "component vs native, context $context"
WASM_CHORD_LARGE_MODEL="$model" WASM_CHORD_CONTEXT="$context" WASM_CHORD_PROMPT_TOKENS="$prompt_tokens" \
  cargo test -p chord --test large_models -- --nocapture --test-threads 1 --exact \
  component_matches_native_greedy memory_0_stays_small_at_full_context
