// A room: the shared editor and the toolbar (language, Run), composed with the panels that
// render from the Y.Doc and awareness: people.ts, output.ts (and its console.ts), share.ts,
// profile.ts and the connection (connection.ts); presence.ts shapes the awareness traffic. What
// this page may do follows its link's role: a viewer's editors are read-only, and it never writes
// to the document (no Run, no seeding, no run take-over).

import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { forgetAccess, rememberLinks, rotateLinks, type RoomAccess } from './access';
import { languages as fetchLanguages } from './api';
import { watchConnection } from './connection';
import { h, icon, logo, panelHead, setChildren } from './dom';
import { createCodeEditor, createInputEditor, type CodeEditor } from './editor';
import { colorLight, type User } from './identity';
import { LANGUAGES, languageById, type Language, type LanguageId } from './languages';
import { setRunLimits } from './limits';
import { createOutput } from './output';
import { createPeople } from './people';
import { quietPresence } from './presence';
import { createProfile } from './profile';
import { createRunner, type Runner } from './runner';
import { createShareMenu } from './share';
import { RoomDoc, TERMINAL } from './shared';

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
  const loading = h('div', { class: 'loading' }, h('span', { class: 'spinner' }), 'Loading room…');
  setTimeout(() => { loading.hidden = true; }, 4000);
  const connection = watchConnection(provider, () => access, {
    synced() {
      if (canEdit) {
        room.seedStdin();
        room.seedLanguage(room.language);
      }
      loading.hidden = true;
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

  const languageSelect = h('select', { class: 'select', 'aria-label': 'Language', disabled: !canEdit, dataset: { testid: 'language' } },
    LANGUAGES.map((l) => h('option', { value: l.id }, l.name)));
  languageSelect.addEventListener('change', () => {
    const lang = languageById(languageSelect.value);
    if (lang && canEdit) room.language = lang.id;
  });
  const runLabel = h('span', null, 'Run');
  const runButton = canEdit
    ? h('button', { class: 'btn run', type: 'button', title: `Run (${MOD}+Enter)`, dataset: { testid: 'run' }, onclick: () => void runNow() },
      icon('play'), runLabel, h('kbd', null, `${MOD} ↵`))
    : null;
  const editorHost = h('div', { class: 'editor-host' });
  const editorPane = h('section', { class: 'editor-pane' },
    h('div', { class: 'toolbar' },
      languageSelect,
      h('span', { class: 'toolbar-hint' }, canEdit ? 'Everyone here edits this program' : 'You are watching: the program and its runs update live'),
      h('div', { class: 'spacer' }),
      runButton),
    h('div', { class: 'editor', dataset: { testid: 'editor' } }, editorHost, loading));

  const inputHost = h('div', { class: 'input-host' });
  const side = h('aside', { class: 'side' },
    people.panel,
    h('section', { class: 'panel panel-input' },
      panelHead('input', 'Input', h('span', { class: 'panel-hint' }, canEdit ? 'stdin, shared' : 'stdin, read-only')),
      inputHost),
    output.outputPanel,
    output.historyPanel);
  setChildren(root, h('div', { class: `app${canEdit ? '' : ' viewing'}` }, topbar, h('main', { class: 'workspace' }, editorPane, side)));

  // --- editors ---------------------------------------------------------------------------------
  let editor: CodeEditor | null = null;
  let editorLanguage: LanguageId | null = null;
  const mountEditor = (lang: Language) => {
    if (editorLanguage === lang.id) return;
    const hadFocus = editor?.view.hasFocus ?? false;
    editor?.destroy();
    editorLanguage = lang.id;
    if (canEdit && provider.synced) room.seedLanguage(lang.id);
    const current = createCodeEditor(editorHost, room.source(lang.id), awareness, lang, () => void runNow(), canEdit);
    editor = current;
    languageSelect.value = lang.id;
    if (hadFocus) current.view.focus();
    lang.mode().then((mode) => {
      if (editor === current) current.setMode(mode);
    }, () => { /* the editor works without highlighting */ });
  };
  const currentLanguage = () => languageById(room.language) ?? LANGUAGES[0];
  mountEditor(currentLanguage());
  room.meta.observe(() => mountEditor(currentLanguage()));
  const inputEditor = createInputEditor(inputHost, room.stdin, awareness, () => void runNow(), canEdit);

  // Versions and run limits from the exec API, when it answers (the names work without; the
  // output names a limit a run hit with its figure once it has them).
  // e.g. "C · gcc 12" from {name: "C (gcc, C17)", version: "12"}.
  fetchLanguages().then(({ languages, limits }) => {
    setRunLimits(limits);
    schedule();
    for (const option of languageSelect.options) {
      const found = languages.find((l) => l.id === option.value);
      const lang = languageById(option.value);
      if (!found || !lang) continue;
      const tool = /\(([^,)]+)/.exec(found.name)?.[1];
      option.textContent = `${lang.name} · ${tool ? `${tool} ` : ''}${found.version}`;
      option.title = `${found.name} ${found.version}`;
    }
  }, () => {
    for (const option of languageSelect.options) {
      const lang = languageById(option.value);
      if (lang) option.textContent = `${lang.name} · ${lang.version}`;
    }
  });

  // --- running (edit access only) ----------------------------------------------------------------
  const runner: Runner | null = canEdit ? createRunner(room, awareness, connection.online, () => access.token) : null;
  let submitting = false;
  async function runNow(): Promise<void> {
    if (!runner || submitting) return;
    submitting = true;
    output.followNewest();
    schedule();
    try {
      const lang = room.language;
      await runner.run(lang, room.source(lang).toString(), room.stdin.toString(), user);
    } finally {
      submitting = false;
      schedule();
    }
  }
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
      event.preventDefault();
      void runNow();
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
    if (runButton) {
      const newest = room.runList()[0]?.get('status');
      const busy = submitting || (typeof newest === 'string' && !TERMINAL.has(newest));
      runButton.classList.toggle('busy', busy);
      runLabel.textContent = busy ? 'Running…' : 'Run';
      runButton.disabled = submitting;
    }
  }
  awareness.on('change', () => schedule());
  room.runs.observeDeep(() => schedule());
  setInterval(schedule, 1000); // relative times, and "reconnecting" turning into "offline"

  // A read-only handle for devtools and the browser tests (e2e-browser/).
  (window as unknown as { __codebox: unknown }).__codebox = {
    doc,
    provider,
    role: () => access.role,
    editorText: () => editor?.view.state.doc.toString() ?? null,
    inputText: () => inputEditor.state.doc.toString(),
    language: () => editorLanguage,
  };

  schedule();
  editorHost.addEventListener('click', () => editor?.view.focus());
  setTimeout(() => editor?.view.focus(), 0);
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
