#!/usr/bin/env bash
# Makes sure a Docker engine is reachable, for the exec fleet and its tests.
#
#   scripts/docker.sh                 install (apt, idempotent) and start dockerd if needed
#   scripts/docker.sh --debootstrap   the same, and make sure debootstrap is installed
#                                     (scripts/images.sh needs it for the base image)
#
# - `docker info` works: nothing to do (whoever runs that engine keeps it).
# - dockerd is installed but not running: starts it in the background, detached from
#   this shell (log: $CODEBOX_CACHE/dockerd.log), and waits until it answers.
# - dockerd is missing: installs docker.io and iptables with apt (as root), or says what
#   is missing. Packages are only installed when their command is missing, so an engine
#   from another source (Docker CE) is left as it is.
# - crun: installed too (apt), and a dockerd this script starts offers it as runtime "crun",
#   which the fleet prefers (FLEET_RUNTIME=auto): less CPU per run than runc in an alternated
#   A/B (figures in docs/BENCHMARKS.md). Without crun the fleet uses the engine's default.
#   On a host with hybrid cgroups (v1 controllers plus a cgroup2 mount that has controllers
#   of its own), which crun refuses, dockerd runs in a private mount namespace without the
#   cgroup2 mount; the host's mounts are not touched.
# It never stops an engine: not one it found, and not one it started (later scripts and
# tests share it). Stop one this script started with `kill "$(cat /var/run/docker.pid)"`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DOCKER_READY_TIMEOUT="${DOCKER_READY_TIMEOUT:-60}"


engine_up() { docker info >/dev/null 2>&1; }

have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

# Installs the packages whose command is missing: have-command:package pairs.
ensure_commands() {
  local pkgs=() pair
  for pair in "$@"; do
    have "${pair%%:*}" || pkgs+=("${pair#*:}")
  done
  [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
}

# What the fleet needs on the host: the engine with tini as docker-init (for init: true),
# and iptables for its bridge (image builds reach Debian's mirror through it).
ensure_engine_installed() {
  ensure_commands dockerd:docker.io docker:docker.io iptables:iptables docker-init:tini
  have dockerd || die "dockerd is not installed: apt-get install docker.io iptables (as root)"
  have docker || die "the docker CLI is not installed: apt-get install docker.io"
  have docker-init || warn "docker-init (tini) is missing: sandbox containers (init: true) will fail"
}

# crun, for faster container starts: optional, so a failed install is only a warning.
ensure_crun() {
  have crun && return 0
  ( apt_install crun ) || warn "crun could not be installed: sandboxes will start with runc"
}

# The runtime names the running engine offers, comma-separated.
engine_runtimes() {
  docker info --format '{{range $name, $_ := .Runtimes}}{{$name}},{{end}}' 2>/dev/null | sed 's/,$//'
}

# Whether cgroups are hybrid with controllers on the cgroup2 side (crun refuses that).
hybrid_cgroups_with_v2_controllers() {
  [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] \
    && [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] \
    && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]
}

# Starts dockerd in the background, detached from this shell, with crun if installed.
start_dockerd() {
  local crun args=()
  crun="$(command -v crun || true)"
  # A runtime named in daemon.json too would make dockerd refuse to start.
  if [ -n "$crun" ] && ! grep -qs '"crun"' /etc/docker/daemon.json; then
    args+=(--add-runtime "crun=$crun")
  fi
  # containerd starts shims with LD_LIBRARY_PATH="/opt/containerd/lib:$LD_LIBRARY_PATH"; when
  # that is empty, the trailing ":" names the current folder, and every runtime call (four
  # per container) probes its bundle folder for each of its libraries: ~400 failed opens.
  # The system library folder there loads the same libraries without the probing.
  local libc
  libc="$(ldd "$(command -v dockerd)" 2>/dev/null | awk '/libc\.so/ {print $3}')"
  if [ -z "${LD_LIBRARY_PATH:-}" ] && [ -n "$libc" ]; then
    export LD_LIBRARY_PATH="${libc%/*}"
  fi
  # setsid + nohup: the engine outlives this script and the test run that called it.
  if [ ${#args[@]} -gt 0 ] && hybrid_cgroups_with_v2_controllers; then
    say "hybrid cgroups: dockerd runs in its own mount namespace without /sys/fs/cgroup/unified (for crun)"
    setsid nohup unshare --mount --propagation private \
      sh -c 'umount /sys/fs/cgroup/unified && exec dockerd "$@"' dockerd "${args[@]}" \
      >>"$CODEBOX_CACHE/dockerd.log" 2>&1 </dev/null &
  else
    setsid nohup dockerd "${args[@]}" >>"$CODEBOX_CACHE/dockerd.log" 2>&1 </dev/null &
  fi
  echo $!
}

# The pid of a dockerd that is running already (maybe still starting), if any.
running_dockerd() {
  local pid
  pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    echo "$pid"
  fi
}

wait_ready() {
  local pid="$1" deadline=$((SECONDS + DOCKER_READY_TIMEOUT))
  until engine_up; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$CODEBOX_CACHE/dockerd.log" >&2 2>/dev/null || true
      die "dockerd (pid $pid) exited while starting; see $CODEBOX_CACHE/dockerd.log"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$CODEBOX_CACHE/dockerd.log" >&2 2>/dev/null || true
      docker info 2>&1 | tail -n 3 >&2 || true
      die "dockerd (pid $pid) did not answer within ${DOCKER_READY_TIMEOUT}s; see $CODEBOX_CACHE/dockerd.log"
    fi
    sleep 0.2
  done
}

main() {
  local want_debootstrap=""
  case "${1:-}" in
    --debootstrap) want_debootstrap=1 ;;
    "") ;;
    *) die "usage: $0 [--debootstrap]" ;;
  esac
  [ -z "$want_debootstrap" ] || ensure_commands debootstrap:debootstrap
  if engine_up; then note_runtimes; return 0; fi
  ensure_engine_installed
  ensure_crun
  if engine_up; then note_runtimes; return 0; fi

  local pid
  pid="$(running_dockerd)"
  if [ -n "$pid" ]; then
    say "dockerd (pid $pid) is running but not answering yet: waiting"
    wait_ready "$pid"
    return 0
  fi
  if [ -S /var/run/docker.sock ] && docker info 2>&1 | grep -qi 'permission denied'; then
    die "an engine runs but this user may not use it ($(id -un)): join the docker group or run as root"
  fi

  [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and starting dockerd needs root"
  mkdir -p "$CODEBOX_CACHE"
  say "starting dockerd (log: $CODEBOX_CACHE/dockerd.log)"
  pid="$(start_dockerd)"
  wait_ready "$pid"
  say "dockerd is up (pid $(running_dockerd || echo "$pid"), $(docker version -f '{{.Server.Version}}' 2>/dev/null), runtimes: $(engine_runtimes))"
}

# Says when an engine this script did not start lacks crun (the fleet then uses runc).
note_runtimes() {
  case ",$(engine_runtimes)," in
    *,crun,*) ;;
    *) say "the running engine has no crun runtime: sandboxes start with its default (runc, more CPU per run: docs/BENCHMARKS.md); a dockerd started by this script adds crun" ;;
  esac
}

main "$@"
