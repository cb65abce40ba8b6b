// What the modes share: the command line, rooms, IDE-like clients (a Y.Doc with the stock
// WebsocketProvider and awareness), bounded waits, percentiles and the report (room-load's
// "key  value" lines, plus rows for the side-by-side summary, see summary.mjs).

import fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as Y from 'yjs';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import { Awareness } from 'y-protocols/awareness';

import { importIdeModule } from '../../frontend/node-import.mjs';
import { processMemory, processStat } from './procfs.mjs';

export { Y };

// The IDE's presence rules, for --ide-presence: only its own awareness, renewals in step.
const presence = await importIdeModule('presence');

// The Y.Text the clients edit: the IDE keeps each language's source in `source:{language}`.
export const TEXT_NAME = 'source:python';

// ---------------------------------------------------------------------------------------------
// The command line

/** Options every mode takes (node:util parseArgs spec), with their help text. */
const COMMON_OPTIONS = {
  url: { type: 'string', help: 'the rooms WebSocket base, e.g. ws://127.0.0.1:8787/rooms (the provider opens {url}/{room})' },
  'rooms-api': { type: 'string', help: 'make rooms with POST {rooms-api}/rooms and connect with their edit token (the edge); without it, rooms get made-up names (@y/websocket-server)' },
  'no-awareness': { type: 'boolean', help: 'clients publish no awareness state' },
  'ide-presence': { type: 'boolean', help: "clients send only their own awareness and renew it in step, as the IDE does (frontend/src/presence.ts); without it, the stock provider's behaviour" },
  label: { type: 'string', help: 'the title of the report' },
  'server-pid': { type: 'string', multiple: true, help: 'a server process whose CPU is measured (repeatable)' },
  'server-tree': { type: 'string', multiple: true, help: 'a process and all its descendants, e.g. wrangler and its workerd (repeatable)' },
  'memory-pid': { type: 'string', multiple: true, help: "a server process whose memory is sampled (repeatable); the first is the one the summary rows use" },
  summary: { type: 'string', help: 'append this run\'s key figures to this file (JSON lines, read by summary.mjs)' },
  server: { type: 'string', help: 'the summary column these figures go in, e.g. "edge via wrangler dev"' },
};

/**
 * Parses `argv` for a mode: COMMON_OPTIONS plus the mode's own `options` ({name: {type:
 * 'number'|'string'|'boolean', default, help}}). Numbers are checked; `--url` is required.
 * Prints `usage` and the options and exits on --help or a mistake.
 */
export function parseOptions(argv, usage, options) {
  const spec = { ...COMMON_OPTIONS, ...options, help: { type: 'boolean', help: 'this text' } };
  const help = () => [
    usage,
    ...Object.entries(spec).map(([name, o]) => `  --${name}${o.type === 'boolean' ? '' : ` ${o.type === 'number' ? 'N' : 'VALUE'}`}`.padEnd(24) +
      `${o.help}${o.default !== undefined ? ` (default ${o.default})` : ''}`),
  ].join('\n');
  const fail = (message) => {
    process.stderr.write(`${message}\n\n${help()}\n`);
    process.exit(64);
  };
  let values;
  try {
    const parserSpec = Object.fromEntries(Object.entries(spec).map(([name, o]) =>
      [name, { type: o.type === 'boolean' ? 'boolean' : 'string', multiple: o.multiple ?? false }]));
    ({ values } = parseArgs({ args: argv, options: parserSpec, strict: true, allowPositionals: false }));
  } catch (error) {
    fail(error.message);
  }
  if (values.help) {
    process.stdout.write(`${help()}\n`);
    process.exit(0);
  }
  const parsed = {};
  for (const [name, o] of Object.entries(spec)) {
    const key = name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    let value = values[name] ?? o.default;
    if (o.type === 'number' && value !== undefined) {
      value = Number(value);
      if (!Number.isFinite(value) || value < 0) fail(`--${name} wants a number >= 0, not "${values[name]}"`);
    }
    parsed[key] = value;
  }
  if (!parsed.url) fail('--url is missing');
  const pids = (list, name) => (list ?? []).map((text) => {
    if (!/^\d+$/.test(text)) fail(`--${name} wants a pid, not "${text}"`);
    if (!processStat(text)) fail(`--${name} ${text}: no such process`);
    return Number(text);
  });
  parsed.serverPid = pids(parsed.serverPid, 'server-pid');
  parsed.serverTree = pids(parsed.serverTree, 'server-tree');
  parsed.memoryPid = pids(parsed.memoryPid, 'memory-pid');
  parsed.awareness = !parsed.noAwareness;
  if (parsed.summary && !parsed.server) fail('--summary needs --server (the column its figures go in)');
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Rooms

let roomsMade = 0;

/** A new room: {name, token}. With a rooms API (the edge) by `POST /rooms`, else a made-up name. */
export async function newRoom(options) {
  roomsMade += 1;
  if (!options.roomsApi) return { name: `bench-${Date.now()}-${process.pid}-${roomsMade}`, token: null };
  let response;
  try {
    response = await fetch(`${options.roomsApi}/rooms`, { method: 'POST' });
  } catch (error) {
    throw new Error(`POST ${options.roomsApi}/rooms failed: ${error.cause?.message ?? error.message}`);
  }
  const body = await response.text();
  if (response.status !== 201) throw new Error(`POST ${options.roomsApi}/rooms answered HTTP ${response.status}: ${body}`);
  const { room, edit_token: token } = JSON.parse(body);
  if (!room || !token) throw new Error(`POST ${options.roomsApi}/rooms: no room and edit_token in the answer`);
  return { name: room, token };
}

/** The room's socket URL as the provider builds it (the token is never printed: see shownUrl). */
export function roomUrl(options, room) {
  return `${options.url}/${room.name}${room.token ? `?token=${encodeURIComponent(room.token)}` : ''}`;
}

export function shownUrl(options, room) {
  return `${options.url}/${room.name}${room.token ? '?token=<token>' : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Clients

// The Sec-WebSocket-Extensions answer to the first socket opened: the `ws` client offers
// permessage-deflate by default, as browsers do, and the server decides.
let negotiatedExtensions = null;

/** The `ws` client with its defaults, counting what each socket receives and the frames it sends. */
class CountingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    this.bytesReceived = 0;
    this.framesSent = 0;
    this.once('upgrade', (response) => {
      negotiatedExtensions ??= response.headers['sec-websocket-extensions'] ?? 'none';
    });
    this.on('message', (data) => {
      this.bytesReceived += data.byteLength;
    });
  }

  send(data, ...rest) {
    this.framesSent += 1;
    return super.send(data, ...rest);
  }
}

/** The report line for the negotiated extensions (after at least one socket opened). */
export function extensionsLine() {
  return ['ws extensions', `${negotiatedExtensions ?? '? (no socket opened)'} (the server's answer to the ws client's default offer, permessage-deflate; client_max_window_bits)`];
}

const COLORS = ['#e5484d', '#f76b15', '#d6a100', '#30a46c', '#12a594', '#0090ff', '#6e56cf', '#ab4aba', '#d6409f'];

/**
 * One client as the IDE runs it (frontend/src/room.ts): a Y.Doc, the stock WebsocketProvider
 * with the room's token, and awareness holding `user` and a `cursor` in the text. Every
 * client stands for another browser, so the providers' BroadcastChannel (which node has, and
 * which would let providers of one process sync without the server) is off.
 */
export class Client {
  constructor(options, room, { index = 0, doc = new Y.Doc() } = {}) {
    this.doc = doc;
    this.text = doc.getText(TEXT_NAME);
    const awareness = new Awareness(doc);
    if (options.awareness) {
      const color = COLORS[index % COLORS.length];
      awareness.setLocalState({ user: { name: `Bench ${index}`, color, colorLight: `${color}33` } });
      this.moveCursor(0, awareness);
    } else {
      // Before the provider exists: it then never announces this client (see its onopen).
      awareness.setLocalState(null);
    }
    this.connects = 0;
    this.closeCodes = [];
    this.frames = new Map(); // message type -> frames received
    this.bytesOfClosedSockets = 0;
    this.framesOfClosedSockets = 0;
    this.provider = new WebsocketProvider(options.url, room.name, doc, {
      WebSocketPolyfill: CountingWebSocket,
      params: room.token ? { token: room.token } : {},
      awareness,
      disableBc: true,
      maxBackoffTime: 4000, // as the IDE
    });
    if (options.awareness && options.idePresence) presence.quietPresence(this.provider);
    // The provider's own per-instance handler table: count each frame by message type.
    this.provider.messageHandlers = this.provider.messageHandlers.map((handle, type) => (...args) => {
      this.frames.set(type, (this.frames.get(type) ?? 0) + 1);
      return handle(...args);
    });
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') this.connects += 1;
    });
    // Why a socket could not open (refused, HTTP 401/403...): the provider retries silently.
    this.provider.on('connection-error', (event) => {
      this.lastError = event?.message || 'socket error';
    });
    this.provider.on('connection-close', (event, provider) => {
      if (!this.leaving) this.closeCodes.push(event?.code ?? 'no frame in 30 s');
      this.bytesOfClosedSockets += provider.ws?.bytesReceived ?? 0;
      this.framesOfClosedSockets += provider.ws?.framesSent ?? 0;
    });
    // The provider's first 'synced' event is its first sync (synced starts false).
    this.synced = new Promise((resolve) => this.provider.once('synced', resolve));
  }

  get awareness() {
    return this.provider.awareness;
  }

  /**
   * Puts the cursor at `index` the way y-codemirror.next does: a relative position, published
   * only when it changed (typing moves the caret but keeps its relative position).
   */
  moveCursor(index, awareness = this.awareness) {
    const state = awareness.getLocalState();
    if (state === null) return;
    const position = Y.createRelativePositionFromTypeIndex(this.text, index);
    const current = state.cursor ? Y.createRelativePositionFromJSON(state.cursor.anchor) : null;
    if (current && Y.compareRelativePositions(current, position)) return;
    awareness.setLocalStateField('cursor', { anchor: position, head: position });
  }

  /** Bytes received on every socket this client opened. */
  get bytesReceived() {
    return this.bytesOfClosedSockets + (this.provider.ws?.bytesReceived ?? 0);
  }

  /** Frames sent on every socket this client opened. */
  get framesSent() {
    return this.framesOfClosedSockets + (this.provider.ws?.framesSent ?? 0);
  }

  /** Leaves as a closing tab does (the provider sends its awareness removal), then frees all. */
  close() {
    this.leaving = true;
    this.provider.destroy();
    this.doc.destroy(); // also ends the Awareness and its timer
  }
}

/** Totals over clients of what tells of trouble: reconnects and server-side closes. */
export function connectionLine(clients) {
  const reconnects = clients.reduce((n, c) => n + Math.max(0, c.connects - 1), 0);
  const codes = new Map();
  for (const client of clients) for (const code of client.closeCodes) codes.set(code, (codes.get(code) ?? 0) + 1);
  const closes = [...codes].map(([code, n]) => `${n} × ${code}`).join(', ') || 'none';
  return ['connections', `${clients.length} providers; reconnects ${reconnects}; sockets closed before the end: ${closes}`];
}

/** Frames received so far by all of `clients`: message type -> count. */
export function frameCounts(clients) {
  const total = new Map();
  for (const client of clients) for (const [type, n] of client.frames) total.set(type, (total.get(type) ?? 0) + n);
  return total;
}

/** "sync 12, awareness 3": the frames of `counts` less those of an earlier `since`. */
export function framesText(counts, since = new Map()) {
  const names = ['sync', 'awareness', 'auth', 'query awareness'];
  return [...counts].map(([type, n]) => `${names[type] ?? `type ${type}`} ${n - (since.get(type) ?? 0)}`).join(', ') || 'none';
}

/**
 * Opens `count` clients at `perSecond` (connection bursts are not what is measured), calling
 * make(i) for each; returns them.
 */
export async function openStaggered(count, perSecond, make) {
  const clients = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / perSecond;
    while (due > performance.now()) await sleep(due - performance.now());
    clients.push(make(i));
  }
  return clients;
}

/** "; last socket error: ..." if any of `clients` saw one, else "". */
export function socketErrorText(clients) {
  const failed = clients.find((client) => client.lastError);
  return failed ? `; last socket error: ${failed.lastError}` : '';
}

/** Waits until every client has synced; fails naming how many did not within `timeoutMs`. */
export async function allSynced(clients, timeoutMs, what) {
  let done = 0;
  const counted = clients.map((client) => client.synced.then(() => (done += 1)));
  await withTimeout(Promise.all(counted), timeoutMs,
    () => `${what}: ${clients.length - done} of ${clients.length} providers not synced${socketErrorText(clients)}`);
}

// ---------------------------------------------------------------------------------------------
// Time, waiting, figures

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves `promise`, or rejects with `describe()`'s words after `timeoutMs`. */
export function withTimeout(promise, timeoutMs, describe) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${describe()} after ${(timeoutMs / 1000).toFixed(0)} s`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
}

export const ms = (value) => (Number.isFinite(value) ? value.toFixed(2) : '-');

/** Memory of each --memory-pid process now: [{pid, comm, rss, pss, privateDirty}] (KiB). */
export function sampleMemory(options) {
  return options.memoryPid.map((pid) => ({ pid, comm: processStat(pid)?.comm ?? '?', ...processMemory(pid) }));
}

const mib = (kib) => (kib === null || kib === undefined ? '?' : (kib / 1024).toFixed(1));

/** "pid 12 (workerd) RSS 135.2 MiB, PSS 130.0, private dirty 120.1" for each sampled process. */
export function memoryText(samples) {
  return samples.map((s) => `pid ${s.pid} (${s.comm}) RSS ${mib(s.rss)} MiB, PSS ${mib(s.pss)}, private dirty ${mib(s.privateDirty)}`).join('; ');
}

/**
 * The growth from samples `a` to `b` for each process, in KiB, and per `unit` when given
 * `per` units: "pid 12 (workerd) RSS +1234 KiB (12.3 per connection), PSS ..., private dirty ...".
 */
export function growthText(a, b, per, unit) {
  const one = (x, y) => {
    if (x === null || y === null) return '?';
    const grown = `${y - x >= 0 ? '+' : ''}${y - x} KiB`;
    return per ? `${grown} (${((y - x) / per).toFixed(1)} per ${unit})` : grown;
  };
  return b.map((after, i) => {
    const before = a[i];
    return `pid ${after.pid} (${after.comm}) RSS ${one(before.rss, after.rss)}, PSS ${one(before.pss, after.pss)}, private dirty ${one(before.privateDirty, after.privateDirty)}`;
  }).join('; ');
}

// ---------------------------------------------------------------------------------------------
// The report

/**
 * room-load's format: "== label: title", then "key (padded)  value" lines; and the cells of
 * the side-by-side summary, appended to --summary.
 */
export class Report {
  constructor(options, title) {
    this.options = options;
    console.log(`== ${options.label ? `${options.label}: ` : ''}${title}`);
  }

  line(key, value) {
    console.log(`${key.padEnd(20)}${value}`);
  }

  lines(pairs) {
    for (const [key, value] of pairs) this.line(key, value);
  }

  /** One cell of the side-by-side table: `row` of this server's column. */
  summary(row, value) {
    if (!this.options.summary) return;
    fs.appendFileSync(this.options.summary, `${JSON.stringify({ server: this.options.server, row, value })}\n`);
  }
}
