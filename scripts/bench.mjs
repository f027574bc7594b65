#!/usr/bin/env node
// The one entry point for benchmarks: `npm run bench -- NAME [--quick] [--json] [args...]`
// runs the compiled bench/NAME/main.js with the remaining arguments. Build first
// (`npm run build`); `npm run bench` with no name lists the benchmarks.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const available = readdirSync(join(root, "bench"), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(root, "bench", entry.name, "main.ts")))
  .map((entry) => entry.name)
  .sort();
const [name, ...args] = process.argv.slice(2);
if (name === undefined || !available.includes(name)) {
  console.error(`usage: npm run bench -- NAME [--quick] [--json]\nbenchmarks: ${available.join(", ") || "(none yet)"}`);
  process.exit(name === undefined ? 0 : 2);
}
const main = join(root, "dist", "bench", name, "main.js");
if (!existsSync(main)) {
  console.error(`${main} is missing: run \`npm run build\` first`);
  process.exit(2);
}
const result = spawnSync(process.execPath, ["--enable-source-maps", main, ...args], { stdio: "inherit" });
process.exit(result.status ?? 1);
