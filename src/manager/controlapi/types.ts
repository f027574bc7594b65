import type {
  Cluster,
  ClusterSpec,
  JoinTokens,
  Network,
  Node,
  NodeAvailability,
  NodeRole,
  NodeSpec,
  Service,
  SpecInput,
  Task,
  TaskState,
} from "../objects/index.js";

/** A label filter: `key` alone matches any value; `key=value` matches that value only. */
export interface LabelFilter {
  key: string;
  value?: string;
}

/**
 * Filters of a list call, as the Docker API has them: values of one filter are alternatives
 * (any may match), different filters must all match. An absent or empty filter matches all.
 */
export interface ServiceFilters {
  /** Id prefixes. */
  id?: readonly string[];
  /** Name prefixes. */
  name?: readonly string[];
  label?: readonly LabelFilter[];
  mode?: readonly ("replicated" | "global")[];
}

export const nodeMemberships = ["accepted", "pending"] as const;
export type NodeMembership = (typeof nodeMemberships)[number];

export interface NodeFilters {
  /** Id prefixes. */
  id?: readonly string[];
  /** Prefixes of the node's name (its spec name, else its hostname). */
  name?: readonly string[];
  role?: readonly NodeRole[];
  /** Every node in the store has been accepted (its certificate issued): "pending" matches none. */
  membership?: readonly NodeMembership[];
  /** The engine's labels (`label`) and the node's own spec labels (`node.label`), as in docker. */
  label?: readonly LabelFilter[];
  nodeLabel?: readonly LabelFilter[];
}

export interface TaskFilters {
  /** Service ids, names or unique id prefixes; a reference that matches nothing matches no task. */
  service?: readonly string[];
  /** Node ids, names or unique id prefixes. */
  node?: readonly string[];
  desiredState?: readonly TaskState[];
  /** Id prefixes. */
  id?: readonly string[];
  /**
   * Task names "service.slot" (replicated) or "service.nodeId" (global), optionally followed
   * by ".taskId"; a name matches whole dot-separated parts, so "web.1" does not match "web.10".
   */
  name?: readonly string[];
  /** Labels of the task's service. */
  label?: readonly LabelFilter[];
  /** Only tasks whose spec is the service's current task template (docker's `_up-to-date`). */
  upToDate?: boolean;
}

/** Docker's ServiceStatus: tasks running and wanted, computed on request (`status=true`). */
export interface ServiceStatus {
  runningTasks: number;
  desiredTasks: number;
  completedTasks: number;
}

export interface ServiceWithStatus {
  service: Service;
  status?: ServiceStatus;
}

export interface UpdateServiceOptions {
  /** "previous": restore the spec before the last update (ignoring the spec given). */
  rollback?: "previous";
  signal?: AbortSignal;
}

/** The fields of a node's spec a user may write; each replaces the stored one when given. */
export type NodeSpecInput = SpecInput<NodeSpec>;
export type ClusterSpecInput = SpecInput<ClusterSpec>;

export interface InitClusterInput {
  clusterId: string;
  spec: ClusterSpecInput;
  joinTokens: JoinTokens;
  rootCa?: Cluster["rootCa"];
  /** The manager that initialises the swarm; created as a ready manager. */
  node: Omit<Node, "meta">;
}

/**
 * The manager's control API over the store, after swarmkit's manager/controlapi: every
 * method validates its input before it writes, so bad input changes nothing (the store
 * version does not move). References are a full id, a name, or a unique id prefix.
 * Errors: InvalidArgumentError (bad input, naming the field), NotFoundError,
 * AlreadyExistsError (a service name taken), ConflictError ("update out of sequence": the
 * version given is not the stored one), FailedPreconditionError (the change is not allowed
 * in the object's current state), and the store's own errors (UnavailableError when the
 * proposal cannot commit, CancelledError on abort).
 */
export interface ControlApi {
  /** Parses the spec (a ServiceSpecInput), fills swarm's defaults, and creates the service. */
  createService(spec: unknown, options?: { signal?: AbortSignal }): Promise<Service>;
  getService(reference: string): Service;
  /** ServiceStatus as docker computes it for `status=true`. */
  serviceStatus(service: Service): ServiceStatus;
  listServices(filters?: ServiceFilters, options?: { status?: boolean }): ServiceWithStatus[];
  /**
   * Replaces the spec of the service read at `version`, keeping the old one as previousSpec.
   * The name and the mode kind (replicated/global) may not change.
   */
  updateService(reference: string, version: number, spec: unknown, options?: UpdateServiceOptions): Promise<Service>;
  removeService(reference: string, options?: { signal?: AbortSignal }): Promise<void>;

  /** Parses a NetworkSpec (name, driver "overlay", labels) and creates the network with a subnet from the cluster pool. */
  createNetwork(spec: unknown, options?: { signal?: AbortSignal }): Promise<Network>;
  getNetwork(reference: string): Network;
  listNetworks(): Network[];
  /** FailedPreconditionError while a service or a live task uses the network. */
  removeNetwork(reference: string, options?: { signal?: AbortSignal }): Promise<void>;

  getNode(reference: string): Node;
  listNodes(filters?: NodeFilters): Node[];
  /** Refuses to demote the last manager. */
  updateNode(reference: string, version: number, spec: unknown, options?: { signal?: AbortSignal }): Promise<Node>;
  /** Refuses managers (demote first) and, unless forced, nodes that are not down. */
  removeNode(reference: string, options?: { force?: boolean; signal?: AbortSignal }): Promise<void>;

  getTask(reference: string): Task;
  listTasks(filters?: TaskFilters): Task[];

  /** The swarm's cluster object; NotFoundError before the swarm is initialised. */
  getCluster(): Cluster;
  /** Replaces the given fields of the cluster spec (read at `version`); others stay. */
  updateCluster(version: number, spec: unknown, options?: { signal?: AbortSignal }): Promise<Cluster>;
  /** Replaces the join tokens (the CA makes new ones; this only stores them). */
  setJoinTokens(tokens: JoinTokens, options?: { signal?: AbortSignal }): Promise<Cluster>;
  /** Creates the cluster object and the first manager node in one write; AlreadyExistsError when a cluster exists. */
  initCluster(input: InitClusterInput, options?: { signal?: AbortSignal }): Promise<Cluster>;
}

/** What `swarm init` asks for (docker's InitRequest). */
export interface SwarmInitRequest {
  /** "host:port" to listen on for cluster traffic; empty = the daemon's default. */
  listenAddr: string;
  /** The address other nodes reach this one at; empty = derived from listenAddr. */
  advertiseAddr: string;
  forceNewCluster: boolean;
  spec: ClusterSpecInput;
  availability: NodeAvailability;
}

/** What `swarm join` asks for (docker's JoinRequest). */
export interface SwarmJoinRequest {
  listenAddr: string;
  advertiseAddr: string;
  /** Managers to contact, "host:port". */
  remoteAddrs: string[];
  joinToken: string;
  availability: NodeAvailability;
}

/** Docker's ManagerStatus for a node that is a raft member. */
export interface ManagerStatus {
  leader: boolean;
  reachability: "unknown" | "unreachable" | "reachable";
  /** "host:port" of the member's raft endpoint. */
  addr: string;
}

export type SwarmMembership = "none" | "worker" | "manager";

/**
 * Everything the swarm REST routes need from the node they run on; the daemon's composition
 * implements it once raft, the CA and the dispatcher are wired. Only managers have a control
 * API: routes check `membership()` first and answer 503 with docker's text otherwise.
 */
export interface ClusterControl {
  /** Whether this node is in a swarm, and as what. */
  membership(): SwarmMembership;
  isManager(): boolean;
  /** The control API; UnavailableError (docker's text) when this node is not a manager. */
  controlApi(): ControlApi;
  /** The leader's API address ("host:port"), undefined when unknown or this node leads. */
  leaderAddress(): string | undefined;
  /** Bootstraps a one-manager swarm; resolves with this node's id. FailedPreconditionError when already in one. */
  swarmInit(request: SwarmInitRequest, options?: { signal?: AbortSignal }): Promise<string>;
  /** Joins a swarm with a token; FailedPreconditionError when already in one. */
  swarmJoin(request: SwarmJoinRequest, options?: { signal?: AbortSignal }): Promise<void>;
  /** Leaves the swarm; a manager needs `force` (FailedPreconditionError otherwise). */
  swarmLeave(force: boolean, options?: { signal?: AbortSignal }): Promise<void>;
  joinTokens(): JoinTokens;
  /** Makes a new token for the role (the old one stops working) and returns both tokens. */
  rotateJoinToken(role: NodeRole, options?: { signal?: AbortSignal }): Promise<JoinTokens>;
  /** Raft membership of a node, undefined for workers. */
  managerStatus(nodeId: string): ManagerStatus | undefined;
}

/** Docker's exact texts for requests a non-manager cannot serve. */
export const notManagerMessages = {
  none: 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.',
  worker:
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.",
} as const;
