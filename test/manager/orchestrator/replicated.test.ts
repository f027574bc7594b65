import assert from "node:assert/strict";
import { test } from "node:test";

import { transactionChangesMax } from "../../../src/manager/store/index.js";

import {
  addNodes,
  advanceUntil,
  allAssigned,
  countByNode,
  createService,
  liveTasksOf,
  setReplicas,
  setTaskState,
  startControlLoops,
  tasksOf,
  updateNode,
} from "./fixtures.js";

test("a service with 6 replicas over 3 ready nodes gets 6 tasks in slots 1..6, assigned 2 per node", async (t) => {
  const harness = startControlLoops(t);
  const { store } = harness;
  await addNodes(store, ["n1", "n2", "n3"]);
  await createService(store, "s1", { name: "web", replicas: 6 });
  await advanceUntil(harness, "6 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 6));
  const tasks = liveTasksOf(store, "s1");
  assert.deepEqual(
    tasks.map((task) => task.slot).sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual([...countByNode(tasks).entries()].sort(), [
    ["n1", 2],
    ["n2", 2],
    ["n3", 2],
  ]);
  assert.ok(tasks.every((task) => task.attempt === 0 && task.specVersion === 1));
});

test("scaling up adds slots; scaling down drops non-running tasks first, evenly across nodes", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2", "n3"]);
  await createService(store, "s1", { name: "web", replicas: 6 });
  await advanceUntil(harness, "6 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 6));
  await setReplicas(store, "s1", 9);
  await advanceUntil(harness, "9 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 9));
  assert.deepEqual([...countByNode(liveTasksOf(store, "s1")).values()], [3, 3, 3]);

  // One running task per node; the other two on each node have not started yet.
  const running = new Set<string>();
  for (const nodeId of ["n1", "n2", "n3"]) {
    const [first] = liveTasksOf(store, "s1").filter((task) => task.nodeId === nodeId);
    assert.ok(first !== undefined);
    await setTaskState(store, first.id, "running", clock);
    running.add(first.id);
  }
  await setReplicas(store, "s1", 3);
  await advanceUntil(harness, "3 live tasks", () => liveTasksOf(store, "s1").length === 3);
  const live = liveTasksOf(store, "s1");
  assert.deepEqual(new Set(live.map((task) => task.id)), running, "the running tasks survive");
  assert.deepEqual([...countByNode(live).values()], [1, 1, 1], "one per node is left");
  const removed = tasksOf(store, "s1").filter((task) => !running.has(task.id));
  assert.equal(removed.length, 6);
  assert.ok(removed.every((task) => task.desiredState === "remove"), "scaled-down tasks are marked for removal");
});

test("when a node goes down its tasks are replaced on the other nodes, never above the replica count", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2", "n3"]);
  await createService(store, "s1", { name: "web", replicas: 6 });
  await advanceUntil(harness, "6 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 6));
  for (const task of liveTasksOf(store, "s1")) await setTaskState(store, task.id, "running", clock);
  const onDownNode = liveTasksOf(store, "s1").filter((task) => task.nodeId === "n1");
  assert.equal(onDownNode.length, 2);

  await updateNode(store, "n1", (node) => ({ ...node, status: { ...node.status, state: "down" } }));
  await advanceUntil(harness, "replacements assigned", () => {
    const live = liveTasksOf(store, "s1");
    return live.length === 6 && live.every((task) => task.nodeId !== "" && task.nodeId !== "n1");
  });
  const live = liveTasksOf(store, "s1");
  assert.deepEqual([...countByNode(live).entries()].sort(), [
    ["n2", 3],
    ["n3", 3],
  ]);
  for (const old of onDownNode) {
    const stored = store.view((tx) => tx.get("task", old.id));
    assert.equal(stored?.desiredState, "shutdown", "the stranded task is told to shut down");
    const replacement = live.find((task) => task.slot === old.slot);
    assert.equal(replacement?.attempt, 1, "the replacement takes the same slot");
    assert.equal(replacement.desiredState, "running", "a node loss is no crash: the restart delay does not hold the replacement back");
  }
  // Converged: more fake time changes nothing.
  const version = store.version;
  clock.advance(2_000);
  await advanceUntil(harness, "quiet", () => true);
  assert.equal(liveTasksOf(store, "s1").length, 6);
  assert.equal(store.version, version, "nothing more is written once converged");
});

test("deleting a service marks all its tasks for removal; the reaper deletes each once nothing runs it", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2"]);
  await createService(store, "s1", { name: "web", replicas: 4 });
  await createService(store, "s2", { name: "nowhere", replicas: 2, constraints: ["node.labels.zone==mars"] });
  await advanceUntil(harness, "4 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 4));
  await advanceUntil(harness, "2 tasks pending", () => tasksOf(store, "s2").filter((task) => task.status.state === "pending").length === 2);
  for (const task of liveTasksOf(store, "s1")) await setTaskState(store, task.id, "running", clock);
  await store.update((tx) => {
    tx.delete("service", "s1");
    tx.delete("service", "s2");
  });
  await advanceUntil(harness, "tasks marked", () => tasksOf(store, "s1").every((task) => task.desiredState === "remove"));
  await advanceUntil(harness, "never-placed tasks deleted", () => tasksOf(store, "s2").length === 0);
  clock.advance(10_000);
  await advanceUntil(harness, "quiet", () => true);
  assert.equal(tasksOf(store, "s1").length, 4, "running tasks stay until their worker reports them ended");
  for (const task of tasksOf(store, "s1")) await setTaskState(store, task.id, "shutdown", clock);
  await advanceUntil(harness, "all deleted", () => tasksOf(store, "s1").length === 0);
});

test("a service larger than one transaction is created, placed and scaled to zero in batches", async (t) => {
  const harness = startControlLoops(t);
  const { store } = harness;
  const replicas = transactionChangesMax * 3 + 7;
  await addNodes(store, ["n1", "n2", "n3", "n4", "n5"]);
  await createService(store, "s1", { name: "big", replicas });
  await advanceUntil(harness, `${replicas} tasks assigned`, () => allAssigned(liveTasksOf(store, "s1"), replicas));
  const counts = [...countByNode(liveTasksOf(store, "s1")).values()];
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `spread evenly: ${counts.join(", ")}`);
  await setReplicas(store, "s1", 0);
  await advanceUntil(harness, "no live tasks", () => liveTasksOf(store, "s1").length === 0);
  assert.equal(tasksOf(store, "s1").length, replicas, "assigned tasks wait for their worker before the reaper deletes them");
});

test("draining a node moves its replicated tasks to the other nodes; pausing one only stops new placements", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2", "n3"]);
  await createService(store, "s1", { name: "web", replicas: 3 });
  await advanceUntil(harness, "3 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 3));
  await updateNode(store, "n3", (node) => ({ ...node, spec: { ...node.spec, availability: "pause" } }));
  await updateNode(store, "n1", (node) => ({ ...node, spec: { ...node.spec, availability: "drain" } }));
  await advanceUntil(harness, "moved off n1", () => allAssigned(liveTasksOf(store, "s1"), 3) && liveTasksOf(store, "s1").every((task) => task.nodeId !== "n1"));
  assert.deepEqual([...countByNode(liveTasksOf(store, "s1")).entries()].sort(), [
    ["n2", 2],
    ["n3", 1],
  ], "the paused node keeps its task and gets no new one");
  clock.advance(1_000);
  await advanceUntil(harness, "quiet", () => true);
  assert.equal(liveTasksOf(store, "s1").length, 3);
});
