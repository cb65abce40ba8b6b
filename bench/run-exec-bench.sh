#!/usr/bin/env bash
# The code-execution benchmark, in one run on the local stack (exec-lambda + exec-fleet over
# the embedded SQLite queue/store, a local Docker engine), with bench/exec-load as the client:
#   1. baselines, before the stack starts: python print(1) and a C hello world as a bare host
#      process, and as one `docker run --rm -i --network none codebox-runner-LANG` per run
#      (the runner image's supervisor doing the sandbox's steps: python syntax check + run,
#      C compile + run);
#   2. submit-to-result latency through the exec API, one submission at a time (LAT_RUNS runs
#      after LAT_WARMUP warm-up runs), python then C, polling GET every POLL_MS, each run
#      LAT_GAP_MS after the last result: a person pressing Run again, not a queue (with 0,
#      back to back, every run shares the cores with the previous run's pool refill and
#      container removal, and the figure tends to the throughput step's);
#   3. throughput: THROUGHPUT_RUNS python print(1) submitted at once, polled until all are
#      terminal; lost = runs that did not end `ok` with the right output.
# Then one report (a table against the targets: stack p50 within 3x of the bare process,
# at least 15 runs/s, 0 lost). Exits non-zero if a target is missed or a run failed.
#
#   bash bench/run-exec-bench.sh
#   FLEET_CONCURRENCY=4 FLEET_POOL_SIZE=2 LAT_RUNS=50 LAT_GAP_MS=300 THROUGHPUT_RUNS=200 bash bench/run-exec-bench.sh
#   WAIT_IDLE=300 bash bench/run-exec-bench.sh     # first wait up to 300 s for an idle machine
#   REPORT=/tmp/exec-bench.txt bash bench/run-exec-bench.sh   # also keep the report there
#   BUILD=0 ...                                   # use the release binaries as they are
#   PROGRAMS= THROUGHPUT_RUNS=100 ...             # throughput only (no baselines, no latency)
#   FLEET_RUNTIME=default ...                     # sandboxes on the engine's default runtime
#   BASE_RUNS=0 THROUGHPUT_RUNS=0 ...             # latency only
#
# Defaults, for a 2-core machine (measured; see docs/BENCHMARKS.md):
# - FLEET_CONCURRENCY=4: a run spends much of its time waiting on the engine (attach, exit,
#   wait, inspect, remove), so 2 in flight leave cores idle; 4 was the fastest of 2, 3, 4 and
#   6 (6 only had longer tails).
# - FLEET_POOL_SIZE=2 warm containers per language: a one-at-a-time user never waits for a
#   container start (the pool refills between runs; 2 covers two runs arriving together);
#   a queue of 200 empties any pool at once, so a bigger pool does not raise throughput,
#   and each slot is an idle container per language. No pool was slowest.
#
# Everything this script starts (exec-lambda, the fleet, `docker run` containers) it stops on
# exit; the fleet removes its own containers on SIGTERM, and the script then checks that no
# container with this fleet's owner label (codebox.sandbox.owner, exec-fleet/src/sandbox) or
# the baseline's label (codebox.bench=exec-load) is left, removing and reporting any that are.
# It never stops the Docker engine (scripts/docker.sh starts one if none runs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(native_target_dir)}"

FLEET_CONCURRENCY="${FLEET_CONCURRENCY:-4}"
FLEET_POOL_SIZE="${FLEET_POOL_SIZE:-2}"
# Unset: the fleet's own default (exec-fleet/src/config.rs).
FLEET_POLL_WAIT_MS="${FLEET_POLL_WAIT_MS:-}"
LAT_RUNS="${LAT_RUNS:-50}"
LAT_WARMUP="${LAT_WARMUP:-5}"
BASE_RUNS="${BASE_RUNS:-50}"
THROUGHPUT_RUNS="${THROUGHPUT_RUNS:-200}"
POLL_MS="${POLL_MS:-3}"
LAT_GAP_MS="${LAT_GAP_MS:-300}"
PROGRAMS="${PROGRAMS-python c}"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/exec-bench.XXXXXX")"
RESULTS="$TMP/results.jsonl"
OUT="$TMP/report.txt"
STARTED=()   # pids of what this script started (each a process-group leader, via setsid)
FLEET_PID=""
OWNER=""
API_PID=""
LOAD_PID=""  # the exec-load step running now (a process-group leader)
COMPLETED="" # set once every step ran: a failure after that is a missed target, not a breakage
status=0

# Containers this run may have left: the fleet's (by owner label) and the baseline's.
leftovers() {
  { [ -n "$OWNER" ] && docker ps -aq --filter "label=codebox.sandbox.owner=$OWNER"; \
    docker ps -aq --filter "label=codebox.bench=exec-load"; } 2>/dev/null | sort -u
}

cleanup() {
  local rc=$? left
  trap - EXIT INT TERM
  if [ -n "$LOAD_PID" ]; then kill -TERM -- "-$LOAD_PID" 2>/dev/null || true; fi
  # The fleet first: on SIGTERM it finishes what it holds, drains its pool and removes
  # every container it made. Then the API.
  [ -n "$FLEET_PID" ] && stop_group "$FLEET_PID" 60
  local pid
  for pid in "${STARTED[@]}"; do stop_group "$pid" 10; done
  left="$(leftovers || true)"
  if [ -n "$left" ]; then
    warn "removing $(echo "$left" | wc -l) leftover container(s): $(echo $left)"
    echo "$left" | xargs -r docker rm -f >/dev/null 2>&1 || true
    rc=1
  fi
  if [ -n "${REPORT:-}" ] && [ -f "$OUT" ]; then cp "$OUT" "$REPORT"; fi
  if [ "$rc" -ne 0 ] && [ -z "$COMPLETED" ] && [ -d "$TMP" ]; then
    for log in "$TMP"/*.log; do
      [ -f "$log" ] || continue
      echo "--- last lines of $log" >&2
      tail -n 15 "$log" >&2
    done
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

report() { tee -a "$OUT"; }

# free_port, cpu_sample, cpu_busy, wait_idle, proc_cpu, stop_group, json: scripts/lib.sh.

# The first event of the fleet's JSON log (LOG_FORMAT=json) whose message is $1: its fields
# as JSON, or nothing yet. Lines still being written are skipped.
fleet_event() {
  json -cR --arg m "$1" 'fromjson? | select(.fields.message == $m) | .fields' "$TMP/exec-fleet.log" 2>/dev/null | head -1
}

# "name=pid" for the processes whose CPU each step reports.
cpu_watch() {
  local pid
  [ -n "${API_PID:-}" ] && echo "exec-lambda=$API_PID"
  [ -n "${FLEET_PID:-}" ] && echo "exec-fleet=$FLEET_PID"
  for name in dockerd containerd; do
    pid="$(pgrep -xo "$name" || true)"
    [ -n "$pid" ] && echo "$name=$pid"
  done
}
cpu_snapshot() { local w; for w in $(cpu_watch); do echo "${w%%=*} $(proc_cpu "${w#*=}")"; done; }

# Runs one exec-load step, its output into the report, then the CPU it took: the whole
# machine's (busy share; it may be shared), and CPU seconds of the API, the fleet, dockerd
# and containerd (containerd-shim, runc and the containers' processes are in "the rest").
step() { # $1: title, then the exec-load arguments
  local title="$1" a b rc=0 before after t0 t1
  shift
  say "$title"
  before="$(cpu_snapshot)"
  a="$(cpu_sample)"
  t0="$(date +%s%N)"
  # In the background, in its own process group (with its `docker events` child), and waited
  # for: a signal to this script runs the cleanup at once, which stops the group.
  setsid "$LOAD" "$@" --json-out "$RESULTS" >"$TMP/step.out" 2>&1 </dev/null &
  LOAD_PID=$!
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  report <"$TMP/step.out"
  t1="$(date +%s%N)"
  b="$(cpu_sample)"
  after="$(cpu_snapshot)"
  {
    local wall busy
    wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e9}')"
    busy="$(cpu_busy "$a" "$b")"
    printf '(step CPU: %s s wall; machine %s%% busy of %s cores = %s core-s' "$wall" "$busy" "$(nproc)" \
      "$(awk -v w="$wall" -v b="$busy" -v n="$(nproc)" 'BEGIN {printf "%.1f", w * b / 100 * n}')"
    join -a1 <(echo "$before" | sort) <(echo "$after" | sort) \
      | awk '{printf "; %s %.1f", $1, $3 - $2}'
    printf ' core-s; load average %s)\n\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  } | report
  if [ "$rc" -ne 0 ]; then status=1; warn "$title: exec-load exited $rc"; fi
}

cd "$ROOT"
say "Docker engine and runner images"
bash scripts/docker.sh
bash scripts/images.sh >&2 # the fleet checks every language's image at start
if [ "${BUILD:-1}" = 1 ]; then
  say "building exec-lambda, exec-fleet and exec-load (release)"
  cargo build --release -p exec-lambda -p codebox-exec-fleet -p exec-load >&2
fi
BIN="$CARGO_TARGET_DIR/release"
LOAD="$BIN/exec-load"

# WAIT_IDLE=N: wait up to N s for the machine to be idle (under 15% busy over 5 s).
idle="$(wait_idle "${WAIT_IDLE:-0}" 15)"
[ -z "$idle" ] || say "$idle"
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT"
{
  echo "# code execution benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GB, $(uname -sr)"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- exec-fleet exec-lambda crates runners bench/exec-load 2>/dev/null || echo ' (+ local changes)'), docker $(docker version -f '{{.Server.Version}}' 2>/dev/null), $(/usr/bin/python3 -V 2>&1), $(gcc --version | head -1)"
  echo "# fleet: FLEET_CONCURRENCY=$FLEET_CONCURRENCY FLEET_POOL_SIZE=$FLEET_POOL_SIZE FLEET_POLL_WAIT_MS=${FLEET_POLL_WAIT_MS:-default}; API on $URL; store $TMP/codebox.db ($(df --output=fstype "$TMP" | tail -1))"
  echo "# runs: baselines $BASE_RUNS each, latency $LAT_RUNS each after $LAT_WARMUP warm-up ($LAT_GAP_MS ms apart, GET every $POLL_MS ms), throughput $THROUGHPUT_RUNS at once"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: see each step's CPU line)"
  echo
} | report

# 1. Baselines, with nothing of CodeBox running.
for program in $PROGRAMS; do
  [ "$BASE_RUNS" -gt 0 ] || break
  step "baseline: $program (bare, docker run)" baseline --program "$program" --runs "$BASE_RUNS"
done

# 2. The stack.
export CODEBOX_BACKEND=embedded CODEBOX_DB="$TMP/codebox.db"
export CODEBOX_RUN_RATE_LIMIT=1000000000/60   # one client (this script) makes every run
export RUST_LOG="${RUST_LOG:-info}"
say "starting exec-lambda on $URL"
CODEBOX_EXEC_LISTEN="127.0.0.1:$PORT" setsid "$BIN/exec-lambda" >"$TMP/exec-lambda.log" 2>&1 </dev/null &
STARTED+=($!)
API_PID=$!
wait_http "$URL/v1/languages" 30 200 "$API_PID" || case $? in
  2) die "exec-lambda exited before it was ready" ;;
  *) die "exec-lambda not ready after 30 s" ;;
esac
say "starting exec-fleet (concurrency $FLEET_CONCURRENCY, pool $FLEET_POOL_SIZE per language)"
# Its log as JSON, to read its events by field: the owner label its containers carry
# ("sandbox ready"), and when its worker loop runs ("fleet worker starting").
env FLEET_CONCURRENCY="$FLEET_CONCURRENCY" FLEET_POOL_SIZE="$FLEET_POOL_SIZE" \
  ${FLEET_POLL_WAIT_MS:+FLEET_POLL_WAIT_MS="$FLEET_POLL_WAIT_MS"} LOG_FORMAT=json setsid "$BIN/exec-fleet" >"$TMP/exec-fleet.log" 2>&1 </dev/null &
FLEET_PID=$!
WANT_WARM=$((FLEET_POOL_SIZE * $(bash scripts/images.sh --list | wc -l))) # a pool per language
warm=0
for i in $(seq 1200); do
  kill -0 "$FLEET_PID" 2>/dev/null || die "exec-fleet exited before it was ready"
  [ -n "$OWNER" ] || OWNER="$(fleet_event "sandbox ready" | json -r '.owner // empty')"
  if [ -n "$OWNER" ] && [ -n "$(fleet_event "fleet worker starting")" ]; then
    warm="$(docker ps -q --filter "label=codebox.sandbox.owner=$OWNER" --filter status=running | wc -l)"
    [ "$warm" -ge "$WANT_WARM" ] && break
  fi
  [ "$i" -lt 1200 ] || die "exec-fleet not ready after 120 s ($warm of $WANT_WARM warm containers)"
  sleep 0.1
done
say "stack ready: $WANT_WARM warm containers"
# What the engine starts sandboxes with (FLEET_RUNTIME, passed through: auto, default or a name).
runtime="$(docker ps -q --filter "label=codebox.sandbox.owner=$OWNER" | head -1 | xargs -r docker inspect -f '{{.HostConfig.Runtime}}')"
echo "# sandboxes: OCI runtime $runtime (FLEET_RUNTIME=${FLEET_RUNTIME:-auto}); the docker run baseline: the engine's default runtime and seccomp profile" | report
sleep 2 # let the engine settle after filling the pool

# 3. Latency, one submission at a time.
for program in $PROGRAMS; do
  step "latency: $program through the stack" latency --url "$URL" --program "$program" \
    --runs "$LAT_RUNS" --warmup "$LAT_WARMUP" --poll-ms "$POLL_MS" --gap-ms "$LAT_GAP_MS" --docker-events
done

# 4. Throughput.
if [ "$THROUGHPUT_RUNS" -gt 0 ]; then
  step "throughput: $THROUGHPUT_RUNS python at once" throughput --url "$URL" --program python --runs "$THROUGHPUT_RUNS"
fi

# One compact line per event of the fleet's JSON log that jq filter $1 selects.
fleet_log() { json -cR "fromjson? | $1" "$TMP/exec-fleet.log" 2>/dev/null; }
echo "## fleet log: $(fleet_log 'select(.fields.message == "run finished")' | wc -l) runs finished; warnings/errors: $(fleet_log 'select(.level == "WARN" or .level == "ERROR")' | wc -l)" | report
fleet_log 'select(.level == "WARN" or .level == "ERROR")' | head -5 | report || true
echo | report
echo "## summary" | report
"$LOAD" report "$RESULTS" | report || status=1
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | report

# Stop the fleet now, to check it leaves nothing behind (cleanup does it again, harmlessly).
stop_group "$FLEET_PID" 60
FLEET_PID_STOPPED="$FLEET_PID"
FLEET_PID=""
left="$(leftovers || true)"
if [ -n "$left" ]; then
  echo "# LEFTOVER containers after the fleet stopped: $(echo "$left" | wc -l)" | report
  status=1
else
  echo "# no containers left (owner label of fleet pid $FLEET_PID_STOPPED, label codebox.bench=exec-load)" | report
fi
COMPLETED=1
exit "$status"
