// Bundles the web UI: one ES module and one style sheet per page (web/src/pages/*.ts), shared
// code in chunks, Leaflet's CSS and images included. Every bundled name carries a content hash,
// so the server can let browsers cache it for good. Called by crates/http/build.rs with the
// output directory; `npm run build` writes to web/dist for a look.
import * as esbuild from 'esbuild';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, 'dist'));
const pages = (await readdir(path.join(here, 'src/pages')))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => path.join(here, 'src/pages', f));

// Stale hashed files would be embedded too: start empty.
await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

await esbuild.build({
  absWorkingDir: here,
  entryPoints: pages,
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  assetNames: '[name]-[hash]',
  loader: { '.png': 'file', '.svg': 'file' },
  logLevel: 'warning',
});
await copyFile(path.join(here, 'src/favicon.svg'), path.join(outdir, 'favicon.svg'));
