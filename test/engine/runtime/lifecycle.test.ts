import assert from "node:assert/strict";
import { test } from "node:test";

import { dockerContainerSummary } from "../../../src/api/docker-container.js";
import { collectExecOutput } from "../../../src/engine/runtime/exec.js";
import { busyboxConfig, containerSkipReason, createEngineFixture, readLogs, waitFor, waitForLog } from "./helpers.js";

const options = { skip: containerSkipReason() ?? false, timeout: 30_000 };

test("a container's exit code is reported by wait and inspect", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({ image: "busybox", cmd: ["sh", "-c", "exit 3"], networkMode: "none" });
  await engine.containers.start(id);
  const status = await engine.containers.wait(id);
  assert.equal(status.exitCode, 3);
  assert.equal(status.oomKilled, false);
  const info = engine.containers.inspect(id);
  assert.equal(info.state.status, "exited");
  assert.equal(info.state.exitCode, 3);
});

test("inspect and list hand out read-only snapshots that later changes leave alone", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({ image: "busybox", cmd: ["sh", "-c", "exit 0"], networkMode: "none", labels: { team: "a" } });
  const before = engine.containers.inspect(id);
  const [listed] = engine.containers.list({ all: true });
  assert.throws(() => {
    before.record.labels["team"] = "b";
  }, TypeError);
  assert.throws(() => {
    (listed?.record.env ?? []).push("X=1");
  }, TypeError);
  await engine.containers.start(id);
  await engine.containers.wait(id);
  assert.equal(before.state.status, "created", "a snapshot keeps the state it was taken in");
  assert.equal(engine.containers.inspect(id).state.status, "exited");
  assert.equal(engine.containers.inspect(id).record.labels["team"], "a");
});

test("logs keep stdout and stderr apart, with tail and timestamps", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "echo out1; echo err1 >&2; echo out2; printf partial"],
    networkMode: "none",
  });
  await engine.containers.start(id);
  await engine.containers.wait(id);
  const logs = await readLogs(engine, id);
  assert.equal(logs.stdout, "out1\nout2\npartial");
  assert.equal(logs.stderr, "err1\n");
  const tail: string[] = [];
  for await (const entry of engine.containers.logs(id, { tail: 1, stderr: false })) tail.push(entry.text);
  assert.deepEqual(tail, ["partial"]);
  const future: string[] = [];
  for await (const entry of engine.containers.logs(id, { sinceMs: Date.now() + 60_000 })) future.push(entry.text);
  assert.deepEqual(future, []);
});

test("logs follow streams output until the container exits", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.1; done"],
    networkMode: "none",
  });
  await engine.containers.start(id);
  const lines: string[] = [];
  for await (const entry of engine.containers.logs(id, { follow: true })) lines.push(entry.text);
  assert.deepEqual(lines, ["line1\n", "line2\n", "line3\n"]);
  assert.equal(engine.containers.inspect(id).state.status, "exited");
});

test("stop sends SIGKILL after the grace period to a container ignoring TERM", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"],
    networkMode: "none",
  });
  await engine.containers.start(id);
  await waitForLog(engine, id, "ready");
  const started = Date.now();
  await engine.containers.stop(id, { timeoutSeconds: 1 });
  const elapsed = Date.now() - started;
  const info = engine.containers.inspect(id);
  assert.equal(info.state.status, "exited");
  assert.equal(info.state.exitCode, 137);
  assert.ok(elapsed >= 1000, `stop returned after ${elapsed} ms, before the grace period`);
});

test("stop with a TERM-handling container exits cleanly within the grace period", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.05; done"],
    networkMode: "none",
  });
  await engine.containers.start(id);
  await waitForLog(engine, id, "ready");
  await engine.containers.stop(id, { timeoutSeconds: 10 });
  assert.equal(engine.containers.inspect(id).state.exitCode, 0);
});

test("kill, restart and rm -f", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({ image: "busybox", cmd: ["sh", "-c", "trap 'exit 5' TERM; echo ready; while :; do sleep 0.05; done"], networkMode: "none", name: "sleeper" });
  await engine.containers.start("sleeper");
  await waitForLog(engine, id, "ready");
  await engine.containers.kill("sleeper", { killSignal: "SIGTERM" });
  assert.equal((await engine.containers.wait(id)).exitCode, 5);
  await engine.containers.restart(id, { timeoutSeconds: 1 });
  const info = engine.containers.inspect(id);
  assert.equal(info.state.status, "running");
  assert.equal(info.state.restartCount, 1);
  await assert.rejects(engine.containers.remove(id), { name: "FailedPreconditionError" });
  await engine.containers.remove(id, { force: true });
  assert.throws(() => engine.containers.inspect(id), { name: "NotFoundError" });
  assert.equal(engine.containers.list({ all: true }).length, 0);
});

test("exec returns output and exit code; env, user and cwd are applied", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sleep", "1000"],
    env: ["GREETING=hello"],
    user: "app",
    workingDir: "/home/app",
    networkMode: "none",
  });
  await engine.containers.start(id);
  const result = await collectExecOutput(
    await engine.containers.exec(id, { cmd: ["sh", "-c", 'echo "$GREETING $(id -u):$(id -g) $(id -G) $PWD $HOME"; echo bad >&2; exit 7'] }),
  );
  assert.equal(result.exitCode, 7);
  assert.equal(result.stdout.toString(), "hello 1000:1000 1000 2000 /home/app /home/app\n");
  assert.equal(result.stderr.toString(), "bad\n");
  const root = await collectExecOutput(await engine.containers.exec(id, { cmd: ["id", "-u"], user: "0" }));
  assert.equal(root.stdout.toString(), "0\n");
  await engine.containers.remove(id, { force: true });
});

test("stop uses the image's StopSignal", options, async (t) => {
  const fixture = await createEngineFixture(t);
  fixture.images.images.set("busybox-usr1", { id: `sha256:${"c".repeat(64)}`, config: { ...busyboxConfig, stopSignal: "SIGUSR1" } });
  const engine = await fixture.open();
  const { id } = await engine.containers.create({
    image: "busybox-usr1",
    cmd: ["sh", "-c", "trap 'exit 9' USR1; echo ready; while :; do sleep 0.05; done"],
    networkMode: "none",
  });
  await engine.containers.start(id);
  await waitForLog(engine, id, "ready");
  await engine.containers.stop(id, { timeoutSeconds: 10 });
  assert.equal(engine.containers.inspect(id).state.exitCode, 9);
});

test("exec passes stdin; hostname and a read-only rootfs are applied", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const { id } = await engine.containers.create({
    image: "busybox",
    cmd: ["sleep", "30"],
    hostname: "web-1",
    readonlyRootfs: true,
    networkMode: "none",
  });
  await engine.containers.start(id);
  const session = await engine.containers.exec(id, { cmd: ["sh", "-c", "tr a-z A-Z; hostname; touch /newfile || echo read-only"], stdin: true });
  session.stdin?.end("piped input\n");
  const result = await collectExecOutput(session);
  assert.equal(result.exitCode, 0);
  assert.equal(result.stdout.toString(), "PIPED INPUT\nweb-1\nread-only\n");
  await engine.containers.remove(id, { force: true });
});

test("containers are found by id, by name before id prefix, and by a unique id prefix", options, async (t) => {
  const engine = await (await createEngineFixture(t)).open();
  const first = await engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none", name: "web.1.x" });
  const second = await engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none" });
  assert.equal(engine.containers.inspect(first.id).record.id, first.id);
  assert.equal(engine.containers.inspect("web.1.x").record.id, first.id);
  assert.equal(engine.containers.inspect(second.id.slice(0, 6)).record.id, second.id);
  // A container named like the other's id prefix is found by its name.
  const named = await engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none", name: first.id.slice(0, 5) });
  assert.equal(engine.containers.inspect(first.id.slice(0, 5)).record.id, named.id);
  assert.throws(() => engine.containers.inspect("web.1.y"), { name: "NotFoundError" });
  assert.throws(() => engine.containers.inspect("ab"), { name: "NotFoundError" }, "two hex digits are not an id prefix");
  await assert.rejects(engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none", name: "web.1.x" }), { name: "AlreadyExistsError" });
  await engine.containers.remove("web.1.x");
  assert.throws(() => engine.containers.inspect("web.1.x"), { name: "NotFoundError" });
  const again = await engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none", name: "web.1.x" });
  assert.equal(engine.containers.inspect("web.1.x").record.id, again.id, "a removed container's name is free again");
});

test("a container being removed is listed as removing until its files are gone, as docker ps -a shows it", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const { id } = await engine.containers.create({ image: "busybox", cmd: ["true"], networkMode: "none" });
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const removeRootfs = fixture.rootfs.remove.bind(fixture.rootfs);
  fixture.rootfs.remove = async (containerId: string) => {
    await gate;
    await removeRootfs(containerId);
  };
  const removal = engine.containers.remove(id);
  try {
    await waitFor("the removal to begin", () => engine.containers.list({ all: true }).some((info) => info.record.id === id && info.removing));
    assert.equal(dockerContainerSummary(engine.containers.list({ all: true })[0] ?? assert.fail("listed"), Date.now())["State"], "removing");
    assert.equal(engine.containers.list().length, 0, "not among the running ones");
  } finally {
    release();
    await removal;
  }
  assert.deepEqual(engine.containers.list({ all: true }), []);
});
