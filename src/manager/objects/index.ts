export { clusterDefaults, serviceDefaults } from "./defaults.js";
export { createIdGenerator, objectIdLength } from "./id.js";
export { imageNameLengthMax, imageReferenceProblem } from "./image-reference.js";
export { namePattern, specLimits } from "./limits.js";
export { parseServiceSpec, withServiceDefaults } from "./service-spec.js";
export type { ServiceSpecInput, SpecInput } from "./service-spec.js";
export {
  formatIpv4,
  networkDrivers,
  parseCidrText,
  parseIpv4Cidr,
  parseNetworkAttachments,
  parseNetworkSpec,
  vniMax,
  vniMin,
} from "./network.js";
export type { Network, NetworkAttachment, NodeNetworkAddress, NetworkDriver, NetworkSpec, PublishedPort, ServiceEndpointState, VirtualIp } from "./network.js";
export { parseCluster, parseClusterSpec, parseMeta, parseNetwork, parseNode, parseService, parseTask } from "./stored.js";
export { parseTaskSpec } from "./task-spec.js";
export {
  isForwardTransition,
  isTaskState,
  isTerminalTaskState,
  taskStateRank,
  taskStates,
  terminalTaskStates,
} from "./task-state.js";
export type { TaskState } from "./task-state.js";
export {
  endpointModes,
  failureActions,
  nodeAvailabilities,
  nodeRoles,
  nodeStates,
  portProtocols,
  publishModes,
  restartConditions,
  taskHealthStates,
  updateOrders,
  updateStates,
} from "./types.js";
export type {
  Cluster,
  ClusterSpec,
  ContainerSpec,
  ContainerStatus,
  EndpointMode,
  EndpointSpec,
  EngineDescription,
  FailureAction,
  HealthConfig,
  JoinTokens,
  Labels,
  Meta,
  Mount,
  NetworkAttachmentConfig,
  Node,
  NodeAvailability,
  NodeDescription,
  NodeRole,
  NodeSpec,
  NodeState,
  NodeStatus,
  Placement,
  PlacementPreference,
  Platform,
  PortConfig,
  PortProtocol,
  PublishMode,
  ResourceRequirements,
  Resources,
  RestartCondition,
  RestartPolicy,
  RootCa,
  Service,
  ServiceMode,
  ServiceSpec,
  Task,
  TaskHealth,
  TaskSpec,
  TaskStatus,
  UpdateConfig,
  UpdateOrder,
  UpdateState,
  UpdateStatus,
} from "./types.js";
