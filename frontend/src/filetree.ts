// The Files panel: the project of the room's language as a tree (folders implied by paths, and
// the empty ones kept: project.ts), who is in which file (the awareness field `file`; someone
// without one, such as the IDE's previous version, is in the entry file), and the project's size
// against its limits. A click opens the file in a tab (tabs.ts). People with edit rights make,
// rename and delete files and folders (the entry file keeps its name), and upload files or a zip,
// with the button or by dropping them on the tree (on a folder: loose files go in it); everyone
// may download the project as a zip (zip.ts). Every change is checked before it is written and
// refused with a message that says why (paths.ts, project.ts).

import type { Awareness } from 'y-protocols/awareness';
import { avatar, h, icon, setChildren } from './dom';
import { formatBytes, projectLimits } from './limits';
import { ancestors, buildTree, parentOf, type TreeFolder } from './paths';
import { importUpload, type Project } from './project';
import type { RoomDoc } from './shared';
import { projectZip, readUpload, saveFile } from './zip';

export interface FileTree {
  element: HTMLElement;
  render(): void;
}

export interface FileTreeOptions {
  room: RoomDoc;
  roomName: string;
  awareness: Awareness;
  canEdit: boolean;
  /** The project of the room's language. */
  project(): Project;
  /** The file shown in the editor. */
  active(): string;
  /** Opens a file in a tab. */
  open(path: string): void;
}

/** A name being typed: a new file or folder (in `folder`), or a new name for `path`. */
type Editing =
  | { mode: 'new-file' | 'new-folder'; folder: string }
  | { mode: 'rename'; kind: 'file' | 'folder'; path: string };

interface Someone {
  name: string;
  color: string;
}

/** How long a delete button waits for its second press. */
const CONFIRM_MS = 4000;

export function createFileTree({ room, roomName, awareness, canEdit, project, active, open }: FileTreeOptions): FileTree {
  const picker = h('input', { type: 'file', multiple: true, hidden: true, dataset: { testid: 'upload-input' } });
  const action = (name: string, title: string, testid: string, onclick: () => void) =>
    h('button', { class: 'btn ghost icon-btn', type: 'button', title, 'aria-label': title, dataset: { testid }, onclick }, icon(name));
  const tools = h('div', { class: 'files-tools' },
    canEdit ? action('file-plus', 'New file', 'new-file', () => startEditing({ mode: 'new-file', folder: currentFolder() })) : null,
    canEdit ? action('folder-plus', 'New folder', 'new-folder', () => startEditing({ mode: 'new-folder', folder: currentFolder() })) : null,
    canEdit ? action('upload', 'Upload files or a zip (or drop them on the tree)', 'upload', () => picker.click()) : null,
    action('download', 'Download the project and its tests as a zip', 'download', () => void download()));
  const tree = h('ul', { class: 'tree', role: 'tree', 'aria-label': 'Project files', dataset: { testid: 'tree' } });
  const messageText = h('span');
  const message = h('p', { class: 'files-message', role: 'alert', dataset: { testid: 'files-message' } }, messageText);
  const size = h('div', { class: 'files-size', dataset: { testid: 'files-size' } });
  const body = h('div', { class: 'files-body' }, tree);
  const element = h('section', { class: 'panel panel-files', dataset: { testid: 'files' } },
    h('div', { class: 'panel-head' }, icon('folder', 'dim'), h('h2', null, 'Files'), h('div', { class: 'spacer' }), tools),
    body, message, size, picker);

  const collapsed = new Set<string>();
  let editing: Editing | null = null;
  let editError = '';
  const nameInput = h('input', { class: 'tree-input', type: 'text', spellcheck: false, autocomplete: 'off', dataset: { testid: 'name-input' } });
  let confirming: string | null = null; // the path whose delete button asks
  let confirmTimer = 0;
  let dropFolder: string | null = null; // where a drag would drop ('' the root)
  let rebuilding = false;
  let shownTree = '';
  let shownSize = '';

  function say(text: string, tone: 'error' | 'note'): void {
    messageText.textContent = text;
    message.dataset.tone = tone;
    message.hidden = !text;
  }

  /** The folder new things go in: the one of the file shown. */
  const currentFolder = () => parentOf(active());

  /** Who (other than this page) is in which file. */
  function whoIsWhere(p: Project): Map<string, Someone[]> {
    const where = new Map<string, Someone[]>();
    awareness.getStates().forEach((state, client) => {
      if (client === awareness.clientID) return;
      const user = (state as { user?: { name?: unknown; color?: unknown } }).user;
      if (!user || typeof user.name !== 'string') return;
      const file = (state as { file?: unknown }).file;
      const path = typeof file === 'string' && p.has(file) ? file : p.entry;
      const here = where.get(path) ?? [];
      here.push({ name: user.name, color: typeof user.color === 'string' ? user.color : '#888' });
      where.set(path, here);
    });
    return where;
  }

  // --- names: new files and folders, renames ----------------------------------------------------
  function startEditing(next: Editing): void {
    editing = next;
    editError = '';
    say('', 'note');
    nameInput.value = next.mode === 'rename' ? next.path : next.folder ? `${next.folder}/` : '';
    nameInput.placeholder = next.mode === 'new-folder' ? 'folder or folder/sub' : next.mode === 'new-file' ? 'name.ext or folder/name.ext' : '';
    nameInput.setAttribute('aria-label', next.mode === 'rename' ? `New name for ${next.path}` : next.mode === 'new-file' ? 'Name of the new file' : 'Name of the new folder');
    if ('folder' in next) [next.folder, ...ancestors(next.folder)].forEach((folder) => collapsed.delete(folder));
    render();
    nameInput.focus();
    // Select the name itself, not its folder, as file managers do.
    const start = nameInput.value.lastIndexOf('/') + 1;
    const dot = next.mode === 'rename' && next.kind === 'file' ? nameInput.value.lastIndexOf('.') : -1;
    nameInput.setSelectionRange(start, dot > start ? dot : nameInput.value.length);
  }

  function stopEditing(): void {
    editing = null;
    editError = '';
    render();
  }

  /** Takes the name typed; `fromBlur`: the focus went elsewhere, and stays there. */
  function commit(fromBlur = false): void {
    if (!editing) return;
    const name = nameInput.value.trim();
    const p = project();
    const limits = projectLimits();
    let problem: string | null;
    switch (editing.mode) {
      case 'new-file':
        problem = p.createFile(name, limits);
        if (!problem) open(name);
        break;
      case 'new-folder':
        problem = p.createFolder(name);
        break;
      case 'rename':
        problem = editing.kind === 'file' ? p.renameFile(editing.path, name) : p.renameFolder(editing.path, name);
        break;
    }
    if (problem) {
      editError = problem;
      render();
      if (!fromBlur) nameInput.focus();
      return;
    }
    stopEditing();
  }

  nameInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      commit();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      stopEditing();
    }
  });
  // Leaving the field keeps what was typed if it can be taken, and drops an untouched one.
  nameInput.addEventListener('blur', () => {
    if (rebuilding || !editing) return;
    const untouched = editing.mode === 'rename' ? nameInput.value.trim() === editing.path : nameInput.value.trim() === '' || nameInput.value.endsWith('/');
    if (untouched) stopEditing();
    else commit(true);
  });

  // --- deleting: a second press confirms ----------------------------------------------------------
  function remove(path: string, kind: 'file' | 'folder'): void {
    clearTimeout(confirmTimer);
    if (confirming !== path) {
      confirming = path;
      confirmTimer = window.setTimeout(() => {
        confirming = null;
        render();
      }, CONFIRM_MS);
      render();
      return;
    }
    confirming = null;
    const p = project();
    if (kind === 'folder') p.removeFolder(path);
    else {
      const problem = p.removeFile(path);
      if (problem) say(problem, 'error');
    }
    render();
  }

  // --- upload and download --------------------------------------------------------------------------
  async function upload(files: File[], folder: string): Promise<void> {
    if (!files.length) return;
    say('Reading…', 'note');
    const limits = projectLimits();
    const read = await readUpload(files, folder, limits);
    if (typeof read === 'string') {
      say(read, 'error');
      return;
    }
    const done = importUpload(project(), room.tests, read, limits);
    if (typeof done === 'string') {
      say(`Nothing was uploaded: ${done}`, 'error');
      return;
    }
    const parts = [`${done.added} file${done.added === 1 ? '' : 's'} added`];
    if (done.replaced) parts.push(`${done.replaced} replaced`);
    if (done.tests !== null) parts.push(`${done.tests} test${done.tests === 1 ? '' : 's'} loaded`);
    say(`Uploaded: ${parts.join(', ')}.`, 'note');
  }

  async function download(): Promise<void> {
    try {
      const p = project();
      saveFile(await projectZip(p, room.tests.list()), `${roomName}-${p.language}.zip`);
    } catch (error) {
      say(`The zip could not be made: ${error instanceof Error ? error.message : String(error)}`, 'error');
    }
  }

  picker.addEventListener('change', () => {
    const files = [...(picker.files ?? [])];
    picker.value = '';
    void upload(files, '');
  });
  if (canEdit) {
    const folderAt = (target: EventTarget | null) => (target instanceof Element ? target.closest<HTMLElement>('[data-folder]')?.dataset.folder ?? '' : '');
    body.addEventListener('dragover', (event) => {
      if (!event.dataTransfer?.types.includes('Files')) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
      const folder = folderAt(event.target);
      if (folder !== dropFolder) {
        dropFolder = folder;
        render();
      }
    });
    body.addEventListener('dragleave', (event) => {
      if (event.relatedTarget instanceof Node && body.contains(event.relatedTarget)) return;
      dropFolder = null;
      render();
    });
    body.addEventListener('drop', (event) => {
      event.preventDefault();
      const folder = dropFolder ?? folderAt(event.target);
      dropFolder = null;
      render();
      void upload([...(event.dataTransfer?.files ?? [])], folder);
    });
  }

  // --- rendering ----------------------------------------------------------------------------------------
  function render(): void {
    const p = project();
    const paths = p.paths();
    const where = whoIsWhere(p);
    const key = JSON.stringify([p.language, paths, p.keptFolders(), [...where], active(), [...collapsed], editing, editError, confirming, dropFolder]);
    if (key !== shownTree) {
      shownTree = key;
      const hadFocus = document.activeElement === nameInput;
      rebuilding = true;
      setChildren(tree, folderItems(buildTree(paths, p.keptFolders()), p, where, 0));
      body.classList.toggle('drop-here', dropFolder === '');
      rebuilding = false;
      if (hadFocus && nameInput.isConnected) nameInput.focus();
    }
    const { count, bytes } = p.size();
    const limits = projectLimits();
    const sizeKey = `${count} ${bytes}`;
    if (sizeKey !== shownSize) {
      shownSize = sizeKey;
      const over = count > limits.max_files || bytes > limits.max_project_bytes;
      size.classList.toggle('over', over);
      size.textContent = `${count}/${limits.max_files} files · ${formatBytes(bytes)} / ${formatBytes(limits.max_project_bytes)}`;
      size.title = over ? 'Over the limits: the exec API will refuse to run it' : 'What a project may hold';
    }
  }

  /** The items of `folder`: a new name being typed in it, its folders, then its files. */
  function folderItems(folder: TreeFolder, p: Project, where: Map<string, Someone[]>, depth: number): HTMLElement[] {
    const items: HTMLElement[] = [];
    if (editing && editing.mode !== 'rename' && editing.folder === folder.path) {
      items.push(h('li', { role: 'none' }, h('div', { class: 'tree-row editing', style: indent(depth) },
        icon(editing.mode === 'new-folder' ? 'folder' : 'file', 'dim'), nameInput), editNote()));
    }
    for (const sub of folder.folders) items.push(folderItem(sub, p, where, depth));
    for (const path of folder.files) items.push(fileItem(path, p, where, depth));
    return items;
  }

  function folderItem(folder: TreeFolder, p: Project, where: Map<string, Someone[]>, depth: number): HTMLElement {
    const open = !collapsed.has(folder.path);
    const renaming = editing?.mode === 'rename' && editing.path === folder.path;
    const count = p.filesIn(folder.path);
    const row = h('div', { class: `tree-row folder${dropFolder === folder.path ? ' drop-here' : ''}`, style: indent(depth), dataset: { testid: 'tree-folder', path: folder.path } },
      renaming ? [icon('folder', 'dim'), nameInput] : h('button', {
        class: 'tree-main', type: 'button', 'aria-expanded': String(open), title: folder.path,
        onclick: () => {
          if (open) collapsed.add(folder.path);
          else collapsed.delete(folder.path);
          render();
        },
      }, icon('chevron', `chevron${open ? ' open' : ''}`), icon('folder', 'dim'), h('span', { class: 'tree-name' }, folder.name)),
      canEdit && !renaming ? h('span', { class: 'tree-actions' },
        rowAction('file-plus', `New file in ${folder.path}`, 'new-file-here', () => startEditing({ mode: 'new-file', folder: folder.path })),
        rowAction('edit', `Rename ${folder.path}`, 'rename', () => startEditing({ mode: 'rename', kind: 'folder', path: folder.path })),
        deleteAction(folder.path, 'folder', count ? `Delete ${count} file${count === 1 ? '' : 's'}?` : 'Delete?')) : null);
    // data-folder: files dropped anywhere on the folder or in it go into it.
    return h('li', { role: 'treeitem', 'aria-expanded': String(open), dataset: { folder: folder.path } }, row, renaming ? editNote() : null,
      open ? h('ul', { role: 'group' }, folderItems(folder, p, where, depth + 1)) : null);
  }

  function fileItem(path: string, p: Project, where: Map<string, Someone[]>, depth: number): HTMLElement {
    const entry = path === p.entry;
    const shown = path === active();
    const renaming = editing?.mode === 'rename' && editing.path === path;
    const people = where.get(path) ?? [];
    const row = h('div', { class: `tree-row file${shown ? ' active' : ''}`, style: indent(depth), dataset: { testid: 'tree-file', path } },
      renaming ? [icon('file', 'dim'), nameInput] : h('button', { class: 'tree-main', type: 'button', title: path, 'aria-current': shown ? 'true' : null, onclick: () => open(path) },
        icon('file', 'dim'), h('span', { class: 'tree-name' }, path.slice(path.lastIndexOf('/') + 1)),
        entry ? h('span', { class: 'tag', title: 'The program starts here' }, 'entry') : null),
      people.length ? h('span', { class: 'tree-people', title: `${people.map((x) => x.name).join(', ')} ${people.length === 1 ? 'is' : 'are'} here` },
        people.slice(0, 3).map((x) => h('span', { class: 'tree-person', dataset: { testid: 'file-person', name: x.name } }, avatar(x.name, x.color))),
        people.length > 3 ? h('span', { class: 'tree-more' }, `+${people.length - 3}`) : null) : null,
      canEdit && !entry && !renaming ? h('span', { class: 'tree-actions' },
        rowAction('edit', `Rename ${path}`, 'rename', () => startEditing({ mode: 'rename', kind: 'file', path })),
        deleteAction(path, 'file', 'Delete?')) : null);
    return h('li', { role: 'treeitem', 'aria-selected': String(shown) }, row, renaming ? editNote() : null);
  }

  function rowAction(name: string, title: string, testid: string, onclick: () => void): HTMLElement {
    return h('button', { class: 'tree-action', type: 'button', title, 'aria-label': title, dataset: { testid }, onclick: (event: Event) => { event.stopPropagation(); onclick(); } }, icon(name));
  }

  function deleteAction(path: string, kind: 'file' | 'folder', question: string): HTMLElement {
    const asking = confirming === path;
    return h('button', {
      class: `tree-action danger${asking ? ' asking' : ''}`, type: 'button', title: asking ? question : `Delete ${path}`,
      'aria-label': asking ? question : `Delete ${path}`, dataset: { testid: 'delete' },
      onclick: (event: Event) => { event.stopPropagation(); remove(path, kind); },
    }, asking ? question : icon('trash'));
  }

  /** What is wrong with the name being typed, under its field. */
  function editNote(): HTMLElement | null {
    return editError ? h('p', { class: 'tree-error', role: 'alert', dataset: { testid: 'name-error' } }, editError) : null;
  }

  say('', 'note');
  return { element, render };
}

const indent = (depth: number) => `padding-left:${8 + depth * 14}px`;
