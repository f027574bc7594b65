import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { createEngine, engineCgroupParent } from "../../../src/engine/engine.js";
import { buildDemoImages, demoBusyboxName } from "../../../src/engine/images/index.js";
import { removeCgroupDirectories } from "../../../src/engine/runtime/oci/cgroups.js";
import { containerSkipReason, readLogs, testLogger } from "../runtime/helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 60_000 };

test("a container runs from a real image on an overlay rootfs; its writes stay in its own layer", options, async (t) => {
  const root = await mkdtemp(join(tmpdir(), "shoal-e2e-"));
  const engine = await createEngine({
    dataDir: join(root, "data"),
    runDir: join(root, "run"),
    logger: testLogger,
    network: { bridgeName: `shoale${randomBytes(3).toString("hex")}`, subnet: "10.198.41.0/24" },
  });
  t.after(async () => {
    for (const info of engine.containers.list({ all: true })) await engine.containers.remove(info.record.id, { force: true });
    const engineId = engine.info().engineId;
    await engine.close();
    await removeCgroupDirectories(engineCgroupParent(engineId)).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  });
  await buildDemoImages(engine.images);
  const { id } = await engine.containers.create({
    image: demoBusyboxName,
    cmd: ["sh", "-c", "echo changed > /bin/marker; cat /bin/marker; exec sleep 30"],
    networkMode: "none",
  });
  await engine.containers.start(id);
  const bundle = engine.containers.inspect(id).bundlePath;
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  const rootfsLine = mountinfo.split("\n").find((line) => line.split(" ")[4] === join(bundle, "rootfs"));
  assert.ok(rootfsLine?.includes(" - overlay "), `the rootfs is an overlay mount: ${rootfsLine}`);
  await assert.rejects(engine.images.remove(demoBusyboxName), { name: "FailedPreconditionError" });

  const second = await engine.containers.create({ image: demoBusyboxName, cmd: ["sh", "-c", "cat /bin/marker || echo absent"], networkMode: "none" });
  await engine.containers.start(second.id);
  await engine.containers.wait(second.id);
  assert.equal((await readLogs(engine, second.id)).stdout, "absent\n", "one container's writes are invisible to another");

  await engine.containers.remove(id, { force: true });
  await engine.containers.remove(second.id);
  const after = execFileSync("cat", ["/proc/self/mountinfo"], { encoding: "utf8" });
  assert.equal(after.includes(root), false, "no mount left after rm");
  await engine.images.remove(demoBusyboxName);
});
