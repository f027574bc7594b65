import assert from "node:assert/strict";
import { test } from "node:test";

import type { Service, ServiceSpec, Task, TaskHealth } from "../../../src/manager/objects/index.js";
import { isTaskCurrent } from "../../../src/manager/orchestrator/index.js";
import type { MemoryStore } from "../../../src/manager/store/index.js";
import type { FakeClock } from "../../helpers/fake-clock.js";

import { addNodes, createService, liveTasksOf, quiesce, startControlLoops, tasksOf, updateNode, type Harness } from "./fixtures.js";

/**
 * What the workers of the fake cluster do with a task, by its env: "FAIL=1" exits with
 * code 1 as soon as it runs; "CRASH_AFTER=MS" exits with code 1 after running that long;
 * "HEALTH=starting|unhealthy|healthy" reports that health.
 */
interface FakeWorkers {
  /** Moves every task one step the way a worker would; returns whether anything changed. */
  step(): Promise<boolean>;
}

function envOf(task: Task, key: string): string | undefined {
  const entry = task.spec.containerSpec.env.find((item) => item.startsWith(`${key}=`));
  return entry?.slice(key.length + 1);
}

function fakeWorkers(store: MemoryStore, clock: FakeClock): FakeWorkers {
  const stopMs = 200;
  const stopAskedAt = new Map<string, number>();
  return {
    // A stop takes stopMs of fake time (a start is instant), so an orchestrator that starts
    // a stop-first task before its old one stopped is caught running both.
    async step() {
      let changed = false;
      await store.update((tx) => {
        for (const task of tx.find("task")) {
          const now = clock.now();
          const { state } = task.status;
          const stopping = task.desiredState !== "running" && (state === "running" || state === "assigned");
          if (stopping && !stopAskedAt.has(task.id)) stopAskedAt.set(task.id, now);
          const crashAfter = envOf(task, "CRASH_AFTER");
          if (stopping && now - (stopAskedAt.get(task.id) ?? now) >= stopMs) {
            tx.update("task", { ...task, status: { ...task.status, state: "shutdown", timestamp: now, message: "stopped" } });
            changed = true;
          } else if (task.desiredState === "running" && state === "running" && crashAfter !== undefined && now - task.status.timestamp >= Number(crashAfter)) {
            const status = { ...task.status, state: "failed" as const, timestamp: now, err: "task: non-zero exit (1)", containerStatus: { containerId: "c", pid: 0, exitCode: 1 } };
            tx.update("task", { ...task, status });
            changed = true;
          } else if (task.desiredState === "running" && state === "assigned") {
            const fail = envOf(task, "FAIL") === "1";
            const health = envOf(task, "HEALTH") as TaskHealth | undefined;
            const status = fail
              ? { ...task.status, state: "failed" as const, timestamp: now, err: "task: non-zero exit (1)", containerStatus: { containerId: "c", pid: 0, exitCode: 1 } }
              : { ...task.status, state: "running" as const, timestamp: now, message: "started", ...(health === undefined ? {} : { health }) };
            tx.update("task", { ...task, status });
            changed = true;
          }
        }
      });
      return changed;
    },
  };
}

/** Advances fake time in steps, running the fake workers and sampling, until `probe` holds. */
async function runUntil(
  harness: Harness,
  workers: FakeWorkers,
  options: { what: string; probe: () => boolean; sample?: () => void; stepMs?: number; limitMs?: number },
): Promise<void> {
  const stepMs = options.stepMs ?? 100;
  const limitMs = options.limitMs ?? 60_000;
  const start = harness.clock.now();
  for (;;) {
    await quiesce(harness.store);
    options.sample?.();
    if (options.probe()) return;
    if (!(await workers.step())) {
      if (harness.clock.now() - start >= limitMs) throw new Error(`${options.what}: not reached within ${limitMs} ms of fake time`);
      harness.clock.advance(stepMs);
    }
  }
}

function serviceOf(store: MemoryStore, id: string): Service {
  const service = store.view((tx) => tx.get("service", id));
  assert.ok(service !== undefined);
  return service;
}

/** What the control API does on `service update`: a new spec, the old one kept, the status cleared. */
async function updateSpec(store: MemoryStore, id: string, change: (spec: ServiceSpec) => ServiceSpec): Promise<void> {
  await store.update((tx) => {
    const service = tx.get("service", id);
    assert.ok(service !== undefined);
    const { updateStatus: _cleared, ...rest } = service;
    tx.update("service", { ...rest, spec: change(service.spec), previousSpec: service.spec, specVersion: service.specVersion + 1 });
  });
}

function withEnv(env: string[], config: Partial<ServiceSpec["updateConfig"]> = {}): (spec: ServiceSpec) => ServiceSpec {
  return (spec) => ({
    ...spec,
    taskTemplate: { ...spec.taskTemplate, containerSpec: { ...spec.taskTemplate.containerSpec, env } },
    updateConfig: { ...spec.updateConfig, ...config },
  });
}

function runningCount(store: MemoryStore, id: string): number {
  return tasksOf(store, id).filter((task) => task.status.state === "running").length;
}

function allCurrentAndRunning(store: MemoryStore, id: string, replicas: number): boolean {
  const service = serviceOf(store, id);
  const live = liveTasksOf(store, id);
  return live.length === replicas && live.every((task) => isTaskCurrent(task, service) && task.status.state === "running");
}

async function startedService(t: Parameters<typeof startControlLoops>[0], options: { replicas: number; nodes?: string[] }): Promise<{ harness: Harness; workers: FakeWorkers }> {
  const harness = startControlLoops(t);
  const workers = fakeWorkers(harness.store, harness.clock);
  await addNodes(harness.store, options.nodes ?? ["n1", "n2", "n3"]);
  await createService(harness.store, "s1", { name: "web", replicas: options.replicas });
  await runUntil(harness, workers, { what: "all running", probe: () => runningCount(harness.store, "s1") === options.replicas });
  return { harness, workers };
}

for (const { order, floor } of [
  { order: "start-first", floor: 12 },
  { order: "stop-first", floor: 9 },
] as const) {
  test(`12 replicas, parallelism 3, ${order}: every slot ends on the new spec, never fewer than ${floor} running, completed after the monitor`, async (t) => {
    const { harness, workers } = await startedService(t, { replicas: 12 });
    const { store, clock } = harness;
    await updateSpec(store, "s1", withEnv(["V=2"], { parallelism: 3, order, monitorMs: 5_000 }));
    let lowest = Number.POSITIVE_INFINITY;
    let highestInFlight = 0;
    let overlaps = 0;
    const sample = (): void => {
      lowest = Math.min(lowest, runningCount(store, "s1"));
      const service = serviceOf(store, "s1");
      // Stop-first: a slot's new task never runs while its old one still does.
      const running = tasksOf(store, "s1").filter((task) => task.status.state === "running");
      for (const task of running) if (isTaskCurrent(task, service) && running.some((other) => other.slot === task.slot && !isTaskCurrent(other, service))) overlaps += 1;
      const starting = liveTasksOf(store, "s1").filter((task) => isTaskCurrent(task, service) && task.status.state !== "running").length;
      highestInFlight = Math.max(highestInFlight, starting);
    };
    await runUntil(harness, workers, { what: "all on the new spec", probe: () => allCurrentAndRunning(store, "s1", 12), sample });
    assert.ok(lowest >= floor, `running tasks dropped to ${lowest}`);
    assert.equal(highestInFlight, 3, "three slots roll at once");
    if (order === "stop-first") assert.equal(overlaps, 0, "a new task started before its slot's old task stopped");
    else assert.ok(overlaps > 0, "start-first runs old and new side by side");
    assert.equal(serviceOf(store, "s1").updateStatus?.state, "updating", "the monitor window is still open");
    const allDoneAt = clock.now();
    await runUntil(harness, workers, { what: "completed", probe: () => serviceOf(store, "s1").updateStatus?.state === "completed", sample });
    assert.ok(clock.now() - allDoneAt >= 4_900, "completion waits out the monitor window");
    assert.ok(lowest >= floor);
    assert.equal(liveTasksOf(store, "s1").length, 12);
  });
}

test("a new spec whose tasks exit 1 pauses the update with a message naming the failure; the other slots keep the old spec running", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 6 });
  const { store, clock } = harness;
  const started = clock.now();
  await updateSpec(store, "s1", withEnv(["FAIL=1"], { parallelism: 2, monitorMs: 5_000 }));
  await runUntil(harness, workers, { what: "paused", probe: () => serviceOf(store, "s1").updateStatus?.state === "paused" });
  assert.ok(clock.now() - started < 5_000, "paused within the monitor window");
  const status = serviceOf(store, "s1").updateStatus;
  assert.match(status?.message ?? "", /update paused: \d+ of 6 updated tasks failed .*task \w+ \(slot \d+ on node host-n\d \(n\d\)\) failed: exit code 1: task: non-zero exit \(1\)/);
  clock.advance(30_000);
  await quiesce(store);
  const service = serviceOf(store, "s1");
  const oldRunning = liveTasksOf(store, "s1").filter((task) => !isTaskCurrent(task, service) && task.status.state === "running");
  assert.equal(oldRunning.length, 4, "no slot beyond the first batch was touched");
  assert.equal(service.updateStatus?.state, "paused", "a paused update stays paused");
});

test("failure action rollback: the service goes back to the previous spec with the rollback config, and says why", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 4 });
  const { store } = harness;
  await updateSpec(store, "s1", withEnv(["FAIL=1"], { parallelism: 1, failureAction: "rollback", monitorMs: 1_000 }));
  await runUntil(harness, workers, { what: "rollback completed", probe: () => serviceOf(store, "s1").updateStatus?.state === "rollback_completed" });
  const service = serviceOf(store, "s1");
  assert.deepEqual(service.spec.taskTemplate.containerSpec.env, [], "back on the first spec");
  assert.deepEqual(service.previousSpec?.taskTemplate.containerSpec.env, ["FAIL=1"]);
  assert.match(service.updateStatus?.message ?? "", /rollback completed; update rolled back: 1 of 4 updated tasks failed .*exit code 1/);
  await runUntil(harness, workers, { what: "all back", probe: () => allCurrentAndRunning(store, "s1", 4) });
});

test("delay: with parallelism 1 and a 10 s delay the next slot starts 10 s after the previous one runs", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 3 });
  const { store } = harness;
  await updateSpec(store, "s1", withEnv(["V=2"], { parallelism: 1, delayMs: 10_000, monitorMs: 0 }));
  const createdAt: number[] = [];
  const sample = (): void => {
    const service = serviceOf(store, "s1");
    for (const task of liveTasksOf(store, "s1")) if (isTaskCurrent(task, service) && !createdAt.includes(task.meta.createdAt)) createdAt.push(task.meta.createdAt);
  };
  await runUntil(harness, workers, { what: "completed", probe: () => serviceOf(store, "s1").updateStatus?.state === "completed", sample });
  assert.equal(createdAt.length, 3);
  for (let index = 1; index < createdAt.length; index += 1) {
    const gap = (createdAt[index] ?? 0) - (createdAt[index - 1] ?? 0);
    assert.ok(gap >= 10_000 && gap < 11_000, `gap ${gap} ms`);
  }
});

test("a new task with a health check counts only once healthy", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 2 });
  const { store, clock } = harness;
  await updateSpec(store, "s1", withEnv(["HEALTH=starting"], { parallelism: 1, order: "start-first", monitorMs: 0 }));
  await runUntil(harness, workers, { what: "first new task running", probe: () => liveTasksOf(store, "s1").some((task) => envOf(task, "HEALTH") === "starting" && task.status.state === "running") });
  clock.advance(20_000);
  await quiesce(store);
  let live = liveTasksOf(store, "s1");
  assert.equal(live.length, 3, "the old task of the slot keeps running while the new one is not healthy");
  assert.equal(live.filter((task) => envOf(task, "HEALTH") === "starting").length, 1, "the next slot waits");
  const starting = live.find((task) => envOf(task, "HEALTH") === "starting");
  assert.ok(starting !== undefined);
  await store.update((tx) => {
    const task = tx.get("task", starting.id);
    assert.ok(task !== undefined);
    tx.update("task", { ...task, status: { ...task.status, timestamp: clock.now(), health: "healthy" } });
  });
  await runUntil(harness, workers, { what: "second slot started", probe: () => liveTasksOf(store, "s1").filter((task) => envOf(task, "HEALTH") === "starting").length === 2 });
  live = liveTasksOf(store, "s1");
  assert.ok(!live.some((task) => task.slot === starting.slot && task.id !== starting.id), "the healthy task's old task was stopped");
});

test("an unhealthy new task is an update failure", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 2 });
  const { store } = harness;
  await updateSpec(store, "s1", withEnv(["HEALTH=unhealthy"], { parallelism: 1, order: "start-first" }));
  await runUntil(harness, workers, { what: "paused", probe: () => serviceOf(store, "s1").updateStatus?.state === "paused" });
  assert.match(serviceOf(store, "s1").updateStatus?.message ?? "", /health check failed/);
});

test("as in swarm, a new task that fails after running for its monitor window does not count against the update; one that fails within it does", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 12 });
  const { store } = harness;
  // Stop-first, one at a time: each slot waits for its old task's 200 ms stop, so slot 1's new
  // task fails (1.5 s after it started, 0.5 s past its monitor window) while the rollout goes on.
  const config = { parallelism: 1, order: "stop-first", monitorMs: 1_000 } as const;
  await updateSpec(store, "s1", withEnv(["CRASH_AFTER=1500"], config));
  const crashed = (): Task[] => tasksOf(store, "s1").filter((task) => task.status.state === "failed" && envOf(task, "CRASH_AFTER") === "1500");
  await runUntil(harness, workers, { what: "every slot on the new spec", probe: () => liveTasksOf(store, "s1").every((task) => envOf(task, "CRASH_AFTER") === "1500") });
  assert.ok(crashed().length > 0, "new tasks failed during the rollout");
  assert.notEqual(serviceOf(store, "s1").updateStatus?.state, "paused", serviceOf(store, "s1").updateStatus?.message);

  await updateSpec(store, "s1", withEnv(["CRASH_AFTER=500"], config));
  await runUntil(harness, workers, { what: "paused", probe: () => serviceOf(store, "s1").updateStatus?.state === "paused" });
  assert.match(serviceOf(store, "s1").updateStatus?.message ?? "", /update paused: \d+ of 12 updated tasks failed .*exit code 1/u);
});

test("with a delay, the restarts of a new task that crash-loops past its monitor window do not hold the other slots back", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 3 });
  const { store } = harness;
  await updateSpec(store, "s1", withEnv(["CRASH_AFTER=3000"], { parallelism: 1, delayMs: 5_000, monitorMs: 1_000 }));
  await runUntil(harness, workers, { what: "every slot on the new spec", probe: () => liveTasksOf(store, "s1").every((task) => envOf(task, "CRASH_AFTER") !== undefined), limitMs: 30_000 });
  assert.ok(tasksOf(store, "s1").some((task) => task.status.state === "failed"), "slot 1 crashed and was restarted meanwhile");
  assert.equal(serviceOf(store, "s1").updateStatus?.state, "updating");
});

test("a new spec supersedes the update in progress, and the rollout survives a restart of the components", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 6 });
  const { store, clock } = harness;
  await updateSpec(store, "s1", withEnv(["V=2"], { parallelism: 2, delayMs: 5_000, monitorMs: 0 }));
  await runUntil(harness, workers, { what: "first batch runs", probe: () => liveTasksOf(store, "s1").filter((task) => envOf(task, "V") === "2" && task.status.state === "running").length === 2 });
  await updateSpec(store, "s1", withEnv(["V=3"], { parallelism: 2, delayMs: 5_000, monitorMs: 0 }));
  await harness.stop();
  // A new leader: fresh components on the same store.
  const next = startControlLoops(t, { store, clock });
  await runUntil(next, workers, { what: "completed on V=3", probe: () => serviceOf(store, "s1").updateStatus?.state === "completed" });
  assert.ok(liveTasksOf(store, "s1").every((task) => envOf(task, "V") === "3" && task.status.state === "running"));
  assert.equal(liveTasksOf(store, "s1").length, 6);
});

test("draining a node running 4 of 12 moves them with the service's parallelism: never fewer than 12 - 2 running", async (t) => {
  const { harness, workers } = await startedService(t, { replicas: 12, nodes: ["n1", "n2", "n3"] });
  const { store } = harness;
  await updateSpec(store, "s1", (spec) => ({ ...spec, updateConfig: { ...spec.updateConfig, parallelism: 2, order: "stop-first" } }));
  let lowest = Number.POSITIVE_INFINITY;
  const sample = (): void => {
    lowest = Math.min(lowest, runningCount(store, "s1"));
  };
  await updateNode(store, "n1", (node) => ({ ...node, spec: { ...node.spec, availability: "drain" } }));
  await runUntil(harness, workers, {
    what: "moved off n1",
    probe: () => liveTasksOf(store, "s1").filter((task) => task.status.state === "running" && task.nodeId !== "n1").length === 12,
    sample,
  });
  assert.ok(lowest >= 10, `running tasks dropped to ${lowest}`);
  assert.equal(serviceOf(store, "s1").updateStatus, undefined, "a drain is not an update");
});

test("a node label change that breaks a constraint moves the tasks off it", async (t) => {
  const harness = startControlLoops(t);
  const workers = fakeWorkers(harness.store, harness.clock);
  const { store } = harness;
  await addNodes(store, ["n1", "n2"]);
  for (const id of ["n1", "n2"]) await updateNode(store, id, (node) => ({ ...node, spec: { ...node.spec, labels: { zone: "east" } } }));
  await createService(store, "s1", { name: "web", replicas: 4, constraints: ["node.labels.zone==east"] });
  await runUntil(harness, workers, { what: "running", probe: () => runningCount(store, "s1") === 4 });
  await updateNode(store, "n1", (node) => ({ ...node, spec: { ...node.spec, labels: { zone: "west" } } }));
  await runUntil(harness, workers, { what: "all on n2", probe: () => liveTasksOf(store, "s1").filter((task) => task.nodeId === "n2" && task.status.state === "running").length === 4 });
});

test("global services roll node by node, start-first keeping each node's old task until the new one runs", async (t) => {
  const harness = startControlLoops(t);
  const workers = fakeWorkers(harness.store, harness.clock);
  const { store } = harness;
  await addNodes(store, ["n1", "n2", "n3"]);
  await createService(store, "g1", { name: "agent", global: true });
  await runUntil(harness, workers, { what: "running", probe: () => runningCount(store, "g1") === 3 });
  await updateSpec(store, "g1", withEnv(["V=2"], { parallelism: 1, order: "start-first", monitorMs: 0 }));
  let lowest = Number.POSITIVE_INFINITY;
  await runUntil(harness, workers, {
    what: "completed",
    probe: () => serviceOf(store, "g1").updateStatus?.state === "completed",
    sample: () => {
      lowest = Math.min(lowest, runningCount(store, "g1"));
    },
  });
  assert.ok(lowest >= 3);
  const live = liveTasksOf(store, "g1");
  assert.deepEqual(live.map((task) => task.nodeId).sort(), ["n1", "n2", "n3"]);
  assert.ok(live.every((task) => envOf(task, "V") === "2"));
});
