// The IDE's rules for projects and tests, without a server: file names and sizes as Contract 2b
// allows them (frontend/src/paths.ts, the same rules as crates/submission/src/project.rs), how a
// collaborator's rename is recognised, the tree, the output comparison behind the Tests panel's
// diff (frontend/src/judge.ts, the same rule as crates/submission/src/judge.rs), and what saying
// which file is open costs in awareness updates (frontend/src/presence.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Awareness } from 'y-protocols/awareness';
import * as Y from 'yjs';
import { importIdeModule } from '../frontend/node-import.mjs';

const paths = await importIdeModule('paths');
const judge = await importIdeModule('judge');
const presence = await importIdeModule('presence');

const LIMITS = { max_files: 32, max_project_bytes: 256 * 1024, max_tests: 32, max_test_bytes: 64 * 1024 };

test('names: what the exec API takes is taken, the rest is refused with why', () => {
  for (const ok of ['main.py', 'lib/util.py', 'a/b/c.h', 'x-y_z.1', '.hidden', 'a..b', 'lib/.tmp', '.tmpx']) assert.equal(paths.pathProblem(ok), null, ok);
  const refused = {
    '': /empty/,
    '/etc/passwd': /relative/,
    'a//b': /empty folder name/,
    'dir/': /empty folder name/,
    '../x': /“\.” or “\.\.”/,
    'a/./b': /“\.” or “\.\.”/,
    'a b.py': /only letters/,
    'ü.py': /only letters/,
    'a\\b': /only letters/,
    'codebox-tests/1.in': /downloaded zip keeps the tests/,
    '.tmp': /sandbox keeps for itself/,
    '.codebox/x.c': /sandbox keeps for itself/,
    [`${'a'.repeat(251)}/b.py`]: /longer than 255 bytes/,
  };
  for (const [name, why] of Object.entries(refused)) assert.match(paths.pathProblem(name), why, JSON.stringify(name));
  assert.equal(paths.pathProblem('a'.repeat(255)), null, '255 bytes is the most');
});

test('a name is a file or a folder, once; sizes count the entry file and UTF-8 bytes', () => {
  const files = new Set(['main.py', 'lib/util.py']);
  const folders = new Set(['lib', 'empty']);
  assert.equal(paths.placeProblem('lib/new.py', 'file', files, folders), null);
  assert.match(paths.placeProblem('main.py', 'file', files, folders), /already a file/);
  assert.match(paths.placeProblem('lib', 'file', files, folders), /already a folder/);
  assert.match(paths.placeProblem('main.py/x.py', 'file', files, folders), /“main\.py” is a file/);
  assert.equal(paths.sizeProblem(32, 256 * 1024, LIMITS), null);
  assert.match(paths.sizeProblem(33, 1, LIMITS), /at most 32 files \(this would make 33\)/);
  assert.match(paths.sizeProblem(2, 256 * 1024 + 1, LIMITS), /at most 256 KiB/);
  assert.equal(paths.utf8Length('aé€😀'), 1 + 2 + 3 + 4);
  assert.deepEqual(paths.cutUtf8('aé€😀', 6), { text: 'aé€', truncated: true });
  assert.deepEqual(paths.cutUtf8('short', 4096), { text: 'short', truncated: false });
});

test('a collaborator\'s rename is recognised from what one change deleted and added', () => {
  assert.deepEqual([...paths.movedPaths(['a.py'], ['b.py'])], [['a.py', 'b.py']]);
  assert.deepEqual([...paths.movedPaths(['lib/a.py', 'lib/x/b.py'], ['src/lib/x/b.py', 'src/lib/a.py'])],
    [['lib/a.py', 'src/lib/a.py'], ['lib/x/b.py', 'src/lib/x/b.py']]);
  assert.deepEqual([...paths.movedPaths(['lib/a.py', 'lib/b.py'], ['x.py', 'y.py'])], [], 'not one folder moved: no moves');
  assert.deepEqual([...paths.movedPaths(['a.py', 'b.py'], [])], [], 'deleted');
});

test('the tree: folders first, then files, each by name; empty folders kept', () => {
  const tree = paths.buildTree(['main.py', 'lib/util.py', 'lib/b/z.py', 'a10.py', 'a9.py'], ['empty', 'lib/b']);
  assert.deepEqual(tree.folders.map((f) => f.path), ['empty', 'lib']);
  assert.deepEqual(tree.files, ['a9.py', 'a10.py', 'main.py']);
  assert.deepEqual(tree.folders[1].folders.map((f) => f.path), ['lib/b']);
  assert.deepEqual(tree.folders[1].files, ['lib/util.py']);
  assert.deepEqual(paths.ancestors('a/b/c.py'), ['a', 'a/b']);
  assert.equal(paths.rebase('lib/x/a.py', 'lib', 'src'), 'src/x/a.py');
  assert.equal(paths.within('lib2/a.py', 'lib'), false);
});

test('outputs compare as the judge compares them, and the diff pairs lines by number', () => {
  assert.equal(judge.outputsMatch('1 2\n3\n', '1 2   \n3\t\n'), true, 'trailing spaces and tabs');
  assert.equal(judge.outputsMatch('a\nb\n', 'a\r\nb'), true, 'CRLF and a missing final newline');
  assert.equal(judge.outputsMatch('a\nb', 'a\nb\n\n\n'), true, 'blank lines at the end');
  assert.equal(judge.outputsMatch('1 2\n', ' 1 2\n'), false, 'leading spaces count');
  assert.equal(judge.outputsMatch('a\n\nb\n', 'a\nb\n'), false, 'inner blank lines count');
  assert.equal(judge.outputsMatch('a\nb\n', 'a\rb\n'), false, 'a lone CR is not a line end');
  assert.deepEqual(judge.diffRows('11\ndone  \n\n', '10\ndone\nextra\n'), [
    { line: 1, expected: '11', actual: '10', same: false },
    { line: 2, expected: 'done  ', actual: 'done', same: true },
    { line: 3, expected: null, actual: 'extra', same: false },
  ]);
  assert.deepEqual(judge.diffRows('', '\n'), [], 'nothing and a blank line are the same');
});

test('saying which file is open sends one awareness update per switch of file, none otherwise', () => {
  const awareness = new Awareness(new Y.Doc());
  awareness.setLocalStateField('user', { name: 'Ada' });
  awareness.setLocalStateField('cursor', { anchor: 1, head: 1 });
  let updates = 0;
  awareness.on('update', () => { updates += 1; });
  presence.publishOpenFile(awareness, 'main.py');
  assert.equal(updates, 1);
  assert.deepEqual(awareness.getLocalState(), { user: { name: 'Ada' }, cursor: null, file: 'main.py' }, 'the cursor pointed into the file left');
  presence.publishOpenFile(awareness, 'main.py');
  presence.publishOpenFile(awareness, 'main.py');
  assert.equal(updates, 1, 'the same file again sends nothing');
  presence.publishOpenFile(awareness, 'lib/util.py');
  assert.equal(updates, 2);
  awareness.destroy();
});
