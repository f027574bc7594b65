import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";

import { systemClock, type Clock } from "../../../src/common/clock.js";
import type { AssignmentsMessage__Output } from "../../../src/gen/shoal/v1/AssignmentsMessage.js";
import type { DispatcherClient } from "../../../src/gen/shoal/v1/Dispatcher.js";
import type { SessionMessage__Output } from "../../../src/gen/shoal/v1/SessionMessage.js";
import { createDispatcher, leaderAddressMetadataKey, leaderStartGracePeriods } from "../../../src/manager/dispatcher/index.js";
import { parseTask, type Task, type TaskState } from "../../../src/manager/objects/index.js";
import { MemoryStore } from "../../../src/manager/store/index.js";
import { startGrpcServer } from "../../../src/rpc/server.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { waitFor } from "../../helpers/wait.js";
import { newNode, newService, newTask } from "../store/fixtures.js";
import {
  StreamRecorder,
  defer,
  dispatcherClient,
  identifyByHeader,
  nodeMetadata,
  silentLogger,
  startManager,
  testDescription,
  unary,
  type Manager,
} from "./harness.js";

async function manager(t: TestContext, options: { clock?: Clock; heartbeatPeriodMs?: number } = {}): Promise<{ manager: Manager; client: DispatcherClient }> {
  const started = await startManager({ clock: options.clock ?? systemClock, heartbeatPeriodMs: options.heartbeatPeriodMs ?? 1_000 });
  const client = dispatcherClient(started.address);
  defer(t, async () => {
    client.close();
    await started.close();
  });
  return { manager: started, client };
}

async function openSession(t: TestContext, client: DispatcherClient, nodeId: string): Promise<{ sessionId: string; session: StreamRecorder<SessionMessage__Output> }> {
  const session = new StreamRecorder(client.Session({ description: testDescription }, nodeMetadata(nodeId)));
  defer(t, () => session.call.cancel());
  const first = await waitFor("the session's first message", () => session.messages[0] ?? (session.error === undefined ? undefined : Promise.reject(session.error)));
  return { sessionId: first.sessionId, session };
}

function heartbeat(client: DispatcherClient, nodeId: string, sessionId: string): Promise<{ periodMs: number }> {
  return unary((callback) => client.Heartbeat({ sessionId }, nodeMetadata(nodeId), callback));
}

function reportStatus(client: DispatcherClient, nodeId: string, sessionId: string, updates: { taskId: string; state: TaskState }[]): Promise<unknown> {
  return unary((callback) =>
    client.UpdateTaskStatus({ sessionId, updates: updates.map((update) => ({ ...update, timestampMs: 5, exitCode: -1 })) }, nodeMetadata(nodeId), callback),
  );
}

async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  const error: unknown = await promise.then(
    () => assert.fail("expected the call to fail"),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof Error && "code" in error);
  return error as ServiceError;
}

async function seedTasks(store: MemoryStore, tasks: { id: string; nodeId: string; state?: TaskState }[]): Promise<void> {
  await store.update((tx) => {
    const service = tx.get("service", "s1") ?? tx.create("service", newService("s1", "web"));
    for (const task of tasks) tx.create("task", { ...newTask(task.id, service, 1, task.state ?? "assigned"), nodeId: task.nodeId });
  });
}

test("a session registers the node as ready with its description and address", async (t) => {
  const { manager: started, client } = await manager(t);
  const { sessionId, session } = await openSession(t, client, "node1");
  assert.notEqual(sessionId, "");
  assert.equal(session.messages[0]?.nodeId, "node1");
  const node = started.store.view((tx) => tx.get("node", "node1"));
  assert.equal(node?.status.state, "ready");
  assert.equal(node?.status.addr, "127.0.0.1");
  assert.equal(node?.description?.hostname, "worker-1");
  assert.deepEqual(node?.description?.engine.labels, { disk: "ssd" });
  assert.equal(node?.spec.role, "worker");
  assert.deepEqual(started.dispatcher.sessions(), ["node1"]);

  const anonymous = new StreamRecorder(client.Session({ description: testDescription }));
  await waitFor("the anonymous session to fail", () => anonymous.error);
  assert.equal(anonymous.error?.code, grpcStatus.UNAUTHENTICATED);
});

test("a node that stops heartbeating is marked down after three periods, not before", async (t) => {
  const clock = new FakeClock();
  const { manager: started, client } = await manager(t, { clock, heartbeatPeriodMs: 1_000 });
  const { sessionId, session } = await openSession(t, client, "node1");
  assert.deepEqual(await heartbeat(client, "node1", sessionId), { periodMs: 1_000 });
  clock.advance(2_000);
  await heartbeat(client, "node1", sessionId);
  clock.advance(2_999);
  // A round trip through the server lets any store write the advance triggered land first.
  await heartbeat(client, "node1", "not-the-session").catch(() => undefined);
  assert.equal(started.store.view((tx) => tx.get("node", "node1"))?.status.state, "ready", "a heartbeat restarts the grace period");
  clock.advance(1);
  const down = await waitFor("the node to be marked down", () => {
    const node = started.store.view((tx) => tx.get("node", "node1"));
    return node?.status.state === "down" ? node : undefined;
  });
  assert.equal(down.status.message, "heartbeat failure");
  await waitFor("the session stream to end", () => session.error);
  assert.equal(session.error?.code, grpcStatus.UNAVAILABLE);
  const late = await rejection(heartbeat(client, "node1", sessionId));
  assert.equal(late.code, grpcStatus.NOT_FOUND, "an expired session must be reopened");
});

test("assignments: the complete set first, then deltas with increasing sequence numbers", async (t) => {
  const { manager: started, client } = await manager(t);
  const store = started.store;
  await seedTasks(store, [
    { id: "t1", nodeId: "node1" },
    { id: "t2", nodeId: "node2" },
    { id: "t3", nodeId: "node1", state: "pending" },
  ]);
  const { sessionId } = await openSession(t, client, "node1");
  const stream = new StreamRecorder<AssignmentsMessage__Output>(client.Assignments({ sessionId }, nodeMetadata("node1")));
  defer(t, () => stream.call.cancel());
  const ids = (message: AssignmentsMessage__Output | undefined): string[] =>
    (message?.updateTasks ?? []).map((bytes) => parseTask(JSON.parse(bytes.toString("utf8")), "task").id);
  const message = (index: number): Promise<AssignmentsMessage__Output> => waitFor(`assignments message ${index + 1}`, () => stream.messages[index]);

  const complete = await message(0);
  assert.deepEqual([complete.type, complete.sequence, ids(complete)], ["COMPLETE", 1, ["t1"]], "pending tasks are not yet the node's");

  const update = (id: string, change: (task: Task) => Task): Promise<void> =>
    store.update((tx) => {
      const task = tx.get("task", id);
      assert.ok(task !== undefined);
      tx.update("task", change(task));
    });
  await update("t1", (task) => ({ ...task, desiredState: "shutdown" }));
  const stop = await message(1);
  assert.deepEqual([stop.type, stop.sequence, ids(stop)], ["INCREMENTAL", 2, ["t1"]], "a task to stop is still sent");
  await update("t2", (task) => ({ ...task, desiredState: "shutdown" }));
  await seedTasks(store, [{ id: "t4", nodeId: "node1" }]);
  const added = await message(2);
  assert.deepEqual([added.sequence, ids(added)], [3, ["t4"]], "another node's change sends nothing");
  await store.update((tx) => tx.delete("task", "t4"));
  const removed = await message(3);
  assert.deepEqual([removed.sequence, removed.removeTaskIds], [4, ["t4"]]);
  await update("t1", (task) => ({ ...task, status: { ...task.status, state: "shutdown" } }));
  const finished = await message(4);
  assert.deepEqual([finished.sequence, finished.removeTaskIds], [5, ["t1"]], "a stopped task that is wanted no more is removed");
  assert.equal(stream.messages.length, 5);
});

test("status updates land in the store together; other nodes' tasks and backward moves are refused", async (t) => {
  const { manager: started, client } = await manager(t);
  const store = started.store;
  await seedTasks(store, [
    { id: "t1", nodeId: "node1" },
    { id: "t2", nodeId: "node1" },
    { id: "t3", nodeId: "node2" },
  ]);
  const { sessionId } = await openSession(t, client, "node1");
  await Promise.all([
    reportStatus(client, "node1", sessionId, [{ taskId: "t1", state: "accepted" }]),
    reportStatus(client, "node1", sessionId, [{ taskId: "t2", state: "preparing" }]),
  ]);
  const [t1, t2] = store.view((tx) => [tx.get("task", "t1"), tx.get("task", "t2")]);
  assert.equal(t1?.status.state, "accepted");
  assert.equal(t2?.status.state, "preparing");
  assert.equal(t1?.meta.version, t2?.meta.version, "both requests were written in one transaction");

  const foreign = await rejection(reportStatus(client, "node1", sessionId, [{ taskId: "t3", state: "running" }]));
  assert.equal(foreign.code, grpcStatus.PERMISSION_DENIED);
  assert.equal(store.view((tx) => tx.get("task", "t3"))?.status.state, "assigned");

  await reportStatus(client, "node1", sessionId, [{ taskId: "t1", state: "running" }]);
  const backwards = await rejection(reportStatus(client, "node1", sessionId, [{ taskId: "t1", state: "preparing" }]));
  assert.equal(backwards.code, grpcStatus.FAILED_PRECONDITION);
  const managerOnly = await rejection(reportStatus(client, "node1", sessionId, [{ taskId: "t2", state: "assigned" }]));
  assert.equal(managerOnly.code, grpcStatus.INVALID_ARGUMENT);
  assert.equal(store.view((tx) => tx.get("task", "t1"))?.status.state, "running");
  const stale = await rejection(reportStatus(client, "node1", "no-such-session", [{ taskId: "t1", state: "complete" }]));
  assert.equal(stale.code, grpcStatus.NOT_FOUND);
});

test("a dispatcher that is not the leader refuses calls with UNAVAILABLE naming the leader", async (t) => {
  const store = new MemoryStore({ proposer: null, logger: silentLogger });
  const dispatcher = createDispatcher({ store, logger: silentLogger, identify: identifyByHeader, leaderAddress: () => "10.0.0.1:4243" });
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, services: [dispatcher.grpcService()] });
  const client = dispatcherClient(server.address);
  defer(t, async () => {
    client.close();
    await server.close();
  });
  const error = await rejection(heartbeat(client, "node1", "s"));
  assert.equal(error.code, grpcStatus.UNAVAILABLE);
  assert.deepEqual(error.metadata.get(leaderAddressMetadataKey), ["10.0.0.1:4243"]);
  const session = new StreamRecorder(client.Session({ description: testDescription }, nodeMetadata("node1")));
  await waitFor("the session to be refused", () => session.error);
  assert.deepEqual(session.error?.metadata.get(leaderAddressMetadataKey), ["10.0.0.1:4243"]);
});

test("a new leader marks ready nodes down when they do not open a session within the grace", async () => {
  const clock = new FakeClock();
  const store = new MemoryStore({ proposer: null, logger: silentLogger, clock });
  await store.update((tx) => {
    tx.create("node", newNode("node1", "host1"));
  });
  const dispatcher = createDispatcher({ store, logger: silentLogger, identify: identifyByHeader, clock, heartbeatPeriodMs: 1_000, random: () => 0 });
  dispatcher.start();
  try {
    clock.advance(leaderStartGracePeriods * 1_000 - 1);
    assert.equal(store.view((tx) => tx.get("node", "node1"))?.status.state, "ready");
    clock.advance(1);
    await waitFor("node1 to be marked down", () => (store.view((tx) => tx.get("node", "node1"))?.status.state === "down" ? true : undefined));
  } finally {
    await dispatcher.stop();
  }
});

test("a node that joins while the dispatcher runs and never opens a session is marked down", async () => {
  const clock = new FakeClock();
  const store = new MemoryStore({ proposer: null, logger: silentLogger, clock });
  const dispatcher = createDispatcher({ store, logger: silentLogger, identify: identifyByHeader, clock, heartbeatPeriodMs: 1_000, random: () => 0 });
  dispatcher.start();
  try {
    await store.update((tx) => {
      const node = newNode("joined", "host9");
      tx.create("node", { ...node, status: { ...node.status, state: "unknown" } });
    });
    // The watch delivers the creation asynchronously: fake time moves on while we wait.
    await waitFor("the never-connected node to be marked down", () => {
      clock.advance(1_000);
      return store.view((tx) => tx.get("node", "joined"))?.status.state === "down" ? true : undefined;
    });
  } finally {
    await dispatcher.stop();
  }
});

test("a node whose session stream ends is marked down after the grace unless it opens a new one", async (t) => {
  const clock = new FakeClock();
  const { manager: started, client } = await manager(t, { clock, heartbeatPeriodMs: 1_000 });
  const { sessionId, session } = await openSession(t, client, "node1");
  session.call.cancel();
  await waitFor("the dispatcher to see the session end", () => (started.dispatcher.sessions().length === 0 ? true : undefined));
  const refused = await rejection(heartbeat(client, "node1", sessionId));
  assert.equal(refused.code, grpcStatus.NOT_FOUND, "heartbeats of an ended session are refused");
  clock.advance(3_000);
  await waitFor("node1 to be marked down", () => (started.store.view((tx) => tx.get("node", "node1"))?.status.state === "down" ? true : undefined));
  await openSession(t, client, "node1");
  assert.equal(started.store.view((tx) => tx.get("node", "node1"))?.status.state, "ready", "a new session brings the node back");
});

test("the jitter shortens the period a node beats at, never the grace before it is marked down", async (t) => {
  const clock = new FakeClock();
  const started = await startManager({ clock, heartbeatPeriodMs: 1_000, random: () => 0.999 });
  const client = dispatcherClient(started.address);
  defer(t, async () => {
    client.close();
    await started.close();
  });
  const { sessionId } = await openSession(t, client, "node1");
  assert.deepEqual(await heartbeat(client, "node1", sessionId), { periodMs: 751 });
  clock.advance(2_999);
  await heartbeat(client, "node1", "not-the-session").catch(() => undefined);
  assert.equal(started.store.view((tx) => tx.get("node", "node1"))?.status.state, "ready");
  clock.advance(1);
  await waitFor("three configured periods after the last beat, the node to be marked down", () =>
    started.store.view((tx) => tx.get("node", "node1"))?.status.state === "down" ? true : undefined,
  );
});

test("session and assignments messages carry the term the dispatcher was started in", async (t) => {
  let term = 7;
  const started = await startManager({ clock: systemClock, heartbeatPeriodMs: 1_000, term: () => term });
  const client = dispatcherClient(started.address);
  defer(t, async () => {
    client.close();
    await started.close();
  });
  await seedTasks(started.store, [{ id: "t1", nodeId: "node1" }]);
  const { sessionId, session } = await openSession(t, client, "node1");
  assert.equal(session.messages[0]?.term, 7);
  const assignments = new StreamRecorder(client.Assignments({ sessionId }, nodeMetadata("node1")));
  defer(t, () => assignments.call.cancel());
  await waitFor("the complete set", () => assignments.messages[0]);
  // A term change without a new start() is not this leadership's: messages keep the term it was elected in.
  term = 8;
  await seedTasks(started.store, [{ id: "t2", nodeId: "node1" }]);
  await waitFor("the delta", () => assignments.messages[1]);
  assert.deepEqual(
    assignments.messages.map((message) => [message.type, message.term]),
    [
      ["COMPLETE", 7],
      ["INCREMENTAL", 7],
    ],
  );

  await started.dispatcher.stop();
  term = 9;
  started.dispatcher.start();
  const next = await openSession(t, client, "node1");
  assert.equal(next.session.messages[0]?.term, 9);
});
