// idle: what idle clients cost the server. For each layout C/R (C clients over R new rooms):
//   1. the server's memory before (each --memory-pid: RSS, PSS, Private_Dirty);
//   2. one client in each of the R rooms, all synced, idle for --idle s: the growth / R is
//      the cost of a room with one connection;
//   3. the other C − R clients, round-robin over the rooms, synced, idle for --idle s (the
//      server's CPU is measured over this wait: awareness heartbeats): the growth / (C − R) is
//      the cost of one more connection;
//   4. every client leaves; after --idle s, the memory again: does it come back?
// The default wait (15 s) is one awareness heartbeat period. Each client is an IDE-like
// Client with a tiny Y.Doc of its own; they connect at --connect-rate. Before step 1, one
// client joins and leaves a room of its own (the server's one-time costs). A server may keep
// what one layout freed and reuse it for the next: bench/run-room-bench.sh gives each layout
// a freshly started server.

import {
  Client, Report, allSynced, connectionLine, extensionsLine, frameCounts, framesText, growthText,
  memoryText, newRoom, openStaggered, parseOptions, sampleMemory, shownUrl, sleep,
} from './common.mjs';
import { CpuWindow, cpuLines } from './procfs.mjs';

export const usage = 'usage: node bench/providers/main.mjs idle --url WS [--rooms-api HTTP] --memory-pid PID... [--layouts 1000/100,1000/10] [--idle 15] [--server-tree PID]...';

const OPTIONS = {
  layouts: { type: 'string', default: '1000/100,1000/10', help: 'CLIENTS/ROOMS, comma-separated; each layout uses new rooms' },
  idle: { type: 'number', default: 15, help: 'seconds to wait idle before each memory sample' },
  'connect-rate': { type: 'number', default: 200, help: 'providers opened per second' },
};

function parseLayouts(text) {
  return text.split(',').map((layout) => {
    const match = layout.trim().match(/^(\d+)\/(\d+)$/);
    if (!match) throw new Error(`--layouts: "${layout}" is not CLIENTS/ROOMS`);
    const [clients, rooms] = [Number(match[1]), Number(match[2])];
    if (rooms < 1 || clients <= rooms) throw new Error(`--layouts: ${layout} needs more clients than rooms, and a room at least`);
    return { clients, rooms };
  });
}

/** Waits `seconds` idle, measuring the servers' CPU over the wait. */
async function idleFor(options, seconds) {
  const measured = new CpuWindow({ pids: options.serverPid, trees: options.serverTree }).start();
  await sleep(seconds * 1000);
  return measured.stop();
}

/**
 * [pid, a room's own RSS in KiB] for each process: the growth per room with one connection
 * (before -> oneEach, `rooms` rooms) less the growth per further connection (oneEach -> full,
 * `more` connections).
 */
function roomAlone(before, oneEach, full, rooms, more) {
  return full.map((sample, i) => [sample.pid, (oneEach[i].rss - before[i].rss) / rooms - (sample.rss - oneEach[i].rss) / more]);
}

async function measureLayout(options, { clients: count, rooms: roomCount }) {
  const report = new Report(options, `idle providers, ${count} in ${roomCount} rooms`);
  const rooms = [];
  for (let i = 0; i < roomCount; i++) rooms.push(await newRoom(options));
  const syncTimeout = (n) => 60_000 + (1000 * n) / options.connectRate;
  // A client joins and leaves a room of its own first, so that what a server does once (its
  // first room, its first socket) is not counted as the layout's.
  const warmup = new Client(options, await newRoom(options), { index: count });
  await allSynced([warmup], syncTimeout(1), 'the warm-up client');
  warmup.close();
  await sleep(1000);
  const before = sampleMemory(options);

  let started = performance.now();
  const firsts = await openStaggered(roomCount, options.connectRate, (i) => new Client(options, rooms[i], { index: i }));
  await allSynced(firsts, syncTimeout(roomCount), `one client in each of ${roomCount} rooms`);
  const firstsMs = performance.now() - started;
  await idleFor(options, options.idle);
  const oneEach = sampleMemory(options);

  started = performance.now();
  const rest = await openStaggered(count - roomCount, options.connectRate, (i) => new Client(options, rooms[i % roomCount], { index: roomCount + i }));
  const everyone = [...firsts, ...rest];
  await allSynced(rest, syncTimeout(count - roomCount), `the other ${count - roomCount} clients`);
  const restMs = performance.now() - started;
  const framesBefore = frameCounts(everyone);
  const idleCpu = await idleFor(options, options.idle);
  const framesDuringIdle = framesText(frameCounts(everyone), framesBefore);
  const full = sampleMemory(options);
  const clientRss = process.memoryUsage().rss;

  const connections = connectionLine(everyone);
  for (const client of everyone) client.close();
  await sleep(options.idle * 1000);
  const after = sampleMemory(options);

  const perClient = count / roomCount;
  report.lines([
    ['url', `${shownUrl(options, rooms[0])} and ${roomCount - 1} more rooms (${options.roomsApi ? 'each made by POST /rooms' : 'made-up names'})`],
    ['clients', `${count} Y.Docs with a stock WebsocketProvider each, ${perClient.toFixed(perClient % 1 ? 1 : 0)} per room; awareness ${options.awareness ? 'on (user + cursor)' : 'off'}; opened at ${options.connectRate}/s`],
    extensionsLine(),
    ['memory before', memoryText(before)],
    [`${roomCount} rooms × 1`, `${growthText(before, oneEach, roomCount, 'room')} (synced in ${(firstsMs / 1000).toFixed(1)} s, sampled ${options.idle} s later)`],
    [`+ ${count - roomCount} clients`, `${growthText(oneEach, full, count - roomCount, 'connection')} (synced in ${(restMs / 1000).toFixed(1)} s, sampled ${options.idle} s later)`],
    [`all ${count} clients`, growthText(before, full, count, 'connection')],
    ['a room alone', `${roomAlone(before, oneEach, full, roomCount, count - roomCount).map(([pid, kib]) => `pid ${pid} RSS ${kib.toFixed(1)} KiB`).join('; ')} (per room with 1 connection − per more connection)`],
    ['memory with all', memoryText(full)],
    [`after they left`, `${growthText(before, after, count, 'connection')} compared with before (${options.idle} s after they left)`],
    ['frames while idle', `the ${count} clients received in ${idleCpu.seconds.toFixed(1)} s: ${framesDuringIdle}`],
    ...cpuLines(idleCpu).map(([key, value]) => [key.replace('measured window', 'idle window'), value.replace('measured window', `idle window with ${count} clients`)]),
    ['load generator RSS', `${(clientRss / 2 ** 20).toFixed(0)} MiB with ${count} clients open`],
    connections,
  ]);
  console.log();

  // The summary's figures are the first memory process's RSS.
  const rss = (samples) => samples[0].rss;
  const kib = (grown, per) => ((grown) / per).toFixed(1);
  report.summary(`idle KiB per room with 1 connection (${roomCount} rooms)`, kib(rss(oneEach) - rss(before), roomCount));
  report.summary(`idle KiB per more connection (${count} in ${roomCount} rooms)`, kib(rss(full) - rss(oneEach), count - roomCount));
  report.summary(`idle KiB per room alone (${roomCount} rooms; the two rows above subtracted)`, roomAlone(before, oneEach, full, roomCount, count - roomCount)[0][1].toFixed(1));
  report.summary(`KiB per connection still held after leaving (${count} in ${roomCount})`, kib(rss(after) - rss(before), count));
  if (idleCpu.servers.length) {
    report.summary(`idle server CPU, % of a core (${count} in ${roomCount})`, ((100 * idleCpu.serverTotal) / idleCpu.seconds).toFixed(1));
  }
}

export async function main(argv) {
  const options = parseOptions(argv, usage, OPTIONS);
  if (!options.memoryPid.length) throw new Error('idle needs --memory-pid (the server process whose memory is measured)');
  for (const layout of parseLayouts(options.layouts)) await measureLayout(options, layout);
  return 0;
}
