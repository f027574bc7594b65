import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { systemClock } from "../../src/common/clock.js";
import { createDispatcher } from "../../src/manager/dispatcher/index.js";
import type { Task, TaskState } from "../../src/manager/objects/index.js";
import { MemoryStore } from "../../src/manager/store/index.js";
import { startGrpcServer } from "../../src/rpc/server.js";
import { balancerDrainMs, createAgent, type Agent } from "../../src/worker/index.js";
import { waitFor } from "../helpers/wait.js";
import { defer, identifyByHeader, silentLogger, startManager, testNodeIdHeader, type Manager } from "../manager/dispatcher/harness.js";
import { newService, newTask } from "../manager/store/fixtures.js";
import { FakeEngine } from "./fake-executor.js";

const heartbeatPeriodMs = 200;

async function dataDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "shoal-agent-"));
  defer(t, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function manager(t: TestContext, store?: MemoryStore): Promise<Manager> {
  const started = await startManager({ clock: systemClock, heartbeatPeriodMs, ...(store === undefined ? {} : { store }) });
  defer(t, () => started.close());
  return started;
}

async function agent(t: TestContext, options: { dir: string; managers: string[]; engine: FakeEngine; nodeId?: string }): Promise<Agent> {
  const started = createAgent({
    dataDir: options.dir,
    managers: options.managers,
    executor: options.engine.executor(),
    logger: silentLogger,
    callMetadata: { [testNodeIdHeader]: options.nodeId ?? "node1" },
  });
  await started.start();
  defer(t, () => started.stop());
  return started;
}

async function assignTask(store: MemoryStore, id: string): Promise<void> {
  await store.update((tx) => {
    const service = tx.get("service", "s1") ?? tx.create("service", newService("s1", "web"));
    tx.create("task", { ...newTask(id, service, 1, "assigned"), nodeId: "node1" });
  });
}

function taskState(store: MemoryStore, id: string): TaskState | undefined {
  return store.view((tx) => tx.get("task", id))?.status.state;
}

function waitForState(store: MemoryStore, id: string, state: TaskState): Promise<Task> {
  return waitFor(`task ${id} to be ${state} in the store`, () => {
    const task = store.view((tx) => tx.get("task", id));
    return task?.status.state === state ? task : undefined;
  });
}

test("the agent runs an assigned task through every state and reports its exit", async (t) => {
  const started = await manager(t);
  const engine = new FakeEngine();
  const seen: TaskState[] = [];
  const events = started.store.watch({ filter: (event) => event.type === "updated" && event.kind === "task" });
  defer(t, () => events.return?.());
  void (async () => {
    for await (const event of events) if (event.type === "updated" && event.kind === "task") seen.push(event.object.status.state);
  })();
  await agent(t, { dir: await dataDir(t), managers: [started.address], engine });
  await assignTask(started.store, "t1");
  const running = await waitForState(started.store, "t1", "running");
  assert.equal(running.status.containerStatus?.containerId, "c-t1");
  assert.equal(started.store.view((tx) => tx.get("node", "node1"))?.status.state, "ready");
  engine.exit("t1", 0);
  const complete = await waitForState(started.store, "t1", "complete");
  assert.equal(complete.status.containerStatus?.exitCode, 0);
  assert.deepEqual(engine.callsOf("t1"), ["prepare", "start", "wait"]);
  const order = ["accepted", "preparing", "ready", "starting", "running", "complete"];
  assert.deepEqual(seen, [...seen].sort((a, b) => order.indexOf(a) - order.indexOf(b)), "states reach the store in order");
  assert.equal(seen.at(-1), "complete");
});

test("a restarted agent re-adopts its running task instead of starting it again", async (t) => {
  const started = await manager(t);
  const engine = new FakeEngine();
  const dir = await dataDir(t);
  const first = await agent(t, { dir, managers: [started.address], engine });
  await assignTask(started.store, "t1");
  await waitForState(started.store, "t1", "running");
  await first.stop();
  const stored = await readFile(join(dir, "worker", "tasks.json"), "utf8");
  assert.match(stored, /"state":"running"/);

  const second = await agent(t, { dir, managers: [started.address], engine });
  await waitFor("the new agent to wait on the container", () => (engine.callsOf("t1").filter((call) => call === "wait").length === 2 ? true : undefined));
  await waitFor("the new agent's session", () => second.connectedTo ?? undefined);
  engine.exit("t1", 7);
  const failed = await waitForState(started.store, "t1", "failed");
  assert.equal(failed.status.err, "task: non-zero exit (7)");
  assert.equal(engine.callsOf("t1").filter((call) => call === "start").length, 1, "the container was not started again");
});

test("tasks that are shut down or deleted get their containers removed", async (t) => {
  const started = await manager(t);
  const engine = new FakeEngine();
  const running = await agent(t, { dir: await dataDir(t), managers: [started.address], engine });
  await assignTask(started.store, "t1");
  await assignTask(started.store, "t2");
  await waitForState(started.store, "t1", "running");
  await waitForState(started.store, "t2", "running");
  await started.store.update((tx) => {
    const task = tx.get("task", "t1");
    assert.ok(task !== undefined);
    tx.update("task", { ...task, desiredState: "shutdown" });
    tx.delete("task", "t2");
  });
  await waitForState(started.store, "t1", "shutdown");
  await waitFor("both containers to be removed", () => (engine.containers.size === 0 ? true : undefined));
  await waitFor("the agent to forget both tasks", () => (running.tasks().length === 0 ? true : undefined));
  assert.deepEqual(engine.callsOf("t1").slice(-3), ["shutdown", "remove", "close"]);
  assert.ok(engine.callsOf("t2").includes("remove"));
});

test("a task that load balancers reach keeps running until they have dropped it, then stops", async (t) => {
  const started = await manager(t);
  const engine = new FakeEngine();
  await agent(t, { dir: await dataDir(t), managers: [started.address], engine });
  await started.store.update((tx) => {
    const service = tx.create("service", newService("s1", "web"));
    const attachment = { networkId: "n1", networkName: "front", subnet: "10.240.1.0/24", vni: 4096, address: "10.240.1.5/24" };
    tx.create("task", { ...newTask("t1", service, 1, "assigned"), nodeId: "node1", networkAttachments: [attachment] });
  });
  await waitForState(started.store, "t1", "running");
  const askedAt = performance.now();
  await started.store.update((tx) => {
    const task = tx.get("task", "t1");
    assert.ok(task !== undefined);
    tx.update("task", { ...task, desiredState: "shutdown" });
  });
  await waitForState(started.store, "t1", "shutdown");
  assert.ok(performance.now() - askedAt >= balancerDrainMs, "the stop came before every balancer could drop the task");
  assert.ok(engine.callsOf("t1").includes("shutdown"), `calls: ${engine.callsOf("t1").join(", ")}`);
});

test("the agent moves to another manager when its manager goes away, reports what happened meanwhile, and follows a leader hint", async (t) => {
  const store = new MemoryStore({ proposer: null, logger: silentLogger });
  const first = await manager(t, store);
  const second = await manager(t, store);
  const engine = new FakeEngine();
  const running = await agent(t, { dir: await dataDir(t), managers: [first.address, second.address], engine });
  await waitFor("a session with the first manager", () => (running.connectedTo === first.address ? true : undefined));
  await assignTask(store, "t1");
  await waitForState(store, "t1", "running");
  await first.close();
  engine.exit("t1", 0);
  await waitFor("a session with the second manager", () => (running.connectedTo === second.address ? true : undefined));
  await waitForState(store, "t1", "complete");
  await assignTask(store, "t2");
  await waitForState(store, "t2", "running");

  const follower = createDispatcher({ store, logger: silentLogger, identify: identifyByHeader, leaderAddress: () => second.address });
  const followerServer = await startGrpcServer({ host: "127.0.0.1", port: 0, services: [follower.grpcService()] });
  defer(t, () => followerServer.close());
  // Another node: an agent of node1 with an empty engine would rightly report t2 lost.
  const redirected = await agent(t, { dir: await dataDir(t), managers: [followerServer.address], engine: new FakeEngine(), nodeId: "node2" });
  await waitFor("the agent to follow the leader hint", () => (redirected.connectedTo === second.address ? true : undefined));
  assert.equal(taskState(store, "t2"), "running");
});
