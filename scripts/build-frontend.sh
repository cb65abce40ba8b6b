#!/usr/bin/env bash
# Builds the IDE (frontend/src -> frontend/dist/) with esbuild (frontend/build.mjs).
# Skips the build when no input changed since the last one (stamp: frontend/dist/.inputs).
#
#   scripts/build-frontend.sh           build if needed
#   scripts/build-frontend.sh --force   build even when the stamp matches
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

inputs_hash() {
  { find frontend/src -type f | LC_ALL=C sort | xargs sha256sum
    sha256sum frontend/build.mjs package-lock.json; } | sha256sum | cut -c1-32
}
stamp="frontend/dist/.inputs"
hash="$(inputs_hash)"
if [ "${1:-}" != --force ] && [ -f frontend/dist/index.html ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
  exit 0
fi

[ -x node_modules/.bin/esbuild ] && [ -d node_modules/@codemirror/view ] || bash scripts/setup.sh node
say "building the IDE (frontend/dist)"
node frontend/build.mjs || die "frontend build failed"
echo "$hash" > "$stamp"
