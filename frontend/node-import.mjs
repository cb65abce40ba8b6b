// Loads one of the IDE's modules that has no run-time imports (frontend/src/presence.ts) into
// Node, for the tests (e2e/) and the benchmark (bench/providers/) that apply the IDE's rules to
// stock providers without a browser. esbuild strips the types; nothing is written to disk.

import fs from 'node:fs';
import { transformSync } from 'esbuild';

/** `frontend/src/{name}.ts`, compiled and imported. */
export function importIdeModule(name) {
  const source = fs.readFileSync(new URL(`./src/${name}.ts`, import.meta.url), 'utf8');
  const { code } = transformSync(source, { loader: 'ts', format: 'esm' });
  return import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
}
