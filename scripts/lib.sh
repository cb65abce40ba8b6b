# Shared by the scripts in this folder: where the machine-wide cache lives and
# how to report progress. Source it; it sets no traps and runs nothing.

# One folder per machine, outside the clone, so a fresh CI clone reuses tools
# and build outputs. Every entry below it is keyed by the version it holds.
CODEBOX_CACHE="${CODEBOX_CACHE:-/var/cache/codebox}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Version of a package as pinned in Cargo.lock (the first match).
locked_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
    "$REPO_ROOT/Cargo.lock"
}

# Native (host) cargo target folder, keyed by the compiler that fills it.
native_target_dir() {
  echo "$CODEBOX_CACHE/target/native-$(rustc -V | awk '{print $2}')"
}

# Debian's rustc-web ships no rust-lld; lld-22's wasm-ld links wasm32 for it.
DEBIAN_WASM_LINKER=wasm-ld-22
