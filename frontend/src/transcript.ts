// A live run's console as the room's document holds it, read for the console panel (console.ts):
// its fields, its transcript as a terminal shows it, what the panel shows for a run, and the
// lines a participant may type. The one definition of the layout is the top comment of
// crates/live/src/console.rs; only the room's object writes it, the IDE only reads it.
// No run-time imports: the tests load this module into Node.

/** Where a console stands: output arriving, the channel gone before the end, or the run over. */
export type ConsoleState = 'live' | 'lost' | 'ended';

/** The time limit that ended a run, as results and consoles name it. */
export type TimeLimit = 'compile' | 'run' | 'wall' | 'idle' | 'cpu';

/** One transcript entry, in the order things happened. */
export type Entry =
  | { s: 'out' | 'err'; t: string }
  | { s: 'in'; t: string; by: string; color: string }
  | { s: 'eof'; by: string; color: string };

/** A console's fields other than its transcript. */
export interface ConsoleFields {
  state: ConsoleState;
  started_at: number;
  stdin_open: boolean;
  out_bytes: number;
  err_bytes: number;
  in_bytes: number;
  out_truncated: boolean;
  err_truncated: boolean;
  /** When ended: the stored result's status. */
  status: string | null;
  /** When ended by a time limit: which one. */
  time_limit: TimeLimit | null;
}

/** The longest line one may type, in UTF-8 bytes (the channel's line, less its newline). */
export const MAX_LINE_BYTES = 4095;

const TIME_LIMITS: ReadonlySet<string> = new Set(['compile', 'run', 'wall', 'idle', 'cpu']);
const COLOR = /^#[0-9a-f]{6}$/i;
const FALLBACK_COLOR = '#5f687a';

/** A console's fields, read through `get` (a Y.Map's, or a plain object's); what is missing or
 * malformed reads as a console whose channel is gone. */
export function readConsole(get: (key: string) => unknown): ConsoleFields {
  const state = get('state');
  const number = (key: string) => {
    const value = get(key);
    return typeof value === 'number' && Number.isFinite(value) ? value : 0;
  };
  const status = get('status');
  const limit = get('time_limit');
  return {
    state: state === 'live' || state === 'ended' ? state : 'lost',
    started_at: number('started_at'),
    stdin_open: get('stdin_open') === true,
    out_bytes: number('out_bytes'),
    err_bytes: number('err_bytes'),
    in_bytes: number('in_bytes'),
    out_truncated: get('out_truncated') === true,
    err_truncated: get('err_truncated') === true,
    status: typeof status === 'string' ? status : null,
    time_limit: typeof limit === 'string' && TIME_LIMITS.has(limit) ? (limit as TimeLimit) : null,
  };
}

/** A transcript entry from the document's plain value, or null for anything else. */
export function readEntry(value: unknown): Entry | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const by = typeof v.by === 'string' ? v.by : 'Someone';
  const color = typeof v.color === 'string' && COLOR.test(v.color) ? v.color : FALLBACK_COLOR;
  switch (v.s) {
    case 'out':
    case 'err':
      return typeof v.t === 'string' ? { s: v.s, t: v.t } : null;
    case 'in':
      return typeof v.t === 'string' ? { s: 'in', t: v.t, by, color } : null;
    case 'eof':
      return { s: 'eof', by, color };
    default:
      return null;
  }
}

/** What the transcript shows, in order: runs of one output stream joined into one segment
 * (the fleet sends output in many small pieces), each typed line and each end of input its own. */
export interface Segment {
  kind: 'out' | 'err' | 'in' | 'eof';
  /** The output, or the typed line (without its newline); empty for `eof`. */
  text: string;
  /** Who typed it (`in`, `eof`). */
  by?: string;
  color?: string;
}

/** The segments of `entries` (document values; malformed ones are skipped). */
export function segments(entries: readonly unknown[]): Segment[] {
  const out: Segment[] = [];
  for (const value of entries) {
    const entry = readEntry(value);
    if (!entry) continue;
    const last = out[out.length - 1];
    switch (entry.s) {
      case 'out':
      case 'err':
        if (last && last.kind === entry.s) last.text += entry.t;
        else out.push({ kind: entry.s, text: entry.t });
        break;
      case 'in':
        out.push({ kind: 'in', text: entry.t, by: entry.by, color: entry.color });
        break;
      case 'eof':
        out.push({ kind: 'eof', text: '', by: entry.by, color: entry.color });
        break;
    }
  }
  return out;
}

/** Whether `next` continues the segment shown last (more of the same output stream), so a
 * renderer appends its text there instead of starting a new one. */
export function continues(last: Segment['kind'] | null, next: Segment): boolean {
  return last !== null && last === next.kind && (next.kind === 'out' || next.kind === 'err');
}

/** The transcript as a terminal's text: output, and each typed line with its newline. */
export function transcriptText(entries: readonly unknown[]): string {
  return segments(entries).map((s) => (s.kind === 'in' ? `${s.text}\n` : s.text)).join('');
}

/** What the output shows of a run:
 * - `stored`: its stored result, as before consoles (a finished run whose console did not end
 *   with it, or none, and a run not yet submitted);
 * - `waiting`: queued or running with no console yet;
 * - `live`, `lost`: the transcript so far, output arriving or (lost) not any more;
 * - `ended`: the whole transcript (its output equals the stored result's). */
export type ConsoleView = 'stored' | 'waiting' | 'live' | 'lost' | 'ended';

/** The view of a run with `status` (`terminal`: it ended) and its console's state, if any. */
export function consoleView(status: string, terminal: boolean, state: ConsoleState | null): ConsoleView {
  if (state === 'ended') return 'ended';
  if (terminal) return 'stored';
  if (state) return state;
  return status === 'queued' || status === 'running' ? 'waiting' : 'stored';
}

/** Why `line` cannot be sent as typed input, or null when it can. */
export function lineProblem(line: string): string | null {
  if (/[\r\n]/.test(line)) return 'A line cannot hold a line break.';
  const bytes = new TextEncoder().encode(line).length;
  if (bytes > MAX_LINE_BYTES) return `A line is at most ${MAX_LINE_BYTES} bytes (this one is ${bytes}).`;
  return null;
}

/** Pasted text as a terminal takes it: every complete line to send, and what is left after
 * the last line break to keep in the field. */
export function splitPasted(text: string): { lines: string[]; rest: string } {
  const parts = text.split(/\r\n|\r|\n/);
  const rest = parts.pop() ?? '';
  return { lines: parts, rest };
}
