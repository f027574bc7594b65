import assert from "node:assert/strict";
import diagnosticsChannel from "node:diagnostics_channel";
import { test } from "node:test";

import type { ReconciledMessage } from "../../../src/manager/orchestrator/index.js";
import { UnavailableError } from "../../../src/common/errors.js";
import { MemoryStore, type Proposer } from "../../../src/manager/store/index.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { advanceUntil, allAssigned, createService, liveTasksOf, makeNode, silentLogger, startControlLoops } from "./fixtures.js";

function isReconciledMessage(value: unknown): value is ReconciledMessage {
  return typeof value === "object" && value !== null && "component" in value && "scope" in value && "objects" in value;
}

test("a component that falls behind the store's watch queue re-reads everything and still converges", async (t) => {
  const clock = new FakeClock();
  const store = new MemoryStore({ proposer: null, logger: silentLogger, clock, watchQueueEventsMax: 4 });
  const messages: ReconciledMessage[] = [];
  const channel = diagnosticsChannel.channel("shoal:orchestrator:reconciled");
  const listener = (message: unknown): void => {
    if (isReconciledMessage(message)) messages.push(message);
  };
  channel.subscribe(listener);
  t.after(() => channel.unsubscribe(listener));
  const harness = startControlLoops(t, { store, clock });
  await createService(store, "s1", { name: "web", replicas: 6 });
  // One transaction with more events than a watcher may queue.
  await store.update((tx) => {
    for (let index = 1; index <= 10; index += 1) tx.create("node", makeNode(`n${index}`));
  });
  await advanceUntil(harness, "6 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 6), { limitMs: 30_000 });
  const fullPasses = messages.filter((message) => message.component === "replicated-orchestrator" && message.scope === "all");
  assert.ok(fullPasses.length >= 2, `the orchestrator re-read the store after falling behind (${fullPasses.length} full passes)`);
  assert.equal(new Set(liveTasksOf(store, "s1").map((task) => task.nodeId)).size, 6, "spread over 6 of the 10 nodes");
});

test("refused proposals (leadership moving) are retried after a delay until the components converge", async (t) => {
  const clock = new FakeClock();
  let refusalsLeft = 0;
  let refused = 0;
  const proposer: Proposer = {
    propose: (changes) => {
      if (refusalsLeft > 0) {
        refusalsLeft -= 1;
        refused += 1;
        return Promise.reject(new UnavailableError("not the leader"));
      }
      const index = store.version + 1;
      store.applyCommitted(changes, index);
      return Promise.resolve(index);
    },
  };
  const store = new MemoryStore({ proposer, logger: silentLogger, clock });
  const harness = startControlLoops(t, { store, clock });
  await store.update((tx) => {
    for (const id of ["n1", "n2"]) tx.create("node", makeNode(id));
  });
  await advanceUntil(harness, "start-up passes done", () => true);
  await createService(store, "s1", { name: "web", replicas: 4 });
  // The components react to that commit after this line: their next proposals are refused.
  refusalsLeft = 3;
  await advanceUntil(harness, "4 tasks assigned", () => allAssigned(liveTasksOf(store, "s1"), 4), { limitMs: 30_000 });
  assert.equal(refused, 3, "the components' own proposals were refused and retried");
  assert.equal(liveTasksOf(store, "s1").length, 4);
});
