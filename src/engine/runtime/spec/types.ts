/**
 * The subset of the OCI runtime specification (config.json, spec 1.0.2) that shoal writes.
 * Field names follow the specification exactly because runc and crun read this file.
 */

export interface OciUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export interface OciRlimit {
  type: string;
  hard: number;
  soft: number;
}

export interface OciCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
}

export interface OciProcess {
  terminal: boolean;
  user: OciUser;
  args: string[];
  env: string[];
  cwd: string;
  capabilities: OciCapabilities;
  rlimits: OciRlimit[];
  noNewPrivileges: boolean;
  oomScoreAdj?: number;
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export type OciNamespaceType = "pid" | "ipc" | "uts" | "mount" | "network" | "cgroup";

export interface OciNamespace {
  type: OciNamespaceType;
  path?: string;
}

export interface OciDeviceRule {
  allow: boolean;
  access: string;
  type?: string;
  major?: number;
  minor?: number;
}

export interface OciResources {
  devices: OciDeviceRule[];
  memory?: { limit: number; swap: number };
  cpu?: { shares?: number; quota?: number; period?: number };
  pids?: { limit: number };
}

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface OciSeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[];
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet: number;
  architectures?: string[];
  syscalls: OciSeccompRule[];
}

export interface OciLinux {
  namespaces: OciNamespace[];
  cgroupsPath: string;
  resources: OciResources;
  maskedPaths: string[];
  readonlyPaths: string[];
  seccomp?: OciSeccomp;
}

export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: OciLinux;
}
