import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { systemClock } from "../../../src/common/clock.js";
import { parseTmpfsSpec, parseVolumeSpec } from "../../../src/engine/volumes/mounts.js";
import { createVolumeService } from "../../../src/engine/volumes/volumes.js";
import { collectExecOutput } from "../../../src/engine/runtime/exec.js";
import { containerSkipReason, createEngineFixture, readLogs } from "../runtime/helpers.js";

test("-v and --tmpfs values parse; bad ones are refused with the fix", () => {
  assert.deepEqual(parseVolumeSpec("data:/var/lib/data"), { type: "volume", name: "data", target: "/var/lib/data", readOnly: false });
  assert.deepEqual(parseVolumeSpec("/srv/site:/usr/share/html:ro"), { type: "bind", source: "/srv/site", target: "/usr/share/html", readOnly: true });
  assert.deepEqual(parseTmpfsSpec("/run:size=64m"), { type: "tmpfs", target: "/run", sizeBytes: 64 * 1024 * 1024 });
  assert.throws(() => parseVolumeSpec("data"), { name: "InvalidArgumentError" });
  assert.throws(() => parseVolumeSpec("data:relative"), { name: "InvalidArgumentError", message: /absolute/ });
  assert.throws(() => parseVolumeSpec("data:/x:rx"), { name: "InvalidArgumentError", message: /ro or rw/ });
  assert.throws(() => parseVolumeSpec("../etc:/x"), { name: "InvalidArgumentError", message: /invalid volume name/ });
  assert.throws(() => parseVolumeSpec("data:/"), { name: "InvalidArgumentError" });
  assert.throws(() => parseTmpfsSpec("/run:mode=1"), { name: "InvalidArgumentError" });
});

test("named volumes: create, inspect, list, rm; refused while in use; names validated", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "shoal-volumes-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const users = new Map<string, string[]>();
  const volumes = createVolumeService({ root, clock: systemClock, usage: (name) => users.get(name) ?? [] });
  const created = await volumes.create("data", { labels: { team: "a" } });
  assert.equal(created.mountpoint, join(root, "data", "_data"));
  assert.ok((await stat(created.mountpoint)).isDirectory());
  await assert.rejects(volumes.create("data"), { name: "AlreadyExistsError" });
  await assert.rejects(volumes.create("../escape"), { name: "InvalidArgumentError" });
  assert.deepEqual((await volumes.inspect("data")).labels, { team: "a" });
  assert.deepEqual((await volumes.list()).map((volume) => volume.name), ["data"]);
  users.set("data", ["c".repeat(64)]);
  await assert.rejects(volumes.remove("data"), { name: "FailedPreconditionError", message: /in use by container/ });
  users.delete("data");
  await volumes.remove("data");
  await assert.rejects(volumes.inspect("data"), { name: "NotFoundError" });
  assert.equal((await volumes.ensure("auto")).name, "auto");
});

test("containers see named volumes, bind mounts (ro enforced) and tmpfs", { skip: containerSkipReason() ?? false, timeout: 30_000 }, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const hostDirectory = join(fixture.root, "host-dir");
  await import("node:fs/promises").then(({ mkdir }) => mkdir(hostDirectory));
  await writeFile(join(hostDirectory, "from-host"), "host data\n");
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sleep", "30"],
    networkMode: "none",
    mounts: [
      { type: "volume", name: "shared", target: "/data", readOnly: false },
      { type: "bind", source: hostDirectory, target: "/host", readOnly: true },
      { type: "tmpfs", target: "/scratch", sizeBytes: 1024 * 1024 },
    ],
  });
  await engine.containers.start(id);
  const script = "echo kept > /data/file; cat /host/from-host; touch /host/nope 2>/dev/null && echo WRITABLE; grep ' /scratch ' /proc/mounts | cut -d' ' -f3";
  const result = await collectExecOutput(await engine.containers.exec(id, { cmd: ["sh", "-c", script] }));
  assert.equal(result.stdout.toString(), "host data\ntmpfs\n");
  const volume = await engine.volumes.inspect("shared");
  assert.equal(await readFile(join(volume.mountpoint, "file"), "utf8"), "kept\n");
  await assert.rejects(engine.volumes.remove("shared"), { name: "FailedPreconditionError" });
  await engine.containers.remove(id, { force: true });
  // The data outlives the container; a new one sees it.
  const { id: reader } = await engine.containers.create({
    image: "busybox",
    cmd: ["cat", "/data/file"],
    networkMode: "none",
    mounts: [{ type: "volume", name: "shared", target: "/data", readOnly: true }],
  });
  await engine.containers.start(reader);
  await engine.containers.wait(reader);
  assert.equal((await readLogs(engine, reader)).stdout, "kept\n");
  await engine.containers.remove(reader);
  await engine.volumes.remove("shared");
});
