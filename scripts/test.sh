#!/usr/bin/env bash
# `make test`: installs what is missing, then runs every test suite and prints
# each runner's summary. Exits non-zero if any suite failed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/setup.sh all || exit 1
export CARGO_TARGET_DIR="$(native_target_dir)"
# moto server: the SQS/DynamoDB stand-in of the AWS adapter tests (crates/submission/tests/aws.rs).
CODEBOX_MOTO_SERVER="${CODEBOX_MOTO_SERVER:-$(bash scripts/setup.sh python)}" || exit 1
export CODEBOX_MOTO_SERVER
export CARGO_TERM_COLOR=never

failed=()
run() {
  local name="$1"; shift
  say "$name: $*"
  local started=$SECONDS
  if "$@"; then
    say "$name passed in $((SECONDS - started)) s"
  else
    warn "$name FAILED"
    failed+=("$name")
  fi
}

# The sandbox and pipeline tests run real programs in real containers.
run "docker engine" bash scripts/docker.sh
run "runner images" bash scripts/images.sh

# One cargo invocation, so the workspace shares one feature set (and one build of the AWS SDK);
# the features turn on the embedded and AWS adapter tests of codebox-submission. The edge's
# unit tests (its pure logic: routes, link expiry, run slots) run natively too.
run "rust unit, protocol and adapter tests" cargo test --workspace \
  --features codebox-submission/embedded,codebox-submission/aws
run "IDE typecheck (tsc)" node_modules/.bin/tsc -p frontend
run "IDE build (esbuild)" bash scripts/build-frontend.sh
run "edge build" bash scripts/build-edge.sh
# template.yaml lint, the fleet hosts' boot script, sam build, the fleet image, a smoke run
# of the production pair against moto, the edge's production bundle against the Workers limit.
run "deploy checks" bash scripts/check-deploy.sh
run "edge end-to-end tests (wrangler dev)" node --test --test-concurrency=1 e2e/
run "chromium" bash scripts/setup.sh browser
run "IDE end-to-end tests (Chromium against the make dev stack)" node --test --test-concurrency=1 e2e-browser/

if [ ${#failed[@]} -gt 0 ]; then
  warn "failed: ${failed[*]}"
  exit 1
fi
say "all suites passed"
