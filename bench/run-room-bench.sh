#!/usr/bin/env bash
# The room fan-out benchmark, side by side: the same load (bench/room-load: 1 writer,
# READERS readers, RATE edits/s for DURATION s after WARMUP s) against
#   1. the CodeBox edge under `wrangler dev --local` (workerd, the Room Durable Object),
#   1b. the same workerd runtime reached on its own port, without wrangler's dev proxy
#       (skip with EDGE_DIRECT=0), and
#   2. the baseline `@y/websocket-server` 0.1.1 (bench/peers/), one after the other.
# Prints one result block per server, each with the server's CPU time (and the load
# generator's, and the whole machine's). Exits non-zero if any run lost or added deliveries.
# Stops every process it started (each runs in its own process group).
#
# The edge opens only rooms it created (DESIGN.md, Contract 3): each edge run first makes its
# room with `POST /rooms` and every socket opens it with the edit token (`?token=`). This
# wrangler has a token secret of its own (ROOM_TOKEN_SECRET, random, in a .dev.vars in the
# script's private temp folder) and per-client limits raised out of the way
# (ROOM_RATE_LIMIT, RUN_RATE_LIMIT). The baseline has no tokens: it gets a made-up room name.
#
#   bash bench/run-room-bench.sh            # 49 readers, 50 edits/s, 20 s (+2 s warm-up)
#   READERS=9 RATE=20 DURATION=10 WARMUP=1 bash bench/run-room-bench.sh
#   SERVERS="baseline edge" WAIT_IDLE=300 bash bench/run-room-bench.sh   # order; wait for an idle machine
#
# wrangler runs with a copy of wrangler.toml minus its [build] section, in a temp folder: the
# script builds the Worker once up front (scripts/build-edge.sh, under the machine-wide build
# lock the e2e tests take), then points the copy at a snapshot of it and at an empty assets
# folder (the benchmark uses only /rooms; the IDE is not built), so that neither wrangler's
# watcher nor someone else's rebuild can reload the Worker (and drop every socket) mid-run.
# BENCH_REPO_CONFIG=1 uses wrangler.toml as it is (its [build] and the IDE's assets included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(native_target_dir)}"
READERS="${READERS:-49}"
RATE="${RATE:-50}"
SECONDS_MEASURED="${DURATION:-20}" # not $SECONDS: bash keeps its own clock in that name
WARMUP="${WARMUP:-2}"
ROOM="bench-$(date +%s)" # the baseline's room; the edge names its own
# Per-client limits for this wrangler, as LIMIT/SECONDS: every socket and request comes from
# this one client.
BENCH_RATE_LIMIT="1000000/60"

# Temp folder (wrangler's config copy and Durable Object storage, logs). BENCH_TMPDIR=/dev/shm
# puts the Durable Object's SQLite on tmpfs, to see what disk syncs cost.
# mktemp makes it readable by its owner only: the token secret's .dev.vars lives there too.
TMP="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/room-bench.XXXXXX")"
STARTED=() # process-group ids of what this script started (each runs under setsid)
# The machine-wide build lock of the e2e tests (e2e/harness.mjs withBuildLock): a folder
# holding its owner's pid, in node's os.tmpdir().
BUILD_LOCK="${TMPDIR:-/tmp}/codebox-e2e-build.lock"
HOLDING_LOCK=""

stop_group() { # stop one process group we started: TERM, then KILL after 5 s
  local pgid="$1" i
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}
cleanup() {
  local pgid
  for pgid in "${STARTED[@]}"; do stop_group "$pgid"; done
  unlock_builds
  rm -rf "$TMP"
}

lock_builds() { # waits up to 20 min for the build lock; a dead owner's lock is taken over
  local i owner
  for i in $(seq 4800); do
    if mkdir "$BUILD_LOCK" 2>/dev/null; then
      echo $$ >"$BUILD_LOCK/pid"
      HOLDING_LOCK=1
      return 0
    fi
    owner="$(cat "$BUILD_LOCK/pid" 2>/dev/null || true)"
    if [[ "$owner" =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null; then
      rm -rf "$BUILD_LOCK"
      continue
    fi
    [ "$i" = 1 ] && say "waiting for the build lock $BUILD_LOCK (pid ${owner:-?})"
    sleep 0.25
  done
  die "the build lock $BUILD_LOCK was held for 20 minutes"
}
unlock_builds() {
  [ -n "$HOLDING_LOCK" ] || return 0
  rm -rf "$BUILD_LOCK"
  HOLDING_LOCK=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

descendants() { # $1 and every process below it
  local kid
  echo "$1"
  for kid in $(pgrep -P "$1" || true); do descendants "$kid"; done
}

# WAIT_IDLE=N: before each run, wait up to N s for the machine to be idle (under 10% busy over
# 5 s), for shared machines; each block's "machine CPU" line says what else ran during it.
wait_idle() {
  local limit="${WAIT_IDLE:-0}" waited=0 a b t j idle busy
  [ "$limit" -gt 0 ] || return 0
  while :; do
    read -ra a < <(head -1 /proc/stat); sleep 5; read -ra b < <(head -1 /proc/stat)
    t=0; for j in 1 2 3 4 5 6 7 8; do t=$((t + b[j] - a[j])); done
    idle=$((b[4] - a[4] + b[5] - a[5])); busy=$((100 * (t - idle) / (t > 0 ? t : 1)))
    waited=$((waited + 5))
    if [ "$busy" -lt 10 ]; then echo "# machine idle (${busy}% busy over 5 s) after ${waited} s"; return 0; fi
    if [ "$waited" -ge "$limit" ]; then echo "# machine still ${busy}% busy after ${waited} s; running anyway"; return 0; fi
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# $1 = URL that answers once the server is up, $2 = log file, $3 = pid to watch, $4 = the
# HTTP status that means ready (any answer when empty)
wait_http() {
  local i code=""
  for i in $(seq 600); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)"
    if [ -z "${4:-}" ] && [ "$code" != 000 ]; then return 0; fi
    if [ -n "${4:-}" ] && [ "$code" = "$4" ]; then return 0; fi
    kill -0 "$3" 2>/dev/null || { tail -20 "$2" >&2; die "server exited before it was ready"; }
    sleep 0.1
  done
  tail -20 "$2" >&2
  die "server not ready after 60 s: $1 (last answer: HTTP $code${4:+, waiting for $4})"
}

# A new room on the edge at $1 (http://host:port): `POST /rooms`. Sets EDGE_ROOM and
# EDGE_TOKEN (the edit token; never printed).
create_room() {
  local body
  body="$(curl -sS --max-time 10 -X POST -w '\n%{http_code}' "$1/rooms")" \
    || die "POST $1/rooms failed"
  [ "${body##*$'\n'}" = 201 ] || die "POST $1/rooms answered HTTP ${body##*$'\n'}: ${body%$'\n'*}"
  { read -r EDGE_ROOM; read -r EDGE_TOKEN; } < <(printf '%s' "${body%$'\n'*}" |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["room"]); print(r["edit_token"])') \
    || die "POST $1/rooms: no room and edit_token in the answer"
}

cd "$ROOT"
say "building room-load (release)"
lock_builds
cargo build --release -p room-load >&2
unlock_builds
LOAD="$CARGO_TARGET_DIR/release/room-load"
if [ ! -d bench/peers/node_modules/@y/websocket-server ]; then
  say "installing bench/peers (npm ci)"
  (cd bench/peers && npm ci --no-audit --no-fund >&2)
fi

load_args=(--readers "$READERS" --rate "$RATE" --seconds "$SECONDS_MEASURED" --warmup "$WARMUP")
status=0

echo "# room fan-out benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr)"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- edge crates Cargo.toml Cargo.lock 2>/dev/null || echo ' (+ uncommitted changes in edge/ or crates/)'), node $(node --version), wrangler $(node_modules/.bin/wrangler --version 2>/dev/null | tail -1)"
echo "# Durable Object storage in $TMP ($(df --output=fstype "$TMP" | tail -1))"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared; see each block's 'machine CPU' line)"
echo "# load: 1 writer + $READERS readers, $RATE edits/s, ${SECONDS_MEASURED} s measured after ${WARMUP} s warm-up"
echo "# rooms: the edge's made by POST /rooms (a new one per run; sockets send its edit token), the baseline's $ROOM"
echo

# A copy of wrangler.toml at $1 without its [build] section: its Worker is a snapshot of
# edge/build copied under $2 (same relative path), its assets an empty folder under $2 (the
# benchmark uses only /rooms, which the Worker serves before any asset), so that neither a
# rebuild by someone else nor wrangler's watcher can swap the Worker mid-run.
bench_config() {
  python3 - "$ROOT/wrangler.toml" "$1" "$2" "$ROOT" <<'EOF'
import os, re, shutil, sys
src, dst, snap, root = sys.argv[1:]
def snapshot(rel):
    if not os.path.exists(os.path.join(root, rel)):
        sys.exit(f"{rel} (from wrangler.toml) does not exist; build it first")
    if not os.path.exists(os.path.join(snap, rel)):
        shutil.copytree(os.path.join(root, rel), os.path.join(snap, rel),
                        ignore=shutil.ignore_patterns(".tmp"))
out, section = [], ""
for line in open(src).read().splitlines():
    header = re.match(r"\s*\[\[?([^\]]+)\]\]?\s*$", line)
    if header:
        section = header.group(1).strip()
    if section == "build":
        continue
    m = re.match(r'(\s*(main|directory)\s*=\s*)"([^"]+)"(.*)$', line)
    if m and m.group(2) == "main" and not m.group(3).startswith("/"):
        rel = os.path.normpath(m.group(3))
        # The Worker's entry module imports its bundle from the folder above it
        # (edge/build/worker/shim.mjs -> ../index.js): copy that whole folder.
        snapshot(os.path.dirname(os.path.dirname(rel)))
        line = f'{m.group(1)}"{os.path.join(snap, rel)}"{m.group(4)}'
    elif m and m.group(2) == "directory" and section == "assets":
        assets = os.path.join(snap, "assets")
        os.makedirs(assets, exist_ok=True)
        line = f'{m.group(1)}"{assets}"{m.group(4)}'
    out.append(line)
open(dst, "w").write("\n".join(out) + "\n")
EOF
}

# Builds the Worker if its inputs changed and prepares the config copy at $TMP/wrangler.toml,
# holding the build lock; a snapshot is kept only if edge/build's stamp did not change while
# it was copied (wrangler under `make dev` may rebuild it without the lock).
prepare_edge() {
  local attempt before
  lock_builds
  for attempt in 1 2 3; do
    say "building the edge if its inputs changed (scripts/build-edge.sh)"
    bash scripts/build-edge.sh >&2 || die "scripts/build-edge.sh failed"
    before="$(cat edge/build/.inputs 2>/dev/null || true)"
    rm -rf "$TMP/snapshot"
    bench_config "$TMP/wrangler.toml" "$TMP/snapshot" || die "could not prepare the wrangler config"
    if [ -n "$before" ] && [ "$before" = "$(cat edge/build/.inputs 2>/dev/null || true)" ] &&
      [ -f "$TMP/snapshot/edge/build/index_bg.wasm" ] && [ -f "$TMP/snapshot/edge/build/worker/shim.mjs" ]; then
      unlock_builds
      return 0
    fi
    say "edge/build changed while it was copied (attempt $attempt); again"
    sleep 3
  done
  die "could not take a stable copy of edge/build"
}

# --- the CodeBox edge under wrangler dev (and its runtime without the dev proxy) ----------
run_edge() {
  local port config built pid p proxy="" runtime="" direct_port=""
  port="$(free_port)"
  config="$ROOT/wrangler.toml"
  built="edge/build"
  if [ "${BENCH_REPO_CONFIG:-0}" != 1 ]; then
    prepare_edge
    config="$TMP/wrangler.toml"
    built="$TMP/snapshot/edge/build"
  fi
  echo "# edge build: inputs $(cat "$built/.inputs" 2>/dev/null || echo '?'), wasm $(stat -c %s "$built/index_bg.wasm" 2>/dev/null || echo '?') bytes"
  # This wrangler's own token secret, readable by this user only; --env-file makes wrangler
  # read it (and not a .dev.vars next to the config) with BENCH_REPO_CONFIG=1 too.
  (umask 077 && python3 -c 'import secrets; print("ROOM_TOKEN_SECRET=" + secrets.token_hex(32))' >"$TMP/.dev.vars")
  say "starting wrangler dev on 127.0.0.1:$port"
  WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
    setsid node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$port" \
    -c "$config" --persist-to "$TMP/wrangler-state" --env-file "$TMP/.dev.vars" \
    --var "ROOM_RATE_LIMIT:$BENCH_RATE_LIMIT" --var "RUN_RATE_LIMIT:$BENCH_RATE_LIMIT" \
    >"$TMP/wrangler.log" 2>&1 </dev/null &
  pid=$!
  STARTED+=("$pid")
  # A socket without a token is refused (401) once the Worker runs with its secret.
  wait_http "http://127.0.0.1:$port/rooms/probe" "$TMP/wrangler.log" "$pid" 401
  sleep 1 # let wrangler finish starting
  # wrangler 4 starts two workerd: its dev proxy, which owns the public port and forwards
  # every request and WebSocket frame, and the runtime holding the Worker and its Durable Objects.
  for p in $(descendants "$pid"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = workerd ] || continue
    if tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "entry=127.0.0.1:$port "; then
      proxy="$p"
    else
      runtime="$runtime${runtime:+,}$p"
    fi
  done
  echo "# wrangler pid $pid; workerd ${proxy:-?} = wrangler's dev proxy (owns port $port, relays every frame);"
  echo "# workerd ${runtime:-?} = the Worker runtime (Room Durable Object). room-load reports the CPU of the whole tree."
  create_room "http://127.0.0.1:$port"
  wait_idle
  "$LOAD" --url "ws://127.0.0.1:$port/rooms" --room "$EDGE_ROOM" --token "$EDGE_TOKEN" "${load_args[@]}" \
    --label "CodeBox edge: wrangler dev --local (workerd), Room Durable Object" \
    --server-tree "$pid" || status=$?

  # The runtime workerd also listens on ephemeral loopback ports of its own; the one that
  # answers /rooms/probe (no token) with 401 is the Worker's entry. Production has no such proxy hop.
  if [ "${EDGE_DIRECT:-1}" = 1 ] && [ -n "$runtime" ] && command -v ss >/dev/null; then
    for p in $(ss -Htlnp | awk -v pids="$runtime" '
        { split(pids, a, ","); for (i in a) if ($0 ~ "pid=" a[i] ",") { n = split($4, h, ":"); print h[n] } }'); do
      if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$p/rooms/probe")" = 401 ]; then
        direct_port="$p"
        break
      fi
    done
    echo
    if [ -n "$direct_port" ]; then
      echo "# the same wrangler dev instance, straight to the runtime workerd's own port $direct_port (no dev proxy)"
      create_room "http://127.0.0.1:$direct_port"
      wait_idle
      "$LOAD" --url "ws://127.0.0.1:$direct_port/rooms" --room "$EDGE_ROOM" --token "$EDGE_TOKEN" "${load_args[@]}" \
        --label "CodeBox edge: workerd runtime port, bypassing wrangler's dev proxy" \
        --server-tree "$pid" || status=$?
    else
      echo "# (the runtime workerd's own port was not found; skipped the run without the dev proxy)"
    fi
  fi
  if grep -qiE 'restarting build|error|panicked' "$TMP/wrangler.log"; then
    echo "# wrangler log (errors / rebuilds):"
    grep -iE 'restarting build|error|panicked' "$TMP/wrangler.log" | head -10 | sed 's/^/#   /'
  fi
  stop_group "$pid"
  echo
}

# --- the baseline: @y/websocket-server 0.1.1 ----------------------------------------------
run_baseline() {
  local port pid version
  port="$(free_port)"
  version="$(node -p 'require("./bench/peers/node_modules/@y/websocket-server/package.json").version')"
  say "starting @y/websocket-server $version on 127.0.0.1:$port"
  HOST=127.0.0.1 PORT="$port" setsid node bench/peers/node_modules/@y/websocket-server/src/server.js \
    >"$TMP/yws.log" 2>&1 </dev/null &
  pid=$!
  STARTED+=("$pid")
  wait_http "http://127.0.0.1:$port/" "$TMP/yws.log" "$pid"
  echo "# @y/websocket-server $version, node pid $pid, port $port (it echoes each update to its sender too)"
  wait_idle
  "$LOAD" --url "ws://127.0.0.1:$port" --room "$ROOM" "${load_args[@]}" \
    --label "baseline: @y/websocket-server $version (node $(node --version))" \
    --server-pid "$pid" || status=$?
  stop_group "$pid"
  echo
}

for server in ${SERVERS:-edge baseline}; do
  case "$server" in
    edge) run_edge ;;
    baseline) run_baseline ;;
    *) die "unknown server '$server' in SERVERS (edge, baseline)" ;;
  esac
done

exit "$status"
