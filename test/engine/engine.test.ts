import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { createEngine, releaseEngineRunDirectory } from "../../src/engine/engine.js";
import { containerSkipReason, createEngineFixture, testLogger } from "./runtime/helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 30_000 };

test("info names the detected runtime, its warnings, counts and the storage driver", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({ image: "busybox", cmd: ["sleep", "30"], networkMode: "none" });
  await engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none" });
  await engine.containers.start(id);
  const info = engine.info();
  assert.equal(info.runtime.name, "runc");
  assert.match(info.runtime.version, /^\d+\.\d+/);
  assert.equal(info.storageDriver, "overlay");
  assert.deepEqual(info.containers, { total: 2, running: 1, stopped: 1 });
  assert.match(info.engineId, /^[a-f0-9]{16}$/);
  for (const warning of info.warnings) assert.match(warning, /may/);
  await engine.containers.remove(id, { force: true });
});

test("asking for a runtime that cannot run containers here fails with the reason", options, async (t) => {
  const root = await mkdtemp(join(tmpdir(), "shoal-engine-crun-"));
  t.after(async () => {
    await releaseEngineRunDirectory(join(root, "run"));
    await rm(root, { recursive: true, force: true });
  });
  try {
    const engine = await createEngine({ dataDir: join(root, "data"), runDir: join(root, "run"), logger: testLogger, runtime: "crun" });
    // A host where crun works (no hybrid cgroups): then it must be what info reports.
    assert.equal(engine.info().runtime.name, "crun");
    await engine.close();
  } catch (error) {
    assert.ok(error instanceof Error);
    assert.equal(error.name, "UnavailableError");
    assert.match(error.message, /no working OCI runtime: crun/);
  }
});
