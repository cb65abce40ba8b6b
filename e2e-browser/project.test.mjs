// Projects and tests in a room (issue 14), in a real Chromium against the stack as `make dev`
// starts it: files edited by two people at once and who is in which file, a C project with a
// header, a test set with a failing test and its diff for everyone, what a reload keeps, and zips
// both ways with the name rules enforced in the browser.
//
//   node --test --test-concurrency=1 e2e-browser/project.test.mjs

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';

import {
  activeFile, addTest, connected, createFile, cursorNames, editorReady, editorText, newRoom, openFile,
  openRoom, peopleInFile, setInput, setProgram, shownRun, shownTests, treePaths, typeName, waitForRun,
} from './browser.mjs';
import { browserSuite } from './suite.mjs';
import { waitFor } from './stack.mjs';

const ADA = { name: 'Ada Lovelace', color: '#6e56cf' };
const GRACE = { name: 'Grace Hopper', color: '#12a594' };
const LINUS = { name: 'Linus Torvalds', color: '#f76b15' };

const suite = browserSuite();
const { e2e, serverDoc } = suite;

/** The bodies of the runs `who` submits from now on. */
function recordSubmissions(who) {
  const bodies = [];
  who.page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/api/v1/submissions') bodies.push(JSON.parse(request.postData()));
  });
  return bodies;
}

/** Replaces what the editor shows (the file open) with `text`. */
const setFile = setProgram;

test('two people edit different files at once, see each other in the tree, and only the cursors of their own file', { timeout: 120_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await Promise.all([editorReady(ada), editorReady(grace)]);
  assert.deepEqual(await treePaths(ada), ['main.py'], 'a new room is a one-file project');

  await createFile(ada, 'util.py');
  await waitFor(async () => (await treePaths(grace)).includes('util.py'), 10_000, 'Grace to see util.py in the tree');
  assert.equal(await activeFile(grace), 'main.py', 'Grace stays in her file');
  // Who is where, in both trees.
  await waitFor(async () => (await peopleInFile(grace, 'util.py')).includes(ADA.name), 10_000, 'Grace to see Ada in util.py');
  await waitFor(async () => (await peopleInFile(ada, 'main.py')).includes(GRACE.name), 10_000, 'Ada to see Grace in main.py');
  assert.deepEqual(await peopleInFile(grace, 'main.py'), [], 'nobody else is in Grace\'s file');

  // Both type at once, each in a file of their own.
  await ada.page.click('[data-testid=code]');
  await grace.page.click('[data-testid=code]');
  await grace.page.keyboard.press('ControlOrMeta+End');
  const adaTypes = 'def helper():\n    return 42\n';
  const graceTypes = '# typed by Grace in main.py';
  await Promise.all([ada.page.keyboard.type(adaTypes, { delay: 10 }), grace.page.keyboard.type(graceTypes, { delay: 10 })]);
  await waitFor(async () => {
    const doc = await serverDoc(room);
    return doc.getMap('files:python').get('util.py')?.toString().startsWith('def helper():') && doc.getText('source:python').toString().endsWith(graceTypes);
  }, 10_000, 'the edge to hold both edits, each in its file');
  const stored = await serverDoc(room);
  assert.ok(!stored.getText('source:python').toString().includes('helper'), 'Ada\'s typing stayed out of main.py');
  assert.ok(!stored.getMap('files:python').get('util.py').toString().includes('Grace'), 'Grace\'s typing stayed out of util.py');

  // Cursors are per file: Grace sees none of Ada's in main.py, then Ada's once she opens util.py.
  await waitFor(async () => (await ada.page.$$('[data-testid=person-file]')).length === 2, 10_000, 'the People panel to say who has which file open');
  assert.deepEqual(await cursorNames(grace), [], 'no cursor of someone in another file');
  await openFile(grace, 'util.py');
  await waitFor(async () => (await editorText(grace))?.startsWith('def helper():'), 10_000, 'Grace to see Ada\'s file');
  await ada.page.click('[data-testid=code]');
  await ada.page.keyboard.press('ControlOrMeta+End');
  await waitFor(async () => (await cursorNames(grace)).includes(ADA.name), 10_000, 'Grace to see Ada\'s cursor in util.py');
  await waitFor(async () => (await peopleInFile(ada, 'util.py')).includes(GRACE.name), 10_000, 'Ada to see Grace come into util.py');
  // And Ada finds Grace's edit in main.py.
  await openFile(ada, 'main.py');
  await waitFor(async () => (await editorText(ada))?.endsWith(graceTypes), 10_000, 'Ada to see Grace\'s edit in main.py');
  assert.deepEqual(await ada.page.$$eval('[data-testid=tab]', (els) => els.map((el) => el.dataset.path)), ['main.py', 'util.py'], 'Ada\'s tabs');
}));

test('a C project with a header runs: main.c, util.c and util.h compiled together; a one-file project still sends its source alone', { timeout: 180_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await editorReady(ada);
  const sent = recordSubmissions(ada);
  await ada.page.selectOption('[data-testid=language]', 'c');
  await waitFor(async () => (await editorText(ada))?.includes('#include <stdio.h>'), 10_000, 'the C starter');
  assert.deepEqual(await treePaths(ada), ['main.c']);
  await setInput(ada, '2 40\n');
  await ada.page.click('[data-testid=run]');
  await waitForRun(ada, 'ok', 90_000);
  assert.deepEqual(Object.keys(sent[0]).sort(), ['language', 'source', 'stdin'], 'one file goes as `source`, as before projects');

  await createFile(ada, 'util.h');
  await setFile(ada, '#ifndef UTIL_H\n#define UTIL_H\nint add(int a, int b);\n#endif\n');
  await createFile(ada, 'util.c');
  await setFile(ada, '#include "util.h"\n\nint add(int a, int b) { return a + b; }\n');
  await openFile(ada, 'main.c');
  await setFile(ada, '#include <stdio.h>\n#include "util.h"\n\nint main(void) {\n    int a, b;\n    if (scanf("%d %d", &a, &b) != 2) return 1;\n    printf("%d + %d = %d\\n", a, b, add(a, b));\n    return 0;\n}\n');
  await ada.page.click('[data-testid=run]');
  const [run, runForGrace] = await Promise.all([
    waitFor(async () => { const r = await shownRun(ada); return r?.history.length === 2 && r.status !== 'submitting' && r.status !== 'queued' && r.status !== 'running' && r; }, 90_000, 'the project run to end', 100),
    waitFor(async () => { const r = await shownRun(grace); return r?.history.length === 2 && ['ok', 'compile_error', 'runtime_error', 'error'].includes(r.status) && r; }, 90_000, 'Grace to see it end', 100),
  ]);
  assert.equal(run.status, 'ok', `the project ran (${JSON.stringify(run)})`);
  assert.equal(run.stdout, '2 + 40 = 42\n');
  assert.deepEqual(runForGrace, run);
  const body = sent[1];
  assert.equal(body.source, undefined, 'a project goes as `files`');
  assert.deepEqual(body.files.map((f) => f.name), ['main.c', 'util.c', 'util.h'], 'the entry file first');
  assert.equal(body.stdin, '2 40\n');
  await waitFor(async () => (await treePaths(grace)).join() === 'main.c,util.c,util.h', 10_000, 'Grace to see the three files');
}));

test('a test set with one failing test: the verdict is wrong_answer and both people see the failing test\'s diff, also after a reload', { timeout: 180_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await editorReady(ada);
  const sent = recordSubmissions(ada);
  await setProgram(ada, 'n = int(input())\nprint(n * 2)\nprint("done")\n');
  // Test 1 passes with trailing spaces and blank lines (the judge ignores them), test 2 expects
  // a wrong first line, test 3 passes.
  await addTest(ada, '2\n', '4   \ndone\n\n\n');
  await addTest(ada, '5\n', '11\ndone\n');
  await addTest(ada, '0\n', '0\ndone\n');
  await waitFor(async () => (await shownTests(grace)).rows.length === 3, 10_000, 'Grace to see the three tests');
  await ada.page.click('[data-testid=run-tests]');

  const ended = (who) => waitFor(async () => {
    const shown = await shownTests(who);
    return shown.verdict === 'wrong_answer' && shown.diff.length ? shown : null;
  }, 120_000, `${who.name} to see the tests' verdict and the diff`, 100);
  const [forAda, forGrace] = await Promise.all([ended(ada), ended(grace)]);
  assert.deepEqual(forAda.rows, ['accepted', 'wrong_answer', 'accepted']);
  assert.equal(forAda.selected, 'Test 2', 'the failing test is shown');
  assert.equal(forAda.result, 'wrong_answer');
  assert.deepEqual(forAda.diff, [
    { same: false, expected: '11', actual: '10' },
    { same: true, expected: 'done', actual: 'done' },
  ]);
  assert.deepEqual(forGrace, forAda, 'Grace sees what Ada sees');
  // The verdict is in the shared run history too.
  const run = await waitForRun(grace, 'wrong_answer', 10_000);
  assert.match(run.head, /Wrong answer.*2 of 3 tests passed/);
  assert.match(run.detail, /Test 2/);
  assert.deepEqual(run.history, ['wrong_answer']);
  const body = sent.at(-1);
  assert.equal(body.stdin, undefined, 'no stdin beside tests');
  assert.deepEqual(body.tests, [
    { stdin: '2\n', expected_stdout: '4   \ndone\n\n\n' },
    { stdin: '5\n', expected_stdout: '11\ndone\n' },
    { stdin: '0\n', expected_stdout: '0\ndone\n' },
  ]);

  await grace.page.reload();
  await connected(grace);
  const afterReload = await ended(grace);
  assert.deepEqual(afterReload, forAda, 'a reload shows the same results and diff');
}));

test('a reload keeps the files, folders and tests; a viewer arriving later sees them read-only', { timeout: 90_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const ada = await join(ADA);
  await openRoom(ada, room);
  await editorReady(ada);
  await typeName(ada, 'new-folder', 'lib');
  await waitFor(async () => (await ada.page.$('[data-testid=tree-folder][data-path="lib"]')) !== null, 10_000, 'the folder lib');
  await createFile(ada, 'lib/greet.py');
  await setFile(ada, 'def greet(name):\n    return f"Hello, {name}!"\n');
  await typeName(ada, 'new-folder', 'data');
  await addTest(ada, 'Ada\n', 'Hello, Ada!\n');
  await addTest(ada, 'Grace\n', 'Hello, Grace!\n');
  await waitFor(async () => (await serverDoc(room)).getArray('tests').length === 2, 10_000, 'the tests to reach the room');

  await ada.page.reload();
  await connected(ada);
  await waitFor(async () => (await treePaths(ada)).join() === 'lib/greet.py,main.py', 10_000, 'the tree after the reload');
  assert.equal(await activeFile(ada), 'lib/greet.py', 'the tab shown before the reload');
  assert.equal(await editorText(ada), 'def greet(name):\n    return f"Hello, {name}!"\n');
  assert.ok(await ada.page.$('[data-testid=tree-folder][data-path="data"]'), 'the empty folder is kept');
  assert.equal((await shownTests(ada)).rows.length, 2);
  await ada.page.click('[data-testid=test-row][data-index="2"]');
  assert.equal(await ada.page.textContent('[data-testid=test-expected]'), 'Hello, Grace!');

  const linus = await join(LINUS);
  await openRoom(linus, room, 'view');
  await waitFor(async () => (await treePaths(linus)).join() === 'lib/greet.py,main.py', 10_000, 'the viewer\'s tree');
  assert.equal((await shownTests(linus)).rows.length, 2);
  for (const control of ['new-file', 'new-folder', 'upload', 'add-test', 'run-tests', 'rename', 'delete', 'delete-test']) {
    assert.equal(await linus.page.$(`[data-testid=${control}]`), null, `a viewer has no ${control}`);
  }
  assert.ok(await linus.page.$('[data-testid=download]'), 'a viewer may download');
  await openFile(linus, 'lib/greet.py');
  await linus.page.click('[data-testid=code]');
  await linus.page.keyboard.type('nope');
  assert.equal(await editorText(linus), 'def greet(name):\n    return f"Hello, {name}!"\n', 'read-only');
}));

test('a zip uploads into the tree and downloads back the same; bad names and too many files are refused with a message', { timeout: 90_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const ada = await join(ADA);
  await openRoom(ada, room);
  await editorReady(ada);

  // Names the API would refuse are refused in the tree, with why; nothing is written.
  for (const [name, why] of [['../up.py', /“\.” or “\.\.”/], ['has space.py', /only letters/], ['/abs.py', /relative/], ['main.py', /already a file/]]) {
    await typeName(ada, 'new-file', name);
    await ada.page.waitForSelector('[data-testid=name-error]');
    assert.match(await ada.page.textContent('[data-testid=name-error]'), why, name);
    await ada.page.press('[data-testid=name-input]', 'Escape');
  }
  assert.deepEqual(await treePaths(ada), ['main.py']);
  // The entry file can be neither renamed nor deleted.
  await ada.page.hover('[data-testid=tree-file][data-path="main.py"]');
  assert.equal(await ada.page.$('[data-testid=tree-file][data-path="main.py"] [data-testid=rename]'), null);
  assert.equal(await ada.page.$('[data-testid=tree-file][data-path="main.py"] [data-testid=delete]'), null);

  // A zip as "Compress folder" makes it: everything inside one folder, which is taken off.
  const upload = zipSync({
    'proj/main.py': strToU8('from lib.util import double\nprint(double(int(input())))\n'),
    'proj/lib/util.py': strToU8('def double(n):\n    return 2 * n\n'),
    'proj/lib/__init__.py': strToU8(''),
    'proj/notes': {}, // a folder entry
    'proj/codebox-tests/1.in': strToU8('21\n'),
    'proj/codebox-tests/1.out': strToU8('42\n'),
    '__MACOSX/proj/._main.py': strToU8('junk'),
  });
  await ada.page.setInputFiles('[data-testid=upload-input]', { name: 'proj.zip', mimeType: 'application/zip', buffer: Buffer.from(upload) });
  await ada.page.waitForSelector('[data-testid=files-message]:has-text("Uploaded")');
  assert.match(await ada.page.textContent('[data-testid=files-message]'), /2 files added, 1 replaced, 1 test loaded/);
  assert.deepEqual(await treePaths(ada), ['lib/__init__.py', 'lib/util.py', 'main.py']);
  assert.ok(await ada.page.$('[data-testid=tree-folder][data-path="notes"]'), 'the empty folder came too');
  await waitFor(async () => (await editorText(ada)) === 'from lib.util import double\nprint(double(int(input())))\n', 5_000, 'the entry file replaced');
  assert.equal((await shownTests(ada)).rows.length, 1);

  const [download] = await Promise.all([ada.page.waitForEvent('download'), ada.page.click('[data-testid=download]')]);
  assert.equal(download.suggestedFilename(), `${room.room}-python.zip`);
  const entries = unzipSync(new Uint8Array(fs.readFileSync(await download.path())));
  assert.deepEqual(Object.keys(entries).sort(), ['codebox-tests/1.in', 'codebox-tests/1.out', 'lib/__init__.py', 'lib/util.py', 'main.py', 'notes/']);
  assert.equal(strFromU8(entries['lib/util.py']), 'def double(n):\n    return 2 * n\n');
  assert.equal(strFromU8(entries['codebox-tests/1.out']), '42\n');

  // Uploading it back changes nothing: the same files (replaced by themselves) and tests.
  await ada.page.setInputFiles('[data-testid=upload-input]', { name: 'back.zip', mimeType: 'application/zip', buffer: Buffer.from(zipSync(Object.fromEntries(Object.entries(entries).map(([k, v]) => (k.endsWith('/') ? [k.slice(0, -1), {}] : [k, v]))))) });
  await ada.page.waitForSelector('[data-testid=files-message]:has-text("0 files added, 3 replaced, 1 test loaded")');
  assert.deepEqual(await treePaths(ada), ['lib/__init__.py', 'lib/util.py', 'main.py']);

  // Refused uploads write nothing, and say why.
  const refused = async (name, files, why) => {
    await ada.page.setInputFiles('[data-testid=upload-input]', { name, mimeType: 'application/zip', buffer: Buffer.from(zipSync(files)) });
    await waitFor(async () => why.test(await ada.page.textContent('[data-testid=files-message]')), 5_000, `the refusal of ${name}`);
    assert.deepEqual(await treePaths(ada), ['lib/__init__.py', 'lib/util.py', 'main.py'], `${name} wrote nothing`);
  };
  await refused('bad-name.zip', { 'ok.py': strToU8('x'), 'bad name.py': strToU8('y') }, /Nothing was uploaded: .*bad name\.py.*only letters/);
  await refused('many.zip', Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`f${i}.py`, strToU8('pass\n')])), /at most 32 files/);
  await refused('binary.zip', { 'ok.py': strToU8('x'), 'logo.png': new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]) }, /logo\.png.*not a text file/);
  await refused('big-test.zip', { 'codebox-tests/1.in': strToU8('x'.repeat(65 * 1024)) }, /Test 1's input is 65 KiB: at most 64 KiB/);
  assert.equal((await shownTests(ada)).rows.length, 1, 'the tests stayed');

  // Loose files dropped on a folder go into it.
  await ada.page.dispatchEvent('[data-testid=tree-folder][data-path="lib"]', 'drop', {
    dataTransfer: await ada.page.evaluateHandle(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(['VALUE = 1\n'], 'consts.py', { type: 'text/x-python' }));
      return transfer;
    }),
  });
  await waitFor(async () => (await treePaths(ada)).includes('lib/consts.py'), 5_000, 'the dropped file in lib');

  // Renaming a folder takes its files along; the tab shown follows its file.
  await openFile(ada, 'lib/util.py');
  await ada.page.hover('[data-testid=tree-folder][data-path="lib"]');
  await ada.page.click('[data-testid=tree-folder][data-path="lib"] [data-testid=rename]');
  await ada.page.fill('[data-testid=name-input]', 'helpers');
  await ada.page.press('[data-testid=name-input]', 'Enter');
  await waitFor(async () => (await treePaths(ada)).join() === 'helpers/__init__.py,helpers/consts.py,helpers/util.py,main.py', 5_000, 'the folder renamed');
  assert.equal(await activeFile(ada), 'helpers/util.py', 'the tab followed its file');
  // Deleting asks once more, then the folder goes with its files.
  await ada.page.hover('[data-testid=tree-folder][data-path="helpers"]');
  await ada.page.click('[data-testid=tree-folder][data-path="helpers"] [data-testid=delete]');
  assert.match(await ada.page.textContent('[data-testid=tree-folder][data-path="helpers"] [data-testid=delete]'), /Delete 3 files\?/);
  await ada.page.click('[data-testid=tree-folder][data-path="helpers"] [data-testid=delete]');
  await waitFor(async () => (await treePaths(ada)).join() === 'main.py', 5_000, 'the folder deleted');
  assert.equal(await activeFile(ada), 'main.py', 'the tab of a deleted file closes');
}));
