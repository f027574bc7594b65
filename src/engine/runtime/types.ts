import type { NetworkAttachment, NetworkMode } from "../network/network.js";
import type { PortBinding } from "../network/ports.js";
import type { MountRequest } from "../volumes/mounts.js";
import type { ImageRuntimeConfig } from "./spec/process.js";
import type { ResourceLimits } from "./spec/spec.js";

/** A mount in containerd's shape: what a snapshotter hands back for a container's rootfs. */
export interface RootfsMount {
  type: string;
  source: string;
  options: readonly string[];
}

/**
 * Supplies container root filesystems (the snapshotter side of the engine). `prepare`
 * (at create) makes the container's writable layer over its image and returns the mounts
 * that, applied in order at one target, give its rootfs; `mounts` returns them again for
 * later starts (also after a daemon restart); `remove` deletes the writable layer and
 * does nothing when it is already gone.
 */
export interface RootfsProvider {
  prepare(containerId: string, imageId: string, options?: { signal?: AbortSignal }): Promise<readonly RootfsMount[]>;
  mounts(containerId: string): readonly RootfsMount[];
  /**
   * The container's own writable directory (the overlay's upper dir), where its changes
   * to the image's files are; null when the provider cannot tell them apart.
   */
  writableLayer(containerId: string): string | null;
  remove(containerId: string, options?: { signal?: AbortSignal }): Promise<void>;
}

/** Resolves an image reference to its id and run config; NotFoundError for an unknown image. */
export interface ImageConfigSource {
  get(reference: string, options?: { signal?: AbortSignal }): Promise<{ id: string; config: ImageRuntimeConfig }>;
}

/** What a user asks for when creating a container (the Docker create body, simplified). */
export interface ContainerCreateRequest {
  image: string;
  name?: string;
  entrypoint?: readonly string[];
  cmd?: readonly string[];
  env?: readonly string[];
  user?: string;
  workingDir?: string;
  hostname?: string;
  labels?: Record<string, string>;
  stopSignal?: string;
  stopTimeoutSeconds?: number;
  networkMode?: NetworkMode;
  portBindings?: readonly PortBinding[];
  mounts?: readonly MountRequest[];
  resources?: ResourceLimits;
  readonlyRootfs?: boolean;
}

/** The container's fixed configuration, persisted as `<data-dir>/engine/containers/<id>/config.json`. */
export interface ContainerRecord {
  id: string;
  name: string;
  createdAt: string;
  image: string;
  imageId: string;
  imageConfig: ImageRuntimeConfig;
  entrypoint: string[] | null;
  cmd: string[] | null;
  env: string[];
  user: string | null;
  workingDir: string | null;
  hostname: string;
  labels: Record<string, string>;
  stopSignal: string;
  stopTimeoutSeconds: number;
  networkMode: NetworkMode;
  portBindings: PortBinding[];
  mounts: MountRequest[];
  resources: ResourceLimits;
  readonlyRootfs: boolean;
}

export type ContainerStatus = "created" | "running" | "exited";

/** The container's changing state, persisted atomically as `state.json`. */
export interface ContainerState {
  status: ContainerStatus;
  /** Host pid of the container's init while running, else 0. */
  pid: number;
  startedAt: string | null;
  finishedAt: string | null;
  exitCode: number | null;
  oomKilled: boolean;
  /** Why the last start failed, or why the exit code is unknown; "" when fine. */
  error: string;
  restartCount: number;
  network: NetworkAttachment | null;
}

/** `inspect` output: the record plus the state and where things live. */
export interface ContainerInfo {
  record: ContainerRecord;
  state: ContainerState;
  /** Its removal is under way: its files are being deleted (Docker's state "removing"). */
  removing: boolean;
  logPath: string;
  bundlePath: string;
}

export interface ContainerStats {
  id: string;
  readAt: string;
  memoryUsageBytes: number | null;
  memoryMaxUsageBytes: number | null;
  memoryLimitBytes: number | null;
  cpuUsageNanoseconds: number | null;
  pidsCurrent: number | null;
}

export interface ExitStatus {
  exitCode: number;
  oomKilled: boolean;
}
