// The stack the browser tests run against, started the way `make dev` starts it: scripts/dev.sh
// itself, on free ports with a temp state folder (its queue/store and the edge's room state),
// so it runs beside a developer's own `make dev`. Also: a lone edge in front of an exec API of
// the test's choosing (a fake one, or a dead port), for the proxy's own cases.
//
// CODEBOX_E2E_KEEP=1 keeps the temp folders (logs, state) for inspection.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort, listeningPorts, waitFor as pollUntil } from '../e2e/harness.mjs';

export { freePort };
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEEP = process.env.CODEBOX_E2E_KEEP === '1';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `waitFor` of the edge tests, polling every 50 ms by default (each poll may ask a page). */
export const waitFor = (predicate, timeoutMs, what, intervalMs = 50) => pollUntil(predicate, timeoutMs, what, intervalMs);

export function portOpen(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** pid -> { ppid, pgid, sid, state, comm } for every process, from /proc. */
function processTable() {
  const table = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // Fields 3 on (proc(5)), counted from the end of the name: it may hold spaces and ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(entry), {
        state: fields[0], ppid: Number(fields[1]), pgid: Number(fields[2]), sid: Number(fields[3]), comm,
      });
    } catch {
      // Gone while reading.
    }
  }
  return table;
}

const live = (info) => info.state !== 'Z' && info.state !== 'X';

/** Live (non-zombie) descendants of `root`, with their names, process groups and sessions. */
export function descendants(root) {
  const table = processTable();
  const found = [];
  const walk = (pid) => {
    for (const [child, info] of table) {
      if (info.ppid === pid) {
        if (live(info)) found.push({ pid: child, comm: info.comm, pgid: info.pgid, sid: info.sid });
        walk(child);
      }
    }
  };
  walk(root);
  return found;
}

/**
 * Live processes in any of the sessions `sids`, wherever they are in the tree now: a process
 * whose parent died is re-parented, but it keeps its session (only setsid leaves one).
 */
export function sessionMembers(sids) {
  const wanted = new Set(sids);
  return [...processTable()].filter(([, info]) => wanted.has(info.sid) && live(info))
    .map(([pid, info]) => ({ pid, comm: info.comm, sid: info.sid }));
}

/** TCP ports the processes `pids` listen on (any address). */
export function listeningPortsOf(pids) {
  const ports = new Set();
  for (const pid of pids) {
    try {
      for (const port of listeningPorts(pid)) ports.add(port);
    } catch {
      // Gone while reading.
    }
  }
  return [...ports].sort((a, b) => a - b);
}

export function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

const children = new Set();
process.on('exit', () => {
  for (const pgid of children) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {}
  }
});

/** A process group we started, its output kept in `log` (and a file). */
class Child {
  constructor(name, command, args, { env, cwd, logPath }) {
    this.name = name;
    this.log = '';
    const stream = fs.createWriteStream(logPath, { flags: 'a' });
    this.proc = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.proc.pid);
    const onData = (chunk) => {
      const text = chunk.toString();
      this.log += text;
      stream.write(text);
    };
    this.proc.stdout.on('data', onData);
    this.proc.stderr.on('data', onData);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.proc.on('close', () => stream.end());
    this.exitStatus = null;
    this.exited.then((status) => {
      this.exitStatus = status;
      children.delete(this.proc.pid);
    });
  }

  get pid() {
    return this.proc.pid;
  }

  tail(lines = 60) {
    return this.log.replace(/\x1b\[[0-9;]*m/g, '').split('\n').slice(-lines).join('\n');
  }

  async kill(signal = 'SIGKILL') {
    try {
      process.kill(-this.pid, signal);
    } catch {}
    await Promise.race([this.exited, sleep(10_000)]);
  }
}

const baseEnv = () => ({
  ...process.env,
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  NO_COLOR: '1',
  FORCE_COLOR: '0',
});

/**
 * `make dev` (scripts/dev.sh) on free ports, with its own state folder, in a session and
 * process group of its own (as `setsid make dev &` runs it). `command` is how it is started:
 * `['bash', 'scripts/dev.sh']` (the default), `['make', 'dev']`, or any command line that
 * runs one of those; `env` adds variables.
 */
export class DevStack {
  static async start({ timeoutMs = 15 * 60_000, command = ['bash', 'scripts/dev.sh'], env = {} } = {}) {
    const stack = new DevStack();
    stack.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-browser-e2e-'));
    stack.edgePort = await freePort();
    stack.execPort = await freePort();
    stack.dev = new Child('dev', command[0], command.slice(1), {
      cwd: REPO,
      logPath: path.join(stack.dir, 'dev.log'),
      env: {
        ...baseEnv(),
        CODEBOX_DEV_PORT: String(stack.edgePort),
        CODEBOX_EXEC_PORT: String(stack.execPort),
        CODEBOX_DEV_STATE: path.join(stack.dir, 'state'),
        // Small pools: the machine is shared with other suites.
        FLEET_POOL_SIZE: '1',
        FLEET_CONCURRENCY: '2',
        // Every page here comes from one address: the per-client limits are tested in e2e/.
        CODEBOX_ROOM_RATE_LIMIT: '10000/60',
        CODEBOX_RUN_RATE_LIMIT: '10000/60',
        ...env,
      },
    });
    try {
      await waitFor(() => {
        if (stack.dev.exitStatus) throw Object.assign(new Error('exited'), { fatal: true });
        return /CodeBox is running/.test(stack.dev.log);
      }, timeoutMs, '`make dev` to say the stack is running', 200);
      // The stack answers before the fleet has filled its pools and takes jobs; on a loaded
      // machine that can take most of a minute, which the first test's run must not pay.
      await waitFor(() => {
        if (stack.dev.exitStatus) throw Object.assign(new Error('exited'), { fatal: true });
        return /fleet worker starting/.test(stack.dev.log);
      }, 180_000, 'the fleet to take jobs', 200);
    } catch (error) {
      const log = stack.dev.tail(80);
      await stack.dev.kill();
      throw new Error(`scripts/dev.sh did not come up (${error.message}; exit ${JSON.stringify(stack.dev.exitStatus)}):\n${log}`);
    }
    return stack;
  }

  get url() {
    return `http://127.0.0.1:${this.edgePort}`;
  }

  /** Its state folder (CODEBOX_DEV_STATE): the queue and store, the edge's rooms, dev.log. */
  get stateDir() {
    return path.join(this.dir, 'state');
  }

  /** Every live process `make dev` started (its whole tree). */
  processes() {
    return descendants(this.dev.pid);
  }

  /** Ctrl-C: SIGINT to dev.sh's process group, as a terminal sends it. */
  async interrupt() {
    process.kill(-this.dev.pid, 'SIGINT');
    return this.dev.exited;
  }

  async dispose({ keep = false } = {}) {
    if (!this.dev.exitStatus) await this.dev.kill('SIGINT');
    if (!this.dev.exitStatus) await this.dev.kill('SIGKILL');
    for (const p of descendants(this.dev.pid)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {}
    }
    if (KEEP || keep) process.stderr.write(`browser e2e: kept ${this.dir}\n`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The edge alone (`wrangler dev`, the repo's config) with EXEC_API_URL = `execApiUrl`, and
 * `vars` (name -> value) as further variables or secrets.
 */
export class LoneEdge {
  static async start({ execApiUrl, vars = {}, timeoutMs = 120_000 }) {
    const edge = new LoneEdge();
    edge.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'codebox-browser-e2e-edge-'));
    edge.port = await freePort();
    const tokenSecret = crypto.randomBytes(32).toString('hex');
    const varArgs = Object.entries({ EXEC_API_URL: execApiUrl, ROOM_TOKEN_SECRET: tokenSecret, ...vars }).flatMap(([k, v]) => ['--var', `${k}:${v}`]);
    edge.child = new Child('edge', path.join(REPO, 'node_modules', '.bin', 'wrangler'), [
      'dev', '--local', '--ip', '127.0.0.1', '--port', String(edge.port), ...varArgs,
      '--persist-to', path.join(edge.dir, 'state'), '--show-interactive-dev-session=false',
    ], { cwd: REPO, env: baseEnv(), logPath: path.join(edge.dir, 'wrangler.log') });
    try {
      await waitFor(async () => {
        if (edge.child.exitStatus) throw Object.assign(new Error('wrangler exited'), { fatal: true });
        const response = await fetch(`${edge.url}/`, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        return response.ok;
      }, timeoutMs, 'wrangler dev to serve the IDE', 200);
    } catch (error) {
      const log = edge.child.tail(60);
      await edge.child.kill();
      throw new Error(`${error.message}\n${log}`);
    }
    return edge;
  }

  /** An edge whose exec API is a port nothing listens on. */
  static async withDeadExecApi() {
    return LoneEdge.start({ execApiUrl: `http://127.0.0.1:${await freePort()}` });
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async dispose() {
    await this.child.kill('SIGTERM');
    await this.child.kill('SIGKILL');
    if (!KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
