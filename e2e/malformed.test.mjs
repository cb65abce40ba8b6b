// End-to-end: hostile and broken frames against CodeBox rooms (Contract 1 in ../shared/DESIGN.md),
// against the real edge Worker under `wrangler dev`.
//
// Covers: random bytes, a truncated varint, an unknown message type, a text frame, an auth
// message from a client, a sync Update carrying garbage Yjs bytes, and awareness with invalid
// JSON each close only the offending socket, with 1003 or 1007 and a reason; a frame over
// 8 MiB closes with 1009. After each, two stock providers in the same room, on the same
// sockets as before, keep syncing with each other. An update that would take a document past
// 32 MiB is refused with 1009 "room is full", and that room carries on.
//
// Hostile clients (each closes only the offender; the room keeps syncing for the others):
// count bombs in a 7-byte update and in a state vector (1007); an awareness state over 4 KiB
// and four 1 MiB states in one frame (1009, never relayed: a newcomer's greeting stays small);
// more ids than one connection may own (1008); clock 0xFFFFFFFF (1007); and a hijack of another
// person's presence (their id at clock 0xFFFFFFFE, then `null`) changes nothing for anyone.
//
// Run: `node --test e2e/` (all end-to-end tests) or `node --test e2e/malformed.test.mjs`, from the repo root.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  RawClient, useEdge, Y, syncedProvider, waitFor, rng,
  recordUpdates, updateFrame, authFrame, awarenessFrame, textOf, MSG_SYNC,
} from './harness.mjs';

let edge;
const e2e = useEdge((launched) => { edge = launched; });

/** A fresh room with two synced stock providers; remembers the sockets they opened. */
async function roomWithProviders(label) {
  const room = await edge.createRoom();
  const p1 = await syncedProvider(edge, room);
  const p2 = await syncedProvider(edge, room);
  return { room, p1, p2, sockets: [p1.ws, p2.ws], marks: 0 };
}

/** Both providers, on the very sockets they opened first, still exchange edits both ways. */
async function providersStillSync(setup, context) {
  const { p1, p2, sockets } = setup;
  assert.equal(p1.ws, sockets[0], `p1 kept its socket (${context})`);
  assert.equal(p2.ws, sockets[1], `p2 kept its socket (${context})`);
  assert.ok(p1.wsconnected && p2.wsconnected, 'both providers connected');
  setup.marks += 1;
  const one = `[p1 after ${context} #${setup.marks}]`;
  const two = `[p2 after ${context} #${setup.marks}]`;
  p1.doc.getText('code').insert(p1.doc.getText('code').length, one);
  await waitFor(() => p2.doc.getText('code').toString().includes(one), 10_000, `p2 to get "${one}"`);
  p2.doc.getText('code').insert(0, two);
  await waitFor(() => p1.doc.getText('code').toString().includes(two), 10_000, `p1 to get "${two}"`);
  assert.equal(p1.doc.getText('code').toString(), p2.doc.getText('code').toString());
}

/**
 * In a room where two providers sync, opens a raw socket, makes it `send` something bad and
 * expects it closed with one of `codes` and a reason; the providers and a raw bystander carry on.
 */
async function expectClosed(setup, name, send, codes) {
  await providersStillSync(setup, `before ${name}`);
  const bystander = await RawClient.connect(edge, setup.room); // another raw socket: must stay open
  const raw = await RawClient.connect(edge, setup.room);
  send(raw);
  const { code, reason } = await raw.waitClose(10_000);
  assert.ok(codes.includes(code), `${name}: close code ${code} (reason "${reason}"), expected ${codes.join(' or ')}`);
  assert.ok(reason.length > 0, `${name}: the close carries a reason`);
  await providersStillSync(setup, name);
  await bystander.barrier();
  assert.equal(bystander.close, null, `${name}: the bystander socket stays open`);
  bystander.shutdown();
  return { code, reason };
}

test('random bytes close only that socket (1003/1007)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('random-bytes');
  const random = rng(20240601);
  const bytes = Uint8Array.from({ length: 64 }, () => Math.floor(random() * 256));
  await expectClosed(setup, 'random bytes', (raw) => raw.send(bytes), [1003, 1007]);
}));

test('a truncated varint [0x80] closes only that socket (1007)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('truncated-varint');
  await expectClosed(setup, 'truncated varint', (raw) => raw.send(Uint8Array.of(0x80)), [1007]);
}));

test('an unknown message type [9] closes only that socket (1003)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('unknown-type');
  await expectClosed(setup, 'unknown message type', (raw) => raw.send(Uint8Array.of(9)), [1003]);
}));

test('a text frame closes only that socket (1003)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('text-frame');
  await expectClosed(setup, 'text frame', (raw) => raw.ws.send('{"type":"sync"}'), [1003]);
}));

test('an auth message from a client closes only that socket (1003)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('auth');
  await expectClosed(setup, 'auth from client', (raw) => raw.send(authFrame('let me in')), [1003]);
}));

test('a sync Update carrying garbage Yjs bytes closes only that socket (1007)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('garbage-update');
  const before = await edge.snapshot(setup.room);
  // Claims 1 client with 5 structs, then runs out of bytes.
  await expectClosed(setup, 'garbage update', (raw) => raw.send(updateFrame(Uint8Array.of(1, 5, 0xde, 0xad, 0xbe, 0xef))), [1007]);
  // A struct count no buffer could hold.
  await expectClosed(setup, 'garbage update (huge count)', (raw) => raw.send(updateFrame(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f))), [1007]);
  const after = await edge.snapshot(setup.room);
  // The providers' marker edits are the only change.
  assert.ok(textOf(after).length > textOf(before).length);
}));

test('awareness with invalid JSON closes only that socket (1007) and is not relayed', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('bad-awareness');
  const BAD_ID = 777001;
  const frame = awarenessFrame([{ client: BAD_ID, clock: 1, json: '{"user": {"name": "mallory"' }]);
  await expectClosed(setup, 'invalid awareness JSON', (raw) => raw.send(frame), [1007]);
  assert.ok(!setup.p1.awareness.getStates().has(BAD_ID), 'the bad state never reached p1');
  assert.ok(!setup.p2.awareness.getStates().has(BAD_ID), 'the bad state never reached p2');
}));

test('count bombs: an update and a state vector declaring 2^31 entries close only that socket (1007)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('count-bombs');
  // An update of 2^31 clients, in 7 bytes: [numClients varuint] and nothing else.
  const clients = Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x08, 0, 0);
  await expectClosed(setup, 'update declaring 2^31 clients', (raw) => raw.send(updateFrame(clients)), [1007]);
  // One client with 2^31 structs.
  const structs = Uint8Array.of(1, 0x80, 0x80, 0x80, 0x80, 0x08, 7);
  await expectClosed(setup, 'update declaring 2^31 structs', (raw) => raw.send(updateFrame(structs)), [1007]);
  // A SyncStep1 whose state vector declares 2^31 entries.
  const stateVector = Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x08);
  const step1 = Uint8Array.of(MSG_SYNC, 0, stateVector.length, ...stateVector);
  await expectClosed(setup, 'state vector declaring 2^31 entries', (raw) => raw.send(step1), [1007]);
}));

test('awareness over its size limits closes only that socket and is never relayed', { timeout: 90_000 }, e2e(async () => {
  const setup = await roomWithProviders('awareness-size');
  const big = (n) => JSON.stringify({ user: { name: 'm'.repeat(n) } });
  const { reason } = await expectClosed(setup, 'one state over 4 KiB', (raw) => raw.send(awarenessFrame([{ client: 880001, clock: 1, json: big(5000) }])), [1009]);
  assert.ok(reason.length > 0);
  // Four states of 1 MiB in one frame (the attack that made every later greeting 4 MiB).
  const four = [1, 2, 3, 4].map((i) => ({ client: 880010 + i, clock: 1, json: big(1024 * 1024) }));
  await expectClosed(setup, 'four 1 MiB states', (raw) => raw.send(awarenessFrame(four)), [1009]);
  // More ids than one connection may keep.
  const many = Array.from({ length: 5 }, (_, i) => ({ client: 880100 + i, clock: 1, state: { user: { name: `sock${i}` } } }));
  await expectClosed(setup, 'five ids from one socket', (raw) => raw.send(awarenessFrame(many)), [1008]);
  for (const p of [setup.p1, setup.p2]) {
    for (const id of [880001, 880011, 880012, 880013, 880014, 880100]) assert.ok(!p.awareness.getStates().has(id), `state ${id} never relayed`);
  }
  const newcomer = await RawClient.connect(edge, setup.room);
  const greeting = await newcomer.waitFrame((f) => f.type === 'awareness', 10_000, 'greeting awareness');
  assert.ok(greeting.bytes.length < 4096, `the greeting holds only the two providers (${greeting.bytes.length} bytes)`);
}));

test('a hijack of another person\'s presence changes nothing; clock 0xFFFFFFFF closes the hijacker (1007)', { timeout: 60_000 }, e2e(async () => {
  const setup = await roomWithProviders('hijack');
  const victim = setup.p1.awareness.clientID;
  setup.p1.awareness.setLocalStateField('user', { name: 'victim' });
  await waitFor(() => setup.p2.awareness.getStates().get(victim)?.user?.name === 'victim', 10_000, 'p2 to see the victim');
  const attacker = await RawClient.connect(edge, setup.room);
  // The victim's id with a winning clock, then "gone" at an equal one: dropped, not relayed.
  attacker.send(awarenessFrame([{ client: victim, clock: 0xfffffffe, state: { user: { name: 'mallory' } } }]));
  attacker.send(awarenessFrame([{ client: victim, clock: 0xfffffffe, state: null }]));
  await attacker.barrier();
  assert.equal(attacker.close, null, 'an entry for an id another socket owns is dropped, not a violation');
  // The clock that would wrap: refused outright.
  attacker.send(awarenessFrame([{ client: victim, clock: 0xffffffff, state: null }]));
  const { code } = await attacker.waitClose(10_000);
  assert.equal(code, 1007);
  await providersStillSync(setup, 'hijack attempt');
  assert.equal(setup.p2.awareness.getStates().get(victim)?.user?.name, 'victim', 'p2 still sees the victim as themselves');
  const newcomer = await RawClient.connect(edge, setup.room);
  const greeting = await newcomer.waitFrame((f) => f.type === 'awareness', 10_000, 'greeting awareness');
  const entry = greeting.entries.find((e) => e.client === victim);
  assert.equal(entry?.state?.user?.name, 'victim', 'a newcomer sees the victim');
}));

test('a frame over 8 MiB closes that socket with 1009 and the room carries on', { timeout: 90_000 }, e2e(async () => {
  const setup = await roomWithProviders('oversize');
  // A valid Yjs update, so size alone is why it is refused.
  const doc = new Y.Doc();
  const updates = recordUpdates(doc);
  const big = 'z'.repeat(8 * 1024 * 1024 + 1024);
  doc.getText('code').insert(0, big);
  const frame = updateFrame(updates[0]);
  assert.ok(frame.length > 8 * 1024 * 1024);
  const { reason } = await expectClosed(setup, 'frame over 8 MiB', (raw) => raw.send(frame), [1009]);
  assert.match(reason, /limit|large|big/i);
  assert.ok(!setup.p2.doc.getText('code').toString().includes('zzzz'), 'the big update was not applied');
  const snapshot = await edge.snapshot(setup.room);
  assert.ok(snapshot.length < 1024 * 1024, `snapshot stays small (${snapshot.length} bytes)`);
}));

test('an update that would take the document past 32 MiB is refused with 1009 "room is full"', { timeout: 120_000 }, e2e(async () => {
  const fullRoom = await edge.createRoom();
  const doc = new Y.Doc();
  const updates = recordUpdates(doc);
  const text = doc.getText('code');
  const SEVEN_MIB = 7 * 1024 * 1024;
  // Five valid updates of 7 MiB each (every frame under the 8 MiB limit): the fifth would
  // take the document to ~35 MiB.
  for (let i = 0; i < 5; i++) text.insert(text.length, String.fromCharCode(97 + i).repeat(SEVEN_MIB));
  const writer = await RawClient.connect(edge, fullRoom);
  const watcher = await RawClient.connect(edge, fullRoom);
  for (const update of updates) writer.send(updateFrame(update));
  const { code, reason } = await writer.waitClose(90_000);
  assert.equal(code, 1009, `close code ${code} (${reason})`);
  assert.match(reason, /room is full/);

  // The first four were accepted and relayed, the fifth was not.
  await waitFor(() => watcher.syncFrames('update').length >= 4, 60_000, 'the watcher to get the four accepted updates');
  await watcher.barrier(new Y.Doc(), 60_000);
  assert.equal(watcher.syncFrames('update').length, 4, 'the refused update was not relayed');
  const stored = textOf(await edge.snapshot(fullRoom));
  assert.equal(stored.length, 4 * SEVEN_MIB, 'the document holds the four accepted updates');
  assert.ok(!stored.includes('e'), 'nothing of the refused update was applied');

  // The room carries on: a small update from a new socket is accepted and relayed.
  const small = new Y.Doc();
  const smallUpdates = recordUpdates(small);
  small.getText('notes').insert(0, 'still alive');
  const late = await RawClient.connect(edge, fullRoom, { timeoutMs: 60_000 });
  late.send(updateFrame(smallUpdates[0]));
  const relayed = await watcher.waitFrame(
    (f) => f.type === 'sync' && f.kind === 'update' && f.payload.length < 1024 && textOf(f.payload, 'notes') === 'still alive',
    30_000,
    'the small update to be relayed',
  );
  assert.ok(relayed);
  await late.barrier(new Y.Doc(), 60_000);
  assert.equal(late.close, null, 'the small update was accepted');
  assert.equal(watcher.close, null, 'the watcher stays open');
  writer.shutdown();
  watcher.shutdown();
  late.shutdown();
}));
