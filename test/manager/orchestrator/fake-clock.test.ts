import assert from "node:assert/strict";
import { test } from "node:test";

import { CancelledError } from "../../../src/common/errors.js";
import { FakeClock } from "../../helpers/fake-clock.js";

test("the fake clock runs due timers in due order, at their due time, including timers they set", () => {
  const clock = new FakeClock(1_000);
  const fired: string[] = [];
  clock.setTimer(30, () => fired.push(`b@${clock.now()}`));
  clock.setTimer(10, () => {
    fired.push(`a@${clock.now()}`);
    clock.setTimer(5, () => fired.push(`a2@${clock.now()}`));
  });
  const cancel = clock.setTimer(20, () => fired.push("cancelled"));
  clock.setTimer(30, () => fired.push(`c@${clock.now()}`));
  clock.setTimer(100, () => fired.push("later"));
  cancel();
  clock.advance(50);
  assert.deepEqual(fired, ["a@1010", "a2@1015", "b@1030", "c@1030"]);
  assert.equal(clock.now(), 1_050);
  assert.equal(clock.pendingTimers, 1);
  assert.equal(clock.nextDueAt(), 1_100);
});

test("the fake clock's sleep resolves on advance and rejects with CancelledError on abort", async () => {
  const clock = new FakeClock();
  const slept = clock.sleep(100);
  clock.advance(100);
  await slept;
  const controller = new AbortController();
  const aborted = clock.sleep(100, { signal: controller.signal });
  controller.abort();
  await assert.rejects(aborted, CancelledError);
  assert.equal(clock.pendingTimers, 0, "an aborted sleep leaves no timer behind");
  await assert.rejects(clock.sleep(1, { signal: controller.signal }), CancelledError);
});
