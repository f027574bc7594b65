import assert from "node:assert/strict";
import { test } from "node:test";

import type { MemoryStore } from "../../../src/manager/store/index.js";
import type { FakeClock } from "../../helpers/fake-clock.js";
import {
  addNodes,
  advanceUntil,
  allAssigned,
  createService,
  liveTasksOf,
  newStore,
  quiesce,
  setTaskState,
  startControlLoops,
  tasksOf,
  type Harness,
  type Task,
} from "./fixtures.js";

function onlyLiveTask(store: MemoryStore, serviceId: string): Task {
  const live = liveTasksOf(store, serviceId);
  assert.equal(live.length, 1, `service ${serviceId} has one live task`);
  const [task] = live;
  assert.ok(task !== undefined);
  return task;
}

/** The worker reports the live task started and then failed; returns the failed task. */
async function failLiveTask(harness: Pick<Harness, "store" | "clock">, serviceId: string): Promise<Task> {
  const { store, clock } = harness;
  await advanceUntil(harness, "live task started", () => liveTasksOf(store, serviceId).some((task) => task.desiredState === "running" && task.nodeId !== ""));
  const task = onlyLiveTask(store, serviceId);
  await setTaskState(store, task.id, "running", clock);
  await setTaskState(store, task.id, "failed", clock);
  return task;
}

/** Advances fake time to just before `dueAt` and checks the task has not been started, then past it and checks it has. */
async function assertStartsAt(harness: Pick<Harness, "store" | "clock">, options: { taskId: string; dueAt: number; clock: FakeClock }): Promise<void> {
  const { store } = harness;
  const { clock, taskId, dueAt } = options;
  const desired = (): string | undefined => store.view((tx) => tx.get("task", taskId))?.desiredState;
  assert.ok(clock.now() < dueAt - 1);
  clock.advance(dueAt - 1 - clock.now());
  await quiesce(store);
  assert.equal(desired(), "ready", "the replacement waits out the restart delay");
  clock.advance(1);
  await advanceUntil(harness, "replacement started", () => desired() === "running", { stepMs: 1, limitMs: 10 });
}

test("on-failure with maxAttempts 2: a failed task is replaced after the delay, twice, and then left failed", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2"]);
  await createService(store, "s1", { name: "web", replicas: 1, restart: { condition: "on-failure", delayMs: 2_000, maxAttempts: 2, windowMs: 60_000 } });

  for (let attempt = 1; attempt <= 2; attempt += 1) {
    const failed = await failLiveTask(harness, "s1");
    await advanceUntil(harness, `replacement ${attempt} created`, () => liveTasksOf(store, "s1").some((task) => task.id !== failed.id), { stepMs: 1, limitMs: 100 });
    const replacement = onlyLiveTask(store, "s1");
    assert.equal(replacement.slot, failed.slot);
    assert.equal(replacement.attempt, attempt);
    assert.equal(store.view((tx) => tx.get("task", failed.id))?.desiredState, "shutdown");
    await assertStartsAt(harness, { taskId: replacement.id, dueAt: replacement.meta.createdAt + 2_000, clock });
  }
  const last = await failLiveTask(harness, "s1");
  clock.advance(10_000);
  await quiesce(store);
  assert.equal(tasksOf(store, "s1").length, 3, "no third restart");
  const stored = store.view((tx) => tx.get("task", last.id));
  assert.equal(stored?.status.state, "failed");
  assert.equal(stored.desiredState, "running", "the exhausted task keeps its slot, as in swarm");
});

test("on-failure does not restart a task that completed; any does", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1"]);
  await createService(store, "s1", { name: "once", restart: { condition: "on-failure" } });
  await createService(store, "s2", { name: "always", restart: { condition: "any" } });
  await advanceUntil(harness, "both assigned", () => allAssigned(liveTasksOf(store, "s1"), 1) && allAssigned(liveTasksOf(store, "s2"), 1));
  for (const serviceId of ["s1", "s2"]) {
    const task = onlyLiveTask(store, serviceId);
    await setTaskState(store, task.id, "running", clock);
    await setTaskState(store, task.id, "complete", clock);
  }
  await advanceUntil(harness, "s2 restarted", () => tasksOf(store, "s2").length === 2);
  clock.advance(1_000);
  await quiesce(store);
  assert.equal(tasksOf(store, "s1").length, 1, "a completed on-failure task is not restarted");
});

test("condition none never restarts", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1"]);
  await createService(store, "s1", { name: "web", restart: { condition: "none" } });
  const failed = await failLiveTask(harness, "s1");
  clock.advance(60_000);
  await quiesce(store);
  assert.deepEqual(
    tasksOf(store, "s1").map((task) => task.id),
    [failed.id],
  );
});

test("a pending restart delay survives a restart of the components, counted from the task's creation", async (t) => {
  const first = startControlLoops(t);
  const { store, clock } = first;
  await addNodes(store, ["n1"]);
  await createService(store, "s1", { name: "web", restart: { condition: "any", delayMs: 10_000 } });
  const failed = await failLiveTask(first, "s1");
  await advanceUntil(first, "replacement created", () => liveTasksOf(store, "s1").some((task) => task.id !== failed.id), { stepMs: 1, limitMs: 100 });
  const replacement = onlyLiveTask(store, "s1");
  clock.advance(3_000);
  await quiesce(store);
  await first.stop();

  // New instances of every component on the same store, 3 s into the 10 s delay.
  const second = startControlLoops(t, { store, clock });
  await quiesce(store);
  assert.equal(liveTasksOf(store, "s1").length, 1, "the restarted components create nothing new");
  await assertStartsAt(second, { taskId: replacement.id, dueAt: replacement.meta.createdAt + 10_000, clock });
});

test("orchestrators restarted on a fresh store restored from a snapshot carry on where the first left off", async (t) => {
  const first = startControlLoops(t);
  const { store, clock } = first;
  await addNodes(store, ["n1", "n2", "n3"]);
  await createService(store, "s1", { name: "web", replicas: 3, restart: { condition: "on-failure", delayMs: 5_000, maxAttempts: 1 } });
  await advanceUntil(first, "3 assigned", () => allAssigned(liveTasksOf(store, "s1"), 3));
  const [victim] = liveTasksOf(store, "s1");
  assert.ok(victim !== undefined);
  await setTaskState(store, victim.id, "failed", clock);
  await advanceUntil(first, "replacement created", () => tasksOf(store, "s1").length === 4, { stepMs: 1, limitMs: 100 });
  const replacement = liveTasksOf(store, "s1").find((task) => task.slot === victim.slot);
  assert.ok(replacement !== undefined && replacement.desiredState === "ready");
  await first.stop();

  const fresh = newStore(clock);
  await fresh.restore(Buffer.concat(await store.snapshot()));
  const second = startControlLoops(t, { store: fresh, clock });
  await quiesce(fresh);
  assert.equal(tasksOf(fresh, "s1").length, 4, "nothing was re-created: the slots and the delayed restart are in the store");
  await assertStartsAt(second, { taskId: replacement.id, dueAt: replacement.meta.createdAt + 5_000, clock });
  // The restart history is in the store too: the replacement failing is not restarted (maxAttempts 1).
  await setTaskState(fresh, replacement.id, "failed", clock);
  clock.advance(10_000);
  await quiesce(fresh);
  assert.equal(tasksOf(fresh, "s1").length, 4);
});
