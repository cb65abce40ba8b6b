#!/usr/bin/env bash
# `make dev`: the whole stack on this machine. For now that is the edge under
# `wrangler dev` on 127.0.0.1:8787 (rooms at ws://127.0.0.1:8787/rooms/{room}).
# Ctrl-C stops everything this script started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/setup.sh all
bash scripts/build-edge.sh

export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

say "starting the edge: wrangler dev on http://127.0.0.1:8787 (state in .wrangler/state)"
setsid node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port 8787 &
pids+=($!)
say "rooms: ws://127.0.0.1:8787/rooms/{room}    press Ctrl-C to stop"
wait -n "${pids[@]}"
