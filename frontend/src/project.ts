// A room's projects (one per language) and its test set, in the room's Y.Doc:
//
//   source:{language}   Y.Text          the project's entry file (main.py, main.c…: languages.ts)
//   files:{language}    Y.Map<Y.Text>   every other file: its relative path -> its text
//   folders:{language}  Y.Map<true>     folders that exist without files in them
//   tests               Y.Array<Y.Map>  the room's tests, for every language:
//                                         {id: string, stdin: Y.Text, expected: Y.Text}
//
// Why this shape:
// - The entry file stays in the root text a single-file room has always used, so existing rooms
//   open as one-file projects and the IDE's previous version still edits the entry file.
// - Each file is its own Y.Text: edits merge per file, and remote cursors (relative positions)
//   resolve only in the file they were made in, so nobody sees a cursor from another file.
// - Folders are implied by paths ("lib/util.py"); `folders` keeps only the ones made empty or
//   left empty. Deleting a folder deletes the files in it.
// - Yjs has no move: a rename creates the new Y.Text with the old one's content and deletes the
//   old one in the same transaction. Collaborators' tabs follow it (paths.ts, movedPaths).
// - The entry file cannot be renamed or deleted: the exec API starts the program from it.
// Names and sizes follow Contract 2b (paths.ts); every change is checked before it is written.

import * as Y from 'yjs';
import { LANGUAGES, languageById, type LanguageId } from './languages';
import { formatBytes, type ProjectLimits } from './limits';
import { ancestors, movedPaths, parentOf, pathProblem, placeProblem, rebase, sizeProblem, utf8Length, within } from './paths';

/** A file as the exec API takes it. */
export interface ProjectFile {
  name: string;
  content: string;
}

/** What an import (an upload) did. */
export interface Imported {
  added: number;
  replaced: number;
}

export class Project {
  /** The entry file's name. */
  readonly entry: string;
  readonly entryText: Y.Text;
  readonly files: Y.Map<unknown>;
  readonly folders: Y.Map<unknown>;

  constructor(readonly doc: Y.Doc, readonly language: LanguageId) {
    this.entry = (languageById(language) ?? LANGUAGES[0]).entry;
    this.entryText = doc.getText(`source:${language}`);
    this.files = doc.getMap(`files:${language}`);
    this.folders = doc.getMap(`folders:${language}`);
  }

  /** Every file's path, the entry file first. */
  paths(): string[] {
    const others = [...this.files.keys()].filter((path) => path !== this.entry && this.files.get(path) instanceof Y.Text).sort();
    return [this.entry, ...others];
  }

  /** Every folder: those kept in `folders` and those implied by the files' paths. */
  folderPaths(skip: (path: string) => boolean = () => false): Set<string> {
    const found = new Set<string>();
    for (const path of this.folders.keys()) if (!skip(path)) found.add(path);
    for (const path of this.paths()) if (!skip(path)) ancestors(path).forEach((folder) => found.add(folder));
    return found;
  }

  /** The explicit folders (see the layout). */
  keptFolders(): string[] {
    return [...this.folders.keys()].sort();
  }

  text(path: string): Y.Text | null {
    if (path === this.entry) return this.entryText;
    const text = this.files.get(path);
    return text instanceof Y.Text ? text : null;
  }

  has(path: string): boolean {
    return this.text(path) !== null;
  }

  /** How many files, and how many UTF-8 bytes of text they hold in all. */
  size(): { count: number; bytes: number } {
    const paths = this.paths();
    return { count: paths.length, bytes: paths.reduce((sum, path) => sum + utf8Length(this.text(path)?.toString() ?? ''), 0) };
  }

  /** The files as the exec API takes them, the entry file first. */
  snapshot(): ProjectFile[] {
    return this.paths().map((name) => ({ name, content: this.text(name)?.toString() ?? '' }));
  }

  /** Makes the empty file `path`; returns why not, or null. */
  createFile(path: string, limits: ProjectLimits): string | null {
    const problem = pathProblem(path) ?? placeProblem(path, 'file', new Set(this.paths()), this.folderPaths());
    if (problem) return problem;
    const { count, bytes } = this.size();
    const tooMany = sizeProblem(count + 1, bytes, limits);
    if (tooMany) return tooMany;
    this.files.set(path, new Y.Text());
    return null;
  }

  /** Makes the empty folder `path`; returns why not, or null. */
  createFolder(path: string): string | null {
    const problem = pathProblem(path) ?? placeProblem(path, 'folder', new Set(this.paths()), this.folderPaths());
    if (problem) return problem;
    this.folders.set(path, true);
    return null;
  }

  /** Renames the file `from` to `to`; returns why not, or null. */
  renameFile(from: string, to: string): string | null {
    if (from === to) return null;
    if (from === this.entry) return `${this.entry} keeps its name: the program starts from it.`;
    const old = this.text(from);
    if (!old) return `“${from}” is gone: someone renamed or deleted it.`;
    const others = new Set(this.paths().filter((path) => path !== from));
    const problem = pathProblem(to) ?? placeProblem(to, 'file', others, this.folderPaths((path) => path === from));
    if (problem) return problem;
    this.doc.transact(() => {
      const content = old.toString();
      this.keepFolderOf(from);
      this.files.delete(from);
      this.files.set(to, new Y.Text(content));
    });
    return null;
  }

  /** Deletes the file `path` (its folder stays); returns why not, or null. */
  removeFile(path: string): string | null {
    if (path === this.entry) return `${this.entry} cannot be deleted: the program starts from it.`;
    if (!this.has(path)) return null;
    this.doc.transact(() => {
      this.keepFolderOf(path);
      this.files.delete(path);
    });
    return null;
  }

  /** Renames the folder `from` to `to`, with everything in it; returns why not, or null. */
  renameFolder(from: string, to: string): string | null {
    if (from === to) return null;
    if (within(to, from)) return `A folder cannot move into itself (“${to}” is inside “${from}”).`;
    const inside = (path: string) => within(path, from);
    const others = new Set(this.paths().filter((path) => !inside(path)));
    const problem = pathProblem(to) ?? placeProblem(to, 'folder', others, this.folderPaths(inside));
    if (problem) return problem;
    this.doc.transact(() => {
      this.keepFolderOf(from);
      for (const path of this.paths().filter(inside)) {
        const content = this.text(path)?.toString() ?? '';
        this.files.delete(path);
        this.files.set(rebase(path, from, to), new Y.Text(content));
      }
      for (const path of this.keptFolders().filter(inside)) {
        this.folders.delete(path);
        this.folders.set(rebase(path, from, to), true);
      }
      if (!this.folderPaths().has(to)) this.folders.set(to, true);
    });
    return null;
  }

  /** Deletes the folder `path` and every file and folder in it. */
  removeFolder(path: string): void {
    const inside = (p: string) => within(p, path);
    this.doc.transact(() => {
      this.keepFolderOf(path);
      for (const file of this.paths().filter(inside)) this.files.delete(file);
      for (const folder of this.keptFolders().filter(inside)) this.folders.delete(folder);
    });
  }

  /** How many files `path` holds (files in its sub-folders included). */
  filesIn(path: string): number {
    return this.paths().filter((file) => within(file, path)).length;
  }

  /**
   * Writes `files` (and the empty `folders`) into the project in one transaction, or nothing at
   * all: a file of the same path is replaced (the entry file too), the others are added. Every
   * name, the file count and the size are checked first; returns why it was refused, or what
   * was done.
   */
  importFiles(files: ProjectFile[], folders: string[], limits: ProjectLimits): string | Imported {
    const seen = new Set<string>();
    for (const { name } of files) {
      const problem = name === this.entry ? null : pathProblem(name);
      if (problem) return problem;
      if (seen.has(name)) return `“${name}” is there twice.`;
      seen.add(name);
    }
    for (const folder of folders) {
      const problem = pathProblem(folder);
      if (problem) return problem;
    }
    // The project as it would be: no name may be both a file and a folder.
    const contents = new Map(this.paths().map((path) => [path, this.text(path)?.toString() ?? '']));
    for (const { name, content } of files) contents.set(name, content);
    const allFolders = new Set([...this.keptFolders(), ...folders]);
    for (const path of contents.keys()) ancestors(path).forEach((folder) => allFolders.add(folder));
    const clash = [...contents.keys()].find((path) => allFolders.has(path));
    if (clash) return `“${clash}” would be both a file and a folder.`;
    const bytes = [...contents.values()].reduce((sum, content) => sum + utf8Length(content), 0);
    const tooBig = sizeProblem(contents.size, bytes, limits);
    if (tooBig) return tooBig;

    const done: Imported = { added: 0, replaced: 0 };
    this.doc.transact(() => {
      for (const { name, content } of files) {
        const text = this.text(name);
        if (!text) {
          this.files.set(name, new Y.Text(content));
          done.added++;
          continue;
        }
        done.replaced++;
        if (text.toString() === content) continue;
        text.delete(0, text.length);
        text.insert(0, content);
      }
      const implied = this.folderPaths();
      for (const folder of folders) if (!implied.has(folder)) this.folders.set(folder, true);
    });
    return done;
  }

  /** Calls `onChange` on any change to the project (files, folders, any file's text). */
  observe(onChange: () => void): () => void {
    const changed = () => onChange();
    this.files.observeDeep(changed);
    this.folders.observe(changed);
    this.entryText.observe(changed);
    return () => {
      this.files.unobserveDeep(changed);
      this.folders.unobserve(changed);
      this.entryText.unobserve(changed);
    };
  }

  /** Calls `onMoves` after each change that deleted files, with where they went if they were
   * renamed (a file or a folder: see movedPaths). */
  observeMoves(onMoves: (moves: Map<string, string>) => void): () => void {
    const handler = (event: Y.YMapEvent<unknown>) => {
      const deleted: string[] = [];
      const added: string[] = [];
      event.changes.keys.forEach((change, key) => {
        if (change.action === 'delete') deleted.push(key);
        else if (change.action === 'add') added.push(key);
      });
      if (deleted.length) onMoves(movedPaths(deleted, added));
    };
    this.files.observe(handler);
    return () => this.files.unobserve(handler);
  }

  /** Keeps the folder that `leaving` (a file or folder about to go) lies in, unless it is the
   * root: a folder stays until it is deleted itself. */
  private keepFolderOf(leaving: string): void {
    const folder = parentOf(leaving);
    if (folder === '' || this.folders.has(folder)) return;
    const stillThere = this.paths().some((file) => file !== leaving && !within(file, leaving) && within(file, folder))
      || this.keptFolders().some((kept) => kept !== folder && !within(kept, leaving) && within(kept, folder));
    if (!stillThere) this.folders.set(folder, true);
  }
}

/** One test: its id, and its input and expected output as shared texts. */
export interface TestCase {
  id: string;
  stdin: Y.Text;
  expected: Y.Text;
}

/** A test's input and expected output, as text. */
export interface TestText {
  stdin: string;
  expected: string;
}

const newTestId = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`);

/** The room's tests (`tests`, see the layout above). */
export class TestSet {
  readonly array: Y.Array<Y.Map<unknown>>;

  constructor(readonly doc: Y.Doc) {
    this.array = doc.getArray('tests');
  }

  /** The tests, in order (entries that are not tests are skipped). */
  list(): TestCase[] {
    const found: TestCase[] = [];
    for (const map of this.array.toArray()) {
      if (!(map instanceof Y.Map)) continue;
      const id = map.get('id');
      const stdin = map.get('stdin');
      const expected = map.get('expected');
      if (typeof id === 'string' && stdin instanceof Y.Text && expected instanceof Y.Text) found.push({ id, stdin, expected });
    }
    return found;
  }

  /** Adds a test at the end; returns it, or why not. */
  add(limits: ProjectLimits, text: TestText = { stdin: '', expected: '' }): TestCase | string {
    const count = this.list().length;
    if (count >= limits.max_tests) return `A room holds at most ${limits.max_tests} tests.`;
    const test = testMap(text);
    this.array.push([test]);
    return this.list().find((t) => t.id === test.get('id')) as TestCase;
  }

  remove(id: string): void {
    const index = this.array.toArray().findIndex((map) => map instanceof Y.Map && map.get('id') === id);
    if (index >= 0) this.array.delete(index, 1);
  }

  /** Replaces every test with `tests`, in one transaction; returns why not (nothing changed),
   * or null. */
  replaceAll(tests: TestText[], limits: ProjectLimits): string | null {
    if (tests.length > limits.max_tests) return `A room holds at most ${limits.max_tests} tests (this would make ${tests.length}).`;
    for (const [i, test] of tests.entries()) {
      const problem = testProblem(test, i, limits);
      if (problem) return problem;
    }
    this.doc.transact(() => {
      this.array.delete(0, this.array.length);
      this.array.push(tests.map(testMap));
    });
    return null;
  }

  observe(onChange: () => void): () => void {
    const changed = () => onChange();
    this.array.observeDeep(changed);
    return () => this.array.unobserveDeep(changed);
  }
}

/** Why test number `index` (from 0) breaks the limits, or null. */
export function testProblem(test: TestText, index: number, limits: ProjectLimits): string | null {
  for (const [field, label] of [['stdin', 'input'], ['expected', 'expected output']] as const) {
    const bytes = utf8Length(test[field]);
    if (bytes > limits.max_test_bytes) return `Test ${index + 1}'s ${label} is ${formatBytes(bytes)}: at most ${formatBytes(limits.max_test_bytes)}.`;
  }
  return null;
}

function testMap({ stdin, expected }: TestText): Y.Map<unknown> {
  const map = new Y.Map<unknown>();
  map.set('id', newTestId());
  map.set('stdin', new Y.Text(stdin));
  map.set('expected', new Y.Text(expected));
  return map;
}

/** Writes an upload (files, empty folders, maybe tests: zip.ts) into `project` and `tests` in
 * one transaction, after checking all of it: nothing is written when anything is refused.
 * Returns why it was refused, or what was done. */
export function importUpload(project: Project, tests: TestSet, upload: { files: ProjectFile[]; folders: string[]; tests: TestText[] | null }, limits: ProjectLimits): string | (Imported & { tests: number | null }) {
  if (upload.tests) {
    if (upload.tests.length > limits.max_tests) return `A room holds at most ${limits.max_tests} tests (the upload has ${upload.tests.length}).`;
    const problem = upload.tests.map((test, i) => testProblem(test, i, limits)).find((p) => p !== null);
    if (problem) return problem;
  }
  let result: string | Imported = { added: 0, replaced: 0 };
  project.doc.transact(() => {
    result = project.importFiles(upload.files, upload.folders, limits);
    if (typeof result !== 'string' && upload.tests) tests.replaceAll(upload.tests, limits);
  });
  return typeof result === 'string' ? result : { ...(result as Imported), tests: upload.tests?.length ?? null };
}
