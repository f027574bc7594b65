import assert from "node:assert/strict";
import { test } from "node:test";

import { CancelledError } from "../../src/common/errors.js";
import type { Task, TaskState } from "../../src/manager/objects/index.js";
import { advanceTask } from "../../src/worker/index.js";
import { newService, newTask } from "../manager/store/fixtures.js";
import { FakeEngine } from "./fake-executor.js";

const now = (): number => 1_000;

function task(state: TaskState, desiredState: TaskState = "running"): Task {
  return { ...newTask("t1", { ...newService("s1", "web"), id: "s1" }, 1, state), meta: { version: 1, createdAt: 0, updatedAt: 0 }, nodeId: "n1", desiredState };
}

test("advanceTask moves a task one state at a time from assigned to complete", async () => {
  const engine = new FakeEngine();
  let current = task("assigned");
  const controller = engine.executor().controller(current);
  const states: TaskState[] = [];
  const ended = (): boolean => ["complete", "failed", "rejected", "shutdown"].includes(current.status.state);
  for (let step = 0; step < 10 && !ended(); step += 1) {
    if (current.status.state === "running") setImmediate(() => engine.exit("t1", 0));
    current = { ...current, status: await advanceTask(current, controller, { now }) };
    states.push(current.status.state);
  }
  assert.deepEqual(states, ["accepted", "preparing", "ready", "starting", "running", "complete"]);
  assert.deepEqual(engine.callsOf("t1"), ["prepare", "start", "wait"]);
  assert.equal(current.status.containerStatus?.exitCode, 0);
  const again = await advanceTask(current, controller, { now });
  assert.equal(again, current.status, "a terminal task has no further step");
});

test("advanceTask turns controller failures into rejected and failed statuses", async () => {
  const engine = new FakeEngine();
  engine.failPrepare.add("t1");
  const controller = engine.executor().controller(task("preparing"));
  const rejected = await advanceTask(task("preparing"), controller, { now });
  assert.equal(rejected.state, "rejected");
  assert.match(rejected.err, /image not found/);

  engine.failPrepare.clear();
  await controller.prepare({});
  await controller.start({});
  setImmediate(() => engine.exit("t1", 3));
  const failed = await advanceTask(task("running"), controller, { now });
  assert.equal(failed.state, "failed");
  assert.equal(failed.err, "task: non-zero exit (3)");
  assert.equal(failed.containerStatus?.exitCode, 3);
});

test("advanceTask shuts a running task down when it is wanted no more, and honours cancellation", async () => {
  const engine = new FakeEngine();
  const controller = engine.executor().controller(task("running"));
  await controller.prepare({});
  await controller.start({});
  const abort = new AbortController();
  const waiting = advanceTask(task("running"), controller, { now, signal: abort.signal });
  abort.abort();
  await assert.rejects(waiting, CancelledError);
  const stopped = await advanceTask(task("running", "shutdown"), controller, { now });
  assert.equal(stopped.state, "shutdown");
  assert.deepEqual(engine.callsOf("t1").slice(-1), ["shutdown"]);
  const never = await advanceTask(task("accepted", "shutdown"), engine.executor().controller(task("accepted")), { now });
  assert.equal(never.state, "shutdown");
});

test("advanceTask stops at the desired state when the manager wants the task only prepared", async () => {
  const engine = new FakeEngine();
  const controller = engine.executor().controller(task("ready"));
  const prepared = task("ready", "ready");
  assert.equal(await advanceTask(prepared, controller, { now }), prepared.status, "a delayed restart is not started");
  const preparing = await advanceTask(task("preparing", "ready"), controller, { now });
  assert.equal(preparing.state, "ready", "it may still be prepared");
  const starting = await advanceTask(task("ready", "running"), controller, { now });
  assert.equal(starting.state, "starting", "raising the desired state lets it go on");
});
