#!/usr/bin/env bash
# The production deploy checks (a suite of `make test`), all offline:
#
#   lint   cfn-lint template.yaml (informational findings too) and sam validate --lint
#   userdata  the fleet hosts' boot script (the launch template's user data), rendered as
#          CloudFormation would and run in a Debian container with aws/docker/systemctl
#          stand-ins: it configures the ECS agent, pulls and renames the six runner images,
#          and advertises the runner tag only when every pull succeeded
#   build  sam build: the exec API Lambda (cargo lambda, provided.al2023, x86_64), and the
#          smoke check's resource maker (exec-lambda's aws-resources, same flags)
#   image  the fleet image FROM the local base (scripts/build-fleet-image.sh: same target
#          folder as sam build, so the AWS SDK compiles once; glibc checked against bookworm's)
#   smoke  the two production artifacts against moto (SQS + DynamoDB), in resources made by
#          codebox_submission::aws::create_resources (the aws-resources tool) and checked
#          against template.yaml's definition of them: the Lambda's binary as
#          a local server (CODEBOX_BACKEND=aws) takes a submission; the fleet image, run the way
#          the task definition runs it (read-only root, no capabilities, no-new-privileges,
#          host pid namespace, the Docker socket), runs it in a sandbox and stores the result;
#          SIGTERM drains it and it exits 0
#   edge   wrangler deploy --dry-run --env production: the Worker bundle builds; its gzip size
#          is checked against the Workers limit (3 MiB free plan, 10 MiB paid: the free one)
#
#   scripts/check-deploy.sh [lint|userdata|build|image|smoke|edge]...   (default: all, in order)
#
# Heavy steps run under nice (CODEBOX_BUILD_NICE, default 10). Prints one summary line per
# check and `N passed, N failed`.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1

# Compressed size limit of a Worker (script + wasm), free plan; the paid plan's is 10 MiB.
WORKER_GZIP_LIMIT=$((3 * 1024 * 1024))
FLEET_IMAGE=codebox-exec-fleet:check
export CODEBOX_BUILD_NICE="${CODEBOX_BUILD_NICE:-10}"

checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(lint userdata build image smoke edge)
for c in "${checks[@]}"; do
  case "$c" in lint|userdata|build|image|smoke|edge) ;; *) die "unknown check '$c' (lint userdata build image smoke edge)" ;; esac
done

tools="$(bash scripts/setup.sh deploy)" || exit 1
use_deploy_tools "$tools"

check_lint() {
  # -c I: informational findings (e.g. a stateful resource without DeletionPolicy) fail too.
  cfn-lint -c I -- template.yaml || return 1
  say "cfn-lint: no findings"
  sam validate --lint --template-file template.yaml --region us-east-1 || return 1
}

# Runs the rendered user data in a container of the local base image; $1 = a language whose
# pull fails (or "none"). Prints /etc/ecs/ecs.config, then the docker calls.
run_userdata() {
  docker run --rm --network none -v "$userdata_dir:/check:ro" -e FAIL_LANG="$1" codebox-base:bookworm \
    bash -c 'mkdir -p /etc/ecs; PATH=/check/bin:$PATH bash /check/user-data.sh >/tmp/out 2>&1 || true
             cat /etc/ecs/ecs.config; echo ---; cat /tmp/docker-calls 2>/dev/null || true'
}

# template.yaml as JSON, in $1: decoded by cfn-lint (CloudFormation's short-form tags as
# CloudFormation reads them), for jq and the Rust tools.
template_json() {
  "$tools/python" -c 'import json, sys
from cfnlint.decode import decode
template, errors = decode("template.yaml")
if template is None:
    sys.exit(f"template.yaml: {errors}")
json.dump(template, open(sys.argv[1], "w"))' "$1"
}

check_userdata() {
  bash scripts/images.sh base >&2 || return 1
  userdata_dir="$(mktemp -d)"
  template_json "$userdata_dir/template.json" || { warn "could not read template.yaml"; return 1; }
  # The user data as CloudFormation renders it (Fn::Sub), with stand-in values; ${!x} is a literal ${x}.
  json -r --argjson values '{"Cluster": "codebox-cluster", "RunnerImageTag": "rel-1", "AWS::Region": "eu-west-1",
      "RunnerRepository.RepositoryUri": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/codebox-runners"}' \
    '.Resources.HostLaunchTemplate.Properties.LaunchTemplateData.UserData["Fn::Base64"]["Fn::Sub"]
     | gsub("\\$\\{(?<n>[^}]+)\\}"; if (.n | startswith("!")) then "${" + .n[1:] + "}"
                                   else ($values[.n] // error("no stand-in value for ${" + .n + "}")) end)' \
    "$userdata_dir/template.json" >"$userdata_dir/user-data.sh" || { warn "could not render the user data"; return 1; }
  bash -n "$userdata_dir/user-data.sh" || { warn "the user data is not valid bash"; return 1; }
  mkdir -p "$userdata_dir/bin"
  cat > "$userdata_dir/bin/docker" <<'SH'
#!/bin/sh
echo "docker $*" >> /tmp/docker-calls
case "$1 $2" in "pull "*"$FAIL_LANG-"*) exit 1 ;; esac
SH
  printf '#!/bin/sh
echo token
' > "$userdata_dir/bin/aws"
  printf '#!/bin/sh
' > "$userdata_dir/bin/systemctl"
  printf '#!/bin/sh
' > "$userdata_dir/bin/sleep"
  chmod +x "$userdata_dir/bin/"*

  local out ok=1 lang
  out="$(run_userdata none)"
  grep -qx 'ECS_CLUSTER=codebox-cluster' <<<"$out" || { warn "user data: no ECS_CLUSTER line"; ok=""; }
  grep -qx 'ECS_INSTANCE_ATTRIBUTES={"codebox.runner-tag":"rel-1"}' <<<"$out" \
    || { warn "user data: the runner tag attribute is missing after good pulls"; ok=""; }
  for lang in python javascript c cpp go rust; do
    grep -qx "docker tag 111122223333.dkr.ecr.eu-west-1.amazonaws.com/codebox-runners:$lang-rel-1 codebox-runner-$lang:latest" <<<"$out" \
      || { warn "user data: codebox-runner-$lang:latest is not tagged from $lang-rel-1"; ok=""; }
  done
  grep -q 'docker login --username AWS --password-stdin 111122223333.dkr.ecr.eu-west-1.amazonaws.com$' <<<"$out" \
    || { warn "user data: no docker login to the registry"; ok=""; }
  out="$(run_userdata go)"
  if grep -q 'ECS_INSTANCE_ATTRIBUTES' <<<"$out"; then warn "user data: a host whose pull failed advertises the tag"; ok=""; fi
  [ -n "$ok" ] && say "user data: agent configured, six runners pulled and renamed, tag advertised only after every pull"
}

check_build() {
  nice -n "$CODEBOX_BUILD_NICE" sam build --build-in-source --template-file template.yaml >&2 || return 1
  local bootstrap=.aws-sam/build/ExecApiFunction/bootstrap
  [ -x "$bootstrap" ] || { warn "sam build left no $bootstrap"; return 1; }
  say "Lambda bundle: $bootstrap, $(du -k "$bootstrap" | cut -f1) KiB ($(gzip -c "$bootstrap" | wc -c | awk '{printf "%d KiB zipped", $1 / 1024}'))"
  # The smoke check's resource maker, with the same flags (it reuses the compiled SDK).
  nice -n "$CODEBOX_BUILD_NICE" cargo lambda build --release --bin aws-resources >&2 || return 1
}

check_image() {
  bash scripts/images.sh base >&2 || return 1
  bash scripts/build-fleet-image.sh --tag "$FLEET_IMAGE" >/dev/null || return 1
}

smoke_cleanup() {
  [ -n "${smoke_container:-}" ] && docker rm -f "$smoke_container" >/dev/null 2>&1
  [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
  [ -n "${moto_pid:-}" ] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
  [ -n "${smoke_dir:-}" ] && rm -rf "$smoke_dir"
  smoke_container="" api_pid="" moto_pid="" smoke_dir=""
}

check_smoke() {
  local lambda_bin=.aws-sam/build/ExecApiFunction/bootstrap resources_bin="$CARGO_TARGET_DIR/lambda/aws-resources/bootstrap"
  [ -x "$lambda_bin" ] || { warn "no $lambda_bin: run the build check first"; return 1; }
  [ -x "$resources_bin" ] || { warn "no $resources_bin: run the build check first"; return 1; }
  docker image inspect "$FLEET_IMAGE" >/dev/null 2>&1 || { warn "no $FLEET_IMAGE: run the image check first"; return 1; }
  # The sandboxes run in the runner images; the fleet refuses to start without them.
  bash scripts/images.sh >&2 || return 1
  local moto_server
  moto_server="${CODEBOX_MOTO_SERVER:-$(bash scripts/setup.sh python)}" || return 1

  smoke_dir="$(mktemp -d)"
  local moto_port api_port
  moto_port="$(free_port)" api_port="$(free_port)"
  local endpoint="http://127.0.0.1:$moto_port"
  "$moto_server" -H 127.0.0.1 -p "$moto_port" >"$smoke_dir/moto.log" 2>&1 &
  moto_pid=$!
  wait_http "$endpoint/moto-api/" 30 || { cat "$smoke_dir/moto.log" >&2; warn "moto did not start"; return 1; }

  # The resources, made by the Rust definition (codebox_submission::aws::create_resources,
  # through exec-lambda's aws-resources tool) and checked against template.yaml's.
  export AWS_ACCESS_KEY_ID=check AWS_SECRET_ACCESS_KEY=check AWS_REGION=us-east-1
  template_json "$smoke_dir/template.json" || { warn "could not read template.yaml"; return 1; }
  local made
  made="$("$resources_bin" --endpoint-url "$endpoint" --template "$smoke_dir/template.json")" \
    || { warn "creating the queues and table in moto failed, or they differ from template.yaml"; return 1; }
  local queue_url dlq_url table
  queue_url="$(json -er .queue_url <<<"$made")" && dlq_url="$(json -er .dead_letter_queue_url <<<"$made")" \
    && table="$(json -er .table <<<"$made")" || { warn "aws-resources printed no queue URLs and table: $made"; return 1; }
  say "queues and table made as template.yaml defines them (redrive after $(json .max_receives <<<"$made") receives, key id, TTL expires_at)"
  local backend_env=(CODEBOX_BACKEND=aws AWS_ENDPOINT_URL="$endpoint" SQS_QUEUE_URL="$queue_url"
    SQS_DEAD_LETTER_QUEUE_URL="$dlq_url" DYNAMODB_TABLE="$table")

  # The Lambda binary serves HTTP itself when AWS_LAMBDA_RUNTIME_API is unset.
  env "${backend_env[@]}" CODEBOX_EXEC_LISTEN="127.0.0.1:$api_port" "$lambda_bin" >"$smoke_dir/api.log" 2>&1 &
  api_pid=$!
  wait_http "http://127.0.0.1:$api_port/v1/languages" 30 \
    || { cat "$smoke_dir/api.log" >&2; warn "the exec API binary did not start"; return 1; }

  # As the task definition runs it, except the network: host here, to reach moto on loopback.
  smoke_container="codebox-deploy-smoke-$$"
  local env_args=() kv
  for kv in "${backend_env[@]}" AWS_ACCESS_KEY_ID=check AWS_SECRET_ACCESS_KEY=check AWS_REGION=us-east-1 \
    FLEET_CONCURRENCY=2 FLEET_POOL_SIZE=1 FLEET_POLL_WAIT_MS=1000 LOG_FORMAT=json RUST_LOG=info; do
    env_args+=(-e "$kv")
  done
  docker run -d --name "$smoke_container" --network host --pid host --user 0 --read-only \
    --cap-drop ALL --security-opt no-new-privileges -v /var/run/docker.sock:/var/run/docker.sock \
    "${env_args[@]}" "$FLEET_IMAGE" >/dev/null || return 1

  local id accepted
  accepted="$(curl -sf -X POST -H 'content-type: application/json' \
    --data '{"language": "python", "source": "import sys\nprint(\"hello from\", sys.stdin.read())", "stdin": "the fleet image"}' \
    "http://127.0.0.1:$api_port/v1/submissions")" && id="$(json -er .id <<<"$accepted")" \
    || { cat "$smoke_dir/api.log" >&2; warn "POST /v1/submissions failed: ${accepted:-no answer}"; return 1; }
  local record="" status="" deadline=$((SECONDS + 90))
  while [ "$SECONDS" -lt "$deadline" ]; do
    record="$(curl -sf "http://127.0.0.1:$api_port/v1/submissions/$id")" || break
    status="$(json -r .status <<<"$record")"
    case "$status" in queued|running) sleep 0.5 ;; *) break ;; esac
  done
  if [ "$status" != ok ] || ! json -e '.stdout == "hello from the fleet image\n"' <<<"$record" >/dev/null; then
    docker logs "$smoke_container" 2>&1 | tail -n 30 >&2
    warn "submission $id ended '$status', not ok with the expected output: $record"
    return 1
  fi
  say "submission $id: ok through the exec API binary, SQS, the fleet image, a sandbox and DynamoDB (moto)"

  # Drain: SIGTERM, then a clean exit within the task definition's StopTimeout.
  docker stop -t 120 "$smoke_container" >/dev/null
  local code
  code="$(docker inspect -f '{{.State.ExitCode}}' "$smoke_container")"
  # Its exit status, and its JSON log (LOG_FORMAT=json, as the task definition runs it) saying
  # the worker loop ended, not only that the process did.
  if [ "$code" != 0 ] || ! docker logs "$smoke_container" 2>&1 \
    | json -enR '[inputs | fromjson? | select(.fields.message == "worker stopped")] | length > 0' >/dev/null; then
    docker logs "$smoke_container" 2>&1 | tail -n 30 >&2
    warn "the fleet container did not drain cleanly on SIGTERM (exit $code)"
    return 1
  fi
  say "fleet container drained on SIGTERM and exited 0"
}

check_edge() {
  local out=.wrangler/deploy-dry-run
  rm -rf "$out" "$out.log"
  mkdir -p .wrangler
  # No Cloudflare account needed: --dry-run builds (wrangler.toml [build]) and bundles only.
  if ! WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false nice -n "$CODEBOX_BUILD_NICE" \
    node_modules/.bin/wrangler deploy --dry-run --env production --outdir "$out" >"$out.log" 2>&1; then
    tail -n 40 "$out.log" >&2
    warn "wrangler deploy --dry-run failed (log: $out.log)"
    return 1
  fi
  grep -E 'Total Upload|Binding|env\.' "$out.log" >&2
  # What Cloudflare counts: the modules (JS + wasm), not the source map or static assets.
  local raw=0 gz=0 f
  for f in "$out"/*.js "$out"/*.mjs "$out"/*.wasm; do
    [ -f "$f" ] || continue
    raw=$((raw + $(stat -c %s "$f")))
    gz=$((gz + $(gzip -9 -c "$f" | wc -c)))
  done
  [ "$raw" -gt 0 ] || { warn "no bundle in $out"; return 1; }
  say "edge bundle: $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip; Workers limit $((WORKER_GZIP_LIMIT / 1024 / 1024)) MiB gzip (free plan; paid 10 MiB)"
  [ "$gz" -le "$WORKER_GZIP_LIMIT" ] || { warn "the edge bundle is over the Workers limit"; return 1; }
}

passed=0 failed=0 summary=()
for c in "${checks[@]}"; do
  say "deploy check: $c"
  started=$SECONDS
  if "check_$c"; then
    passed=$((passed + 1)); summary+=("  $c: ok ($((SECONDS - started)) s)")
  else
    failed=$((failed + 1)); summary+=("  $c: FAILED ($((SECONDS - started)) s)")
  fi
  [ "$c" != smoke ] || smoke_cleanup
  [ "$c" != userdata ] || rm -rf "${userdata_dir:-}"
done
say "deploy checks:"
printf '%s\n' "${summary[@]}" >&2
echo "deploy-checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
