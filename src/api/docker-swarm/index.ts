export {
  filtersBytesMax,
  filterValuesMax,
  nodeFilterKeys,
  nodeFiltersFrom,
  parseDockerFilters,
  serviceFilterKeys,
  serviceFiltersFrom,
  taskFilterKeys,
  taskFiltersFrom,
} from "./filters.js";
export type { DockerFilters } from "./filters.js";
export { dockerFields, dockerTime, isEmptyValue, msToNanos, nanosecondsPerMillisecond, nanosToMs } from "./json.js";
export { encodeLogFrames, logDetails, logFrameBytesMax, parseSince, parseTail } from "./logs.js";
export type { LogContext, LogFrameOptions, LogSelector, ServiceLogMessage, ServiceLogOptions, ServiceLogSource } from "./logs.js";
export { requireManager } from "./manager.js";
export { readDockerNodeSpec } from "./node-spec.js";
export { dockerNode, dockerService, dockerServiceStatus, dockerTask } from "./objects.js";
export {
  dockerEndpointSpec,
  dockerFieldPath,
  dockerServiceSpec,
  dockerTaskSpec,
  readDockerServiceSpec,
  withDockerFieldNames,
} from "./service-spec.js";
export { dockerSwarm, dockerSwarmSpec, readDockerSwarmSpec, readSwarmInitRequest, readSwarmJoinRequest } from "./swarm.js";
