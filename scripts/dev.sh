#!/usr/bin/env bash
# `make dev`: the whole stack on this machine.
#
#   IDE + edge  wrangler dev on http://127.0.0.1:8787   the IDE, rooms at /rooms/{room}, /api -> exec API
#   exec API    http://127.0.0.1:8788/v1/...             (exec-lambda, local mode)
#   fleet       exec-fleet, running programs in Docker
#
# The exec API and the fleet share one SQLite queue and store in .dev/codebox.db; the edge
# keeps room state in .wrangler/state. Edits under frontend/src or edge/src rebuild and reload
# while it runs (wrangler.toml [build]). Each service's output is shown prefixed with its name
# and kept in .dev/logs/NAME.log.
#
# Whatever stops it, every process it started stops: Ctrl-C, TERM or HUP to make's process
# group (a closed terminal, `timeout`, a cancelled job), TERM to make alone, a dead output
# reader (`make dev | tee`), any one service exiting; and SIGKILL, through a guard process
# (scripts/lib.sh guard_start). How it stopped is written to .dev/dev.log.
# e2e-browser/dev-stop.test.mjs tests each of these.
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

mkdir -p "$state_dir/logs"
# This script's own account of how it stopped, where no closed terminal or dead pipe can lose it.
stop_log="$state_dir/dev.log"

pids=()  # each a session and process-group leader (setsid)
names=()
note() { # a message on stderr (if it is still there) and in $stop_log
  say "$*" || true
  printf '%s %s\n' "$(date '+%F %T')" "$*" >>"$stop_log" 2>/dev/null || true
}
# Stops everything this script started; runs once, on exit or on INT, TERM, HUP or PIPE.
# Whatever stops make dev, the cleanup must finish: it ignores those signals from its first
# line (make passes a TERM on to this script while a TERM to the group is being handled, and
# a closed terminal or a dead output reader turns every write into HUP or PIPE), it never
# stops on a failed write, and the services' output goes to files, not through pipes that
# die with the group. If this script dies anyway (SIGKILL), the guard (scripts/lib.sh
# guard_start) stops the groups.
cleanup() {
  local status="${1:-$?}"
  trap '' INT TERM HUP PIPE
  trap - EXIT
  set +e
  if [ ${#pids[@]} -gt 0 ]; then
    note "stopping (${names[*]})"
    local forced
    if ! forced="$(stop_groups 15 "${pids[@]}")"; then
      note "warning: process group(s) $(echo $forced) did not stop on SIGTERM: killed"
    fi
    guard_done
    wait 2>/dev/null
    note "stopped"
  fi
  guard_done
  exit "$status"
}
trap 'cleanup 130' INT
trap 'cleanup 143' TERM
trap 'cleanup 129' HUP
trap 'cleanup 141' PIPE
trap cleanup EXIT

for port in "$edge_port" "$exec_port"; do
  port_open "$port" && die "port $port is in use (another \`make dev\`?): stop it, or set CODEBOX_DEV_PORT / CODEBOX_EXEC_PORT"
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
# The fleet streams rooms' runs live into the edge (Contract 4).
export CODEBOX_EDGE_URL="http://127.0.0.1:$edge_port"
wrangler_state=()
[ -n "${CODEBOX_DEV_STATE:-}" ] && wrangler_state=(--persist-to "$state_dir/wrangler")

# NAME COMMAND...: runs COMMAND in a session and process group of its own, its output into
# $state_dir/logs/NAME.log (a file: a writer never meets a broken pipe), shown here prefixed
# with NAME until it exits. The display ignores INT, TERM and HUP so that a Ctrl-C does not
# cut off the last words; nothing depends on it.
start() {
  local name="$1"; shift
  local log="$state_dir/logs/$name.log"
  : >"$log"
  setsid "$@" {GUARD_FD}>&- >>"$log" 2>&1 </dev/null &
  local pid=$!
  pids+=("$pid")
  names+=("$name")
  guard_add "$pid"
  (trap '' INT TERM HUP; tail -n +1 -f --pid="$pid" "$log" | sed -u "s/^/[$name] /") {GUARD_FD}>&- </dev/null &
}

if ! grep -qs '^ROOM_TOKEN_SECRET=' .dev.vars; then
  say "writing a development ROOM_TOKEN_SECRET into .dev.vars (ignored by git)"
  (umask 077 && echo "ROOM_TOKEN_SECRET=$(random_hex 32)" >> .dev.vars)
fi
edge_vars=(--var "EXEC_API_URL:http://127.0.0.1:$exec_port")
[ -n "${CODEBOX_ROOM_RATE_LIMIT:-}" ] && edge_vars+=(--var "ROOM_RATE_LIMIT:$CODEBOX_ROOM_RATE_LIMIT")
[ -n "${CODEBOX_RUN_RATE_LIMIT:-}" ] && edge_vars+=(--var "RUN_RATE_LIMIT:$CODEBOX_RUN_RATE_LIMIT")

step 6 "starting the exec API, the fleet and the edge (logs in $state_dir/logs)"
guard_start "$stop_log"
start exec-api "$bin/exec-lambda"
start fleet "$bin/exec-fleet"
start edge node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$edge_port" \
  "${edge_vars[@]}" "${wrangler_state[@]}" --show-interactive-dev-session=false

# Ready when the IDE and the exec API answer through the edge (wrangler's build step may run first).
deadline=$((SECONDS + ready_timeout))
until [ "$(http_status "http://127.0.0.1:$edge_port/")" = 200 ] \
  && [ "$(http_status "http://127.0.0.1:$edge_port/api/v1/languages")" = 200 ]; do
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
