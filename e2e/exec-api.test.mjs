// End-to-end: the exec API's gate and its shared rate limit (Contract 3 in
// ../shared/DESIGN.md), with real exec-lambda processes over one embedded SQLite store.
//
// Covers:
// - two API processes on one store enforce one per-client limit between them (requests
//   alternate between the processes; exactly LIMIT are accepted); an IPv6 /64 is one client;
// - with no secret set, loopback callers are served and a caller from another address is
//   refused (401); with a secret set, a request without it or with a wrong one is refused (401).
//
// Run: `node --test e2e/exec-api.test.mjs` from the repo root.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ExecApi } from './harness.mjs';

const LIMIT = 5;
let dir;
const apis = [];
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-e2e-exec-'));
});
after(async () => {
  await Promise.all(apis.map((api) => api.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function start(options) {
  const api = await ExecApi.start(options);
  apis.push(api);
  return api;
}

function submit(api, { client, secret, host = '127.0.0.1' } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (client) headers['x-forwarded-for'] = client;
  if (secret) headers['x-codebox-edge-secret'] = secret;
  return fetch(`http://${host}:${api.port}/v1/submissions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ language: 'python', source: 'print(1)' }),
  });
}

test('two API processes on one store share one per-client limit; an IPv6 /64 is one client', { timeout: 900_000 }, async () => {
  const db = path.join(dir, 'shared.db');
  const env = { CODEBOX_RUN_RATE_LIMIT: `${LIMIT}/600` };
  const [a, b] = [await start({ db, env }), await start({ db, env })];
  const statuses = [];
  for (let i = 0; i < LIMIT + 3; i++) {
    const api = i % 2 ? b : a;
    const response = await submit(api, { client: `2001:db8:5:6::${i + 1}` });
    statuses.push(response.status);
    if (response.status === 429) {
      assert.ok(Number(response.headers.get('retry-after')) >= 1);
      assert.equal((await response.json()).error.code, 'rate_limited');
    } else {
      await response.arrayBuffer();
    }
  }
  assert.deepEqual(statuses, [...Array(LIMIT).fill(202), 429, 429, 429]);
  // Another /64 and an IPv4 client each have their own limit, on either process.
  for (const [api, client] of [[a, '2001:db8:5:7::1'], [b, '203.0.113.7']]) {
    const response = await submit(api, { client });
    assert.equal(response.status, 202, client);
    await response.arrayBuffer();
  }
});

test('the gate: loopback only without a secret; with one, nothing without it', { timeout: 300_000 }, async (t) => {
  const open = await start({ db: path.join(dir, 'open.db'), host: '0.0.0.0' });
  const loopback = await submit(open);
  assert.equal(loopback.status, 202);
  await loopback.arrayBuffer();
  // The same server, reached from this machine's own non-loopback address.
  const address = Object.values(os.networkInterfaces()).flat().find((i) => i.family === 'IPv4' && !i.internal)?.address;
  if (address) {
    const outside = await submit(open, { host: address });
    assert.equal(outside.status, 401, `a caller from ${address}`);
    assert.equal((await outside.json()).error.code, 'unauthorized');
  } else {
    t.diagnostic('no non-loopback IPv4 address on this machine: the non-loopback caller is not tried');
  }

  const secret = crypto.randomBytes(32).toString('hex');
  const closed = await start({ db: path.join(dir, 'closed.db'), env: { CODEBOX_EDGE_SECRET: secret } });
  for (const sent of [undefined, 'wrong', secret.slice(0, -1)]) {
    const response = await submit(closed, { secret: sent });
    assert.equal(response.status, 401, `secret ${sent}`);
    assert.equal((await response.json()).error.code, 'unauthorized');
  }
  for (const route of ['/v1/languages', '/v1/submissions/00000000-0000-0000-0000-000000000000']) {
    const response = await fetch(`${closed.url}${route}`);
    assert.equal(response.status, 401, route);
    await response.arrayBuffer();
  }
  const accepted = await submit(closed, { secret, client: '198.51.100.4' });
  assert.equal(accepted.status, 202);
  await accepted.arrayBuffer();
});
