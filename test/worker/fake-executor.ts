import { CancelledError, NotFoundError } from "../../src/common/errors.js";
import type { ContainerStatus, NodeDescription, Task } from "../../src/manager/objects/index.js";
import type { Executor, TaskController, TaskExit } from "../../src/worker/index.js";

interface FakeContainer {
  state: "created" | "running" | "exited";
  exitCode: number;
  waiters: Set<(exit: TaskExit) => void>;
}

/**
 * Containers that outlive any one agent (as conmon-held containers do), driven by fake
 * controllers that record every call. Tests end a container with `exit`.
 */
export class FakeEngine {
  readonly containers = new Map<string, FakeContainer>();
  readonly calls: { taskId: string; call: string }[] = [];
  /** Makes prepare fail for these tasks. */
  readonly failPrepare = new Set<string>();

  callsOf(taskId: string): string[] {
    return this.calls.filter((entry) => entry.taskId === taskId).map((entry) => entry.call);
  }

  exit(taskId: string, exitCode: number): void {
    const container = this.containers.get(taskId);
    if (container === undefined || container.state !== "running") throw new Error(`container of ${taskId} is not running`);
    container.state = "exited";
    container.exitCode = exitCode;
    for (const waiter of container.waiters) waiter({ exitCode, message: "" });
    container.waiters.clear();
  }

  executor(): Executor {
    return {
      describe: (): Promise<NodeDescription> =>
        Promise.resolve({
          hostname: "fake-host",
          platform: { os: "linux", architecture: "amd64" },
          resources: { nanoCPUs: 1_000_000_000, memoryBytes: 1024 ** 3 },
          engine: { engineVersion: "test", labels: {} },
        }),
      controller: (task) => new FakeController(this, task),
    };
  }
}

class FakeController implements TaskController {
  readonly #engine: FakeEngine;
  readonly #taskId: string;

  constructor(engine: FakeEngine, task: Task) {
    this.#engine = engine;
    this.#taskId = task.id;
  }

  #record(call: string): void {
    this.#engine.calls.push({ taskId: this.#taskId, call });
  }

  #container(): FakeContainer {
    const container = this.#engine.containers.get(this.#taskId);
    if (container === undefined) throw new NotFoundError(`no container for ${this.#taskId}`);
    return container;
  }

  prepare(): Promise<void> {
    this.#record("prepare");
    if (this.#engine.failPrepare.has(this.#taskId)) return Promise.reject(new NotFoundError("image not found"));
    if (!this.#engine.containers.has(this.#taskId)) this.#engine.containers.set(this.#taskId, { state: "created", exitCode: -1, waiters: new Set() });
    return Promise.resolve();
  }

  start(): Promise<void> {
    this.#record("start");
    this.#container().state = "running";
    return Promise.resolve();
  }

  wait(options: { signal?: AbortSignal }): Promise<TaskExit> {
    this.#record("wait");
    const container = this.#container();
    if (container.state === "exited") return Promise.resolve({ exitCode: container.exitCode, message: "" });
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        container.waiters.delete(waiter);
        reject(new CancelledError("wait cancelled"));
      };
      const waiter = (exit: TaskExit): void => {
        options.signal?.removeEventListener("abort", onAbort);
        resolve(exit);
      };
      container.waiters.add(waiter);
      options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  shutdown(): Promise<void> {
    this.#record("shutdown");
    const container = this.#engine.containers.get(this.#taskId);
    if (container?.state === "running") this.#engine.exit(this.#taskId, 143);
    return Promise.resolve();
  }

  terminate(): Promise<void> {
    this.#record("terminate");
    const container = this.#engine.containers.get(this.#taskId);
    if (container?.state === "running") this.#engine.exit(this.#taskId, 137);
    return Promise.resolve();
  }

  remove(): Promise<void> {
    this.#record("remove");
    this.#engine.containers.delete(this.#taskId);
    return Promise.resolve();
  }

  containerStatus(): ContainerStatus | undefined {
    const container = this.#engine.containers.get(this.#taskId);
    if (container === undefined) return undefined;
    return { containerId: `c-${this.#taskId}`, pid: container.state === "running" ? 42 : 0, exitCode: container.exitCode };
  }

  close(): void {
    this.#record("close");
  }
}
