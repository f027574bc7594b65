import assert from "node:assert/strict";
import { test } from "node:test";

import type { MemoryStore } from "../../../src/manager/store/index.js";
import { addNodes, advanceUntil, createService, liveTasksOf, makeNode, setTaskState, startControlLoops, tasksOf, updateNode } from "./fixtures.js";

/** The nodes of the service's live tasks, sorted. */
function liveNodes(store: MemoryStore, serviceId: string): string[] {
  return liveTasksOf(store, serviceId)
    .map((task) => task.nodeId)
    .sort();
}

function assignedEverywhere(store: MemoryStore, serviceId: string, nodeIds: readonly string[]): boolean {
  const live = liveTasksOf(store, serviceId);
  return JSON.stringify(liveNodes(store, serviceId)) === JSON.stringify([...nodeIds].sort()) && live.every((task) => task.status.state === "assigned");
}

test("a global service runs one task per eligible node and follows node add, drain, pause and removal", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2", "n3"]);
  await createService(store, "g1", { name: "agent", global: true });
  await advanceUntil(harness, "one task per node", () => assignedEverywhere(store, "g1", ["n1", "n2", "n3"]));
  assert.ok(liveTasksOf(store, "g1").every((task) => task.slot === 0));

  await addNodes(store, ["n4"]);
  await advanceUntil(harness, "the new node gets a task", () => assignedEverywhere(store, "g1", ["n1", "n2", "n3", "n4"]));

  const [onN1] = liveTasksOf(store, "g1").filter((task) => task.nodeId === "n1");
  assert.ok(onN1 !== undefined);
  await updateNode(store, "n1", (node) => ({ ...node, spec: { ...node.spec, availability: "drain" } }));
  await advanceUntil(harness, "drained node loses its task", () => JSON.stringify(liveNodes(store, "g1")) === JSON.stringify(["n2", "n3", "n4"]));
  assert.equal(store.view((tx) => tx.get("task", onN1.id))?.desiredState, "shutdown");

  // Pause: the task stays, and a new paused node gets none.
  await updateNode(store, "n2", (node) => ({ ...node, spec: { ...node.spec, availability: "pause" } }));
  await store.update((tx) => tx.create("node", makeNode("n5", { availability: "pause" })));
  clock.advance(1_000);
  await advanceUntil(harness, "quiet", () => true);
  assert.deepEqual(liveNodes(store, "g1"), ["n2", "n3", "n4"]);

  // Down: the task is left alone (it is that node's), and nothing replaces it elsewhere.
  await updateNode(store, "n3", (node) => ({ ...node, status: { ...node.status, state: "down" } }));
  clock.advance(1_000);
  await advanceUntil(harness, "quiet", () => true);
  assert.deepEqual(liveNodes(store, "g1"), ["n2", "n3", "n4"]);

  const [onN4] = liveTasksOf(store, "g1").filter((task) => task.nodeId === "n4");
  assert.ok(onN4 !== undefined);
  await setTaskState(store, onN4.id, "running", clock);
  await store.update((tx) => tx.delete("node", "n4"));
  await advanceUntil(harness, "the removed node's task is deleted", () => tasksOf(store, "g1").every((task) => task.nodeId !== "n4"));
  assert.deepEqual(liveNodes(store, "g1"), ["n2", "n3"]);
});

test("a global service follows constraint changes: nodes that stop matching lose their task", async (t) => {
  const harness = startControlLoops(t);
  const { store } = harness;
  await store.update((tx) => {
    tx.create("node", makeNode("n1", { labels: { zone: "east" } }));
    tx.create("node", makeNode("n2", { labels: { zone: "west" } }));
    tx.create("node", makeNode("n3", { labels: { zone: "east" } }));
  });
  await createService(store, "g1", { name: "agent", global: true, constraints: ["node.labels.zone==east"] });
  await advanceUntil(harness, "east nodes only", () => assignedEverywhere(store, "g1", ["n1", "n3"]));

  await updateNode(store, "n3", (node) => ({ ...node, spec: { ...node.spec, labels: { zone: "west" } } }));
  await advanceUntil(harness, "n3 no longer matches", () => JSON.stringify(liveNodes(store, "g1")) === JSON.stringify(["n1"]));
  await updateNode(store, "n2", (node) => ({ ...node, spec: { ...node.spec, labels: { zone: "east" } } }));
  await advanceUntil(harness, "n2 matches now", () => assignedEverywhere(store, "g1", ["n1", "n2"]));
});

test("a failed global task is restarted on its own node", async (t) => {
  const harness = startControlLoops(t);
  const { store, clock } = harness;
  await addNodes(store, ["n1", "n2"]);
  await createService(store, "g1", { name: "agent", global: true, restart: { condition: "on-failure" } });
  await advanceUntil(harness, "one task per node", () => assignedEverywhere(store, "g1", ["n1", "n2"]));
  const [onN2] = liveTasksOf(store, "g1").filter((task) => task.nodeId === "n2");
  assert.ok(onN2 !== undefined);
  await setTaskState(store, onN2.id, "failed", clock);
  await advanceUntil(harness, "restarted on n2", () => assignedEverywhere(store, "g1", ["n1", "n2"]) && liveTasksOf(store, "g1").every((task) => task.id !== onN2.id));
  const [replacement] = liveTasksOf(store, "g1").filter((task) => task.nodeId === "n2");
  assert.equal(replacement?.attempt, 1);
  assert.equal(tasksOf(store, "g1").length, 3);
});
