#!/usr/bin/env bash
# Builds the exec fleet's container image (exec-fleet/Dockerfile) around a release binary.
#
#   scripts/build-fleet-image.sh [--tag IMAGE]    (default codebox-exec-fleet:latest)
#
# 1. The binary: `cargo lambda build --release --bin exec-fleet` at the workspace root, in the
#    deploy target folder (scripts/lib.sh use_deploy_tools). `sam build` builds the Lambda with
#    the same command, target (x86_64-unknown-linux-gnu, linked by zig against an old glibc)
#    and feature set (both select the workspace's default members), so the AWS SDK and every
#    other dependency compile once for both.
# 2. The image: FROM $CODEBOX_FLEET_BASE, default codebox-base:bookworm (scripts/images.sh
#    makes it; no registry needed). CI building for production sets
#    CODEBOX_FLEET_BASE=debian:bookworm-slim. The context is a folder holding only the
#    binary, so nothing else of the tree reaches the image or the daemon.
#
# Prints the image name on stdout.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

image=codebox-exec-fleet:latest
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) image="${2:?--tag needs an image name}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
base="${CODEBOX_FLEET_BASE:-codebox-base:bookworm}"
# The runtime's glibc: a binary needing more would not start on the base.
BASE_GLIBC=2.36

use_deploy_tools "$(bash scripts/setup.sh deploy)"

say "cargo lambda build --release --bin exec-fleet (target folder $CARGO_TARGET_DIR)"
nice -n "${CODEBOX_BUILD_NICE:-10}" cargo lambda build --release --bin exec-fleet >&2 \
  || die "building exec-fleet failed"
binary="$CARGO_TARGET_DIR/lambda/exec-fleet/bootstrap"
[ -x "$binary" ] || die "cargo lambda left no $binary"

# The newest glibc symbol version the binary asks for, against the base's.
if command -v objdump >/dev/null; then
  needs="$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)"
  [ "$(printf '%s\n%s\n' "$needs" "$BASE_GLIBC" | sort -V | tail -n 1)" = "$BASE_GLIBC" ] \
    || die "exec-fleet needs glibc $needs, bookworm has $BASE_GLIBC"
  say "exec-fleet: $(du -k "$binary" | cut -f1) KiB, needs glibc >= $needs (bookworm: $BASE_GLIBC)"
fi

docker image inspect "$base" >/dev/null 2>&1 \
  || die "base image $base is not present (no registry here: scripts/images.sh base builds codebox-base:bookworm)"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/exec-fleet"
cp exec-fleet/Dockerfile "$context/Dockerfile"

say "docker build $image (FROM $base)"
DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" nice -n "${CODEBOX_BUILD_NICE:-10}" \
  docker build --pull=false --build-arg "BASE=$base" -t "$image" "$context" 2>&1 \
  | sed -u -e '/^DEPRECATED: The legacy builder/d' -e '/^ *BuildKit is currently disabled/d' \
      -e '/^ *environment-variable\.$/d' -e 's/^/  [fleet image] /' >&2 \
  || die "building $image failed"
# Earlier builds, now untagged.
docker image prune -f --filter label=org.opencontainers.image.title=codebox-exec-fleet >/dev/null || true
say "$image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1000000}')"
echo "$image"
