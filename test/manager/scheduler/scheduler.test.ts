import assert from "node:assert/strict";
import diagnosticsChannel from "node:diagnostics_channel";
import { test, type TestContext } from "node:test";

import { parseServiceSpec, type Service } from "../../../src/manager/objects/index.js";
import { newServiceTask } from "../../../src/manager/orchestrator/index.js";
import { passIntervalMs, Scheduler, type TaskAssignedMessage } from "../../../src/manager/scheduler/index.js";
import type { MemoryStore, StoreEvent } from "../../../src/manager/store/index.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { addNodes, advanceUntil, counterIds, makeNode, newStore, quiesce, silentLogger, tasksOf, updateNode } from "../orchestrator/fixtures.js";

interface SchedulerHarness {
  store: MemoryStore;
  clock: FakeClock;
  service: Service;
  newId: () => string;
}

async function startScheduler(t: TestContext, options: { constraints?: string[] } = {}): Promise<SchedulerHarness> {
  const clock = new FakeClock();
  const store = newStore(clock);
  const spec = parseServiceSpec({ name: "web", taskTemplate: { containerSpec: { image: "busybox" }, placement: { constraints: options.constraints ?? [] } } });
  const service = await store.update((tx) => tx.create("service", { id: "s1", spec, specVersion: 1 }));
  const stored = store.view((tx) => tx.get("service", service.id));
  assert.ok(stored !== undefined);
  const controller = new AbortController();
  const running = new Scheduler({ store, logger: silentLogger, clock }).run(controller.signal);
  t.after(async () => {
    controller.abort();
    await running;
  });
  return { store, clock, service: stored, newId: counterIds(99) };
}

async function createTask(harness: SchedulerHarness, slot: number): Promise<string> {
  const { store, service, clock } = harness;
  const task = await store.update((tx) =>
    tx.create("task", newServiceTask({ id: harness.newId(), service, slot, nodeId: "", attempt: 0, desiredState: "running", now: clock.now(), message: "created" })),
  );
  return task.id;
}

/** Lets time pass with nothing happening: the next change finds the last pass an interval old. */
async function quietSpell(harness: SchedulerHarness): Promise<void> {
  harness.clock.advance(2 * passIntervalMs);
  await quiesce(harness.store);
}

/** Creates a task and runs the timers due on the next turn; answers the task's state then. */
async function createAndTurn(harness: SchedulerHarness, slot: number): Promise<{ id: string; state: string | undefined }> {
  const { store, clock } = harness;
  const id = await createTask(harness, slot);
  await quiesce(store);
  clock.advance(0);
  await quiesce(store);
  return { id, state: store.view((tx) => tx.get("task", id))?.status.state };
}

/** Store versions whose commit moved at least one task to "assigned". */
function watchAssignmentCommits(t: TestContext, store: MemoryStore): Set<number> {
  const versions = new Set<number>();
  const controller = new AbortController();
  t.after(() => controller.abort());
  const events = store.watch({ signal: controller.signal });
  void (async () => {
    for await (const event of events as AsyncIterable<StoreEvent>) {
      if (event.type === "updated" && event.kind === "task" && event.object.status.state === "assigned" && event.previous.status.state !== "assigned") {
        versions.add(event.version);
      }
    }
  })();
  return versions;
}

function subscribeAssigned(t: TestContext): TaskAssignedMessage[] {
  const messages: TaskAssignedMessage[] = [];
  const channel = diagnosticsChannel.channel("shoal:scheduler:task-assigned");
  const listener = (message: unknown): void => {
    messages.push(message as TaskAssignedMessage);
  };
  channel.subscribe(listener);
  t.after(() => channel.unsubscribe(listener));
  return messages;
}

test("after a quiet spell a task is placed at once; the 20 that follow in 20 commits go in one commit", async (t) => {
  const harness = await startScheduler(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2", "n3", "n4"]);
  await quietSpell(harness);
  const { id: first, state } = await createAndTurn(harness, 0);
  assert.equal(state, "assigned", "the lone task waited for a gap with nothing to batch");
  const commits = watchAssignmentCommits(t, store);
  const messages = subscribeAssigned(t);
  const ids: string[] = [];
  for (let slot = 1; slot <= 20; slot += 1) ids.push(await createTask(harness, slot));
  await quiesce(store);
  const batch = (): ReturnType<typeof tasksOf> => tasksOf(store, "s1").filter((task) => task.id !== first);
  assert.ok(batch().every((task) => task.status.state === "new"), "nothing of the burst is placed within the interval after the last pass");
  clock.advance(passIntervalMs);
  await advanceUntil(harness, "all assigned", () => batch().every((task) => task.status.state === "assigned"), { stepMs: 1, limitMs: 10 });
  assert.equal(commits.size, 1, "one commit carries every assignment of the burst");
  assert.deepEqual(
    messages.filter((message) => message.assigned > 0).map((message) => message.assigned),
    [20],
  );
  const perNode = new Map<string, number>();
  for (const task of tasksOf(store, "s1")) perNode.set(task.nodeId, (perNode.get(task.nodeId) ?? 0) + 1);
  assert.deepEqual([...perNode.values()].sort(), [5, 5, 5, 6]);
});

test("a steady stream of new tasks is placed once per interval, each within an interval of its creation", async (t) => {
  const harness = await startScheduler(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1"]);
  await quietSpell(harness);
  const messages = subscribeAssigned(t);
  const createdAt = new Map<string, number>();
  // A new task every 10 ms: a debounce waiting for a quiet gap would never place one.
  for (let slot = 1; slot <= 20; slot += 1) {
    createdAt.set(await createTask(harness, slot), clock.now());
    await quiesce(store);
    clock.advance(10);
    await quiesce(store);
  }
  await advanceUntil(harness, "all assigned", () => tasksOf(store, "s1").every((task) => task.status.state === "assigned"), { stepMs: 1, limitMs: passIntervalMs });
  for (const task of tasksOf(store, "s1")) {
    const waitedMs = task.status.timestamp - (createdAt.get(task.id) ?? Number.NaN);
    assert.ok(waitedMs <= passIntervalMs, `task ${task.id} waited ${waitedMs} ms`);
  }
  // 200 ms of creations: the first at once, then one pass per 50 ms.
  assert.ok(messages.length <= 6, `${messages.length} passes for 20 tasks in 200 ms`);
});

test("with no task waiting, freed resources and node changes start no pass: the next task is placed at once", async (t) => {
  const harness = await startScheduler(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2"]);
  await quietSpell(harness);
  const first = await createTask(harness, 1);
  await advanceUntil(harness, "first assigned", () => store.view((tx) => tx.get("task", first))?.status.state === "assigned");
  await quietSpell(harness);
  // A service removed (its task deleted) and a node heartbeat, right before the next service's task.
  await store.update((tx) => tx.delete("task", first));
  await updateNode(store, "n1", (node) => ({ ...node, status: { ...node.status, addr: "10.0.0.1" } }));
  await quiesce(store);
  clock.advance(0);
  await quiesce(store);
  const { state } = await createAndTurn(harness, 2);
  assert.equal(state, "assigned", "the next task waited out an interval started by a pass with nothing to do");
});

test("a task no node can take is left pending with the reason, written once, and placed when a node fits", async (t) => {
  const harness = await startScheduler(t, { constraints: ["node.labels.zone==mars"] });
  const { store } = harness;
  await addNodes(store, ["n1", "n2", "n3"]);
  const id = await createTask(harness, 1);
  const read = (): ReturnType<typeof tasksOf>[number] | undefined => store.view((tx) => tx.get("task", id));
  await advanceUntil(harness, "pending", () => read()?.status.state === "pending");
  assert.equal(read()?.status.message, "no suitable node (scheduling constraints not satisfied on 3 nodes)");
  const version = read()?.meta.version;

  // Another pass (a node changed) with the same verdict does not rewrite the task.
  const passes = subscribeAssigned(t);
  await updateNode(store, "n1", (node) => ({ ...node, status: { ...node.status, addr: "10.0.0.1" } }));
  await advanceUntil(harness, "a pass after the node change", () => passes.length > 0);
  assert.deepEqual(passes.map((pass) => [pass.assigned, pass.unschedulable, pass.written]), [[0, 1, 0]]);
  assert.equal(read()?.meta.version, version, "unchanged explanation, unchanged task");

  await store.update((tx) => tx.create("node", makeNode("n4", { labels: { zone: "mars" } })));
  await advanceUntil(harness, "assigned", () => read()?.status.state === "assigned");
  assert.equal(read()?.nodeId, "n4");
});
