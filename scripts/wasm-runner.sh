#!/usr/bin/env bash
# Cargo's runner for wasm32-wasip2 binaries (`.cargo/config.toml`): runs the
# test/bench/example component given as $1 with the remaining arguments in
# Wasmtime, through the host crate's `wasm-test-runner` binary, which must be built
# first (cargo cannot build it from inside a run):
#
#   cargo build -p chord --bin wasm-test-runner
#   RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
#     cargo test -p wasm-chord-core --target wasm32-wasip2 --test quant_simd
#
# The runner binary is looked up as $WASM_TEST_RUNNER, else in the debug then the
# release directory of $CARGO_TARGET_DIR (default: target/ of this checkout).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n ${WASM_TEST_RUNNER:-} ]]; then
  exec "$WASM_TEST_RUNNER" "$@"
fi
target="${CARGO_TARGET_DIR:-target}"
[[ $target == /* ]] || target="$root/$target"
for profile in debug release; do
  if [[ -x "$target/$profile/wasm-test-runner" ]]; then
    exec "$target/$profile/wasm-test-runner" "$@"
  fi
done
echo "wasm-runner.sh: no wasm-test-runner in $target/{debug,release};" \
  "build it with: cargo build -p chord --bin wasm-test-runner" >&2
exit 127
