import assert from "node:assert/strict";
import { test } from "node:test";

import { CancelledError, UnavailableError } from "../../src/common/errors.js";
import { createLogger } from "../../src/common/logger.js";
import { DesiredRole, roleRetryDelayMs, roleRetryDelayMsMax, roleRetryDelayMsMin, waitForDemotion, watchRole } from "../../src/daemon/role-change.js";
import { MemoryStore } from "../../src/manager/store/index.js";
import { systemClock } from "../../src/common/clock.js";
import { newNode } from "../manager/store/fixtures.js";

const logger = createLogger({ level: "silent", pretty: false });

/** Resolves on the next turns of the event loop, letting settled promises run their handlers. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test("the retry delay doubles from the minimum up to the maximum, and is zero without failures", () => {
  assert.equal(roleRetryDelayMs(0), 0);
  assert.equal(roleRetryDelayMs(1), roleRetryDelayMsMin);
  assert.equal(roleRetryDelayMs(2), roleRetryDelayMsMin * 2);
  assert.equal(roleRetryDelayMs(50), roleRetryDelayMsMax);
});

test("a desired-role waiter wakes only when its role is set, and at once when it already is", async () => {
  const desired = new DesiredRole();
  let woke = false;
  const waiting = desired.waitFor("manager", new AbortController().signal).then(() => {
    woke = true;
  });
  desired.set("worker");
  await settle();
  assert.equal(woke, false, "woke for the wrong role");
  desired.set("manager");
  await waiting;
  assert.equal(woke, true);
  await desired.waitFor("manager", new AbortController().signal);

  const abort = new AbortController();
  const cancelled = desired.waitFor("worker", abort.signal);
  abort.abort();
  await assert.rejects(cancelled, CancelledError);
});

test("watchRole acts on the wake event, retries a failing change with growing delays, then hands it over", async () => {
  const desired = new DesiredRole();
  const slept: number[] = [];
  const changes: string[] = [];
  let attempts = 0;
  const done = watchRole({
    wake: (signal) => desired.waitFor("manager", signal),
    probe: () => {
      attempts += 1;
      if (attempts < 3) throw new UnavailableError("the CA still issued a worker certificate");
      return `credentials ${attempts}`;
    },
    onChange: (change) => changes.push(change),
    failures: 0,
    sleep: (ms) => {
      slept.push(ms);
      return Promise.resolve();
    },
    logger,
    signal: new AbortController().signal,
  });
  await settle();
  assert.equal(attempts, 0, "probed before the role changed");
  desired.set("manager");
  await done;
  assert.equal(attempts, 3);
  assert.deepEqual(slept, [roleRetryDelayMsMin, roleRetryDelayMsMin * 2]);
  assert.deepEqual(changes, ["credentials 3"]);
});

test("watchRole backs off before its first try after earlier failures, and ends quietly on abort", async () => {
  const slept: number[] = [];
  const abort = new AbortController();
  let probed = false;
  const done = watchRole({
    wake: (signal) => new DesiredRole().waitFor("manager", signal),
    probe: () => {
      probed = true;
    },
    onChange: () => assert.fail("no change was due"),
    failures: 2,
    sleep: (ms) => {
      slept.push(ms);
      return Promise.resolve();
    },
    logger,
    signal: abort.signal,
  });
  await settle();
  abort.abort();
  await done;
  assert.deepEqual(slept, [roleRetryDelayMsMin * 2]);
  assert.equal(probed, false);
});

test("waitForDemotion resolves on the store change that makes this manager a worker", async () => {
  const store = new MemoryStore({ proposer: null, logger, clock: systemClock });
  await store.update((tx) => {
    const node = newNode("m1", "host1");
    tx.create("node", { ...node, spec: { ...node.spec, role: "manager" } });
    tx.create("node", newNode("w1", "host2"));
  });
  let demoted = false;
  const waiting = waitForDemotion({ store, nodeId: "m1" }, new AbortController().signal).then(() => {
    demoted = true;
  });
  await store.update((tx) => {
    const other = tx.get("node", "w1");
    assert.ok(other !== undefined);
    tx.update("node", { ...other, spec: { ...other.spec, labels: { a: "b" } } });
  });
  await settle();
  assert.equal(demoted, false, "another node's change woke it");
  await store.update((tx) => {
    const self = tx.get("node", "m1");
    assert.ok(self !== undefined);
    tx.update("node", { ...self, spec: { ...self.spec, role: "worker" } });
  });
  await waiting;
  // Already demoted: it resolves at once; an aborted wait (m2 is not in the store) rejects.
  await waitForDemotion({ store, nodeId: "m1" }, new AbortController().signal);
  const abort = new AbortController();
  const pending = waitForDemotion({ store, nodeId: "m2" }, abort.signal);
  abort.abort();
  await assert.rejects(pending, CancelledError);
});
