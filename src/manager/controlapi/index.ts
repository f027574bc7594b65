export { createControlApi } from "./control-api.js";
export type { ControlApiOptions } from "./control-api.js";
export { isTaskUpToDate, labelsMatch, nodeName, taskName } from "./filters.js";
export { mergeNodeSpec } from "./node-spec.js";
export { nodeMemberships, notManagerMessages } from "./types.js";
export type {
  ClusterControl,
  ClusterSpecInput,
  ControlApi,
  InitClusterInput,
  LabelFilter,
  ManagerStatus,
  NodeFilters,
  NodeMembership,
  NodeSpecInput,
  ServiceFilters,
  ServiceStatus,
  ServiceWithStatus,
  SwarmInitRequest,
  SwarmJoinRequest,
  SwarmMembership,
  TaskFilters,
  UpdateServiceOptions,
} from "./types.js";
