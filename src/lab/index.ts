export { Lab, labExecTimeoutMsDefault } from "./lab.js";
export type { LabExecResult, LabHost, LabHostStatus, LabUpOptions } from "./lab.js";
export type { LabNodeView } from "./cluster.js";
export type { PartitionOptions } from "./faults.js";
export { labDelayMsMax, labNftTable, parsePartitionGroups, partitionRules } from "./faults.js";
export { labBridgeName, labGrpcPort, labHostAddress, labHostNames, labManagersMax, labNetnsName, labVethName, labWorkersMax, validateLabName, validateLabShape } from "./names.js";
export type { LabRole } from "./names.js";
export { labHostsRootDefault, labStateRoot, parseLabState } from "./state.js";
export {
  addServiceLabel,
  createSleepService,
  hostServiceContainers,
  inspectService,
  leaderElections,
  listServiceTasks,
  nodeIdsByHost,
  runningTasks,
  termsWithTwoLeaders,
} from "./workload.js";
export type { LeaderChange, ServiceOptions, ServiceView, TaskView } from "./workload.js";
