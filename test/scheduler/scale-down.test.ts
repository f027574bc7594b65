import assert from "node:assert/strict";
import { test } from "node:test";

import { pickTasksToRemove } from "../../src/scheduler/index.js";

function task(id: string, nodeId: string, slot: number, state = "running"): { id: string; nodeId: string; slot: number; status: { state: string } } {
  return { id, nodeId, slot, status: { state } };
}

test("scale-down removes from the most loaded nodes first", () => {
  const tasks = [task("a1", "a", 1), task("a2", "a", 2), task("a3", "a", 3), task("b1", "b", 4), task("b2", "b", 5), task("c1", "c", 6)];
  const picked = pickTasksToRemove(tasks, 3);
  assert.equal(picked.length, 3);
  assert.equal(picked[0], "a3", "node a holds the most; its highest slot goes first");
  const remaining = tasks.filter((item) => !picked.includes(item.id));
  const perNode = new Map<string, number>();
  for (const item of remaining) perNode.set(item.nodeId, (perNode.get(item.nodeId) ?? 0) + 1);
  assert.deepEqual([...perNode.values()].sort(), [1, 1, 1], "what remains is balanced");
});

test("scale-down removes unassigned, then non-running tasks before running ones", () => {
  const tasks = [task("a1", "a", 1), task("a2", "a", 2, "preparing"), task("p", "", 3, "pending"), task("b1", "b", 4)];
  assert.deepEqual(pickTasksToRemove(tasks, 2), ["p", "a2"]);
});

test("ties between equally loaded nodes go to the node with more tasks overall", () => {
  const tasks = [task("a1", "a", 1), task("b1", "b", 2)];
  assert.deepEqual(pickTasksToRemove(tasks, 1, { nodeTaskCount: (nodeId) => (nodeId === "b" ? 10 : 1) }), ["b1"]);
  assert.deepEqual(pickTasksToRemove(tasks, 5).sort(), ["a1", "b1"], "never more than there are");
});
