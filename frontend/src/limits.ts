// The limits every run is held to, as the exec API serves them with the languages
// (GET /api/v1/languages, from codebox-submission's `Limits`): the IDE names a limit when a run
// hits one and keeps no copy of the figures. Until the API has answered, limits are named
// without their figures; a live run's (Contract 4: CPU time, wall time, idle time) are served
// as `limits.interactive: {cpu_ms, wall_ms, idle_ms}`.
// No run-time imports: the tests load this module into Node.

/** The part of the API's `limits` the IDE names (times in ms, sizes in bytes). */
export interface RunLimits {
  run_ms: number;
  compile_ms: number;
  memory_bytes: number;
  output_bytes: number;
}

/** The limits of a live run (a run its room follows, Contract 4), in ms. */
export interface InteractiveLimits {
  /** CPU time of the whole run. */
  cpu_ms: number;
  /** Wall time from the program's start. */
  wall_ms: number;
  /** Time with neither output nor input. */
  idle_ms: number;
}

let served: RunLimits | null = null;
let interactive: InteractiveLimits | null = null;

/** Remembers the limits the API served (ignored when absent or malformed). */
export function setRunLimits(limits: unknown): void {
  if (isRunLimits(limits)) served = limits;
  const live = (limits as { interactive?: unknown } | null)?.interactive;
  if (hasPositive(live, ['cpu_ms', 'wall_ms', 'idle_ms'])) interactive = live as InteractiveLimits;
}

/** The limits of a live run the API served, or null before it answered. */
export function interactiveLimits(): InteractiveLimits | null {
  return interactive;
}

/** The limits the API served, or null before it answered. */
export function runLimits(): RunLimits | null {
  return served;
}

function isRunLimits(value: unknown): value is RunLimits {
  return hasPositive(value, ['run_ms', 'compile_ms', 'memory_bytes', 'output_bytes']);
}

/** Whether `value` is an object whose `keys` are all positive numbers. */
function hasPositive(value: unknown, keys: string[]): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const fields = value as Record<string, unknown>;
  return keys.every((k) => typeof fields[k] === 'number' && (fields[k] as number) > 0);
}

/** What a "truncated" tag says about the output limit. */
export function truncatedTitle(): string {
  return served ? `Only the first ${formatBytes(served.output_bytes)} were kept` : 'Only the start was kept (the output limit)';
}

/** `5000` -> `5 s`, `2500` -> `2.5 s`. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

/** `268435456` -> `256 MiB`, `65536` -> `64 KiB`, `100` -> `100 bytes`. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= size) return `${Number((bytes / size).toFixed(1))} ${unit}`;
  }
  return `${bytes} bytes`;
}
