// Bundles the chat page into dist/: one JavaScript file (our modules, noVNC,
// marked, DOMPurify from the locked npm packages) plus the HTML, CSS and a
// tiny loader. One script request matters: Chromium aborts in-flight loads
// whenever a network interface appears, which Docker does each time a
// sandbox starts, and one request is easy to retry where fifty are not.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";

const out = process.env.OUT || "dist";
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const file of ["index.html", "style.css", "boot.js"]) cpSync(`src/${file}`, `${out}/${file}`);
await build({
  entryPoints: ["src/app.js"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  outfile: `${out}/app.js`,
  logLevel: "warning",
});
console.log(`chat page built into ${out}/`);
