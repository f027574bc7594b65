import type { SchedulerNode, SchedulerPort, SchedulerTask } from "../../src/scheduler/index.js";

export const gib = 1024 ** 3;

export interface NodeOptions {
  role?: string;
  availability?: string;
  state?: string;
  labels?: Record<string, string>;
  engineLabels?: Record<string, string>;
  hostname?: string;
  os?: string;
  architecture?: string;
  nanoCPUs?: number;
  memoryBytes?: number;
  described?: boolean;
}

export function makeNode(id: string, options: NodeOptions = {}): SchedulerNode {
  const node: SchedulerNode = {
    id,
    spec: { role: options.role ?? "worker", availability: options.availability ?? "active", labels: options.labels ?? {} },
    status: { state: options.state ?? "ready" },
  };
  if (options.described === false) return node;
  return {
    ...node,
    description: {
      hostname: options.hostname ?? `host-${id}`,
      platform: { os: options.os ?? "linux", architecture: options.architecture ?? "x86_64" },
      resources: { nanoCPUs: options.nanoCPUs ?? 4_000_000_000, memoryBytes: options.memoryBytes ?? 8 * gib },
      engine: { labels: options.engineLabels ?? {} },
    },
  };
}

export interface TaskOptions {
  nodeId?: string;
  slot?: number;
  specVersion?: number;
  state?: string;
  nanoCPUs?: number;
  memoryBytes?: number;
  constraints?: string[];
  spreads?: string[];
  maxReplicas?: number;
  platforms?: { os: string; architecture: string }[];
  ports?: SchedulerPort[];
}

export function makeTask(id: string, serviceId: string, options: TaskOptions = {}): SchedulerTask {
  return {
    id,
    serviceId,
    nodeId: options.nodeId ?? "",
    specVersion: options.specVersion ?? 1,
    slot: options.slot ?? 1,
    spec: {
      resources: { reservations: { nanoCPUs: options.nanoCPUs ?? 0, memoryBytes: options.memoryBytes ?? 0 } },
      placement: {
        constraints: options.constraints ?? [],
        preferences: (options.spreads ?? []).map((spread) => ({ spread })),
        maxReplicas: options.maxReplicas ?? 0,
        platforms: options.platforms ?? [],
      },
    },
    endpoint: { ports: options.ports ?? [] },
    status: { state: options.state ?? "pending" },
  };
}

/** `count` tasks of one service, ids `${serviceId}-1`... */
export function makeTasks(serviceId: string, count: number, options: TaskOptions = {}): SchedulerTask[] {
  return Array.from({ length: count }, (_, index) => makeTask(`${serviceId}-${index + 1}`, serviceId, { ...options, slot: index + 1 }));
}
