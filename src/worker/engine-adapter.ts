import { NotFoundError } from "../common/errors.js";
import type { ContainerService } from "../engine/runtime/containers.js";
import { collectExecOutput } from "../engine/runtime/exec.js";
import type { ContainerCreateRequest } from "../engine/runtime/types.js";
import type { MountRequest } from "../engine/volumes/mounts.js";
import type { Mount } from "../manager/objects/index.js";
import type { ContainerEngine, EngineContainerState, TaskContainerRequest } from "./executor.js";
import type { ImageHealthcheck } from "./health-monitor.js";

/**
 * The parts of the embedded engine the worker uses: the engine's ContainerService and
 * (structurally) its ImageService.
 */
export interface EngineParts {
  containers: Pick<ContainerService, "create" | "start" | "stop" | "kill" | "wait" | "remove" | "inspect" | "exec">;
  images: {
    /** NotFoundError when the image is not stored locally. */
    inspect(reference: string): { readonly config: { readonly healthcheck: ImageHealthcheck | null } };
    pull(reference: string, options?: { signal?: AbortSignal }): Promise<unknown>;
  };
}

function toMountRequest(mount: Mount): MountRequest {
  switch (mount.type) {
    case "bind":
      return { type: "bind", source: mount.source, target: mount.target, readOnly: mount.readOnly };
    case "volume":
      return { type: "volume", name: mount.source, target: mount.target, readOnly: mount.readOnly };
    case "tmpfs":
      return { type: "tmpfs", target: mount.target, sizeBytes: null };
  }
}

/** Maps a task's container onto the engine's Docker-shaped create request. */
export function toCreateRequest(request: TaskContainerRequest): ContainerCreateRequest {
  const create: ContainerCreateRequest = {
    image: request.image,
    name: request.name,
    env: request.env,
    hostname: request.hostname,
    labels: request.labels,
    stopTimeoutSeconds: Math.ceil(request.stopGracePeriodMs / 1_000),
    mounts: request.mounts.map(toMountRequest),
    resources: {
      ...(request.memoryBytes > 0 ? { memoryBytes: request.memoryBytes } : {}),
      ...(request.nanoCPUs > 0 ? { cpus: request.nanoCPUs / 1_000_000_000 } : {}),
    },
  };
  if (request.entrypoint !== undefined) create.entrypoint = request.entrypoint;
  if (request.cmd !== undefined) create.cmd = request.cmd;
  if (request.user !== "") create.user = request.user;
  if (request.workingDir !== "") create.workingDir = request.workingDir;
  if (request.stopSignal !== "") create.stopSignal = request.stopSignal;
  return create;
}

function absentAsUndefined<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

/** The worker's ContainerEngine on top of the embedded engine's container and image services. */
export function createEngineAdapter(parts: EngineParts): ContainerEngine {
  const { containers, images } = parts;
  return {
    hasImage: (reference) => absentAsUndefined(() => images.inspect(reference)) !== undefined,
    pullImage: async (reference, options) => {
      await images.pull(reference, options);
    },
    createContainer: async (request, options) => {
      const created = await containers.create(toCreateRequest(request), options);
      return { id: created.id };
    },
    inspectContainer: (reference): EngineContainerState | undefined => {
      const info = absentAsUndefined(() => containers.inspect(reference));
      if (info === undefined) return undefined;
      return { id: info.record.id, status: info.state.status, pid: info.state.pid, exitCode: info.state.exitCode };
    },
    startContainer: (id, options) => containers.start(id, options),
    waitContainer: (id, options) => containers.wait(id, options),
    stopContainer: (id, options) =>
      containers.stop(id, { timeoutSeconds: Math.ceil(options.gracePeriodMs / 1_000), ...(options.signal === undefined ? {} : { signal: options.signal }) }),
    killContainer: (id, options) => containers.kill(id, options),
    removeContainer: (id, options) => containers.remove(id, { force: true, ...options }),
    imageHealthcheck: (reference) => absentAsUndefined(() => images.inspect(reference))?.config.healthcheck ?? undefined,
    execInContainer: async (id, command, options) => {
      const session = await containers.exec(id, { cmd: command, signal: options.signal });
      const result = await collectExecOutput(session);
      return { exitCode: result.exitCode, output: Buffer.concat([result.stdout, result.stderr]).toString("utf8") };
    },
  };
}
