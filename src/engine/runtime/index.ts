export {
  containerExitedChannel,
  containerStartedChannel,
  containersMax,
  createContainerService,
  exitFileReadsMax,
  killWaitMs,
} from "./containers.js";
export type { ContainerService, ContainerServiceOptions } from "./containers.js";
export { collectExecOutput, execOutputBytesMax } from "./exec.js";
export type { ExecOptions, ExecSession } from "./exec.js";
export { K8sLogParser, logLineBytesMax, logReadChunkBytes, readContainerLog } from "./logs.js";
export type { LogEntry, LogReadOptions, LogStream } from "./logs.js";
export { readCgroupStats, readOomKillCount } from "./oci/cgroups.js";
export type { CgroupStats } from "./oci/cgroups.js";
export { containerLogBytesMax, parseConmonSync } from "./oci/conmon.js";
export { detectOciRuntime, parseRuntimeVersion, runtimeSecurityWarnings } from "./oci/detect.js";
export type { RuntimeDetection } from "./oci/detect.js";
export { createOciRuntime, parseOciState } from "./oci/runtime.js";
export type { OciContainerState, OciContainerStatus, OciRuntime, OciRuntimeName } from "./oci/runtime.js";
export { parseEnvEntry, resolveArgs, resolveEnv, resolveWorkingDir } from "./spec/process.js";
export type { ImageRuntimeConfig, ProcessOverrides } from "./spec/process.js";
export { defaultSeccompProfile } from "./spec/seccomp.js";
export { buildOciSpec, memoryBytesMin, validateResourceLimits } from "./spec/spec.js";
export type { NetworkNamespace, ResourceLimits, SpecInput } from "./spec/spec.js";
export type { OciSpec } from "./spec/types.js";
export { resolveUser } from "./spec/user.js";
export type {
  ContainerCreateRequest,
  ContainerInfo,
  ContainerRecord,
  ContainerState,
  ContainerStats,
  ContainerStatus,
  ExitStatus,
  ImageConfigSource,
  RootfsMount,
  RootfsProvider,
} from "./types.js";
