import assert from "node:assert/strict";
import { test } from "node:test";

import { taskStates, type TaskState } from "../../../src/manager/objects/index.js";
import { decodeStoreChanges, encodeStoreChanges, type MemoryStore } from "../../../src/manager/store/index.js";
import { localStore, newNode, newService, newTask } from "./fixtures.js";

/** A small seeded PRNG (mulberry32), so a failure replays with the printed seed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

async function randomWrite(store: MemoryStore, random: () => number, step: number): Promise<void> {
  const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(random() * items.length)];
  const choice = random();
  await store.update((tx) => {
    const services = tx.find("service");
    const tasks = tx.find("task");
    if (choice < 0.15 || services.length === 0) {
      tx.create("service", newService(`s${step}`, `svc${step}`));
      tx.create("node", newNode(`n${step}`, `host${step % 3}`));
      return;
    }
    if (choice < 0.55) {
      const service = pick(services);
      if (service !== undefined) tx.create("task", newTask(`t${step}`, service, 1 + Math.floor(random() * 5)));
      return;
    }
    const task = pick(tasks);
    if (task === undefined) return;
    if (choice < 0.9) {
      const later = taskStates.slice(taskStates.indexOf(task.status.state));
      const state: TaskState = pick(later) ?? task.status.state;
      tx.update("task", { ...task, nodeId: pick(tx.find("node"))?.id ?? "", status: { ...task.status, state } });
      return;
    }
    tx.delete("task", task.id);
  });
}

test("a follower applying the encoded log ends with the leader's exact state", async () => {
  const seed = Number(process.env["SEED"] ?? Date.now() % 1_000_000);
  const random = seeded(seed);
  const follower = localStore();
  let index = 0;
  const leader: MemoryStore = localStore({
    proposer: {
      propose: (changes) => {
        index += 1 + Math.floor(random() * 3);
        const entry = encodeStoreChanges(changes);
        leader.applyCommitted(decodeStoreChanges(entry), index);
        follower.applyCommitted(decodeStoreChanges(entry), index);
        return Promise.resolve(index);
      },
    },
  });
  for (let step = 0; step < 300; step += 1) await randomWrite(leader, random, step);
  assert.equal(follower.version, leader.version, `seed ${seed}`);
  const leaderSnapshot = Buffer.concat(await leader.snapshot());
  assert.deepEqual(Buffer.concat(await follower.snapshot()), leaderSnapshot, `seed ${seed}: replicas diverged`);
  const restored = localStore();
  await restored.restore(leaderSnapshot);
  assert.deepEqual(Buffer.concat(await restored.snapshot()), leaderSnapshot, `seed ${seed}: restore is not exact`);
  assert.ok(leader.view((tx) => tx.find("task").length) > 0, `seed ${seed}: the run wrote tasks`);
});
