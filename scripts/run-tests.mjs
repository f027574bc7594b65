#!/usr/bin/env node
// Runs the compiled test suite with node:test. With no arguments, every *.test.js under
// dist/test; with arguments, only the files under those folders of test/ (e.g. `raft`).
// Concurrency stays at 2 files: CI machines have 2 cores and the end-to-end tests start
// real daemons and containers. SHOAL_DIST names another build folder (helpers build into
// dist-NAME so that parallel builds do not race).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const testRoot = join(root, process.env.SHOAL_DIST ?? "dist", "test");

function listTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listTests(path);
    return entry.name.endsWith(".test.js") ? [path] : [];
  });
}

const folders = process.argv.slice(2);
const starts = folders.length === 0 ? [testRoot] : folders.map((folder) => join(testRoot, folder));
const files = starts.flatMap((start) => (statSync(start).isDirectory() ? listTests(start) : [start])).sort();
if (files.length === 0) {
  console.error(`no test files under ${starts.join(", ")}`);
  process.exit(1);
}
const concurrency = process.env.SHOAL_TEST_CONCURRENCY ?? "2";
const result = spawnSync(
  process.execPath,
  ["--enable-source-maps", "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
