// The limits every run is held to, as the exec API serves them with the languages
// (GET /api/v1/languages, from codebox-submission's `Limits`): the IDE names a limit when a run
// hits one and keeps no copy of the figures. Until the API has answered, limits are named
// without their figures; a live run's (Contract 4: CPU time, wall time, idle time) are served
// as `limits.interactive: {cpu_ms, wall_ms, idle_ms}`.
// A project's and a test set's limits (Contract 2b) are the exception: the browser checks them
// before it writes files or tests into the room, which cannot wait for the API, so Contract
// 2b's figures stand until the API serves its own.
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

/** What a project and a test set may hold (Contract 2b). */
export interface ProjectLimits {
  /** Files in a project, its entry file included. */
  max_files: number;
  /** UTF-8 bytes of all the project's files together. */
  max_project_bytes: number;
  /** Tests in a test set. */
  max_tests: number;
  /** UTF-8 bytes of one test's input, and of its expected output. */
  max_test_bytes: number;
}

export const DEFAULT_PROJECT_LIMITS: ProjectLimits = {
  max_files: 32,
  max_project_bytes: 256 * 1024,
  max_tests: 32,
  max_test_bytes: 64 * 1024,
};

let served: RunLimits | null = null;
let interactive: InteractiveLimits | null = null;
let project: ProjectLimits = DEFAULT_PROJECT_LIMITS;

/** Remembers the limits the API served (ignored when absent or malformed). */
export function setRunLimits(limits: unknown): void {
  if (isRunLimits(limits)) served = limits;
  const live = (limits as { interactive?: unknown } | null)?.interactive;
  if (hasPositive(live, ['cpu_ms', 'wall_ms', 'idle_ms'])) interactive = live as InteractiveLimits;
  const fields = (limits ?? {}) as Record<string, unknown>;
  const figure = (key: keyof ProjectLimits) => (hasPositive(limits, [key]) ? (fields[key] as number) : DEFAULT_PROJECT_LIMITS[key]);
  project = { max_files: figure('max_files'), max_project_bytes: figure('max_project_bytes'), max_tests: figure('max_tests'), max_test_bytes: figure('max_test_bytes') };
}

/** A project's and a test set's limits: the API's once served, else Contract 2b's. */
export function projectLimits(): ProjectLimits {
  return project;
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
