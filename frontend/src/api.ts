// Calls to the edge: the exec API through its /api proxy (Contract 2) and typing into a room's
// live run (Contract 4) here, the room calls in access.ts. Every call has a timeout, and every failure becomes an ApiError with a code and a
// message a person can act on.

import type { LanguageId } from './languages';
import type { ProjectFile } from './project';
import type { TimeLimit } from './transcript';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

/** How a run ended: a test's entry in a record (Contract 2b, its outputs cut to a few KiB), and
 * the record's own result fields. */
export interface TestRecord {
  status: string;
  time_ms: number | null;
  exit_code: number | null;
  signal: number | null;
  stdout: string | null;
  stderr: string | null;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  /** The time limit that ended the run (with `time_limit_exceeded`), else null or absent. */
  time_limit?: TimeLimit | null;
}

/** A submission record, as GET /v1/submissions/{id} returns it. */
export interface Submission extends TestRecord {
  id: string;
  language: LanguageId;
  compile_output: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** A run with tests: each test's result, in the order they were sent (else null or absent).
   * The record's own status is the verdict; its stdout and stderr are the deciding test's. */
  tests?: TestRecord[] | null;
}

/** What a submission runs: one source (a single-file project, as before projects), or a
 * project's files (Contract 2b). */
export type Program = { source: string } | { files: ProjectFile[] };

/** What a submission reads: one stdin, or tests (a batch run, compiled once and run per test). */
export type RunInput = { stdin: string } | { tests: { stdin: string; expected_stdout: string }[] };

export interface LanguageVersion {
  id: string;
  name: string;
  version: string;
  compiled: boolean;
}

const API = '/api/v1';

/** Fetches `path` on this origin and reads its JSON answer; refusals become ApiErrors. */
export async function request<T>(path: string, init: RequestInit, timeoutMs: number): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, signal: AbortSignal.timeout(timeoutMs), cache: 'no-store' });
  } catch (error) {
    if (error instanceof DOMException && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
      throw new ApiError('timeout', `No answer from the server within ${Math.round(timeoutMs / 1000)} s.`);
    }
    throw new ApiError('network_error', 'Could not reach the CodeBox server: check your connection.');
  }
  const text = await response.text().catch(() => '');
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy or gateway page; reported below by status.
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (error && typeof error.code === 'string') {
      throw new ApiError(error.code, typeof error.message === 'string' ? error.message : error.code, response.status);
    }
    throw new ApiError(`http_${response.status}`, `The server answered ${response.status} ${response.statusText}`.trim() + '.', response.status);
  }
  if (response.status === 204) return undefined as T;
  if (body === null) throw new ApiError('bad_response', 'The server sent an empty or unreadable answer.', response.status);
  return body as T;
}

/** Starts a run; the edge takes it only with the room's edit token. */
export function submit(language: LanguageId, program: Program, input: RunInput, editToken: string): Promise<{ id: string; status: string }> {
  return request(`${API}/submissions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${editToken}` },
    body: JSON.stringify({ language, ...program, ...input }),
  }, 15_000);
}

export function submission(id: string): Promise<Submission> {
  return request(`${API}/submissions/${encodeURIComponent(id)}`, {}, 8_000);
}

/** The languages with their versions, and the limits every run is held to (see limits.ts). */
export function languages(): Promise<{ languages: LanguageVersion[]; limits?: unknown }> {
  return request(`${API}/languages`, {}, 8_000);
}

/** What a participant types into a live run: one line (without its newline), or the end of
 * the input (Ctrl-D). */
export type Typed = { line: string } | { eof: true };

/** Passes what someone typed to a live run of the room, through the room (Contract 4): 204, or
 * an ApiError (409 the run is not live or its input is closed, 413 its input is full, 422 a bad
 * line). Needs the room's edit token. */
export function sendInput(room: string, submission: string, typed: Typed, by: { name: string; color: string }, editToken: string): Promise<void> {
  return request(`/rooms/${encodeURIComponent(room)}/runs/${encodeURIComponent(submission)}/input`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${editToken}` },
    body: JSON.stringify({ ...typed, by: by.name, color: by.color }),
  }, 8_000);
}
