// Fails when the JavaScript of the first page load is over the budget, gzipped.
//
// The first page load runs the entry chunk and what it imports statically, then the
// page that was opened (each page is a dynamic import, see src/routes.ts). The budget
// is checked against the worst case: the entry plus the heaviest page with everything
// that page imports. Chunks are found by walking the manifest that `vite build`
// writes (build.manifest in vite.config.ts).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const LIMIT_BYTES = 300 * 1024;
const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");

let manifest;
try {
  manifest = JSON.parse(readFileSync(join(dist, ".vite", "manifest.json"), "utf8"));
} catch (error) {
  console.error(`check:size: cannot read dist/.vite/manifest.json (${error.message}); run \`npm run build\` first`);
  process.exit(1);
}

const sizes = new Map();
const gzipped = (file) => {
  if (!sizes.has(file)) {
    sizes.set(file, gzipSync(readFileSync(join(dist, file)), { level: 9 }).length);
  }
  return sizes.get(file);
};

/** The JavaScript files loaded for these manifest keys: themselves and their static imports. */
const closure = (keys, files = new Set()) => {
  for (const key of keys) {
    const chunk = manifest[key];
    if (files.has(chunk.file)) continue;
    if (chunk.file.endsWith(".js")) files.add(chunk.file);
    closure(chunk.imports ?? [], files);
  }
  return files;
};
const weigh = (files) => [...files].reduce((sum, file) => sum + gzipped(file), 0);

const entryKeys = Object.keys(manifest).filter((key) => manifest[key].isEntry);
if (entryKeys.length === 0) {
  console.error("check:size: the manifest names no entry chunk");
  process.exit(1);
}
const entryFiles = closure(entryKeys);
const pages = entryKeys.flatMap((key) => manifest[key].dynamicImports ?? []);

let heaviest = { page: "(none)", files: new Set() };
for (const page of pages) {
  const files = new Set([...closure([page])].filter((file) => !entryFiles.has(file)));
  if (weigh(files) > weigh(heaviest.files)) heaviest = { page, files };
}

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
for (const file of [...entryFiles, ...heaviest.files]) {
  console.log(`  ${kb(gzipped(file)).padStart(9)}  ${file}`);
}
const total = weigh(entryFiles) + weigh(heaviest.files);
const ok = total <= LIMIT_BYTES;
console.log(
  `first page load (entry ${kb(weigh(entryFiles))} + heaviest page ${heaviest.page} ` +
    `${kb(weigh(heaviest.files))}): ${kb(total)} of JavaScript gzipped, limit ${kb(LIMIT_BYTES)}: ` +
    (ok ? "ok" : "OVER BUDGET"),
);
process.exit(ok ? 0 : 1);
