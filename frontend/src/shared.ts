// The room's shared state: everything collaborators see lives in one Y.Doc, synced through the
// room's Durable Object (and stored there, so it survives reloads). Layout (docs/FRONTEND.md):
//
//   meta         Y.Map    language: LanguageId            (the room's selected language)
//   source:{id}  Y.Text   the program's entry file, one per language (switching keeps each one)
//   files:{id}, folders:{id}, tests   a language's other files and folders, the room's tests
//                                  (project.ts explains them)
//   stdin        Y.Text   the program's input
//   runs         Y.Array<Y.Map>   run history, newest first, at most MAX_RUNS (see RunFields)
//   live         Y.Map<Y.Map>     live runs' consoles by submission id, written by the room's
//                                  object only (crates/live/src/console.rs defines them;
//                                  transcript.ts reads them, console.ts shows them)

import * as Y from 'yjs';
import { DEFAULT_LANGUAGE, LANGUAGES, STARTER_STDIN, languageById, type LanguageId } from './languages';
import { Project, TestSet } from './project';
import type { TimeLimit } from './transcript';

export const MAX_RUNS = 20;

/** How much of each test's expected output and stdout a tests run keeps (UTF-8 bytes), and of
 * its stderr; the exec API already cuts its outputs to a few KiB. */
export const TEST_TEXT_KEPT = 4096;
export const TEST_STDERR_KEPT = 2048;

/** Statuses of Contract 2, plus the client's own: `submitting` (no answer yet) and `error`
 * (the edge or the exec API refused the run or could not be reached: see error_code). */
export type RunStatus =
  | 'submitting' | 'queued' | 'running'
  | 'ok' | 'compile_error' | 'runtime_error' | 'time_limit_exceeded' | 'memory_limit_exceeded'
  | 'output_limit_exceeded' | 'internal_error' | 'wrong_answer' | 'accepted' | 'error';

export const TERMINAL: ReadonlySet<string> = new Set([
  'ok', 'compile_error', 'runtime_error', 'time_limit_exceeded', 'memory_limit_exceeded',
  'output_limit_exceeded', 'internal_error', 'wrong_answer', 'accepted', 'error',
]);

/** One entry of `runs`: a Y.Map with these keys. */
export interface RunFields {
  key: string; // made by the client that ran it; stable before the exec API gives an id
  id: string | null; // the submission id (Contract 2)
  language: LanguageId;
  by: string; // the runner's name and colour, as they were
  color: string;
  poller: number; // the doc clientID of the client polling the exec API for this run
  status: RunStatus;
  note: string | null; // a transient remark while polling ("exec API unreachable, retrying")
  exit_code: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  compile_output: string | null;
  time_ms: number | null;
  time_limit: TimeLimit | null; // the limit that ended a `time_limit_exceeded` run, when the result names it
  error_code: string | null; // status `error` only
  error_message: string | null;
  submitted_at: number; // ms since the epoch (the runner's clock)
  updated_at: number;
  finished_at: number | null;
  /** A tests run: one result per test, in the order they were sent; null for a plain run. */
  tests: TestResult[] | null;
}

/**
 * One test of a tests run, as its run entry keeps it (a plain JSON value, written when the run
 * starts and once more when it ends). The texts are there for the diff and are kept bounded:
 * cut to TEST_TEXT_KEPT, only for a test that did not pass, and only on the room's newest tests
 * run (RoomDoc.addRun drops them from the older ones).
 */
export interface TestResult {
  id: string; // the test's id in `tests`
  fingerprint: number; // of its input and expected output when it ran (testFingerprint)
  status: RunStatus | null; // null until the run ends
  time_ms: number | null;
  exit_code: number | null;
  signal: number | null;
  time_limit: TimeLimit | null;
  expected: string; // the expected output when it ran
  expected_truncated: boolean;
  stdout: string;
  stdout_truncated: boolean;
  stderr: string;
  stderr_truncated: boolean;
}

export type RunMap = Y.Map<unknown>;

export function readRun(map: RunMap): RunFields {
  const get = <K extends keyof RunFields>(key: K, fallback: RunFields[K]): RunFields[K] => {
    const value = map.get(key);
    return value === undefined ? fallback : (value as RunFields[K]);
  };
  return {
    key: get('key', ''),
    id: get('id', null),
    language: get('language', DEFAULT_LANGUAGE),
    by: get('by', 'Someone'),
    color: get('color', '#888888'),
    poller: get('poller', 0),
    status: get('status', 'submitting'),
    note: get('note', null),
    exit_code: get('exit_code', null),
    signal: get('signal', null),
    stdout: get('stdout', ''),
    stderr: get('stderr', ''),
    stdout_truncated: get('stdout_truncated', false),
    stderr_truncated: get('stderr_truncated', false),
    compile_output: get('compile_output', null),
    time_ms: get('time_ms', null),
    time_limit: get('time_limit', null),
    error_code: get('error_code', null),
    error_message: get('error_message', null),
    submitted_at: get('submitted_at', 0),
    updated_at: get('updated_at', 0),
    finished_at: get('finished_at', null),
    tests: readTests(map.get('tests')),
  };
}

/** A run entry's `tests`, read defensively (any participant may have written the entry). */
function readTests(value: unknown): TestResult[] | null {
  if (!Array.isArray(value)) return null;
  return value.filter((t): t is Record<string, unknown> => typeof t === 'object' && t !== null && typeof t.id === 'string').map((t) => {
    const num = (key: string) => (typeof t[key] === 'number' ? (t[key] as number) : null);
    const str = (key: string) => (typeof t[key] === 'string' ? (t[key] as string) : '');
    return {
      id: t.id as string,
      fingerprint: num('fingerprint') ?? 0,
      status: typeof t.status === 'string' ? (t.status as RunStatus) : null,
      time_ms: num('time_ms'),
      exit_code: num('exit_code'),
      signal: num('signal'),
      time_limit: typeof t.time_limit === 'string' ? (t.time_limit as TimeLimit) : null,
      expected: str('expected'),
      expected_truncated: t.expected_truncated === true,
      stdout: str('stdout'),
      stdout_truncated: t.stdout_truncated === true,
      stderr: str('stderr'),
      stderr_truncated: t.stderr_truncated === true,
    };
  });
}

/** Identifies a test's input and expected output, so a result can say its test changed since. */
export function testFingerprint(stdin: string, expected: string): number {
  return fnv1a(`${stdin}\0${expected}`);
}

/** FNV-1a, 32 bits: a stable client id for seeded content. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) || 1;
}

/**
 * The update that puts `content` into the empty root text `name`, written by a client id
 * derived from both. Every client builds the byte-identical update, so when two clients seed
 * a new room at once Yjs sees one insertion, not two; applying it again is a no-op.
 */
function seedUpdate(name: string, content: string): { client: number; update: Uint8Array } {
  const client = fnv1a(`codebox-seed\0${name}\0${content}`);
  const scratch = new Y.Doc({ gc: false });
  scratch.clientID = client;
  scratch.getText(name).insert(0, content);
  return { client, update: Y.encodeStateAsUpdate(scratch) };
}

export const SEED_ORIGIN = 'codebox-seed';

export class RoomDoc {
  readonly meta: Y.Map<unknown>;
  readonly stdin: Y.Text;
  readonly runs: Y.Array<RunMap>;
  /** The consoles of live runs: read only, the room's object is their one writer. */
  readonly live: Y.Map<unknown>;
  readonly tests: TestSet;
  private readonly projects = new Map<LanguageId, Project>();

  constructor(readonly doc: Y.Doc) {
    this.meta = doc.getMap('meta');
    this.stdin = doc.getText('stdin');
    this.runs = doc.getArray<RunMap>('runs');
    this.live = doc.getMap('live');
    this.tests = new TestSet(doc);
  }

  /** The project of `language` (its entry file is `source:{language}`). */
  project(language: LanguageId): Project {
    let found = this.projects.get(language);
    if (!found) {
      found = new Project(this.doc, language);
      this.projects.set(language, found);
    }
    return found;
  }

  get language(): LanguageId {
    return languageById(this.meta.get('language'))?.id ?? DEFAULT_LANGUAGE;
  }

  set language(id: LanguageId) {
    if (this.meta.get('language') !== id) this.meta.set('language', id);
  }

  /**
   * Fills the text `name` with `content` if it is empty and was never seeded. Call it only once
   * the document has synced with the room, so an existing room's text is known first.
   */
  private seed(name: string, content: string): void {
    const text = this.doc.getText(name);
    if (text.length > 0) return;
    const { client, update } = seedUpdate(name, content);
    if (Y.decodeStateVector(Y.encodeStateVector(this.doc)).has(client)) return;
    Y.applyUpdate(this.doc, update, SEED_ORIGIN);
  }

  /** Starter program of `language` and starter input, for a room that has none yet. */
  seedLanguage(language: LanguageId): void {
    const lang = LANGUAGES.find((l) => l.id === language);
    if (lang) this.seed(`source:${language}`, lang.starter);
  }

  seedStdin(): void {
    this.seed('stdin', STARTER_STDIN);
  }

  /** Adds a run at the top of the history, dropping the oldest beyond MAX_RUNS. A tests run
   * takes the tests' texts off the older tests runs: only the newest one shows them. */
  addRun(fields: RunFields, origin: unknown): RunMap {
    const map: RunMap = new Y.Map();
    this.doc.transact(() => {
      if (fields.tests) {
        for (const older of this.runs.toArray()) {
          const tests = readTests(older.get('tests'));
          if (tests?.some((t) => t.expected || t.stdout || t.stderr)) {
            older.set('tests', tests.map((t) => ({ ...t, expected: '', stdout: '', stderr: '' })));
          }
        }
      }
      for (const [key, value] of Object.entries(fields)) map.set(key, value);
      this.runs.insert(0, [map]);
      if (this.runs.length > MAX_RUNS) this.runs.delete(MAX_RUNS, this.runs.length - MAX_RUNS);
    }, origin);
    return map;
  }

  /** Writes `fields` into a run, unless it already ended (a terminal status never changes). */
  updateRun(map: RunMap, fields: Partial<RunFields>, origin: unknown): void {
    if (isDetached(map)) return;
    this.doc.transact(() => {
      if (TERMINAL.has(String(map.get('status')))) return;
      for (const [key, value] of Object.entries(fields)) {
        if (!sameValue(map.get(key), value)) map.set(key, value);
      }
    }, origin);
  }

  runList(): RunMap[] {
    return this.runs.toArray();
  }
}

/** Whether two entry values are equal (plain JSON values: the `tests` array by content). */
export function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && JSON.stringify(a) === JSON.stringify(b));
}

/** Whether a run was dropped from the history (trimmed, or deleted by someone). */
export function isDetached(map: RunMap): boolean {
  return map.doc === null || (map._item !== null && map._item.deleted);
}
