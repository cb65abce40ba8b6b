// End-to-end: who may do what (Contract 3 in ../shared/DESIGN.md), against the real edge Worker
// under `wrangler dev` and a real exec API (exec-lambda over its embedded store, no fleet, so
// what it accepts stays queued).
//
// Covers:
// - POST /rooms: 201 with a 128-bit room id, edit and view tokens and links (token in the
//   fragment); per-client limit (429 + Retry-After), one IPv6 /64 being one client;
// - sockets and snapshots: no token or a malformed one 401 (before any upgrade), another room's
//   token 403, an expired one 403; reads of rooms never created create nothing;
// - viewers: read everything, are marked `role: "view"` in presence, are closed with 1008
//   `read-only` on an edit (the document does not change), and an empty SyncStep2 is ignored;
// - rotation: view token 403; new tokens; every older socket closed with 1008 `link rotated`
//   at once; older tokens 403 everywhere; /links re-issues the current links;
// - runs through the edge: no token 401, view token 403, a fifth run in flight 429
//   `too_many_runs` (another room still runs), a rotated-out token 403, the per-client run
//   limit (429 `rate_limited`), and the exec API receives the room id.
//
// Run: `node --test e2e/access.test.mjs` from the repo root.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  Edge, ExecApi, RawClient, WebSocket, Y, closeAllClients, provider, recordUpdates, roomOf,
  syncStep2Frame, syncedProvider, textOf, uniqueClientIp, updateFrame, waitFor, withEdgeLog, withTimeout,
} from './harness.mjs';

/** Runs per client at this edge: small, so the limit is reached with few runs. */
const RUN_LIMIT = 6;

let edge;
let api;
let dir;
before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-e2e-access-'));
  api = await ExecApi.start({ db: path.join(dir, 'codebox.db') });
  edge = await Edge.launch({ vars: { EXEC_API_URL: api.url, RUN_RATE_LIMIT: `${RUN_LIMIT}/600` } });
}, { timeout: 20 * 60_000 });
after(async () => {
  closeAllClients();
  await edge?.dispose();
  await api?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});
afterEach(() => closeAllClients());
const e2e = (body) => withEdgeLog(() => edge, body);

/** The HTTP status of an upgrade to `url` (or 'opened'). */
function upgradeStatus(url) {
  const ws = new WebSocket(url);
  return withTimeout(new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode); res.resume(); ws.terminate(); });
    ws.once('open', () => { resolve('opened'); ws.terminate(); });
    ws.once('error', () => {});
  }), 10_000, `upgrade to ${url}`);
}

async function json(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`not JSON (HTTP ${response.status}): ${text}`);
  }
}

test('POST /rooms makes a room with a 128-bit id, edit and view tokens and links', { timeout: 60_000 }, e2e(async () => {
  const response = await fetch(`${edge.httpBase}/rooms`, { method: 'POST', headers: { 'cf-connecting-ip': uniqueClientIp() } });
  assert.equal(response.status, 201);
  assert.equal(response.headers.get('cache-control'), 'no-store');
  const body = await json(response);
  assert.deepEqual(Object.keys(body).sort(), ['edit_token', 'edit_url', 'room', 'view_token', 'view_url']);
  assert.match(body.room, /^[A-Za-z0-9_-]{22}$/);
  for (const token of [body.edit_token, body.view_token]) {
    assert.match(token, /^[A-Za-z0-9_-]+$/);
    assert.ok(token.length <= 256);
  }
  assert.notEqual(body.edit_token, body.view_token);
  assert.equal(body.edit_url, `${edge.httpBase}/r/${body.room}#edit=${body.edit_token}`);
  assert.equal(body.view_url, `${edge.httpBase}/r/${body.room}#view=${body.view_token}`);
  const other = await edge.createRoom({ body: {} });
  assert.notEqual(other.name, body.room);

  for (const [bad, status] of [['{"expires_in": 0}', 422], ['{"nope": 1}', 400], ['not json', 400]]) {
    const refused = await fetch(`${edge.httpBase}/rooms`, { method: 'POST', headers: { 'cf-connecting-ip': uniqueClientIp() }, body: bad });
    assert.equal(refused.status, status, bad);
    assert.ok((await json(refused)).error.code);
  }
}));

test('room creation is limited per client; an IPv6 /64 is one client', { timeout: 120_000 }, e2e(async () => {
  const create = (ip) => fetch(`${edge.httpBase}/rooms`, { method: 'POST', headers: { 'cf-connecting-ip': ip } });
  // Thirty addresses of one /64: one client with the default 30 rooms per 10 minutes.
  for (let i = 1; i <= 30; i++) {
    const response = await create(`2001:db8:77:1::${i.toString(16)}`);
    assert.equal(response.status, 201, `room ${i}`);
    await response.arrayBuffer();
  }
  const refused = await create('2001:db8:77:1:ffff:ffff:ffff:ffff');
  assert.equal(refused.status, 429);
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  assert.equal((await json(refused)).error.code, 'rate_limited');
  // The next /64, and an IPv4 client, are other clients.
  const neighbour = await create('2001:db8:77:2::1');
  assert.equal(neighbour.status, 201);
  await neighbour.arrayBuffer();
  const v4 = await create(uniqueClientIp());
  assert.equal(v4.status, 201);
  await v4.arrayBuffer();
}));

test('sockets and snapshots: 401 without or with a malformed token, 403 for another room or an expired one', { timeout: 60_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const other = await edge.createRoom();
  const base = `${edge.wsBase}/rooms/${room.name}`;
  assert.equal(await upgradeStatus(base), 401);
  assert.equal(await upgradeStatus(`${base}?token=`), 401);
  assert.equal(await upgradeStatus(`${base}?token=not-a-token`), 401);
  // A real token with one character changed is a forgery.
  const forged = room.editToken.slice(0, -2) + (room.editToken.at(-2) === 'A' ? 'B' : 'A') + room.editToken.at(-1);
  assert.equal(await upgradeStatus(`${base}?token=${forged}`), 401);
  assert.equal(await upgradeStatus(`${base}?token=${other.editToken}`), 403);
  assert.equal(await upgradeStatus(`${base}?token=${room.viewToken}`), 'opened');
  assert.equal(await upgradeStatus(`${base}?token=${room.editToken}`), 'opened');

  const snapshot = (headers, query = '') => fetch(`${edge.httpBase}/rooms/${room.name}/snapshot${query}`, { headers });
  let response = await snapshot({});
  assert.equal(response.status, 401);
  assert.equal((await json(response)).error.code, 'token_required');
  response = await snapshot({ authorization: 'Bearer nonsense' });
  assert.equal(response.status, 401);
  await response.arrayBuffer();
  response = await snapshot({ authorization: `Bearer ${other.viewToken}` });
  assert.equal(response.status, 403);
  assert.equal((await json(response)).error.code, 'wrong_room');
  for (const headers of [{ authorization: `Bearer ${room.viewToken}` }, { authorization: `Bearer ${room.editToken}` }]) {
    response = await snapshot(headers);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  }
  response = await snapshot({}, `?token=${room.viewToken}`);
  assert.equal(response.status, 200);
  await response.arrayBuffer();

  // Links that expire: valid now, 403 after.
  const brief = await edge.createRoom({ body: { expires_in: 2 } });
  assert.equal(await upgradeStatus(`${edge.wsBase}/rooms/${brief.name}?token=${brief.viewToken}`), 'opened');
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(await upgradeStatus(`${edge.wsBase}/rooms/${brief.name}?token=${brief.viewToken}`), 403);
  response = await fetch(`${edge.httpBase}/rooms/${brief.name}/snapshot?token=${brief.editToken}`);
  assert.equal(response.status, 403);
  assert.equal((await json(response)).error.code, 'token_expired');
}));

test('reads of rooms that were never created create nothing', { timeout: 60_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const before = edge.sqliteFiles().length;
  for (const name of ['never-made', 'AAAAAAAAAAAAAAAAAAAAAA', 'x'.repeat(64)]) {
    for (const suffix of ['', '/snapshot', '/links']) {
      for (const query of ['', `?token=${room.editToken}`]) {
        const response = await fetch(`${edge.httpBase}/rooms/${name}${suffix}${query}`);
        assert.ok([401, 403].includes(response.status), `${name}${suffix}${query}: ${response.status}`);
        await response.arrayBuffer();
      }
    }
    assert.ok([401, 403].includes(await upgradeStatus(`${edge.wsBase}/rooms/${name}?token=${room.editToken}`)));
  }
  assert.equal(edge.sqliteFiles().length, before, 'no Durable Object storage was created');
}));

test('a viewer reads everything, shows as a viewer, and is closed with 1008 on an edit that changes nothing', { timeout: 60_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const editor = await syncedProvider(edge, room);
  editor.doc.getText('code').insert(0, 'print("hi")');
  editor.awareness.setLocalStateField('user', { name: 'ada' });
  const viewer = await syncedProvider(edge, room, { token: room.viewToken });
  await waitFor(() => viewer.doc.getText('code').toString() === 'print("hi")', 10_000, 'the viewer to read the document');
  viewer.awareness.setLocalStateField('user', { name: 'grace', role: 'edit' });
  // The room marks the viewer's presence, whatever the viewer claims.
  await waitFor(() => editor.awareness.getStates().get(viewer.awareness.clientID)?.role === 'view', 10_000, 'the editor to see a viewer');
  assert.equal(editor.awareness.getStates().get(viewer.awareness.clientID)?.user?.name, 'grace');
  // Live edits reach the viewer.
  editor.doc.getText('code').insert(0, '# shared\n');
  await waitFor(() => viewer.doc.getText('code').toString().startsWith('# shared'), 10_000, 'the viewer to get a live edit');

  // A raw viewer socket: an empty SyncStep2 is ignored, an edit closes it with 1008.
  const raw = await RawClient.connect(edge, room, { token: room.viewToken });
  raw.send(syncStep2Frame(Y.encodeStateAsUpdate(new Y.Doc())));
  await raw.barrier();
  assert.equal(raw.close, null, 'an update that changes nothing is ignored');
  const mallory = new Y.Doc();
  const updates = recordUpdates(mallory);
  mallory.getText('code').insert(0, 'rm -rf /');
  raw.send(updateFrame(updates[0]));
  const { code, reason } = await raw.waitClose();
  assert.equal(code, 1008);
  assert.equal(reason, 'read-only');
  const stored = textOf(await edge.snapshot(room));
  assert.equal(stored, '# shared\nprint("hi")', 'the document did not change');
  assert.equal(editor.doc.getText('code').toString(), '# shared\nprint("hi")');
}));

test('rotation: new links, every older socket closed with 1008 at once, older tokens refused', { timeout: 60_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const rotate = (token) => fetch(`${edge.httpBase}/rooms/${room.name}/rotate`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const refused = await rotate(room.viewToken);
  assert.equal(refused.status, 403);
  assert.equal((await json(refused)).error.code, 'view_only');

  const oldEditor = await RawClient.connect(edge, room);
  const oldViewer = await RawClient.connect(edge, room, { token: room.viewToken });
  const response = await rotate(room.editToken);
  assert.equal(response.status, 200);
  const fresh = roomOf(await json(response));
  assert.equal(fresh.name, room.name);
  assert.notEqual(fresh.editToken, room.editToken);
  assert.notEqual(fresh.viewToken, room.viewToken);
  // Told at once (y-protocols' "permission denied"), then closed: workerd completes a close
  // made outside the socket's own event only ~10 s later.
  await Promise.all([oldEditor, oldViewer].map((socket) => socket.waitFrame((f) => f.type === 'auth', 2_000, 'permission denied')));
  for (const socket of [oldEditor, oldViewer]) {
    assert.equal(socket.frames.find((f) => f.type === 'auth').reason, 'link rotated');
    const close = await socket.waitClose(20_000);
    assert.deepEqual(close, { code: 1008, reason: 'link rotated' });
  }
  for (const token of [room.editToken, room.viewToken]) {
    assert.equal(await upgradeStatus(`${edge.wsBase}/rooms/${room.name}?token=${token}`), 403);
    const snapshot = await fetch(`${edge.httpBase}/rooms/${room.name}/snapshot?token=${token}`);
    assert.equal(snapshot.status, 403);
    assert.equal((await json(snapshot)).error.code, 'link_rotated');
  }
  const again = await rotate(room.editToken);
  assert.equal(again.status, 403, 'an old edit token cannot rotate');
  await again.arrayBuffer();

  const editor = await syncedProvider(edge, fresh);
  editor.doc.getText('code').insert(0, 'after rotation');
  await waitFor(async () => textOf(await edge.snapshot(fresh)) === 'after rotation', 10_000, 'the edit under the new link');

  // /links gives an editor the current links again, and refuses viewers and old tokens.
  const links = await fetch(`${edge.httpBase}/rooms/${room.name}/links`, { headers: { authorization: `Bearer ${fresh.editToken}` } });
  assert.equal(links.status, 200);
  assert.deepEqual(roomOf(await json(links)), fresh);
  for (const [token, status] of [[fresh.viewToken, 403], [room.editToken, 403], ['', 401]]) {
    const response = await fetch(`${edge.httpBase}/rooms/${room.name}/links?token=${token}`);
    assert.equal(response.status, status, token);
    await response.arrayBuffer();
  }
}));

test('runs through the edge: edit token only, at most 4 in flight per room, per-client limit', { timeout: 120_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const ip = uniqueClientIp();
  const run = (token, who = ip, target = room) => fetch(`${edge.httpBase}/api/v1/submissions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'cf-connecting-ip': who, ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify({ language: 'python', source: `print(${JSON.stringify(target.name)})` }),
  });
  let response = await run(null);
  assert.equal(response.status, 401);
  assert.equal((await json(response)).error.code, 'token_required');
  response = await run('garbage');
  assert.equal(response.status, 401);
  await response.arrayBuffer();
  response = await run(room.viewToken);
  assert.equal(response.status, 403);
  assert.equal((await json(response)).error.code, 'view_only');

  const ids = [];
  for (let i = 0; i < 4; i++) {
    response = await run(room.editToken);
    assert.equal(response.status, 202, `run ${i + 1}`);
    ids.push((await json(response)).id);
  }
  response = await run(room.editToken);
  assert.equal(response.status, 429);
  assert.ok(Number(response.headers.get('retry-after')) >= 1);
  assert.equal((await json(response)).error.code, 'too_many_runs');
  // The runs are queued (no fleet here), and the exec API knows where they came from.
  for (const id of ids) {
    const record = await json(await fetch(`${edge.httpBase}/api/v1/submissions/${id}`));
    assert.equal(record.status, 'queued');
  }
  const jobs = api.queuedJobs().filter((job) => ids.includes(job.id));
  assert.equal(jobs.length, 4);
  assert.ok(jobs.every((job) => job.room === room.name), 'each job names its room');

  // Another room still runs, until this client reaches its limit (RUN_LIMIT per window): it has
  // spent 5 of it above, so one more is accepted and the next refused.
  const other = await edge.createRoom();
  response = await run(other.editToken, ip, other);
  assert.equal(response.status, 202);
  await response.arrayBuffer();
  response = await run(other.editToken, ip, other);
  assert.equal(response.status, 429);
  assert.equal((await json(response)).error.code, 'rate_limited');
  assert.ok(Number(response.headers.get('retry-after')) >= 1);
  // Another client is not affected.
  response = await run(other.editToken, uniqueClientIp(), other);
  assert.equal(response.status, 202);
  await response.arrayBuffer();

  // A rotated-out edit token cannot start runs.
  const rotated = await fetch(`${edge.httpBase}/rooms/${other.name}/rotate`, { method: 'POST', headers: { authorization: `Bearer ${other.editToken}` } });
  assert.equal(rotated.status, 200);
  await rotated.arrayBuffer();
  response = await run(other.editToken, uniqueClientIp(), other);
  assert.equal(response.status, 403);
  assert.equal((await json(response)).error.code, 'link_rotated');

  // Only the exec API's routes pass the proxy.
  for (const [method, pathname, status] of [['GET', '/api/v1/submissions', 405], ['POST', '/api/v1/languages', 405], ['GET', '/api/admin', 404]]) {
    response = await fetch(`${edge.httpBase}${pathname}`, { method });
    assert.equal(response.status, status, `${method} ${pathname}`);
    await response.arrayBuffer();
  }
}));
