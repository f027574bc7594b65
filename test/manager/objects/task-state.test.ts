import assert from "node:assert/strict";
import { test } from "node:test";

import { isForwardTransition, isTerminalTaskState, taskStates } from "../../../src/manager/objects/index.js";

test("task states move only forward in the documented order", () => {
  assert.deepEqual(taskStates.slice(0, 8), ["new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"]);
  assert.equal(isForwardTransition("pending", "assigned"), true);
  assert.equal(isForwardTransition("running", "running"), true);
  assert.equal(isForwardTransition("running", "failed"), true);
  assert.equal(isForwardTransition("running", "pending"), false);
  assert.equal(isForwardTransition("complete", "running"), false);
});

test("the terminal set is complete, shutdown, failed, rejected, remove, orphaned", () => {
  assert.deepEqual(
    taskStates.filter((state) => isTerminalTaskState(state)),
    ["complete", "shutdown", "failed", "rejected", "remove", "orphaned"],
  );
});
