// Running code: submit through /api, poll until the run ends, and keep the shared run entry
// up to date so every collaborator sees it. Exactly one client polls a run: the one that ran
// it (its doc clientID is the entry's `poller`). If that client goes away before the run ends
// (tab closed, reloaded), the present client with the lowest id takes the run over, so no
// entry is left spinning; and every run ends by its deadline (runDeadlineMs) at the latest.
// A run is the project (one source, or its files) with the stdin panel's text, or with the
// room's tests: then the entry keeps each test's result (shared.ts, TestResult).

import type { Awareness } from 'y-protocols/awareness';
import { ApiError, submission, submit, type Program, type RunInput, type Submission, type TestRecord } from './api';
import type { LanguageId } from './languages';
import { runLimits } from './limits';
import { cutUtf8 } from './paths';
import type { ProjectFile, TestText } from './project';
import {
  TERMINAL, TEST_STDERR_KEPT, TEST_TEXT_KEPT, isDetached, readRun, sameValue, testFingerprint,
  type RoomDoc, type RunFields, type RunMap, type RunStatus, type TestResult,
} from './shared';

/** Longest a run may stay unfinished, from submission: the queue, a 10 s compile and a 5 s run
 * fit many times over; past this the fleet is down or swamped, and we say so. */
const RUN_DEADLINE_MS = 90_000;
/** Tests of one submission run at most this many at a time (the exec fleet's share)… */
const TESTS_AT_ONCE = 2;
/** …each within the run time limit, plus about this long for its fresh sandbox. */
const SANDBOX_MS = 2_000;

/** The deadline of a run with `tests` tests (0: a plain run): a tests run may take a round of
 * the run time limit per TESTS_AT_ONCE tests on top of a plain run's deadline. */
function runDeadlineMs(tests: number): number {
  return RUN_DEADLINE_MS + Math.ceil(tests / TESTS_AT_ONCE) * ((runLimits()?.run_ms ?? 5_000) + SANDBOX_MS);
}
/** How long a run's poller must be absent from the room before another client takes over. */
const TAKEOVER_AFTER_MS = 4_000;
/** A run still `submitting` whose client left this long ago will never get its id. */
const ABANDONED_SUBMIT_MS = 20_000;
const ORIGIN = 'codebox-runner';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const randomKey = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`);

/** The entry's fields for `record`; `tests`: the entry's tests as the run started. */
function fieldsFrom(record: Submission, tests: TestResult[] | null): Partial<RunFields> {
  const terminal = TERMINAL.has(record.status);
  const results = terminal && tests && Array.isArray(record.tests) ? { tests: withResults(tests, record.tests) } : {};
  return {
    ...results,
    id: record.id,
    status: (record.status as RunStatus) ?? 'running',
    note: null,
    exit_code: record.exit_code ?? null,
    signal: record.signal ?? null,
    stdout: record.stdout ?? '',
    stderr: record.stderr ?? '',
    stdout_truncated: !!record.stdout_truncated,
    stderr_truncated: !!record.stderr_truncated,
    compile_output: record.compile_output ?? null,
    time_ms: record.time_ms ?? null,
    time_limit: record.time_limit ?? null,
    finished_at: terminal ? Date.now() : null,
  };
}

/** Each test's result from the record (in the order sent); the texts stay only for a test
 * that did not pass (shared.ts, TestResult). */
function withResults(tests: TestResult[], records: TestRecord[]): TestResult[] {
  return tests.map((test, i) => {
    const record = records[i];
    if (!record) return { ...test, status: 'internal_error' };
    const passed = record.status === 'accepted';
    const stdout = cutUtf8(passed ? '' : record.stdout ?? '', TEST_TEXT_KEPT);
    const stderr = cutUtf8(passed ? '' : record.stderr ?? '', TEST_STDERR_KEPT);
    return {
      ...test,
      status: record.status as RunStatus,
      time_ms: record.time_ms ?? null,
      exit_code: record.exit_code ?? null,
      signal: record.signal ?? null,
      time_limit: record.time_limit ?? null,
      expected: passed ? '' : test.expected,
      expected_truncated: !passed && test.expected_truncated,
      stdout: stdout.text,
      stdout_truncated: !passed && (!!record.stdout_truncated || stdout.truncated),
      stderr: stderr.text,
      stderr_truncated: !passed && (!!record.stderr_truncated || stderr.truncated),
    };
  });
}

/** A test as a tests run sends it. */
export interface TestToRun extends TestText {
  id: string;
}

/** What one run runs: the language's project (the entry file first) with the stdin panel's
 * text, or with the room's tests. */
export interface RunRequest {
  language: LanguageId;
  files: ProjectFile[];
  input: { stdin: string } | { tests: TestToRun[] };
}

export interface Runner {
  /** Starts `request`; resolves once the exec API accepted or refused it. */
  run(request: RunRequest, by: { name: string; color: string }): Promise<void>;
  destroy(): void;
}

/** A runner for a client with edit access (`editToken`: the room's current edit token; viewers
 * have no runner: they neither run nor take runs over, since both write to the document). */
export function createRunner(room: RoomDoc, awareness: Awareness, isOnline: () => boolean, editToken: () => string): Runner {
  const me = room.doc.clientID;
  const polling = new Set<string>(); // keys this client is polling
  const missingSince = new Map<string, number>(); // run key -> when its poller was first seen gone
  let destroyed = false;

  /** Writes what changed (nothing at all when nothing did, so polling a queued run is quiet). */
  const update = (map: RunMap, fields: Partial<RunFields>) => {
    if (Object.entries(fields).some(([key, value]) => !sameValue(map.get(key), value))) {
      room.updateRun(map, { ...fields, updated_at: Date.now() }, ORIGIN);
    }
  };

  const fail = (map: RunMap, code: string, message: string) =>
    update(map, { status: 'error', error_code: code, error_message: message, note: null, finished_at: Date.now() });

  async function poll(map: RunMap, key: string, id: string): Promise<void> {
    if (polling.has(key)) return;
    polling.add(key);
    try {
      let delay = 150;
      let failures = 0;
      for (;;) {
        if (destroyed || isDetached(map)) return;
        const run = readRun(map);
        if (TERMINAL.has(run.status) || run.poller !== me) return;
        const deadline = runDeadlineMs(run.tests?.length ?? 0);
        if (Date.now() - run.submitted_at > deadline) {
          fail(map, 'no_result', `No result after ${deadline / 1000} s: the run is still ${run.status}. The exec fleet may be down or overloaded.`);
          return;
        }
        try {
          const record = await submission(id);
          failures = 0;
          update(map, fieldsFrom(record, run.tests));
          if (TERMINAL.has(record.status)) return;
        } catch (error) {
          if (error instanceof ApiError && error.status === 404) {
            fail(map, error.code, `The exec API no longer knows this run (${error.message}).`);
            return;
          }
          failures += 1;
          const reason = error instanceof ApiError ? error.message : String(error);
          if (failures >= 2) update(map, { note: `Waiting for the exec API: ${reason} Retrying.` });
        }
        await sleep(failures ? Math.min(4000, 500 * 2 ** failures) : delay);
        delay = Math.min(1000, Math.round(delay * 1.4));
      }
    } finally {
      polling.delete(key);
    }
  }

  async function run({ language, files, input }: RunRequest, by: { name: string; color: string }) {
    const now = Date.now();
    const key = randomKey();
    const tests = 'tests' in input ? input.tests : null;
    const map = room.addRun({
      key, id: null, language, by: by.name, color: by.color, poller: me, status: 'submitting', note: null,
      exit_code: null, signal: null, stdout: '', stderr: '', stdout_truncated: false, stderr_truncated: false,
      compile_output: null, time_ms: null, time_limit: null, error_code: null, error_message: null,
      submitted_at: now, updated_at: now, finished_at: null, tests: tests && tests.map(startedTest),
    }, ORIGIN);
    // One file goes as `source`, exactly as before projects.
    const program: Program = files.length === 1 ? { source: files[0].content } : { files };
    const sent: RunInput = 'tests' in input ? { tests: input.tests.map((t) => ({ stdin: t.stdin, expected_stdout: t.expected })) } : input;
    let accepted: { id: string; status: string };
    try {
      accepted = await submit(language, program, sent, editToken());
    } catch (error) {
      const e = error instanceof ApiError ? error : new ApiError('error', String(error));
      fail(map, e.code, e.message);
      return;
    }
    update(map, { id: accepted.id, status: (accepted.status as RunStatus) || 'queued' });
    void poll(map, key, accepted.id);
  }

  /** Takes over runs whose poller has left the room (see the header). */
  function adopt(): void {
    if (destroyed || !isOnline()) {
      missingSince.clear();
      return;
    }
    const present = [...awareness.getStates().keys()];
    const lowest = Math.min(...present, me);
    const now = Date.now();
    for (const map of room.runList()) {
      const run = readRun(map);
      if (TERMINAL.has(run.status) || polling.has(run.key)) continue;
      if (run.poller === me) {
        if (run.id) void poll(map, run.key, run.id);
        continue;
      }
      if (present.includes(run.poller)) {
        missingSince.delete(run.key);
        continue;
      }
      const since = missingSince.get(run.key) ?? now;
      missingSince.set(run.key, since);
      if (now - since < TAKEOVER_AFTER_MS || now - run.updated_at < TAKEOVER_AFTER_MS || lowest !== me) continue;
      if (run.id) {
        update(map, { poller: me });
        void poll(map, run.key, run.id);
      } else if (now - run.submitted_at > ABANDONED_SUBMIT_MS) {
        fail(map, 'abandoned', 'The page that started this run closed before the exec API answered.');
      }
    }
  }

  /** A test's result before the run ends: which test, as it was sent. */
  function startedTest(test: TestToRun): TestResult {
    const expected = cutUtf8(test.expected, TEST_TEXT_KEPT);
    return {
      id: test.id, fingerprint: testFingerprint(test.stdin, test.expected), status: null, time_ms: null, exit_code: null,
      signal: null, time_limit: null, expected: expected.text, expected_truncated: expected.truncated,
      stdout: '', stdout_truncated: false, stderr: '', stderr_truncated: false,
    };
  }

  const timer = setInterval(adopt, 1000);
  return {
    run,
    destroy() {
      destroyed = true;
      clearInterval(timer);
    },
  };
}
