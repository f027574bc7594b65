import type { Clock } from "../common/clock.js";
import { CancelledError, errorMessage } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { isTerminalTaskState, taskStateRank, type Task, type TaskHealth, type TaskStatus } from "../manager/objects/index.js";
import { advanceTask } from "./advance.js";
import type { TaskController } from "./controller.js";
import { HealthMonitor } from "./health-monitor.js";

/** Wait after a step failed in a way advanceTask could not turn into a status. */
export const stepRetryDelayMs = 1_000;
/**
 * How long a running task that load balancers reach (overlay VIPs, ingress ports) keeps
 * serving after it is told to stop: every node's balancer drops it first. The manager sends
 * the network map within 50 ms of the change and each node applies it within 200 ms.
 */
export const balancerDrainMs = 600;

const runningRank = taskStateRank("running");

export interface TaskRunnerHooks {
  /** The task reached a new state (already applied to `runner.task`). */
  onStatus(task: Task): void;
  /** The task was removed: its container is gone and the runner has ended. */
  onRemoved(taskId: string): void;
}

/**
 * Runs one task: calls advanceTask until the task is terminal, follows new versions of
 * the task from the manager, and on removal shuts the container down and removes it.
 * Closing (agent stop) leaves the container as it is, so a restarted agent re-adopts it.
 */
export class TaskRunner {
  #task: Task;
  readonly #controller: TaskController;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #hooks: TaskRunnerHooks;
  readonly #closed = new AbortController();
  #step: AbortController | null = null;
  #wake: (() => void) | null = null;
  /** Set by update/remove/close, so a change that arrives during a step is not missed. */
  #poked = false;
  #removing = false;
  #done: Promise<void> | null = null;
  #controllerClosed = false;
  #health: HealthMonitor | null = null;
  /** Whether the health check was looked up for the current run of the container. */
  #healthResolved = false;
  /** The last check's output once the health check found the container unhealthy. */
  #unhealthyOutput: string | undefined;
  #drainedFromBalancers = false;

  constructor(options: { task: Task; controller: TaskController; clock: Clock; logger: Logger; hooks: TaskRunnerHooks }) {
    this.#task = options.task;
    this.#controller = options.controller;
    this.#clock = options.clock;
    this.#logger = options.logger.child({ taskId: options.task.id });
    this.#hooks = options.hooks;
  }

  /** The task with the status this worker observed. */
  get task(): Task {
    return this.#task;
  }

  start(): void {
    this.#done ??= this.#run().catch((error: unknown) => {
      if (!this.#closed.signal.aborted) this.#logger.error({ err: error }, "task runner ended unexpectedly");
    });
  }

  /**
   * Takes a new version of the task from the manager, keeping the observed status. A
   * desired state beyond running interrupts the step in progress (a wait, a pull) so the
   * container is stopped without delay.
   */
  update(task: Task): void {
    this.#task = { ...task, status: this.#task.status };
    if (taskStateRank(task.desiredState) > runningRank) this.#step?.abort();
    this.#poke();
  }

  /** The task is assigned no more: stop and remove its container, then end. */
  remove(): void {
    this.#removing = true;
    this.#step?.abort();
    this.#poke();
  }

  /** Ends the runner without touching the container. */
  async close(): Promise<void> {
    this.#closed.abort();
    this.#step?.abort();
    this.#poke();
    await this.#done;
    await this.#stopHealth();
    this.#closeController();
  }

  /** Starts the task's health check (if it has one) once its container runs; returns the status to report. */
  #startHealth(status: TaskStatus): TaskStatus {
    if (this.#healthResolved) return status;
    this.#healthResolved = true;
    const healthcheck = this.#controller.healthcheck?.();
    if (healthcheck === undefined) return status;
    const monitor = new HealthMonitor({ ...healthcheck, clock: this.#clock, onChange: (health, output) => this.#onHealth(health, output) });
    this.#health = monitor;
    monitor.start();
    return { ...status, health: "starting" };
  }

  #onHealth(health: TaskHealth, output: string): void {
    if (this.#task.status.state !== "running") return;
    this.#logger.info({ health, output }, "health changed");
    this.#task = { ...this.#task, status: { ...this.#task.status, health, timestamp: this.#clock.now() } };
    this.#hooks.onStatus(this.#task);
    if (health === "unhealthy") {
      this.#unhealthyOutput = output;
      this.#step?.abort();
      this.#poke();
    }
  }

  async #stopHealth(): Promise<void> {
    const monitor = this.#health;
    this.#health = null;
    await monitor?.stop();
  }

  /** Stops a container its health check found unhealthy; the task fails and its restart policy applies. */
  async #failUnhealthy(output: string): Promise<TaskStatus> {
    await this.#stopHealth();
    const options = { signal: this.#closed.signal };
    await this.#controller
      .shutdown(options)
      .catch(() => this.#controller.terminate(options))
      .catch((error: unknown) => this.#logger.warn({ err: error }, "could not stop the unhealthy container; reporting the task failed anyway"));
    const status: TaskStatus = {
      state: "failed",
      timestamp: this.#clock.now(),
      message: "unhealthy container",
      err: output === "" ? "task: unhealthy container" : `task: unhealthy container: ${output}`,
      health: "unhealthy",
    };
    const container = this.#controller.containerStatus() ?? this.#task.status.containerStatus;
    if (container !== undefined) status.containerStatus = container;
    return status;
  }

  #closeController(): void {
    if (this.#controllerClosed) return;
    this.#controllerClosed = true;
    this.#controller.close();
  }

  #poke(): void {
    this.#poked = true;
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Waits for the next poke; returns at once when one came since the last step began. */
  async #idle(): Promise<void> {
    if (this.#poked) return;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
  }

  async #run(): Promise<void> {
    while (!this.#closed.signal.aborted) {
      this.#poked = false;
      if (this.#removing) {
        await this.#removeContainer();
        return;
      }
      if (isTerminalTaskState(this.#task.status.state)) {
        await this.#stopHealth();
        await this.#idle();
        continue;
      }
      if (this.#task.status.state === "running") {
        // A container re-adopted after an agent restart is checked again from "starting".
        const checked = this.#startHealth(this.#task.status);
        if (checked !== this.#task.status) this.#task = { ...this.#task, status: checked };
        const unhealthy = this.#unhealthyOutput;
        if (unhealthy !== undefined && taskStateRank(this.#task.desiredState) <= runningRank) {
          this.#task = { ...this.#task, status: await this.#failUnhealthy(unhealthy) };
          this.#hooks.onStatus(this.#task);
          continue;
        }
      }
      if (this.#mustDrainFromBalancers()) {
        this.#drainedFromBalancers = true;
        await this.#clock.sleep(balancerDrainMs, { signal: this.#closed.signal }).catch(() => undefined);
        continue;
      }
      const step = new AbortController();
      this.#step = step;
      let status: TaskStatus;
      try {
        status = await advanceTask(this.#task, this.#controller, { now: () => this.#clock.now(), signal: step.signal });
        if (status.state === "running" && this.#task.status.state !== "running") status = this.#startHealth(status);
      } catch (error) {
        if (error instanceof CancelledError || step.signal.aborted) continue;
        this.#logger.warn({ err: error }, "task step failed; retrying");
        await this.#clock.sleep(stepRetryDelayMs, { signal: this.#closed.signal }).catch(() => undefined);
        continue;
      } finally {
        this.#step = null;
      }
      if (status === this.#task.status) {
        await this.#idle();
        continue;
      }
      this.#task = { ...this.#task, status };
      this.#hooks.onStatus(this.#task);
    }
  }

  #mustDrainFromBalancers(): boolean {
    const task = this.#task;
    if (this.#drainedFromBalancers || task.status.state !== "running" || taskStateRank(task.desiredState) <= runningRank) return false;
    return (task.networkAttachments?.length ?? 0) > 0 || task.endpoint.ports.some((port) => port.publishMode === "ingress");
  }

  async #removeContainer(): Promise<void> {
    const options = { signal: this.#closed.signal };
    try {
      if (!isTerminalTaskState(this.#task.status.state) && taskStateRank(this.#task.status.state) >= taskStateRank("starting")) {
        await this.#controller.shutdown(options).catch(() => this.#controller.terminate(options));
      }
      await this.#stopHealth();
      await this.#controller.remove(options);
    } catch (error) {
      if (this.#closed.signal.aborted) return;
      // The task is gone from the cluster either way; a container left behind is logged for the operator.
      this.#logger.warn({ err: error }, `could not remove the task's container: ${errorMessage(error)}`);
    }
    this.#closeController();
    this.#hooks.onRemoved(this.#task.id);
  }
}
