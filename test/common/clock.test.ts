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
