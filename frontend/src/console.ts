// The live console, inside the Output panel: the shown run's transcript as the program writes
// it (stdout, stderr, each typed line with who typed it, who ended the input) and, for people
// with edit rights, the line they type into the running program. It renders from the room's
// document: the `live` map, which only the room's object writes (transcript.ts reads it;
// crates/live/src/console.rs defines it), beside the run's entry. New entries are appended as
// they arrive, at most once a frame; nothing already shown is rebuilt.

import * as Y from 'yjs';
import { ApiError, sendInput, type Typed } from './api';
import { h, icon } from './dom';
import type { User } from './identity';
import { truncatedTitle } from './limits';
import { TERMINAL, type RoomDoc, type RunFields } from './shared';
import { consoleView, continues, lineProblem, readConsole, segments, splitPasted, type ConsoleFields, type ConsoleView, type Segment } from './transcript';

/** What typing into a run needs: the room, its current edit token, and who types. A viewer has
 * none, and sees no input line. */
export interface ConsoleTyping {
  room: string;
  token(): string;
  user: User;
}

export interface LiveConsole {
  /** The transcript, the input line and the notes (hidden when the stored result is shown). */
  element: HTMLElement;
  /** Shows `run`'s console and says what the output shows of the run; `onChange` (given to
   * createConsole) runs when that changes without a call here (the console appeared, ended…). */
  show(run: RunFields | undefined): ConsoleView;
}

export const NOTE_WAITING = 'Waiting for the program…';
export const NOTE_LOST = 'Live output unavailable: the result will appear when the run ends';

/** Scrolled within this many pixels of the end counts as at the end: new output keeps it there. */
const PINNED_PX = 8;

export function createConsole(room: RoomDoc, typing: ConsoleTyping | null, onChange: () => void): LiveConsole {
  const transcript = h('pre', { class: 'console-transcript', tabindex: '0', dataset: { testid: 'console' } });
  const liveTag = h('span', { class: 'tag live', title: 'Output appears as the program writes it' }, 'live');
  const cutTag = (stream: string) => h('span', { class: 'tag warn' }, `${stream} truncated`);
  const outCut = cutTag('stdout');
  const errCut = cutTag('stderr');
  const field = h('input', {
    class: 'console-field', type: 'text', autocomplete: 'off', spellcheck: false, 'aria-label': 'A line of input for the program',
    placeholder: 'Type a line, Enter sends it; Ctrl-D ends the input', dataset: { testid: 'console-input' },
  });
  const eofButton = h('button', {
    class: 'btn ghost console-eof', type: 'button', title: 'End the program\'s input (Ctrl-D)', dataset: { testid: 'console-eof' },
    onclick: () => endInput(),
  }, 'End input');
  const inputRow = h('div', { class: 'console-input' }, h('span', { class: 'console-prompt', 'aria-hidden': 'true' }, '›'), field, eofButton);
  const error = h('p', { class: 'console-error', role: 'alert', dataset: { testid: 'console-error' } });
  const givenInput = h('p', { class: 'console-hint', dataset: { testid: 'console-hint' } },
    'This run read the stdin panel as its whole input. Leave the stdin panel empty to type into the program as it runs.');
  const box = h('div', { class: 'stream console' },
    h('div', { class: 'stream-label' }, 'console', liveTag, outCut, errCut),
    transcript, inputRow, givenInput, error);
  const noteText = h('span');
  const note = h('div', { class: 'run-note console-note', dataset: { testid: 'console-note' } }, icon('clock'), noteText);
  const element = h('div', { class: 'console-panel' }, note, box);

  let run: RunFields | undefined;
  let id: string | null = null; // the submission whose console is bound
  let bound: Y.Map<unknown> | null = null; // its console, observed while bound
  let shownEntries: Y.Array<unknown> | null = null; // its transcript as rendered…
  let rendered = 0; // …up to this entry
  let lastKind: Segment['kind'] | null = null;
  let lastText: Text | null = null; // the text node the last output segment grows in
  let view: ConsoleView = 'stored';
  let pinned = true;
  let frame = 0;

  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(flush);
  };
  function flush(): void {
    frame = 0;
    const before = view;
    update();
    if (view !== before) onChange();
  }

  /** Follows the console of `next` (none yet: the `live` observer binds it when it appears). */
  function bind(next: string | null): void {
    const value = next ? room.live.get(next) : undefined;
    const map = value instanceof Y.Map ? value : null;
    if (next === id && map === bound) return;
    bound?.unobserveDeep(schedule);
    bound = map;
    bound?.observeDeep(schedule);
    if (next !== id) error.textContent = '';
    id = next;
    clearTranscript();
  }
  room.live.observe((event) => {
    if (id !== null && event.keysChanged.has(id)) {
      bind(id);
      schedule();
    }
  });

  function clearTranscript(): void {
    transcript.replaceChildren();
    shownEntries = null;
    rendered = 0;
    lastKind = null;
    lastText = null;
    pinned = true;
  }

  /** Shows what the document holds now: which parts, and the entries not yet rendered. */
  function update(): void {
    const fields: ConsoleFields | null = bound ? readConsole((key) => bound?.get(key)) : null;
    view = run ? consoleView(run.status, TERMINAL.has(run.status), fields?.state ?? null) : 'stored';
    const withTranscript = view === 'live' || view === 'lost' || view === 'ended';
    const wasHidden = box.hidden;
    element.hidden = view === 'stored';
    box.hidden = !withTranscript;
    const noted = view === 'waiting' ? NOTE_WAITING : view === 'lost' ? NOTE_LOST : '';
    if (noteText.textContent !== noted) noteText.textContent = noted;
    note.hidden = !noted;
    note.classList.toggle('quiet', view === 'waiting');
    if (!withTranscript || !bound || !fields) return;

    liveTag.hidden = fields.state !== 'live';
    outCut.hidden = !fields.out_truncated;
    errCut.hidden = !fields.err_truncated;
    if (fields.out_truncated || fields.err_truncated) outCut.title = errCut.title = truncatedTitle();
    transcript.dataset.empty = fields.state === 'ended' ? 'The program wrote nothing.' : 'Nothing written yet.';
    const typingOpen = typing !== null && fields.state === 'live' && fields.stdin_open;
    // Input closed with nobody's Ctrl-D: the run was given the stdin panel's text.
    givenInput.hidden = typing === null || fields.state !== 'live' || fields.stdin_open || endedByTypist(bound.get('transcript'));
    if (inputRow.hidden === typingOpen) {
      inputRow.hidden = !typingOpen;
      if (!typingOpen) error.textContent = ''; // what failed no longer can be retried
    }
    const grew = renderEntries(bound.get('transcript'));
    if (pinned && (grew || wasHidden)) transcript.scrollTop = transcript.scrollHeight;
  }

  /** Appends the entries of `entries` not yet shown (all of them for a new transcript);
   * returns whether any were. */
  function renderEntries(entries: unknown): boolean {
    if (!(entries instanceof Y.Array)) return false;
    if (entries !== shownEntries || entries.length < rendered) {
      clearTranscript();
      shownEntries = entries;
    }
    if (entries.length === rendered) return false;
    const fresh = segments(entries.slice(rendered));
    rendered = entries.length;
    const added = document.createDocumentFragment();
    for (const segment of fresh) {
      if (lastText && continues(lastKind, segment)) {
        lastText.appendData(segment.text);
        continue;
      }
      const node = segmentNode(segment);
      added.appendChild(node);
      lastKind = segment.kind;
      lastText = segment.kind === 'out' || segment.kind === 'err' ? (node.firstChild as Text) : null;
    }
    transcript.appendChild(added);
    return true;
  }

  transcript.addEventListener('scroll', () => {
    pinned = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight <= PINNED_PX;
  });

  // --- typing (edit rights only) ---------------------------------------------------------------
  // Lines go out one at a time, in order; after a failure the rest are dropped (sent later they
  // would arrive out of order) and the failed line comes back to the field.
  const queue: { submission: string; typed: Typed }[] = [];
  let sending = false;

  function enqueue(...typed: Typed[]): void {
    if (!typing || !id) return;
    const submission = id;
    queue.push(...typed.map((t) => ({ submission, typed: t })));
    void drain();
  }

  async function drain(): Promise<void> {
    if (sending || !typing) return;
    sending = true;
    try {
      while (queue.length) {
        const { submission, typed } = queue[0];
        try {
          await sendInput(typing.room, submission, typed, typing.user, typing.token());
          queue.shift();
          if (submission === id) error.textContent = '';
        } catch (failure) {
          const dropped = queue.splice(0);
          if (submission !== id) continue;
          const message = failure instanceof ApiError ? failure.message : String(failure);
          const unsent = dropped.length - 1;
          error.textContent = `Not sent: ${message}${unsent ? ` (${unsent} more ${unsent === 1 ? 'entry' : 'entries'} not sent)` : ''}`;
          if ('line' in typed && !field.value) field.value = typed.line;
        }
      }
    } finally {
      sending = false;
    }
  }

  /** Queues `line`; false (and says why) when it cannot be sent. */
  function sendLine(line: string): boolean {
    const problem = lineProblem(line);
    if (problem) {
      error.textContent = problem;
      return false;
    }
    enqueue({ line });
    return true;
  }

  /** Ctrl-D: what the field holds goes as a last line, then the end of the input. */
  function endInput(): void {
    if (field.value) {
      if (!sendLine(field.value)) return;
      field.value = '';
    }
    enqueue({ eof: true });
  }

  field.addEventListener('keydown', (event) => {
    if (event.isComposing) return;
    if (event.key === 'Enter' && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      if (sendLine(field.value)) field.value = '';
    } else if (event.key.toLowerCase() === 'd' && event.ctrlKey && !event.metaKey && !event.altKey && !event.shiftKey) {
      event.preventDefault(); // the browser's own Ctrl-D bookmarks the page
      endInput();
    }
  });
  // Pasted lines go as a terminal takes them: each complete line is sent, the rest stays.
  field.addEventListener('paste', (event) => {
    const pasted = event.clipboardData?.getData('text/plain') ?? '';
    if (!/[\r\n]/.test(pasted)) return;
    event.preventDefault();
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    const { lines, rest } = splitPasted(field.value.slice(0, start) + pasted + field.value.slice(end));
    const problem = lines.map(lineProblem).find((p) => p !== null);
    if (problem) {
      error.textContent = problem;
      return;
    }
    enqueue(...lines.map((line) => ({ line })));
    field.value = rest;
  });

  element.hidden = true;
  inputRow.hidden = true;
  return {
    element,
    show(next) {
      run = next;
      bind(next?.id ?? null);
      update();
      return view;
    },
  };
}

/** Whether someone ended the input (an `eof` entry). */
function endedByTypist(entries: unknown): boolean {
  return entries instanceof Y.Array && entries.toArray().some((entry) => (entry as { s?: unknown })?.s === 'eof');
}

/** How one segment reads: output as written (stderr styled apart), a typed line echoed with a
 * tag in its typist's colour, the end of input on its own line. */
function segmentNode(segment: Segment): HTMLElement {
  switch (segment.kind) {
    case 'out':
    case 'err':
      return h('span', { class: `con-${segment.kind}` }, segment.text);
    case 'in':
      return h('span', { class: 'con-in' }, segment.text, who(segment), '\n');
    case 'eof':
      return h('span', { class: 'con-eof' }, h('span', { class: 'con-eof-mark' }, '^D'), 'end of input', who(segment));
  }
}

function who(segment: Segment): HTMLElement {
  const by = segment.by ?? 'Someone';
  return h('span', { class: 'con-by', style: `background:${segment.color}`, title: `Typed by ${by}` }, by);
}
