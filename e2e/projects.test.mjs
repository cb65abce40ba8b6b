// End-to-end: projects and tests (Contract 2b in ../shared/DESIGN.md), on a stack put together as
// `make dev` does it: the edge under `wrangler dev` (real workerd), the exec API and the fleet
// over one embedded SQLite queue and store, programs in real containers. Runs go in as the IDE
// sends them: through the edge's /api with a room's edit token.
//
// Covers:
// - each language builds a project of several files the way its users expect (C and C++: every
//   source file with headers in folders; Go: the folder as package main; Rust: `mod` files and a
//   folder module; Python and JavaScript: siblings and sub-folders);
// - tests: accepted, wrong_answer, time_limit_exceeded and runtime_error in one submission (the
//   verdict is the first failing test's), all accepted, and a compile error once for all;
// - every test runs in a container never used before (a marker file left by one test is never
//   seen by another);
// - the largest programs (megabytes of tests, through the edge) wait in the payload store and
//   still run;
// - refusals name the field (422/413) and queue nothing.
//
// Run: `node --test e2e/projects.test.mjs` from the repo root (needs the Docker engine and the
// runner images: scripts/docker.sh, scripts/images.sh).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

import { Edge, ExecApi, Fleet, waitFor, withEdgeLog } from './harness.mjs';

const RATE = { RUN_RATE_LIMIT: '10000/60' };
let edge;
let api;
let fleet;
let room;

before(async () => {
  edge = await Edge.launch({ vars: RATE });
  const db = path.join(edge.runDir, 'codebox.db');
  api = await ExecApi.start({ db, env: { CODEBOX_RUN_RATE_LIMIT: '10000/60' } });
  edge.vars.EXEC_API_URL = api.url;
  await edge.restart();
  fleet = await Fleet.start({ db, edgeUrl: edge.httpBase, env: { FLEET_CONCURRENCY: '4', FLEET_TESTS_AT_ONCE: '2' } });
}, { timeout: 20 * 60_000 });

after(async () => {
  await fleet?.stop();
  await api?.stop();
  await edge?.dispose();
});

const logged = (body) => withEdgeLog(() => edge, async (t) => {
  try {
    await body(t);
  } catch (error) {
    error.message += `\n--- fleet log (tail) ---\n${fleet.log().split('\n').slice(-40).join('\n')}`;
    throw error;
  }
});

/** A fresh room per test, so each stays within the room's four runs at a time. */
async function newRoom() {
  return edge.createRoom();
}

/** POSTs `body` as a run of `room`; returns the response and its JSON. */
async function post(theRoom, body) {
  const response = await fetch(`${edge.httpBase}/api/v1/submissions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${theRoom.editToken}` },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** Runs `body` from `theRoom` and waits for its record to end. */
async function run(theRoom, body, timeoutMs = 240_000) {
  const accepted = await post(theRoom, body);
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  let record;
  await waitFor(async () => {
    const response = await fetch(`${edge.httpBase}/api/v1/submissions/${accepted.body.id}`);
    record = await response.json();
    return !['queued', 'running'].includes(record.status);
  }, timeoutMs, `submission ${accepted.body.id} to end`, 250);
  return record;
}

const files = (tree) => Object.entries(tree).map(([name, content]) => ({ name, content }));

const PROJECTS = {
  c: files({
    'main.c': '#include <stdio.h>\n#include "util.h"\nint main(void) { printf("%d %s\\n", twice(21), NAME); return 0; }\n',
    'src/util.c': '#include "util.h"\nint twice(int x) { return 2 * x; }\n',
    'include/util.h': '#pragma once\n#define NAME "c-project"\nint twice(int x);\n',
  }),
  cpp: files({
    'main.cpp': '#include <iostream>\n#include "greet.hpp"\nint main() { std::cout << greet("cpp") << std::endl; }\n',
    'lib/greet.cpp': '#include "greet.hpp"\nstd::string greet(const std::string& who) { return "hello " + who; }\n',
    'lib/greet.hpp': '#pragma once\n#include <string>\nstd::string greet(const std::string& who);\n',
  }),
  go: files({
    'main.go': 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(greet("go"), answer) }\n',
    'greet.go': 'package main\n\nfunc greet(who string) string { return "hello " + who }\n',
    'values.go': 'package main\n\nconst answer = 42\n',
  }),
  rust: files({
    'main.rs': 'mod greet;\nmod shapes;\nfn main() { println!("{} {}", greet::hello("rust"), shapes::square::area(6)); }\n',
    'greet.rs': 'pub fn hello(who: &str) -> String { format!("hello {who}") }\n',
    'shapes/mod.rs': 'pub mod square;\n',
    'shapes/square.rs': 'pub fn area(side: u32) -> u32 { side * side }\n',
  }),
  python: files({
    'main.py': 'import util\nfrom lib.helper import twice\nprint(util.greet("python"), twice(21))\n',
    'util.py': 'def greet(who):\n    return "hello " + who\n',
    'lib/helper.py': 'def twice(x):\n    return 2 * x\n',
  }),
  javascript: files({
    'main.js': 'const { greet } = require("./util");\nconst twice = require("./lib/helper");\nconsole.log(greet("javascript"), twice(21));\n',
    'util.js': 'exports.greet = (who) => "hello " + who;\n',
    'lib/helper.js': 'module.exports = (x) => 2 * x;\n',
  }),
};

const EXPECTED = {
  c: '42 c-project\n',
  cpp: 'hello cpp\n',
  go: 'hello go 42\n',
  rust: 'hello rust 36\n',
  python: 'hello python 42\n',
  javascript: 'hello javascript 42\n',
};

test('each language builds a project of several files as its users expect', { timeout: 600_000 }, logged(async () => {
  const languages = Object.keys(PROJECTS);
  // Two rooms: a room runs at most four at a time.
  const rooms = [await newRoom(), await newRoom()];
  const records = await Promise.all(languages.map((language, i) => run(rooms[i % 2], { language, files: PROJECTS[language] })));
  languages.forEach((language, i) => {
    const record = records[i];
    assert.equal(record.status, 'ok', `${language}: ${JSON.stringify(record)}`);
    assert.equal(record.stdout, EXPECTED[language], language);
    assert.equal(record.tests, null, `${language}: a run without tests has none`);
  });
}));

const JUDGED = `
import sys
data = sys.stdin.read().split()
if data[0] == "loop":
    while True:
        pass
if data[0] == "crash":
    sys.exit(3)
print(sum(int(x) for x in data))
`;

test('tests end accepted, wrong_answer, time_limit_exceeded or runtime_error, and the first failure is the verdict', { timeout: 300_000 }, logged(async () => {
  const theRoom = await newRoom();
  const record = await run(theRoom, {
    language: 'python',
    source: JUDGED,
    tests: [
      { stdin: '1 2\n', expected_stdout: '3\n' },
      { stdin: '2 2\n', expected_stdout: '5' },
      { stdin: 'loop\n', expected_stdout: '' },
      { stdin: 'crash\n', expected_stdout: '' },
      { stdin: '40 2', expected_stdout: '42   \r\n\n' },
    ],
  });
  assert.equal(record.status, 'wrong_answer', JSON.stringify(record));
  assert.deepEqual(record.tests.map((t) => t.status), ['accepted', 'wrong_answer', 'time_limit_exceeded', 'runtime_error', 'accepted']);
  assert.equal(record.tests[1].stdout, '4\n');
  assert.equal(record.stdout, '4\n', "the record's output is the deciding test's");
  assert.equal(record.tests[2].time_limit, 'run');
  assert.ok(record.tests[2].time_ms >= 4_900, `time_ms ${record.tests[2].time_ms}`);
  assert.equal(record.tests[3].exit_code, 3);

  const passing = await run(theRoom, {
    language: 'python',
    source: JUDGED,
    tests: [{ stdin: '1 1', expected_stdout: '2' }, { stdin: '5 5', expected_stdout: '10\n' }],
  });
  assert.equal(passing.status, 'accepted', JSON.stringify(passing));
  assert.deepEqual(passing.tests.map((t) => t.status), ['accepted', 'accepted']);
}));

test('a compile error ends every test, once for all', { timeout: 300_000 }, logged(async () => {
  const record = await run(await newRoom(), {
    language: 'c',
    files: files({ 'main.c': '#include "util.h"\nint main(void) { return twice(1) }\n', 'util.h': 'int twice(int);\n' }),
    tests: [{ stdin: '', expected_stdout: '' }, { stdin: '', expected_stdout: '' }, { stdin: '', expected_stdout: '' }],
  });
  assert.equal(record.status, 'compile_error', JSON.stringify(record));
  assert.match(record.compile_output, /main\.c.*error/);
  assert.deepEqual(record.tests.map((t) => t.status), ['compile_error', 'compile_error', 'compile_error']);
  assert.ok(record.tests.every((t) => t.time_ms === null));
}));

test('every test runs in a container never used before', { timeout: 300_000 }, logged(async () => {
  // Each test leaves a marker where a reused container would keep it; none may find one.
  const source = `
import os
seen = [p for p in ("/work/marker", "/tmp/marker") if os.path.exists(p)]
for p in ("/work/marker", "/tmp/marker"):
    try:
        open(p, "w").write("x")
    except OSError:
        pass
print("fresh" if not seen else "reused " + " ".join(seen))
`;
  const tests = Array.from({ length: 8 }, () => ({ stdin: '', expected_stdout: 'fresh\n' }));
  const record = await run(await newRoom(), { language: 'python', source, tests });
  assert.equal(record.status, 'accepted', JSON.stringify(record.tests.map((t) => t.stdout)));
  assert.equal(record.tests.length, 8);
}));

test('megabytes of tests wait in the payload store and still run', { timeout: 300_000 }, logged(async () => {
  // 32 tests of 48 KiB each: about 1.6 MB of request, far over a queue message.
  const source = 'import sys\nprint(len(sys.stdin.read()))\n';
  const tests = Array.from({ length: 32 }, (_, i) => ({ stdin: String(i % 10).repeat(48 * 1024), expected_stdout: `${48 * 1024}\n` }));
  tests[31].expected_stdout = '0\n';
  const record = await run(await newRoom(), { language: 'python', source, tests });
  assert.equal(record.status, 'wrong_answer', JSON.stringify({ ...record, tests: record.tests?.map((t) => t.status) }));
  assert.deepEqual(record.tests.slice(0, 31).map((t) => t.status), Array(31).fill('accepted'));
  assert.equal(record.tests[31].stdout, `${48 * 1024}\n`);
  const script = 'import sqlite3, sys\nprint(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM payloads WHERE id = ?", (sys.argv[2],)).fetchone()[0])';
  const parts = Number(execFileSync('python3', ['-c', script, api.db, record.id], { encoding: 'utf8' }));
  assert.ok(parts >= 2, `the program was stored in ${parts} parts`);
}));

test('refusals name their field, and nothing runs', { timeout: 120_000 }, logged(async () => {
  const theRoom = await newRoom();
  const cases = [
    [{ language: 'c', files: files({ 'main.c': 'int main(){}', '../up.c': '' }) }, 422, 'files[1].name'],
    [{ language: 'c', files: [{ name: 'main.c' }] }, 422, 'files[0].content'],
    [{ language: 'go', files: files({ 'cmd/main.go': 'package main' }) }, 422, 'main.go'],
    [{ language: 'python', files: files({ 'main.py': 'x'.repeat(256 * 1024 + 1) }) }, 413, '262144'],
    [{ language: 'python', files: Array.from({ length: 33 }, (_, i) => ({ name: i ? `m${i}.py` : 'main.py', content: '' })) }, 422, '32 files'],
    [{ language: 'python', source: 'print(1)', tests: [{ stdin: 'x'.repeat(64 * 1024 + 1), expected_stdout: '' }] }, 413, 'tests[0].stdin'],
    [{ language: 'python', source: 'print(1)', stdin: '1', tests: [{ expected_stdout: '1' }] }, 422, 'stdin'],
    [{ language: 'python', source: 'print(1)', files: PROJECTS.python }, 422, 'files'],
  ];
  for (const [body, status, names] of cases) {
    const reply = await post(theRoom, body);
    assert.equal(reply.status, status, JSON.stringify(reply.body));
    assert.ok(reply.body.error.message.includes(names), `${reply.body.error.message} should name ${names}`);
  }
}));
