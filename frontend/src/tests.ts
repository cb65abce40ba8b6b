// The Tests panel, below the editor: the room's test cases (each an input and the output the
// program should print for it, shared texts: project.ts) and the newest tests run's result for
// each (status and time, from its run entry: shared.ts, TestResult). The selected test shows its
// two texts and its result: for a wrong answer, the expected and the actual output side by side
// with the lines the judge finds different highlighted (judge.ts). When a tests run ends, every
// participant's panel selects its first failing test. People with edit rights add, edit and
// delete tests and run them; a viewer reads.

import type { Awareness } from 'y-protocols/awareness';
import type * as Y from 'yjs';
import { confirmButton, h, icon, setChildren } from './dom';
import { createTextEditor, type TextEditor } from './editor';
import { formatDuration, statusView, type Tone } from './format';
import { diffRows } from './judge';
import { formatBytes, projectLimits, truncatedTitle } from './limits';
import { stream } from './output';
import { utf8Length } from './paths';
import type { TestCase } from './project';
import { TERMINAL, TEST_TEXT_KEPT, readRun, testFingerprint, type RoomDoc, type RunFields, type TestResult } from './shared';

export interface TestsPanel {
  element: HTMLElement;
  render(): void;
}

export interface TestsPanelOptions {
  room: RoomDoc;
  awareness: Awareness;
  canEdit: boolean;
  /** Runs the room's tests (edit rights only). */
  onRunTests(): void;
  /** Whether a run is being submitted from this page. */
  submitting(): boolean;
}

/** One test as a row shows it. */
interface Row {
  test: TestCase;
  result: TestResult | null;
  /** The test's texts changed since the run whose result is shown. */
  stale: boolean;
}

export function createTestsPanel({ room, awareness, canEdit, onRunTests, submitting }: TestsPanelOptions): TestsPanel {
  const count = h('span', { class: 'count' });
  const verdict = h('span', { class: 'tests-verdict', dataset: { testid: 'tests-verdict' } });
  const message = h('span', { class: 'tests-message', role: 'alert', dataset: { testid: 'tests-message' } });
  const runLabel = h('span', null, 'Run tests');
  const runButton = canEdit
    ? h('button', { class: 'btn run-tests', type: 'button', title: 'Run the program once per test and compare its output', dataset: { testid: 'run-tests' }, onclick: () => onRunTests() },
      icon('play'), runLabel)
    : null;
  const addButton = canEdit
    ? h('button', { class: 'btn ghost', type: 'button', dataset: { testid: 'add-test' }, onclick: () => addTest() }, icon('plus'), 'Add test')
    : null;
  const toggle = h('button', { class: 'btn ghost tests-toggle', type: 'button', 'aria-expanded': 'true', title: 'Show or hide the tests', onclick: () => setOpen(body.hidden) },
    icon('chevron'));
  const list = h('ol', { class: 'test-list', dataset: { testid: 'test-list' } });
  const detailHead = h('div', { class: 'test-head' });
  const stdinHost = h('div', { class: 'test-text' });
  const expectedHost = h('div', { class: 'test-text' });
  const result = h('div', { class: 'test-result' });
  const detail = h('div', { class: 'test-detail' },
    detailHead,
    h('div', { class: 'test-texts' },
      h('div', { class: 'test-field' }, h('span', { class: 'field-label' }, 'Input'), stdinHost),
      h('div', { class: 'test-field' }, h('span', { class: 'field-label' }, 'Expected output'), expectedHost)),
    result);
  const empty = h('div', { class: 'tests-empty' },
    h('p', null, 'No tests yet.'),
    h('p', { class: 'dim' }, canEdit
      ? 'A test is an input and the output the program should print for it. Add some, then Run tests: everyone here sees each test pass or fail.'
      : 'Tests added by the room show here with their results.'));
  const body = h('div', { class: 'tests-body' }, list, detail, empty);
  const element = h('section', { class: 'panel panel-tests', dataset: { testid: 'tests' } },
    h('div', { class: 'panel-head' }, toggle, icon('tests', 'dim'), h('h2', null, 'Tests'), count, verdict, message,
      h('div', { class: 'spacer' }), addButton, runButton),
    body);

  let selectedId: string | null = null;
  let editors: TextEditor[] = [];
  let shownEditors: { stdin: Y.Text; expected: Y.Text } | null = null;
  let shownList = '';
  let shownVerdict = '';
  let shownHead = '';
  let shownResult = '';
  let settledRun: string | null = null; // the ended tests run that last picked the selection ('' none)

  function setOpen(open: boolean): void {
    body.hidden = !open;
    element.classList.toggle('closed', !open);
    toggle.setAttribute('aria-expanded', String(open));
  }

  function addTest(): void {
    const added = room.tests.add(projectLimits());
    if (typeof added === 'string') {
      message.textContent = added;
      return;
    }
    message.textContent = '';
    selectedId = added.id;
    setOpen(true);
    render();
    editors[0]?.view.focus();
  }

  function render(): void {
    const tests = room.tests.list();
    const runs = room.runList().map(readRun);
    const latest = runs.find((run) => run.tests !== null) ?? null;
    const busy = runs[0] !== undefined && !TERMINAL.has(runs[0].status);
    const rows: Row[] = tests.map((test) => {
      const found = latest?.tests?.find((t) => t.id === test.id) ?? null;
      return { test, result: found, stale: found !== null && found.fingerprint !== testFingerprint(test.stdin.toString(), test.expected.toString()) };
    });

    // When the newest tests run has ended (or had, when the page opened), show its first failing
    // test; otherwise the selection stays.
    const ended = latest && TERMINAL.has(latest.status) ? latest.key : '';
    if (ended !== settledRun) {
      const failing = rows.find((row) => row.result?.status && row.result.status !== 'accepted');
      if (ended && failing) selectedId = failing.test.id;
      settledRun = ended;
    }
    if (!tests.some((t) => t.id === selectedId)) selectedId = tests[0]?.id ?? null;
    const selected = rows.find((row) => row.test.id === selectedId) ?? null;

    count.textContent = tests.length ? String(tests.length) : '';
    renderVerdict(latest, rows);
    if (runButton) {
      const testsBusy = busy && runs[0]?.tests !== null; // a tests run is added as it is submitted
      runButton.disabled = submitting() || tests.length === 0;
      runButton.classList.toggle('busy', testsBusy);
      runLabel.textContent = testsBusy ? 'Running tests…' : 'Run tests';
    }
    empty.hidden = tests.length > 0;
    list.hidden = detail.hidden = tests.length === 0;

    const listKey = JSON.stringify([selectedId, latest?.status, rows.map((r, i) => [r.test.id, i, r.result?.status, r.result?.time_ms, r.stale])]);
    if (listKey !== shownList) {
      shownList = listKey;
      setChildren(list, rows.map((row, i) => testRow(row, i, latest)));
    }
    renderDetail(selected, tests.indexOf(selected?.test as TestCase), latest);
  }

  function renderVerdict(latest: RunFields | null, rows: Row[]): void {
    const key = JSON.stringify([latest?.status, latest?.tests?.map((t) => t.status), rows.some((row) => row.stale)]);
    if (key === shownVerdict) return;
    shownVerdict = key;
    if (!latest) {
      setChildren(verdict);
      return;
    }
    const view = statusView(latest);
    const results = latest.tests ?? [];
    const passed = results.filter((t) => t.status === 'accepted').length;
    setChildren(verdict, h('span', { class: `badge tone-${view.tone}`, dataset: { status: latest.status } },
      view.tone === 'busy' ? h('span', { class: 'spinner' }) : null, view.label),
    TERMINAL.has(latest.status) && latest.status !== 'error' ? h('span', { class: 'dim' }, `${passed} of ${results.length} passed`) : null,
    rows.some((row) => row.stale) ? h('span', { class: 'tag', title: 'Some tests changed since this run' }, 'edited since') : null);
  }

  function testRow(row: Row, index: number, latest: RunFields | null): HTMLElement {
    const { label, tone } = rowStatus(row.result, latest);
    const active = row.test.id === selectedId;
    return h('li', null, h('button', {
      class: `test-row${active ? ' active' : ''}`, type: 'button',
      dataset: { testid: 'test-row', status: row.result?.status ?? 'none', index: String(index + 1) },
      onclick: () => {
        selectedId = row.test.id;
        render();
      },
    },
    h('span', { class: `dot tone-${tone}` }),
    h('span', { class: 'test-name' }, `Test ${index + 1}`),
    h('span', { class: 'test-status' }, label),
    row.result?.time_ms != null ? h('span', { class: 'test-time' }, formatDuration(row.result.time_ms)) : null));
  }

  function renderDetail(row: Row | null, index: number, latest: RunFields | null): void {
    if (!row) {
      editors.forEach((e) => e.destroy());
      editors = [];
      shownEditors = null;
      shownHead = shownResult = '';
      return;
    }
    const { test } = row;
    if (shownEditors?.stdin !== test.stdin || shownEditors?.expected !== test.expected) {
      editors.forEach((e) => e.destroy());
      const name = `Test ${index + 1}`;
      editors = [
        createTextEditor(stdinHost, test.stdin, awareness, onRunTests, canEdit, { label: `${name} input`, placeholder: 'What the program reads (stdin)', empty: 'No input', testid: 'test-stdin' }),
        createTextEditor(expectedHost, test.expected, awareness, onRunTests, canEdit, { label: `${name} expected output`, placeholder: 'What it should print', empty: 'No output expected', testid: 'test-expected' }),
      ];
      shownEditors = { stdin: test.stdin, expected: test.expected };
    }
    const size = sizeNote(test);
    const headKey = JSON.stringify([test.id, index, size]);
    if (headKey !== shownHead) {
      shownHead = headKey;
      setChildren(detailHead,
        h('h3', { dataset: { testid: 'test-title' } }, `Test ${index + 1}`),
        h('span', { class: 'dim' }, size),
        h('div', { class: 'spacer' }),
        canEdit ? confirmButton([icon('trash'), h('span', null, 'Delete')], `Delete test ${index + 1}?`, () => room.tests.remove(test.id),
          { class: 'btn ghost danger', title: `Delete test ${index + 1}`, testid: 'delete-test' }) : null);
    }
    const key = JSON.stringify([test.id, row.result, row.stale, latest?.status, latest?.compile_output, latest?.error_message]);
    if (key === shownResult) return;
    shownResult = key;
    setChildren(result, resultView(row, latest));
  }

  setOpen(true);
  return { element, render };
}

/** How a test's result reads in its row: a status label and a tone. */
function rowStatus(result: TestResult | null, latest: RunFields | null): { label: string; tone: Tone } {
  if (!result || !latest) return { label: 'Not run', tone: 'neutral' };
  if (result.status === null) {
    // The run ended without this test's result: it was refused, or never came back.
    if (TERMINAL.has(latest.status)) return { label: statusView(latest).label, tone: 'error' };
    return { label: 'Running', tone: 'busy' };
  }
  const view = statusView({ ...latest, status: result.status });
  return { label: view.label, tone: view.tone };
}

/** The sizes of a test's texts, once they near the limit. */
function sizeNote(test: TestCase): string {
  const limit = projectLimits().max_test_bytes;
  const largest = Math.max(utf8Length(test.stdin.toString()), utf8Length(test.expected.toString()));
  return largest > limit / 2 ? `${formatBytes(largest)} of ${formatBytes(limit)}` : '';
}

/** The selected test's result: how it ended and, for a wrong answer, the side-by-side diff. */
function resultView(row: Row, latest: RunFields | null): Node[] {
  const { result, stale } = row;
  if (!result || !latest) return [h('p', { class: 'dim', dataset: { testid: 'test-result', status: 'none' } }, 'Not run yet.')];
  if (result.status === null) {
    const text = TERMINAL.has(latest.status) ? statusView(latest).detail ?? statusView(latest).label : 'Running…';
    return [h('p', { class: 'dim', dataset: { testid: 'test-result', status: 'none' } }, text)];
  }
  // The test's own end: its status, signal, exit code and time limit, in the run's words.
  const ended: RunFields = { ...latest, status: result.status, exit_code: result.exit_code, signal: result.signal, time_limit: result.time_limit };
  const view = statusView(ended);
  const detail = result.status === 'wrong_answer' ? null : view.detail; // the diff says it
  const parts: Node[] = [
    h('div', { class: 'run-head', dataset: { testid: 'test-result', status: result.status } },
      h('span', { class: `badge tone-${view.tone}` }, view.label),
      result.time_ms != null ? h('span', { class: 'run-meta' }, formatDuration(result.time_ms)) : null,
      stale ? h('span', { class: 'tag', title: 'The result is of the test as it was when it ran' }, 'edited since') : null),
  ];
  if (detail && result.status !== 'accepted') parts.push(h('p', { class: `run-detail tone-${view.tone}` }, h('span', null, detail)));
  if (result.status === 'wrong_answer') parts.push(diffView(result));
  else if (result.status === 'compile_error' && latest.compile_output) parts.push(stream('Compiler output', latest.compile_output, false, 'compile-output'));
  else if (result.status !== 'accepted') {
    if (result.stdout) parts.push(stream('stdout', result.stdout, result.stdout_truncated, 'stdout'));
    if (result.stderr) parts.push(stream('stderr', result.stderr, result.stderr_truncated, 'stderr'));
  }
  return parts;
}

/** Expected and actual output side by side, line by line as the judge pairs them. */
function diffView(result: TestResult): HTMLElement {
  const rows = diffRows(result.expected, result.stdout);
  const cell = (line: number, text: string | null, same: boolean, side: string) => [
    h('span', { class: 'diff-ln' }, text === null ? '' : String(line)),
    h('span', { class: `diff-text ${side}${same ? '' : ' differs'}${text === null ? ' missing' : ''}` }, text ?? ''),
  ];
  const cut = result.expected_truncated || result.stdout_truncated;
  return h('div', { class: 'diff', dataset: { testid: 'test-diff' } },
    h('div', { class: 'diff-grid' },
      h('span', { class: 'diff-title' }, 'Expected output'),
      h('span', { class: 'diff-title' }, 'Actual output'),
      rows.map((row) => h('div', { class: 'diff-row', dataset: { testid: 'diff-row', same: String(row.same) } },
        cell(row.line, row.expected, row.same, 'expected'),
        cell(row.line, row.actual, row.same, 'actual'))),
      rows.length === 0 ? h('span', { class: 'diff-note' }, 'Both outputs are empty.') : null),
    h('p', { class: 'diff-note' }, 'Highlighted: the lines that differ. Spaces, tabs and carriage returns at the end of a line, and blank lines at the end, do not count.'),
    cut ? h('p', { class: 'diff-note', title: truncatedTitle() },
      `Only the first ${formatBytes(TEST_TEXT_KEPT)} of each output are kept here${result.stdout_truncated ? ', and the program\'s output was cut' : ''}.`) : null,
    result.stderr ? stream('stderr', result.stderr, result.stderr_truncated, 'stderr') : null);
}
