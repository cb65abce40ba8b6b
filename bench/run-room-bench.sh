#!/usr/bin/env bash
# The room benchmark, side by side: the same loads against
#   1. the CodeBox edge under `wrangler dev --local` (workerd, the Room Durable Object),
#   1b. the same workerd runtime reached on its own port, without wrangler's dev proxy
#       (skip with EDGE_DIRECT=0), and
#   2. the baseline `@y/websocket-server` 0.1.1 (bench/peers/), and
#   3. the floor: a minimal relay Durable Object in JavaScript (bench/peers/floor-room/) under
#      the same wrangler and workerd, reached on the runtime's own port: what any room server
#      in workerd pays per socket and per frame (light, providers and idle only),
# one after the other (SERVERS, default "edge baseline floor").
# MODES picks the loads (default "light providers idle coldjoin wakes"), each one block per server:
#   light      bench/room-load: 1 writer + READERS light readers (no Y.Doc), RATE edits/s for
#              DURATION s after WARMUP s; fan-out latency and server CPU.
#   providers  bench/providers fanout: the same load with full clients as the IDE runs them
#              (Y.Doc, stock WebsocketProvider, awareness), once per PROVIDER_AWARENESS setting
#              ("on off"); latency and server CPU per edit, heartbeats included.
#   idle       bench/providers idle: for each of IDLE_LAYOUTS ("1000/100,1000/10": clients/rooms),
#              on a freshly started server, the server's memory per room and per idle
#              connection, sampled IDLE_WAIT (15) s after joining, and again after they left.
#   coldjoin   bench/providers coldjoin: a room seeded with a COLDJOIN_EDITS (100000)-edit
#              document, COLDJOIN_JOINS (5) fresh clients timed to synced; then the server is
#              restarted (the edge on the same --persist-to folder) and the joins are timed
#              again, the first one meeting a cold room. The stock server keeps nothing without
#              a database, so its cold joins run on a second instance with YPERSISTENCE
#              (y-leveldb, installed with it in bench/peers).
#   wakes      bench/providers wakes: WAKES_CLIENTS (10) providers join one room 1.5 s apart and
#              stay idle for WAKES_IDLE (60) s: frames the server handles per minute, its CPU,
#              and (the edge, from its log) wakes from hibernation and alarms set; once per
#              WAKES_PRESENCE ("stock ide"): stock providers, then with the IDE's presence rules.
# Each block reports the server's CPU time (and the load generator's, and the whole machine's),
# memory where it is measured; at the end a table puts the servers' key figures side by side.
# Exits non-zero if any run lost or added deliveries, or a join missed text.
# Stops every process it started (each runs in its own process group).
#
# The edge opens only rooms it created (DESIGN.md, Contract 3): each edge run first makes its
# rooms with `POST /rooms` and every socket opens one with the edit token (`?token=`). This
# wrangler has a token secret of its own (ROOM_TOKEN_SECRET, random, in a .dev.vars in the
# script's private temp folder) and per-client limits raised out of the way
# (ROOM_RATE_LIMIT, RUN_RATE_LIMIT). The baseline has no tokens: it gets made-up room names.
# The edge's memory is its runtime workerd's (and, via wrangler, its dev proxy's, shown
# beside it); the baseline's is its node process's.
#
#   bash bench/run-room-bench.sh            # 49 readers, 50 edits/s, 20 s (+2 s warm-up), every mode
#   READERS=9 RATE=20 DURATION=10 WARMUP=1 MODES=light bash bench/run-room-bench.sh
#   MODES="providers idle" IDLE_LAYOUTS=100/10 IDLE_WAIT=3 bash bench/run-room-bench.sh
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
MODES="${MODES:-light providers idle coldjoin wakes}"
PROVIDER_AWARENESS="${PROVIDER_AWARENESS:-on off}"
IDLE_LAYOUTS="${IDLE_LAYOUTS:-1000/100,1000/10}"
IDLE_WAIT="${IDLE_WAIT:-15}"
COLDJOIN_EDITS="${COLDJOIN_EDITS:-100000}"
COLDJOIN_JOINS="${COLDJOIN_JOINS:-5}"
WAKES_CLIENTS="${WAKES_CLIENTS:-10}"
WAKES_IDLE="${WAKES_IDLE:-60}"
WAKES_PRESENCE="${WAKES_PRESENCE:-stock ide}"
for mode in $MODES; do
  case "$mode" in light | providers | idle | coldjoin | wakes) ;; *) die "unknown mode '$mode' in MODES (light, providers, idle, coldjoin, wakes)" ;; esac
done
for awareness in $PROVIDER_AWARENESS; do
  case "$awareness" in on | off) ;; *) die "PROVIDER_AWARENESS takes on and off, not '$awareness'" ;; esac
done
for presence in $WAKES_PRESENCE; do
  case "$presence" in stock | ide) ;; *) die "WAKES_PRESENCE takes stock and ide, not '$presence'" ;; esac
done
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

# stop_group, descendants, free_port, wait_http, wait_idle, json, random_hex: scripts/lib.sh.
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

# WAIT_IDLE=N: before each run, wait up to N s for the machine to be idle (under 10% busy over
# 5 s), for shared machines; each block's "machine CPU" line says what else ran during it.
bench_wait_idle() {
  local seen
  seen="$(wait_idle "${WAIT_IDLE:-0}" 10)"
  [ -z "$seen" ] || echo "# $seen"
}

# $1 = URL that answers once the server is up, $2 = log file, $3 = pid to watch, $4 = the
# HTTP status that means ready (any answer when empty). Dies when it does not come up.
wait_server() {
  local rc=0
  wait_http "$1" 60 "${4:-}" "$3" || rc=$?
  [ "$rc" -ne 0 ] || return 0
  tail -20 "$2" >&2
  [ "$rc" -ne 2 ] || die "server exited before it was ready"
  die "server not ready after 60 s: $1 (last answer: HTTP $(http_status "$1")${4:+, waiting for $4})"
}

# A new room on the edge at $1 (http://host:port): `POST /rooms`. Sets EDGE_ROOM and
# EDGE_TOKEN (the edit token; never printed).
create_room() {
  local body
  body="$(curl -sS --max-time 10 -X POST -w '\n%{http_code}' "$1/rooms")" \
    || die "POST $1/rooms failed"
  [ "${body##*$'\n'}" = 201 ] || die "POST $1/rooms answered HTTP ${body##*$'\n'}: ${body%$'\n'*}"
  EDGE_ROOM="$(json -er .room <<<"${body%$'\n'*}")" && EDGE_TOKEN="$(json -er .edit_token <<<"${body%$'\n'*}")" \
    || die "POST $1/rooms: no room and edit_token in the answer"
}

has_mode() { [[ " $MODES " == *" $1 "* ]]; }

cd "$ROOT"
if has_mode light; then
  say "building room-load (release)"
  lock_builds
  cargo build --release -p room-load >&2
  unlock_builds
fi
LOAD="$CARGO_TARGET_DIR/release/room-load"
PROVIDERS=(node bench/providers/main.mjs)
if [ ! -d bench/peers/node_modules/@y/websocket-server ]; then
  say "installing bench/peers (npm ci)"
  (cd bench/peers && npm ci --no-audit --no-fund >&2)
fi
# 1000 idle clients are 1000 sockets here, and as many (twice, via wrangler's proxy) in a server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

load_args=(--readers "$READERS" --rate "$RATE" --seconds "$SECONDS_MEASURED" --warmup "$WARMUP")
fanout_args=(--readers "$READERS" --rate "$RATE" --seconds "$SECONDS_MEASURED" --warmup "$WARMUP")
MEASURED_EDITS="$(awk -v s="$SECONDS_MEASURED" -v r="$RATE" 'BEGIN { printf "%.0f", s * r }')"
SUMMARY="$TMP/summary.jsonl" # the key figures of every block, for the table at the end
status=0

echo "# room benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr)"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- edge crates Cargo.toml Cargo.lock 2>/dev/null || echo ' (+ uncommitted changes in edge/ or crates/)'), node $(node --version), wrangler $(node_modules/.bin/wrangler --version 2>/dev/null | tail -1)"
echo "# Durable Object storage in $TMP ($(df --output=fstype "$TMP" | tail -1))"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared; see each block's 'machine CPU' line)"
echo "# modes: $MODES"
echo "# fan-out (light, providers): 1 writer + $READERS readers, $RATE edits/s, ${SECONDS_MEASURED} s measured after ${WARMUP} s warm-up; providers with awareness: $PROVIDER_AWARENESS"
echo "# idle: clients/rooms $IDLE_LAYOUTS, memory sampled ${IDLE_WAIT} s after each step; cold join: ${COLDJOIN_EDITS}-edit document, $COLDJOIN_JOINS joins"
echo "# rooms: the edge's made by POST /rooms (new ones for every block; sockets send the edit token), the baseline's made-up names"
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

# --- the servers ---------------------------------------------------------------------------
# SERVER (edge, baseline or floor) is the one running now; start_server, stop_server and
# restart_server act on it, and set_target points the modes at one of its addresses.

# A Worker under wrangler dev (the edge, or the floor room): wrangler on a free port with config
# $1, its log in $TMP/$SERVER.log and its Durable Objects in $TMP/$SERVER-state (a restart keeps
# the rooms); ready when /rooms/probe, a request without a token or an Upgrade, answers HTTP $2.
# The rest of the arguments go to wrangler. Sets SERVER_PID (wrangler), EDGE_PORT, PROXY_PID
# (wrangler's dev proxy workerd), RUNTIME_PID (the runtime workerd: the Worker and its Durable
# Objects) and DIRECT_PORT (the runtime's own port for the Worker, or "" when not found or
# EDGE_DIRECT=0).
start_wrangler() {
  local config="$1" ready="$2" p runtimes=""
  shift 2
  EDGE_PORT="$(free_port)"
  say "starting wrangler dev on 127.0.0.1:$EDGE_PORT ($SERVER)"
  WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false \
    setsid node_modules/.bin/wrangler dev --local --ip 127.0.0.1 --port "$EDGE_PORT" \
    -c "$config" --persist-to "$TMP/$SERVER-state" "$@" >>"$TMP/$SERVER.log" 2>&1 </dev/null &
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  wait_server "http://127.0.0.1:$EDGE_PORT/rooms/probe" "$TMP/$SERVER.log" "$SERVER_PID" "$ready"
  sleep 1 # let wrangler finish starting
  # wrangler 4 starts two workerd: its dev proxy, which owns the public port and forwards
  # every request and WebSocket frame, and the runtime holding the Worker and its Durable Objects.
  PROXY_PID=""
  for p in $(descendants "$SERVER_PID"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = workerd ] || continue
    if tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "entry=127.0.0.1:$EDGE_PORT "; then
      PROXY_PID="$p"
    else
      runtimes="$runtimes${runtimes:+,}$p"
    fi
  done
  RUNTIME_PID="${runtimes%%,*}"
  echo "# wrangler pid $SERVER_PID; workerd ${PROXY_PID:-?} = wrangler's dev proxy (owns port $EDGE_PORT, relays every frame);"
  echo "# workerd ${runtimes:-?} = the Worker runtime (its Durable Objects). CPU is that of the whole tree."
  [ -n "$PROXY_PID" ] && [ -n "$RUNTIME_PID" ] || die "could not tell wrangler's two workerd processes apart (see $TMP/$SERVER.log)"

  # The runtime workerd also listens on ephemeral loopback ports of its own; the one that
  # answers /rooms/probe as wrangler's did is the Worker's entry. Production has no such proxy hop.
  DIRECT_PORT=""
  if [ "${EDGE_DIRECT:-1}" = 1 ] && command -v ss >/dev/null; then
    for p in $(ss -Htlnp | awk -v pid="$RUNTIME_PID" '$0 ~ "pid=" pid "," { n = split($4, h, ":"); print h[n] }'); do
      if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$p/rooms/probe")" = "$ready" ]; then
        DIRECT_PORT="$p"
        break
      fi
    done
    [ -n "$DIRECT_PORT" ] || echo "# (the runtime workerd's own port was not found; no runs without the dev proxy)"
  fi
}

BASELINE_VERSION="$(node -p 'require("./bench/peers/node_modules/@y/websocket-server/package.json").version')"
BASELINE_PERSISTENCE="" # a y-leveldb folder for YPERSISTENCE, or "" for none (the stock default)

# The baseline, @y/websocket-server, on a free port (with YPERSISTENCE when
# BASELINE_PERSISTENCE is set). Sets SERVER_PID and BASELINE_PORT.
start_baseline() {
  BASELINE_PORT="$(free_port)"
  say "starting @y/websocket-server $BASELINE_VERSION on 127.0.0.1:$BASELINE_PORT${BASELINE_PERSISTENCE:+ (YPERSISTENCE=$BASELINE_PERSISTENCE)}"
  # env -u: a YPERSISTENCE in the caller's environment must not turn persistence on.
  env -u YPERSISTENCE HOST=127.0.0.1 PORT="$BASELINE_PORT" ${BASELINE_PERSISTENCE:+YPERSISTENCE="$BASELINE_PERSISTENCE"} \
    setsid node bench/peers/node_modules/@y/websocket-server/src/server.js \
    >>"$TMP/yws.log" 2>&1 </dev/null &
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  wait_server "http://127.0.0.1:$BASELINE_PORT/" "$TMP/yws.log" "$SERVER_PID"
  echo "# @y/websocket-server $BASELINE_VERSION, node pid $SERVER_PID, port $BASELINE_PORT${BASELINE_PERSISTENCE:+, YPERSISTENCE (y-leveldb)} (it echoes each update to its sender too)"
}

start_server() {
  case "$SERVER" in
    # A socket without a token is refused (401) once the edge runs with its secret.
    edge) start_wrangler "$EDGE_CONFIG" 401 --env-file "$TMP/.dev.vars" \
      --var "ROOM_RATE_LIMIT:$BENCH_RATE_LIMIT" --var "RUN_RATE_LIMIT:$BENCH_RATE_LIMIT" ;;
    # A copy, as for the edge: an edit to the original must not reload it mid-run.
    floor) [ -d "$TMP/floor-room" ] || cp -r "$ROOT/bench/peers/floor-room" "$TMP/floor-room"
      start_wrangler "$TMP/floor-room/wrangler.toml" 426 ;;
    baseline) start_baseline ;;
  esac
}
stop_server() { stop_group "$SERVER_PID"; }
restart_server() {
  stop_server
  start_server
}

# Points the modes at target $1 of the running server: edge-wrangler (wrangler's port),
# edge-direct (the runtime's own port), floor or baseline. Sets COLUMN (the summary's), LABEL, URL
# (the rooms' WebSocket base), API (the edge's HTTP base for POST /rooms; "" for made-up
# names), CPU_ARGS (--server-pid / --server-tree) and MEM_ARGS (--memory-pid: the edge's
# runtime first). Fails when the target is not reachable now.
set_target() {
  case "$1" in
    edge-wrangler)
      COLUMN="edge via wrangler dev" LABEL="CodeBox edge: wrangler dev --local (workerd), Room Durable Object"
      URL="ws://127.0.0.1:$EDGE_PORT/rooms" API="http://127.0.0.1:$EDGE_PORT"
      CPU_ARGS=(--server-tree "$SERVER_PID") MEM_ARGS=(--memory-pid "$RUNTIME_PID" --memory-pid "$PROXY_PID")
      ;;
    edge-direct)
      [ -n "$DIRECT_PORT" ] || return 1
      COLUMN="edge, runtime port" LABEL="CodeBox edge: workerd runtime port, bypassing wrangler's dev proxy"
      URL="ws://127.0.0.1:$DIRECT_PORT/rooms" API="http://127.0.0.1:$DIRECT_PORT"
      CPU_ARGS=(--server-tree "$SERVER_PID") MEM_ARGS=(--memory-pid "$RUNTIME_PID")
      ;;
    floor)
      # Its runtime's own port, beside the edge's; wrangler's when that port was not found.
      COLUMN="floor (minimal DO), runtime port"
      LABEL="floor: a minimal relay Durable Object in JavaScript (bench/peers/floor-room), workerd runtime port"
      URL="ws://127.0.0.1:${DIRECT_PORT:-$EDGE_PORT}/rooms" API=""
      [ -n "$DIRECT_PORT" ] || { COLUMN="floor (minimal DO) via wrangler dev" LABEL="${LABEL%, *}, via wrangler dev"; }
      CPU_ARGS=(--server-tree "$SERVER_PID") MEM_ARGS=(--memory-pid "$RUNTIME_PID")
      ;;
    baseline)
      COLUMN="@y/websocket-server" LABEL="baseline: @y/websocket-server $BASELINE_VERSION (node $(node --version))${BASELINE_PERSISTENCE:+, YPERSISTENCE}"
      URL="ws://127.0.0.1:$BASELINE_PORT" API=""
      CPU_ARGS=(--server-pid "$SERVER_PID") MEM_ARGS=(--memory-pid "$SERVER_PID")
      ;;
  esac
}

# The arguments every bench/providers run of the current target takes.
provider_args() {
  PROVIDER_ARGS=(--url "$URL" --label "$LABEL" --summary "$SUMMARY" --server "$COLUMN" "${CPU_ARGS[@]}" "${MEM_ARGS[@]}")
  [ -z "$API" ] || PROVIDER_ARGS+=(--rooms-api "$API")
}

# Runs the modes $1 against target $2 (see set_target) and adds their figures to the summary.
# Each idle layout gets a freshly started server: memory a server keeps after one load would
# otherwise be reused by the next and hide its cost. coldjoin keeps its room in
# $TMP/coldjoin-TARGET.json for run_rejoin.
run_modes() {
  local modes="$1" target="$2" mode awareness layout room_args
  for mode in $modes; do
    set_target "$target" || { echo "# ($target is not reachable after the restart; $mode skipped)"; continue; }
    provider_args
    bench_wait_idle
    case "$mode" in
      light)
        room_args=(--room "bench-$(date +%s%N)")
        if [ -n "$API" ]; then
          create_room "$API"
          room_args=(--room "$EDGE_ROOM" --token "$EDGE_TOKEN")
        fi
        "$LOAD" --url "$URL" "${room_args[@]}" "${load_args[@]}" --label "$LABEL: light readers (room-load)" \
          "${CPU_ARGS[@]}" | tee "$TMP/room-load.out" || status=$?
        node bench/providers/summary.mjs room-load "$SUMMARY" "$COLUMN" "$MEASURED_EDITS" <"$TMP/room-load.out"
        echo
        ;;
      providers)
        for awareness in $PROVIDER_AWARENESS; do
          "${PROVIDERS[@]}" fanout "${PROVIDER_ARGS[@]}" "${fanout_args[@]}" \
            $([ "$awareness" = on ] || echo --no-awareness) || status=$?
        done
        ;;
      idle)
        for layout in ${IDLE_LAYOUTS//,/ }; do
          echo "# a freshly started server for the idle layout $layout"
          restart_server
          set_target "$target" || { echo "# ($target is not reachable after the restart; idle $layout skipped)"; continue; }
          provider_args
          "${PROVIDERS[@]}" idle "${PROVIDER_ARGS[@]}" --layouts "$layout" --idle "$IDLE_WAIT" || status=$?
        done
        ;;
      coldjoin)
        "${PROVIDERS[@]}" coldjoin "${PROVIDER_ARGS[@]}" --edits "$COLDJOIN_EDITS" \
          --joins "$COLDJOIN_JOINS" --room-file "$TMP/coldjoin-$target.json" || status=$?
        ;;
      wakes)
        for presence in $WAKES_PRESENCE; do
          "${PROVIDERS[@]}" wakes "${PROVIDER_ARGS[@]}" --clients "$WAKES_CLIENTS" --idle "$WAKES_IDLE" \
            $([ "$presence" = ide ] && echo --ide-presence) \
            $([ "$SERVER" = edge ] && echo --log "$TMP/edge.log") || status=$?
        done
        ;;
    esac
  done
}

# After a restart of the server: the cold joins again, to the room run_modes seeded for each
# target of $@.
run_rejoin() {
  local target
  for target in "$@"; do
    if [ ! -f "$TMP/coldjoin-$target.json" ]; then
      echo "# ($target: no seeded room to rejoin: its cold join did not run or failed)"
      continue
    fi
    set_target "$target" || { echo "# ($target is not reachable after the restart; no rejoin)"; continue; }
    provider_args
    bench_wait_idle
    "${PROVIDERS[@]}" coldjoin "${PROVIDER_ARGS[@]}" --joins "$COLDJOIN_JOINS" \
      --rejoin "$TMP/coldjoin-$target.json" || status=$?
  done
}

run_edge() {
  local built="edge/build" targets=(edge-wrangler)
  [ "${EDGE_DIRECT:-1}" = 1 ] && targets+=(edge-direct)
  EDGE_CONFIG="$ROOT/wrangler.toml"
  if [ "${BENCH_REPO_CONFIG:-0}" != 1 ]; then
    prepare_edge
    EDGE_CONFIG="$TMP/wrangler.toml"
    built="$TMP/snapshot/edge/build"
  fi
  echo "# edge build: inputs $(cat "$built/.inputs" 2>/dev/null || echo '?'), wasm $(stat -c %s "$built/index_bg.wasm" 2>/dev/null || echo '?') bytes"
  # This wrangler's own token secret, readable by this user only; --env-file makes wrangler
  # read it (and not a .dev.vars next to the config) with BENCH_REPO_CONFIG=1 too.
  (umask 077 && echo "ROOM_TOKEN_SECRET=$(random_hex 32)" >"$TMP/.dev.vars")
  SERVER=edge
  start_server
  run_modes "$MODES" edge-wrangler
  if [ "${EDGE_DIRECT:-1}" = 1 ]; then
    echo "# the same wrangler dev instance, straight to the runtime workerd's own port (no dev proxy)"
    run_modes "$MODES" edge-direct
  fi
  if has_mode coldjoin; then
    echo "# restarting wrangler on the same --persist-to folder: each seeded room's first join meets a cold Durable Object"
    restart_server
    run_rejoin "${targets[@]}"
  fi
  if grep -qiE 'restarting build|error|panicked' "$TMP/edge.log"; then
    echo "# wrangler log (errors / rebuilds):"
    grep -iE 'restarting build|error|panicked' "$TMP/edge.log" | head -10 | sed 's/^/#   /'
  fi
  stop_server
  echo
}

run_baseline() {
  local in_memory_modes="${MODES/coldjoin/}"
  SERVER=baseline
  BASELINE_PERSISTENCE=""
  if [ -n "${in_memory_modes// /}" ]; then
    start_server
    run_modes "$in_memory_modes" baseline
    stop_server
  fi
  if has_mode coldjoin; then
    echo "# cold joins: @y/websocket-server with YPERSISTENCE (y-leveldb $(node -p 'require("./bench/peers/node_modules/y-leveldb/package.json").version')); without it, it keeps no document across a restart"
    BASELINE_PERSISTENCE="$TMP/yws-leveldb"
    start_server
    run_modes coldjoin baseline
    echo "# restarting @y/websocket-server on the same y-leveldb folder"
    restart_server
    run_rejoin baseline
    stop_server
  fi
  echo
}

# The floor keeps no document and no awareness: the modes that need them are not run on it.
run_floor() {
  local modes="${MODES/coldjoin/}"
  modes="${modes/wakes/}"
  [ -n "${modes// /}" ] || return 0
  SERVER=floor
  start_server
  run_modes "$modes" floor
  stop_server
  echo
}

for server in ${SERVERS:-edge baseline floor}; do
  case "$server" in
    edge) run_edge ;;
    baseline) run_baseline ;;
    floor) run_floor ;;
    *) die "unknown server '$server' in SERVERS (edge, baseline, floor)" ;;
  esac
done

echo "# summary: the key figures of every block above, side by side"
echo "# (the edge's memory is its runtime workerd's RSS; the baseline's cold joins ran with YPERSISTENCE)"
if [ -s "$SUMMARY" ]; then node bench/providers/summary.mjs table "$SUMMARY"; else echo "# (no figures)"; fi

exit "$status"
