/**
 * What the scheduler reads of nodes and tasks: structural subsets of the manager's Node and
 * Task (src/manager/objects), so the manager passes its objects as they are while the
 * scheduler depends on nothing above it.
 */

export interface SchedulerResources {
  nanoCPUs: number;
  memoryBytes: number;
}

export interface SchedulerLabels {
  readonly [name: string]: string;
}

export interface SchedulerNode {
  readonly id: string;
  readonly spec: { readonly role: string; readonly availability: string; readonly labels: SchedulerLabels };
  /** Absent until the node has reported itself; such a node gets no tasks. */
  readonly description?: {
    readonly hostname: string;
    readonly platform: { readonly os: string; readonly architecture: string };
    readonly resources: Readonly<SchedulerResources>;
    readonly engine: { readonly labels: SchedulerLabels };
  };
  readonly status: { readonly state: string };
}

export interface SchedulerPort {
  readonly protocol: string;
  readonly publishedPort: number;
  readonly publishMode: string;
}

export interface SchedulerTask {
  readonly id: string;
  readonly serviceId: string;
  /** Empty when unassigned; set in advance for global services (the node is then only checked). */
  readonly nodeId: string;
  /** Tasks of one service with the same specVersion share their spec and are placed as a group. */
  readonly specVersion: number;
  readonly slot: number;
  readonly spec: {
    readonly resources: { readonly reservations: Readonly<SchedulerResources> };
    readonly placement: {
      readonly constraints: readonly string[];
      readonly preferences: readonly { readonly spread: string }[];
      /** 0 = unlimited. */
      readonly maxReplicas: number;
      readonly platforms: readonly { readonly os: string; readonly architecture: string }[];
    };
  };
  readonly endpoint: { readonly ports: readonly SchedulerPort[] };
  readonly status: { readonly state: string };
}

/** "tcp/8080" for each host-mode port the task publishes. */
export function hostPortKeys(task: SchedulerTask): string[] {
  const keys: string[] = [];
  for (const port of task.endpoint.ports) {
    if (port.publishMode === "host" && port.publishedPort !== 0) keys.push(`${port.protocol}/${port.publishedPort}`);
  }
  return keys;
}
