// What the servers cost, read from /proc: CPU time (utime + stime, in 10 ms ticks) of given
// processes or process trees, their memory (RSS, and PSS and Private_Dirty from smaps_rollup
// where readable), and the whole machine's busy time. Linux only.

import fs from 'node:fs';
import os from 'node:os';

// Clock ticks per second of /proc/*/stat times: 100 on every Linux x86_64 and arm64 build.
const CLK_TCK = 100;

/** {comm, ppid, cpuSeconds} of one process, or null if it is gone. */
export function processStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // pid (comm) state ppid ...: comm may hold spaces and parentheses.
  const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
  return { comm, ppid: Number(fields[1]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK };
}

/** `root` and every process below it. */
export function processTree(root) {
  const children = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = processStat(entry);
    if (!stat) continue;
    if (!children.has(stat.ppid)) children.set(stat.ppid, []);
    children.get(stat.ppid).push(Number(entry));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

/**
 * Memory of one process in KiB: {rss, pss, privateDirty}; pss and privateDirty are null when
 * smaps_rollup cannot be read (another user's process, or an old kernel). Null if it is gone.
 */
export function processMemory(pid) {
  let rollup = null;
  try {
    rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {}
  const field = (text, name) => {
    const match = text?.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'));
    return match ? Number(match[1]) : null;
  };
  let rss = field(rollup, 'Rss');
  if (rss === null) {
    try {
      rss = field(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
    } catch {
      return null;
    }
  }
  return { rss, pss: field(rollup, 'Pss'), privateDirty: field(rollup, 'Private_Dirty') };
}

/** Busy and total CPU seconds of the whole machine (all cores), from /proc/stat. */
function machineCpu() {
  const values = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = values.reduce((a, b) => a + b, 0);
  const idle = values[3] + values[4];
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

/** This process's own CPU seconds (user + system). */
function selfCpu() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * A measured window: the CPU that the servers (`pids`, and every process of each of `trees`,
 * as they are when the window starts), this load generator and the whole machine used in it.
 */
export class CpuWindow {
  constructor({ pids = [], trees = [] } = {}) {
    this.pids = [...new Set([...pids, ...trees.flatMap(processTree)])].sort((a, b) => a - b);
  }

  start() {
    this.startedAt = performance.now();
    this.before = new Map(this.pids.map((pid) => [pid, processStat(pid)]));
    this.selfBefore = selfCpu();
    this.machineBefore = machineCpu();
    return this;
  }

  /** Ends the window: {seconds, self, servers: [{pid, comm, cpu, rssKiB}], serverTotal, machine}. */
  stop() {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const servers = [];
    for (const pid of this.pids) {
      const before = this.before.get(pid);
      const after = processStat(pid);
      if (!before || !after) continue;
      servers.push({ pid, comm: after.comm, cpu: after.cpuSeconds - before.cpuSeconds, rssKiB: processMemory(pid)?.rss ?? null });
    }
    const machineAfter = machineCpu();
    const self = selfCpu() - this.selfBefore;
    const serverTotal = servers.reduce((sum, s) => sum + s.cpu, 0);
    const busy = machineAfter.busy - this.machineBefore.busy;
    return {
      seconds,
      self,
      servers,
      serverTotal,
      machine: { busy, total: machineAfter.total - this.machineBefore.total, others: Math.max(0, busy - self - serverTotal) },
    };
  }
}

/** The report lines of a CpuWindow's result, in room-load's words. */
export function cpuLines(usage) {
  const share = (cpu) => `${((100 * cpu) / usage.seconds).toFixed(1)}% of one core`;
  const lines = [['load generator CPU', `${usage.self.toFixed(2)} s in the ${usage.seconds.toFixed(2)} s measured window (${share(usage.self)}; one node thread)`]];
  for (const s of usage.servers) {
    const rss = s.rssKiB === null ? '?' : (s.rssKiB / 1024).toFixed(1);
    lines.push(['server CPU', `pid ${s.pid} (${s.comm}): ${s.cpu.toFixed(2)} s (${share(s.cpu)}), RSS ${rss} MiB at the end`]);
  }
  if (usage.servers.length) {
    lines.push(['server CPU total', `${usage.serverTotal.toFixed(2)} s in the ${usage.seconds.toFixed(2)} s measured window (${share(usage.serverTotal)}; /proc ticks are 10 ms)`]);
  }
  const { busy, total, others } = usage.machine;
  lines.push(['machine CPU', `${busy.toFixed(2)} s busy of ${total.toFixed(2)} s on ${os.availableParallelism()} cores (${((100 * busy) / Math.max(total, 1e-9)).toFixed(0)}%); ${others.toFixed(2)} s of it neither this load generator nor the server`]);
  return lines;
}
