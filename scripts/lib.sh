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

# --- JSON --------------------------------------------------------------------------------
# jq, installed from Debian when missing: `json -r .id <<<"$body"`. -e (exit status 1 when
# the answer is null or false) is how a script checks a field instead of grepping text; with
# several inputs (a log) jq 1.6 judges only the last one: collect them (`-n '[inputs | ...]'`).
json() {
  command -v jq >/dev/null || apt_install jq
  jq "$@"
}

# $1 random bytes as hex (secrets for local setups).
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# --- ports and HTTP ----------------------------------------------------------------------
# A TCP port on 127.0.0.1 that was free when asked (the kernel's choice).
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

# Whether something accepts connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The HTTP status URL $1 answers with, "000" when it does not answer (within 2 s).
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true; }

# Waits up to $2 s until URL $1 answers: with status $3 when given, else with any status.
# Returns 1 on timeout, 2 at once when pid $4 (if given) has exited.
wait_http() {
  local url="$1" deadline=$((SECONDS + $2)) want="${3:-}" pid="${4:-}" code
  while :; do
    code="$(http_status "$url")"
    if [ -n "$want" ]; then [ "$code" = "$want" ] && return 0; else [ "$code" != 000 ] && return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 2; fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# --- processes (/proc) -------------------------------------------------------------------
# Field $2 (3 or more, numbered as in proc(5): 4 ppid, 5 pgrp, 6 session, 14-17 CPU ticks,
# 22 start time) of /proc/$1/stat; fails when the process is gone. Counted from the end of
# the command name (field 2), which may hold spaces and parentheses.
proc_stat() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  local -a f
  read -ra f <<<"${stat##*) }"
  echo "${f[$(($2 - 3))]}"
}

# CPU seconds process $1 and its reaped children used (utime+stime+cutime+cstime); 0 if gone.
proc_cpu() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
  local -a f
  read -ra f <<<"${stat##*) }"
  awk -v t=$((f[11] + f[12] + f[13] + f[14])) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# Process $1 and every process below it, one pid a line.
descendants() {
  local kid
  echo "$1"
  for kid in $(pgrep -P "$1" || true); do descendants "$kid"; done
}

# The whole machine's busy share (percent) between two `cpu_sample`s ($1, $2).
cpu_sample() { head -1 /proc/stat; }
cpu_busy() {
  local -a a b
  read -ra a <<<"$1"; read -ra b <<<"$2"
  local t=0 j
  for j in 1 2 3 4 5 6 7 8; do t=$((t + b[j] - a[j])); done
  local idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $((100 * (t - idle) / (t > 0 ? t : 1)))
}

# Waits up to $1 s (0: not at all) for the machine to be under $2 % busy over 5 s, for
# benchmarks on a shared machine; prints what it saw when it waited.
wait_idle() {
  local limit="$1" most="$2" waited=0 a b busy
  [ "$limit" -gt 0 ] || return 0
  while :; do
    a="$(cpu_sample)"; sleep 5; b="$(cpu_sample)"
    busy="$(cpu_busy "$a" "$b")"; waited=$((waited + 5))
    if [ "$busy" -lt "$most" ]; then echo "machine idle (${busy}% busy over 5 s) after ${waited} s"; return 0; fi
    if [ "$waited" -ge "$limit" ]; then echo "machine still ${busy}% busy after ${waited} s; running anyway"; return 0; fi
  done
}

# --- process groups ----------------------------------------------------------------------
# Scripts start what runs in the background with `setsid` (its own session and process group,
# whose id is the pid `$!` gives), so that one kill reaches it and everything it spawned, and
# a signal to the script's own group (a terminal's Ctrl-C, a closed terminal, `timeout`)
# does not reach it before the script's cleanup does.

# Stops the process groups $2...: SIGTERM to each, then waits up to $1 s for all of them to
# empty, then SIGKILLs what is left. Prints "PGID" for each group that needed SIGKILL and
# returns 1 if any did.
stop_groups() {
  local limit="$1" pgid alive forced=0
  shift
  for pgid in "$@"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  local deadline=$((SECONDS + limit))
  while [ "$SECONDS" -lt "$deadline" ]; do
    alive=""
    for pgid in "$@"; do kill -0 -- "-$pgid" 2>/dev/null && alive=1; done
    [ -n "$alive" ] || return 0
    sleep 0.1
  done
  for pgid in "$@"; do
    if kill -0 -- "-$pgid" 2>/dev/null; then
      echo "$pgid"
      kill -KILL -- "-$pgid" 2>/dev/null || true
      forced=1
    fi
  done
  return "$forced"
}

# One process group: stop_group PGID [SECONDS, default 5]; warns when it needed SIGKILL.
stop_group() {
  stop_groups "${2:-5}" "$1" >/dev/null || warn "process group $1 did not stop on SIGTERM within ${2:-5} s: killed"
}

# A guard for the process groups a script starts: if the script dies without stopping them
# (SIGKILL, or any death its traps cannot catch), the guard stops them. It runs in a session
# of its own, ignores INT, TERM, HUP and PIPE, and reads the groups' ids on a pipe whose only
# writer is the script (GUARD_FD): end of file without "done" means the script is gone.
#   guard_start LOG      start it; its messages go to stderr and are appended to LOG
#   guard_add PGID       one more group to guard
#   guard_done           the script stopped its groups itself: the guard exits
# Everything the script starts in the background must close GUARD_FD (`{GUARD_FD}>&-`),
# or the guard waits for that process too.
GUARD_FD=""
guard_start() {
  exec {GUARD_FD}> >(exec setsid bash -c 'source "$0" && _guard_groups "$1"' "${BASH_SOURCE[0]}" "$1")
}
guard_add() { [ -z "$GUARD_FD" ] || echo "$1" >&"$GUARD_FD" 2>/dev/null || true; }
guard_done() {
  [ -n "$GUARD_FD" ] || return 0
  echo done >&"$GUARD_FD" 2>/dev/null || true
  exec {GUARD_FD}>&-
  GUARD_FD=""
}
_guard_groups() { # LOG; the ids on stdin
  trap '' INT TERM HUP PIPE
  local log="$1" line groups=() forced
  while IFS= read -r line; do
    [ "$line" != done ] || exit 0
    groups+=("$line")
  done
  [ ${#groups[@]} -gt 0 ] || exit 0
  _guard_note() { say "$*" || true; printf '%s %s\n' "$(date '+%F %T')" "$*" >>"$log" 2>/dev/null || true; }
  _guard_note "guard: the script that started process groups ${groups[*]} is gone without stopping them: stopping them"
  if ! forced="$(stop_groups 15 "${groups[@]}")"; then
    _guard_note "guard: process group(s) $(echo $forced) did not stop on SIGTERM: killed"
  fi
  _guard_note "guard: stopped"
}
