import { cpus, hostname, totalmem } from "node:os";

import { NotFoundError } from "../common/errors.js";
import type { ContainerStatus, Labels, Mount, NodeDescription, Task } from "../manager/objects/index.js";
import type { Executor, TaskController, TaskExit, TaskHealthcheck } from "./controller.js";
import { resolveHealthcheck, type ImageHealthcheck } from "./health-monitor.js";

/** What the executor asks the engine to create for a task. */
export interface TaskContainerRequest {
  name: string;
  image: string;
  /** Replaces the image's entrypoint when set. */
  entrypoint?: string[];
  /** Replaces the image's command when set. */
  cmd?: string[];
  env: string[];
  user: string;
  workingDir: string;
  hostname: string;
  labels: Labels;
  /** Empty: the image's stop signal, else SIGTERM. */
  stopSignal: string;
  stopGracePeriodMs: number;
  mounts: Mount[];
  /** 0 = no limit. */
  memoryBytes: number;
  /** 0 = no limit; 1e9 = one CPU. */
  nanoCPUs: number;
}

export interface EngineContainerState {
  id: string;
  status: "created" | "running" | "exited";
  pid: number;
  exitCode: number | null;
}

/**
 * The engine calls a task executor needs, and nothing more (STYLE §12), so the worker can
 * be tested against a fake and the engine can change behind an adapter
 * (src/worker/engine-adapter.ts). Every method rejects with CancelledError on abort.
 */
export interface ContainerEngine {
  /** Whether the image is in the local store. */
  hasImage(reference: string): boolean;
  /** Pulls the image from its registry. */
  pullImage(reference: string, options: { signal?: AbortSignal }): Promise<void>;
  /** AlreadyExistsError when the name is taken. */
  createContainer(request: TaskContainerRequest, options: { signal?: AbortSignal }): Promise<{ id: string }>;
  /** The container's state by name or id; undefined when there is none. */
  inspectContainer(reference: string): EngineContainerState | undefined;
  startContainer(id: string, options: { signal?: AbortSignal }): Promise<void>;
  waitContainer(id: string, options: { signal?: AbortSignal }): Promise<{ exitCode: number; oomKilled: boolean }>;
  /** Sends the stop signal, then kills after `gracePeriodMs`. */
  stopContainer(id: string, options: { gracePeriodMs: number; signal?: AbortSignal }): Promise<void>;
  killContainer(id: string, options: { signal?: AbortSignal }): Promise<void>;
  /** Removes a stopped container (forcing a running one). */
  removeContainer(id: string, options: { signal?: AbortSignal }): Promise<void>;
  /** The image's own health check; undefined when it has none (or the image is not stored). Absent: images have no checks. */
  imageHealthcheck?(reference: string): ImageHealthcheck | undefined;
  /** Runs `command` in the running container and collects its output. Absent: health checks cannot run. */
  execInContainer?(id: string, command: readonly string[], options: { signal: AbortSignal }): Promise<{ exitCode: number; output: string }>;
}

export interface EngineExecutorOptions {
  /** The node id, written into container labels. */
  nodeId: string;
  engineVersion: string;
  engineLabels?: Labels;
}

/**
 * Swarm's container name, `<service name>.<slot>.<task>` (`docker ps` shows `web.1.…`);
 * global tasks (slot 0) use the node id, and tasks without a stored name the service id.
 */
export function taskContainerName(task: Task): string {
  const slot = task.slot === 0 ? task.nodeId : String(task.slot);
  return `${task.serviceName === "" ? task.serviceId : task.serviceName}.${slot}.${task.id}`;
}

/** The Docker swarm labels (so `docker ps --filter label=...` works) plus shoal's own. */
export function taskContainerLabels(task: Task): Labels {
  return {
    ...task.spec.containerSpec.labels,
    "com.docker.swarm.service.id": task.serviceId,
    "com.docker.swarm.task.id": task.id,
    "com.docker.swarm.node.id": task.nodeId,
    "com.docker.swarm.task.name": taskContainerName(task),
    "shoal.service.id": task.serviceId,
    "shoal.task.id": task.id,
    "shoal.node.id": task.nodeId,
    "shoal.task.slot": String(task.slot),
  };
}

/** The container a task asks for, following swarm: `command` replaces the entrypoint, `args` the command. */
export function taskContainerRequest(task: Task): TaskContainerRequest {
  const spec = task.spec.containerSpec;
  const limits = task.spec.resources.limits;
  const request: TaskContainerRequest = {
    name: taskContainerName(task),
    image: spec.image,
    env: [...spec.env],
    user: spec.user,
    workingDir: spec.dir,
    hostname: task.id.slice(0, 12),
    labels: taskContainerLabels(task),
    stopSignal: spec.stopSignal,
    stopGracePeriodMs: spec.stopGracePeriodMs,
    mounts: spec.mounts.map((mount) => ({ ...mount })),
    memoryBytes: limits.memoryBytes,
    nanoCPUs: limits.nanoCPUs,
  };
  if (spec.command.length > 0) {
    request.entrypoint = [...spec.command];
    request.cmd = [...spec.args];
  } else if (spec.args.length > 0) {
    request.cmd = [...spec.args];
  }
  return request;
}

class EngineTaskController implements TaskController {
  readonly #engine: ContainerEngine;
  readonly #task: Task;
  readonly #name: string;

  constructor(engine: ContainerEngine, task: Task) {
    this.#engine = engine;
    this.#task = task;
    this.#name = taskContainerName(task);
  }

  async prepare(options: { signal?: AbortSignal }): Promise<void> {
    if (this.#engine.inspectContainer(this.#name) !== undefined) return;
    const image = this.#task.spec.containerSpec.image;
    if (!this.#engine.hasImage(image)) await this.#engine.pullImage(image, options);
    await this.#engine.createContainer(taskContainerRequest(this.#task), options);
  }

  async start(options: { signal?: AbortSignal }): Promise<void> {
    const state = this.#require();
    if (state.status === "running") return;
    await this.#engine.startContainer(state.id, options);
  }

  async wait(options: { signal?: AbortSignal }): Promise<TaskExit> {
    const state = this.#require();
    const exit = await this.#engine.waitContainer(state.id, options);
    return { exitCode: exit.exitCode, message: exit.oomKilled ? "OOM killed" : "" };
  }

  async shutdown(options: { signal?: AbortSignal }): Promise<void> {
    const state = this.#engine.inspectContainer(this.#name);
    if (state?.status !== "running") return;
    await this.#engine.stopContainer(state.id, { ...options, gracePeriodMs: this.#task.spec.containerSpec.stopGracePeriodMs });
  }

  async terminate(options: { signal?: AbortSignal }): Promise<void> {
    const state = this.#engine.inspectContainer(this.#name);
    if (state?.status !== "running") return;
    await this.#engine.killContainer(state.id, options);
  }

  async remove(options: { signal?: AbortSignal }): Promise<void> {
    const state = this.#engine.inspectContainer(this.#name);
    if (state === undefined) return;
    await this.#engine.removeContainer(state.id, options);
  }

  healthcheck(): TaskHealthcheck | undefined {
    const exec = this.#engine.execInContainer?.bind(this.#engine);
    if (exec === undefined) return undefined;
    const check = resolveHealthcheck(this.#task.spec.containerSpec.healthcheck, this.#engine.imageHealthcheck?.(this.#task.spec.containerSpec.image));
    if (check === undefined) return undefined;
    return { check, probe: (command, options) => exec(this.#require().id, command, options) };
  }

  containerStatus(): ContainerStatus | undefined {
    const state = this.#engine.inspectContainer(this.#name);
    if (state === undefined) return undefined;
    return { containerId: state.id, pid: state.pid, exitCode: state.exitCode ?? -1 };
  }

  close(): void {
    // Holds nothing beyond the engine reference, which the executor's owner closes.
  }

  #require(): EngineContainerState {
    const state = this.#engine.inspectContainer(this.#name);
    if (state === undefined) throw new NotFoundError(`container ${this.#name} of task ${this.#task.id} does not exist; it was removed outside the cluster`);
    return state;
  }
}

const architectures: Readonly<Record<string, string>> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", s390x: "s390x", ppc64: "ppc64le" };

/** An executor that runs tasks as containers of the embedded engine. */
export function createEngineExecutor(engine: ContainerEngine, options: EngineExecutorOptions): Executor {
  return {
    describe: () =>
      Promise.resolve<NodeDescription>({
        hostname: hostname(),
        platform: { os: process.platform, architecture: architectures[process.arch] ?? process.arch },
        resources: { nanoCPUs: cpus().length * 1_000_000_000, memoryBytes: totalmem() },
        engine: { engineVersion: options.engineVersion, labels: { ...options.engineLabels } },
      }),
    controller: (task) => new EngineTaskController(engine, { ...task, nodeId: task.nodeId === "" ? options.nodeId : task.nodeId }),
  };
}
