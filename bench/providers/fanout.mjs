// fanout: 1 writer + N readers in one room, every one an IDE-like client (Client: Y.Doc,
// stock WebsocketProvider, awareness on unless --no-awareness). The writer types a marker
// "<seq>" at the end of the text RATE times a second for SECONDS after WARMUP; each reader
// observes its Y.Text and timestamps every marker it sees arrive. Latency = arrival − send,
// both on this process's clock. The window is long enough by default (20 s) to take in the
// awareness heartbeat every provider sends every 15 s, which is part of what is measured.
// The writer's cursor follows its typing as y-codemirror.next publishes it: at the end of the
// text its relative position does not change, so typing alone sends no awareness frame.

import {
  Client, Report, allSynced, connectionLine, extensionsLine, frameCounts, framesText, ms, newRoom,
  openStaggered, parseOptions, percentile, shownUrl, sleep,
} from './common.mjs';
import { CpuWindow, cpuLines } from './procfs.mjs';

export const usage = 'usage: node bench/providers/main.mjs fanout --url WS [--rooms-api HTTP] [--readers 49] [--rate 50] [--seconds 20] [--warmup 2] [--no-awareness] [--server-tree PID]...';

const OPTIONS = {
  readers: { type: 'number', default: 49, help: 'readers besides the writer' },
  rate: { type: 'number', default: 50, help: 'edits per second' },
  seconds: { type: 'number', default: 20, help: 'measured seconds (CPU is measured over them)' },
  warmup: { type: 'number', default: 2, help: 'seconds of edits before the measured ones' },
  drain: { type: 'number', default: 5, help: 'seconds to wait after the last edit for late deliveries' },
  'connect-rate': { type: 'number', default: 100, help: 'providers opened per second' },
};

const MARKER = /<(\d+)>/g;

export async function main(argv) {
  const options = parseOptions(argv, usage, OPTIONS);
  if (options.rate <= 0 || options.readers < 1) throw new Error('fanout needs --rate > 0 and --readers >= 1');
  const room = await newRoom(options);
  const warmupEdits = Math.round(options.warmup * options.rate);
  const measuredEdits = Math.round(options.seconds * options.rate);
  const total = warmupEdits + measuredEdits;
  const expected = measuredEdits * options.readers;

  const joinStarted = performance.now();
  const readers = await openStaggered(options.readers, options.connectRate, (i) => new Client(options, room, { index: i + 1 }));
  const writer = new Client(options, room, { index: 0 });
  const everyone = [writer, ...readers];
  await allSynced(everyone, 60_000 + (1000 * everyone.length) / options.connectRate, 'joining the room');
  const joinMs = performance.now() - joinStarted;

  // Arrival times per reader and sequence number (NaN: not arrived).
  const sentAt = new Float64Array(total).fill(NaN);
  const arrivals = readers.map(() => new Float64Array(total).fill(NaN));
  let delivered = 0;
  let warmupDelivered = 0;
  let extra = 0;
  let allDelivered;
  const everythingArrived = new Promise((resolve) => (allDelivered = resolve));
  readers.forEach((reader, r) => reader.text.observe((event) => {
    const now = performance.now();
    for (const op of event.delta) {
      if (typeof op.insert !== 'string') continue;
      for (const match of op.insert.matchAll(MARKER)) {
        const seq = Number(match[1]);
        if (seq >= total || !Number.isNaN(arrivals[r][seq])) {
          extra += 1;
          continue;
        }
        arrivals[r][seq] = now;
        if (seq < warmupEdits) warmupDelivered += 1;
        else if ((delivered += 1) === expected) allDelivered();
      }
    }
  }));

  const period = 1000 / options.rate;
  const lateness = [];
  const measured = new CpuWindow({ pids: options.serverPid, trees: options.serverTree });
  let framesBefore;
  const first = performance.now() + 100;
  for (let seq = 0; seq < total; seq++) {
    const due = first + seq * period;
    while (due > performance.now()) await sleep(due - performance.now());
    if (seq === warmupEdits) {
      measured.start();
      framesBefore = frameCounts(readers);
    }
    const now = performance.now();
    lateness.push(now - due);
    sentAt[seq] = now;
    writer.text.insert(writer.text.length, `<${seq}>`);
    writer.moveCursor(writer.text.length);
  }
  const lastSent = performance.now();
  await Promise.race([everythingArrived, sleep(options.drain * 1000)]);
  const cpu = measured.stop();
  const framesAfter = frameCounts(readers);

  const latencies = [];
  for (const arrived of arrivals) {
    for (let seq = warmupEdits; seq < total; seq++) {
      if (!Number.isNaN(arrived[seq])) latencies.push(arrived[seq] - sentAt[seq]);
    }
  }
  latencies.sort((a, b) => a - b);
  lateness.sort((a, b) => a - b);
  const lost = expected - delivered;
  const mean = latencies.reduce((a, b) => a + b, 0) / latencies.length;
  const awarenessText = options.awareness ? 'on (user + cursor; y-protocols re-announces it every 15 s)' : 'off (no local state)';

  const report = new Report(options, `providers fan-out, awareness ${options.awareness ? 'on' : 'off'}`);
  report.lines([
    ['url', shownUrl(options, room)],
    ['clients', `1 writer + ${options.readers} readers, each a Y.Doc with a stock WebsocketProvider; awareness ${awarenessText}; all synced in ${joinMs.toFixed(0)} ms`],
    extensionsLine(),
    ['edits sent', `${measuredEdits} measured + ${warmupEdits} warm-up at ${options.rate} edits/s; measured sends span ${((lastSent - sentAt[warmupEdits]) / 1000).toFixed(2)} s; text ${writer.text.length} chars at the end`],
    ['send lateness', `p50 ${ms(percentile(lateness, 50))} ms, p99 ${ms(percentile(lateness, 99))} ms, max ${ms(percentile(lateness, 100))} ms (send time vs schedule)`],
    ['deliveries', `expected ${expected}, received ${delivered}, lost ${lost} (warm-up: ${warmupDelivered} of ${warmupEdits * options.readers})`],
    ['unexpected', `extra or repeated markers ${extra}`],
    ['frames', `readers received in the window: ${framesText(framesAfter, framesBefore)}; writer in all: ${framesText(writer.frames)}`],
    connectionLine(everyone),
    ['fan-out latency ms', latencies.length
      ? `p50 ${ms(percentile(latencies, 50))}  p90 ${ms(percentile(latencies, 90))}  p99 ${ms(percentile(latencies, 99))}  max ${ms(percentile(latencies, 100))}  (mean ${ms(mean)}, n ${latencies.length})`
      : 'no deliveries'],
    ...cpuLines(cpu),
  ]);
  const perEdit = (1e6 * cpu.serverTotal) / measuredEdits;
  if (cpu.servers.length) {
    report.line('server CPU per edit', `${perEdit.toFixed(0)} µs (${((1e6 * cpu.serverTotal) / Math.max(1, delivered)).toFixed(1)} µs per delivery; heartbeats and all)`);
  }
  for (const client of everyone) client.close();

  const awareness = options.awareness ? 'on' : 'off';
  const failed = lost > 0 || extra > 0;
  report.summary(`providers, awareness ${awareness}: p50 / p99 ms`, failed
    ? `FAIL (lost ${lost}, extra ${extra})`
    : `${ms(percentile(latencies, 50))} / ${ms(percentile(latencies, 99))}`);
  if (cpu.servers.length) report.summary(`providers, awareness ${awareness}: server CPU µs per edit`, perEdit.toFixed(0));
  report.line('RESULT', failed ? `FAIL: lost ${lost}, extra ${extra}` : 'ok');
  console.log();
  return failed ? 2 : 0;
}
