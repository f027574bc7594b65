import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { systemClock } from "../../src/common/clock.js";
import { NotFoundError } from "../../src/common/errors.js";
import type { Task, TaskState } from "../../src/manager/objects/index.js";
import { advanceTask, createAgent, createEngineAdapter, createEngineExecutor, taskContainerName, type TaskController } from "../../src/worker/index.js";
import { containerSkipReason, createEngineFixture } from "../engine/runtime/helpers.js";
import { defer, silentLogger, startManager, testNodeIdHeader } from "../manager/dispatcher/harness.js";
import { newService, newTask } from "../manager/store/fixtures.js";
import { waitFor } from "../helpers/wait.js";

const options = { skip: containerSkipReason() ?? false, timeout: 60_000 };

function busyboxTask(id: string, args: string[]): Task {
  const service = { ...newService("svc1", "web"), id: "svc1" };
  const task = { ...newTask(id, service, 1, "assigned"), meta: { version: 1, createdAt: 0, updatedAt: 0 }, nodeId: "node1" };
  return { ...task, spec: { ...task.spec, containerSpec: { ...task.spec.containerSpec, args, stopGracePeriodMs: 1_000 } } };
}

test("task containers are named like swarm's: service name, slot (or node for global tasks), task id", () => {
  const task = busyboxTask("task1", ["true"]);
  assert.equal(taskContainerName(task), "web.1.task1");
  assert.equal(taskContainerName({ ...task, slot: 0 }), "web.node1.task1");
  assert.equal(taskContainerName({ ...task, serviceName: "" }), "svc1.1.task1", "tasks stored without a name use the service id");
});

/** Advances until the task reaches `until` (or a terminal state), returning the states passed. */
async function advanceUntil(task: Task, controller: TaskController, until: TaskState): Promise<{ task: Task; states: TaskState[] }> {
  const states: TaskState[] = [];
  let current = task;
  for (let step = 0; step < 10 && current.status.state !== until; step += 1) {
    const status = await advanceTask(current, controller, { now: Date.now });
    if (status === current.status) break;
    current = { ...current, status };
    states.push(status.state);
  }
  return { task: current, states };
}

test("the engine executor runs a task's container with swarm labels and reports its exit code", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const pulls: string[] = [];
  const adapter = createEngineAdapter({
    containers: engine.containers,
    images: {
      inspect: (reference) => {
        if (reference !== "busybox") throw new NotFoundError(`no image ${reference}`);
        return { config: { healthcheck: null } };
      },
      pull: (reference) => {
        pulls.push(reference);
        return Promise.resolve();
      },
    },
  });
  const executor = createEngineExecutor(adapter, { nodeId: "node1", engineVersion: "test" });
  const task = busyboxTask("task1", ["sh", "-c", "exit 3"]);
  const controller = executor.controller(task);
  const { task: ended, states } = await advanceUntil(task, controller, "failed");
  assert.deepEqual(states, ["accepted", "preparing", "ready", "starting", "running", "failed"]);
  assert.equal(ended.status.err, "task: non-zero exit (3)");
  assert.deepEqual(pulls, [], "a local image is not pulled");
  const info = engine.containers.inspect(taskContainerName(task));
  assert.equal(info.record.labels["com.docker.swarm.task.id"], "task1");
  assert.equal(info.record.labels["com.docker.swarm.service.id"], "svc1");
  assert.equal(info.record.labels["com.docker.swarm.node.id"], "node1");
  assert.equal(ended.status.containerStatus?.containerId, info.record.id);
  await controller.remove({});
  assert.throws(() => engine.containers.inspect(taskContainerName(task)), NotFoundError);
  controller.close();
});

test("the engine executor stops a running task when it is wanted no more", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const adapter = createEngineAdapter({ containers: engine.containers, images: { inspect: () => ({ config: { healthcheck: null } }), pull: () => Promise.resolve() } });
  const executor = createEngineExecutor(adapter, { nodeId: "node1", engineVersion: "test" });
  const task = busyboxTask("task2", ["sleep", "60"]);
  const controller = executor.controller(task);
  const { task: running } = await advanceUntil(task, controller, "running");
  assert.equal(running.status.state, "running");
  assert.ok((running.status.containerStatus?.pid ?? 0) > 0);
  const stopped = await advanceTask({ ...running, desiredState: "shutdown" }, controller, { now: Date.now });
  assert.equal(stopped.state, "shutdown");
  assert.equal(engine.containers.inspect(taskContainerName(task)).state.status, "exited");
  await controller.remove({});
  controller.close();
});

test("an agent runs a service task as a real container and removes it when the task is shut down", options, async (t) => {
  const fixture = await createEngineFixture(t);
  const engine = await fixture.open();
  const manager = await startManager({ clock: systemClock, heartbeatPeriodMs: 200 });
  const dataDir = await mkdtemp(join(tmpdir(), "shoal-agent-engine-"));
  const adapter = createEngineAdapter({ containers: engine.containers, images: { inspect: () => ({ config: { healthcheck: null } }), pull: () => Promise.resolve() } });
  const agent = createAgent({
    dataDir,
    managers: [manager.address],
    executor: createEngineExecutor(adapter, { nodeId: "node1", engineVersion: "test" }),
    logger: silentLogger,
    callMetadata: { [testNodeIdHeader]: "node1" },
  });
  defer(t, () => rm(dataDir, { recursive: true, force: true }));
  defer(t, () => manager.close());
  defer(t, () => agent.stop());
  await agent.start();
  const task = busyboxTask("task3", ["sleep", "60"]);
  await manager.store.update((tx) => {
    tx.create("service", newService("svc1", "web"));
    tx.create("task", { ...task, id: "task3" });
  });
  const stateOf = (): TaskState | undefined => manager.store.view((tx) => tx.get("task", "task3"))?.status.state;
  await waitFor("the task to run", () => (stateOf() === "running" ? true : undefined), { timeoutMs: 30_000 });
  assert.equal(engine.containers.inspect(taskContainerName(task)).state.status, "running");
  await manager.store.update((tx) => {
    const stored = tx.get("task", "task3");
    assert.ok(stored !== undefined);
    tx.update("task", { ...stored, desiredState: "shutdown" });
  });
  await waitFor("the task to shut down", () => (stateOf() === "shutdown" ? true : undefined), { timeoutMs: 30_000 });
  await waitFor("the container to be removed", () => (engine.containers.list({ all: true }).length === 0 ? true : undefined), { timeoutMs: 30_000 });
  // Stopped here too, before the engine fixture's own cleanup closes the engine under it.
  await agent.stop();
});
