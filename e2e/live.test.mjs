// End-to-end: live runs shared by the room (Contract 4 in ../shared/DESIGN.md), on a stack put
// together as `make dev` does it: the edge under `wrangler dev` (real workerd), the exec API and
// the fleet over one embedded SQLite queue and store, programs in real containers.
//
// Covers:
// - output reaches the room's document in order while the program runs; the end state of the
//   console equals the stored result; a late joiner and a reloaded client see the run so far;
// - an input() loop answered in turn by two people (each line echoed with who typed it);
//   Ctrl-D gives the program EOF; input is refused once closed, and from a viewer; a run given
//   the stdin panel's text takes it as its whole input, as a batch run;
// - the idle and wall limits end a waiting program with time_limit_exceeded, naming the limit;
// - the edge restarted mid-run: the run still completes, and its result arrives by polling;
// - a run's channel needs the credential for that run; a room socket that sends run frames is
//   closed and changes nothing;
// - a flood is capped at 64 KiB per stream and the room stays responsive for typing.
//
// Run: `node --test e2e/live.test.mjs` from the repo root (needs the Docker engine and the
// runner images: scripts/docker.sh, scripts/images.sh).

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import {
  Edge, ExecApi, Fleet, RawClient, Y, closeAllClients, syncedProvider, waitFor, withEdgeLog,
} from './harness.mjs';

const RATE = { RUN_RATE_LIMIT: '10000/60' };
let edge;
let api;
let fleet;

before(async () => {
  edge = await Edge.launch({ vars: RATE });
  const db = path.join(edge.runDir, 'codebox.db');
  api = await ExecApi.start({ db, env: { CODEBOX_RUN_RATE_LIMIT: '10000/60' } });
  edge.vars.EXEC_API_URL = api.url;
  await edge.restart();
  fleet = await Fleet.start({ db, edgeUrl: edge.httpBase });
}, { timeout: 20 * 60_000 });

after(async () => {
  closeAllClients();
  await fleet?.stop();
  await api?.stop();
  await edge?.dispose();
});
afterEach(() => closeAllClients());

const logged = (body) => withEdgeLog(() => edge, async (t) => {
  try {
    await body(t);
  } catch (error) {
    error.message += `\n--- fleet log (tail) ---\n${fleet.log().split('\n').slice(-40).join('\n')}`;
    throw error;
  }
});

/** Starts a run from `room` (as the IDE does: through /api with the edit token). */
async function startRun(room, language, source, stdin = '') {
  const response = await fetch(`${edge.httpBase}/api/v1/submissions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${room.editToken}` },
    body: JSON.stringify({ language, source, stdin }),
  });
  const body = await response.json();
  assert.equal(response.status, 202, JSON.stringify(body));
  return body.id;
}

/** Types into a live run. */
function type(room, id, body, { token = room.editToken, by = 'Ada', color = '#e5484d' } = {}) {
  return fetch(`${edge.httpBase}/rooms/${room.name}/runs/${id}/input`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ by, color, ...body }),
  });
}

async function typeOk(room, id, body, options) {
  const response = await type(room, id, body, options);
  assert.equal(response.status, 204, await response.text());
}

/** The console of `id` in `doc`, as plain data. */
function consoleOf(doc, id) {
  const console = doc.getMap('live').get(id);
  if (!console) return null;
  const json = console.toJSON();
  const text = (kind) => json.transcript.filter((e) => e.s === kind).map((e) => e.t).join('');
  return { ...json, stdout: text('out'), stderr: text('err') };
}

async function record(id) {
  const response = await fetch(`${edge.httpBase}/api/v1/submissions/${id}`);
  return response.json();
}

async function finalRecord(id, timeoutMs = 120_000) {
  return waitFor(async () => {
    const r = await record(id);
    return ['queued', 'running'].includes(r.status) ? null : r;
  }, timeoutMs, `submission ${id} to finish`, 200);
}

const ASKS_TWO_NAMES = `
for turn in range(2):
    print(f"Name {turn}?", flush=True)
    name = input()
    print(f"Hello, {name}!", flush=True)
`;

test('output arrives in order while the program runs, and the end equals the stored result', { timeout: 300_000 }, logged(async () => {
  const room = await edge.createRoom();
  const { doc } = await syncedProvider(edge, room);
  const source = 'import time\nfor i in range(6):\n    print(f"line {i}", flush=True)\n    time.sleep(0.3)\nimport sys\nprint("oops", file=sys.stderr)\n';
  const id = await startRun(room, 'python', source);
  await waitFor(() => consoleOf(doc, id)?.stdout.includes('line 1'), 60_000, 'the first lines, live');
  assert.equal(consoleOf(doc, id).state, 'live', 'seen before the end');
  // A late joiner sees what was written so far.
  const late = await syncedProvider(edge, room);
  assert.match(consoleOf(late.doc, id).stdout, /^line 0\nline 1\n/);
  await waitFor(() => consoleOf(doc, id)?.state === 'ended', 60_000, 'the end');
  const stored = await finalRecord(id);
  const console = consoleOf(doc, id);
  assert.equal(stored.status, 'ok');
  assert.equal(console.status, 'ok');
  assert.equal(console.stdout, stored.stdout);
  assert.equal(console.stderr, stored.stderr);
  assert.equal(console.stdout, [0, 1, 2, 3, 4, 5].map((i) => `line ${i}\n`).join(''));
  // A reload (a fresh client) sees the same console.
  const reloaded = await syncedProvider(edge, room);
  assert.deepEqual(consoleOf(reloaded.doc, id), console);
}));

test('an input() loop answered in turn by two people; Ctrl-D gives EOF; closed input is refused', { timeout: 300_000 }, logged(async () => {
  const room = await edge.createRoom();
  const { doc } = await syncedProvider(edge, room);
  const id = await startRun(room, 'python', `${ASKS_TWO_NAMES}
import sys
print("rest:", len(sys.stdin.read()), flush=True)
`);
  await waitFor(() => consoleOf(doc, id)?.stdout.includes('Name 0?'), 60_000, 'the first question');
  await typeOk(room, id, { line: 'Grace' }, { by: 'Ada' });
  await waitFor(() => consoleOf(doc, id).stdout.includes('Hello, Grace!'), 20_000, 'the first greeting');
  await waitFor(() => consoleOf(doc, id).stdout.includes('Name 1?'), 20_000, 'the second question');
  await typeOk(room, id, { line: 'Ada' }, { by: 'Grace', color: '#3e63dd' });
  await waitFor(() => consoleOf(doc, id).stdout.includes('Hello, Ada!'), 20_000, 'the second greeting');
  // A viewer may not type.
  const viewer = await type(room, id, { line: 'x' }, { token: room.viewToken });
  assert.equal(viewer.status, 403);
  await typeOk(room, id, { eof: true }, { by: 'Grace', color: '#3e63dd' });
  const refused = await type(room, id, { line: 'late' });
  assert.equal(refused.status, 409);
  assert.ok(['input_closed', 'run_not_live'].includes((await refused.json()).error.code));
  await waitFor(() => consoleOf(doc, id)?.state === 'ended', 60_000, 'the end');
  const console = consoleOf(doc, id);
  const typed = console.transcript.filter((e) => e.s === 'in' || e.s === 'eof').map((e) => [e.s, e.t ?? null, e.by]);
  assert.deepEqual(typed, [['in', 'Grace', 'Ada'], ['in', 'Ada', 'Grace'], ['eof', null, 'Grace']]);
  const stored = await finalRecord(id);
  assert.equal(stored.status, 'ok');
  assert.equal(stored.stdout, 'Name 0?\nHello, Grace!\nName 1?\nHello, Ada!\nrest: 0\n');
  assert.equal(console.stdout, stored.stdout);
  assert.equal(console.stdin_open, false);
}));

test('the idle and wall limits end a waiting program and are named', { timeout: 300_000 }, logged(async () => {
  const room = await edge.createRoom();
  const { doc } = await syncedProvider(edge, room);
  const idle = await startRun(room, 'python', 'print("waiting", flush=True)\ninput()\n');
  const wall = await startRun(room, 'python', 'import time\nwhile True:\n    print(".", flush=True)\n    time.sleep(1)\n');
  // Given the stdin panel's text, a program reading to EOF ends as a batch run does.
  const batch = await startRun(room, 'python', 'import sys\nprint(len(sys.stdin.read().split()))\n', 'a b\nc\n');
  const batchEnd = await finalRecord(batch);
  assert.equal(batchEnd.status, 'ok');
  assert.equal(batchEnd.stdout, '3\n');
  await waitFor(() => consoleOf(doc, batch)?.state === 'ended', 10_000, 'the batch console ended');
  assert.equal(consoleOf(doc, batch).stdin_open, false);
  assert.equal(consoleOf(doc, batch).stdout, '3\n');
  const [idleEnd, wallEnd] = await Promise.all([finalRecord(idle), finalRecord(wall)]);
  assert.equal(idleEnd.status, 'time_limit_exceeded');
  assert.equal(idleEnd.time_limit, 'idle');
  assert.equal(wallEnd.status, 'time_limit_exceeded');
  assert.equal(wallEnd.time_limit, 'wall');
  assert.ok(wallEnd.time_ms >= 59_000, `${wallEnd.time_ms}`);
  await waitFor(() => consoleOf(doc, idle)?.state === 'ended' && consoleOf(doc, wall)?.state === 'ended', 10_000, 'both consoles ended');
  assert.equal(consoleOf(doc, idle).time_limit, 'idle');
  assert.equal(consoleOf(doc, wall).time_limit, 'wall');
  assert.equal(consoleOf(doc, wall).stdout, wallEnd.stdout);
}));

test('a run whose channel dies with the edge still completes, by polling', { timeout: 300_000 }, logged(async () => {
  const room = await edge.createRoom();
  const { doc } = await syncedProvider(edge, room);
  const source = 'import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.5)\n';
  const id = await startRun(room, 'python', source);
  await waitFor(() => consoleOf(doc, id)?.stdout.includes('1\n'), 60_000, 'live output');
  // The client stays, as a browser tab would: it reconnects and syncs with the new edge.
  await edge.kill();
  await edge.start();
  const stored = await finalRecord(id);
  assert.equal(stored.status, 'ok');
  assert.equal(stored.stdout, '0\n1\n2\n3\n4\n5\n6\n7\n');
  // The console (written again by the client if the edge lost it) does not stay live.
  const console = await waitFor(() => {
    const c = consoleOf(doc, id);
    return c && c.state !== 'live' ? c : null;
  }, 30_000, 'the console to stop looking live');
  assert.equal(console.state, 'lost');
  assert.equal(console.stdin_open, false);
  assert.ok(stored.stdout.startsWith(console.stdout), 'what was shown is a prefix of the result');
  // And a fresh client sees the same.
  const fresh = await syncedProvider(edge, room);
  assert.equal(consoleOf(fresh.doc, id).state, 'lost');
}));

test('only the run itself may open its channel; run frames on a room socket change nothing', { timeout: 300_000 }, logged(async () => {
  const room = await edge.createRoom();
  const { doc } = await syncedProvider(edge, room);
  const id = await startRun(room, 'python', 'input()\n');
  await waitFor(() => consoleOf(doc, id)?.state === 'live', 60_000, 'the run live');
  // (fetch may not send Upgrade; the credential is checked before it.)
  const channel = (query) => fetch(`${edge.httpBase}/rooms/${room.name}/runs/${id}${query}`);
  for (const [query, status] of [['', 401], [`?credential=${room.editToken}`, 401], ['?token=' + room.editToken, 401], ['?credential=Ugo8X-_9', 401]]) {
    const response = await channel(query);
    assert.equal(response.status, status, query);
    await response.arrayBuffer();
  }
  // A browser's room socket sending what a run sends: closed, nothing written.
  const before = JSON.stringify(consoleOf(doc, id));
  const raw = new RawClient(`${edge.wsBase}/rooms/${room.name}?token=${room.editToken}`);
  await raw.opened;
  raw.send(new Uint8Array([0x01, ...new TextEncoder().encode('forged output\n')]));
  const close = await raw.waitClose();
  assert.ok([1002, 1003, 1007, 1008].includes(close.code), `${close.code}`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(JSON.stringify(consoleOf(doc, id)), before);
  await typeOk(room, id, { eof: true });
  await finalRecord(id);
}));

test('a flood is capped at 64 KiB per stream and the room stays responsive for typing', { timeout: 300_000 }, logged(async () => {
  const room = await edge.createRoom();
  const a = await syncedProvider(edge, room);
  const b = await syncedProvider(edge, room);
  const id = await startRun(room, 'python', 'import sys\nwhile True:\n    sys.stdout.write("x" * 1000 + "\\n")\n');
  await waitFor(() => consoleOf(a.doc, id)?.stdout.length > 0, 60_000, 'the flood to start');
  // Typing during the flood reaches the other participant.
  a.doc.getText('code').insert(0, 'still here');
  await waitFor(() => b.doc.getText('code').toString() === 'still here', 10_000, 'an edit to get through');
  const stored = await finalRecord(id);
  assert.equal(stored.status, 'output_limit_exceeded');
  await waitFor(() => consoleOf(a.doc, id)?.state === 'ended', 10_000, 'the end');
  const console = consoleOf(a.doc, id);
  assert.equal(Buffer.byteLength(console.stdout), 64 * 1024);
  assert.equal(console.stdout, stored.stdout);
  assert.equal(console.out_truncated, true);
  // The transcript is a bounded number of entries, not one per write.
  assert.ok(console.transcript.length < 400, `${console.transcript.length} entries`);
}));
