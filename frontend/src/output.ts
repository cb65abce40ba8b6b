// The Output and Runs panels: the selected run (the newest unless someone picked an older one
// from the history) with its status and how it ended, then its live console while it runs
// (console.ts) or its stored streams; the history below. Both render from the room's document
// (`runs`, and `live` for the console), so every collaborator sees the same thing.

import { createConsole, type ConsoleTyping } from './console';
import { h, icon, panelHead, setChildren } from './dom';
import { formatDuration, signalName, statusView, timeAgo } from './format';
import { truncatedTitle } from './limits';
import { languageById } from './languages';
import { TERMINAL, readRun, type RoomDoc, type RunFields } from './shared';
import type { ConsoleView } from './transcript';

/** The two panels; `render` redraws what changed, `followNewest` shows the next run as it starts.
 * `emptyHint`: what the empty output says about starting a run (nothing for a viewer);
 * `typing`: what typing into a live run needs (null for a viewer); `onChange`: redraw soon (a
 * run was picked, or its console changed what the output shows). */
export function createOutput(room: RoomDoc, emptyHint: Node | null, onChange: () => void, typing: ConsoleTyping | null): {
  outputPanel: HTMLElement;
  historyPanel: HTMLElement;
  render(now: number): void;
  followNewest(): void;
} {
  // The body's parts stay in place, so the console keeps its scroll and its input focus: the
  // run's status, the compiler's output, the console, the stored streams.
  const summary = h('div', { class: 'output-summary' });
  const compiler = h('div', { class: 'output-compiler' });
  const live = createConsole(room, typing, onChange);
  const stored = h('div', { class: 'output-stored' });
  const outputBody = h('div', { class: 'output-body', dataset: { testid: 'output' } }, summary, compiler, live.element, stored);
  const historyList = h('ol', { class: 'history', dataset: { testid: 'history' } });
  const historyCount = h('span', { class: 'count' });
  const outputPanel = h('section', { class: 'panel panel-output' }, panelHead('terminal', 'Output'), outputBody);
  const historyPanel = h('section', { class: 'panel panel-history' }, panelHead('history', 'Runs', historyCount), historyList);

  let selectedKey: string | null = null; // null: follow the newest run
  let newestKey: string | null = null;
  // Each part is rebuilt only when what it shows changed: the output keeps its selection and scroll.
  let shownOutput = '';
  let shownHistory = '';

  function render(now: number): void {
    const runs = room.runList().map(readRun);
    const newest = runs[0];
    if (newest && newest.key !== newestKey) {
      if (newestKey !== null) selectedKey = null; // a new run: show it
      newestKey = newest.key;
    }
    const selected = runs.find((r) => r.key === selectedKey) ?? newest;
    const view = live.show(selected);
    // A tests run's texts are the Tests panel's: the output shows only how many passed.
    const outputKey = JSON.stringify([selected && { ...selected, tests: selected.tests?.map((t) => t.status) }, view]);
    if (outputKey !== shownOutput) {
      shownOutput = outputKey;
      renderOutput(selected, view);
    }
    const historyKey = JSON.stringify([selected?.key, runs.map((r) => [r.key, r.status, r.language, r.by, timeAgo(r.submitted_at, now), testsPassed(r)])]);
    if (historyKey !== shownHistory) {
      shownHistory = historyKey;
      historyCount.textContent = runs.length ? String(runs.length) : '';
      setChildren(historyList, runs.length
        ? runs.map((r) => historyRow(r, r === selected, now))
        : h('li', { class: 'empty' }, 'No runs yet.'));
    }
  }

  function renderOutput(run: RunFields | undefined, view: ConsoleView): void {
    if (!run) {
      setChildren(summary, h('div', { class: 'empty-output' },
        h('p', null, 'Nothing has run in this room yet.'),
        emptyHint ? h('p', { class: 'dim' }, emptyHint) : null));
      setChildren(compiler);
      setChildren(stored);
      return;
    }
    const status = statusView(run);
    const detail = run.tests ? testsDetail(run, status.detail) : status.detail;
    const lang = languageById(run.language);
    const meta: (string | Node)[] = [lang?.name ?? run.language, ' · by ', h('span', { class: 'by', style: `color:${run.color}` }, run.by)];
    const passed = testsPassed(run);
    if (passed) meta.push(' · ', h('span', { dataset: { testid: 'tests-passed' } }, passed));
    else if (run.tests) meta.push(' · ', `${run.tests.length} test${run.tests.length === 1 ? '' : 's'}`);
    // A tests run's time is its slowest test's (Contract 2b's record).
    if (run.time_ms != null) meta.push(' · ', run.tests ? `slowest ${formatDuration(run.time_ms)}` : formatDuration(run.time_ms));
    // How the program ended, where that is the program's doing (a limit's kill is ours).
    if (run.status === 'ok' || run.status === 'runtime_error') {
      if (run.signal != null) meta.push(' · ', signalName(run.signal));
      else if (run.exit_code != null) meta.push(' · ', `exit ${run.exit_code}`);
    }
    setChildren(summary,
      h('div', { class: 'run-head', dataset: { testid: 'run-status', status: run.status } },
        badge(status.label, status.tone),
        h('span', { class: 'run-meta' }, meta)),
      detail ? h('div', { class: `run-detail tone-${status.tone}`, dataset: { testid: 'run-detail' } },
        run.status === 'error' && run.error_code ? h('code', { class: 'error-code' }, run.error_code) : null,
        h('span', null, detail)) : null,
      run.note && !TERMINAL.has(run.status) ? h('div', { class: 'run-note' }, icon('alert'), run.note) : null);
    const result = view === 'stored' || view === 'ended'; // else the console shows the run
    setChildren(compiler, result && run.compile_output ? stream('Compiler output', run.compile_output, false, 'compile-output') : null);
    setChildren(stored, result ? storedStreams(run, view === 'ended') : null);
  }

  /** The stored result's stdout and stderr; beside an ended console (whose transcript shows
   * them already, interleaved) folded. */
  function storedStreams(run: RunFields, folded: boolean): Node | Node[] | null {
    const outputs: Node[] = [];
    if (run.stdout) outputs.push(stream('stdout', run.stdout, run.stdout_truncated, 'stdout'));
    if (run.stderr) outputs.push(stream('stderr', run.stderr, run.stderr_truncated, 'stderr'));
    if (folded) return outputs.length ? h('details', { class: 'streams-apart' }, h('summary', null, 'stdout and stderr apart'), outputs) : null;
    if (!TERMINAL.has(run.status)) return h('p', { class: 'dim no-output' }, 'Waiting for a sandbox…');
    if (!outputs.length && !run.compile_output && run.status !== 'error') return h('p', { class: 'dim no-output' }, 'The program wrote nothing.');
    return outputs;
  }

  function historyRow(run: RunFields, active: boolean, now: number): HTMLElement {
    const view = statusView(run);
    return h('li', null, h('button', {
      class: `history-row${active ? ' active' : ''}`, type: 'button', dataset: { testid: 'history-item', status: run.status },
      onclick: () => {
        selectedKey = run.key === newestKey ? null : run.key;
        onChange();
      },
    },
    h('span', { class: `dot tone-${view.tone}` }),
    h('span', { class: 'history-main' },
      h('span', { class: 'history-status' }, view.label),
      h('span', { class: 'history-meta' }, [languageById(run.language)?.name ?? run.language, testsPassed(run), run.by].filter(Boolean).join(' · '))),
    h('span', { class: 'history-time', title: new Date(run.submitted_at).toLocaleString() }, timeAgo(run.submitted_at, now))));
  }

  return { outputPanel, historyPanel, render, followNewest: () => { selectedKey = null; } };
}

/** "2 of 3 tests passed" for a tests run that ended with its tests' results, else ''. */
function testsPassed(run: RunFields): string {
  if (!run.tests || !TERMINAL.has(run.status) || run.tests.some((t) => t.status === null)) return '';
  return `${run.tests.filter((t) => t.status === 'accepted').length} of ${run.tests.length} tests passed`;
}

/** A tests run's verdict, said of the test that decided it (the first that did not pass). */
function testsDetail(run: RunFields, detail: string | null): string | null {
  const deciding = run.tests?.findIndex((t) => t.status !== null && t.status !== 'accepted') ?? -1;
  if (deciding < 0 || run.status === 'compile_error' || run.status === 'error') return detail;
  if (run.status === 'wrong_answer') return `Test ${deciding + 1}'s output differs from the expected output: the Tests panel shows both side by side.`;
  return `Test ${deciding + 1}: ${detail ?? statusView(run).label}`;
}

function badge(label: string, tone: string): HTMLElement {
  return h('span', { class: `badge tone-${tone}` }, tone === 'busy' ? h('span', { class: 'spinner' }) : null, label);
}

/** One stream of output (or the compiler's), labelled, with its truncation. */
export function stream(label: string, text: string, truncated: boolean, testid: string): HTMLElement {
  return h('div', { class: `stream stream-${testid}`, dataset: { testid } },
    h('div', { class: 'stream-label' }, label,
      truncated ? h('span', { class: 'tag warn', title: truncatedTitle(), dataset: { testid: `${testid}-truncated` } }, 'truncated') : null),
    h('pre', null, text || ' '));
}
