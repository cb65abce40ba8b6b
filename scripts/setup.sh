#!/usr/bin/env bash
# Installs everything `make test` and `make dev` need, idempotently.
#
#   scripts/setup.sh [edge|node|python|deploy|browser|all]
#     (default: all; `python` prints moto_server's path; `deploy` prints the bin folder of the
#     deploy tools (sam, cfn-lint, cargo-lambda); `browser`, Chromium for the browser tests,
#     and `deploy` are not part of `all`: `make dev` needs neither)
#
# Tools land in $CODEBOX_CACHE (default /var/cache/codebox), one folder per
# version, so fresh clones (CI) reuse them. Prints what it cannot provide.
set -euo pipefail
source "$(dirname "$0")/lib.sh"


need_cmd() { command -v "$1" >/dev/null || die "$1 is required: $2"; }

# Installs a crates.io binary into $CODEBOX_CACHE/tools/NAME-VERSION.
cargo_tool() {
  local crate="$1" version="$2" bin="$3"
  local root="$CODEBOX_CACHE/tools/$crate-$version"
  if [ ! -x "$root/bin/$bin" ]; then
    say "cargo install $crate $version (once per machine, several minutes)"
    # Not --locked: one of wasm-bindgen-cli's locked dependency versions is not served.
    CARGO_TARGET_DIR="$CODEBOX_CACHE/target/tools" \
      cargo install --quiet "$crate" --version "=$version" --root "$root" \
      || die "cargo install $crate $version failed"
  fi
  echo "$root/bin/$bin"
}

# A wasm32 standard library: rustup's when it can be had, else Debian's
# rustc-web with std built from rust-web-src into that compiler's sysroot.
setup_wasm_toolchain() {
  # CODEBOX_WASM_TOOLCHAIN=debian forces the fallback (to test it where rustup works).
  if [ "${CODEBOX_WASM_TOOLCHAIN:-}" != debian ] && { rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || timeout 120 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; }; then
    echo rustup > "$CODEBOX_CACHE/wasm-toolchain"
    return
  fi
  say "rustup cannot provide wasm32-unknown-unknown: using Debian's rustc-web"
  apt_install rustc-web cargo-web rust-web-src lld-22
  local libdir
  libdir="$(/usr/bin/rustc --print sysroot)/lib/rustlib/wasm32-unknown-unknown/lib"
  if ! ls "$libdir"/libstd-*.rlib >/dev/null 2>&1; then
    say "building the wasm32 std from rust-web-src (once per machine, ~2 minutes)"
    local scratch="$CODEBOX_CACHE/target/wasm-std-$(/usr/bin/rustc -V | awk '{print $2}')"
    mkdir -p "$scratch/src"
    cat > "$scratch/Cargo.toml" <<'TOML'
[package]
name = "wasm-std"
version = "0.0.0"
edition = "2021"
[lib]
path = "src/lib.rs"
crate-type = ["rlib", "cdylib"]
[profile.release]
lto = true
TOML
    echo 'pub fn touch_std() -> String { std::format!("{}", 1) }' > "$scratch/src/lib.rs"
    (cd "$scratch" && PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$DEBIAN_WASM_LINKER" /usr/bin/cargo build --quiet --release \
      -Zbuild-std=std,panic_abort,panic_unwind --target wasm32-unknown-unknown) \
      || die "building the wasm32 std failed"
    mkdir -p "$libdir"
    cp "$scratch"/target/wasm32-unknown-unknown/release/deps/lib*.rlib "$libdir/"
  fi
  echo debian > "$CODEBOX_CACHE/wasm-toolchain"
}

setup_node() {
  need_cmd node "install Node.js 20+ (apt-get install nodejs npm)"
  need_cmd npm "install npm (apt-get install npm)"
  local stamp="$REPO_ROOT/node_modules/.codebox-lock-hash"
  local hash
  hash="$(sha256sum "$REPO_ROOT/package-lock.json" | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
    say "npm ci"
    (cd "$REPO_ROOT" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    echo "$hash" > "$stamp"
  fi
}

setup_edge() {
  need_cmd cargo "install Rust with rustup (https://rustup.rs)"
  mkdir -p "$CODEBOX_CACHE/tools" "$CODEBOX_CACHE/target"
  setup_wasm_toolchain
  cargo_tool wasm-bindgen-cli "$(locked_version wasm-bindgen)" wasm-bindgen >/dev/null
  cargo_tool worker-build "$(locked_version worker)" worker-build >/dev/null
}

# Makes a venv at $1 holding the pip requirements $2 (space-separated pins), unless a
# complete one has the executables named after them. A venv cannot move, so it is built in
# place and marked complete only after pip succeeds.
pip_venv() {
  local venv="$1" pins="$2" bin reqs complete=1
  shift 2
  [ -f "$venv/.complete" ] || complete=
  for bin in "$@"; do [ -x "$venv/bin/$bin" ] || complete=; done
  [ -n "$complete" ] && return 0
  need_cmd python3 "install Python 3.9+ (apt-get install python3 python3-venv)"
  python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  say "pip install $pins (once per machine, 1-2 minutes)"
  rm -rf "$venv"
  mkdir -p "$CODEBOX_CACHE/tools"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  read -ra reqs <<< "$pins" # split on spaces, without globbing "moto[server]"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${reqs[@]}" >&2 \
    || die "pip install $pins failed"
  touch "$venv/.complete"
}

# The AWS stand-in for the submission adapter tests (SQS and DynamoDB over HTTP).
MOTO_VERSION=5.2.5

# Installs moto[server] into a venv at $CODEBOX_CACHE/tools/moto-VERSION and prints the path
# of its moto_server.
python_tools() {
  local venv="$CODEBOX_CACHE/tools/moto-$MOTO_VERSION"
  pip_venv "$venv" "moto[server]==$MOTO_VERSION" moto_server
  echo "$venv/bin/moto_server"
}

# The deploy tools, pinned: the SAM CLI (sam validate/build/deploy), cfn-lint (the version
# this SAM CLI accepts), and cargo-lambda with the zig it links through (sam build's
# rust-cargolambda build method runs `cargo lambda build`). One venv at
# $CODEBOX_CACHE/tools/deploy-HASH (about 800 MB, mostly zig), keyed by the pins; prints its
# bin folder.
DEPLOY_PINS="aws-sam-cli==1.170.0 cfn-lint==1.58.0 cargo-lambda==1.9.2 ziglang==0.17.1"

deploy_tools() {
  local venv
  venv="$CODEBOX_CACHE/tools/deploy-$(echo "$DEPLOY_PINS" | sha256sum | cut -c1-12)"
  pip_venv "$venv" "$DEPLOY_PINS" sam cargo-lambda
  echo "$venv/bin"
}

# Debian's Chromium, driven by playwright-core in the browser tests (e2e-browser/).
# CODEBOX_CHROMIUM names another binary.
setup_browser() {
  local chromium="${CODEBOX_CHROMIUM:-/usr/bin/chromium}"
  [ -x "$chromium" ] && return 0
  [ -z "${CODEBOX_CHROMIUM:-}" ] || die "CODEBOX_CHROMIUM=$chromium is not an executable"
  apt_install chromium
  [ -x "$chromium" ] || die "chromium is installed but $chromium is missing"
}

case "${1:-all}" in
  node) setup_node ;;
  edge) setup_edge ;;
  python) python_tools ;;
  deploy) deploy_tools ;;
  browser) setup_browser ;;
  all) setup_node; setup_edge; python_tools >/dev/null ;;
  *) die "usage: $0 [edge|node|python|deploy|browser|all]" ;;
esac
