import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import { pino, type Logger } from "pino";

import { systemClock } from "../../src/common/clock.js";
import type { ProtoGrpcType as DispatcherProto } from "../../src/gen/dispatcher.js";
import type { DispatcherHandlers } from "../../src/gen/shoal/v1/Dispatcher.js";
import type { Task, TaskState } from "../../src/manager/objects/index.js";
import { MemoryStore } from "../../src/manager/store/index.js";
import { loadProto } from "../../src/rpc/proto.js";
import { startGrpcServer } from "../../src/rpc/server.js";
import { createAgent, type Agent } from "../../src/worker/index.js";
import { waitFor } from "../helpers/wait.js";
import { defer, silentLogger, startManager, testNodeIdHeader, type Manager } from "../manager/dispatcher/harness.js";
import { newService, newTask } from "../manager/store/fixtures.js";
import { FakeEngine } from "./fake-executor.js";

const heartbeatPeriodMs = 200;

/** A logger that keeps the messages of its warnings, to check what the agent said. */
function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger = pino(
    { level: "warn" },
    {
      write: (line: string) => {
        const record: unknown = JSON.parse(line);
        if (typeof record === "object" && record !== null && "msg" in record && typeof record.msg === "string") warnings.push(record.msg);
      },
    },
  );
  return { logger, warnings };
}

async function manager(t: TestContext, store: MemoryStore, term: number): Promise<Manager> {
  const started = await startManager({ clock: systemClock, heartbeatPeriodMs, store, term: () => term });
  defer(t, () => started.close());
  return started;
}

async function agent(t: TestContext, managers: string[], engine: FakeEngine, logger: Logger, dataDir?: string): Promise<Agent> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), "shoal-fence-")));
  if (dataDir === undefined) defer(t, () => rm(dir, { recursive: true, force: true }));
  const started = createAgent({ dataDir: dir, managers, executor: engine.executor(), logger, callMetadata: { [testNodeIdHeader]: "node1" } });
  await started.start();
  defer(t, () => started.stop());
  return started;
}

async function assignTask(store: MemoryStore, id: string): Promise<Task> {
  return store.update((tx) => {
    const service = tx.get("service", "s1") ?? tx.create("service", newService("s1", "web"));
    return tx.create("task", { ...newTask(id, service, 1, "assigned"), nodeId: "node1" });
  });
}

function waitForState(store: MemoryStore, id: string, state: TaskState): Promise<Task> {
  return waitFor(`task ${id} to be ${state}`, () => {
    const task = store.view((tx) => tx.get("task", id));
    return task?.status.state === state ? task : undefined;
  });
}

function taskIds(running: Agent): string[] {
  return running.tasks().map((task) => task.id).sort();
}

test("an agent refuses a session from a lower term, keeps its tasks, and accepts the same or a higher term", async (t) => {
  const cluster = new MemoryStore({ proposer: null, logger: silentLogger });
  // The deposed leader's view: a different task set that would replace the agent's if applied.
  const deposed = new MemoryStore({ proposer: null, logger: silentLogger });
  await assignTask(deposed, "t2");
  const first = await manager(t, cluster, 5);
  const stale = await manager(t, deposed, 3);
  const same = await manager(t, cluster, 5);
  const newer = await manager(t, cluster, 6);
  const engine = new FakeEngine();
  const { logger, warnings } = recordingLogger();
  const running = await agent(t, [first.address, stale.address, same.address, newer.address], engine, logger);
  await waitFor("a session with the term 5 leader", () => (running.connectedTo === first.address ? true : undefined));
  assert.equal(running.term, 5);
  await assignTask(cluster, "t1");
  await waitForState(cluster, "t1", "running");

  await first.close();
  await waitFor("a session with the other term 5 manager", () => (running.connectedTo === same.address ? true : undefined));
  assert.ok(deposed.view((tx) => tx.get("node", "node1")) !== undefined, "the agent never tried the term 3 manager");
  assert.ok(
    warnings.some((message) => message.includes("term 3") && message.includes("term 5")),
    `no warning naming both terms: ${JSON.stringify(warnings)}`,
  );
  assert.deepEqual(engine.callsOf("t2"), [], "the term 3 manager's task was started");
  assert.deepEqual(taskIds(running), ["t1"]);
  assert.equal(running.term, 5);

  await same.close();
  await waitFor("a session with the term 6 leader", () => (running.connectedTo === newer.address ? true : undefined));
  assert.equal(running.term, 6);
  await assignTask(cluster, "t3");
  await waitForState(cluster, "t3", "running");
  assert.deepEqual(taskIds(running), ["t1", "t3"]);
  assert.deepEqual(engine.callsOf("t1"), ["prepare", "start", "wait"], "t1 was stopped or restarted");
});

test("an agent applies nothing from assignments stamped with a lower term than it has seen, and moves on", async (t) => {
  const cluster = new MemoryStore({ proposer: null, logger: silentLogger });
  const elsewhere = new MemoryStore({ proposer: null, logger: silentLogger });
  const staleTask = await assignTask(elsewhere, "t2");
  const first = await manager(t, cluster, 5);
  // A manager whose session claims term 5 but whose assignments come from term 3.
  let assignmentsCalls = 0;
  const handlers: DispatcherHandlers = {
    Session: (call) => {
      call.write({ sessionId: "stale", nodeId: "node1", managers: [], term: 5 });
    },
    Heartbeat: (_call, callback) => callback(null, { periodMs: heartbeatPeriodMs }),
    UpdateTaskStatus: (_call, callback) => callback(null, {}),
    Assignments: (call) => {
      assignmentsCalls += 1;
      call.write({ type: "COMPLETE", sequence: 1, updateTasks: [Buffer.from(JSON.stringify(staleTask))], removeTaskIds: [], term: 3 });
    },
    NetworkMap: (call) => call.end(),
  };
  const proto = loadProto<DispatcherProto>("shoal/v1/dispatcher.proto");
  const fake = await startGrpcServer({ host: "127.0.0.1", port: 0, services: [{ definition: proto.shoal.v1.Dispatcher.service, handlers }] });
  defer(t, () => fake.close());
  const newer = await manager(t, cluster, 6);
  const engine = new FakeEngine();
  const { logger, warnings } = recordingLogger();
  const running = await agent(t, [first.address, fake.address, newer.address], engine, logger);
  await waitFor("a session with the term 5 leader", () => (running.connectedTo === first.address ? true : undefined));
  await assignTask(cluster, "t1");
  await waitForState(cluster, "t1", "running");

  await first.close();
  await waitFor("a session with the term 6 leader", () => (running.connectedTo === newer.address ? true : undefined));
  assert.ok(assignmentsCalls >= 1, "the agent never asked the stale manager for assignments");
  assert.ok(
    warnings.some((message) => message.includes("assignments message of term 3") && message.includes("term 5")),
    `no warning naming both terms: ${JSON.stringify(warnings)}`,
  );
  assert.deepEqual(engine.callsOf("t2"), [], "the term 3 assignment was started");
  assert.deepEqual(taskIds(running), ["t1"]);
  assert.deepEqual(engine.callsOf("t1"), ["prepare", "start", "wait"], "t1 was stopped or restarted");
  assert.equal(running.term, 6);
});

test("a restarted agent still refuses a leader older than the highest term it saw", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "shoal-fence-"));
  defer(t, () => rm(dir, { recursive: true, force: true }));
  const cluster = new MemoryStore({ proposer: null, logger: silentLogger });
  const deposed = new MemoryStore({ proposer: null, logger: silentLogger });
  await assignTask(deposed, "t2");
  const leader = await manager(t, cluster, 5);
  const engine = new FakeEngine();
  const before = await agent(t, [leader.address], engine, silentLogger, dir);
  await waitFor("a session with the term 5 leader", () => (before.connectedTo === leader.address ? true : undefined));
  await before.stop();

  const stale = await manager(t, deposed, 3);
  const { logger, warnings } = recordingLogger();
  const after = await agent(t, [stale.address, leader.address], engine, logger, dir);
  assert.equal(after.term, 5, "the term seen before the restart was not kept");
  await waitFor("a session with the term 5 leader", () => (after.connectedTo === leader.address ? true : undefined));
  assert.ok(
    warnings.some((message) => message.includes("term 3") && message.includes("term 5")),
    `no warning naming both terms: ${JSON.stringify(warnings)}`,
  );
  assert.deepEqual(engine.callsOf("t2"), [], "the term 3 manager's task was started");
});
