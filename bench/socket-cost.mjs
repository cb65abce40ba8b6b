// What a room socket costs the edge's workerd, with and without WebSocket compression
// (permessage-deflate): memory per idle socket, CPU and bytes per relayed frame.
// docs/BENCHMARKS.md, "WebSocket compression", has the figures and what was decided.
//
// Starts the edge under `wrangler dev --local` through the e2e harness (e2e/harness.mjs: builds
// edge/ if its inputs changed and freezes a copy; `--build DIR` runs DIR instead, a copy of
// edge/build made at another commit), with per-client limits raised. Then, against the runtime
// workerd's own port (the production path; `--via wrangler` for wrangler's dev port, which
// adds the dev proxy's workerd to what is watched):
//
// 1. idle memory: RSS of the runtime workerd before and after SOCKETS stock y-websocket
//    providers have synced with one room and sat idle for SETTLE s: KiB per socket;
// 2. fan-out, twice: READERS raw sockets and 1 writer on a new room; the writer sends UPDATES
//    frames at RATE per second, first Yjs Updates of one typed character (~22 bytes), then
//    awareness frames of a moving cursor (~270 bytes). Once every reader has every frame: the
//    workerd's CPU time over the run (/proc, user + system, 10 ms ticks) minus as long of idle,
//    and the TCP bytes the readers received, per delivered frame.
//
// Every client offers permessage-deflate, as browsers and `ws` do, unless `--no-offer`. A
// server that accepts what is offered (the edge before it refused compression) is measured
// both ways with one build: offering = compression on, `--no-offer` = off. Prints what the
// server agreed to (the 101's Sec-WebSocket-Extensions).
//
//   node bench/socket-cost.mjs                   # 300 idle sockets; 49 readers, 400 frames at 100/s
//   node bench/socket-cost.mjs --no-offer --sockets 10 --updates 2000 --rate 400
//   node bench/socket-cost.mjs --build /tmp/edge-build-1adc8ef --via wrangler
//
// Short runs on a shared machine: run each setting several times, interleaved.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import {
  Edge, prepareEdge, Y, WebSocket, WebsocketProvider, awarenessProtocol, waitFor, recordUpdates, updateFrame,
  awarenessFrameOf, closeAllClients,
} from '../e2e/harness.mjs';

const { values: opts } = parseArgs({
  options: {
    sockets: { type: 'string', default: '300' },
    readers: { type: 'string', default: '49' },
    updates: { type: 'string', default: '400' },
    rate: { type: 'string', default: '100' },
    via: { type: 'string', default: 'runtime' },
    'no-offer': { type: 'boolean', default: false },
    settle: { type: 'string', default: '5' },
    build: { type: 'string' },
  },
});
const SOCKETS = Number(opts.sockets);
const READERS = Number(opts.readers);
const UPDATES = Number(opts.updates);
const RATE = Number(opts.rate);
const SETTLE_MS = Number(opts.settle) * 1000;
const OFFER = !opts['no-offer'];
const LIMIT = '1000000/60';
const CLK_TCK = 100; // Linux USER_HZ

process.setMaxListeners(0); // each y-websocket provider listens for the process's exit
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const cpuMs = (pid) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
};

/** `ws` with permessage-deflate offered (its default) or not. */
class ClientSocket extends WebSocket {
  constructor(url, protocols, options = {}) {
    super(url, protocols, { ...options, perMessageDeflate: OFFER });
    this.agreed = null;
    this.once('upgrade', (res) => {
      this.agreed = res.headers['sec-websocket-extensions'] ?? '(none)';
    });
  }
}

/**
 * READERS sockets and 1 writer on a new room; the writer sends UPDATES frames of `kind` at RATE
 * per second: 'update' (one typed character each) or 'awareness' (a cursor moving, as
 * y-codemirror.next reports it). Once every reader has every frame: CPU of the watched workerd
 * over the run (minus as long of idle) and TCP bytes received per delivered frame.
 */
async function fanOut(target, watched, kind) {
  const room = await edge.createRoom();
  const url = `${target.wsBase}/rooms/${room.name}?token=${encodeURIComponent(room.editToken)}`;
  const open = (ws) => new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  // [0 sync, 2 update, ...] or [1 awareness, ...]
  const counts = kind === 'update' ? (data) => data[0] === 0 && data[1] === 2 : (data) => data[0] === 1;
  const readers = [];
  for (let i = 0; i < READERS; i++) {
    const ws = new ClientSocket(url);
    ws.got = 0;
    ws.on('message', (data) => { if (counts(data)) ws.got += 1; });
    readers.push(ws);
  }
  const writer = new ClientSocket(url);
  await Promise.all([...readers, writer].map(open));
  const doc = new Y.Doc();
  const frames = [];
  if (kind === 'update') {
    const updates = recordUpdates(doc);
    const text = 'function main() {\n  console.log("hello, world");\n  return 42;\n}\n';
    for (let i = 0; i < UPDATES; i++) doc.getText('code').insert(i, text[i % text.length]);
    frames.push(...updates.map(updateFrame));
  } else {
    const awareness = new awarenessProtocol.Awareness(doc);
    for (let i = 0; i < UPDATES; i++) {
      const at = { type: null, tname: 'code', item: { client: doc.clientID, clock: i }, assoc: 0 };
      awareness.setLocalState({ user: { name: 'Ada Lovelace', color: '#30bced', colorLight: '#30bced33' }, cursor: { anchor: at, head: at } });
      frames.push(awarenessFrameOf(awareness));
    }
    awareness.destroy();
  }
  const meanBytes = frames.reduce((n, f) => n + f.length, 0) / frames.length;
  await sleep(2000);
  const runMs = (UPDATES / RATE) * 1000;
  // Idle CPU over as long as the run, to subtract.
  const idle0 = watched.map(([, pid]) => cpuMs(pid));
  await sleep(runMs);
  const idle = watched.map(([, pid], i) => cpuMs(pid) - idle0[i]);
  const cpu0 = watched.map(([, pid]) => cpuMs(pid));
  const bytes0 = readers.reduce((n, ws) => n + ws._socket.bytesRead, 0);
  const started = Date.now();
  for (let i = 0; i < frames.length; i++) {
    writer.send(frames[i]);
    const due = started + ((i + 1) * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  await waitFor(() => readers.every((ws) => ws.got >= UPDATES), 120_000, `every reader to get every ${kind} frame`, 5);
  const wallMs = Date.now() - started;
  const used = watched.map(([, pid], i) => cpuMs(pid) - cpu0[i]);
  const delivered = UPDATES * READERS;
  const wire = (readers.reduce((n, ws) => n + ws._socket.bytesRead, 0) - bytes0) / delivered;
  console.log(`fan-out ${kind}: ${READERS} readers x ${UPDATES} frames of ${meanBytes.toFixed(1)} bytes at ${RATE}/s, all delivered in ${(wallMs / 1000).toFixed(1)} s; ${wire.toFixed(1)} TCP bytes received per delivered frame`);
  watched.forEach(([name], i) => {
    const net = used[i] - idle[i] * (wallMs / runMs);
    console.log(`fan-out ${kind}: ${name} workerd CPU ${used[i].toFixed(0)} ms (idle ${idle[i].toFixed(0)} ms per ${(runMs / 1000).toFixed(1)} s): ${((net * 1000) / delivered).toFixed(2)} us per delivered frame`);
  });
  for (const ws of [...readers, writer]) ws.terminate();
  await sleep(1000);
}

/** The edge under wrangler dev; with --build DIR, DIR (a copy of an edge/build) is its Worker. */
async function launch(vars) {
  if (!opts.build) return Edge.launch({ vars });
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-bench-'));
  const configPath = prepareEdge(runDir);
  const main = path.resolve(opts.build, 'worker', 'shim.mjs');
  if (!fs.existsSync(main)) throw new Error(`--build ${opts.build}: no worker/shim.mjs in it`);
  fs.writeFileSync(configPath, fs.readFileSync(configPath, 'utf8').replace(/^main\s*=.*$/m, `main = ${JSON.stringify(main)}`));
  fs.writeFileSync(path.join(runDir, '.dev.vars'), `ROOM_TOKEN_SECRET=${crypto.randomBytes(32).toString('hex')}\n`);
  const launched = new Edge(runDir, configPath, vars);
  await launched.start();
  return launched;
}

const edge = await launch({ ROOM_RATE_LIMIT: LIMIT, RUN_RATE_LIMIT: LIMIT });
let exitCode = 0;
try {
  const runtime = await edge.runtime();
  const target = opts.via === 'wrangler' ? edge : runtime;
  const watched = [['runtime', runtime.pid], ...(target === edge ? [['dev proxy', runtime.proxyPid]] : [])];
  console.log(`# ${new Date().toISOString()}, ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} load, node ${process.version}`);
  console.log(`# runtime workerd pid ${runtime.pid} port ${runtime.port}; dev proxy workerd pid ${runtime.proxyPid} port ${edge.port}; sockets to ${target.wsBase}`);
  console.log(`# clients ${OFFER ? 'offer' : 'do not offer'} permessage-deflate`);

  // 1. Idle memory per socket.
  const room = await edge.createRoom();
  await sleep(2000);
  const before = watched.map(([, pid]) => rssKiB(pid));
  const providers = [];
  for (let i = 0; i < SOCKETS; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(SOCKETS, i + 50); j++) {
      const p = new WebsocketProvider(`${target.wsBase}/rooms`, room.name, new Y.Doc(), {
        WebSocketPolyfill: ClientSocket, disableBc: true, params: { token: room.editToken },
      });
      providers.push(p);
      batch.push(p);
    }
    await waitFor(() => batch.every((p) => p.synced), 60_000, `providers ${i}.. to sync`, 20);
  }
  await sleep(SETTLE_MS);
  const after = watched.map(([, pid]) => rssKiB(pid));
  console.log(`agreed: ${[...new Set(providers.map((p) => p.ws?.agreed))].join(' | ')}`);
  watched.forEach(([name], i) => {
    const delta = after[i] - before[i];
    console.log(`idle: ${name} workerd RSS ${(before[i] / 1024).toFixed(1)} -> ${(after[i] / 1024).toFixed(1)} MiB with ${SOCKETS} synced providers: ${(delta / SOCKETS).toFixed(1)} KiB per socket`);
  });
  for (const p of providers) {
    p.destroy();
    p.doc.destroy();
  }
  await sleep(2000);

  // 2. Fan-out: CPU and bytes per delivered frame, for typing Updates and for awareness.
  for (const kind of ['update', 'awareness']) await fanOut(target, watched, kind);
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  closeAllClients();
  await edge.dispose();
}
process.exit(exitCode);
