// The limits every run is held to, as the exec API serves them with the languages
// (GET /api/v1/languages, from codebox-submission's `Limits`): the IDE names a limit when a run
// hits one and keeps no copy of the figures. Until the API has answered, limits are named
// without their figures. No run-time imports: the tests load this module into Node.

/** The part of the API's `limits` the IDE names (times in ms, sizes in bytes). */
export interface RunLimits {
  run_ms: number;
  compile_ms: number;
  memory_bytes: number;
  output_bytes: number;
}

let served: RunLimits | null = null;

/** Remembers the limits the API served (ignored when absent or malformed). */
export function setRunLimits(limits: unknown): void {
  if (isRunLimits(limits)) served = limits;
}

/** The limits the API served, or null before it answered. */
export function runLimits(): RunLimits | null {
  return served;
}

function isRunLimits(value: unknown): value is RunLimits {
  if (typeof value !== 'object' || value === null) return false;
  const fields = value as Record<string, unknown>;
  return ['run_ms', 'compile_ms', 'memory_bytes', 'output_bytes'].every((k) => typeof fields[k] === 'number' && (fields[k] as number) > 0);
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
