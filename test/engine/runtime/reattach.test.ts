import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { test } from "node:test";

import { processAlive } from "../../helpers/process.js";
import { containerSkipReason, createEngineFixture, freePort, waitFor, waitForLog } from "./helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 40_000 };

test("closing the engine leaves containers running; a new engine re-attaches and manages them", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const first = await fixture.open();
  const { id: longId } = await first.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done"],
    networkMode: "none",
    name: "long",
  });
  const { id: shortId } = await first.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 42"],
    networkMode: "none",
    name: "short",
  });
  await first.containers.start(longId);
  await first.containers.start(shortId);
  await waitForLog(first, longId, "up");
  const pid = first.containers.inspect(longId).state.pid;
  await first.close();
  // The daemon is "down": the short container now finishes on its own.
  const shortPid = first.containers.inspect(shortId).state.pid;
  await writeFile(`/proc/${shortPid}/root/tmp/go`, "");
  await waitFor("the short container to exit while no engine runs", async () => !(await processAlive(shortPid)));
  assert.ok(await processAlive(pid), "closing the engine must not stop containers");

  const second = await fixture.open();
  const long = second.containers.inspect("long");
  assert.equal(long.state.status, "running");
  assert.equal(long.state.pid, pid);
  const short = await second.containers.wait("short");
  assert.equal(short.exitCode, 42);
  assert.equal(second.containers.inspect("short").state.status, "exited");
  await second.containers.stop("long", { timeoutSeconds: 5 });
  assert.equal(second.containers.inspect("long").state.exitCode, 0);
  assert.equal(await processAlive(pid), false);
});

test("a bridge container keeps its network across an engine restart and releases it on stop", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const first = await fixture.open();
  const { id } = await first.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done"],
    portBindings: [{ hostIp: "0.0.0.0", hostPort: await freePort(), containerPort: 80, protocol: "tcp" }],
  });
  await first.containers.start(id);
  await waitForLog(first, id, "up");
  const address = first.containers.inspect(id).state.network?.ipAddress;
  await first.close();
  const netns = (): string => execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  assert.ok(netns().includes(id.slice(0, 12)), "the netns outlives the engine");

  const second = await fixture.open();
  const info = second.containers.inspect(id);
  assert.equal(info.state.network?.ipAddress, address);
  // The restored engine still knows the port is taken.
  const port = info.record.portBindings[0];
  assert.ok(port !== undefined);
  const { id: other } = await second.containers.create({ image: "busybox", cmd: ["true"], portBindings: [port] });
  await assert.rejects(second.containers.start(other), { name: "ConflictError" });
  await second.containers.stop(id, { timeoutSeconds: 5 });
  assert.equal(netns().includes(id.slice(0, 12)), false, "stop releases the netns");
});

test("a container created but never started is still created after an engine restart, and starts", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const first = await fixture.open();
  const { id } = await first.containers.create({ image: "busybox", cmd: ["sh", "-c", "echo started"], networkMode: "none", name: "later" });
  await first.close();

  const second = await fixture.open();
  const info = second.containers.inspect("later");
  assert.equal(info.record.id, id);
  assert.equal(info.state.status, "created");
  assert.equal(info.state.startedAt, null);
  await second.containers.start("later");
  assert.equal((await second.containers.wait("later")).exitCode, 0);
  await waitForLog(second, id, "started");
  assert.equal(second.containers.inspect("later").state.status, "exited");
});
