import type { Clock } from "../common/clock.js";
import { CancelledError, errorMessage } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { isTerminalTaskState, taskStateRank, type Task, type TaskStatus } from "../manager/objects/index.js";
import { advanceTask } from "./advance.js";
import type { TaskController } from "./controller.js";

/** Wait after a step failed in a way advanceTask could not turn into a status. */
export const stepRetryDelayMs = 1_000;

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
    this.#closeController();
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
        await this.#idle();
        continue;
      }
      const step = new AbortController();
      this.#step = step;
      let status: TaskStatus;
      try {
        status = await advanceTask(this.#task, this.#controller, { now: () => this.#clock.now(), signal: step.signal });
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

  async #removeContainer(): Promise<void> {
    const options = { signal: this.#closed.signal };
    try {
      if (!isTerminalTaskState(this.#task.status.state) && taskStateRank(this.#task.status.state) >= taskStateRank("starting")) {
        await this.#controller.shutdown(options).catch(() => this.#controller.terminate(options));
      }
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
