// End-to-end: durability and bounded storage of CodeBox rooms (Contract 1 in ../shared/DESIGN.md),
// against the real edge Worker under `wrangler dev`, restarted on the same --persist-to dir.
//
// Covers:
// - edits survive a wrangler dev restart;
// - a document of more than 5 MB (sent as a few updates, each under 8 MiB) persists across a
//   restart, and /snapshot is byte-identical before and after;
// - 10,000 small updates (one frame each) leave the Durable Object's SQLite log at <= 512
//   rows and `snapshot` small (read with python3's sqlite3 while wrangler is stopped), and the
//   text is all there after the restart;
// - the durability promise of group commit (updates relayed at once, written within 1 s): a
//   crash (SIGKILL to wrangler and workerd) inside the window loses nothing while a client is
//   connected, since it sends the edits again when it reconnects; with every client gone, what
//   is older than the window survives; the last client to leave has its edits written at once;
// - storage cost: typing at 10 keystrokes/s writes at most 0.25 rows per keystroke (rows
//   written as the object's SQLite counts them, from the edge's log, plus alarms set).
//
// The tests of this file share one wrangler and run in order (each restarts it).
// Run: `node --test e2e/` (all end-to-end tests) or `node --test e2e/persistence.test.mjs`, from the repo root.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  RawClient, useEdge, Y, syncedProvider, closeAllClients, waitFor, rng,
  recordUpdates, updateFrame, textOf, inspectSqlite,
} from './harness.mjs';

let edge;
const e2e = useEdge((launched) => { edge = launched; });

test('edits survive a wrangler dev restart', { timeout: 120_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const writer = await syncedProvider(edge, room);
  const reader = await syncedProvider(edge, room);
  const text = writer.doc.getText('code');
  text.insert(0, 'fn main() {\n}\n');
  text.insert(12, '    println!("persisted");\n');
  const expected = text.toString();
  // Relayed to the reader means accepted, and accepted means written within the commit window.
  await waitFor(() => reader.doc.getText('code').toString() === expected, 10_000, 'the reader to get the edits');
  await waitFor(() => roomLog(room, 'room committed').length > 0, 10_000, 'the commit');
  closeAllClients();

  await edge.restart();

  const fresh = await syncedProvider(edge, room);
  await waitFor(() => fresh.doc.getText('code').toString() === expected, 10_000, 'a new client to see the text after restart');
  assert.equal(textOf(await edge.snapshot(room)), expected);
  closeAllClients();
}));

test('a document over 5 MB persists across a restart, /snapshot byte-identical', { timeout: 180_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const doc = new Y.Doc();
  const updates = recordUpdates(doc);
  const text = doc.getText('code');
  const random = rng(5);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 \n{}();';
  // Three updates of ~1.9 MB each (one frame each, well under 8 MiB): ~5.7 MB of text.
  for (let i = 0; i < 3; i++) {
    const chunk = Array.from({ length: 1_900_000 }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
    text.insert(text.length, chunk);
  }
  assert.equal(updates.length, 3);
  assert.ok(updates.every((u) => u.length < 8 * 1024 * 1024));

  const writer = await RawClient.connect(edge, room);
  for (const update of updates) writer.send(updateFrame(update));
  await writer.barrier(doc, 60_000); // everything before it has been applied and stored
  assert.equal(writer.close, null, `writer still open (closed: ${JSON.stringify(writer.close)})`);
  writer.shutdown();

  const before = await edge.snapshot(room);
  assert.ok(before.length > 5_000_000, `snapshot is ${before.length} bytes`);
  assert.equal(textOf(before), text.toString(), 'the server holds the whole text');

  await edge.restart();

  const after = await edge.snapshot(room);
  assert.equal(after.length, before.length, 'same snapshot size after restart');
  assert.ok(Buffer.from(after).equals(Buffer.from(before)), '/snapshot is byte-identical after restart');
  const reader = await syncedProvider(edge, room, undefined, 60_000);
  assert.equal(reader.doc.getText('code').length, text.length);
  assert.ok(reader.doc.getText('code').toString() === text.toString(), 'a new client gets the whole text');
  closeAllClients();
}));

test('10,000 small updates keep the SQLite log <= 512 rows and the snapshot small', { timeout: 180_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const doc = new Y.Doc();
  const updates = recordUpdates(doc);
  const text = doc.getText('code');
  for (let i = 0; i < 10_000; i++) text.insert(text.length, String.fromCharCode(97 + (i % 26)));
  assert.equal(updates.length, 10_000);
  const expected = text.toString();

  const writer = await RawClient.connect(edge, room);
  const watcher = await RawClient.connect(edge, room);
  // Sent fast, in batches that let the socket drain; each update is its own Update frame.
  for (let i = 0; i < updates.length; i += 500) {
    for (const update of updates.slice(i, i + 500)) writer.send(updateFrame(update));
    await waitFor(() => writer.ws.bufferedAmount === 0, 30_000, 'the writer socket to drain');
  }
  await writer.barrier(doc, 120_000);
  assert.equal(writer.close, null, `writer still open (closed: ${JSON.stringify(writer.close)})`);
  await waitFor(() => watcher.syncFrames('update').length === 10_000, 60_000, 'the watcher to get all 10,000 updates');
  assert.equal(watcher.receivedDoc().getText('code').toString(), expected, 'relayed in order, nothing lost');
  assert.equal(textOf(await edge.snapshot(room)), expected);
  // The last socket to leave writes what waits in the commit window: let both closes land.
  closeAllClients();
  await waitFor(() => roomLog(room, 'socket closed').length === 2, 10_000, 'both closes to reach the room');

  await edge.stop();

  // Find this room's database: the one whose stored snapshot + log rebuild our text.
  const files = edge.sqliteFiles();
  assert.ok(files.length > 0, `no *.sqlite under ${edge.persistDir}`);
  const stores = files.map((file) => inspectSqlite(file));
  const rebuilt = (store) => {
    if (!store.tables.includes('updates')) return null;
    const d = new Y.Doc();
    if (store.snapshot.length) Y.applyUpdate(d, store.snapshot);
    for (const entry of store.log) Y.applyUpdate(d, entry);
    return d.getText('code').toString();
  };
  const mine = stores.filter((s) => rebuilt(s) === expected);
  assert.equal(mine.length, 1, `exactly one database holds the room (files: ${files.join(', ')})`);
  const store = mine[0];
  assert.ok(store.log_rows <= 512, `log has ${store.log_rows} rows (<= 512)`);
  assert.ok(store.log_entries <= 512, `log has ${store.log_entries} entries (<= 512)`);
  // Group commit may have written them as so few entries that nothing was compacted yet.
  assert.ok(store.snapshot_rows <= 2, `snapshot has ${store.snapshot_rows} rows`);
  assert.ok(store.snapshot_bytes < 64 * 1024, `snapshot is ${store.snapshot_bytes} bytes (a 10,000-char text)`);
  // Every room database of this run stays bounded, not only this one.
  for (const s of stores.filter((s) => s.tables.includes('updates'))) {
    assert.ok(s.log_entries <= 512, `${s.file}: ${s.log_entries} log entries`);
  }

  await edge.start();
  const reader = await syncedProvider(edge, room);
  assert.equal(reader.doc.getText('code').toString(), expected, 'the text is all there after the restart');
  closeAllClients();
}));

/** This room's structured log lines (the edge logs one JSON object per line) with `message`. */
function roomLog(room, message) {
  return edge.logText.split('\n').flatMap((line) => {
    const start = line.indexOf('{');
    if (start < 0) return [];
    try {
      const event = JSON.parse(line.slice(start));
      return event.fields?.message === message && event.fields.room === room.name ? [event.fields] : [];
    } catch {
      return [];
    }
  });
}

/** Resolves once the room's snapshot holds `expected` (the server may still be catching up). */
async function snapshotHolds(room, expected, timeoutMs = 30_000) {
  let last = '';
  await waitFor(async () => (last = textOf(await edge.snapshot(room))) === expected, timeoutMs,
    'the snapshot to hold every edit', 100).catch((error) => {
    error.message += `\nsnapshot: ${JSON.stringify(last.slice(0, 200))}`;
    throw error;
  });
}

// DESIGN.md, Contract 1: accepted updates are relayed at once and written within the commit
// window (1 s); a crash inside it loses them on the server only.

test('a crash inside the commit window loses nothing while a client is connected: it sends the edits again', { timeout: 120_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const writer = await syncedProvider(edge, room);
  const witness = await syncedProvider(edge, room);
  const text = writer.doc.getText('code');
  for (let i = 0; i < 50; i++) text.insert(text.length, `e${i};`);
  const expected = text.toString();
  await waitFor(() => witness.doc.getText('code').toString() === expected, 10_000, 'the witness to get every edit');

  await edge.kill(); // at once: the edits are relayed, and (almost surely) not yet written
  await edge.start(); // the same port: both providers reconnect by themselves

  await waitFor(() => writer.synced && witness.synced, 30_000, 'the providers to reconnect and sync');
  await snapshotHolds(room, expected);
  closeAllClients();
}));

test('with every client gone, what is older than the commit window survives a crash', { timeout: 120_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const N = 300;
  const doc = new Y.Doc();
  const updates = recordUpdates(doc);
  const text = doc.getText('code');
  for (let i = 0; i < N; i++) text.insert(text.length, `e${i};`);
  const expected = text.toString();

  const writer = await RawClient.connect(edge, room);
  const witness = await RawClient.connect(edge, room);
  for (const update of updates) writer.send(updateFrame(update));
  await waitFor(() => witness.syncFrames('update').length === N, 30_000, `the witness to get all ${N} updates`);
  // Past the 1 s window the alarm has written them; these clients never come back.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  await edge.kill();
  closeAllClients();
  await edge.start();
  assert.equal(textOf(await edge.snapshot(room)), expected);
}));

test('the last client to leave takes nothing unwritten with it', { timeout: 120_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const writer = await syncedProvider(edge, room);
  writer.doc.getText('code').insert(0, 'written as the room empties');
  const expected = writer.doc.getText('code').toString();
  await snapshotHolds(room, expected, 10_000); // accepted (the snapshot reads memory)
  const commitsBefore = roomLog(room, 'room committed').length;
  closeAllClients();
  await waitFor(() => roomLog(room, 'room committed').length > commitsBefore, 10_000, 'the commit on the last close');
  await edge.kill();
  await edge.start();
  assert.equal(textOf(await edge.snapshot(room)), expected);
}));

test('typing at 10 keystrokes/s writes at most 0.25 rows per keystroke', { timeout: 120_000 }, e2e(async () => {
  const room = await edge.createRoom();
  const typist = await syncedProvider(edge, room);
  const reader = await syncedProvider(edge, room);
  // Awareness on, as the IDE runs it: a cursor with every keystroke.
  typist.awareness.setLocalStateField('user', { name: 'typist', color: '#e5484d' });
  const KEYSTROKES = 150;
  const text = typist.doc.getText('code');
  for (let i = 0; i < KEYSTROKES; i++) {
    text.insert(text.length, String.fromCharCode(97 + (i % 26)));
    typist.awareness.setLocalStateField('cursor', { index: text.length });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const expected = text.toString();
  await waitFor(() => reader.doc.getText('code').toString() === expected, 10_000, 'the reader to get every keystroke');
  // The last commit happens within the window; everyone is still connected.
  const writtenOut = () => roomLog(room, 'room committed').reduce((n, c) => n + c.bytes, 0);
  let settled = -1;
  await waitFor(() => { const now = writtenOut(); const done = now === settled; settled = now; return done && now > 0; },
    10_000, 'the commits to settle', 1_500);

  const commits = roomLog(room, 'room committed');
  const rows = commits.reduce((n, c) => n + c.rows_written, 0);
  // An alarm set is billed as a row written too.
  const alarms = roomLog(room, 'alarm set').length;
  const perKeystroke = (rows + alarms) / KEYSTROKES;
  console.log(`# ${KEYSTROKES} keystrokes at 10/s: ${commits.length} commits, ${rows} rows written + ${alarms} alarms set = ${(perKeystroke).toFixed(3)} rows per keystroke`);
  assert.ok(perKeystroke <= 0.25, `${rows} rows + ${alarms} alarms for ${KEYSTROKES} keystrokes`);
  assert.ok(rows >= 1 && commits.every((c) => c.rows_written >= 1), 'every commit wrote its row');
  closeAllClients();
  await edge.restart();
  assert.equal(textOf(await edge.snapshot(room)), expected);
}));
