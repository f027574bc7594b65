import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { createEngine, engineCgroupParent, releaseEngineRunDirectory, type Engine } from "../../../src/engine/engine.js";
import { buildDemoImages, demoBusyboxName } from "../../../src/engine/images/index.js";
import { removeCgroupDirectories } from "../../../src/engine/runtime/oci/cgroups.js";
import { listMountPoints } from "../../../src/engine/runtime/rootfs-mount.js";
import { collectExecOutput } from "../../../src/engine/runtime/exec.js";
import { containerSkipReason, readLogs, testLogger, waitForLog } from "../runtime/helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 60_000 };

/** An engine on a temporary directory, removed with everything it made after the test, even one whose engine failed to open. */
async function openEngine(t: TestContext): Promise<{ engine: Engine; root: string }> {
  const root = await mkdtemp(join(tmpdir(), "shoal-e2e-"));
  const opened: { engine?: Engine } = {};
  t.after(async () => {
    const { engine } = opened;
    if (engine !== undefined) {
      for (const info of engine.containers.list({ all: true })) await engine.containers.remove(info.record.id, { force: true });
      const engineId = engine.info().engineId;
      await engine.close();
      await removeCgroupDirectories(engineCgroupParent(engineId)).catch(() => undefined);
    }
    await releaseEngineRunDirectory(join(root, "run"));
    await rm(root, { recursive: true, force: true });
  });
  const engine = await createEngine({
    dataDir: join(root, "data"),
    runDir: join(root, "run"),
    logger: testLogger,
    network: { bridgeName: `shoale${randomBytes(3).toString("hex")}`, subnet: "10.198.41.0/24" },
  });
  opened.engine = engine;
  return { engine, root };
}

test("a container runs from a real image on an overlay rootfs; its writes stay in its own layer", options, async (t) => {
  const { engine, root } = await openEngine(t);
  await buildDemoImages(engine.images);
  const { id } = await engine.containers.create({
    image: demoBusyboxName,
    cmd: ["sh", "-c", "echo changed > /bin/marker; cat /bin/marker; exec sleep 30"],
    networkMode: "none",
  });
  await engine.containers.start(id);
  const { bundlePath: bundle, state } = engine.containers.inspect(id);
  // The runtime mounts the overlay inside the container; the host has none of it.
  const rootLine = (await readFile(`/proc/${state.pid}/mountinfo`, "utf8")).split("\n").find((line) => line.split(" ")[4] === "/");
  assert.ok(rootLine?.includes(" - overlay "), `the container's root is an overlay mount: ${rootLine}`);
  assert.deepEqual(await hostMountsUnder(bundle), [], "nothing of the container is mounted on the host");
  await assert.rejects(engine.images.remove(demoBusyboxName), { name: "FailedPreconditionError" });

  const second = await engine.containers.create({ image: demoBusyboxName, cmd: ["sh", "-c", "cat /bin/marker || echo absent"], networkMode: "none" });
  await engine.containers.start(second.id);
  await engine.containers.wait(second.id);
  assert.equal((await readLogs(engine, second.id)).stdout, "absent\n", "one container's writes are invisible to another");

  await engine.containers.remove(id, { force: true });
  await engine.containers.remove(second.id);
  assert.deepEqual((await hostMountsUnder(root)).filter((point) => point !== join(root, "run", "engine")), [], "no mount left after rm but the run directory's tmpfs");
  await engine.images.remove(demoBusyboxName);
});

test("users resolve from the container's own /etc when it changed it, else from its image's", options, async (t) => {
  const { engine } = await openEngine(t);
  await buildDemoImages(engine.images);
  // Prints root's home, then moves it in this container's /etc/passwd.
  const moving = await engine.containers.create({
    image: demoBusyboxName,
    cmd: ["sh", "-c", "echo $HOME; sed -i 's#:/root:#:/home/moved:#' /etc/passwd"],
    networkMode: "none",
  });
  await engine.containers.start(moving.id);
  await engine.containers.wait(moving.id);
  await engine.containers.start(moving.id);
  await engine.containers.wait(moving.id);
  assert.equal((await readLogs(engine, moving.id)).stdout, "/root\n/home/moved\n", "a restart reads the passwd the container wrote, not its image's");

  const fresh = await engine.containers.create({ image: demoBusyboxName, cmd: ["sh", "-c", "echo $HOME; exec sleep 30"], networkMode: "none" });
  await engine.containers.start(fresh.id);
  await waitForLog(engine, fresh.id, "/");
  assert.equal((await readLogs(engine, fresh.id)).stdout, "/root\n", "another container of the image sees the image's passwd");

  // An exec reads the running container's files: a user added after its start is found.
  const added = await collectExecOutput(await engine.containers.exec(fresh.id, { cmd: ["sh", "-c", "echo 'late:x:4321:4321::/home/late:/bin/sh' >> /etc/passwd"] }));
  assert.equal(added.exitCode, 0);
  const late = await collectExecOutput(await engine.containers.exec(fresh.id, { cmd: ["sh", "-c", "echo $(id -u) $HOME"], user: "late" }));
  assert.equal(late.stdout.toString(), "4321 /home/late\n");
});

async function hostMountsUnder(directory: string): Promise<string[]> {
  return (await listMountPoints()).filter((point) => point.startsWith(directory));
}
