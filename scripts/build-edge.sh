#!/usr/bin/env bash
# Builds the edge Worker (edge/build/) with worker-build, using the toolchain
# scripts/setup.sh chose. Skips the build when no input changed since the last one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

inputs_hash() {
  { find edge/src crates/room/src crates/access/src -type f -name '*.rs' | sort | xargs sha256sum
    sha256sum Cargo.toml Cargo.lock edge/Cargo.toml crates/room/Cargo.toml crates/access/Cargo.toml; } | sha256sum | cut -c1-32
}
stamp="edge/build/.inputs"
hash="$(inputs_hash)"
if [ -f edge/build/index.js ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
  exit 0
fi

bash scripts/setup.sh edge
toolchain="$(cat "$CODEBOX_CACHE/wasm-toolchain")"
if [ "$toolchain" = debian ]; then
  # Debian's rustc has the wasm32 std we built; rustup's does not.
  export PATH="/usr/bin:$PATH"
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$DEBIAN_WASM_LINKER"
  compiler="debian-$(/usr/bin/rustc -V | awk '{print $2}')"
else
  compiler="rustup-$(rustc -V | awk '{print $2}')"
fi
export CARGO_TARGET_DIR="$CODEBOX_CACHE/target/wasm-$compiler"
export WASM_BINDGEN_BIN="$CODEBOX_CACHE/tools/wasm-bindgen-cli-$(locked_version wasm-bindgen)/bin/wasm-bindgen"
export WORKER_BUILD_BIN="$CODEBOX_CACHE/tools/worker-build-$(locked_version worker)/bin/worker-build"
export WASM_OPT_BIN="$REPO_ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$REPO_ROOT/node_modules/.bin/esbuild"
[ -x "$WASM_OPT_BIN" ] || bash scripts/setup.sh node

say "building the edge worker ($compiler)"
# Size over speed for the wasm: it is downloaded on every cold start.
(cd edge && CARGO_PROFILE_RELEASE_OPT_LEVEL=s "$WORKER_BUILD_BIN" --release) || die "edge build failed"
echo "$hash" > "$stamp"
ls -l edge/build/index_bg.wasm 2>/dev/null | awk '{printf "edge wasm: %d bytes\n", $5}' >&2 || true
