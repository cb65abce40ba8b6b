# The two commands: `make dev` runs the stack locally, `make test` runs every test.
# Both install what they need first (scripts/setup.sh), idempotently.
SHELL := /usr/bin/env bash

.PHONY: dev test setup edge deploy-check fleet-image bench-room bench-core bench-exec bench-live bench-tests

dev: ## run everything locally (edge on 127.0.0.1:8787)
	@bash scripts/dev.sh

test: ## install what is missing, build, run every test suite
	@bash scripts/test.sh

setup: ## install toolchains and npm packages only
	@bash scripts/setup.sh all

edge: ## build the edge Worker (edge/build/)
	@bash scripts/build-edge.sh

deploy-check: ## production deploy checks: template lint, host boot script, sam build, fleet image, smoke run, edge bundle
	@bash scripts/check-deploy.sh

fleet-image: ## the exec fleet's container image (codebox-exec-fleet:latest)
	@bash scripts/build-fleet-image.sh

bench-core: ## the room core's cost per applied update (criterion)
	@source scripts/lib.sh && CARGO_TARGET_DIR="$$(native_target_dir)" cargo bench -p codebox-room --bench apply_update

bench-room: ## rooms side by side (edge, @y/websocket-server, a minimal DO): fan-out, idle memory, cold join, wakes
	@bash bench/run-room-bench.sh

bench-exec: ## submit-to-result latency and throughput of the exec stack vs a bare process and docker run
	@bash bench/run-exec-bench.sh

bench-live: ## live runs on the local stack: line latency both ways vs docker run -i, what a flood costs the room
	@bash scripts/docker.sh && bash scripts/images.sh && bash scripts/build-edge.sh && node bench/live-latency.mjs

bench-tests: ## a C program's 10 tests in one submission vs 10 separate submissions
	@bash scripts/docker.sh && bash scripts/images.sh && node bench/tests-vs-runs.mjs
