// The side-by-side summary of bench/run-room-bench.sh. Each mode appends its key figures to a
// file as JSON lines {server, row, value}; this prints them as one table, a column per server,
// rows and columns in the order they were first written.
//
//   node bench/providers/summary.mjs table FILE
//   node bench/providers/summary.mjs room-load FILE SERVER EDITS < room-load's report
//       adds the light readers' figures from a bench/room-load report (EDITS measured edits)

import fs from 'node:fs';

const USAGE = 'usage: node bench/providers/summary.mjs table FILE | room-load FILE SERVER EDITS < report';

function fail(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(64);
}

function table(file) {
  let lines;
  try {
    lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
  } catch (error) {
    fail(`cannot read the summary ${file}: ${error.message}`);
  }
  const servers = [...new Set(lines.map((l) => l.server))];
  const rows = [...new Set(lines.map((l) => l.row))];
  const cell = new Map(lines.map((l) => [`${l.row}\0${l.server}`, l.value]));
  const grid = [['figure', ...servers], ...rows.map((row) => [row, ...servers.map((s) => cell.get(`${row}\0${s}`) ?? '-')])];
  const widths = grid[0].map((_, c) => Math.max(...grid.map((r) => r[c].length)));
  const format = (r) => `| ${r.map((text, c) => (c === 0 ? text.padEnd(widths[c]) : text.padStart(widths[c]))).join(' | ')} |`;
  console.log(format(grid[0]));
  console.log(`|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of grid.slice(1)) console.log(format(r));
}

function roomLoad(file, server, edits) {
  const report = fs.readFileSync(0, 'utf8');
  const latency = report.match(/^fan-out latency ms\s+p50 ([\d.]+)\s+p90 [\d.]+\s+p99 ([\d.]+)/m);
  const cpu = report.match(/^server CPU total\s+([\d.]+) s/m);
  const ok = /^RESULT\s+ok/m.test(report);
  const append = (row, value) => fs.appendFileSync(file, `${JSON.stringify({ server, row, value })}\n`);
  append('light readers (room-load): p50 / p99 ms', ok && latency ? `${latency[1]} / ${latency[2]}` : 'FAIL (see its block)');
  if (cpu) append('light readers: server CPU µs per edit', ((1e6 * Number(cpu[1])) / edits).toFixed(0));
}

const [command, file, ...rest] = process.argv.slice(2);
if (command === 'table' && file) table(file);
else if (command === 'room-load' && file && rest.length === 2 && Number(rest[1]) > 0) roomLoad(file, rest[0], Number(rest[1]));
else fail(command ? `wrong arguments for "${command}"` : 'no command');
