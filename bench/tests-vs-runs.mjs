// Tests (Contract 2b) against separate runs: the time from POST to a terminal record for one
// submission of a C program with TESTS tests (built once, each test in a fresh container, at most
// FLEET_TESTS_AT_ONCE at a time), against TESTS separate submissions of the same program, one per
// input, posted at once (each compiles and runs on its own). The stack is the exec API and the
// fleet as release builds over one embedded SQLite queue and store (as `make dev` runs them),
// programs in real containers; the fleet runs FLEET_CONCURRENCY jobs at once (default 4).
//
//   node bench/tests-vs-runs.mjs        (TESTS=10 ROUNDS=5 by default)
//
// Figures and the command: docs/BENCHMARKS.md, "Tests".

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ExecApi, Fleet, waitFor } from '../e2e/harness.mjs';

process.env.CODEBOX_E2E_RELEASE = '1';
const TESTS = Number(process.env.TESTS ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 5);

const PROGRAM = `#include <stdio.h>
int main(void) {
  long a, b, sum = 0;
  while (scanf("%ld %ld", &a, &b) == 2) sum += a * b;
  printf("%ld\\n", sum);
  return 0;
}
`;
const inputs = Array.from({ length: TESTS }, (_, i) => ({ stdin: `${i} ${i + 1}\n`, expected_stdout: `${i * (i + 1)}\n` }));

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) };
}
const fmt = (s) => `n=${s.n}  p50 ${s.p50.toFixed(0)} ms  p99 ${s.p99.toFixed(0)} ms  max ${s.max.toFixed(0)} ms`;

async function submit(api, body) {
  const response = await fetch(`${api.url}/v1/submissions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.status !== 202) throw new Error(`submission refused: ${JSON.stringify(answer)}`);
  return answer.id;
}

async function finished(api, id) {
  let record;
  await waitFor(async () => {
    record = await (await fetch(`${api.url}/v1/submissions/${id}`)).json();
    return !['queued', 'running'].includes(record.status);
  }, 300_000, `submission ${id}`, 20);
  return record;
}

/** One submission with every test: ms to its verdict. */
async function asTests(api) {
  const started = performance.now();
  const record = await finished(api, await submit(api, { language: 'c', source: PROGRAM, tests: inputs }));
  if (record.status !== 'accepted') throw new Error(`tests run: ${record.status} ${JSON.stringify(record.tests)}`);
  return performance.now() - started;
}

/** One submission per input, posted at once: ms until the last ends. */
async function asRuns(api) {
  const started = performance.now();
  const ids = await Promise.all(inputs.map((test) => submit(api, { language: 'c', source: PROGRAM, stdin: test.stdin })));
  const records = await Promise.all(ids.map((id) => finished(api, id)));
  records.forEach((record, i) => {
    if (record.status !== 'ok' || record.stdout !== inputs[i].expected_stdout) throw new Error(`run ${i}: ${JSON.stringify(record)}`);
  });
  return performance.now() - started;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-bench-tests-'));
const db = path.join(dir, 'codebox.db');
const concurrency = process.env.FLEET_CONCURRENCY ?? '4';
const atOnce = process.env.FLEET_TESTS_AT_ONCE ?? '2';
const api = await ExecApi.start({ db, env: { CODEBOX_RUN_RATE_LIMIT: '100000/60' } });
const fleet = await Fleet.start({ db, edgeUrl: '', env: { FLEET_CONCURRENCY: concurrency, FLEET_TESTS_AT_ONCE: atOnce } });
try {
  console.log(`${TESTS} tests of a C program vs ${TESTS} separate submissions; ${ROUNDS} rounds each, alternating; fleet: ${concurrency} jobs at once, ${atOnce} tests at once; ${os.cpus().length} cores`);
  await asTests(api); // warm-up: images in the page cache, pools filled
  await asRuns(api);
  const tests = [];
  const runs = [];
  for (let round = 0; round < ROUNDS; round++) {
    tests.push(await asTests(api));
    runs.push(await asRuns(api));
  }
  console.log(`one submission, ${TESTS} tests:      ${fmt(stats(tests))}`);
  console.log(`${TESTS} submissions at once:      ${fmt(stats(runs))}`);
  console.log(`ratio (p50): ${(stats(tests).p50 / stats(runs).p50).toFixed(2)}`);
} finally {
  await fleet.stop();
  await api.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
