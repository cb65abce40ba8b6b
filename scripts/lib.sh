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

# Installs Debian packages that are missing (apt-get update once per script run).
APT_UPDATED=""
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root or install them"
  say "apt-get install ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# Puts the deploy tools first in PATH (their bin folder, as `scripts/setup.sh deploy` prints
# it) and points cargo at the deploy target folder: cargo lambda's release builds for
# x86_64-unknown-linux-gnu, keyed by the compiler and the tool versions. `sam build` (the
# Lambda) and scripts/build-fleet-image.sh (the fleet) share it, and one compiled AWS SDK.
use_deploy_tools() {
  export PATH="$1:$PATH"
  CARGO_TARGET_DIR="$CODEBOX_CACHE/target/deploy-$(rustc -V | awk '{print $2}')-$(basename "$(dirname "$1")")"
  export CARGO_TARGET_DIR
  export SAM_CLI_TELEMETRY=0
}
