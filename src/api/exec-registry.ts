import { randomBytes } from "node:crypto";

import { NotFoundError, ResourceExhaustedError } from "../common/errors.js";
import type { ContainerService } from "../engine/runtime/containers.js";
import type { ExecOptions, ExecSession } from "../engine/runtime/exec.js";

/** Exec instances kept at once; finished ones are dropped oldest first to make room. */
export const execInstancesMax = 1024;

export interface ExecInstance {
  readonly id: string;
  readonly containerId: string;
  readonly options: Omit<ExecOptions, "signal">;
  running: boolean;
  exitCode: number | null;
  started: boolean;
}

/**
 * The Docker API creates an exec in one call and starts it in another; this keeps the
 * instances in between and after, so `GET /exec/{id}/json` can report the exit code.
 */
export class ExecRegistry {
  readonly #containers: ContainerService;
  readonly #instances = new Map<string, ExecInstance>();

  constructor(containers: ContainerService) {
    this.#containers = containers;
  }

  create(containerId: string, options: Omit<ExecOptions, "signal">): ExecInstance {
    if (this.#instances.size >= execInstancesMax) this.#evictFinished();
    const instance: ExecInstance = { id: randomBytes(32).toString("hex"), containerId, options, running: false, exitCode: null, started: false };
    this.#instances.set(instance.id, instance);
    return instance;
  }

  get(id: string): ExecInstance {
    const instance = this.#instances.get(id);
    if (instance === undefined) throw new NotFoundError(`no such exec instance: ${id}`);
    return instance;
  }

  /** Starts the instance's process; the exit code is recorded when it ends. */
  async start(instance: ExecInstance, signal: AbortSignal): Promise<ExecSession> {
    instance.started = true;
    const session = await this.#containers.exec(instance.containerId, { ...instance.options, signal });
    instance.running = true;
    session.exited.then(
      (code) => {
        instance.running = false;
        instance.exitCode = code;
      },
      () => {
        instance.running = false;
        instance.exitCode = 126;
      },
    );
    return session;
  }

  #evictFinished(): void {
    for (const [id, instance] of this.#instances) {
      if (!instance.running) {
        this.#instances.delete(id);
        return;
      }
    }
    throw new ResourceExhaustedError(`${execInstancesMax} exec instances are running: wait for some to finish`);
  }
}
