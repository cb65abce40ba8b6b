// wakes: what an idle room of N people costs the server while nobody types. The clients join
// one room --spread s apart (people arrive over time, so their 15 s awareness renewals do not
// line up), then stay idle for --idle s. Reports, per minute of idle: the frames the clients
// sent (each one is an event the server handles: for the edge, a Durable Object wake if it had
// hibernated), the frames they received, the server's CPU; and, given the edge's log (--log, the
// wrangler log the edge writes its JSON lines to), the room's wakes from hibernation (`room
// woke`), document reads (`document loaded`) and alarms set (`alarm set`) in that window.
// --ide-presence runs the clients with the IDE's presence rules (frontend/src/presence.ts:
// renewals in step, only one's own entry sent) instead of the stock provider's.

import fs from 'node:fs';

import {
  Client, Report, allSynced, connectionLine, frameCounts, framesText, newRoom, parseOptions,
  shownUrl, sleep,
} from './common.mjs';
import { CpuWindow, cpuLines } from './procfs.mjs';

export const usage = 'usage: node bench/providers/main.mjs wakes --url WS [--rooms-api HTTP] [--clients 10] [--spread 1.5] [--idle 120] [--log FILE] [--server-tree PID]...';

const OPTIONS = {
  clients: { type: 'number', default: 10, help: 'people in the room' },
  spread: { type: 'number', default: 1.5, help: 'seconds between two joins' },
  idle: { type: 'number', default: 120, help: 'seconds measured idle, after everyone joined and one renewal period passed' },
  log: { type: 'string', default: '', help: "the edge's log file: counts the room's wakes, document reads and alarms" },
};

/** The room's JSON log lines with `message` in `text`. */
function logged(text, room, message) {
  return text.split('\n').filter((line) => line.includes(`"message":"${message}"`) && line.includes(`"room":"${room.name}"`)).length;
}

/** What the server handled: every frame the clients sent (counted at the socket). */
function framesSent(clients) {
  return clients.reduce((n, client) => n + client.framesSent, 0);
}

export async function main(argv) {
  const options = parseOptions(argv, usage, OPTIONS);
  const room = await newRoom(options);
  const clientsAre = options.idePresence ? 'IDE presence' : 'stock providers';
  const report = new Report(options, `an idle room of ${options.clients} (${clientsAre}), joined ${options.spread} s apart`);
  const clients = [];
  for (let i = 0; i < options.clients; i++) {
    clients.push(new Client(options, room, { index: i }));
    await sleep(options.spread * 1000);
  }
  await allSynced(clients, 60_000, `${options.clients} clients`);
  await sleep(16_000); // past one renewal period: what follows is the steady state
  const logBefore = options.log ? fs.readFileSync(options.log, 'utf8').length : 0;
  const sentBefore = framesSent(clients);
  const receivedBefore = frameCounts(clients);
  const cpu = new CpuWindow({ pids: options.serverPid, trees: options.serverTree }).start();
  await sleep(options.idle * 1000);
  const cpuUsage = cpu.stop();
  const perMinute = (n) => ((n * 60) / options.idle).toFixed(1);
  const sent = framesSent(clients) - sentBefore;
  report.lines([
    ['url', shownUrl(options, room)],
    ['idle', `${options.idle} s, ${options.clients} providers with awareness, nobody typing`],
    ['frames sent', `${sent} (${perMinute(sent)}/min): the events the server handled`],
    ['frames received', framesText(frameCounts(clients), receivedBefore)],
  ]);
  report.summary(`idle room of ${options.clients}, ${clientsAre}: frames in per minute`, perMinute(sent));
  if (options.log) {
    const text = fs.readFileSync(options.log, 'utf8').slice(logBefore);
    const [woke, loaded, alarms] = ['room woke', 'document loaded', 'alarm set'].map((m) => logged(text, room, m));
    report.line('edge log', `wakes from hibernation ${woke} (${perMinute(woke)}/min), document reads ${loaded}, alarms set ${alarms} (${perMinute(alarms)}/min)`);
    report.summary(`idle room of ${options.clients}, ${clientsAre}: wakes / alarms per minute`, `${perMinute(woke)} / ${perMinute(alarms)}`);
  }
  report.lines(cpuLines(cpuUsage));
  report.lines([connectionLine(clients)]);
  for (const client of clients) client.close();
  return 0;
}
