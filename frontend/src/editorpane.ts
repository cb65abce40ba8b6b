// The editor pane: the toolbar (the room's language, and the run buttons the room gives it), the
// tabs of open files (tabs.ts), the editor of the file shown, bound to that file's Y.Text, and
// what the room puts below it (the Tests panel). Switching file or language mounts a new editor
// on the file's text and says which file this page has open (presence.ts, publishOpenFile).

import type { Awareness } from 'y-protocols/awareness';
import * as Y from 'yjs';
import type { LanguageVersion } from './api';
import { h } from './dom';
import { createCodeEditor, type CodeEditor } from './editor';
import { LANGUAGES, languageById, languageOfFile, type LanguageId } from './languages';
import { publishOpenFile } from './presence';
import type { Project } from './project';
import type { RoomDoc } from './shared';
import { createTabs, type Tabs } from './tabs';

export interface EditorPane {
  element: HTMLElement;
  tabs: Tabs;
  /** The project of the room's language. */
  project(): Project;
  /** The first sync: seed the language's starter (edit rights only) and show the editor. */
  synced(): void;
  /** Names each language with its version, as the exec API serves them (null: it did not). */
  labelVersions(versions: LanguageVersion[] | null): void;
  render(): void;
  focus(): void;
  /** For devtools and the browser tests: the file shown, its editor's text, its language. */
  file(): string;
  editorText(): string | null;
  language(): LanguageId | null;
}

export interface EditorPaneOptions {
  room: RoomDoc;
  roomName: string;
  awareness: Awareness;
  canEdit: boolean;
  /** Whether the room's state has arrived (seeding waits for it). */
  isSynced(): boolean;
  /** The run buttons, at the toolbar's end (none for a viewer). */
  actions: HTMLElement | null;
  /** What sits below the editor. */
  below: HTMLElement;
  onRun(): void;
}

export function createEditorPane({ room, roomName, awareness, canEdit, isSynced, actions, below, onRun }: EditorPaneOptions): EditorPane {
  const currentLanguage = () => languageById(room.language) ?? LANGUAGES[0];
  const languageSelect = h('select', { class: 'select', 'aria-label': 'Language', disabled: !canEdit, dataset: { testid: 'language' } },
    LANGUAGES.map((l) => h('option', { value: l.id }, l.name)));
  languageSelect.addEventListener('change', () => {
    const lang = languageById(languageSelect.value);
    if (lang && canEdit) room.language = lang.id;
  });
  const editorHost = h('div', { class: 'editor-host' });
  const loading = h('div', { class: 'loading' }, h('span', { class: 'spinner' }), 'Loading room…');
  setTimeout(() => { loading.hidden = true; }, 4000);
  const tabs = createTabs(roomName, room.project(currentLanguage().id), isSynced, () => mount());
  const element = h('section', { class: 'editor-pane' },
    h('div', { class: 'toolbar' },
      languageSelect,
      h('span', { class: 'toolbar-hint' }, canEdit ? 'Everyone here edits this project' : 'You are watching: the project and its runs update live'),
      h('div', { class: 'spacer' }),
      actions),
    tabs.element,
    h('div', { class: 'editor', dataset: { testid: 'editor' } }, editorHost, loading),
    below);

  let editor: CodeEditor | null = null;
  let shown: { language: LanguageId; path: string; text: Y.Text } | null = null;
  // Each file's undo history, kept across tab switches; a deleted (or renamed) file's is
  // dropped at the next switch, since an undo manager listens to the whole document.
  const undoManagers = new Map<Y.Text, Y.UndoManager>();
  const undoManagerOf = (text: Y.Text) => {
    for (const [kept, manager] of undoManagers) {
      if (kept.doc === null || kept._item?.deleted) {
        manager.destroy();
        undoManagers.delete(kept);
      }
    }
    let found = undoManagers.get(text);
    if (!found) {
      found = new Y.UndoManager(text);
      undoManagers.set(text, found);
    }
    return found;
  };

  /** Shows the active tab's file of the room's language, unless it is shown already. */
  function mount(): void {
    const lang = currentLanguage();
    const project = room.project(lang.id);
    tabs.setProject(project);
    const path = tabs.active();
    const text = project.text(path) ?? project.entryText;
    if (shown && shown.language === lang.id && shown.path === path && shown.text === text) return;
    const hadFocus = editor?.view.hasFocus ?? false;
    editor?.destroy();
    shown = { language: lang.id, path, text };
    if (canEdit && isSynced()) room.seedLanguage(lang.id);
    publishOpenFile(awareness, path);
    // A file's mode follows its name (a header of a C project is C); other files are plain text.
    const fileLanguage = languageOfFile(path);
    const current = createCodeEditor(editorHost, text, awareness, path, fileLanguage ?? lang, onRun, canEdit ? undoManagerOf(text) : null);
    editor = current;
    languageSelect.value = lang.id;
    tabs.render();
    if (hadFocus) current.view.focus();
    fileLanguage?.mode().then((mode) => {
      if (editor === current) current.setMode(mode);
    }, () => { /* the editor works without highlighting */ });
  }
  mount();
  room.meta.observe(() => mount());
  editorHost.addEventListener('click', () => editor?.view.focus());

  return {
    element,
    tabs,
    project: () => room.project(currentLanguage().id),
    synced() {
      if (canEdit) room.seedLanguage(currentLanguage().id);
      loading.hidden = true;
    },
    labelVersions(versions) {
      // e.g. "C · gcc 12" from {name: "C (gcc, C17)", version: "12"}.
      for (const option of languageSelect.options) {
        const lang = languageById(option.value);
        if (!lang) continue;
        const found = versions?.find((l) => l.id === option.value);
        if (!found) {
          option.textContent = `${lang.name} · ${lang.version}`;
          continue;
        }
        const tool = /\(([^,)]+)/.exec(found.name)?.[1];
        option.textContent = `${lang.name} · ${tool ? `${tool} ` : ''}${found.version}`;
        option.title = `${found.name} ${found.version}`;
      }
    },
    render() {
      mount(); // the file shown may have arrived with the room's state
      tabs.render();
    },
    focus: () => editor?.view.focus(),
    file: () => shown?.path ?? tabs.active(),
    editorText: () => editor?.view.state.doc.toString() ?? null,
    language: () => shown?.language ?? null,
  };
}
