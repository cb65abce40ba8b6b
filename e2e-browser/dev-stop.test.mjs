// `make dev` stops everything it started, whatever stops it. Each case starts a fresh stack
// with `make dev` in a session and process group of its own (as `setsid make dev &` does, and
// as a terminal runs a foreground job), waits until it answers, and sends the signal a closed
// terminal, `timeout`, a cancelled CI job or a supervisor would send. Then every process of
// every session the stack made (make's, and the one each service runs in) must be gone, every
// TCP port any of them listened on (the edge, the exec API, the ports wrangler's workerd opened)
// closed, and no sandbox container of the stack's fleet left. The Ctrl-C case (SIGINT to the
// group) is the last test of ide.test.mjs.
//
//   node --test e2e-browser/dev-stop.test.mjs
//   CODEBOX_DEV_STOP_TRIES=6 node --test e2e-browser/dev-stop.test.mjs       every case 6 times
//   CODEBOX_DEV_STOP_CASES=term-group,hup-group node --test e2e-browser/dev-stop.test.mjs

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DevStack, listeningPortsOf, portOpen, sessionMembers, waitFor } from './stack.mjs';

const CASES = {
  // A cancelled job, `timeout`, `kill -TERM -- -PGID`: make, dev.sh and the output prefixers
  // all get it at once, and make passes a second TERM to dev.sh while it cleans up.
  'term-group': { what: 'SIGTERM to its process group', signal: 'SIGTERM', to: 'group' },
  // The terminal closed.
  'hup-group': { what: 'SIGHUP to its process group (the terminal closed)', signal: 'SIGHUP', to: 'group' },
  // `kill PID` of make: make passes TERM on to dev.sh and waits for it.
  'term-make': { what: 'SIGTERM to make alone', signal: 'SIGTERM', to: 'leader' },
  // `make dev | cat` (or `| tee`): the output's reader dies with the group, so every message
  // the cleanup writes meets a broken pipe.
  'term-group-piped': {
    what: 'SIGTERM to its process group, its output piped to a reader in the group',
    signal: 'SIGTERM', to: 'group', command: ['bash', '-c', 'make dev 2>&1 | cat'],
  },
  // Nothing in the group can clean up: what dev.sh started must be stopped from outside it.
  'kill-group': { what: 'SIGKILL to its process group', signal: 'SIGKILL', to: 'group', forced: true },
};
const TRIES = Number(process.env.CODEBOX_DEV_STOP_TRIES ?? 1);
const ONLY = process.env.CODEBOX_DEV_STOP_CASES?.split(',').filter(Boolean) ?? Object.keys(CASES);
for (const name of ONLY) assert.ok(CASES[name], `unknown case ${name} in CODEBOX_DEV_STOP_CASES`);

/** The fleet's owner label, from its JSON log line "sandbox ready" (LOG_FORMAT=json). */
function fleetOwner(log) {
  for (const line of log.split('\n')) {
    const json = /^\[fleet\] (\{.*\})\s*$/.exec(line)?.[1];
    if (!json) continue;
    try {
      const event = JSON.parse(json);
      if (event.fields?.message === 'sandbox ready') return event.fields.owner;
    } catch {}
  }
  return null;
}

function containersOf(owner) {
  return execFileSync('docker', ['ps', '-aq', '--filter', `label=codebox.sandbox.owner=${owner}`], { encoding: 'utf8' })
    .split('\n').filter(Boolean);
}

for (const name of ONLY) {
  const { what, signal, to, command = ['make', 'dev'], forced = false } = CASES[name];
  for (let attempt = 1; attempt <= TRIES; attempt++) {
    const label = TRIES > 1 ? ` (try ${attempt} of ${TRIES})` : '';
    test(`make dev stops everything it started on ${what}${label}`, { timeout: 20 * 60_000 }, async () => {
      // The first start on a machine may build a lot; later ones take seconds.
      const stack = await DevStack.start({ command, env: { LOG_FORMAT: 'json' } });
      let sessions = [];
      let failed = true;
      try {
        const processes = stack.processes();
        const names = processes.map((p) => p.comm);
        for (const expected of ['exec-lambda', 'exec-fleet', 'workerd']) {
          assert.ok(names.some((n) => n.startsWith(expected)), `${expected} is running under make dev (${names.join(', ')})`);
        }
        sessions = [...new Set([stack.dev.pid, ...processes.map((p) => p.sid)])];
        const ports = listeningPortsOf(processes.map((p) => p.pid));
        assert.ok(ports.includes(stack.edgePort) && ports.includes(stack.execPort),
          `the stack listens on ${stack.edgePort} and ${stack.execPort} (${ports.join(', ')})`);
        const owner = fleetOwner(stack.dev.log);
        assert.ok(owner, 'the fleet logged its owner label ("sandbox ready")');

        process.kill(to === 'group' ? -stack.dev.pid : stack.dev.pid, signal);

        const left = () => sessionMembers(sessions);
        await waitFor(() => left().length === 0, 30_000,
          `every process of the stack's sessions to exit (left: ${JSON.stringify(left())})`);
        for (const port of ports) assert.equal(await portOpen(port), false, `port ${port} is closed`);
        await waitFor(() => containersOf(owner).length === 0, 15_000, `the fleet's containers (${owner}) to be removed`);
        const { code, signal: ended } = await stack.dev.exited;
        assert.ok(code !== 0 || ended, `make dev ended unsuccessfully (code ${code}, signal ${ended})`);

        // What the stopping said, kept in the state folder where no closed pipe can lose it.
        const stopLog = fs.readFileSync(path.join(stack.stateDir, 'dev.log'), 'utf8');
        assert.match(stopLog, forced ? /guard: stopped/ : /stopped/);
        assert.doesNotMatch(stopLog, /did not stop on SIGTERM/, 'everything stopped on SIGTERM, none needed SIGKILL');
        failed = false;
      } catch (error) {
        error.message += `\n--- make dev log (tail) ---\n${stack.dev.tail(40)}`;
        throw error;
      } finally {
        // Whatever a failed case left: every process of its sessions.
        for (const p of sessionMembers(sessions)) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {}
        }
        await stack.dispose({ keep: failed });
      }
    });
  }
}
