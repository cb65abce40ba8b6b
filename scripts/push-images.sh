#!/usr/bin/env bash
# Pushes one release's images to the stack's ECR repositories (template.yaml outputs), for CI.
#
#   scripts/push-images.sh [--dry-run] TAG FLEET_REPOSITORY_URI RUNNER_REPOSITORY_URI
#
#   codebox-exec-fleet:latest   -> FLEET_REPOSITORY_URI:TAG
#   codebox-runner-LANG:latest  -> RUNNER_REPOSITORY_URI:LANG-TAG   (every LANG of scripts/images.sh)
#
# Then deploy with FleetImageTag=TAG RunnerImageTag=TAG: new hosts pull the runners at boot
# and the fleet tasks move onto them. Build the images for production first, FROM Debian's
# image instead of the local debootstrapped base (pull debian:bookworm-slim once):
#
#   CODEBOX_RUNNER_BASE=debian:bookworm-slim scripts/images.sh --force
#   CODEBOX_FLEET_BASE=debian:bookworm-slim scripts/build-fleet-image.sh
#
# The repositories are immutable: a tag is pushed once, so use a new TAG per build (e.g. the
# commit). Logs in to the registry with `aws ecr get-login-password` when the aws CLI is
# present, else expects a `docker login` already done. --dry-run prints the docker commands.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

dry=""
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
[ $# -eq 3 ] || die "usage: $0 [--dry-run] TAG FLEET_REPOSITORY_URI RUNNER_REPOSITORY_URI"
tag="$1" fleet_repo="$2" runner_repo="$3"
[[ "$tag" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$ ]] || die "TAG '$tag' is not a valid tag (template.yaml's pattern)"

run() {
  if [ -n "$dry" ]; then echo "$*"; else "$@"; fi
}

pairs=("codebox-exec-fleet:latest $fleet_repo:$tag")
for image in $(bash "$REPO_ROOT/scripts/images.sh" --list); do
  lang="${image#codebox-runner-}"
  pairs+=("$image $runner_repo:${lang%%:*}-$tag")
done

for pair in "${pairs[@]}"; do
  [ -n "$dry" ] || docker image inspect "${pair% *}" >/dev/null 2>&1 || die "${pair% *} is not built"
done

if [ -z "$dry" ] && command -v aws >/dev/null; then
  for registry in $(printf '%s\n%s\n' "${fleet_repo%%/*}" "${runner_repo%%/*}" | sort -u); do
    region="$(cut -d. -f4 <<<"$registry")"
    say "docker login $registry"
    aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry" >/dev/null
  done
fi

for pair in "${pairs[@]}"; do
  say "push ${pair#* }"
  run docker tag "${pair% *}" "${pair#* }"
  run docker push "${pair#* }"
done
say "pushed: deploy with FleetImageTag=$tag RunnerImageTag=$tag"
