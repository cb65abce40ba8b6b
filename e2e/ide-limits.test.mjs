// The IDE names the run limits the exec API serves (frontend/src/limits.ts), with no copy of
// its own: how it reads and words them. No server needed.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { importIdeModule } from '../frontend/node-import.mjs';

const limits = await importIdeModule('limits');

test('limits are named with their figures once served, and only well-formed ones are taken', () => {
  assert.equal(limits.runLimits(), null, 'nothing before the API answers');
  limits.setRunLimits(undefined);
  limits.setRunLimits({ run_ms: 5000, compile_ms: 'ten' });
  assert.equal(limits.runLimits(), null, 'absent or malformed limits are ignored');
  const served = { run_ms: 5000, compile_ms: 10000, memory_bytes: 256 * 2 ** 20, output_bytes: 64 * 2 ** 10, pids: 64 };
  limits.setRunLimits(served);
  assert.equal(limits.runLimits(), served);
  assert.equal(limits.formatSeconds(served.run_ms), '5 s');
  assert.equal(limits.formatSeconds(2500), '2.5 s');
  assert.equal(limits.formatBytes(served.memory_bytes), '256 MiB');
  assert.equal(limits.formatBytes(served.output_bytes), '64 KiB');
  assert.equal(limits.formatBytes(100), '100 bytes');
});

test('a live run\'s limits are named once the API serves them, and only well-formed ones are taken', () => {
  assert.equal(limits.interactiveLimits(), null, 'none served yet');
  limits.setRunLimits({ run_ms: 5000, compile_ms: 10000, memory_bytes: 1, output_bytes: 1, interactive: { cpu_ms: 'five' } });
  assert.equal(limits.interactiveLimits(), null, 'malformed ones are ignored');
  limits.setRunLimits({ run_ms: 5000, compile_ms: 10000, memory_bytes: 1, output_bytes: 65536, interactive: { cpu_ms: 4000, wall_ms: 30000, idle_ms: 10000 } });
  assert.deepEqual(limits.interactiveLimits(), { cpu_ms: 4000, wall_ms: 30000, idle_ms: 10000 });
  assert.equal(limits.truncatedTitle(), 'Only the first 64 KiB were kept');
});
