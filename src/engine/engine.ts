import { randomBytes as cryptoRandomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { systemClock, type Clock } from "../common/clock.js";
import type { Logger } from "../common/logger.js";
import { InternalError, UnavailableError, throwIfAborted, systemErrorCode } from "../common/errors.js";
import { containerEtcFiles } from "./network/etc-files.js";
import { removeBridgeNetwork } from "./network/masquerade.js";
import { ensureRunDirectoryOnTmpfs, releaseRunDirectory } from "./run-directory.js";
import { createNetworkManager, type NetworkManager } from "./network/network.js";
import { createContainerService, type ContainerService } from "./runtime/containers.js";
import { detectOciRuntime, findExecutable } from "./runtime/oci/detect.js";
import type { OciRuntimeName } from "./runtime/oci/runtime.js";
import { readNofileHardLimit, removeCgroupDirectories } from "./runtime/oci/cgroups.js";
import { defaultNofileLimit } from "./runtime/spec/defaults.js";
import type { ImageConfigSource, RootfsMount, RootfsProvider } from "./runtime/types.js";
import { openImageService, type ImageService } from "./images/index.js";
import { createVolumeService, type VolumeService } from "./volumes/volumes.js";

export interface EngineOptions {
  /** Persistent state: `<dataDir>/engine/{containers,volumes,network}`. */
  dataDir: string;
  /**
   * Runtime state that must outlive the daemon but not a reboot (runtime root, exit files,
   * bundles): `<runDir>/engine`, put on a tmpfs (ensureRunDirectoryOnTmpfs).
   */
  runDir: string;
  logger: Logger;
  clock?: Clock;
  /** Which OCI runtime; "auto" (default) takes the first of crun, runc that works here. */
  runtime?: "auto" | OciRuntimeName;
  /** Per-daemon bridge settings; defaults derive from the engine id so daemons can share a host. */
  network?: { bridgeName?: string; subnet?: string };
  /** Registries reached over plain HTTP (besides localhost). */
  insecureRegistries?: readonly string[];
  /**
   * Test seams: container root filesystems and image lookups other than the image
   * service's overlay snapshots (e.g. a prepared directory). Production leaves them unset.
   */
  rootfs?: RootfsProvider;
  imageConfigs?: ImageConfigSource;
  randomBytes?: (size: number) => Buffer;
  signal?: AbortSignal;
}

export interface EngineInfo {
  engineId: string;
  runtime: { name: OciRuntimeName; version: string; path: string };
  conmonPath: string;
  warnings: string[];
  containers: { total: number; running: number; stopped: number };
  storageDriver: "overlay";
  cgroupDriver: "cgroupfs";
  network: { bridgeName: string; subnet: string };
}

/** The embedded container engine of one daemon. */
export interface Engine {
  readonly containers: ContainerService;
  readonly volumes: VolumeService;
  readonly images: ImageService;
  readonly network: NetworkManager;
  info(): EngineInfo;
  /** Stops watchers and finishes bookkeeping. Containers keep running (conmon holds them). */
  close(): Promise<void>;
}

const engineIdPattern = /^[a-f0-9]{16}$/;

function engineIdPath(dataDir: string): string {
  return join(dataDir, "engine", "engine-id");
}

async function loadEngineId(path: string, random: (size: number) => Buffer): Promise<string> {
  try {
    const text = (await readFile(path, "utf8")).trim();
    if (!engineIdPattern.test(text)) throw new InternalError(`${path} does not hold an engine id: remove it`);
    return text;
  } catch (error) {
    if (systemErrorCode(error) !== "ENOENT") throw error;
  }
  const id = random(8).toString("hex");
  await writeFile(path, `${id}\n`, { flag: "wx" });
  return id;
}

/** Default subnet: a /24 in 10.200.0.0-10.249.255.0 picked by the engine id. */
export function defaultSubnet(engineId: string): string {
  const first = parseInt(engineId.slice(0, 2), 16);
  const second = parseInt(engineId.slice(2, 4), 16);
  return `10.${200 + (first % 50)}.${second}.0/24`;
}

/** Where an engine's containers' cgroups live, in every hierarchy. */
export function engineCgroupParent(engineId: string): string {
  return `/shoal-${engineId}`;
}

/**
 * Removes what an engine with the default network leaves on the host once its daemon has
 * stopped and its containers are gone: the bridge with its NAT table and the cgroup parent.
 * They outlive the daemon on purpose (its containers keep running); tests and benchmarks
 * that made the engine call this, and releaseEngineRunDirectory.
 */
export async function removeEngineHostState(engineId: string): Promise<void> {
  await removeBridgeNetwork(defaultBridgeName(engineId));
  await removeCgroupDirectories(engineCgroupParent(engineId));
}

/** The id of the engine that ran on `dataDir`; undefined when none did, or its file is not one. */
export async function readEngineId(dataDir: string): Promise<string | undefined> {
  const text = (await readFile(engineIdPath(dataDir), "utf8").catch(() => "")).trim();
  return engineIdPattern.test(text) ? text : undefined;
}

/**
 * Removes everything a stopped engine with the default network left on the host, given
 * the daemon's data and run directories: its run tmpfs, bridge and cgroup parent (see
 * releaseEngineRunDirectory and removeEngineHostState).
 */
export async function removeStoppedEngineState(dataDir: string, runDir: string): Promise<void> {
  await releaseEngineRunDirectory(runDir);
  const engineId = await readEngineId(dataDir);
  if (engineId !== undefined) await removeEngineHostState(engineId);
}

/**
 * Unmounts the tmpfs of the engine's run directory under `runDir` (see EngineOptions.runDir)
 * so `runDir` can be removed. It outlives the daemon too, and is mounted before the engine
 * has an id, so this needs none.
 */
export async function releaseEngineRunDirectory(runDir: string): Promise<void> {
  await releaseRunDirectory(engineRunDirectory(runDir));
}

function engineRunDirectory(runDir: string): string {
  return join(runDir, "engine");
}

/** The bridge of an engine that was not given one: per engine, so daemons on one host never share it. */
export function defaultBridgeName(engineId: string): string {
  return `shoal-${engineId.slice(0, 8)}`;
}

/**
 * Builds the engine: detects the OCI runtime, prepares directories, and re-attaches to the
 * containers of a previous run. Throws UnavailableError when no runtime or conmon works.
 */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  throwIfAborted(options.signal);
  const clock = options.clock ?? systemClock;
  const random = options.randomBytes ?? cryptoRandomBytes;
  const logger = options.logger.child({ component: "engine" });
  const engineDirectory = join(options.dataDir, "engine");
  const runDirectory = engineRunDirectory(options.runDir);
  const directories = {
    containers: join(engineDirectory, "containers"),
    containerRuns: join(runDirectory, "containers"),
    volumes: join(engineDirectory, "volumes"),
    exits: join(runDirectory, "exits"),
    sockets: join(runDirectory, "sockets"),
    probe: join(runDirectory, "probe"),
    oci: join(runDirectory, "oci"),
  };
  await ensureRunDirectoryOnTmpfs(runDirectory, { runtimeRootBase: directories.oci, logger, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  for (const directory of Object.values(directories)) await mkdir(directory, { recursive: true, mode: 0o700 });
  const engineId = await loadEngineId(engineIdPath(options.dataDir), random);
  const conmonPath = await findExecutable("conmon");
  if (conmonPath === null) throw new UnavailableError("conmon is not installed: install it (Debian: apt-get install conmon)");
  const detection = await detectOciRuntime({
    preference: options.runtime ?? "auto",
    runtimeRootBase: directories.oci,
    probeDirectory: directories.probe,
    logger,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  for (const warning of detection.warnings) logger.warn({ runtime: detection.runtime.name }, warning);
  const network = createNetworkManager({
    config: {
      bridgeName: options.network?.bridgeName ?? defaultBridgeName(engineId),
      subnet: options.network?.subnet ?? defaultSubnet(engineId),
    },
    logger,
    daemonId: engineId,
  });
  let containers: ContainerService | null = null;
  const images = await openImageService({
    root: engineDirectory,
    logger: options.logger,
    clock,
    ...(options.insecureRegistries === undefined ? {} : { insecureRegistries: options.insecureRegistries }),
    isInUse: (imageId) => containers?.list({ all: true }).some((info) => info.record.imageId === imageId) ?? false,
    initLayerFiles: containerEtcFiles,
  });
  const volumes = createVolumeService({
    root: directories.volumes,
    clock,
    usage: (name) => containers?.volumeUsers(name) ?? [],
  });
  containers = await createContainerService({
    root: directories.containers,
    runRoot: directories.containerRuns,
    exitDirectory: directories.exits,
    socketDirectory: directories.sockets,
    cgroupParent: engineCgroupParent(engineId),
    conmonPath,
    runtime: detection.runtime,
    rootfs: options.rootfs ?? imageRootfsProvider(images),
    images: options.imageConfigs ?? imageConfigSource(images),
    network,
    volumes,
    logger,
    clock,
    randomBytes: random,
    nofileDefault: Math.min(defaultNofileLimit, (await readNofileHardLimit()) ?? defaultNofileLimit),
  });
  return new EngineImpl({ engineId, containers, volumes, network, images, conmonPath, detection });
}

/** Container root filesystems as overlay snapshots of the image service. */
function imageRootfsProvider(images: ImageService): RootfsProvider {
  return {
    prepare: async (containerId: string, imageId: string, options: { signal?: AbortSignal } = {}): Promise<readonly RootfsMount[]> =>
      await images.prepareContainerRootfs({ containerId, imageRef: imageId, ...options }),
    mounts: (containerId: string): readonly RootfsMount[] => images.containerRootfsMounts(containerId),
    writableLayer: (containerId: string): string => images.containerWritableLayer(containerId),
    remove: async (containerId: string): Promise<void> => await images.removeContainerRootfs(containerId),
  };
}

/** Image lookups for container create, from the image store (NotFoundError when absent). */
function imageConfigSource(images: ImageService): ImageConfigSource {
  return {
    get: (reference: string) => {
      const record = images.inspect(reference);
      return Promise.resolve({ id: record.id, config: record.config });
    },
  };
}

class EngineImpl implements Engine {
  readonly containers: ContainerService;
  readonly volumes: VolumeService;
  readonly images: ImageService;
  readonly network: NetworkManager;
  readonly #engineId: string;
  readonly #conmonPath: string;
  readonly #detection: Awaited<ReturnType<typeof detectOciRuntime>>;

  constructor(parts: {
    engineId: string;
    containers: ContainerService;
    volumes: VolumeService;
    network: NetworkManager;
    images: ImageService;
    conmonPath: string;
    detection: Awaited<ReturnType<typeof detectOciRuntime>>;
  }) {
    this.containers = parts.containers;
    this.volumes = parts.volumes;
    this.images = parts.images;
    this.network = parts.network;
    this.#engineId = parts.engineId;
    this.#conmonPath = parts.conmonPath;
    this.#detection = parts.detection;
  }

  info(): EngineInfo {
    const all = this.containers.list({ all: true });
    const running = all.filter((info) => info.state.status === "running").length;
    const { runtime } = this.#detection;
    return {
      engineId: this.#engineId,
      runtime: { name: runtime.name, version: runtime.version, path: runtime.path },
      conmonPath: this.#conmonPath,
      warnings: [...this.#detection.warnings],
      containers: { total: all.length, running, stopped: all.length - running },
      storageDriver: "overlay",
      cgroupDriver: "cgroupfs",
      network: { bridgeName: this.network.bridgeName, subnet: this.network.subnet },
    };
  }

  async close(): Promise<void> {
    await this.containers.close();
  }
}
