// Builds the dashboard into dist/: one bundled script, one stylesheet, the page and its icon.
// Run with `npm run build` (pip install runs it too when npm is on PATH; see setup.py).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const here = new URL(".", import.meta.url).pathname;
rmSync(`${here}dist`, { recursive: true, force: true });
mkdirSync(`${here}dist`);
await build({
  entryPoints: { app: `${here}src/main.js`, style: `${here}src/style.css` },
  bundle: true,
  minify: true,
  format: "esm",
  splitting: true, // markdown's renderer is its own chunk, loaded when a view needs it
  target: "es2022",
  outdir: `${here}dist`,
  chunkNames: "chunk-[hash]",
  legalComments: "linked",
  logLevel: "warning",
});
for (const name of ["index.html", "favicon.svg"]) copyFileSync(`${here}src/${name}`, `${here}dist/${name}`);
