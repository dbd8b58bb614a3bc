// Builds the dashboard into dist/: one bundled script, one stylesheet, the page and its icon.
// Run with `npm run build` (pip install runs it too when npm is on PATH; see setup.py).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const here = new URL(".", import.meta.url).pathname;
rmSync(`${here}dist`, { recursive: true, force: true });
mkdirSync(`${here}dist`);
const result = await build({
  metafile: true,
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
copyFileSync(`${here}src/favicon.svg`, `${here}dist/favicon.svg`);
// The chunks app.js imports are fetched with it, not after it is parsed.
const app = Object.entries(result.metafile.outputs).find(([, out]) => out.entryPoint?.endsWith("src/main.js"))[1];
const preload = app.imports
  .filter((i) => i.kind === "import-statement")
  .map((i) => `<link rel="modulepreload" href="/assets/${i.path.split("/").pop()}">`)
  .join("\n");
const page = readFileSync(`${here}src/index.html`, "utf8").replace("<!-- preload -->", preload);
writeFileSync(`${here}dist/index.html`, page);
