import assert from "node:assert/strict";
import { test } from "node:test";

import { systemClock } from "../../src/common/clock.js";
import { CancelledError } from "../../src/common/errors.js";

test("sleep rejects with CancelledError when its signal fires first", async () => {
  const controller = new AbortController();
  const started = Date.now();
  const sleeping = systemClock.sleep(10_000, { signal: controller.signal });
  controller.abort(new Error("shutdown"));
  await assert.rejects(sleeping, CancelledError);
  assert.ok(Date.now() - started < 1_000, "the timer was not cancelled");
});

test("sleep rejects at once on an already aborted signal", async () => {
  await assert.rejects(systemClock.sleep(10_000, { signal: AbortSignal.abort() }), CancelledError);
});

test("a cancelled timer never fires", async () => {
  let fired = false;
  const cancel = systemClock.setTimer(5, () => {
    fired = true;
  });
  cancel();
  await systemClock.sleep(30);
  assert.equal(fired, false);
});

test("a timer longer than Node's 24.8-day limit does not fire early", async () => {
  let fired = false;
  const cancel = systemClock.setTimer(90 * 24 * 3600 * 1000, () => {
    fired = true;
  });
  await systemClock.sleep(30);
  cancel();
  assert.equal(fired, false, "a 90-day timer fired within 30 ms");
});
