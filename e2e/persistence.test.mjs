// End-to-end: durability and bounded storage of CodeBox rooms (Contract 1 in ../shared/DESIGN.md),
// against the real edge Worker under `wrangler dev`, restarted on the same --persist-to dir.
//
// Covers:
// - edits survive a wrangler dev restart;
// - a document of more than 5 MB (sent as a few updates, each under 8 MiB) persists across a
//   restart, and /snapshot is byte-identical before and after;
// - 10,000 small updates (one frame each) leave the Durable Object's SQLite `log` at <= 512
//   rows and `snapshot` small (read with python3's sqlite3 while wrangler is stopped), and the
//   text is all there after the restart;
// - no acknowledged edit is lost: once a client's last update has been relayed to another
//   client, wrangler is killed with SIGKILL and restarted, and every edit is in the snapshot.
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
  // Relayed to the reader means accepted, and accepted means stored.
  await waitFor(() => reader.doc.getText('code').toString() === expected, 10_000, 'the reader to get the edits');
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
  closeAllClients();

  await edge.stop();

  // Find this room's database: the one whose stored snapshot + log rebuild our text.
  const files = edge.sqliteFiles();
  assert.ok(files.length > 0, `no *.sqlite under ${edge.persistDir}`);
  const stores = files.map((file) => inspectSqlite(file));
  const rebuilt = (store) => {
    if (!store.tables.includes('log')) return null;
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
  assert.ok(store.snapshot_rows >= 1 && store.snapshot_rows <= 2, `snapshot has ${store.snapshot_rows} rows`);
  assert.ok(store.snapshot_bytes < 64 * 1024, `snapshot is ${store.snapshot_bytes} bytes (a 10,000-char text)`);
  // Every room database of this run stays bounded, not only this one.
  for (const s of stores.filter((s) => s.tables.includes('log'))) {
    assert.ok(s.log_entries <= 512, `${s.file}: ${s.log_entries} log entries`);
  }

  await edge.start();
  const reader = await syncedProvider(edge, room);
  assert.equal(reader.doc.getText('code').toString(), expected, 'the text is all there after the restart');
  closeAllClients();
}));

test('no acknowledged edit is lost when wrangler is killed with SIGKILL', { timeout: 120_000 }, e2e(async () => {
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
  // The last update reached another client: the room accepted (and so stored) all N.
  await waitFor(() => witness.syncFrames('update').length === N, 30_000, `the witness to get all ${N} updates`);
  assert.ok(witness.receivedDoc().getText('code').toString().endsWith(`e${N - 1};`));

  await edge.kill(); // SIGKILL to wrangler and workerd at once, no graceful anything
  closeAllClients();
  await edge.start();

  const restored = textOf(await edge.snapshot(room));
  for (let i = 0; i < N; i++) assert.ok(restored.includes(`e${i};`), `edit ${i} survived`);
  assert.equal(restored, expected);
}));
