export { createEngine, defaultBridgeName, defaultSubnet, engineCgroupParent, readEngineId, releaseEngineRunDirectory, removeEngineHostState, removeStoppedEngineState } from "./engine.js";
export type { Engine, EngineInfo, EngineOptions } from "./engine.js";
export {
  collectExecOutput,
  parseEnvEntry,
  type ContainerCreateRequest,
  type ContainerInfo,
  type ContainerService,
  type ContainerState,
  type ContainerStats,
  type ContainerStatus,
  type ExecOptions,
  type ExecSession,
  type ExitStatus,
  type LogEntry,
  type LogReadOptions,
  type ResourceLimits,
} from "./runtime/index.js";
export { parseNetworkMode, parsePortBinding, removeBridgeNetwork, type NetworkMode, type PortBinding } from "./network/index.js";
export { parseTmpfsSpec, parseVolumeSpec, type MountRequest, type Volume, type VolumeService } from "./volumes/index.js";
export type { ImageService } from "./images/index.js";
