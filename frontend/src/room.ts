// A room: the panels that render from the Y.Doc and awareness, composed: the Files panel
// (filetree.ts), the editor pane with its tabs (editorpane.ts) and the Tests panel below it
// (tests.ts), people.ts, output.ts (and its console.ts), share.ts, profile.ts and the
// connection (connection.ts); presence.ts shapes the awareness traffic. This module holds the
// toolbar's Run and what running needs. What this page may do follows its link's role: a
// viewer's editors, tree and tests are read-only, and it never writes to the document (no Run,
// no seeding, no run take-over).

import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { forgetAccess, rememberLinks, rotateLinks, type RoomAccess } from './access';
import { languages as fetchLanguages } from './api';
import { watchConnection } from './connection';
import { h, icon, logo, panelHead, setChildren } from './dom';
import { createTextEditor } from './editor';
import { createEditorPane } from './editorpane';
import { createFileTree } from './filetree';
import { colorLight, type User } from './identity';
import { setRunLimits } from './limits';
import { createOutput } from './output';
import { createPeople } from './people';
import { quietPresence } from './presence';
import { createProfile } from './profile';
import { createRunner, type Runner } from './runner';
import { createShareMenu } from './share';
import { RoomDoc, TERMINAL } from './shared';
import { createTestsPanel } from './tests';

const isMac = /Mac|iPhone|iPad/.test(navigator.platform);
const MOD = isMac ? '⌘' : 'Ctrl';

export function mountRoom(root: HTMLElement, opened: RoomAccess, user: User): void {
  let access = opened;
  const roomName = access.room;
  const canEdit = access.role === 'edit';
  document.title = `${roomName} · CodeBox`;

  const doc = new Y.Doc();
  const room = new RoomDoc(doc);
  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rooms`;
  const provider = new WebsocketProvider(wsBase, roomName, doc, { maxBackoffTime: 4000, params: { token: access.token } });
  quietPresence(provider);
  const awareness = provider.awareness;
  const publishUser = () => awareness.setLocalStateField('user', { name: user.name, color: user.color, colorLight: colorLight(user.color) });
  publishUser();

  // --- panels ----------------------------------------------------------------------------------
  const topbar = h('header', { class: 'topbar' });
  const connection = watchConnection(provider, () => access, {
    synced() {
      if (canEdit) room.seedStdin();
      pane.synced();
    },
    lockedOut(message, code) {
      forgetAccess(roomName, code === 'room_not_found' ? undefined : access.token);
      showLockout(root, message);
    },
    changed: () => schedule(),
  });
  const people = createPeople(awareness, !canEdit);
  const profile = createProfile(topbar, user, () => {
    publishUser();
    schedule();
  });
  const share = createShareMenu(topbar, () => access, () => connection.rotating(rotate()));
  const output = createOutput(room,
    canEdit ? h('span', null, 'Press ', h('b', null, 'Run'), ' or ', h('kbd', null, `${MOD} ↵`), '. Everyone here sees the output.') : null,
    () => schedule(), canEdit ? { room: roomName, token: () => access.token, user } : null);
  const runLabel = h('span', null, 'Run');
  const runButton = canEdit
    ? h('button', { class: 'btn run', type: 'button', title: `Run (${MOD}+Enter)`, dataset: { testid: 'run' }, onclick: () => void runNow(false) },
      icon('play'), runLabel, h('kbd', null, `${MOD} ↵`))
    : null;
  const tests = createTestsPanel({ room, awareness, canEdit, onRunTests: () => void runNow(true), submitting: () => submitting });
  const pane = createEditorPane({
    room, roomName, awareness, canEdit, isSynced: () => provider.synced, actions: runButton, below: tests.element, onRun: () => void runNow(false),
  });
  const files = createFileTree({
    room, roomName, awareness, canEdit, project: () => pane.project(), active: () => pane.tabs.active(), open: (path) => pane.tabs.open(path),
  });

  /** Rotates the links, remembers the new ones and reconnects with the new edit token (the old
   * socket is told "link rotated" meanwhile: `connection.rotating` keeps that from locking out). */
  async function rotate() {
    const links = await rotateLinks(access);
    rememberLinks(links);
    access = { room: roomName, role: 'edit', token: links.edit_token };
    provider.params = { token: access.token };
    provider.disconnect();
    provider.connect();
    return links;
  }

  // --- layout ----------------------------------------------------------------------------------
  setChildren(topbar,
    h('a', { class: 'brand', href: '/', title: 'CodeBox home' }, logo(), h('span', { class: 'brand-name' }, 'CodeBox')),
    h('div', { class: 'crumb' }, h('span', { class: 'sep' }, '/'), h('span', { class: 'room-name', title: roomName, dataset: { testid: 'room-name' } }, roomName)),
    canEdit ? null : h('span', { class: 'view-only', title: 'You can see the room and its runs, not change them', dataset: { testid: 'view-only' } }, icon('eye'), 'View only'),
    share,
    h('div', { class: 'spacer' }),
    connection.pill,
    people.avatars,
    profile.button);
  const inputHost = h('div', { class: 'input-host' });
  const side = h('aside', { class: 'side' },
    people.panel,
    h('section', { class: 'panel panel-input' },
      panelHead('input', 'Input', h('span', { class: 'panel-hint' }, canEdit ? 'stdin, shared' : 'stdin, read-only')),
      inputHost),
    output.outputPanel,
    output.historyPanel);
  setChildren(root, h('div', { class: `app${canEdit ? '' : ' viewing'}` }, topbar,
    h('main', { class: 'workspace' }, h('aside', { class: 'files-side' }, files.element), pane.element, side)));
  const inputEditor = createTextEditor(inputHost, room.stdin, awareness, () => void runNow(false), canEdit,
    { label: 'Program input (stdin)', placeholder: 'Input for the program (stdin)', empty: 'No input', testid: 'stdin' });

  // Versions and run limits from the exec API, when it answers (the names work without; the
  // output names a limit a run hit with its figure once it has them).
  fetchLanguages().then(({ languages, limits }) => {
    setRunLimits(limits);
    pane.labelVersions(languages);
    schedule();
  }, () => pane.labelVersions(null));

  // --- running (edit access only) ----------------------------------------------------------------
  const runner: Runner | null = canEdit ? createRunner(room, awareness, connection.online, () => access.token) : null;
  let submitting = false;
  /** Runs the project of the room's language with the stdin panel's text, or with the tests. */
  async function runNow(withTests: boolean): Promise<void> {
    const cases = room.tests.list();
    if (!runner || submitting || (withTests && !cases.length)) return;
    submitting = true;
    output.followNewest();
    schedule();
    try {
      const language = room.language;
      const input = withTests
        ? { tests: cases.map((t) => ({ id: t.id, stdin: t.stdin.toString(), expected: t.expected.toString() })) }
        : { stdin: room.stdin.toString() };
      await runner.run({ language, files: room.project(language).snapshot(), input }, user);
    } finally {
      submitting = false;
      schedule();
    }
  }
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
      event.preventDefault();
      void runNow(false);
    }
  });

  // --- rendering -------------------------------------------------------------------------------
  let frame = 0;
  function schedule(): void {
    if (!frame) frame = requestAnimationFrame(render);
  }
  function render(): void {
    frame = 0;
    connection.render();
    profile.render();
    people.render();
    output.render(Date.now());
    pane.render();
    files.render();
    tests.render();
    if (runButton) {
      const newest = room.runList()[0]?.get('status');
      const busy = submitting || (typeof newest === 'string' && !TERMINAL.has(newest));
      runButton.classList.toggle('busy', busy);
      runLabel.textContent = busy ? 'Running…' : 'Run';
      runButton.disabled = submitting;
    }
  }
  awareness.on('change', () => schedule());
  doc.on('afterTransaction', () => schedule());
  setInterval(schedule, 1000); // relative times, and "reconnecting" turning into "offline"

  // A read-only handle for devtools and the browser tests (e2e-browser/).
  (window as unknown as { __codebox: unknown }).__codebox = {
    doc,
    provider,
    role: () => access.role,
    editorText: () => pane.editorText(),
    inputText: () => inputEditor.view.state.doc.toString(),
    language: () => pane.language(),
    file: () => pane.file(),
  };

  schedule();
  setTimeout(() => pane.focus(), 0);
}

/** Covers the room with why this page's link no longer opens it: what it showed stays
 * underneath, frozen, and nothing reconnects. */
function showLockout(root: HTMLElement, message: string): void {
  root.querySelector('.lockout')?.remove();
  root.appendChild(h('div', { class: 'lockout', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'lockout-title', dataset: { testid: 'lockout' } },
    h('div', { class: 'lockout-card' },
      icon('lock'),
      h('h2', { id: 'lockout-title' }, 'You no longer have access to this room'),
      h('p', { dataset: { testid: 'lockout-message' } }, message),
      h('a', { class: 'btn primary', href: '/' }, 'Go to CodeBox home'))));
}
