// How runs read: status labels, the limit a run hit, times.

import { formatBytes, formatSeconds, interactiveLimits, runLimits } from './limits';
import type { RunFields } from './shared';
import type { TimeLimit } from './transcript';

export type Tone = 'neutral' | 'busy' | 'ok' | 'warn' | 'error';

export interface StatusView {
  label: string;
  tone: Tone;
  /** One sentence on what happened, for the ends that need one. */
  detail: string | null;
}

const SIGNALS: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM', 24: 'SIGXCPU', 25: 'SIGXFSZ', 31: 'SIGSYS',
};

export function signalName(signal: number): string {
  return SIGNALS[signal] ?? `signal ${signal}`;
}

export function statusView(run: RunFields): StatusView {
  const limits = runLimits();
  switch (run.status) {
    case 'submitting':
      return { label: 'Submitting', tone: 'busy', detail: null };
    case 'queued':
      return { label: 'Queued', tone: 'busy', detail: null };
    case 'running':
      return { label: 'Running', tone: 'busy', detail: null };
    case 'ok':
      return { label: 'Finished', tone: 'ok', detail: null };
    case 'runtime_error':
      return {
        label: 'Runtime error',
        tone: 'error',
        detail: run.signal != null
          ? `The program was killed by ${signalName(run.signal)}.`
          : `The program exited with code ${run.exit_code ?? '?'}.`,
      };
    case 'compile_error':
      return { label: 'Compile error', tone: 'error', detail: 'The program did not compile: see the compiler output.' };
    case 'time_limit_exceeded':
      return { label: 'Time limit exceeded', tone: 'warn', detail: timeLimitDetail(run.time_limit) };
    case 'memory_limit_exceeded':
      return {
        label: 'Memory limit exceeded',
        tone: 'warn',
        detail: `Stopped for using more than the ${limits ? `${formatBytes(limits.memory_bytes)} ` : ''}memory limit.`,
      };
    case 'output_limit_exceeded':
      return {
        label: 'Output limit exceeded',
        tone: 'warn',
        detail: `Stopped for writing more than the ${limits ? `${formatBytes(limits.output_bytes)} ` : ''}output limit (per stream).`,
      };
    case 'accepted':
      return { label: 'Accepted', tone: 'ok', detail: 'Every test passed.' };
    case 'wrong_answer':
      return { label: 'Wrong answer', tone: 'error', detail: 'A test\'s output differs from the expected output.' };
    case 'internal_error':
      return { label: 'Internal error', tone: 'error', detail: 'The sandbox failed to run the program. This is not your code\'s fault: try again.' };
    case 'error':
      return { label: 'Could not run', tone: 'error', detail: sentence(run.error_message ?? 'the run failed') };
    default:
      return { label: String(run.status), tone: 'neutral', detail: null };
  }
}

/** Which time limit stopped a run, with its figure: a batch run's (`run`, or a result that does
 * not say), the compile step's, or one of a live run's (CPU, wall and idle time). */
export function timeLimitDetail(limit: TimeLimit | null): string {
  const limits = runLimits();
  const live = interactiveLimits();
  const figure = (ms: number | undefined, named: string) => (ms ? `${formatSeconds(ms)} ${named}` : named);
  switch (limit) {
    case 'cpu':
      return `Stopped at the ${figure(live?.cpu_ms, 'time limit')} on CPU time.`;
    case 'wall':
      return `Stopped at the ${figure(live?.wall_ms, 'time limit')} on wall time (how long a live run may last).`;
    case 'idle':
      return live
        ? `Stopped after ${formatSeconds(live.idle_ms)} with neither output nor input (the idle time limit).`
        : 'Stopped after a while with neither output nor input (the idle time limit).';
    case 'compile':
      return limits ? `The compiler was stopped at the ${formatSeconds(limits.compile_ms)} compile time limit.` : 'The compiler was stopped at the compile time limit.';
    default:
      return limits
        ? `Stopped at the ${formatSeconds(limits.run_ms)} time limit (compiling may take ${formatSeconds(limits.compile_ms)}).`
        : 'Stopped at the time limit.';
  }
}

/** A message as a sentence: capital first letter, final full stop. */
function sentence(text: string): string {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function timeAgo(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  return new Date(ms).toLocaleDateString();
}
