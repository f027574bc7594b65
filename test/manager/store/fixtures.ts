import { pino } from "pino";

import type { Clock } from "../../../src/common/clock.js";
import { createIdGenerator, parseServiceSpec, type Node, type Service, type Task, type TaskState } from "../../../src/manager/objects/index.js";
import { MemoryStore, type NewObject, type Proposer } from "../../../src/manager/store/index.js";

export const silentLogger = pino({ level: "silent" });

/** A clock that only moves when told; the store only reads now(). */
export function fakeClock(start = 1_700_000_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    sleep: () => Promise.reject(new Error("the store must not sleep")),
    setTimer: () => () => undefined,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

/** Ids from a counter, so tests are deterministic. */
export function counterIds(): () => string {
  let next = 0;
  return createIdGenerator((size) => {
    next += 1;
    const bytes = new Uint8Array(size);
    new DataView(bytes.buffer).setUint32(size - 4, next);
    return bytes;
  });
}

export function localStore(options: { proposer?: Proposer | null; watchQueueEventsMax?: number } = {}): MemoryStore {
  return new MemoryStore({
    proposer: options.proposer ?? null,
    logger: silentLogger,
    clock: fakeClock(),
    ...(options.watchQueueEventsMax === undefined ? {} : { watchQueueEventsMax: options.watchQueueEventsMax }),
  });
}

export function newService(id: string, name: string, replicas = 1): NewObject<"service"> {
  return {
    id,
    spec: parseServiceSpec({ name, mode: { replicas }, taskTemplate: { containerSpec: { image: "busybox" } } }),
    specVersion: 1,
  };
}

export function newTask(id: string, service: Pick<Service, "id" | "spec">, slot: number, state: TaskState = "pending"): NewObject<"task"> {
  return {
    id,
    serviceId: service.id,
    serviceName: service.spec.name,
    slot,
    nodeId: "",
    desiredState: "running",
    spec: service.spec.taskTemplate,
    specVersion: 1,
    endpoint: service.spec.endpointSpec,
    attempt: 0,
    status: { state, timestamp: 0, message: "", err: "" },
  };
}

export function newNode(id: string, hostname: string): NewObject<"node"> {
  return {
    id,
    spec: { name: "", labels: {}, role: "worker", availability: "active" },
    description: {
      hostname,
      platform: { os: "linux", architecture: "amd64" },
      resources: { nanoCPUs: 4_000_000_000, memoryBytes: 8 * 1024 ** 3 },
      engine: { engineVersion: "0.1.0", labels: {} },
    },
    status: { state: "ready", addr: "127.0.0.1", message: "" },
  };
}

export function withState(task: Task, state: TaskState): Task {
  return { ...task, status: { ...task.status, state } };
}

export type { Node, Service, Task };
