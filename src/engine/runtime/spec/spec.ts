import { InvalidArgumentError } from "../../../common/errors.js";
import {
  cpuPeriodMicroseconds,
  defaultCapabilities,
  defaultDeviceRules,
  defaultMaskedPaths,
  defaultMounts,
  defaultNofileLimit,
  defaultReadonlyPaths,
} from "./defaults.js";
import { defaultSeccompProfile } from "./seccomp.js";
import type { OciMount, OciNamespace, OciResources, OciSpec, OciUser } from "./types.js";

/** Resource limits of one container; absent fields mean unlimited. */
export interface ResourceLimits {
  memoryBytes?: number;
  /** CPUs as a fraction (`--cpus 1.5`), turned into a CFS quota over a 100 ms period. */
  cpus?: number;
  cpuShares?: number;
  pidsLimit?: number;
  nofile?: number;
}

/** How the container's network namespace is obtained. */
export type NetworkNamespace = { kind: "new" } | { kind: "path"; path: string } | { kind: "host" };

export interface SpecInput {
  hostname: string;
  rootfsPath: string;
  /**
   * The root filesystem (an overlay of the image's layers) when the runtime is to mount
   * it: on /, inside the container's own mount namespace, before anything else. Nothing
   * of the container is then mounted on the host, where every mount lengthens the
   * mountinfo that runc, mount(8) and systemd read again and again. Empty when
   * `rootfsPath` already holds the files.
   */
  rootfsMounts: readonly OciMount[];
  readonlyRootfs: boolean;
  args: readonly string[];
  env: readonly string[];
  cwd: string;
  user: OciUser;
  networkNamespace: NetworkNamespace;
  /** Volumes, binds, tmpfs and the generated /etc files, applied after the defaults. */
  extraMounts: readonly OciMount[];
  resources: ResourceLimits;
  /** `/shoal-<daemon id>/<container id>`: per daemon, so several daemons share one host. */
  cgroupsPath: string;
}

/** Smallest memory limit runc accepts without the kernel refusing it outright. */
export const memoryBytesMin = 6 * 1024 * 1024;
/** CFS quotas below 1 ms are rejected by the kernel. */
const cpuQuotaMicrosecondsMin = 1000;

function buildResources(limits: ResourceLimits): OciResources {
  const resources: OciResources = { devices: defaultDeviceRules() };
  if (limits.memoryBytes !== undefined) {
    if (!Number.isSafeInteger(limits.memoryBytes) || limits.memoryBytes < memoryBytesMin) {
      throw new InvalidArgumentError(`memory limit ${limits.memoryBytes} is below the minimum of 6MB`);
    }
    // swap equal to memory: no swap, so the limit is a real limit and OOM is reported.
    resources.memory = { limit: limits.memoryBytes, swap: limits.memoryBytes };
  }
  const cpu: { shares?: number; quota?: number; period?: number } = {};
  if (limits.cpuShares !== undefined) {
    if (!Number.isSafeInteger(limits.cpuShares) || limits.cpuShares < 2) {
      throw new InvalidArgumentError(`cpu shares ${limits.cpuShares} must be an integer of at least 2`);
    }
    cpu.shares = limits.cpuShares;
  }
  if (limits.cpus !== undefined) {
    const quota = Math.round(limits.cpus * cpuPeriodMicroseconds);
    if (!Number.isFinite(limits.cpus) || quota < cpuQuotaMicrosecondsMin) {
      throw new InvalidArgumentError(`--cpus ${limits.cpus} is too small: use at least 0.01`);
    }
    cpu.quota = quota;
    cpu.period = cpuPeriodMicroseconds;
  }
  if (Object.keys(cpu).length > 0) resources.cpu = cpu;
  if (limits.pidsLimit !== undefined) {
    if (!Number.isSafeInteger(limits.pidsLimit) || limits.pidsLimit < 1) {
      throw new InvalidArgumentError(`pids limit ${limits.pidsLimit} must be a positive integer`);
    }
    resources.pids = { limit: limits.pidsLimit };
  }
  return resources;
}

/** Checks limits at create time, so a bad value fails before anything is made. */
export function validateResourceLimits(limits: ResourceLimits): void {
  buildResources(limits);
  if (limits.nofile !== undefined && (!Number.isSafeInteger(limits.nofile) || limits.nofile < 1)) {
    throw new InvalidArgumentError(`nofile limit ${limits.nofile} must be a positive integer`);
  }
}

function buildNamespaces(network: NetworkNamespace): OciNamespace[] {
  const namespaces: OciNamespace[] = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }];
  switch (network.kind) {
    case "new":
      namespaces.push({ type: "network" });
      break;
    case "path":
      namespaces.push({ type: "network", path: network.path });
      break;
    case "host":
      break;
  }
  namespaces.push({ type: "cgroup" });
  return namespaces;
}

/** The OCI runtime config.json for one container, with Docker's default confinement. */
export function buildOciSpec(input: SpecInput): OciSpec {
  const capabilities = [...defaultCapabilities];
  const nofile = input.resources.nofile ?? defaultNofileLimit;
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: input.user,
      args: [...input.args],
      env: [...input.env],
      cwd: input.cwd,
      capabilities: { bounding: capabilities, effective: [...capabilities], permitted: [...capabilities] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: nofile, soft: nofile }],
      noNewPrivileges: true,
    },
    root: { path: input.rootfsPath, readonly: input.readonlyRootfs },
    hostname: input.hostname,
    mounts: [...input.rootfsMounts, ...defaultMounts(), ...input.extraMounts],
    linux: {
      namespaces: buildNamespaces(input.networkNamespace),
      cgroupsPath: input.cgroupsPath,
      resources: buildResources(input.resources),
      maskedPaths: [...defaultMaskedPaths],
      readonlyPaths: [...defaultReadonlyPaths],
      seccomp: defaultSeccompProfile(),
    },
  };
}
