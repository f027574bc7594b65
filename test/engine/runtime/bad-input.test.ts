import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";

import type { Engine } from "../../../src/engine/engine.js";
import { listChildCgroups } from "../../../src/engine/runtime/oci/cgroups.js";
import { listMountPoints } from "../../../src/engine/runtime/rootfs-mount.js";
import { containerSkipReason, createEngineFixture, type TestEngineFixture } from "./helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 30_000 };

async function conmonProcessesUnder(root: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    if (cmdline.startsWith("/usr/bin/conmon") && cmdline.includes(root)) pids.push(Number(name));
  }
  return pids;
}

/** Asserts the engine left nothing behind: mounts, netns, cgroups, conmon processes, dirs. */
async function assertNoLeftovers(fixture: TestEngineFixture, engine: Engine): Promise<void> {
  const runTmpfs = join(fixture.runDir, "engine");
  assert.deepEqual(
    (await listMountPoints()).filter((point) => point.startsWith(fixture.root) && point !== runTmpfs),
    [],
    "no mount under the engine's directories but its run directory's tmpfs",
  );
  const engineId = engine.info().engineId;
  const netns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  assert.equal(netns.includes(`shoal-${engineId.slice(0, 8)}-`), false, "no network namespace");
  assert.deepEqual(await listChildCgroups(`/shoal-${engineId}`), [], "no container cgroup");
  assert.deepEqual(await conmonProcessesUnder(fixture.root), [], "no conmon process");
  const ids = new Set(engine.containers.list({ all: true }).map((info) => info.record.id));
  for (const root of [join(fixture.dataDir, "engine", "containers"), join(fixture.runDir, "engine", "containers")]) {
    const directories = await readdir(root);
    assert.deepEqual(directories.filter((name) => !ids.has(name)), [], `no orphan container directory in ${root}`);
  }
}

async function assertStillUsable(engine: Engine): Promise<void> {
  const { id } = await engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none" });
  await engine.containers.start(id);
  assert.equal((await engine.containers.wait(id)).exitCode, 0);
  await engine.containers.remove(id);
}

test("an unknown image or an invalid mount is refused at create and leaves nothing", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  await assert.rejects(engine.containers.create({ image: "no-such-image", cmd: ["true"] }), {
    name: "NotFoundError",
    message: /no such image: no-such-image/,
  });
  await assert.rejects(
    engine.containers.create({
      image: "busybox",
      cmd: ["true"],
      mounts: [{ type: "bind", source: "/nonexistent/shoal-source", target: "/data", readOnly: false }],
    }),
    { name: "InvalidArgumentError", message: /bind source path does not exist: \/nonexistent\/shoal-source/ },
  );
  await assert.rejects(engine.containers.create({ image: "busybox", cmd: ["true"], resources: { memoryBytes: 1024 } }), {
    name: "InvalidArgumentError",
  });
  assert.equal(engine.containers.list({ all: true }).length, 0);
  assert.equal(fixture.rootfs.prepared.size, 0, "no rootfs prepared for a refused create");
  await assertNoLeftovers(fixture, engine);
  await assertStillUsable(engine);
});

test("a bad entrypoint fails start with the runtime's reason and leaves no mount, netns, cgroup or conmon", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const { id } = await engine.containers.create({ image: "busybox", entrypoint: ["/no/such/binary"] });
  await assert.rejects(engine.containers.start(id), (error: Error) => {
    assert.equal(error.name, "FailedPreconditionError");
    assert.match(error.message, /no such file or directory/);
    return true;
  });
  const info = engine.containers.inspect(id);
  assert.equal(info.state.status, "created");
  assert.match(info.state.error, /no such file or directory/);
  await assertNoLeftovers(fixture, engine);
  await engine.containers.remove(id);
  await assertStillUsable(engine);
  await assertNoLeftovers(fixture, engine);
});

test("a host port already in use is refused with a clear error and leaves nothing", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const address = server.address();
  assert.ok(address !== null && typeof address !== "string");
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["true"],
    portBindings: [{ hostIp: "0.0.0.0", hostPort: address.port, containerPort: 80, protocol: "tcp" }],
  });
  await assert.rejects(engine.containers.start(id), {
    name: "ConflictError",
    message: new RegExp(`port ${address.port}/tcp is already in use on the host`),
  });
  await assertNoLeftovers(fixture, engine);
  await engine.containers.remove(id);
  await assertStillUsable(engine);
});
