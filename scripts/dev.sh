#!/usr/bin/env bash
# `make dev`: the whole stack on this machine.
#
#   IDE + edge  wrangler dev on http://127.0.0.1:8787   the IDE, rooms at /rooms/{room}, /api -> exec API
#   exec API    http://127.0.0.1:8788/v1/...             (exec-lambda, local mode)
#   fleet       exec-fleet, running programs in Docker
#
# The exec API and the fleet share one SQLite queue and store in .dev/codebox.db; the edge
# keeps room state in .wrangler/state. Edits under frontend/src or edge/src rebuild and reload
# while it runs (wrangler.toml [build]). Ctrl-C stops every process this script started; so
# does any one of them exiting.
#
# Environment (defaults in brackets; the browser end-to-end tests use them to run a private stack):
#   CODEBOX_DEV_PORT [8787]      the edge's port
#   CODEBOX_EXEC_PORT [8788]     the exec API's port
#   CODEBOX_DEV_STATE [.dev]     folder for the queue/store and, when set, the edge's room state
#   CODEBOX_DEV_READY_TIMEOUT [180]  seconds to wait for the stack to answer
#   CARGO_TARGET_DIR [scripts/lib.sh native_target_dir]  where the exec API and the fleet build
#   CODEBOX_ROOM_RATE_LIMIT, CODEBOX_RUN_RATE_LIMIT ["30/600", "30/60"]  per-client limits
#                                on room creation and on runs at the edge, as "COUNT/SECONDS"
#
# Room links are signed with ROOM_TOKEN_SECRET: the first run writes a random one into
# .dev.vars (ignored by git; wrangler dev reads it), so links keep working across restarts.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

edge_port="${CODEBOX_DEV_PORT:-8787}"
exec_port="${CODEBOX_EXEC_PORT:-8788}"
state_dir="${CODEBOX_DEV_STATE:-.dev}"
case "$state_dir" in /*) ;; *) state_dir="$REPO_ROOT/$state_dir" ;; esac
ready_timeout="${CODEBOX_DEV_READY_TIMEOUT:-180}"

pids=()
names=()
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    say "stopping (${names[*]})"
    local pid
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    # Each runs in its own process group: wait for the groups to empty, then insist.
    local deadline=$((SECONDS + 15))
    while [ $SECONDS -lt $deadline ]; do
      local alive=""
      for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
      [ -z "$alive" ] && break
      sleep 0.2
    done
    for pid in "${pids[@]}"; do
      if kill -0 -- "-$pid" 2>/dev/null; then
        warn "process group $pid did not stop on SIGTERM: killing it"
        kill -KILL -- "-$pid" 2>/dev/null || true
      fi
    done
    wait 2>/dev/null || true
    say "stopped"
  fi
  exit "$status"
}
trap cleanup INT TERM EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$edge_port" "$exec_port"; do
  port_busy "$port" && die "port $port is in use (another \`make dev\`?): stop it, or set CODEBOX_DEV_PORT / CODEBOX_EXEC_PORT"
done

step() { say "[$1/6] $2"; }
step 1 "toolchains and npm packages"
bash scripts/setup.sh all
step 2 "Docker engine and runner images"
bash scripts/docker.sh
bash scripts/images.sh
step 3 "edge worker (skipped when edge/src and crates/room are unchanged)"
bash scripts/build-edge.sh
step 4 "IDE (frontend/dist)"
bash scripts/build-frontend.sh
step 5 "exec API and fleet (cargo build --release)"
mkdir -p "$state_dir"
build_log="$state_dir/cargo-build.log"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(native_target_dir)}"
if ! cargo build --release -p exec-lambda -p codebox-exec-fleet 2>&1 \
  | tee "$build_log" | sed -u -n -E 's/^ *(Compiling|Finished)/  \1/p'; then
  tail -n 40 "$build_log" >&2
  die "building the exec API and the fleet failed (full log: $build_log)"
fi
bin="$CARGO_TARGET_DIR/release"

export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
export CODEBOX_BACKEND=embedded CODEBOX_DB="$state_dir/codebox.db"
export CODEBOX_EXEC_LISTEN="127.0.0.1:$exec_port"
wrangler_state=()
[ -n "${CODEBOX_DEV_STATE:-}" ] && wrangler_state=(--persist-to "$state_dir/wrangler")

start() { # NAME COMMAND...: runs COMMAND in its own process group, its output prefixed with NAME
  local name="$1"; shift
  # The prefixer ignores SIGINT, so Ctrl-C does not cut off the processes' last words.
  setsid "$@" > >(trap '' INT; exec sed -u "s/^/[$name] /") 2>&1 < /dev/null &
  pids+=($!)
  names+=("$name")
}

if ! grep -qs '^ROOM_TOKEN_SECRET=' .dev.vars; then
  say "writing a development ROOM_TOKEN_SECRET into .dev.vars (ignored by git)"
  (umask 077 && echo "ROOM_TOKEN_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> .dev.vars)
fi
edge_vars=(--var "EXEC_API_URL:http://127.0.0.1:$exec_port")
[ -n "${CODEBOX_ROOM_RATE_LIMIT:-}" ] && edge_vars+=(--var "ROOM_RATE_LIMIT:$CODEBOX_ROOM_RATE_LIMIT")
[ -n "${CODEBOX_RUN_RATE_LIMIT:-}" ] && edge_vars+=(--var "RUN_RATE_LIMIT:$CODEBOX_RUN_RATE_LIMIT")

step 6 "starting the exec API, the fleet and the edge"
start exec-api "$bin/exec-lambda"
start fleet "$bin/exec-fleet"
start edge node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$edge_port" \
  "${edge_vars[@]}" "${wrangler_state[@]}" --show-interactive-dev-session=false

# Ready when the IDE and the exec API answer through the edge (wrangler's build step may run first).
deadline=$((SECONDS + ready_timeout))
until curl -sf -o /dev/null "http://127.0.0.1:$edge_port/" && curl -sf -o /dev/null "http://127.0.0.1:$edge_port/api/v1/languages"; do
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || die "${names[$i]} exited while starting (its log is above)"
  done
  [ $SECONDS -lt $deadline ] || die "the stack did not answer within ${ready_timeout}s"
  sleep 0.3
done
say "CodeBox is running: open http://127.0.0.1:$edge_port  (exec API: http://127.0.0.1:$exec_port; Ctrl-C stops everything)"

set +e
wait -n "${pids[@]}"
status=$?
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || warn "${names[$i]} exited (status $status): stopping the rest"
done
exit "$status"
