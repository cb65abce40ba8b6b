// The end-to-end harness for CodeBox rooms: runs the real edge Worker under `wrangler dev`
// and drives it with real Yjs clients (the stock y-websocket provider and raw `ws` sockets).
//
// - prepareEdge(): builds the edge once (scripts/build-edge.sh, a no-op when unchanged) and
//   freezes a copy of edge/build/ plus a wrangler.toml without the [build] step, so a rebuild
//   someone else starts mid-run never reloads the Worker under a test.
// - Edge: `wrangler dev --local` on a free port with its own --persist-to dir; start, stop
//   (the whole process group: wrangler and its workerd), kill (SIGKILL), restart on the same
//   persist dir, and its captured log; edge.runtime() finds the runtime workerd's own port,
//   behind wrangler's dev proxy (the production path).
// - Rooms: edge.createRoom() (POST /rooms, from a client address of its own, so the per-client
//   limit on room creation never trips other tests) returns {name, editToken, viewToken, ...}.
// - Clients: provider() (stock WebsocketProvider), RawClient (records every frame and the close),
//   frame encoders/decoders (lib0 encoding + y-protocols), waitFor(predicate, timeoutMs). Both
//   connect with the room's edit token unless given another (`token`).
//
// Used by the *.test.mjs files next to it; run them with `node --test e2e/`.
// CODEBOX_E2E_KEEP=1 keeps the temp dirs (persist dir, wrangler log) for inspection.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { after, afterEach, before } from 'node:test';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as Y from 'yjs';
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import * as syncProtocol from 'y-protocols/sync';
import * as awarenessProtocol from 'y-protocols/awareness';

import { rng } from './rng.mjs';

export { Y, WebSocket, WebsocketProvider, awarenessProtocol, rng };

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WRANGLER = path.join(REPO, 'node_modules', '.bin', 'wrangler');
const KEEP = process.env.CODEBOX_E2E_KEEP === '1';

// ---------------------------------------------------------------------------------------------
// Waiting

/** Polls `predicate` (sync or async) until it returns a truthy value, which is returned. */
export async function waitFor(predicate, timeoutMs = 10_000, what = 'condition', intervalMs = 10) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Resolves `promise`, or rejects after `timeoutMs`. */
export function withTimeout(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Names and randomness

let clientCounter = 0;
/**
 * A client address of its own (in 198.18.0.0/15, the benchmarking range). `wrangler dev` passes
 * a client's `CF-Connecting-IP` through (Cloudflare overwrites it), so tests can be many clients.
 */
export function uniqueClientIp() {
  clientCounter += 1;
  const n = (process.pid * 1000 + clientCounter) % 131072;
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** A fresh room's token secret for one wrangler (ROOM_TOKEN_SECRET in its .dev.vars). */
function randomSecret() {
  return crypto.randomBytes(32).toString('hex');
}


// ---------------------------------------------------------------------------------------------
// Building and freezing the edge

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Runs `fn` holding a machine-wide lock (test files may run in parallel). */
function withBuildLock(fn) {
  const lock = path.join(os.tmpdir(), 'codebox-e2e-build.lock');
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      let owner = NaN;
      try {
        owner = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {}
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`edge build lock ${lock} held too long`);
      sleepSync(250);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

function readStamp() {
  try {
    return fs.readFileSync(path.join(REPO, 'edge', 'build', '.inputs'), 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Builds the edge if needed and freezes a copy of it under `runDir`; returns the path of a
 * wrangler config that serves that copy (the repo's wrangler.toml minus [build], main rewritten).
 */
export function prepareEdge(runDir) {
  const buildDir = path.join(REPO, 'edge', 'build');
  const frozen = path.join(runDir, 'edge-build');
  for (let attempt = 1; ; attempt++) {
    const build = withBuildLock(() => spawnSync('bash', ['scripts/build-edge.sh'], {
      cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
    }));
    let problem;
    if (build.status !== 0) {
      problem = new Error(`scripts/build-edge.sh failed (${build.status}):\n${build.stdout}\n${build.stderr}`);
    } else {
      // Someone else may rebuild edge/build at the same time: copy, and accept the copy only
      // if the build stamp did not change while copying.
      try {
        const before = readStamp();
        fs.rmSync(frozen, { recursive: true, force: true });
        fs.cpSync(buildDir, frozen, { recursive: true, filter: (src) => path.basename(src) !== '.tmp' });
        const complete = ['index.js', 'index_bg.wasm', 'worker/shim.mjs'].every((f) => fs.existsSync(path.join(frozen, f)));
        if (before && before === readStamp() && complete) break;
        problem = new Error('edge/build changed while it was copied (someone else is building?)');
      } catch (error) {
        problem = error;
      }
    }
    if (attempt >= 3) throw problem;
    sleepSync(3000);
  }
  const repoConfig = fs.readFileSync(path.join(REPO, 'wrangler.toml'), 'utf8');
  const lines = [];
  let inBuild = false;
  for (const line of repoConfig.split('\n')) {
    if (/^\s*\[/.test(line)) inBuild = /^\s*\[build\]\s*$/.test(line);
    if (!inBuild) lines.push(line);
  }
  // [assets] (the IDE): an empty folder of this run's own. These tests use only the Worker's
  // routes, and wrangler reloads when its assets folder changes, as frontend/dist does on rebuilds.
  const assets = path.join(runDir, 'assets');
  fs.mkdirSync(assets, { recursive: true });
  const config = lines.join('\n')
    .replace(/^main\s*=.*$/m, `main = ${JSON.stringify(path.join(frozen, 'worker', 'shim.mjs'))}`)
    .replace(/^directory\s*=.*$/m, `directory = ${JSON.stringify(assets)}`);
  if (!config.includes(frozen)) throw new Error('wrangler.toml has no `main =` line to rewrite');
  const configPath = path.join(runDir, 'wrangler.toml');
  fs.writeFileSync(configPath, config);
  return configPath;
}

// ---------------------------------------------------------------------------------------------
// Processes

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Live (non-zombie) pids in process group `pgid`, from /proc. */
function groupPids(pgid) {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') pids.push(Number(entry));
  }
  return pids;
}

/** Live workerd processes listening on `port` (whatever their group). */
function workerdOnPort(port) {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('workerd') && cmdline.includes(`127.0.0.1:${port}\0`)) {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
        if (state !== 'Z' && state !== 'X') pids.push(Number(entry));
      }
    } catch {}
  }
  return pids;
}

/** TCP ports process `pid` listens on (IPv4 and IPv6), from /proc. */
export function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]);
    } catch {}
  }
  const ports = [];
  for (const table of ['tcp', 'tcp6']) {
    let text;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/); // sl local remote st ... uid timeout inode
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) ports.push(parseInt(f[1].split(':')[1], 16));
    }
  }
  return ports;
}

const liveGroups = new Set();
process.on('exit', () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {}
  }
});

/** One `wrangler dev` serving the edge, with its own persist dir. */
export class Edge {
  constructor(runDir, configPath, vars = {}) {
    this.runDir = runDir;
    this.configPath = configPath;
    this.vars = vars;
    this.persistDir = path.join(runDir, 'persist');
    this.logPath = path.join(runDir, 'wrangler.log');
    this.logText = '';
    this.port = null;
    this.proc = null;
    this.starts = 0;
  }

  /**
   * Builds/freezes the edge and starts wrangler on a fresh persist dir, with a token secret of
   * its own (`.dev.vars` next to its config, as `make dev` keeps one) and `vars` as `--var`s.
   */
  static async launch({ vars = {} } = {}) {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-e2e-'));
    const edge = new Edge(runDir, prepareEdge(runDir), vars);
    fs.writeFileSync(path.join(runDir, '.dev.vars'), `ROOM_TOKEN_SECRET=${randomSecret()}\n`);
    await edge.start();
    return edge;
  }

  get httpBase() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsBase() {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Starts wrangler (again) on the same persist dir, on the previous port when it is free. */
  async start({ timeoutMs = 90_000 } = {}) {
    if (this.proc) throw new Error('edge already running');
    const port = this.port !== null && (await portFreesUp(this.port)) ? this.port : await freePort();
    const inspectorPort = await freePort();
    this.port = port;
    this.starts += 1;
    this.note(`starting wrangler dev on port ${port} (start #${this.starts})`);
    const args = [
      'dev', '--config', this.configPath, '--local', '--ip', '127.0.0.1', '--port', String(port),
      '--inspector-port', String(inspectorPort), '--persist-to', this.persistDir,
      '--show-interactive-dev-session=false',
      ...Object.entries(this.vars).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
    ];
    const proc = spawn(WRANGLER, args, {
      cwd: this.runDir,
      detached: true, // its own process group: stop() kills wrangler and every workerd it spawned
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: 'false',
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
        NO_COLOR: '1',
        FORCE_COLOR: '0',
      },
    });
    this.proc = proc;
    liveGroups.add(proc.pid);
    const logStream = fs.createWriteStream(this.logPath, { flags: 'a' });
    const onData = (chunk) => {
      const text = chunk.toString();
      this.logText += text;
      logStream.write(text);
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.note(`wrangler exited (code ${code}, signal ${signal})`);
        resolve({ code, signal });
      });
    });
    proc.on('close', () => logStream.end());
    let exited = false;
    proc.exited.then(() => {
      exited = true;
    });
    try {
      await waitFor(async () => {
        if (exited) throw Object.assign(new Error('wrangler exited during startup'), { fatal: true });
        // A tokenless request is refused (401) once the Worker runs with its secret.
        const response = await fetch(`${this.httpBase}/rooms/ready-probe`, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        return response.status === 401;
      }, timeoutMs, `wrangler dev to answer on port ${port}`, 100);
    } catch (error) {
      await this.stop({ signal: 'SIGKILL' });
      throw new Error(`${error.message}\n--- wrangler log ---\n${this.tail(80)}`);
    }
  }

  /** Stops wrangler and every process of its group; resolves once none is left. */
  async stop({ signal = 'SIGTERM', timeoutMs = 15_000 } = {}) {
    const proc = this.proc;
    if (!proc) return;
    const pgid = proc.pid;
    this.note(`stopping wrangler (${signal})`);
    try {
      process.kill(-pgid, signal);
    } catch {}
    try {
      await waitFor(() => groupPids(pgid).length === 0, timeoutMs, 'wrangler to exit', 25);
    } catch {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {}
      await waitFor(() => groupPids(pgid).length === 0, 10_000, 'wrangler to die after SIGKILL', 25);
    }
    await withTimeout(proc.exited, 10_000, 'wrangler exit event');
    liveGroups.delete(pgid);
    this.proc = null;
    const strays = workerdOnPort(this.port);
    if (strays.length) throw new Error(`workerd still running on port ${this.port} after stop: pids ${strays.join(', ')}`);
  }

  /** Hard kill: SIGKILL to wrangler and workerd at once, as a crash would. */
  async kill() {
    await this.stop({ signal: 'SIGKILL' });
  }

  async restart(options) {
    await this.stop();
    await this.start(options);
  }

  /**
   * The runtime workerd behind wrangler's dev proxy: `{pid, proxyPid, port, wsBase, httpBase}`.
   * wrangler 4 runs two workerd: its dev proxy, which owns `this.port` and relays every request
   * and WebSocket frame (a hop production does not have), and the runtime holding the Worker
   * and its Durable Objects, which listens on loopback ports of its own; `port` is the one that
   * answers a tokenless `/rooms/probe` with 401 (the Worker's entry). `wsBase`/`httpBase` make
   * the result usable wherever an Edge is (RawClient.url, provider).
   */
  async runtime() {
    if (!this.proc) throw new Error('edge not running');
    let proxyPid;
    const others = [];
    for (const pid of groupPids(this.proc.pid)) {
      let cmdline;
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      } catch {
        continue;
      }
      if (!path.basename(cmdline[0]).startsWith('workerd')) continue;
      if (cmdline.some((arg) => arg.endsWith(`=127.0.0.1:${this.port}`))) proxyPid = pid;
      else others.push(pid);
    }
    for (const pid of others) {
      for (const port of listeningPorts(pid)) {
        try {
          const response = await fetch(`http://127.0.0.1:${port}/rooms/probe`, { signal: AbortSignal.timeout(2000) });
          await response.arrayBuffer();
          if (response.status === 401) {
            return { pid, proxyPid, port, wsBase: `ws://127.0.0.1:${port}`, httpBase: `http://127.0.0.1:${port}` };
          }
        } catch {}
      }
    }
    throw new Error(`no runtime workerd port answering /rooms/probe with 401 (workerd pids ${others.join(', ') || 'none'})`);
  }

  /** Stops and removes the temp dir (kept with CODEBOX_E2E_KEEP=1 or after a failed test). */
  async dispose({ keep = this.failed === true } = {}) {
    await this.stop();
    if (KEEP || keep) {
      process.stderr.write(`e2e: kept ${this.runDir}\n`);
    } else {
      fs.rmSync(this.runDir, { recursive: true, force: true });
    }
  }

  note(line) {
    const text = `[e2e] ${line}\n`;
    this.logText += text;
    try {
      fs.appendFileSync(this.logPath, text);
    } catch {}
  }

  /** The last `lines` lines of the wrangler log. */
  tail(lines = 60) {
    return this.logText.split('\n').slice(-lines).join('\n');
  }

  /**
   * A new room (POST /rooms) made from a client address of its own: {name, editToken,
   * viewToken, editUrl, viewUrl}. `body` is sent as the JSON body when given.
   */
  async createRoom({ body, clientIp = uniqueClientIp() } = {}) {
    const response = await fetch(`${this.httpBase}/rooms`, {
      method: 'POST',
      headers: { 'cf-connecting-ip': clientIp, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`POST /rooms: HTTP ${response.status}: ${text}`);
    return roomOf(JSON.parse(text));
  }

  /** The whole document of `room` as one Yjs v1 update (GET /rooms/{room}/snapshot). */
  async snapshot(room, token = room.editToken) {
    const response = await fetch(`${this.httpBase}/rooms/${room.name}/snapshot`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = new Uint8Array(await response.arrayBuffer());
    if (response.status !== 200) {
      throw new Error(`snapshot of ${room.name}: HTTP ${response.status}: ${Buffer.from(body).toString()}`);
    }
    return body;
  }

  /** Every Durable Object SQLite file under the persist dir (read them with inspectSqlite). */
  sqliteFiles() {
    const found = [];
    const walk = (dir) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith('.sqlite')) found.push(full);
      }
    };
    if (fs.existsSync(this.persistDir)) walk(this.persistDir);
    return found;
  }
}

/** A room handle from the body of POST /rooms, /links or /rotate. */
export function roomOf(body) {
  return { name: body.room, editToken: body.edit_token, viewToken: body.view_token, editUrl: body.edit_url, viewUrl: body.view_url };
}

/**
 * Whether `port` can be listened on again within 5 s. Right after a kill, the clients that
 * reconnect to it may hold it for a moment: the port is in the ephemeral range, and a connect
 * whose own port happens to be the one it dials connects to itself until it gives up.
 */
async function portFreesUp(port) {
  try {
    return await waitFor(() => portIsFree(port), 5_000, `port ${port} to be free`, 100);
  } catch {
    return false;
  }
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The native cargo target folder `make test` builds into (scripts/lib.sh native_target_dir). */
function nativeTargetDir() {
  return execFileSync('bash', ['-c', 'source scripts/lib.sh && native_target_dir'], { cwd: REPO, encoding: 'utf8' }).trim();
}

/**
 * The exec API (exec-lambda, the local server over the embedded SQLite queue and store), with
 * no fleet: what it accepts stays `queued`. Several may share one database (`db`).
 */
export class ExecApi {
  constructor(proc, port, logPath, db) {
    this.proc = proc;
    this.port = port;
    this.logPath = logPath;
    this.db = db;
  }

  /** The job messages waiting in the queue (read with python3's sqlite3). */
  queuedJobs() {
    const script = 'import json, sqlite3, sys\nprint(json.dumps([r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT body FROM jobs ORDER BY seq")]))';
    return JSON.parse(execFileSync('python3', ['-c', script, this.db], { encoding: 'utf8' })).map((body) => JSON.parse(body));
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Builds the binary (debug, as `cargo test` leaves it: a no-op then) and starts it. */
  static async start({ db, env = {}, host = '127.0.0.1' }) {
    const port = await freePort();
    const logPath = `${db}.${port}.log`;
    const proc = spawnBinary('exec-lambda', 'exec-lambda', logPath, {
      CODEBOX_BACKEND: 'embedded',
      CODEBOX_DB: db,
      CODEBOX_EXEC_LISTEN: `${host}:${port}`,
      RUST_LOG: 'warn',
      ...env,
    });
    const api = new ExecApi(proc, port, logPath, db);
    await waitFor(async () => {
      if (proc.exitCode !== null) throw Object.assign(new Error(`exec-lambda exited: ${fs.readFileSync(logPath, 'utf8')}`), { fatal: true });
      const response = await fetch(`${api.url}/v1/languages`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      // 401 is an answer too: a process started with an edge secret refuses this probe.
      return response.ok || response.status === 401;
    }, 60_000, 'the exec API to answer', 100);
    return api;
  }

  async stop() {
    await stopGroup(this.proc, 'exec-lambda');
  }
}

/**
 * The exec fleet (exec-fleet, debug build) over an exec API's embedded queue and store, running
 * programs in real containers (the Docker engine and runner images must be ready:
 * scripts/docker.sh, scripts/images.sh), streaming rooms' runs live into `edgeUrl`.
 */
export class Fleet {
  constructor(proc, logPath) {
    this.proc = proc;
    this.logPath = logPath;
  }

  static async start({ db, edgeUrl, env = {} }) {
    const logPath = `${db}.fleet.${Date.now()}.log`;
    const proc = spawnBinary('codebox-exec-fleet', 'exec-fleet', logPath, {
      CODEBOX_BACKEND: 'embedded',
      CODEBOX_DB: db,
      CODEBOX_EDGE_URL: edgeUrl,
      FLEET_POOL_SIZE: '1',
      FLEET_CONCURRENCY: '4',
      FLEET_POLL_WAIT_MS: '200',
      RUST_LOG: 'info',
      ...env,
    });
    const fleet = new Fleet(proc, logPath);
    await waitFor(() => {
      if (proc.exitCode !== null) throw Object.assign(new Error(`exec-fleet exited: ${fleet.log()}`), { fatal: true });
      return /fleet worker starting/.test(fleet.log());
    }, 120_000, 'the fleet to start', 100);
    return fleet;
  }

  log() {
    return fs.readFileSync(this.logPath, 'utf8');
  }

  async stop() {
    await stopGroup(this.proc, 'exec-fleet');
  }
}

/** Builds `pkg` (debug, or release with CODEBOX_E2E_RELEASE=1, into `make test`'s target folder) and starts its `binary` in a process
 * group of its own, its output appended to `logPath`. */
function spawnBinary(pkg, binary, logPath, env) {
  const target = nativeTargetDir();
  // Benchmarks measure release builds (CODEBOX_E2E_RELEASE=1); tests take what cargo test built.
  const release = process.env.CODEBOX_E2E_RELEASE === '1';
  withBuildLock(() => execFileSync('cargo', ['build', '-q', ...(release ? ['--release'] : []), '-p', pkg], {
    cwd: REPO, stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: target },
  }));
  const log = fs.openSync(logPath, 'a');
  const proc = spawn(path.join(target, release ? 'release' : 'debug', binary), [], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, ...env },
  });
  liveGroups.add(proc.pid);
  return proc;
}

/** SIGTERM to `proc`'s process group; resolves once all of it exited. */
async function stopGroup(proc, name) {
  try {
    process.kill(-proc.pid, 'SIGTERM');
  } catch {}
  await waitFor(() => groupPids(proc.pid).length === 0, 30_000, `${name} to exit`, 25);
  liveGroups.delete(proc.pid);
}

/**
 * Reads a Durable Object SQLite file with python3's sqlite3 (on a copy): table names, row
 * counts, and the stored snapshot and log (reassembled from their parts) when `withData`.
 */
export function inspectSqlite(file, { withData = true } = {}) {
  const copyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-e2e-sqlite-'));
  try {
    for (const suffix of ['', '-wal', '-shm', '-journal']) {
      if (fs.existsSync(file + suffix)) fs.copyFileSync(file + suffix, path.join(copyDir, 'db.sqlite' + suffix));
    }
    const script = `
import base64, json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
out = {"tables": tables}
if "updates" in tables and "snapshot" in tables:
    # The log is the rows of the room's current epoch (edge/src/store.rs); older epochs' rows
    # wait to be overwritten.
    epoch = db.execute("SELECT epoch FROM room WHERE id = 0").fetchone()[0]
    live = "FROM updates WHERE epoch = %d" % epoch
    out["log_rows"] = db.execute("SELECT COUNT(*) " + live).fetchone()[0]
    out["log_entries"] = db.execute("SELECT COUNT(*) " + live + " AND last = 1").fetchone()[0]
    out["log_bytes"] = db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) " + live).fetchone()[0]
    out["updates_rows"] = db.execute("SELECT COUNT(*) FROM updates").fetchone()[0]
    out["snapshot_rows"] = db.execute("SELECT COUNT(*) FROM snapshot").fetchone()[0]
    out["snapshot_bytes"] = db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM snapshot").fetchone()[0]
    if sys.argv[2] == "1":
        out["snapshot"] = base64.b64encode(b"".join(bytes(r[0]) for r in db.execute("SELECT data FROM snapshot ORDER BY part"))).decode()
        entries, current = [], []
        for last, data in db.execute("SELECT last, data " + live + " ORDER BY slot"):
            current.append(bytes(data))
            if last:
                entries.append(base64.b64encode(b"".join(current)).decode())
                current = []
        out["log"] = entries
print(json.dumps(out))
`;
    const stdout = execFileSync('python3', ['-c', script, path.join(copyDir, 'db.sqlite'), withData ? '1' : '0'], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    const out = JSON.parse(stdout);
    out.file = file;
    if (out.snapshot !== undefined) out.snapshot = new Uint8Array(Buffer.from(out.snapshot, 'base64'));
    if (out.log !== undefined) out.log = out.log.map((b) => new Uint8Array(Buffer.from(b, 'base64')));
    return out;
  } finally {
    fs.rmSync(copyDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Frames (y-protocols)

export const MSG_SYNC = 0;
export const MSG_AWARENESS = 1;
export const MSG_AUTH = 2;
export const MSG_QUERY_AWARENESS = 3;
const SYNC_KINDS = ['step1', 'step2', 'update'];

function frame(write) {
  const encoder = encoding.createEncoder();
  write(encoder);
  return encoding.toUint8Array(encoder);
}

/** SyncStep1 carrying `doc`'s state vector (an empty one when no doc is given). */
export function syncStep1Frame(doc = new Y.Doc()) {
  return frame((e) => {
    encoding.writeVarUint(e, MSG_SYNC);
    syncProtocol.writeSyncStep1(e, doc);
  });
}

/** SyncStep2 carrying `update`. */
export function syncStep2Frame(update) {
  return frame((e) => {
    encoding.writeVarUint(e, MSG_SYNC);
    encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep2);
    encoding.writeVarUint8Array(e, update);
  });
}

/** A sync Update message carrying `update` (any bytes: tests send garbage too). */
export function updateFrame(update) {
  return frame((e) => {
    encoding.writeVarUint(e, MSG_SYNC);
    syncProtocol.writeUpdate(e, update);
  });
}

/** Encodes an awareness update payload; each entry is {client, clock, state} or {client, clock, json}. */
export function encodeAwareness(entries) {
  return frame((e) => {
    encoding.writeVarUint(e, entries.length);
    for (const entry of entries) {
      encoding.writeVarUint(e, entry.client);
      encoding.writeVarUint(e, entry.clock);
      encoding.writeVarString(e, entry.json ?? JSON.stringify(entry.state ?? null));
    }
  });
}

/** An awareness message (type 1). */
export function awarenessFrame(entries) {
  return frame((e) => {
    encoding.writeVarUint(e, MSG_AWARENESS);
    encoding.writeVarUint8Array(e, encodeAwareness(entries));
  });
}

/** An awareness message with the states of `clients` from a y-protocols Awareness instance. */
export function awarenessFrameOf(awareness, clients = [awareness.clientID]) {
  return frame((e) => {
    encoding.writeVarUint(e, MSG_AWARENESS);
    encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awareness, clients));
  });
}

/** An auth "permission denied" message (type 2): only servers may send it. */
export function authFrame(reason) {
  return frame((e) => {
    encoding.writeVarUint(e, MSG_AUTH);
    encoding.writeVarUint(e, 0);
    encoding.writeVarString(e, reason);
  });
}

/** Decodes an awareness update payload into [{client, clock, state}] (state null = gone). */
export function decodeAwareness(payload) {
  const d = decoding.createDecoder(payload);
  const count = decoding.readVarUint(d);
  const entries = [];
  for (let i = 0; i < count; i++) {
    const client = decoding.readVarUint(d);
    const clock = decoding.readVarUint(d);
    const state = JSON.parse(decoding.readVarString(d));
    entries.push({ client, clock, state });
  }
  return entries;
}

/** Decodes one server frame: {type: 'sync', kind, payload} | {type: 'awareness', entries} | ... */
export function decodeFrame(bytes) {
  const d = decoding.createDecoder(bytes);
  const type = decoding.readVarUint(d);
  switch (type) {
    case MSG_SYNC: {
      const sub = decoding.readVarUint(d);
      return { type: 'sync', kind: SYNC_KINDS[sub] ?? `sync-${sub}`, payload: decoding.readVarUint8Array(d) };
    }
    case MSG_AWARENESS:
      return { type: 'awareness', entries: decodeAwareness(decoding.readVarUint8Array(d)) };
    case MSG_AUTH:
      decoding.readVarUint(d);
      return { type: 'auth', reason: decoding.readVarString(d) };
    case MSG_QUERY_AWARENESS:
      return { type: 'query-awareness' };
    default:
      return { type: `unknown-${type}` };
  }
}

/** Collects the Yjs v1 updates `doc` emits, one per transaction. */
export function recordUpdates(doc) {
  const updates = [];
  doc.on('update', (update) => updates.push(update));
  return updates;
}

/** The text of a Y.Text named `name` in a document built from `update`. */
export function textOf(update, name = 'code') {
  const doc = new Y.Doc();
  Y.applyUpdate(doc, update);
  const text = doc.getText(name).toString();
  doc.destroy();
  return text;
}

// ---------------------------------------------------------------------------------------------
// Clients

const openClients = new Set();

/** A raw `ws` client that records every frame it receives and how it was closed. */
export class RawClient {
  constructor(url) {
    this.url = url;
    this.frames = [];
    this.close = null; // {code, reason, wasClean}
    this.upgradeHeaders = null; // the headers of the server's 101, once open
    // perMessageDeflate: offer compression (ws's default made explicit), as browsers always do.
    this.ws = new WebSocket(url, { maxPayload: 64 * 1024 * 1024, perMessageDeflate: true });
    this.ws.once('upgrade', (res) => {
      this.upgradeHeaders = res.headers;
    });
    this.ws.binaryType = 'nodebuffer';
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} instead of an upgrade`)));
    });
    this.opened.catch(() => {});
    this.ws.on('error', () => {}); // recorded through 'close'
    this.ws.on('message', (data, isBinary) => {
      const bytes = new Uint8Array(data);
      let decoded;
      try {
        decoded = isBinary ? decodeFrame(bytes) : { type: 'text', text: data.toString() };
      } catch (error) {
        decoded = { type: 'undecodable', error: error.message };
      }
      this.frames.push({ bytes, ...decoded });
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.close = { code, reason: reason.toString() };
        openClients.delete(this);
        resolve(this.close);
      });
    });
    openClients.add(this);
  }

  /** The URL of `room`'s socket with `token` (the room's edit token by default). */
  static url(edge, room, token = room.editToken) {
    return `${edge.wsBase}/rooms/${room.name}?token=${encodeURIComponent(token)}`;
  }

  /** Opens a raw socket to `room` and waits for the server's greeting (its SyncStep1). */
  static async connect(edge, room, { timeoutMs = 10_000, token = room.editToken } = {}) {
    const client = new RawClient(RawClient.url(edge, room, token));
    await withTimeout(client.opened, timeoutMs, `socket to ${room.name} to open`);
    await client.waitFrame((f) => f.type === 'sync' && f.kind === 'step1', timeoutMs, 'the greeting SyncStep1');
    return client;
  }

  send(bytes) {
    this.ws.send(bytes);
  }

  /** Waits until a received frame matches `predicate`; returns it. */
  waitFrame(predicate, timeoutMs = 10_000, what = 'a matching frame') {
    return waitFor(() => this.frames.find(predicate), timeoutMs, what);
  }

  /** Waits for the socket to close; returns {code, reason}. */
  waitClose(timeoutMs = 10_000) {
    return withTimeout(this.closed, timeoutMs, `close of ${this.url}`);
  }

  /**
   * Sends SyncStep1 and waits for the SyncStep2 answering it. Frames are handled in order per
   * socket, so once it is here every frame sent before has been processed (and its replies
   * received). Returns the SyncStep2 frame.
   */
  async barrier(doc = new Y.Doc(), timeoutMs = 30_000) {
    const seen = this.frames.filter((f) => f.type === 'sync' && f.kind === 'step2').length;
    this.send(syncStep1Frame(doc));
    await waitFor(
      () => this.frames.filter((f) => f.type === 'sync' && f.kind === 'step2').length > seen,
      timeoutMs,
      'SyncStep2 (barrier)',
    );
    return this.frames.filter((f) => f.type === 'sync' && f.kind === 'step2')[seen];
  }

  /** Frames of one sync kind ('step1' | 'step2' | 'update'). */
  syncFrames(kind) {
    return this.frames.filter((f) => f.type === 'sync' && f.kind === kind);
  }

  /** Applies every received SyncStep2 and Update to a fresh document; returns it. */
  receivedDoc() {
    const doc = new Y.Doc();
    for (const f of this.frames) {
      if (f.type === 'sync' && f.kind !== 'step1') Y.applyUpdate(doc, f.payload);
    }
    return doc;
  }

  /** Abrupt end: drops the TCP connection without a close frame. */
  terminate() {
    this.ws.terminate();
  }

  shutdown() {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.terminate();
    openClients.delete(this);
  }
}

/**
 * The stock y-websocket provider on `room`, as a browser would use it
 * (`new WebsocketProvider('ws://HOST/rooms', room, doc, { params: { token } })`), with the
 * room's edit token unless given `token`. BroadcastChannel is disabled: Node has one, and
 * providers in one process would otherwise sync around the server.
 */
export function provider(edge, room, { doc = new Y.Doc(), token = room.editToken, ...options } = {}) {
  const p = new WebsocketProvider(`${edge.wsBase}/rooms`, room.name, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    params: { token },
    ...options,
  });
  const entry = { shutdown: () => { p.destroy(); doc.destroy(); openClients.delete(entry); } };
  openClients.add(entry);
  p.shutdown = entry.shutdown;
  return p;
}

/** A provider that has completed its first sync with the server. */
export async function syncedProvider(edge, room, options, timeoutMs = 15_000) {
  const p = provider(edge, room, options);
  await waitFor(() => p.synced, timeoutMs, `provider on ${room.name} to sync`);
  return p;
}

/** Closes every client the harness opened (call in after hooks). */
export function closeAllClients() {
  for (const client of [...openClients]) {
    try {
      client.shutdown();
    } catch {}
  }
  openClients.clear();
}

/** Wraps a test body so a failure carries the tail of the wrangler log. */
export function withEdgeLog(getEdge, body) {
  return async (t) => {
    try {
      await body(t);
    } catch (error) {
      const edge = getEdge();
      if (edge && error && typeof error === 'object') {
        error.message = `${error.message}\n--- wrangler log (tail, full log in ${edge.logPath}) ---\n${edge.tail(60)}`;
        edge.failed = true;
      }
      throw error;
    }
  };
}

/**
 * Gives a test file one wrangler for all its tests: launched before them (handed to `onLaunch`),
 * clients closed after each, disposed at the end. Returns the wrapper that adds the wrangler
 * log to a failing test's message.
 */
export function useEdge(onLaunch, options) {
  let edge;
  before(async () => {
    edge = await Edge.launch(options);
    onLaunch(edge);
  }, { timeout: 20 * 60_000 }); // may have to build the edge first
  after(async () => {
    closeAllClients();
    await edge?.dispose();
  });
  afterEach(() => closeAllClients());
  return (body) => withEdgeLog(() => edge, body);
}
