// Builds the IDE into frontend/dist/ (served by the edge as Workers static assets):
//
//   dist/index.html                  the one page (the SPA fallback serves it for /r/{room})
//   dist/assets/main-HASH.js|css     the app, loaded up front
//   dist/assets/*-HASH.js            chunks loaded on demand (one per language mode)
//
// Hashed names, so assets can be cached forever; index.html is written after the assets and
// stale files are removed last, so a server reading dist/ mid-build never sees a page that
// points at missing files. Prints raw and gzipped sizes (gzip -9, as `gzip -9 | wc -c`).
//
//   node frontend/build.mjs              production build (minified, sourcemaps beside)
//   node frontend/build.mjs --sizes      also print every chunk, not only the totals

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, 'src');
const dist = path.join(here, 'dist');
const assets = path.join(dist, 'assets');
const verbose = process.argv.includes('--sizes');

fs.mkdirSync(assets, { recursive: true });
const result = await esbuild.build({
  entryPoints: [path.join(src, 'main.ts')],
  bundle: true,
  splitting: true,
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  outdir: assets,
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const rel = (file) => path.relative(dist, path.resolve(file)).split(path.sep).join('/');
const outputs = result.metafile.outputs;
const mainJs = Object.keys(outputs).find((file) => outputs[file].entryPoint?.endsWith('src/main.ts'));
if (!mainJs) throw new Error('esbuild produced no output for src/main.ts');
const mainCss = outputs[mainJs].cssBundle;
const preloads = outputs[mainJs].imports.filter((i) => i.kind === 'import-statement').map((i) => i.path);

const tags = [
  mainCss && `<link rel="stylesheet" href="/${rel(mainCss)}">`,
  ...preloads.map((file) => `<link rel="modulepreload" href="/${rel(file)}">`),
  `<script type="module" src="/${rel(mainJs)}"></script>`,
].filter(Boolean).join('\n    ');
const template = fs.readFileSync(path.join(src, 'index.html'), 'utf8');
if (!template.includes('<!-- assets -->')) throw new Error('src/index.html has no <!-- assets --> marker');
const html = template.replace('<!-- assets -->', tags);
fs.writeFileSync(path.join(dist, 'index.html.tmp'), html);
fs.renameSync(path.join(dist, 'index.html.tmp'), path.join(dist, 'index.html'));
// The build stamp (scripts/build-frontend.sh) is not an asset.
fs.writeFileSync(path.join(dist, '.assetsignore'), '.inputs\n.sizes.json\n');

// Remove what earlier builds left behind.
const keep = new Set(Object.keys(outputs).map((file) => path.resolve(file)));
for (const name of fs.readdirSync(assets)) {
  const file = path.join(assets, name);
  if (!keep.has(file)) fs.rmSync(file, { force: true });
}

// Sizes: what a first visit downloads (page, app, styles, static imports) and the rest.
const gz = (bytes) => zlib.gzipSync(bytes, { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const rows = [];
const initial = new Set([mainJs, mainCss, ...preloads].filter(Boolean));
let initialRaw = Buffer.byteLength(html);
let initialGz = gz(Buffer.from(html));
let lazyRaw = 0;
let lazyGz = 0;
for (const file of Object.keys(outputs).sort()) {
  if (file.endsWith('.map')) continue;
  const bytes = fs.readFileSync(file);
  const row = { file: rel(file), raw: bytes.length, gzip: gz(bytes), initial: initial.has(file) };
  rows.push(row);
  if (row.initial) {
    initialRaw += row.raw;
    initialGz += row.gzip;
  } else {
    lazyRaw += row.raw;
    lazyGz += row.gzip;
  }
}
// A room's first visit also loads its language's mode: Python's, for a new room.
const closure = (file, seen = new Set()) => {
  if (seen.has(file)) return seen;
  seen.add(file);
  for (const i of outputs[file].imports) if (i.kind === 'import-statement') closure(i.path, seen);
  return seen;
};
const pythonMode = Object.keys(outputs).find((file) => outputs[file].entryPoint?.includes('lang-python'));
let roomGz = initialGz;
if (pythonMode) for (const file of closure(pythonMode)) if (!initial.has(file)) roomGz += rows.find((r) => r.file === rel(file)).gzip;
if (verbose) {
  for (const row of rows) {
    console.error(`  ${row.initial ? '*' : ' '} ${row.file.padEnd(44)} ${kb(row.raw).padStart(10)}  gzip ${kb(row.gzip).padStart(9)}`);
  }
}
console.error(`  IDE first load: ${kb(initialRaw)} (${kb(initialGz)} gzipped), a Python room ${kb(roomGz)} gzipped; `
  + `all language modes, on demand: ${kb(lazyRaw)} (${kb(lazyGz)} gzipped)`);
fs.writeFileSync(path.join(dist, '.sizes.json'), JSON.stringify({ initialRaw, initialGz, roomGz, lazyRaw, lazyGz, rows }, null, 2));
