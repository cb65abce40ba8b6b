// The Output and Runs panels: the selected run (the newest unless someone picked an older one
// from the history) with its status, streams and how it ended; the history below. Both render
// from the room's `runs` array, so every collaborator sees the same thing.

import { h, icon, panelHead, setChildren } from './dom';
import { formatDuration, signalName, statusView, timeAgo } from './format';
import { formatBytes, runLimits } from './limits';
import { languageById } from './languages';
import { TERMINAL, readRun, type RoomDoc, type RunFields } from './shared';

/** The two panels; `render` redraws what changed, `followNewest` shows the next run as it starts.
 * `emptyHint`: what the empty output says about starting a run (nothing for a viewer). */
export function createOutput(room: RoomDoc, emptyHint: Node | null, onSelect: () => void): {
  outputPanel: HTMLElement;
  historyPanel: HTMLElement;
  render(now: number): void;
  followNewest(): void;
} {
  const outputBody = h('div', { class: 'output-body', dataset: { testid: 'output' } });
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
    const outputKey = JSON.stringify(selected ?? null);
    if (outputKey !== shownOutput) {
      shownOutput = outputKey;
      renderOutput(selected);
    }
    const historyKey = JSON.stringify([selected?.key, runs.map((r) => [r.key, r.status, r.language, r.by, timeAgo(r.submitted_at, now)])]);
    if (historyKey !== shownHistory) {
      shownHistory = historyKey;
      historyCount.textContent = runs.length ? String(runs.length) : '';
      setChildren(historyList, runs.length
        ? runs.map((r) => historyRow(r, r === selected, now))
        : h('li', { class: 'empty' }, 'No runs yet.'));
    }
  }

  function renderOutput(run: RunFields | undefined): void {
    if (!run) {
      setChildren(outputBody, h('div', { class: 'empty-output' },
        h('p', null, 'Nothing has run in this room yet.'),
        emptyHint ? h('p', { class: 'dim' }, emptyHint) : null));
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
      onclick: () => {
        selectedKey = run.key === newestKey ? null : run.key;
        onSelect();
      },
    },
    h('span', { class: `dot tone-${view.tone}` }),
    h('span', { class: 'history-main' },
      h('span', { class: 'history-status' }, view.label),
      h('span', { class: 'history-meta' }, `${languageById(run.language)?.name ?? run.language} · ${run.by}`)),
    h('span', { class: 'history-time', title: new Date(run.submitted_at).toLocaleString() }, timeAgo(run.submitted_at, now))));
  }

  return { outputPanel, historyPanel, render, followNewest: () => { selectedKey = null; } };
}

function badge(label: string, tone: string): HTMLElement {
  return h('span', { class: `badge tone-${tone}` }, tone === 'busy' ? h('span', { class: 'spinner' }) : null, label);
}

function truncatedTitle(): string {
  const limits = runLimits();
  return limits ? `Only the first ${formatBytes(limits.output_bytes)} were kept` : 'Only the start was kept (the output limit)';
}

function stream(label: string, text: string, truncated: boolean, testid: string): HTMLElement {
  return h('div', { class: `stream stream-${testid}`, dataset: { testid } },
    h('div', { class: 'stream-label' }, label,
      truncated ? h('span', { class: 'tag warn', title: truncatedTitle(), dataset: { testid: `${testid}-truncated` } }, 'truncated') : null),
    h('pre', null, text || ' '));
}
