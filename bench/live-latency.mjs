// Live runs (Contract 4) on the local stack: how long a line takes each way, and what a flood
// costs the room. The stack is the one e2e/live.test.mjs uses (the edge under `wrangler dev`,
// the exec API and the fleet as release builds over one embedded SQLite queue and store,
// programs in real containers); the clients are full Yjs providers with awareness on, as the
// IDE runs.
//
//   1. output: a Python program prints LINES lines, one every GAP_MS, each with the container's
//      clock (time.time(), the host's clock: containers share the kernel's); a second
//      participant's document records when each line appears in the run's console;
//   2. input: a participant types LINES lines through POST /rooms/{room}/runs/{id}/input, one
//      after the other's echo; the program prints the time it read each;
//   3. flood: a program writes 1 MiB to stdout as fast as it can: what reaches the room (console
//      entries, update frames and bytes one participant receives, rows the room writes, the
//      document's size), and whether typing still gets through meanwhile;
//   baseline, in the same process: the same two programs over `docker run -i` of the same runner
//      image (the container pipe alone: no queue, no edge, no document).
//
//   node bench/live-latency.mjs            (LINES=200 GAP_MS=100 by default)
//
// Figures and the command: docs/BENCHMARKS.md, "Live runs".

import { spawn } from 'node:child_process';
import readline from 'node:readline';

import fs from 'node:fs';

import { Edge, ExecApi, Fleet, closeAllClients, syncedProvider, waitFor } from '../e2e/harness.mjs';

process.env.CODEBOX_E2E_RELEASE = '1';
const LINES = Number(process.env.LINES ?? 200);
const GAP_MS = Number(process.env.GAP_MS ?? 100);

const PRINTER = `import time
for i in range(${LINES}):
    print(f"{i} {time.time() * 1000:.3f}", flush=True)
    time.sleep(${GAP_MS / 1000})
`;
const READER = `import time
for i in range(${LINES}):
    line = input()
    print(f"{line} {time.time() * 1000:.3f}", flush=True)
`;
const FLOOD = 'import sys\nchunk = "y" * 1023 + "\\n"\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n';

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) };
}

const fmt = (s) => `n=${s.n}  p50 ${s.p50.toFixed(1)} ms  p99 ${s.p99.toFixed(1)} ms  max ${s.max.toFixed(1)} ms`;

/** Printed "<i> <ms>" lines -> i -> the program's time. */
function stamps(text) {
  const found = new Map();
  for (const line of text.split('\n')) {
    const [i, at] = line.split(' ');
    if (at !== undefined) found.set(Number(i), Number(at));
  }
  return found;
}

// --- baseline: the container pipe alone -------------------------------------------------------

async function dockerBaseline() {
  const run = (source) => {
    const child = spawn('docker', ['run', '--rm', '-i', '--network', 'none', '--entrypoint', 'python3', 'codebox-runner-python', '-u', '-c', source], { stdio: ['pipe', 'pipe', 'inherit'] });
    return { child, lines: readline.createInterface({ input: child.stdout }) };
  };
  const output = [];
  {
    const { child, lines } = run(PRINTER);
    child.stdin.end();
    for await (const line of lines) {
      const [, at] = line.split(' ');
      output.push(Date.now() - Number(at));
    }
  }
  const input = [];
  {
    const { child, lines } = run(READER);
    const iterator = lines[Symbol.asyncIterator]();
    for (let i = 0; i < LINES; i++) {
      const sent = Date.now();
      child.stdin.write(`${i}\n`);
      const { value } = await iterator.next();
      input.push(Number(value.split(' ')[1]) - sent);
    }
    child.stdin.end();
  }
  return { output: stats(output), input: stats(input) };
}

// --- the stack --------------------------------------------------------------------------------

const edge = await Edge.launch({ vars: { RUN_RATE_LIMIT: '10000/60' } });
const db = `${edge.runDir}/codebox.db`;
const api = await ExecApi.start({ db, env: { CODEBOX_RUN_RATE_LIMIT: '10000/60' } });
edge.vars.EXEC_API_URL = api.url;
await edge.restart();
const fleet = await Fleet.start({ db, edgeUrl: edge.httpBase, env: { FLEET_POOL_SIZE: '2' } });

async function startRun(room, source) {
  const response = await fetch(`${edge.httpBase}/api/v1/submissions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${room.editToken}` },
    body: JSON.stringify({ language: 'python', source }),
  });
  const body = await response.json();
  if (response.status !== 202) throw new Error(JSON.stringify(body));
  return body.id;
}

const transcriptOf = (doc, id) => doc.getMap('live').get(id)?.get('transcript');
const stdoutOf = (doc, id) => (transcriptOf(doc, id)?.toArray() ?? []).filter((e) => e.s === 'out').map((e) => e.t).join('');
const ended = (doc, id) => doc.getMap('live').get(id)?.get('state') === 'ended';

/** Two participants in a fresh room: `typist` (whose tab started the runs) and `watcher`. */
async function twoParticipants() {
  const room = await edge.createRoom();
  const typist = await syncedProvider(edge, room);
  const watcher = await syncedProvider(edge, room);
  for (const [p, name] of [[typist, 'Ada'], [watcher, 'Grace']]) {
    p.awareness.setLocalStateField('user', { name, color: '#6e56cf' });
  }
  return { room, typist, watcher };
}

async function outputLatency() {
  const { room, watcher } = await twoParticipants();
  const seen = new Map();
  const id = await startRun(room, PRINTER);
  watcher.doc.getMap('live').observeDeep(() => {
    const now = Date.now();
    for (const [i, at] of stamps(stdoutOf(watcher.doc, id))) if (!seen.has(i)) seen.set(i, now - at);
  });
  await waitFor(() => ended(watcher.doc, id), LINES * GAP_MS + 60_000, 'the printer to end', 50);
  return stats([...seen.values()]);
}

async function inputLatency() {
  const { room, typist } = await twoParticipants();
  const id = await startRun(room, READER);
  await waitFor(() => typist.doc.getMap('live').get(id)?.get('state') === 'live', 60_000, 'the reader live', 5);
  const latencies = [];
  for (let i = 0; i < LINES; i++) {
    const sent = Date.now();
    const response = await fetch(`${edge.httpBase}/rooms/${room.name}/runs/${id}/input`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${room.editToken}` },
      body: JSON.stringify({ line: String(i), by: 'Ada', color: '#6e56cf' }),
    });
    if (response.status !== 204) throw new Error(`input ${i}: ${response.status} ${await response.text()}`);
    let read;
    try {
      read = await waitFor(() => stamps(stdoutOf(typist.doc, id)).get(i), 20_000, `line ${i} read`, 1);
    } catch (error) {
      const record = await (await fetch(`${edge.httpBase}/api/v1/submissions/${id}`)).json();
      const console = typist.doc.getMap('live').get(id)?.toJSON();
      throw new Error(`${error.message}; the run: ${JSON.stringify(record).slice(0, 600)}; its console: ${JSON.stringify(console).slice(-600)}`);
    }
    latencies.push(read - sent);
  }
  return stats(latencies);
}

async function flood() {
  const { room, typist, watcher } = await twoParticipants();
  const committedBefore = edge.logText.length;
  let frames = 0;
  let bytes = 0;
  const ws = watcher.ws;
  const count = (data) => { frames += 1; bytes += data.byteLength ?? data.length; };
  ws.addEventListener('message', (event) => count(event.data));
  const id = await startRun(room, FLOOD);
  await waitFor(() => stdoutOf(watcher.doc, id).length > 0, 60_000, 'the flood to start', 5);
  const typed = Date.now();
  typist.doc.getText('code').insert(0, 'typing during the flood');
  await waitFor(() => watcher.doc.getText('code').toString().startsWith('typing'), 20_000, 'typing to get through', 1);
  const typingMs = Date.now() - typed;
  await waitFor(() => ended(watcher.doc, id), 60_000, 'the flood to end', 20);
  await new Promise((resolve) => setTimeout(resolve, 2500)); // the commit window
  const rows = [...edge.logText.slice(committedBefore).matchAll(/"room":"([^"]+)","ops":\d+,"bytes":\d+,"rows_written":(\d+)/g)]
    .filter((m) => m[1] === room.name).reduce((sum, m) => sum + Number(m[2]), 0);
  const snapshot = await edge.snapshot(room);
  return {
    entries: transcriptOf(watcher.doc, id).length,
    shownBytes: Buffer.byteLength(stdoutOf(watcher.doc, id)),
    frames, bytes, rows, documentBytes: snapshot.byteLength, typingMs,
  };
}

try {
  const baseline = await dockerBaseline();
  const output = await outputLatency();
  const input = await inputLatency();
  const flooded = await flood();
  const runtime = await edge.runtime();
  const rss = Number(fs.readFileSync(`/proc/${runtime.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;
  console.log(`\nLive runs, ${LINES} lines, one every ${GAP_MS} ms (output), each after the last echo (input)`);
  console.log(`  output, program -> another participant's document : ${fmt(output)}`);
  console.log(`    baseline, program -> docker run -i stdout        : ${fmt(baseline.output)}`);
  console.log(`  input, POST -> the program reads it               : ${fmt(input)}`);
  console.log(`    baseline, docker run -i stdin -> the program      : ${fmt(baseline.input)}`);
  console.log(`  flood of 1 MiB on stdout: ${flooded.entries} console entries, ${flooded.shownBytes} bytes shown (the cap), ` +
    `${flooded.frames} frames / ${(flooded.bytes / 1024).toFixed(1)} KiB to one participant, ${flooded.rows} rows written, ` +
    `document ${(flooded.documentBytes / 1024).toFixed(1)} KiB; an edit typed during it reached the other participant in ${flooded.typingMs} ms`);
  console.log(`  runtime workerd RSS after all of it: ${rss.toFixed(1)} MiB`);
} finally {
  closeAllClients();
  await fleet.stop();
  await api.stop();
  await edge.dispose();
}
