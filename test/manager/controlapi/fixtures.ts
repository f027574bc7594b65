import { pino } from "pino";

import { createControlApi, type ControlApi } from "../../../src/manager/controlapi/index.js";
import { parseServiceSpec } from "../../../src/manager/objects/index.js";
import type { Node, NodeRole, NodeState, Service, Task, TaskState } from "../../../src/manager/objects/index.js";
import { MemoryStore } from "../../../src/manager/store/index.js";

export interface Fixture {
  store: MemoryStore;
  api: ControlApi;
}

/** A control API over a local store (no raft), with predictable ids. */
export function createFixture(): Fixture {
  const logger = pino({ level: "silent" });
  const store = new MemoryStore({ proposer: null, logger });
  let next = 0;
  const newId = (): string => {
    next += 1;
    return `svc${String(next).padStart(22, "0")}`;
  };
  return { store, api: createControlApi({ store, logger, newId }) };
}

export function newNode(id: string, options: { role?: NodeRole; state?: NodeState; hostname?: string; labels?: Record<string, string>; engineLabels?: Record<string, string> } = {}): Omit<Node, "meta"> {
  return {
    id,
    spec: { name: "", labels: options.labels ?? {}, role: options.role ?? "worker", availability: "active" },
    description: {
      hostname: options.hostname ?? `host-${id}`,
      platform: { os: "linux", architecture: "amd64" },
      resources: { nanoCPUs: 2e9, memoryBytes: 4 * 1024 ** 3 },
      engine: { engineVersion: "0.1.0", labels: options.engineLabels ?? {} },
    },
    status: { state: options.state ?? "ready", addr: "10.0.0.1", message: "" },
  };
}

export async function addNodes(fixture: Fixture, nodes: Omit<Node, "meta">[]): Promise<void> {
  await fixture.store.update((tx) => {
    for (const node of nodes) tx.create("node", node);
  });
}

export function newTask(service: Service, options: { id: string; slot: number; nodeId?: string; state?: TaskState; desired?: TaskState; stale?: boolean }): Omit<Task, "meta"> {
  const template = options.stale === true
    ? parseServiceSpec({ ...service.spec, taskTemplate: { containerSpec: { image: "busybox:1.35" } } }).taskTemplate
    : service.spec.taskTemplate;
  return {
    id: options.id,
    serviceId: service.id,
    serviceName: service.spec.name,
    slot: options.slot,
    nodeId: options.nodeId ?? "",
    desiredState: options.desired ?? "running",
    spec: template,
    specVersion: service.specVersion,
    endpoint: service.spec.endpointSpec,
    attempt: 0,
    status: { state: options.state ?? "running", timestamp: 1_700_000_000_000, message: "started", err: "" },
  };
}

export async function addTasks(fixture: Fixture, tasks: Omit<Task, "meta">[]): Promise<void> {
  await fixture.store.update((tx) => {
    for (const task of tasks) tx.create("task", task);
  });
}

export function minimalSpec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: "web", taskTemplate: { containerSpec: { image: "busybox:1.36", args: ["sleep", "1d"] } }, mode: { type: "replicated", replicas: 3 }, ...overrides };
}
