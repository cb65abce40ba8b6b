#!/usr/bin/env bash
# `make dev`: the whole stack on this machine.
#
#   edge      wrangler dev on http://127.0.0.1:8787   rooms at ws://127.0.0.1:8787/rooms/{room}
#   exec API  http://127.0.0.1:8788/v1/...             (exec-lambda, local mode)
#   fleet     exec-fleet, running programs in Docker
#
# The exec API and the fleet share one SQLite queue and store in .dev/codebox.db; the edge
# keeps room state in .wrangler/state. Ctrl-C stops every process this script started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/setup.sh all
bash scripts/docker.sh
bash scripts/images.sh
bash scripts/build-edge.sh
say "building the exec API and the fleet (release)"
CARGO_TARGET_DIR="$(native_target_dir)" cargo build --release --quiet -p exec-lambda -p codebox-exec-fleet
bin="$(native_target_dir)/release"

export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
export CODEBOX_BACKEND=embedded CODEBOX_DB="$REPO_ROOT/.dev/codebox.db"
mkdir -p .dev

pids=()
cleanup() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

start() { # NAME COMMAND...: runs COMMAND in its own process group
  local name="$1"; shift
  setsid "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
}

start exec-api "$bin/exec-lambda"
start fleet "$bin/exec-fleet"
start edge node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port 8787

for _ in $(seq 1 100); do
  if curl -sf -o /dev/null http://127.0.0.1:8788/v1/languages && curl -s -o /dev/null http://127.0.0.1:8787/; then
    break
  fi
  sleep 0.2
done
say "CodeBox is running: open http://127.0.0.1:8787 (exec API on http://127.0.0.1:8788). Ctrl-C stops it."
wait -n "${pids[@]}"
