import assert from "node:assert/strict";
import { test } from "node:test";

import { CoalescedRunner } from "../../src/common/coalesced-runner.js";

test("calls made while a run waits to start fold into it, and that run reads the state of when it starts", async () => {
  let state = 0;
  const seen: number[] = [];
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started = (): void => undefined;
  const firstStarted = new Promise<void>((resolve) => {
    started = resolve;
  });
  let runs = 0;
  const runner = new CoalescedRunner(async () => {
    runs += 1;
    seen.push(state);
    if (runs === 1) {
      started();
      await released;
    }
  });
  const first = runner.run();
  await firstStarted;
  // While the first run is busy, five changes each ask for a run.
  const later: Promise<void>[] = [];
  for (let change = 1; change <= 5; change += 1) {
    state = change;
    later.push(runner.run());
  }
  release();
  await Promise.all([first, ...later]);
  assert.equal(runs, 2, "one more run for the five calls made while the first ran, not five");
  assert.deepEqual(seen, [0, 5]);
  await runner.idle();
});

test("a failed run rejects its callers and the next run still happens", async () => {
  let runs = 0;
  const runner = new CoalescedRunner(async () => {
    runs += 1;
    await Promise.resolve();
    if (runs === 1) throw new Error("apply failed");
  });
  await assert.rejects(runner.run(), /apply failed/);
  await runner.run();
  await runner.idle();
  assert.equal(runs, 2);
});
