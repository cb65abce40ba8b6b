// Chromium (Debian's, driven by playwright-core) and what the tests do with a CodeBox page.

import { chromium } from 'playwright-core';
import { waitFor } from './stack.mjs';

const CHROMIUM = process.env.CODEBOX_CHROMIUM || '/usr/bin/chromium';
// ../shared/ENVIRONMENT.md: flags that work as root on these machines.
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** A new room on the edge at `base` (POST /rooms): `{room, edit_token, view_token, edit_url, view_url}`. */
export async function newRoom(base) {
  const response = await fetch(`${base}/rooms`, { method: 'POST' });
  if (response.status !== 201) throw new Error(`POST /rooms answered ${response.status}: ${await response.text()}`);
  return response.json();
}

/**
 * A person: their own browser context (own storage, like another machine) and page, with
 * their name and colour remembered as the IDE remembers them. Page errors are collected.
 */
export async function person(browser, { name, color, viewport = { width: 1280, height: 800 } }) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript(({ name, color }) => {
    if (!localStorage.getItem('codebox.user')) localStorage.setItem('codebox.user', JSON.stringify({ name, color }));
  }, { name, color });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  return { name, color, context, page, errors };
}

/** Opens `room` (from newRoom) with its edit link, or its view link, and waits until synced. */
export async function openRoom(who, room, role = 'edit') {
  await who.page.goto(role === 'edit' ? room.edit_url : room.view_url);
  await connected(who);
}

/** Waits for the connection pill to say the room is connected and synced. */
export function connected(who, timeoutMs = 20_000) {
  return who.page.waitForSelector('[data-testid=connection][data-state=connected]', { timeout: timeoutMs });
}

export const connectionState = (who) => who.page.getAttribute('[data-testid=connection]', 'data-state');

/** What the program editor shows (its CodeMirror document). */
export const editorText = (who) => who.page.evaluate(() => window.__codebox.editorText());
export const inputText = (who) => who.page.evaluate(() => window.__codebox.inputText());

/** Waits until the editor shows something (the starter program, once the room synced). */
export function editorReady(who, timeoutMs = 15_000) {
  return waitFor(async () => (await editorText(who))?.length > 0, timeoutMs, `${who.name}'s editor to show the program`);
}

/** Replaces the program, as pasting it would. */
export async function setProgram(who, text) {
  await who.page.click('[data-testid=code]');
  await who.page.keyboard.press('ControlOrMeta+a');
  await who.page.keyboard.insertText(text);
}

export async function setInput(who, text) {
  await who.page.click('[data-testid=stdin]');
  await who.page.keyboard.press('ControlOrMeta+a');
  await who.page.keyboard.insertText(text);
}

/** The run shown in the output panel: its status, texts and streams. */
export function shownRun(who) {
  return who.page.evaluate(() => {
    const head = document.querySelector('[data-testid=run-status]');
    const text = (sel) => document.querySelector(`[data-testid=output] [data-testid=${sel}] pre`)?.textContent ?? null;
    return head && {
      status: head.dataset.status,
      head: head.textContent,
      detail: document.querySelector('[data-testid=run-detail]')?.textContent ?? null,
      stdout: text('stdout'),
      stderr: text('stderr'),
      compileOutput: text('compile-output'),
      history: [...document.querySelectorAll('[data-testid=history-item]')].map((el) => el.dataset.status),
    };
  });
}

/** Waits until the shown run has a status in `statuses`; returns it. */
export function waitForRun(who, statuses, timeoutMs = 60_000) {
  const wanted = [statuses].flat();
  return waitFor(async () => {
    const run = await shownRun(who);
    return run && wanted.includes(run.status) ? run : null;
  }, timeoutMs, `${who.name} to see a run that is ${wanted.join(' or ')}`, 100);
}

/** Starts recording every status the output panel shows (read with recordedStatuses). */
export function recordStatuses(who) {
  return who.page.evaluate(() => {
    window.__statuses = [];
    const note = () => {
      const status = document.querySelector('[data-testid=run-status]')?.dataset.status;
      if (status && window.__statuses.at(-1) !== status) window.__statuses.push(status);
    };
    note();
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true });
  });
}

export const recordedStatuses = (who) => who.page.evaluate(() => window.__statuses);

/** Names in the "People" list. */
export const peopleNames = (who) =>
  who.page.$$eval('[data-testid=person] .person-name', (els) => els.map((el) => el.textContent));

/** Names on the remote cursors drawn in the program editor. */
export const cursorNames = (who) =>
  who.page.$$eval('[data-testid=editor] .cm-ySelectionInfo', (els) => els.map((el) => el.textContent));

/** The path of the file shown in the editor. */
export const activeFile = (who) => who.page.evaluate(() => window.__codebox.file());

/** The files in the tree (as paths), in the order shown. */
export const treePaths = (who) => who.page.$$eval('[data-testid=tree-file]', (els) => els.map((el) => el.dataset.path));

/** Names of the people the tree shows in the file `path`. */
export const peopleInFile = (who, path) =>
  who.page.$$eval(`[data-testid=tree-file][data-path="${path}"] [data-testid=file-person]`, (els) => els.map((el) => el.dataset.name));

/** Opens `path` from the tree and waits until the editor shows it. */
export async function openFile(who, path) {
  await who.page.click(`[data-testid=tree-file][data-path="${path}"] .tree-main`);
  await waitFor(async () => (await activeFile(who)) === path, 10_000, `${who.name}'s editor to show ${path}`);
}

/** Types `name` into the tree's name field (opened by `button`: new-file, new-folder…) and
 * presses Enter. */
export async function typeName(who, button, name) {
  await who.page.click(`[data-testid=${button}]`);
  await who.page.fill('[data-testid=name-input]', name);
  await who.page.press('[data-testid=name-input]', 'Enter');
}

/** Makes the file `path` from the tree's "New file" and waits until the editor shows it. */
export async function createFile(who, path) {
  await typeName(who, 'new-file', path);
  await waitFor(async () => (await activeFile(who)) === path, 10_000, `${who.name}'s new file ${path} to open`);
}

/** Adds a test in the Tests panel with `stdin` and `expected`. */
export async function addTest(who, stdin, expected) {
  await who.page.click('[data-testid=add-test]');
  for (const [field, text] of [['test-stdin', stdin], ['test-expected', expected]]) {
    await who.page.click(`[data-testid=${field}]`);
    await who.page.keyboard.press('ControlOrMeta+a');
    await who.page.keyboard.insertText(text);
  }
}

/** The Tests panel as shown: each row's status, and the selected test's result and diff. */
export function shownTests(who) {
  return who.page.evaluate(() => ({
    rows: [...document.querySelectorAll('[data-testid=test-row]')].map((el) => el.dataset.status),
    selected: document.querySelector('[data-testid=test-title]')?.textContent ?? null,
    verdict: document.querySelector('[data-testid=tests-verdict] .badge')?.dataset.status ?? null,
    result: document.querySelector('[data-testid=test-result]')?.dataset.status ?? null,
    diff: [...document.querySelectorAll('[data-testid=diff-row]')].map((row) => {
      const [expected, actual] = row.querySelectorAll('.diff-text');
      return { same: row.dataset.same === 'true', expected: expected.textContent, actual: actual.textContent };
    }),
  }));
}
