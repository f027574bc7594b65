import assert from "node:assert/strict";
import { test } from "node:test";

import { clusterDefaults } from "../../../src/manager/objects/index.js";
import { addNodes, advanceUntil, createService, liveTasksOf, setTaskState, startControlLoops, tasksOf } from "./fixtures.js";

async function failSlotRepeatedly(harness: ReturnType<typeof startControlLoops>, serviceId: string, failures: number): Promise<string[]> {
  const { store, clock } = harness;
  const failed: string[] = [];
  for (let round = 0; round < failures; round += 1) {
    await advanceUntil(harness, "live task assigned", () => liveTasksOf(store, serviceId).some((task) => task.status.state === "assigned" && !failed.includes(task.id)));
    const [task] = liveTasksOf(store, serviceId);
    assert.ok(task !== undefined);
    await setTaskState(store, task.id, "failed", clock);
    failed.push(task.id);
  }
  return failed;
}

test("the reaper keeps the cluster's history limit (5 by default) of ended tasks per slot, newest first", async (t) => {
  const harness = startControlLoops(t);
  const { store } = harness;
  await addNodes(store, ["n1"]);
  await createService(store, "s1", { name: "crashy", restart: { condition: "any" } });
  const failed = await failSlotRepeatedly(harness, "s1", 8);
  await advanceUntil(harness, "history trimmed", () => tasksOf(store, "s1").length === clusterDefaults.taskHistoryRetentionLimit + 1);
  const kept = new Set(tasksOf(store, "s1").map((task) => task.id));
  assert.deepEqual(
    failed.filter((id) => kept.has(id)),
    failed.slice(-5),
    "the 5 newest ended tasks are kept",
  );
  assert.equal(liveTasksOf(store, "s1").length, 1);
});

test("the history limit comes from the cluster spec", async (t) => {
  const harness = startControlLoops(t);
  const { store } = harness;
  await store.update((tx) =>
    tx.create("cluster", {
      id: "c1",
      spec: { ...clusterDefaults, name: "default", labels: {}, taskHistoryRetentionLimit: 2 },
      joinTokens: { worker: "w", manager: "m" },
    }),
  );
  await addNodes(store, ["n1"]);
  await createService(store, "s1", { name: "crashy", restart: { condition: "any" } });
  await failSlotRepeatedly(harness, "s1", 4);
  await advanceUntil(harness, "history trimmed to 2", () => tasksOf(store, "s1").length === 3);
});
