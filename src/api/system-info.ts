/** What the daemon knows about itself, in shoal's terms; routes map it to Docker's shapes. */
export interface SystemInfo {
  readonly nodeId: string;
  readonly hostname: string;
  readonly serverVersion: string;
  readonly operatingSystem: string;
  readonly osVersion: string;
  readonly kernelVersion: string;
  /** Node's process.arch ("x64", "arm64"). */
  readonly arch: string;
  readonly ncpu: number;
  readonly memTotalBytes: number;
  readonly dataDir: string;
  readonly containers: { readonly running: number; readonly paused: number; readonly stopped: number };
  readonly images: number;
  readonly storageDriver: string;
  /** The OCI runtime the engine uses, or null when none works on this host. */
  readonly runtime: { readonly name: string; readonly path: string; readonly version: string } | null;
  readonly cgroupDriver: "cgroupfs" | "systemd" | "none";
  readonly cgroupVersion: "1" | "2";
  readonly swarm: SwarmInfo;
  readonly warnings: readonly string[];
  readonly labels: readonly string[];
}

export interface SwarmInfo {
  readonly state: "inactive" | "pending" | "active" | "error" | "locked";
  readonly nodeAddr: string;
  readonly controlAvailable: boolean;
  /** The cluster's id; empty outside a swarm. */
  readonly clusterId: string;
  readonly error: string;
}

export interface SystemInfoSource {
  /** A fresh snapshot; cheap enough to call on every `/info` and `/_ping`. */
  info(): Promise<SystemInfo>;
}
