#!/usr/bin/env bash
# Builds the runner images the exec fleet runs programs in, locally (no registry).
#
#   scripts/images.sh [--force] [LANG...]    LANG: python javascript c cpp go rust (default: all)
#   scripts/images.sh base                   only the base image
#   scripts/images.sh --list                 the runner image names, one a line
#
# 1. codebox-base:bookworm, once per machine: `debootstrap --variant=minbase bookworm`,
#    trimmed, imported with `docker import`. The rootfs tarball is kept in
#    $CODEBOX_CACHE/images/, so a re-import after `docker system prune` takes seconds.
#    CODEBOX_RUNNER_BASE=debian:bookworm-slim (or any bookworm image present locally)
#    skips it and builds the runners FROM that image instead.
# 2. codebox-supervisor: the static binary every runner runs (crates/sandbox), built with
#    cargo into $CODEBOX_CACHE/target/supervisor-RUSTC.
# 3. codebox-runner-LANG:latest from runners/LANG.Dockerfile (context: runners/ and the
#    supervisor), labelled with the protocol the supervisor speaks (codebox.protocol).
#
# Every image carries the label codebox.inputs: a hash of what it is built from (for a
# runner: its Dockerfile, the runners/codebox-* files, the supervisor and the base image id).
# An image whose label matches is up to date and skipped. --force rebuilds the runners
# without Docker's layer cache (fresh packages and security updates) and re-imports the base.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ALL_LANGS=(python javascript c cpp go rust)
BASE_IMAGE=codebox-base:bookworm
SUITE=bookworm
MIRROR="${CODEBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RUNNERS="$REPO_ROOT/runners"
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

force=""
base_only=""
langs=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    base) base_only=1 ;;
    --list) for l in "${ALL_LANGS[@]}"; do echo "codebox-runner-$l:latest"; done; exit 0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    python|javascript|c|cpp|go|rust) langs+=("$arg") ;;
    *) die "unknown language or option '$arg' (languages: ${ALL_LANGS[*]})" ;;
  esac
done
[ ${#langs[@]} -gt 0 ] || langs=("${ALL_LANGS[@]}")

label_of() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }
elapsed() { local s=$(( $(date +%s%N) / 1000000 - $1 )); printf '%d.%01ds' $((s / 1000)) $((s % 1000 / 100)); }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
size_of() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1000000}'; }

# The base recipe: everything that decides the base image's content, hashed into its label.
base_recipe() {
  echo "debootstrap --variant=minbase $SUITE $MIRROR"
  declare -f trim_rootfs
}

# Makes a fresh debootstrap tree look like Debian's slim images: the same apt sources
# (with -updates and -security), no docs, man pages or locales, no apt lists or caches.
trim_rootfs() {
  local root="$1"
  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/tmp/* "$root"/var/tmp/*
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  # Docker provides these per container.
  : > "$root/etc/hostname"
  : > "$root/etc/resolv.conf"
}

build_base() {
  local hash="$1" dir="$CODEBOX_CACHE/images"
  local tarball="$dir/codebox-base-$SUITE-$hash.tar"
  mkdir -p "$dir"
  if [ ! -s "$tarball" ]; then
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
    bash "$REPO_ROOT/scripts/docker.sh" --debootstrap
    local root="$dir/rootfs-$SUITE-$hash"
    rm -rf "$root"
    say "debootstrap --variant=minbase $SUITE (once per machine, about a minute; log: $dir/debootstrap.log)"
    # Progress: one line per debootstrap stage.
    debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" 2>&1 | tee "$dir/debootstrap.log" \
      | awk '/^I: / && !seen[$2]++ { print "  [base] " $0; fflush() }' >&2 \
      || { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap failed; see $dir/debootstrap.log"; }
    trim_rootfs "$root"
    tar -C "$root" --numeric-owner -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
    rm -rf "$root"
    # Old tarballs of earlier recipes.
    find "$dir" -maxdepth 1 -name "codebox-base-$SUITE-*.tar" ! -name "$(basename "$tarball")" -delete
  fi
  say "docker import $BASE_IMAGE"
  docker import --change "LABEL codebox.inputs=$hash" --change 'CMD ["/bin/sh"]' \
    --message "codebox-base $SUITE minbase" "$tarball" "$BASE_IMAGE" >/dev/null
}

bash "$REPO_ROOT/scripts/docker.sh"

# One build at a time on this machine (tests and developers may call this concurrently).
mkdir -p "$CODEBOX_CACHE"
exec 9>"$CODEBOX_CACHE/images.lock"
flock 9

total_start=$(now_ms)
built=()

if [ -n "${CODEBOX_RUNNER_BASE:-}" ]; then
  base="$CODEBOX_RUNNER_BASE"
  docker image inspect "$base" >/dev/null 2>&1 || die "base image $base is not present (no registry here: load or build it first)"
  say "base: $base (CODEBOX_RUNNER_BASE)"
else
  base="$BASE_IMAGE"
  base_hash="$(base_recipe | sha256sum | cut -c1-16)"
  if [ -z "$force" ] && [ "$(label_of "$base" codebox.inputs)" = "$base_hash" ]; then
    say "$base is up to date"
  else
    t=$(now_ms)
    build_base "$base_hash"
    built+=("$base")
    say "$base built in $(elapsed "$t") ($(size_of "$base"))"
  fi
fi
base_id="$(docker image inspect -f '{{.Id}}' "$base")"
if [ -n "$base_only" ]; then
  say "done in $(elapsed "$total_start")"
  exit 0
fi

# The supervisor: static, so it runs on any runner base. Its own target folder (the
# static flag would otherwise rebuild the workspace's native one).
host="$(rustc -vV | awk '/^host:/ { print $2 }')"
supervisor_target="$CODEBOX_CACHE/target/supervisor-$(rustc -V | awk '{print $2}')"
say "building codebox-supervisor (static, $host)"
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$supervisor_target" \
  cargo build --quiet --locked --release -p codebox-sandbox --bin codebox-supervisor --target "$host" \
  || die "building codebox-supervisor failed"
supervisor="$supervisor_target/$host/release/codebox-supervisor"
protocol="$("$supervisor" --protocol)" || die "$supervisor does not run"
# The build context: runners/ and the supervisor.
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$RUNNERS"/* "$context/"
cp "$supervisor" "$context/codebox-supervisor"

for lang in "${langs[@]}"; do
  image="codebox-runner-$lang:latest"
  dockerfile="$RUNNERS/$lang.Dockerfile"
  [ -f "$dockerfile" ] || die "missing $dockerfile"
  hash="$(cat "$dockerfile" "$RUNNERS"/codebox-* "$supervisor" <(echo "$base_id") | sha256sum | cut -c1-16)"
  if [ -z "$force" ] && [ "$(label_of "$image" codebox.inputs)" = "$hash" ]; then
    say "$image is up to date"
    continue
  fi
  say "building $image (FROM $base)"
  t=$(now_ms)
  docker build --pull=false ${force:+--no-cache} --build-arg "BASE=$base" --label "codebox.inputs=$hash" \
    --label "codebox.protocol=$protocol" -f "$dockerfile" -t "$image" "$context" 2>&1 \
    | sed -u -e '/^DEPRECATED: The legacy builder/d' -e '/^ *BuildKit is currently disabled/d' \
        -e '/^ *environment-variable\.$/d' -e "s/^/  [$lang] /" \
    || die "building $image failed"
  built+=("$image")
  say "$image built in $(elapsed "$t") ($(size_of "$image"))"
done

if [ ${#built[@]} -gt 0 ]; then
  # Earlier builds of the runners, now untagged.
  docker image prune -f --filter label=codebox.language >/dev/null || true
fi

say "images ready in $(elapsed "$total_start"):"
for lang in "${langs[@]}"; do
  image="codebox-runner-$lang:latest"
  printf '  %-32s %s\n' "$image" "$(size_of "$image")" >&2
done
