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

test("the daemon flags keep V8's young generation at two 2 MiB semi-spaces under allocation", async () => {
  const churn = [
    'const v8 = require("node:v8");',
    "const kept = [];",
    "for (let i = 0; i < 3e6; i += 1) { kept.push({ i }); if (kept.length > 100000) kept.length = 0; }",
    'const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");',
    "process.stdout.write(String(space.space_size));",
  ].join("\n");
  const result = await run(process.execPath, [...daemonNodeFlags, "-e", churn]);
  assert.equal(result.code, 0, result.stderr);
  const newSpaceBytes = Number(result.stdout);
  assert.ok(newSpaceBytes > 0 && newSpaceBytes <= 2 * 2 * 1024 * 1024, `new space of ${newSpaceBytes} bytes`);
});
