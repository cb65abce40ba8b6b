// coldjoin: how long a user waits to open a room with a large document. It builds a document
// of --edits single-character inserts typed by one client (the cursor jumps to a random place
// before 1 in 8 keystrokes: 100,000 edits then encode to about 460 KiB as Yjs v1), seeds a new
// room with it through one provider, confirms that the server holds all of it, then times
// --joins fresh IDE-like clients one after another (each leaves before the next), from
// `new WebsocketProvider` until it has synced and holds the full text. --room-file keeps the
// room (name, token, expected text) for `--rejoin FILE`, which times the joins again without
// seeding: run it after restarting the server, and its first join meets a cold room.

import crypto from 'node:crypto';
import fs from 'node:fs';
import WebSocket from 'ws';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';

import {
  Client, Report, TEXT_NAME, Y, allSynced, connectionLine, extensionsLine, growthText, memoryText, ms,
  newRoom, parseOptions, percentile, roomUrl, sampleMemory, shownUrl, sleep, socketErrorText, withTimeout,
} from './common.mjs';
import { rng } from '../../e2e/rng.mjs';

export const usage = 'usage: node bench/providers/main.mjs coldjoin --url WS [--rooms-api HTTP] [--edits 100000] [--joins 5] [--room-file FILE | --rejoin FILE] [--memory-pid PID]...';

const OPTIONS = {
  edits: { type: 'number', default: 100000, help: 'single-character inserts in the seeded document' },
  joins: { type: 'number', default: 5, help: 'fresh clients timed, one after another' },
  'room-file': { type: 'string', help: 'write the seeded room here (it holds the room\'s edit token: keep it private) for --rejoin' },
  rejoin: { type: 'string', help: 'time joins to the room in this --room-file, without seeding (after a server restart)' },
  'join-timeout': { type: 'number', default: 120, help: 'seconds a join may take before the run fails' },
};

// A keystroke moves the cursor to a random place with this probability, else types on.
const JUMP_PROBABILITY = 1 / 8;

/** The seeded document: `edits` single-character inserts, each its own transaction. */
function typeDocument(edits) {
  const doc = new Y.Doc();
  const text = doc.getText(TEXT_NAME);
  const random = rng(1); // seeded: every run types the same document
  let cursor = 0;
  for (let i = 0; i < edits; i++) {
    if (random() < JUMP_PROBABILITY) cursor = Math.floor(random() * (text.length + 1));
    text.insert(cursor, 'abcdefghijklmnopqrstuvwxyz'[i % 26]);
    cursor += 1;
  }
  return doc;
}

const sha256 = (text) => crypto.createHash('sha256').update(text).digest('hex');

/**
 * How many structs of `doc` the server lacks: a raw socket sends SyncStep1 with the
 * document's state vector, and the server's SyncStep2 answer holds what it does not have.
 */
function structsMissingOnServer(options, room, doc) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(roomUrl(options, room));
    socket.on('open', () => {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, 0); // sync
      syncProtocol.writeSyncStep1(encoder, doc);
      socket.send(encoding.toUint8Array(encoder));
    });
    socket.on('message', (data) => {
      const decoder = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(decoder) !== 0 || decoding.readVarUint(decoder) !== syncProtocol.messageYjsSyncStep2) return;
      resolve(Y.decodeUpdate(decoding.readVarUint8Array(decoder)).structs.length);
      socket.close();
    });
    socket.on('error', reject);
    socket.on('close', (code) => reject(new Error(`the check socket closed (${code}) before the server answered`)));
  });
}

/** Sends `doc` to a new room through one provider; resolves once the server holds all of it. */
async function seed(options, room, doc) {
  const started = performance.now();
  const seeder = new Client(options, room, { doc });
  await allSynced([seeder], options.joinTimeout * 1000, 'seeding');
  const deadline = performance.now() + options.joinTimeout * 1000;
  let missing;
  while ((missing = await structsMissingOnServer(options, room, doc)) > 0) {
    if (performance.now() > deadline) throw new Error(`the server still lacks ${missing} structs of the seeded document after ${options.joinTimeout} s`);
    await sleep(250);
  }
  const seededMs = performance.now() - started;
  seeder.close();
  return seededMs;
}

/**
 * One fresh client joining `room`: {ms, bytes, complete, client} from `new WebsocketProvider`
 * to synced with `expected.length` characters (a server may send the document after its
 * SyncStep2, as @y/websocket-server does while it loads it from its database).
 */
async function timeJoin(options, room, expected, index) {
  const started = performance.now();
  const client = new Client(options, room, { index });
  const full = new Promise((resolve) => {
    const check = () => {
      if (client.provider.synced && client.text.length >= expected.length) resolve(performance.now());
    };
    client.provider.on('sync', check);
    client.doc.on('update', check);
  });
  try {
    const finished = await withTimeout(full, options.joinTimeout * 1000,
      () => `join ${index} did not sync the full text (${client.text.length} of ${expected.length} characters${socketErrorText([client])})`);
    return { ms: finished - started, bytes: client.bytesReceived, complete: sha256(client.text.toString()) === expected.sha256, client };
  } finally {
    client.close();
  }
}

export async function main(argv) {
  const options = parseOptions(argv, usage, OPTIONS);
  if (options.joins < 1) throw new Error('coldjoin needs --joins >= 1');
  const report = new Report(options, options.rejoin ? 'cold join after a server restart' : `cold join, ${options.edits}-edit document`);
  let room;
  let expected;
  const memoryBefore = sampleMemory(options);
  if (options.rejoin) {
    let saved;
    try {
      saved = JSON.parse(fs.readFileSync(options.rejoin, 'utf8'));
    } catch (error) {
      throw new Error(`--rejoin ${options.rejoin}: ${error.message} (write it with a coldjoin run's --room-file)`);
    }
    ({ room, expected } = saved);
    report.lines([
      ['url', shownUrl(options, room)],
      ['document', `${expected.edits} edits, ${expected.length} characters, ${(expected.bytes / 1024).toFixed(0)} KiB as one update (seeded before the restart)`],
    ]);
  } else {
    let started = performance.now();
    const doc = typeDocument(options.edits);
    const builtMs = performance.now() - started;
    const update = Y.encodeStateAsUpdate(doc);
    started = performance.now();
    Y.applyUpdate(new Y.Doc(), update);
    const applyMs = performance.now() - started;
    const text = doc.getText(TEXT_NAME).toString();
    expected = { edits: options.edits, length: text.length, sha256: sha256(text), bytes: update.length };
    room = await newRoom(options);
    const seededMs = await seed(options, room, doc);
    if (options.roomFile) fs.writeFileSync(options.roomFile, JSON.stringify({ room, expected }), { mode: 0o600 });
    report.lines([
      ['url', shownUrl(options, room)],
      ['document', `${options.edits} single-character inserts by one client, the cursor jumping to a random place before 1 in ${1 / JUMP_PROBABILITY}: ${text.length} characters, ${(update.length / 1024).toFixed(0)} KiB as one Yjs v1 update (typed in ${builtMs.toFixed(0)} ms)`],
      ['applying it alone', `${ms(applyMs)} ms (Y.applyUpdate into an empty Doc in this process: part of every join below)`],
      ['seeding', `one provider sent it (its SyncStep2); the server held all of it ${seededMs.toFixed(0)} ms after the provider was created (checked by a SyncStep1 with its state vector)`],
    ]);
  }

  const joins = [];
  for (let i = 1; i <= options.joins; i++) joins.push(await timeJoin(options, room, expected, i));
  const memoryAfter = sampleMemory(options);
  const times = joins.map((j) => j.ms);
  const next = times.slice(1).sort((a, b) => a - b);
  const sorted = [...times].sort((a, b) => a - b);
  const incomplete = joins.filter((j) => !j.complete).length;
  report.lines([
    extensionsLine(),
    ['joins ms', `${times.map(ms).join(', ')} (${options.joins} fresh clients, one after another; awareness ${options.awareness ? 'on' : 'off'})`],
    options.rejoin
      ? ['after restart ms', `first (cold room) ${ms(times[0])}; next ${next.length ? `median ${ms(percentile(next, 50))}, max ${ms(percentile(next, 100))}` : '-'}`]
      : ['cold join ms', `median ${ms(percentile(sorted, 50))}, max ${ms(percentile(sorted, 100))}`],
    ['received per join', `${(joins.reduce((sum, j) => sum + j.bytes, 0) / joins.length / 1024).toFixed(0)} KiB of message payload (mean; after decompression, if the socket compresses)`],
    ['full text', `${joins.length - incomplete} of ${joins.length} joins got exactly the seeded text`],
    connectionLine(joins.map((j) => j.client)),
  ]);
  if (options.memoryPid.length) {
    report.lines([
      ['memory before', memoryText(memoryBefore)],
      ['memory after', `${memoryText(memoryAfter)}; ${options.rejoin ? 'after the joins' : 'seeded and joined'}: ${growthText(memoryBefore, memoryAfter)}`],
    ]);
  }

  if (options.rejoin) {
    report.summary('cold join after restart (ms): first / next median', incomplete ? `FAIL (${incomplete} incomplete)` : `${ms(times[0])} / ${next.length ? ms(percentile(next, 50)) : '-'}`);
  } else {
    report.summary(`cold join, ${Math.round(options.edits / 1000)}k-edit doc (ms): median / max`, incomplete ? `FAIL (${incomplete} incomplete)` : `${ms(percentile(sorted, 50))} / ${ms(percentile(sorted, 100))}`);
  }
  report.line('RESULT', incomplete ? `FAIL: ${incomplete} joins did not get the seeded text` : 'ok');
  console.log();
  return incomplete ? 2 : 0;
}
