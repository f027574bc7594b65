import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { daemonNodeFlags } from "../../src/common/runtime-flags.js";
import { shoalVersion } from "../../src/common/version.js";
import { run } from "../helpers/run.js";

const shoaldPath = fileURLToPath(new URL("../../src/bin/shoald.js", import.meta.url));

test("shoald's shebang starts node with the daemon flags, and runs as a command", async () => {
  const [shebang] = (await readFile(shoaldPath, "utf8")).split("\n", 1);
  assert.equal(shebang, `#!/usr/bin/env -S node ${daemonNodeFlags.join(" ")}`);
  // Run through the shebang, as systemd and the quick start do: env -S splits the flags,
  // and node accepts every one of them (it refuses to start on an unknown flag).
  const result = await run(shoaldPath, ["--version"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), shoalVersion);
});

/** Script lines that allocate, with enough surviving, until V8 has grown its young generation to the limit. */
const growYoungGeneration = [
  'const v8 = require("node:v8");',
  "const kept = [];",
  "for (let i = 0; i < 3e6; i += 1) { kept.push({ i }); if (kept.length > 100000) kept.length = 0; }",
];

test("the daemon flags keep V8's young generation at two 2 MiB semi-spaces under allocation", async () => {
  const churn = [
    ...growYoungGeneration,
    'const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");',
    "process.stdout.write(String(space.space_size));",
  ].join("\n");
  const result = await run(process.execPath, [...daemonNodeFlags, "-e", churn]);
  assert.equal(result.code, 0, result.stderr);
  const newSpaceBytes = Number(result.stdout);
  assert.ok(newSpaceBytes > 0 && newSpaceBytes <= 2 * 2 * 1024 * 1024, `new space of ${newSpaceBytes} bytes`);
});

test("the daemon flags keep V8's young generation at 2 MiB semi-spaces through a quiet spell", async () => {
  // V8 shrinks the young generation at a scavenge when allocation over its last five
  // seconds was low (and not nil): so grow it, allocate a little for longer than that,
  // then scavenge. Without --min-semi-space-size the capacity drops to 1 MiB here.
  const quietThenScavenge = [
    ...growYoungGeneration,
    // Kept in a variable, so that an optimizing compiler cannot drop the allocation.
    "let recent = null;",
    "const trickle = setInterval(() => { recent = [{}, {}, {}, {}, {}]; }, 5);",
    "setTimeout(() => {",
    "  clearInterval(trickle);",
    '  globalThis.gc({ type: "minor" });',
    '  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");',
    "  process.stdout.write(String(space.space_used_size + space.space_available_size));",
    "}, 5500);",
  ].join("\n");
  const result = await run(process.execPath, [...daemonNodeFlags, "--expose-gc", "-e", quietThenScavenge]);
  assert.equal(result.code, 0, result.stderr);
  const capacityBytes = Number(result.stdout);
  assert.ok(capacityBytes > 1.5 * 1024 * 1024, `young generation of ${capacityBytes} bytes after the quiet spell`);
});
