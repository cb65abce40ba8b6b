// A project's file names and sizes as Contract 2b allows them, checked in the browser before
// anything is written to the room (the exec API checks again: crates/submission/src/project.rs),
// and the path arithmetic the tree and the tabs need. No run-time imports: the tests load this
// module into Node (e2e/ide-project.test.mjs).

import type { ProjectLimits } from './limits';

/** Longest path, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 255;

/** Top-level names the sandbox keeps for itself in the project's folder (crates/submission's
 * project::RESERVED: its temporary and scratch folders). */
const RESERVED = ['.tmp', '.codebox'];

/** The folder a downloaded zip keeps the tests in (`codebox-tests/1.in`, `1.out`…); an upload
 * reads it back as tests, so no project file may live there. */
export const TESTS_FOLDER = 'codebox-tests';

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** UTF-8 length of `text`, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4; // a surrogate pair: one 4-byte character
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Why `path` cannot name a file or folder (null: it can). The rules of the API, plus the
 * folder reserved for tests in zips. */
export function pathProblem(path: string): string | null {
  if (path === '') return 'A name cannot be empty.';
  if (utf8Length(path) > MAX_PATH_BYTES) return `“${path.slice(0, 40)}…” is longer than ${MAX_PATH_BYTES} bytes.`;
  if (path.startsWith('/')) return `“${path}” must be relative: no “/” at the start.`;
  for (const segment of path.split('/')) {
    if (segment === '') return `“${path}” has an empty folder name (“//” or a “/” at the end).`;
    if (segment === '.' || segment === '..') return `“${path}” may not hold “.” or “..” as a name.`;
    if (!SEGMENT.test(segment)) return `“${path}” may hold only letters A–Z and a–z, digits, “.”, “_”, “-” and “/” between folders.`;
  }
  const top = path.split('/')[0];
  if (RESERVED.includes(top)) return `“${top}” is a name the sandbox keeps for itself (${RESERVED.join(', ')}): use another name.`;
  if (top === TESTS_FOLDER) return `“${TESTS_FOLDER}” is where a downloaded zip keeps the tests: use another folder name.`;
  return null;
}

/** `lib/util.py` -> `lib`; a top-level path -> ''. */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** `lib/util.py` -> `util.py`. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The folders `path` lies in, outermost first: `a/b/c.py` -> `a`, `a/b`. */
export function ancestors(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/** Whether `path` is `folder` itself or lies inside it. */
export function within(path: string, folder: string): boolean {
  return path === folder || path.startsWith(`${folder}/`);
}

/** `path` moved from folder `from` to folder `to` (it lies within `from`). */
export function rebase(path: string, from: string, to: string): string {
  return to + path.slice(from.length);
}

/** Why a new file or folder `path` does not fit among `files` and `folders` (every folder,
 * implied ones included): a name is either a file or a folder, and only once. */
export function placeProblem(path: string, kind: 'file' | 'folder', files: ReadonlySet<string>, folders: ReadonlySet<string>): string | null {
  if (files.has(path)) return `There is already a file “${path}”.`;
  if (folders.has(path)) return `There is already a folder “${path}”.`;
  const fileAbove = ancestors(path).find((folder) => files.has(folder));
  if (fileAbove) return `“${fileAbove}” is a file, so it cannot hold the ${kind} “${path}”.`;
  return null;
}

/** Why a project of `count` files holding `bytes` of text breaks the limits (null: it fits). */
export function sizeProblem(count: number, bytes: number, limits: ProjectLimits): string | null {
  if (count > limits.max_files) return `A project holds at most ${limits.max_files} files (this would make ${count}).`;
  if (bytes > limits.max_project_bytes) {
    return `A project holds at most ${formatKiB(limits.max_project_bytes)} of text in all (this would make ${formatKiB(bytes)}).`;
  }
  return null;
}

/** limits.ts has formatBytes; this module imports nothing at run time (see the top). */
function formatKiB(bytes: number): string {
  return `${Number((bytes / 1024).toFixed(1))} KiB`;
}

/**
 * Which paths moved where, given the paths one change deleted and the ones it added: a file
 * renamed (one out, one in), or a folder renamed (every deleted path is the same relative path
 * under a new folder). Yjs has no move, so a collaborator's rename arrives as exactly that.
 */
export function movedPaths(deleted: string[], added: string[]): Map<string, string> {
  const moves = new Map<string, string>();
  if (deleted.length === 0 || deleted.length !== added.length) return moves;
  if (deleted.length === 1) return moves.set(deleted[0], added[0]);
  const addedSet = new Set(added);
  for (const candidate of added) {
    for (const [from, to] of folderPairs(deleted[0], candidate)) {
      if (deleted.every((path) => within(path, from) && addedSet.has(rebase(path, from, to)))) {
        for (const path of deleted) moves.set(path, rebase(path, from, to));
        return moves;
      }
    }
  }
  return moves;
}

/** Every way `a` could have become `b` by a folder's rename: the folders they would be in, once
 * a common tail (the file's name, maybe folders below) is taken off: `lib/x.py`, `src/lib/x.py`
 * -> `lib`→`src/lib`. */
function folderPairs(a: string, b: string): [string, string][] {
  const as = a.split('/');
  const bs = b.split('/');
  const pairs: [string, string][] = [];
  for (let tail = 1; tail < as.length && tail < bs.length && as[as.length - tail] === bs[bs.length - tail]; tail++) {
    pairs.push([as.slice(0, as.length - tail).join('/'), bs.slice(0, bs.length - tail).join('/')]);
  }
  return pairs;
}

/** A folder of the tree: its sub-folders and files, each sorted by name. */
export interface TreeFolder {
  path: string; // '' for the project's root
  name: string;
  folders: TreeFolder[];
  files: string[]; // paths
}

/** The tree of `files` and `folders` (explicit ones; the others are implied by the paths). */
export function buildTree(files: Iterable<string>, folders: Iterable<string>): TreeFolder {
  const root: TreeFolder = { path: '', name: '', folders: [], files: [] };
  const byPath = new Map<string, TreeFolder>([['', root]]);
  const folder = (path: string): TreeFolder => {
    let found = byPath.get(path);
    if (!found) {
      found = { path, name: baseName(path), folders: [], files: [] };
      byPath.set(path, found);
      folder(parentOf(path)).folders.push(found);
    }
    return found;
  };
  for (const path of folders) folder(path);
  for (const path of files) folder(parentOf(path)).files.push(path);
  const order = (node: TreeFolder) => {
    node.folders.sort((a, b) => compareNames(a.name, b.name));
    node.files.sort((a, b) => compareNames(baseName(a), baseName(b)));
    node.folders.forEach(order);
  };
  order(root);
  return root;
}

const compareNames = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true, sensitivity: 'base' }) || (a < b ? -1 : a > b ? 1 : 0);

/** The longest start of `text` that fits in `maxBytes` of UTF-8, and whether that is all of it. */
export function cutUtf8(text: string, maxBytes: number): { text: string; truncated: boolean } {
  if (text.length <= maxBytes / 3 || utf8Length(text) <= maxBytes) return { text, truncated: false };
  let bytes = 0;
  let end = 0;
  while (end < text.length) {
    const step = text.codePointAt(end)! > 0xffff ? 2 : 1;
    const size = utf8Length(text.slice(end, end + step));
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += step;
  }
  return { text: text.slice(0, end), truncated: true };
}
