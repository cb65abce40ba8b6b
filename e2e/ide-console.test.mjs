// How the IDE reads a live run's console (frontend/src/transcript.ts; the layout is defined in
// crates/live/src/console.rs): the transcript as a terminal shows it, what the output shows of a
// run, and the lines one may type. No server needed.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { importIdeModule } from '../frontend/node-import.mjs';

const t = await importIdeModule('transcript');

const ADA = { by: 'Ada', color: '#e5484d' };

test('a transcript reads as a terminal: output runs joined, typed lines and the end of input with who', () => {
  const entries = [
    { s: 'out', t: 'Name? ' },
    { s: 'in', t: 'Alan', ...ADA },
    { s: 'out', t: 'Hello, ' },
    { s: 'out', t: 'Alan!\n' },
    { s: 'err', t: 'warn\n' },
    { s: 'err', t: 'again\n' },
    { s: 'in', t: '', ...ADA },
    { s: 'eof', ...ADA },
    { s: 'out', t: 'bye\n' },
    { s: 'nonsense', t: 'x' },
    'not an object',
    { s: 'in', t: 'no colour', by: 'Grace', color: 'red; background:url(x)' },
  ];
  assert.deepEqual(t.segments(entries), [
    { kind: 'out', text: 'Name? ' },
    { kind: 'in', text: 'Alan', by: 'Ada', color: '#e5484d' },
    { kind: 'out', text: 'Hello, Alan!\n' },
    { kind: 'err', text: 'warn\nagain\n' },
    { kind: 'in', text: '', by: 'Ada', color: '#e5484d' },
    { kind: 'eof', text: '', by: 'Ada', color: '#e5484d' },
    { kind: 'out', text: 'bye\n' },
    { kind: 'in', text: 'no colour', by: 'Grace', color: '#5f687a' },
  ]);
  assert.equal(t.transcriptText(entries.slice(0, 9)), 'Name? Alan\nHello, Alan!\nwarn\nagain\n\nbye\n');
  // Rendering in pieces: the next output of the same stream grows the last segment.
  assert.equal(t.continues('out', { kind: 'out', text: 'more' }), true);
  assert.equal(t.continues('err', { kind: 'out', text: 'more' }), false);
  assert.equal(t.continues('in', { kind: 'in', text: 'x' }), false);
  assert.equal(t.continues(null, { kind: 'out', text: 'x' }), false);
});

test('a console\'s fields are read defensively', () => {
  const fields = t.readConsole((key) => ({ state: 'live', stdin_open: true, out_bytes: 12, out_truncated: true, time_limit: 'idle', status: 'x' })[key]);
  assert.equal(fields.state, 'live');
  assert.equal(fields.stdin_open, true);
  assert.equal(fields.out_bytes, 12);
  assert.equal(fields.err_bytes, 0);
  assert.equal(fields.out_truncated, true);
  assert.equal(fields.time_limit, 'idle');
  const odd = t.readConsole((key) => ({ state: 'weird', stdin_open: 'yes', time_limit: 'forever' })[key]);
  assert.equal(odd.state, 'lost', 'an unknown state reads as a channel gone');
  assert.equal(odd.stdin_open, false);
  assert.equal(odd.time_limit, null);
});

test('what the output shows of a run, from its status and its console', () => {
  const view = (status, state) => t.consoleView(status, ['ok', 'runtime_error', 'error'].includes(status), state);
  assert.equal(view('submitting', null), 'stored');
  assert.equal(view('queued', null), 'waiting');
  assert.equal(view('running', null), 'waiting');
  assert.equal(view('running', 'live'), 'live');
  assert.equal(view('running', 'lost'), 'lost');
  assert.equal(view('running', 'ended'), 'ended', 'the console ended before the poller saw the result');
  assert.equal(view('ok', 'ended'), 'ended');
  assert.equal(view('ok', 'live'), 'stored', 'a finished run whose console did not end shows its stored result');
  assert.equal(view('ok', 'lost'), 'stored');
  assert.equal(view('ok', null), 'stored');
  assert.equal(view('error', null), 'stored');
});

test('typed lines: at most 4095 bytes of UTF-8, no line breaks; pasted text splits into lines', () => {
  assert.equal(t.lineProblem(''), null);
  assert.equal(t.lineProblem('x'.repeat(4095)), null);
  assert.match(t.lineProblem('x'.repeat(4096)), /4095 bytes/);
  assert.match(t.lineProblem('é'.repeat(2048)), /4096/, 'bytes, not characters');
  assert.match(t.lineProblem('a\nb'), /line break/);
  assert.match(t.lineProblem('a\rb'), /line break/);
  assert.deepEqual(t.splitPasted('one\ntwo\r\nthree'), { lines: ['one', 'two'], rest: 'three' });
  assert.deepEqual(t.splitPasted('one\n'), { lines: ['one'], rest: '' });
  assert.deepEqual(t.splitPasted('partial'), { lines: [], rest: 'partial' });
});
