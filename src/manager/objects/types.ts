import type { NetworkAttachment, ServiceEndpointState } from "./network.js";
import type { TaskState } from "./task-state.js";

/**
 * The replicated object model, after swarmkit's api/objects.proto and specs.proto and the
 * Docker Engine API's swarm shapes (in camelCase; the REST layer maps Docker's PascalCase).
 * Users write `spec`; the system writes status fields. Durations are whole milliseconds and
 * sizes whole bytes, named with their unit.
 */

/** Bookkeeping the store writes on every change; callers never set it themselves. */
export interface Meta {
  /** The raft index of the object's last change (a local counter without raft). */
  version: number;
  /** Milliseconds since the Unix epoch, from the clock of the manager that wrote the change. */
  createdAt: number;
  updatedAt: number;
}

export type Labels = Record<string, string>;

export interface Platform {
  /** "linux"; empty matches any. */
  os: string;
  /** "amd64", "arm64"; empty matches any. */
  architecture: string;
}

export interface Resources {
  /** CPU in units of 1e-9 CPUs (1 CPU = 1e9). */
  nanoCPUs: number;
  memoryBytes: number;
}

export interface ResourceRequirements {
  limits: Resources;
  reservations: Resources;
}

export interface Mount {
  type: "bind" | "volume" | "tmpfs";
  source: string;
  target: string;
  readOnly: boolean;
}

export interface HealthConfig {
  /** ["NONE"] disables the image's check; ["CMD", ...] or ["CMD-SHELL", "..."] runs one. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  /** Time between checks during the start period, while the task has not passed one yet. */
  startIntervalMs: number;
}

export interface ContainerSpec {
  image: string;
  command: string[];
  args: string[];
  /** "KEY=value" entries. */
  env: string[];
  dir: string;
  user: string;
  labels: Labels;
  mounts: Mount[];
  stopSignal: string;
  stopGracePeriodMs: number;
  /** Absent: use the image's health check, if any. */
  healthcheck?: HealthConfig;
}

export const restartConditions = ["none", "on-failure", "any"] as const;
export type RestartCondition = (typeof restartConditions)[number];

export interface RestartPolicy {
  condition: RestartCondition;
  delayMs: number;
  /** 0 = unlimited. */
  maxAttempts: number;
  /** The window attempts are counted in; 0 = since the slot was created. */
  windowMs: number;
}

export interface PlacementPreference {
  /** A label to spread tasks over evenly: "node.labels.zone" or "engine.labels.X". */
  spread: string;
}

export interface Placement {
  /** "node.labels.zone==east", "node.role!=manager", ... (see src/scheduler/constraint.ts). */
  constraints: string[];
  preferences: PlacementPreference[];
  /** Most tasks of the service on one node; 0 = unlimited. */
  maxReplicas: number;
  /** Empty = any platform. */
  platforms: Platform[];
}

export interface NetworkAttachmentConfig {
  target: string;
  aliases: string[];
}

export interface TaskSpec {
  containerSpec: ContainerSpec;
  resources: ResourceRequirements;
  restartPolicy: RestartPolicy;
  placement: Placement;
  networks: NetworkAttachmentConfig[];
  /** Changing this counter forces a rolling update with an otherwise unchanged spec. */
  forceUpdate: number;
}

export type ServiceMode = { type: "replicated"; replicas: number } | { type: "global" };

export const failureActions = ["pause", "continue", "rollback"] as const;
export type FailureAction = (typeof failureActions)[number];
export const updateOrders = ["stop-first", "start-first"] as const;
export type UpdateOrder = (typeof updateOrders)[number];

export interface UpdateConfig {
  /** Tasks updated at once; 0 = all. */
  parallelism: number;
  delayMs: number;
  failureAction: FailureAction;
  /** How long a new task is watched for failure after it starts. */
  monitorMs: number;
  /** Fraction (0..1) of tasks that may fail during an update before failureAction applies. */
  maxFailureRatio: number;
  order: UpdateOrder;
}

export const portProtocols = ["tcp", "udp", "sctp"] as const;
export type PortProtocol = (typeof portProtocols)[number];
export const publishModes = ["ingress", "host"] as const;
export type PublishMode = (typeof publishModes)[number];

export interface PortConfig {
  name: string;
  protocol: PortProtocol;
  targetPort: number;
  /** 0 = let the manager pick one (ingress) or none (host). */
  publishedPort: number;
  publishMode: PublishMode;
}

export const endpointModes = ["vip", "dnsrr"] as const;
export type EndpointMode = (typeof endpointModes)[number];

export interface EndpointSpec {
  mode: EndpointMode;
  ports: PortConfig[];
}

export interface ServiceSpec {
  /** A DNS label: 1 to 63 of [a-zA-Z0-9-], not starting or ending with "-". */
  name: string;
  labels: Labels;
  taskTemplate: TaskSpec;
  mode: ServiceMode;
  updateConfig: UpdateConfig;
  rollbackConfig: UpdateConfig;
  endpointSpec: EndpointSpec;
}

export const updateStates = [
  "updating",
  "paused",
  "completed",
  "rollback_started",
  "rollback_paused",
  "rollback_completed",
] as const;
export type UpdateState = (typeof updateStates)[number];

export interface UpdateStatus {
  state: UpdateState;
  startedAt: number;
  /** 0 while the update is in progress. */
  completedAt: number;
  /** Why the update is in this state: which tasks failed, where, with what error. */
  message: string;
}

export interface Service {
  id: string;
  meta: Meta;
  spec: ServiceSpec;
  /** Bumped on every spec change; tasks record the one they were created from. */
  specVersion: number;
  /** The spec before the last update, for rollback. */
  previousSpec?: ServiceSpec;
  updateStatus?: UpdateStatus;
  /** Written by the allocator: VIPs and resolved published ports; absent until allocated. */
  endpoint?: ServiceEndpointState;
}

export const nodeRoles = ["manager", "worker"] as const;
export type NodeRole = (typeof nodeRoles)[number];
export const nodeAvailabilities = ["active", "pause", "drain"] as const;
export type NodeAvailability = (typeof nodeAvailabilities)[number];
export const nodeStates = ["unknown", "down", "ready", "disconnected"] as const;
export type NodeState = (typeof nodeStates)[number];

export interface NodeSpec {
  /** Optional user-chosen name; empty = known by hostname. */
  name: string;
  labels: Labels;
  /** The role the node should have; promote/demote change it. */
  role: NodeRole;
  availability: NodeAvailability;
}

export interface EngineDescription {
  engineVersion: string;
  labels: Labels;
}

/** What a node reports about itself when its session starts. */
export interface NodeDescription {
  hostname: string;
  platform: Platform;
  resources: Resources;
  engine: EngineDescription;
}

export interface NodeStatus {
  state: NodeState;
  /** The address the node's session came from. */
  addr: string;
  message: string;
}

export interface Node {
  id: string;
  meta: Meta;
  spec: NodeSpec;
  /** Absent until the node's first session. */
  description?: NodeDescription;
  status: NodeStatus;
}

export interface ContainerStatus {
  containerId: string;
  pid: number;
  exitCode: number;
}

export const taskHealthStates = ["starting", "healthy", "unhealthy"] as const;
/** A running container's health check verdict; absent when the task has no health check. */
export type TaskHealth = (typeof taskHealthStates)[number];

export interface TaskStatus {
  state: TaskState;
  /** When the task entered this state (ms since the epoch). */
  timestamp: number;
  message: string;
  /** The error that moved the task to failed or rejected; empty otherwise. */
  err: string;
  containerStatus?: ContainerStatus;
  /** Set by the worker while a task with a health check runs (read by the updater and the routing mesh). */
  health?: TaskHealth;
}

export interface Task {
  id: string;
  meta: Meta;
  serviceId: string;
  /**
   * The service's name when the task was created (swarmkit's ServiceAnnotations): task
   * containers are named after it, `web.1.<task id>`. Empty for tasks stored before it was kept.
   */
  serviceName: string;
  /** 1..N for replicated services; 0 for global ones (which key on nodeId instead). */
  slot: number;
  /** Empty until the scheduler assigns the task (global tasks are created with it set). */
  nodeId: string;
  desiredState: TaskState;
  /** A snapshot of the service's task template when the task was created. */
  spec: TaskSpec;
  specVersion: number;
  /** A snapshot of the service's endpoint, for host-mode ports and the load balancer. */
  endpoint: EndpointSpec;
  /**
   * How many tasks ran in this slot before this one: the restart history lives in the store
   * (this counter plus the retained terminal tasks of the slot) so it survives leader change.
   */
  attempt: number;
  status: TaskStatus;
  /**
   * Written by the allocator: the task's addresses on its networks. Absent until allocated;
   * workers are not sent a task that needs networks before it has them.
   */
  networkAttachments?: NetworkAttachment[];
}

export interface ClusterSpec {
  name: string;
  labels: Labels;
  /** Terminal tasks kept per slot (swarm's default is 5). */
  taskHistoryRetentionLimit: number;
  heartbeatPeriodMs: number;
  snapshotIntervalEntries: number;
  nodeCertExpiryMs: number;
  /** The pool overlay network subnets come from ("10.240.0.0/12" when absent); fixed once networks exist. */
  defaultAddressPool?: string;
}

export interface JoinTokens {
  worker: string;
  manager: string;
}

export interface RootCa {
  certPem: string;
  /** "sha256:<hex>" of the CA certificate's DER form, pinned by join tokens. */
  certDigest: string;
}

export interface Cluster {
  id: string;
  meta: Meta;
  spec: ClusterSpec;
  rootCa?: RootCa;
  joinTokens: JoinTokens;
}
