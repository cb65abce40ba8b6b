// A room: the shared editor, who is here, the connection, Run and the shared output.

import type { EditorView } from '@codemirror/view';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { languages as fetchLanguages } from './api';
import { h, icon, setChildren } from './dom';
import { createCodeEditor, createInputEditor, type CodeEditor } from './editor';
import { formatDuration, signalName, statusView, timeAgo } from './format';
import { COLORS, MAX_NAME, cleanName, colorLight, initials, rememberRoom, saveUser, type User } from './identity';
import { LANGUAGES, languageById, type Language, type LanguageId } from './languages';
import { createRunner } from './runner';
import { RoomDoc, TERMINAL, readRun, type RunFields } from './shared';

type Connection = 'connecting' | 'connected' | 'reconnecting' | 'offline';

const CONNECTION_LABEL: Record<Connection, string> = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};
/** After this long without the server (browser online), "Reconnecting" becomes "Offline". */
const OFFLINE_AFTER_MS = 15_000;

const isMac = /Mac|iPhone|iPad/.test(navigator.platform);
const MOD = isMac ? '⌘' : 'Ctrl';

interface Person {
  client: number;
  name: string;
  color: string;
  me: boolean;
}

export function mountRoom(root: HTMLElement, roomName: string, user: User): void {
  document.title = `${roomName} · CodeBox`;
  rememberRoom(roomName);

  const doc = new Y.Doc();
  const room = new RoomDoc(doc);
  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rooms`;
  const provider = new WebsocketProvider(wsBase, roomName, doc, { maxBackoffTime: 4000 });
  const awareness = provider.awareness;
  const publishUser = () => awareness.setLocalStateField('user', { name: user.name, color: user.color, colorLight: colorLight(user.color) });
  publishUser();

  // --- connection state ------------------------------------------------------------------
  let everSynced = false;
  let lostAt = 0; // when the connection was last lost (0: not lost)
  const online = () => provider.wsconnected && provider.synced;
  const connection = (): Connection => {
    if (!navigator.onLine) return 'offline';
    if (online()) return 'connected';
    if (!everSynced) return lostAt && Date.now() - lostAt > OFFLINE_AFTER_MS ? 'offline' : 'connecting';
    return Date.now() - lostAt > OFFLINE_AFTER_MS ? 'offline' : 'reconnecting';
  };
  provider.on('status', ({ status }) => {
    if (status === 'disconnected' && !lostAt) lostAt = Date.now();
    if (status === 'connecting' && !lostAt && !everSynced) lostAt = Date.now();
    schedule();
  });
  provider.on('sync', (synced: boolean) => {
    if (!synced) return;
    lostAt = 0;
    if (!everSynced) {
      everSynced = true;
      room.seedStdin();
      room.seedLanguage(room.language);
      loading.hidden = true;
    }
    schedule();
  });
  // The browser knows before the socket does: go offline at once, and come back at once.
  window.addEventListener('offline', () => {
    lostAt = lostAt || Date.now();
    provider.disconnect();
    schedule();
  });
  window.addEventListener('online', () => {
    provider.connect();
    schedule();
  });
  setInterval(schedule, 1000); // relative times, and "reconnecting" turning into "offline"

  // --- layout ----------------------------------------------------------------------------
  const shareUrl = `${location.origin}/r/${encodeURIComponent(roomName)}`;
  const connPill = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite', dataset: { testid: 'connection' } },
    h('span', { class: 'dot' }), h('span', { class: 'label' }));
  const copyLabel = h('span', null, 'Copy link');
  const copyButton = h('button', { class: 'btn ghost share', type: 'button', title: shareUrl, dataset: { testid: 'copy-link' }, onclick: () => copyLink() },
    icon('link'), copyLabel);
  const avatars = h('div', { class: 'avatars', dataset: { testid: 'avatars' } });
  const meButton = h('button', { class: 'me', type: 'button', title: 'Your name and colour', dataset: { testid: 'me' } });
  const topbar = h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: '/', title: 'CodeBox home' }, logo(), h('span', { class: 'brand-name' }, 'CodeBox')),
    h('div', { class: 'crumb' }, h('span', { class: 'sep' }, '/'), h('span', { class: 'room-name', dataset: { testid: 'room-name' } }, roomName)),
    copyButton,
    h('div', { class: 'spacer' }),
    connPill,
    avatars,
    meButton,
  );

  const languageSelect = h('select', { class: 'select', 'aria-label': 'Language', dataset: { testid: 'language' } },
    LANGUAGES.map((l) => h('option', { value: l.id }, l.name)));
  languageSelect.addEventListener('change', () => {
    const lang = languageById(languageSelect.value);
    if (lang) room.language = lang.id;
  });
  const runLabel = h('span', null, 'Run');
  const runButton = h('button', { class: 'btn run', type: 'button', title: `Run (${MOD}+Enter)`, dataset: { testid: 'run' }, onclick: () => void runNow() },
    icon('play'), runLabel, h('kbd', null, `${MOD} ↵`));
  const editorHost = h('div', { class: 'editor-host' });
  const loading = h('div', { class: 'loading' }, h('span', { class: 'spinner' }), 'Loading room…');
  setTimeout(() => { loading.hidden = true; }, 4000);
  const editorPane = h('section', { class: 'editor-pane' },
    h('div', { class: 'toolbar' },
      languageSelect,
      h('span', { class: 'toolbar-hint' }, 'Everyone here edits this program'),
      h('div', { class: 'spacer' }),
      runButton),
    h('div', { class: 'editor', dataset: { testid: 'editor' } }, editorHost, loading));

  const peopleList = h('ul', { class: 'people', dataset: { testid: 'people' } });
  const peopleCount = h('span', { class: 'count' });
  const inputHost = h('div', { class: 'input-host' });
  const outputBody = h('div', { class: 'output-body', dataset: { testid: 'output' } });
  const historyList = h('ol', { class: 'history', dataset: { testid: 'history' } });
  const historyCount = h('span', { class: 'count' });
  const side = h('aside', { class: 'side' },
    h('section', { class: 'panel panel-people' },
      panelHead('users', 'People', peopleCount),
      peopleList),
    h('section', { class: 'panel panel-input' },
      panelHead('input', 'Input', h('span', { class: 'panel-hint' }, 'stdin, shared')),
      inputHost),
    h('section', { class: 'panel panel-output' },
      panelHead('terminal', 'Output'),
      outputBody),
    h('section', { class: 'panel panel-history' },
      panelHead('history', 'Runs', historyCount),
      historyList),
  );
  setChildren(root, h('div', { class: 'app' }, topbar, h('main', { class: 'workspace' }, editorPane, side)));

  // --- editors ---------------------------------------------------------------------------
  let editor: CodeEditor | null = null;
  let editorLanguage: LanguageId | null = null;
  const mountEditor = (lang: Language) => {
    if (editorLanguage === lang.id) return;
    const hadFocus = editor?.view.hasFocus ?? false;
    editor?.destroy();
    editorLanguage = lang.id;
    if (everSynced) room.seedLanguage(lang.id);
    const current = createCodeEditor(editorHost, room.source(lang.id), awareness, lang, () => void runNow());
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
  const inputEditor: EditorView = createInputEditor(inputHost, room.stdin, awareness, () => void runNow());

  // Versions from the exec API, when it answers (the names work without).
  // e.g. "C · gcc 12" from {name: "C (gcc, C17)", version: "12"}.
  fetchLanguages().then(({ languages }) => {
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

  // --- running ---------------------------------------------------------------------------
  const runner = createRunner(room, awareness, online);
  let submitting = false;
  async function runNow(): Promise<void> {
    if (submitting) return;
    submitting = true;
    selectedKey = null;
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

  let selectedKey: string | null = null; // null: follow the newest run
  let newestKey: string | null = null;
  room.runs.observeDeep(() => schedule());

  // --- you: name and colour ---------------------------------------------------------------
  let popover: HTMLElement | null = null;
  const closePopover = () => {
    popover?.remove();
    popover = null;
    document.removeEventListener('mousedown', outside, true);
  };
  const outside = (event: Event) => {
    if (popover && !popover.contains(event.target as Node) && !meButton.contains(event.target as Node)) closePopover();
  };
  const setUser = (next: Partial<User>) => {
    Object.assign(user, next);
    saveUser(user);
    publishUser();
    schedule();
  };
  meButton.addEventListener('click', () => {
    if (popover) return closePopover();
    const nameInput = h('input', { class: 'input', value: user.name, maxlength: MAX_NAME, 'aria-label': 'Your name', dataset: { testid: 'name-input' } });
    nameInput.addEventListener('input', () => {
      const name = cleanName(nameInput.value);
      if (name) setUser({ name });
    });
    nameInput.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === 'Escape') closePopover(); });
    const swatches = h('div', { class: 'swatches' }, COLORS.map((color) => {
      const swatch = h('button', { class: 'swatch', type: 'button', style: `background:${color}`, title: color, 'aria-label': `Colour ${color}`,
        onclick: () => {
          setUser({ color });
          for (const s of swatches.children) s.classList.toggle('selected', s === swatch);
        } });
      swatch.classList.toggle('selected', color === user.color);
      return swatch;
    }));
    popover = h('div', { class: 'popover', role: 'dialog', 'aria-label': 'Your name and colour' },
      h('label', { class: 'field-label' }, 'Your name'), nameInput,
      h('label', { class: 'field-label' }, 'Your colour'), swatches,
      h('p', { class: 'popover-note' }, 'Others see this next to your cursor. Remembered on this device.'));
    topbar.appendChild(popover);
    nameInput.focus();
    nameInput.select();
    document.addEventListener('mousedown', outside, true);
  });
  awareness.on('change', () => schedule());

  // --- share link ---------------------------------------------------------------------------
  async function copyLink(): Promise<void> {
    let ok = false;
    try {
      await navigator.clipboard.writeText(shareUrl);
      ok = true;
    } catch {
      const field = h('input', { value: shareUrl, style: 'position:fixed;opacity:0' });
      document.body.appendChild(field);
      field.select();
      ok = document.execCommand('copy');
      field.remove();
    }
    copyLabel.textContent = ok ? 'Link copied' : 'Copy failed';
    copyButton.replaceChild(icon(ok ? 'check' : 'alert'), copyButton.firstChild as Node);
    copyButton.classList.toggle('done', ok);
    setTimeout(() => {
      copyLabel.textContent = 'Copy link';
      copyButton.replaceChild(icon('link'), copyButton.firstChild as Node);
      copyButton.classList.remove('done');
    }, 1800);
  }

  // --- rendering ----------------------------------------------------------------------------
  let frame = 0;
  function schedule(): void {
    if (!frame) frame = requestAnimationFrame(render);
  }

  function people(): Person[] {
    const list: Person[] = [];
    awareness.getStates().forEach((state, client) => {
      const u = (state as { user?: { name?: unknown; color?: unknown } }).user;
      if (!u || typeof u.name !== 'string') return;
      list.push({ client, name: u.name, color: typeof u.color === 'string' ? u.color : '#888', me: client === doc.clientID });
    });
    return list.sort((a, b) => Number(b.me) - Number(a.me) || a.name.localeCompare(b.name) || a.client - b.client);
  }

  function render(): void {
    frame = 0;
    const state = connection();
    connPill.dataset.state = state;
    (connPill.querySelector('.label') as HTMLElement).textContent = CONNECTION_LABEL[state];
    connPill.title = state === 'connected'
      ? 'Edits are shared live'
      : 'Your edits are kept here and sync when the connection returns';

    if (changed('me', `${user.name}\0${user.color}`)) {
      meButton.replaceChildren(avatar(user.name, user.color), h('span', { class: 'me-name' }, user.name), icon('edit', 'dim'));
    }

    const here = people();
    if (changed('people', JSON.stringify(here))) {
      const others = here.filter((p) => !p.me);
      setChildren(avatars, others.slice(0, 4).map((p) => avatar(p.name, p.color, p.name)),
        others.length > 4 ? h('span', { class: 'avatar more' }, `+${others.length - 4}`) : null);
      peopleCount.textContent = String(here.length);
      setChildren(peopleList, here.map((p) => h('li', { class: 'person', dataset: { testid: 'person', client: String(p.client) } },
        avatar(p.name, p.color), h('span', { class: 'person-name' }, p.name), p.me ? h('span', { class: 'tag' }, 'you') : null)));
    }

    const runs = room.runList().map(readRun);
    const newest = runs[0];
    if (newest && newest.key !== newestKey) {
      if (newestKey !== null) selectedKey = null; // a new run: show it
      newestKey = newest.key;
    }
    const busy = submitting || (!!newest && !TERMINAL.has(newest.status));
    runButton.classList.toggle('busy', busy);
    runLabel.textContent = busy ? 'Running…' : 'Run';
    runButton.disabled = submitting;

    // Rebuilt only when what they show changed: the output keeps its text selection and scroll.
    const selected = runs.find((r) => r.key === selectedKey) ?? newest;
    if (changed('output', JSON.stringify(selected ?? null))) renderOutput(selected);
    const now = Date.now();
    if (changed('history', JSON.stringify([selected?.key, runs.map((r) => [r.key, r.status, r.language, r.by, timeAgo(r.submitted_at, now)])]))) {
      historyCount.textContent = runs.length ? String(runs.length) : '';
      setChildren(historyList, runs.length
        ? runs.map((r) => historyRow(r, r === selected, now))
        : h('li', { class: 'empty' }, 'No runs yet.'));
    }
  }

  /** Whether `part` must be re-rendered: its key differs from the last render's. */
  const renderedKeys = new Map<string, string>();
  function changed(part: string, key: string): boolean {
    if (renderedKeys.get(part) === key) return false;
    renderedKeys.set(part, key);
    return true;
  }

  function renderOutput(run: RunFields | undefined): void {
    if (!run) {
      setChildren(outputBody, h('div', { class: 'empty-output' },
        h('p', null, 'Nothing has run in this room yet.'),
        h('p', { class: 'dim' }, 'Press ', h('b', null, 'Run'), ' or ', h('kbd', null, `${MOD} ↵`), '. Everyone here sees the output.')));
      return;
    }
    const view = statusView(run);
    const lang = languageById(run.language);
    const meta: (string | Node)[] = [lang?.name ?? run.language, ' · by ', h('span', { class: 'by', style: `color:${run.color}` }, run.by)];
    if (run.time_ms != null) meta.push(' · ', formatDuration(run.time_ms));
    // How the program ended, where that is the program's doing (a limit's kill is ours).
    if (run.status === 'ok' || run.status === 'runtime_error') {
      if (run.signal != null) meta.push(' · ', signalName(run.signal));
      else if (run.exit_code != null) meta.push(' · ', `exit ${run.exit_code}`);
    }
    const streams: Node[] = [];
    if (run.compile_output) streams.push(stream('Compiler output', run.compile_output, false, 'compile-output'));
    if (run.stdout) streams.push(stream('stdout', run.stdout, run.stdout_truncated, 'stdout'));
    if (run.stderr) streams.push(stream('stderr', run.stderr, run.stderr_truncated, 'stderr'));
    if (TERMINAL.has(run.status) && run.status !== 'error' && !streams.length) {
      streams.push(h('p', { class: 'dim no-output' }, 'The program wrote nothing.'));
    } else if (!TERMINAL.has(run.status)) {
      streams.push(h('p', { class: 'dim no-output' }, run.status === 'running'
        ? 'Running in the sandbox: the output appears here when the program ends.'
        : 'Waiting for a sandbox…'));
    }
    setChildren(outputBody,
      h('div', { class: 'run-head', dataset: { testid: 'run-status', status: run.status } },
        badge(view.label, view.tone),
        h('span', { class: 'run-meta' }, meta)),
      view.detail ? h('div', { class: `run-detail tone-${view.tone}`, dataset: { testid: 'run-detail' } },
        run.status === 'error' && run.error_code ? h('code', { class: 'error-code' }, run.error_code) : null,
        h('span', null, view.detail)) : null,
      run.note && !TERMINAL.has(run.status) ? h('div', { class: 'run-note' }, icon('alert'), run.note) : null,
      streams);
  }

  function historyRow(run: RunFields, active: boolean, now: number): HTMLElement {
    const view = statusView(run);
    return h('li', null, h('button', {
      class: `history-row${active ? ' active' : ''}`, type: 'button', dataset: { testid: 'history-item', status: run.status },
      onclick: () => { selectedKey = run.key === newestKey ? null : run.key; schedule(); },
    },
    h('span', { class: `dot tone-${view.tone}` }),
    h('span', { class: 'history-main' },
      h('span', { class: 'history-status' }, view.label),
      h('span', { class: 'history-meta' }, `${languageById(run.language)?.name ?? run.language} · ${run.by}`)),
    h('span', { class: 'history-time', title: new Date(run.submitted_at).toLocaleString() }, timeAgo(run.submitted_at, now))));
  }

  // A read-only handle for devtools and the browser tests (e2e-browser/).
  (window as unknown as { __codebox: unknown }).__codebox = {
    doc,
    provider,
    editorText: () => editor?.view.state.doc.toString() ?? null,
    inputText: () => inputEditor.state.doc.toString(),
    language: () => editorLanguage,
  };

  schedule();
  editorHost.addEventListener('click', () => editor?.view.focus());
  setTimeout(() => editor?.view.focus(), 0);
}

function panelHead(iconName: string, title: string, extra?: Node): HTMLElement {
  return h('div', { class: 'panel-head' }, icon(iconName, 'dim'), h('h2', null, title), extra ?? null);
}

function badge(label: string, tone: string): HTMLElement {
  return h('span', { class: `badge tone-${tone}` }, tone === 'busy' ? h('span', { class: 'spinner' }) : null, label);
}

function stream(label: string, text: string, truncated: boolean, testid: string): HTMLElement {
  return h('div', { class: `stream stream-${testid}`, dataset: { testid } },
    h('div', { class: 'stream-label' }, label,
      truncated ? h('span', { class: 'tag warn', title: 'Only the first 64 KiB were kept', dataset: { testid: `${testid}-truncated` } }, 'truncated') : null),
    h('pre', null, text || ' '));
}

export function avatar(name: string, color: string, title?: string): HTMLElement {
  return h('span', { class: 'avatar', style: `background:${color}`, title: title ?? null }, initials(name));
}

export function logo(): SVGSVGElement {
  const wrap = document.createElement('span');
  wrap.innerHTML = '<svg class="logo" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><rect x="1" y="1" width="22" height="22" rx="6" fill="#5b6cff"/><path d="M9.5 8l-4 4 4 4M14.5 8l4 4-4 4" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/></svg>';
  return wrap.firstChild as SVGSVGElement;
}
