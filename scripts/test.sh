#!/usr/bin/env bash
# Runs every check on a fresh machine: installs the Rust target and tools it needs,
# fetches the test models from PyPI, builds the wasm component, then runs
# rustfmt, clippy and all tests (native, then the wasm kernel tests in Wasmtime).
# Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# One cargo target directory outside the clone, so CI and developers reuse builds.
if [[ -z ${CARGO_TARGET_DIR:-} ]]; then
  if mkdir -p /work/cargo-target 2>/dev/null; then
    export CARGO_TARGET_DIR=/work/cargo-target
  else
    export CARGO_TARGET_DIR="$PWD/target"
  fi
fi
echo "[test] cargo target dir: $CARGO_TARGET_DIR"

echo "[test] installing the wasm32-wasip2 target and components"
rustup target add wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "[test] fetching models"
scripts/fetch-models.sh

if [[ -d component ]]; then
  echo "[test] building the wasm component"
  cargo xtask build --release
fi

echo "[test] cargo fmt --check"
cargo fmt --all -- --check

echo "[test] cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "[test] cargo test"
cargo test --workspace -- --test-threads=2

# The wasm SIMD kernels against their scalar references, inside Wasmtime (runner:
# .cargo/config.toml -> scripts/wasm-runner.sh -> wasm-test-runner, built above), in
# both wasm builds: relaxed-SIMD (the component's) and plain SIMD128.
for features in +simd128,+relaxed-simd +simd128; do
  echo "[test] wasm kernel tests ($features)"
  RUSTFLAGS="-C target-feature=$features" cargo test --release -p wasm-chord-core \
    --target wasm32-wasip2 --test quant_simd --test attention_simd
done
