// Projects as zips (fflate, loaded the first time a zip is made or read).
//
// A downloaded zip holds the project of the room's language as it is laid out in the tree: the
// entry file and every other file at their paths, each empty folder as a folder entry, and the
// room's tests as `codebox-tests/1.in` and `codebox-tests/1.out` (input and expected output),
// `2.in`… So uploading it into a room brings back the same project and tests.
//
// An upload is a zip or loose files (loose files go into the folder they were dropped on). Of a
// zip, everything is read before anything is written: a folder that wraps the whole zip (as
// "Compress folder" makes) is taken off, macOS's `__MACOSX/` and `.DS_Store` are left out, and
// `codebox-tests/N.in|out` become the room's tests (replacing them). Files must be UTF-8 text.
// The sizes a zip declares are checked before it is inflated, so a small zip cannot expand into
// a large one.

import type { Zippable } from 'fflate';
import { formatBytes, type ProjectLimits } from './limits';
import { TESTS_FOLDER, ancestors, baseName } from './paths';
import type { Project, ProjectFile, TestCase, TestText } from './project';

/** What an upload brings: files, empty folders, and the tests (null: the tests stay). */
export interface Upload {
  files: ProjectFile[];
  folders: string[];
  tests: TestText[] | null;
}

const TEST_FILE = new RegExp(`^${TESTS_FOLDER}/([1-9][0-9]{0,3})\\.(in|out)$`);
const JUNK = /(^|\/)(__MACOSX\/|\.DS_Store$|Thumbs\.db$)/;

/** The zip of `project` and `tests` (see the top of this file). */
export async function projectZip(project: Project, tests: TestCase[]): Promise<Blob> {
  const { strToU8, zipSync } = await import('fflate');
  const entries: Zippable = {};
  for (const { name, content } of project.snapshot()) entries[name] = strToU8(content);
  const filled = new Set(project.paths().flatMap(ancestors));
  for (const folder of project.keptFolders()) if (!filled.has(folder)) entries[folder] = {}; // a folder entry
  tests.forEach((test, i) => {
    entries[`${TESTS_FOLDER}/${i + 1}.in`] = strToU8(test.stdin.toString());
    entries[`${TESTS_FOLDER}/${i + 1}.out`] = strToU8(test.expected.toString());
  });
  const bytes = zipSync(entries, { level: 6, mtime: new Date() });
  return new Blob([bytes], { type: 'application/zip' });
}

/** Hands `blob` to the browser as a download named `name`. */
export function saveFile(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Reads what was picked or dropped (`folder`: where loose files go); returns it, or why it
 * cannot be taken. Nothing is written here: the caller checks it against the room and writes. */
export async function readUpload(picked: File[], folder: string, limits: ProjectLimits): Promise<Upload | string> {
  // The most text an upload may bring: a full project and a full test set.
  const mostBytes = limits.max_project_bytes + limits.max_tests * 2 * limits.max_test_bytes;
  const upload: Upload = { files: [], folders: [], tests: null };
  for (const file of picked) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await file.arrayBuffer());
    } catch {
      return `${file.name} could not be read (a dropped folder cannot be: zip it, or drop its files).`;
    }
    if (isZip(file)) {
      if (file.size > 2 * mostBytes) return `${file.name} is too large (${formatBytes(file.size)}): a project and its tests are at most ${formatBytes(mostBytes)}.`;
      const problem = await readZip(file.name, bytes, upload, mostBytes);
      if (problem) return problem;
      continue;
    }
    if (file.size > limits.max_project_bytes) return `${file.name} is too large: a project holds at most ${formatBytes(limits.max_project_bytes)} of text.`;
    const content = textOf(bytes);
    if (content === null) return notText(file.name);
    upload.files.push({ name: folder ? `${folder}/${file.name}` : file.name, content });
  }
  return upload;
}

function isZip(file: File): boolean {
  return file.name.toLowerCase().endsWith('.zip') || file.type === 'application/zip' || file.type === 'application/x-zip-compressed';
}

/** Reads the zip `zipName` (its `bytes`) into `upload`; returns why it cannot be taken, or null. */
async function readZip(zipName: string, bytes: Uint8Array, upload: Upload, mostBytes: number): Promise<string | null> {
  const { unzipSync } = await import('fflate');
  let declared = 0;
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, {
      filter: (entry) => {
        if (JUNK.test(entry.name)) return false;
        declared += entry.originalSize;
        return declared <= mostBytes;
      },
    });
  } catch (error) {
    return `${zipName} could not be read as a zip (${error instanceof Error ? error.message : String(error)}).`;
  }
  if (declared > mostBytes) return `${zipName} unpacks to more than ${formatBytes(mostBytes)}: more than a project and its tests may hold.`;

  const names = Object.keys(entries).map((name) => name.replace(/\\/g, '/').replace(/^(\.\/)+/, ''));
  const wrapper = wrappingFolder(names);
  const tests = new Map<number, TestText>();
  for (const [raw, name] of Object.keys(entries).map((raw, i) => [raw, names[i]] as const)) {
    const path = wrapper ? name.slice(wrapper.length + 1) : name;
    if (path === '') continue;
    if (path.endsWith('/')) {
      if (path !== `${TESTS_FOLDER}/`) upload.folders.push(path.slice(0, -1));
      continue;
    }
    const content = textOf(entries[raw]);
    if (content === null) return notText(path);
    const test = TEST_FILE.exec(path);
    if (test) {
      const number = Number(test[1]);
      const found = tests.get(number) ?? { stdin: '', expected: '' };
      if (test[2] === 'in') found.stdin = content;
      else found.expected = content;
      tests.set(number, found);
    } else if (path.startsWith(`${TESTS_FOLDER}/`)) {
      return `${zipName}: ${TESTS_FOLDER}/ holds only tests, named 1.in and 1.out, 2.in…; “${baseName(path)}” is not one.`;
    } else {
      upload.files.push({ name: path, content });
    }
  }
  if (tests.size) upload.tests = [...tests.entries()].sort(([a], [b]) => a - b).map(([, test]) => test);
  return null;
}

/** The folder every entry of a zip lies in, when there is one (and it is not the tests'). */
function wrappingFolder(names: string[]): string | null {
  const first = names.find((name) => name.includes('/'))?.split('/')[0];
  if (!first || first === TESTS_FOLDER) return null;
  return names.every((name) => name === `${first}/` || name.startsWith(`${first}/`)) ? first : null;
}

/** `bytes` as UTF-8 text, or null when they are not text (invalid UTF-8, or a NUL byte). */
function textOf(bytes: Uint8Array): string | null {
  if (bytes.includes(0)) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

const notText = (name: string) => `“${name}” is not a text file: a project holds UTF-8 text files only.`;
