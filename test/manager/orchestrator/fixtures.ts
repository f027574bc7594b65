import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { TestContext } from "node:test";

import { pino } from "pino";

import { createIdGenerator, parseServiceSpec, type Node, type Service, type Task, type TaskState } from "../../../src/manager/objects/index.js";
import { runOrchestrators } from "../../../src/manager/orchestrator/index.js";
import { Scheduler } from "../../../src/manager/scheduler/index.js";
import { MemoryStore, type NewObject } from "../../../src/manager/store/index.js";
import { FakeClock } from "../../helpers/fake-clock.js";

export const silentLogger = pino({ level: "silent" });

/** Ids from a counter with a prefix, so two id sources never collide and runs are deterministic. */
export function counterIds(prefix: number): () => string {
  let next = 0;
  return createIdGenerator((size) => {
    next += 1;
    const bytes = new Uint8Array(size);
    const view = new DataView(bytes.buffer);
    view.setUint32(size - 8, prefix);
    view.setUint32(size - 4, next);
    return bytes;
  });
}

export function newStore(clock: FakeClock): MemoryStore {
  return new MemoryStore({ proposer: null, logger: silentLogger, clock });
}

export interface Harness {
  store: MemoryStore;
  clock: FakeClock;
  /** Stops the running components and waits for them to end. */
  stop(): Promise<void>;
}

let idPrefix = 1;

/** Starts every orchestrator and the scheduler on `store`; they stop when the test ends. */
export function startControlLoops(t: TestContext, options: { store?: MemoryStore; clock?: FakeClock; scheduler?: boolean } = {}): Harness {
  const clock = options.clock ?? new FakeClock();
  const store = options.store ?? newStore(clock);
  const controller = new AbortController();
  const componentOptions = { store, logger: silentLogger, clock, newId: counterIds(idPrefix++) };
  const running = [runOrchestrators(componentOptions, controller.signal)];
  if (options.scheduler !== false) running.push(new Scheduler({ store, logger: silentLogger, clock }).run(controller.signal));
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    if (stopped === undefined) {
      controller.abort();
      stopped = Promise.all(running).then(() => undefined);
    }
    return stopped;
  };
  t.after(stop);
  return { store, clock, stop };
}

/** Lets every queued promise chain run: yields until the store's version holds still. */
export async function quiesce(store: MemoryStore): Promise<void> {
  const stableRoundsNeeded = 5;
  const roundsMax = 10_000;
  let stable = 0;
  let version = store.version;
  for (let round = 0; round < roundsMax; round += 1) {
    await yieldToEventLoop();
    if (store.version === version) {
      stable += 1;
      if (stable >= stableRoundsNeeded) return;
    } else {
      stable = 0;
      version = store.version;
    }
  }
  throw new Error(`the store kept changing for ${roundsMax} event loop rounds`);
}

/**
 * Moves fake time forward in `stepMs` steps, letting work settle after each, until `probe`
 * returns true; fails once `limitMs` of fake time passed without it.
 */
export async function advanceUntil(harness: Pick<Harness, "store" | "clock">, what: string, probe: () => boolean, options: { stepMs?: number; limitMs?: number } = {}): Promise<void> {
  const stepMs = options.stepMs ?? 25;
  const limitMs = options.limitMs ?? 5_000;
  const start = harness.clock.now();
  for (;;) {
    await quiesce(harness.store);
    if (probe()) return;
    if (harness.clock.now() - start >= limitMs) throw new Error(`${what}: not reached within ${limitMs} ms of fake time`);
    harness.clock.advance(stepMs);
  }
}

export function makeNode(id: string, options: { labels?: Record<string, string>; availability?: Node["spec"]["availability"] } = {}): NewObject<"node"> {
  return {
    id,
    spec: { name: "", labels: options.labels ?? {}, role: "worker", availability: options.availability ?? "active" },
    description: {
      hostname: `host-${id}`,
      platform: { os: "linux", architecture: "amd64" },
      resources: { nanoCPUs: 4_000_000_000, memoryBytes: 8 * 1024 ** 3 },
      engine: { engineVersion: "0.1.0", labels: {} },
    },
    status: { state: "ready", addr: "127.0.0.1", message: "" },
  };
}

export async function addNodes(store: MemoryStore, ids: readonly string[]): Promise<void> {
  await store.update((tx) => {
    for (const id of ids) tx.create("node", makeNode(id));
  });
}

export async function updateNode(store: MemoryStore, id: string, change: (node: Node) => Node): Promise<void> {
  await store.update((tx) => {
    const node = tx.get("node", id);
    if (node === undefined) throw new Error(`no node ${id}`);
    tx.update("node", change(node));
  });
}

export interface ServiceOptions {
  name: string;
  replicas?: number;
  global?: boolean;
  restart?: { condition?: string; delayMs?: number; maxAttempts?: number; windowMs?: number };
  constraints?: string[];
}

export async function createService(store: MemoryStore, id: string, options: ServiceOptions): Promise<void> {
  const spec = parseServiceSpec({
    name: options.name,
    mode: options.global === true ? { type: "global" } : { type: "replicated", replicas: options.replicas ?? 1 },
    taskTemplate: {
      containerSpec: { image: "busybox" },
      restartPolicy: { condition: "any", delayMs: 0, ...options.restart },
      placement: { constraints: options.constraints ?? [] },
    },
  });
  await store.update((tx) => tx.create("service", { id, spec, specVersion: 1 }));
}

export async function setReplicas(store: MemoryStore, id: string, replicas: number): Promise<void> {
  await store.update((tx) => {
    const service = tx.get("service", id);
    if (service === undefined) throw new Error(`no service ${id}`);
    tx.update("service", { ...service, spec: { ...service.spec, mode: { type: "replicated", replicas } }, specVersion: service.specVersion + 1 });
  });
}

/** What a worker would report: the task moved to `state`. */
export async function setTaskState(store: MemoryStore, id: string, state: TaskState, clock: FakeClock): Promise<void> {
  await store.update((tx) => {
    const task = tx.get("task", id);
    if (task === undefined) throw new Error(`no task ${id}`);
    tx.update("task", { ...task, status: { ...task.status, state, timestamp: clock.now(), message: `worker: ${state}` } });
  });
}

export function tasksOf(store: MemoryStore, serviceId: string): Task[] {
  return store.view((tx) => tx.find("task", { by: "serviceId", serviceId }));
}

/** Tasks meant to run (desired running or a delayed start). */
export function liveTasksOf(store: MemoryStore, serviceId: string): Task[] {
  return tasksOf(store, serviceId).filter((task) => task.desiredState === "running" || task.desiredState === "ready");
}

export function countByNode(tasks: readonly Task[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const task of tasks) counts.set(task.nodeId, (counts.get(task.nodeId) ?? 0) + 1);
  return counts;
}

export function allAssigned(tasks: readonly Task[], count: number): boolean {
  return tasks.length === count && tasks.every((task) => task.status.state === "assigned" && task.nodeId !== "");
}

export type { Service, Task };
