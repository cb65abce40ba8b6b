// The IDE in a real Chromium against the real stack, started as `make dev` starts it
// (scripts/dev.sh: the edge under wrangler dev serving the IDE, the exec API, the fleet in Docker).
//
//   node --test --test-concurrency=1 e2e-browser/
//   CODEBOX_UPDATE_SCREENSHOT=1 node --test e2e-browser/   also rewrites docs/screenshot.png
//
// The tests run in order in one stack; the last one presses Ctrl-C on it.

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';

import {
  connected, connectionState, cursorNames, editorReady, editorText, inputText, openRoom, peopleNames,
  recordStatuses, recordedStatuses, setInput, setProgram, shownRun, newRoom, waitForRun,
} from './browser.mjs';
import { browserSuite } from './suite.mjs';
import { LoneEdge, REPO, alive, freePort, portOpen, sleep, waitFor } from './stack.mjs';

const ADA = { name: 'Ada Lovelace', color: '#6e56cf' };
const GRACE = { name: 'Grace Hopper', color: '#12a594' };
const LINUS = { name: 'Linus Torvalds', color: '#f76b15' };

const suite = browserSuite();
const { e2e, serverDoc } = suite;

/** The room's document as the edge stores it (GET /rooms/{room}/snapshot, with its view token). */
/** The link the open Share menu shows for `role`, once loaded. */
async function linkShown(who, role) {
  const field = `[data-testid=share-${role}-link]`;
  await waitFor(async () => /#(edit|view)=/.test(await who.page.inputValue(field)), 10_000, `${who.name}'s ${role} link`);
  return who.page.inputValue(field);
}

test('the edge serves the IDE (SPA fallback for /r/{room}) and proxies /api to the exec API', { timeout: 60_000 }, e2e(async () => {
  const index = await fetch(`${suite.stack.url}/`);
  assert.equal(index.status, 200);
  const html = await index.text();
  assert.match(html, /<script type="module" src="\/assets\/main-[A-Z0-9]+\.js">/);
  const roomPage = await fetch(`${suite.stack.url}/r/some-room-1`, { headers: { accept: 'text/html', 'sec-fetch-mode': 'navigate' } });
  assert.equal(roomPage.status, 200);
  assert.equal(await roomPage.text(), html, '/r/{room} serves index.html');
  const script = html.match(/src="(\/assets\/[^"]+)"/)[1];
  const asset = await fetch(`${suite.stack.url}${script}`);
  assert.equal(asset.status, 200);
  assert.match(asset.headers.get('content-type'), /javascript/);

  const languages = await fetch(`${suite.stack.url}/api/v1/languages`);
  assert.equal(languages.status, 200);
  const ids = (await languages.json()).languages.map((l) => l.id).sort();
  assert.deepEqual(ids, ['c', 'cpp', 'go', 'javascript', 'python', 'rust']);
  // A run needs the room's edit token; method, body and content type reach the exec API and
  // its errors come back as they are.
  const room = await newRoom(suite.stack.url);
  const submit = (body, token = room.edit_token) => fetch(`${suite.stack.url}/api/v1/submissions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body),
  });
  const viewer = await submit({ language: 'python', source: 'print(1)' }, room.view_token);
  assert.equal(viewer.status, 403);
  assert.equal((await viewer.json()).error.code, 'view_only');
  const rejected = await submit({ language: 'cobol', source: 'x' });
  assert.equal(rejected.status, 422);
  assert.equal((await rejected.json()).error.code, 'unknown_language');
  const accepted = await submit({ language: 'python', source: 'print(6*7)' });
  assert.equal(accepted.status, 202);
  const { id } = await accepted.json();
  const record = await waitFor(async () => {
    const r = await (await fetch(`${suite.stack.url}/api/v1/submissions/${id}`)).json();
    return r.status === 'ok' && r;
  }, 60_000, 'the proxied submission to finish', 200);
  assert.equal(record.stdout, '42\n');
  const missing = await fetch(`${suite.stack.url}/api/v1/submissions/nope`);
  assert.equal(missing.status, 404);
  // The Worker's own paths still win over the assets.
  assert.equal((await fetch(`${suite.stack.url}/rooms/x`)).status, 401);
}));

test('landing page: create a room, share its edit link, and the link opens it for someone else', { timeout: 60_000 }, e2e(async ({ join }) => {
  const ada = await join(ADA);
  await ada.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: suite.stack.url });
  await ada.page.goto(`${suite.stack.url}/`);
  await ada.page.click('[data-testid=create-room]');
  await ada.page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/); // 128 random bits; the token left the address bar
  const room = new URL(ada.page.url()).pathname.split('/')[2];
  await connected(ada);
  assert.equal(await ada.page.textContent('[data-testid=room-name]'), room);
  await ada.page.click('[data-testid=share]');
  const editLink = await linkShown(ada, 'edit');
  assert.match(editLink, new RegExp(`^${suite.stack.url}/r/${room}#edit=[A-Za-z0-9_-]+$`));
  assert.match(await linkShown(ada, 'view'), new RegExp(`^${suite.stack.url}/r/${room}#view=[A-Za-z0-9_-]+$`));
  await ada.page.click('[data-testid=copy-edit-link]');
  await ada.page.waitForSelector('[data-testid=copy-edit-link]:has-text("Copied")');
  assert.equal(await ada.page.evaluate(() => navigator.clipboard.readText()), editLink);

  const grace = await join(GRACE);
  await grace.page.goto(`${suite.stack.url}/`);
  // A bare room name is not enough: the link carries the key.
  await grace.page.fill('[data-testid=join-input]', room);
  await grace.page.click('[data-testid=join-room]');
  await grace.page.waitForSelector('.form-error:has-text("whole link")');
  await grace.page.fill('[data-testid=join-input]', editLink); // a pasted link works
  await grace.page.click('[data-testid=join-room]');
  await grace.page.waitForURL(`${suite.stack.url}/r/${room}`);
  await connected(grace);
  await waitFor(async () => (await peopleNames(grace)).includes(ADA.name), 10_000, 'Grace to see Ada here');
  // Names are remembered and editable: Grace renames herself, Ada sees it live.
  await grace.page.click('[data-testid=me]');
  await grace.page.fill('[data-testid=name-input]', 'Rear Admiral Hopper');
  await grace.page.keyboard.press('Enter');
  await waitFor(async () => (await peopleNames(ada)).includes('Rear Admiral Hopper'), 10_000, 'Ada to see the new name');
  assert.equal(JSON.parse(await grace.page.evaluate(() => localStorage.getItem('codebox.user'))).name, 'Rear Admiral Hopper');
  // The room is among Grace's recent rooms, and opens from there.
  await grace.page.goto(`${suite.stack.url}/`);
  await grace.page.click(`[data-testid=recent-room]:has-text("${room}")`);
  await connected(grace);
  // Without its link, a room does not open.
  const linus = await join(LINUS);
  await linus.page.goto(`${suite.stack.url}/r/${room}`);
  await linus.page.waitForSelector('.form-error:has-text("opens only with its link")');
}));

test('a viewer follows live but cannot type or run; rotating the links locks the old ones out with a message', { timeout: 120_000 }, e2e(async ({ join }) => {
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  const room = await newRoom(suite.stack.url);
  await openRoom(ada, room);
  await editorReady(ada);
  await setProgram(ada, 'print("shown to viewers")\n');
  await ada.page.click('[data-testid=share]');
  const viewLink = await linkShown(ada, 'view');
  await ada.page.keyboard.press('Escape');

  await grace.page.goto(viewLink);
  await connected(grace);
  await waitFor(async () => (await editorText(grace)) === 'print("shown to viewers")\n', 10_000, 'Grace to see the program');
  const stdin = await inputText(ada);
  assert.equal(await inputText(grace), stdin);
  assert.equal(await grace.page.isVisible('[data-testid=view-only]'), true, 'the view-only badge');
  assert.equal(await grace.page.$('[data-testid=run]'), null, 'no Run button');
  assert.equal(await grace.page.isDisabled('[data-testid=language]'), true, 'no language switch');
  await grace.page.click('[data-testid=share]');
  assert.equal(await grace.page.$('[data-testid=share-edit-link]'), null, 'a viewer has no edit link to give');
  await grace.page.keyboard.press('Escape');
  // Typing, pasting, undo and Ctrl-Enter change nothing, anywhere.
  await grace.page.click('[data-testid=code]');
  await grace.page.keyboard.type('x = 1');
  await grace.page.keyboard.insertText('pasted');
  await grace.page.keyboard.press('ControlOrMeta+z');
  await grace.page.keyboard.press('ControlOrMeta+Enter');
  await grace.page.click('[data-testid=stdin]');
  await grace.page.keyboard.type('input');
  await sleep(1000);
  assert.equal(await editorText(grace), 'print("shown to viewers")\n');
  assert.equal(await inputText(grace), stdin);
  assert.equal((await serverDoc(room)).getText('source:python').toString(), 'print("shown to viewers")\n', 'the room did not change');
  assert.equal((await serverDoc(room)).getArray('runs').length, 0, 'nothing ran');
  assert.equal(await connectionState(grace), 'connected', 'and the viewer was not disconnected');
  // Ada sees Grace as a viewer, and her edits reach Grace live.
  await waitFor(async () => (await ada.page.$$eval('[data-testid=person][data-role=view] .person-name', (els) => els.map((el) => el.textContent))).includes(GRACE.name),
    10_000, 'Ada to see Grace as viewing');
  await setProgram(ada, 'print("edited live")\n');
  await waitFor(async () => (await editorText(grace)) === 'print("edited live")\n', 10_000, 'Grace to see the edit');

  // Ada rotates the links (after a confirmation).
  await ada.page.click('[data-testid=share]');
  const oldEdit = await linkShown(ada, 'edit');
  await ada.page.click('[data-testid=rotate-links]');
  await ada.page.click('[data-testid=confirm-rotate]');
  await ada.page.waitForSelector('[data-testid=share-note]:has-text("New links made")');
  const [newEdit, newView] = [await linkShown(ada, 'edit'), await linkShown(ada, 'view')];
  assert.notEqual(newEdit, oldEdit);
  assert.notEqual(newView, viewLink);
  // Grace is told at once, and stops reconnecting; Ada carries on with the new link.
  await grace.page.waitForSelector('[data-testid=lockout]', { timeout: 8_000 });
  assert.match(await grace.page.textContent('[data-testid=lockout-message]'), /replaced by a newer one/);
  assert.equal(await connectionState(grace), 'locked');
  await connected(ada);
  await setProgram(ada, 'print("after rotation")\n');
  await waitFor(async () => (await serverDoc({ ...room, view_token: new URL(newView).hash.split('=')[1] })).getText('source:python').toString() === 'print("after rotation")\n',
    10_000, 'Ada\'s edit after the rotation to reach the room');
  // The old link, opened again, explains itself instead of spinning.
  await grace.page.goto(viewLink);
  await grace.page.waitForSelector('[data-testid=lockout]', { timeout: 15_000 });
  assert.match(await grace.page.textContent('[data-testid=lockout-message]'), /replaced by a newer one/);
  // The new view link works; Ada's reload keeps her (new) edit access.
  await grace.page.goto(newView);
  await connected(grace);
  await waitFor(async () => (await editorText(grace)) === 'print("after rotation")\n', 10_000, 'Grace to see the room again');
  await ada.page.reload();
  await connected(ada);
  assert.equal(await ada.page.isVisible('[data-testid=run]'), true, 'Ada can still run after a reload');
}));

test('two people type at the same time, end with identical text, and see each other\'s name and cursor', { timeout: 90_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await Promise.all([editorReady(ada), editorReady(grace)]);
  const starter = await editorText(ada);
  assert.match(starter, /sys\.stdin/, 'a new room shows the Python starter, which reads stdin');
  assert.equal(await editorText(grace), starter, 'both see one starter, not two');

  // Ada types at the end of line 1 while Grace types at the end of the program.
  await ada.page.click('[data-testid=code]');
  await ada.page.keyboard.press('ControlOrMeta+Home');
  await ada.page.keyboard.press('End');
  await grace.page.click('[data-testid=code]');
  await grace.page.keyboard.press('ControlOrMeta+End');
  const adaTypes = ' # typed by Ada';
  const graceTypes = '# typed by Grace, at the same time';
  await Promise.all([
    ada.page.keyboard.type(adaTypes, { delay: 12 }),
    grace.page.keyboard.type(graceTypes, { delay: 12 }),
  ]);
  const final = await waitFor(async () => {
    const [a, g] = await Promise.all([editorText(ada), editorText(grace)]);
    return a === g && a.includes(adaTypes) && a.includes(graceTypes) && a;
  }, 15_000, 'both editors to show both edits');
  assert.equal(final.split('\n')[0], starter.split('\n')[0] + adaTypes);
  assert.ok(final.endsWith(`${graceTypes}`), 'Grace\'s text ends the program');
  assert.equal((await serverDoc(room)).getText('source:python').toString(), final, 'the edge stores the same text');

  // Presence: each sees the other in the list, and the other's cursor, labelled with their name.
  await waitFor(async () => (await peopleNames(ada)).includes(GRACE.name) && (await peopleNames(grace)).includes(ADA.name), 10_000, 'each to list the other');
  await waitFor(async () => (await cursorNames(ada)).includes(GRACE.name), 10_000, 'Ada to see Grace\'s cursor');
  await waitFor(async () => (await cursorNames(grace)).includes(ADA.name), 10_000, 'Grace to see Ada\'s cursor');
  // Grace's caret sits where she stopped typing: the end of the program, in her colour.
  const caret = await ada.page.$eval('[data-testid=editor] .cm-ySelectionCaret', (el) => ({
    line: el.closest('.cm-line')?.textContent ?? '', color: getComputedStyle(el).backgroundColor,
  }));
  assert.ok(caret.line.includes(graceTypes), `Grace's caret is on her line (${caret.line})`);
  assert.equal(caret.color, 'rgb(18, 165, 148)');

  if (process.env.CODEBOX_UPDATE_SCREENSHOT === '1') {
    await ada.page.keyboard.press('ControlOrMeta+Enter');
    await Promise.all([waitForRun(ada, 'ok'), waitForRun(grace, 'ok')]);
    await ada.page.mouse.move(0, 0);
    await sleep(300);
    await ada.page.screenshot({ path: path.join(REPO, 'docs', 'screenshot.png') });
  }
}));

test('a Python run reading stdin: both people see the same status and output, live', { timeout: 120_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await Promise.all([editorReady(ada), editorReady(grace)]);
  // The stdin box is shared: Grace fills it, Ada's shows it.
  await setInput(grace, 'Alan\nBarbara\n');
  await waitFor(async () => (await inputText(ada)) === 'Alan\nBarbara\n', 10_000, 'Ada to see Grace\'s input');
  await Promise.all([recordStatuses(ada), recordStatuses(grace)]);

  await ada.page.click('[data-testid=code]');
  await ada.page.keyboard.press('ControlOrMeta+Enter');
  const [seenByAda, seenByGrace] = await Promise.all([waitForRun(ada, 'ok'), waitForRun(grace, 'ok')]);
  assert.equal(seenByAda.stdout, 'Hello, Alan!\nHello, Barbara!\n');
  assert.equal(seenByAda.stderr, '2 name(s) read\n');
  assert.deepEqual(seenByGrace, seenByAda, 'Grace sees exactly what Ada sees');
  assert.match(seenByGrace.head, /Finished.*Python.*by Ada Lovelace.*exit 0/);
  // Grace watched it happen: at least one unfinished status before the end.
  const graceSaw = await recordedStatuses(grace);
  assert.equal(graceSaw.at(-1), 'ok');
  assert.ok(graceSaw.some((s) => ['submitting', 'queued', 'running'].includes(s)), `Grace saw it in progress (${graceSaw})`);

  // The run is in the room's document, so it is shared and stored.
  const runs = (await serverDoc(room)).getArray('runs').toArray().map((m) => m.toJSON());
  assert.equal(runs.length, 1);
  assert.equal(runs[0].status, 'ok');
  assert.equal(runs[0].by, ADA.name);
  assert.equal(runs[0].stdout, 'Hello, Alan!\nHello, Barbara!\n');

  // The language is shared too: Grace switches to Go, Ada's editor follows with the Go starter.
  await grace.page.selectOption('[data-testid=language]', 'go');
  await waitFor(async () => (await editorText(ada))?.startsWith('// Reads names') && (await editorText(ada)).includes('package main'), 10_000, 'Ada to get the Go program');
  assert.equal(await ada.page.inputValue('[data-testid=language]'), 'go');
  await grace.page.click('[data-testid=run]');
  // Two runs in the history now: wait for the new one (the Python run is already 'ok').
  const goRun = await waitFor(async () => {
    const run = await shownRun(ada);
    return run && run.history.length === 2 && run.status === 'ok' ? run : null;
  }, 90_000, "Ada to see Grace's Go run finish", 100);
  assert.equal(goRun.stdout, 'Hello, Alan!\nHello, Barbara!\n');
  assert.match(goRun.head, /Go.*by Grace Hopper/);
}));

test('a live console: Ada runs a program that asks for a name, Grace answers in the console, both see the greeting as it is printed', { timeout: 150_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await Promise.all([editorReady(ada), editorReady(grace)]);
  await setProgram(ada, 'name = input("Your name? ")\nprint(f"Hello, {name}!", flush=True)\nimport time\ntime.sleep(1)\nprint("bye")\n');
  // An empty stdin panel: the program reads what the room types.
  await setInput(ada, '');
  await ada.page.click('[data-testid=run]');
  const transcript = (who) => who.page.textContent('[data-testid=console]').catch(() => null);
  await Promise.all([ada, grace].map((who) => waitFor(async () => (await transcript(who))?.includes('Your name?'), 60_000, `${who.name} to see the question`)));
  await grace.page.fill('[data-testid=console-input]', 'Grace');
  await grace.page.press('[data-testid=console-input]', 'Enter');
  // Both see the greeting before the run has ended (it sleeps a second after it).
  const greeted = async (who) => {
    await waitFor(async () => (await transcript(who))?.includes('Hello, Grace!'), 20_000, `${who.name} to see the greeting`);
    return (await shownRun(who)).status;
  };
  const [adaStatus, graceStatus] = await Promise.all([greeted(ada), greeted(grace)]);
  assert.ok(['running', 'queued'].includes(adaStatus) || ['running', 'queued'].includes(graceStatus), `seen live (${adaStatus}, ${graceStatus})`);
  // Grace's line is echoed, with her name, for Ada too.
  const echo = await ada.page.textContent('[data-testid=console] .con-in');
  assert.match(echo, /Grace/);
  const [end, endForGrace] = await Promise.all([waitForRun(ada, 'ok'), waitForRun(grace, 'ok')]);
  assert.match(await transcript(ada), /Your name\? ?Grace[\s\S]*Hello, Grace!\s*bye/);
  assert.equal(await transcript(grace), await transcript(ada));
  assert.equal(end.status, endForGrace.status);
  // The input line is gone once the run ended.
  assert.equal(await ada.page.isVisible('[data-testid=console-input]'), false);
}));

test('after a reload the program and the run history are still there', { timeout: 120_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const ada = await join(ADA);
  await openRoom(ada, room);
  await editorReady(ada);
  await setProgram(ada, 'print("kept across reloads")\n');
  await ada.page.click('[data-testid=run]');
  await waitForRun(ada, 'ok');
  await setProgram(ada, 'print("second")\nprint(1/0)\n');
  await ada.page.click('[data-testid=run]');
  const before = await waitForRun(ada, 'runtime_error');
  assert.match(before.stderr, /ZeroDivisionError/);
  assert.match(before.detail, /exited with code 1/);

  assert.equal(new URL(ada.page.url()).hash, '', 'the token left the address bar: the browser remembers it');
  await ada.page.reload();
  await connected(ada);
  await waitFor(async () => (await editorText(ada)) === 'print("second")\nprint(1/0)\n', 10_000, 'the program after the reload');
  const after = await waitForRun(ada, 'runtime_error', 10_000);
  assert.deepEqual(after, before, 'the same run is shown after the reload');
  assert.deepEqual(after.history, ['runtime_error', 'ok'], 'the history, newest first');
  // Someone arriving later gets it all too, and can open the older run.
  const linus = await join(LINUS);
  await openRoom(linus, room);
  await waitFor(async () => (await editorText(linus)) === 'print("second")\nprint(1/0)\n', 10_000, 'Linus to see the program');
  await linus.page.click('[data-testid=history-item][data-status=ok]');
  const older = await waitForRun(linus, 'ok', 5_000);
  assert.equal(older.stdout, 'kept across reloads\n');
}));

test('a person who goes offline keeps editing, and converges with the others on reconnecting', { timeout: 90_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await Promise.all([editorReady(ada), editorReady(grace)]);
  await waitFor(async () => (await peopleNames(grace)).includes(ADA.name), 10_000, 'Grace to see Ada');

  await ada.context.setOffline(true);
  await waitFor(async () => (await connectionState(ada)) === 'offline', 10_000, 'Ada\'s page to say it is offline');
  await ada.page.click('[data-testid=code]');
  await ada.page.keyboard.press('ControlOrMeta+End');
  await ada.page.keyboard.type('# written offline by Ada');
  await grace.page.click('[data-testid=code]');
  await grace.page.keyboard.press('ControlOrMeta+Home');
  await grace.page.keyboard.type('# written online by Grace\n');
  await setInput(ada, 'offline input\n');
  await sleep(1000);
  assert.ok(!(await editorText(grace)).includes('offline by Ada'), 'nothing leaks while offline');
  assert.equal(await connectionState(ada), 'offline');

  await ada.context.setOffline(false);
  await connected(ada);
  const final = await waitFor(async () => {
    const [a, g] = await Promise.all([editorText(ada), editorText(grace)]);
    return a === g && a.includes('# written offline by Ada') && a.startsWith('# written online by Grace\n') && a;
  }, 15_000, 'the two editors to converge');
  assert.equal((await serverDoc(room)).getText('source:python').toString(), final);
  await waitFor(async () => (await inputText(grace)) === 'offline input\n', 10_000, 'Grace to get the offline input');
  await waitFor(async () => (await peopleNames(grace)).includes(ADA.name), 10_000, 'Grace to see Ada back');
}));

test('a C compile error shows the compiler output; an endless loop is stopped at the named time limit', { timeout: 150_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await ada.page.selectOption('[data-testid=language]', 'c');
  await waitFor(async () => (await editorText(ada))?.includes('#include <stdio.h>'), 10_000, 'the C starter');
  await setProgram(ada, 'int main(void) {\n    return undefined_thing;\n}\n');
  await ada.page.keyboard.press('ControlOrMeta+Enter');
  const [compile, compileForGrace] = await Promise.all([waitForRun(ada, 'compile_error'), waitForRun(grace, 'compile_error')]);
  assert.match(compile.head, /Compile error/);
  assert.match(compile.compileOutput, /undefined_thing/);
  assert.match(compile.compileOutput, /error/);
  assert.deepEqual(compileForGrace, compile);

  await grace.page.selectOption('[data-testid=language]', 'python');
  await waitFor(async () => (await ada.page.inputValue('[data-testid=language]')) === 'python', 10_000, 'Ada to switch to Python');
  await setProgram(grace, 'while True: pass\n');
  await grace.page.keyboard.press('ControlOrMeta+Enter');
  const [limit, limitForAda] = await Promise.all([waitForRun(grace, 'time_limit_exceeded', 90_000), waitForRun(ada, 'time_limit_exceeded', 90_000)]);
  assert.match(limit.head, /Time limit exceeded/);
  assert.match(limit.detail, /5 s time limit/);
  assert.deepEqual(limitForAda, limit);
  assert.deepEqual(limit.history, ['time_limit_exceeded', 'compile_error']);
}));

test('a run the exec API refuses shows its error code and message', { timeout: 60_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const ada = await join(ADA);
  await openRoom(ada, room);
  await editorReady(ada);
  await setProgram(ada, `print("big")\n#${'x'.repeat(70 * 1024)}\n`);
  await ada.page.click('[data-testid=run]');
  const run = await waitForRun(ada, 'error', 20_000);
  assert.match(run.head, /Could not run/);
  assert.match(run.detail, /too_large/);
  assert.match(run.detail, /65536/, 'the message says the limit');
}));

test('when a runner leaves mid-run, someone still in the room finishes following it', { timeout: 90_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const [ada, grace] = await Promise.all([join(ADA), join(GRACE)]);
  await Promise.all([openRoom(ada, room), openRoom(grace, room)]);
  await editorReady(ada);
  await setProgram(ada, 'import time\ntime.sleep(2)\nprint("finished without Ada")\n');
  await ada.page.keyboard.press('ControlOrMeta+Enter');
  await waitForRun(grace, ['queued', 'running']);
  await ada.context.close(); // Ada's tab is gone: nobody is polling the exec API for this run
  const run = await waitForRun(grace, 'ok', 45_000);
  assert.equal(run.stdout, 'finished without Ada\n');
}));

test('narrow window: the output comes right below the editor; wide: beside it', { timeout: 60_000 }, e2e(async ({ join }) => {
  const room = await newRoom(suite.stack.url);
  const ada = await join({ ...ADA, viewport: { width: 420, height: 860 } });
  await openRoom(ada, room);
  await editorReady(ada);
  const box = (sel) => ada.page.$eval(sel, (el) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height, bottom: r.bottom, right: r.right }; });
  const editor = await box('[data-testid=editor]');
  const output = await box('.panel-output');
  assert.ok(output.y >= editor.bottom - 1, `output (y=${output.y}) below the editor (bottom=${editor.bottom})`);
  assert.ok(editor.w <= 420 && output.w <= 420, 'nothing wider than the window');
  const overflow = await ada.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px)`);
  assert.equal(await ada.page.isVisible('[data-testid=run]'), true);
  assert.equal(await ada.page.isVisible('[data-testid=connection]'), true);

  await ada.page.setViewportSize({ width: 1280, height: 800 });
  await sleep(200);
  const wideEditor = await box('[data-testid=editor]');
  const wideOutput = await box('.panel-output');
  assert.ok(wideOutput.x >= wideEditor.right - 1, 'output beside the editor on a laptop screen');
}));

test('runs through the edge: the room\'s edit token, then the exec API gets the body, the room, the client address and the edge secret; a hung, dead or oversized request gets an edge error', { timeout: 120_000 }, e2e(async () => {
  const seen = [];
  const upstream = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (req.url.startsWith('/v1/languages') && upstream.hang) return; // never answers
      res.writeHead(201, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ error: { code: 'teapot', message: 'from upstream' } }));
    });
  });
  const upstreamPort = await freePort();
  await new Promise((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
  const secret = 'an-edge-secret-of-at-least-32-bytes-for-tests';
  const edge = await LoneEdge.start({ execApiUrl: `http://127.0.0.1:${upstreamPort}/`, vars: { CODEBOX_EDGE_SECRET: secret } });
  try {
    const room = await newRoom(edge.url);
    const submit = (headers, body = '{"language":"python"}') => fetch(`${edge.url}/api/v1/submissions`, {
      method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', ...headers }, body,
    });
    assert.equal((await submit({})).status, 401, 'no token');
    assert.equal((await submit({ authorization: `Bearer ${room.view_token}` })).status, 403, 'a view token');
    assert.equal(seen.length, 0, 'refused runs never reach the exec API');
    const response = await submit({
      authorization: `Bearer ${room.edit_token}`, 'x-forwarded-for': '203.0.113.9', 'x-codebox-edge-secret': 'forged', 'x-codebox-room': 'another-room', cookie: 'session=secret',
    });
    assert.equal(response.status, 201, 'the upstream status comes back');
    assert.equal(response.headers.get('retry-after'), '7', 'and its headers');
    assert.deepEqual(await response.json(), { error: { code: 'teapot', message: 'from upstream' } });
    const request = seen.at(-1);
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/v1/submissions');
    assert.equal(request.body, '{"language":"python"}');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the client address, not what the client claims');
    assert.equal(request.headers['x-codebox-room'], room.room, 'the room the token names, not the one the client claims');
    assert.equal(request.headers.cookie, undefined, 'cookies stay at the edge');
    assert.equal(request.headers.authorization, undefined, 'the room token stays at the edge');
    assert.equal(request.headers['x-codebox-edge-secret'], secret, 'the edge proves itself; a client cannot');

    // Past the most the edge buffers: a project and its tests (6 MiB, codebox-access's MAX_SUBMISSION_BODY_BYTES).
    const tooBig = await submit({ authorization: `Bearer ${room.edit_token}` }, 'x'.repeat(6 * 1024 * 1024 + 1));
    assert.equal(tooBig.status, 413);
    assert.equal((await tooBig.json()).error.code, 'payload_too_large');

    upstream.hang = true;
    const started = Date.now();
    const hung = await fetch(`${edge.url}/api/v1/languages`);
    assert.equal(hung.status, 504);
    assert.equal((await hung.json()).error.code, 'exec_api_timeout');
    assert.ok(Date.now() - started < 20_000, 'the edge gives up on a hung exec API');

    await new Promise((resolve) => { upstream.close(resolve); upstream.closeAllConnections(); });
    const dead = await fetch(`${edge.url}/api/v1/languages`);
    assert.equal(dead.status, 503);
    assert.equal(dead.headers.get('content-type'), 'application/json');
    const body = await dead.json();
    assert.equal(body.error.code, 'exec_api_unreachable');
    assert.match(body.error.message, /unreachable/);
  } finally {
    upstream.closeAllConnections();
    upstream.close();
    await edge.dispose();
  }
}));

test('an unreachable exec API is reported at once, with its error code, instead of a spinner', { timeout: 120_000 }, e2e(async ({ join }) => {
  const dead = await LoneEdge.withDeadExecApi();
  try {
    const ada = await join(ADA);
    await openRoom(ada, await newRoom(dead.url));
    await editorReady(ada);
    const started = Date.now();
    await ada.page.click('[data-testid=run]');
    const run = await waitForRun(ada, 'error', 20_000);
    assert.ok(Date.now() - started < 15_000, 'reported within seconds');
    assert.match(run.head, /Could not run/);
    assert.match(run.detail, /exec_api_unreachable/);
    assert.match(run.detail, /exec API is unreachable/);
    assert.equal(await ada.page.$eval('[data-testid=run]', (el) => el.classList.contains('busy')), false, 'the Run button is idle again');
  } finally {
    await dead.dispose();
  }
}));

test('Ctrl-C on `make dev` stops every process it started', { timeout: 60_000 }, e2e(async () => {
  const processes = suite.stack.processes();
  const names = processes.map((p) => p.comm);
  for (const expected of ['exec-lambda', 'exec-fleet', 'workerd']) {
    assert.ok(names.some((n) => n.startsWith(expected)), `${expected} is running under make dev (${names.join(', ')})`);
  }
  const { code, signal } = await suite.stack.interrupt();
  assert.ok(code === 130 || signal === 'SIGINT', `dev.sh ended by Ctrl-C (code ${code}, signal ${signal})`);
  await waitFor(() => processes.every((p) => !alive(p.pid)), 20_000, 'every process make dev started to exit');
  assert.equal(await portOpen(suite.stack.edgePort), false, 'the edge port is closed');
  assert.equal(await portOpen(suite.stack.execPort), false, 'the exec API port is closed');
  assert.match(suite.stack.dev.log, /stopped/);
  assert.doesNotMatch(suite.stack.dev.log, /did not stop on SIGTERM/, 'everything stopped on SIGTERM, none needed SIGKILL');
}));
