import type { Clock } from "../../common/clock.js";
import { Throttle } from "../../common/throttle.js";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnavailableError,
  errorMessage,
} from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { isForwardTransition, taskStateRank, type TaskStatus } from "../objects/index.js";
import type { MemoryStore, ReadTx } from "../store/index.js";
import type { StatusUpdate } from "./wire.js";

/**
 * At most one flush per interval (see Throttle), so an update waits at most this long
 * after the flush before it. Every hop of a converge or a rollout waits on a flush (the
 * worker reports the next change once the last is committed), so the interval is short;
 * a busy cluster still writes at most 50 batches a second (swarmkit's dispatcher flushes
 * every 100 ms, maxBatchInterval).
 */
export const statusFlushIntervalMs = 20;
/** Updates waiting for a flush; beyond this, requests are refused until the store catches up. */
export const pendingStatusUpdatesMax = 10_000;

const acceptedRank = taskStateRank("accepted");

interface Waiter {
  resolve: () => void;
  reject: (error: Error) => void;
}

interface PendingUpdate {
  nodeId: string;
  status: TaskStatus;
}

/**
 * Collects task status updates from every worker and writes them to the store in few
 * transactions: each request is checked against the store when it arrives (so the worker
 * hears about its mistakes), then waits for the throttled flush that commits it.
 */
export class StatusBatcher {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  #pending = new Map<string, PendingUpdate>();
  #waiters: Waiter[] = [];
  readonly #flushes: Throttle;
  #flushing: Promise<void> | undefined;
  #closed = false;

  constructor(options: { store: MemoryStore; clock: Clock; logger: Logger }) {
    this.#store = options.store;
    this.#logger = options.logger;
    this.#flushes = new Throttle({
      clock: options.clock,
      intervalMs: statusFlushIntervalMs,
      run: () => this.#startFlush(),
    });
  }

  /**
   * Queues `updates` from `nodeId` and resolves once they are committed. Throws
   * PermissionDeniedError when a task is assigned to another node, FailedPreconditionError
   * when a state would move backwards, InvalidArgumentError for a state only the manager
   * sets, ResourceExhaustedError when too many updates wait, UnavailableError after close.
   * Updates for tasks that no longer exist are dropped (and logged): the worker learns
   * from its assignments that they are gone.
   */
  submit(nodeId: string, updates: readonly StatusUpdate[]): Promise<void> {
    if (this.#closed) return Promise.reject(new UnavailableError("the dispatcher is stopping; report the task status to the new leader"));
    if (this.#pending.size + updates.length > pendingStatusUpdatesMax) {
      return Promise.reject(new ResourceExhaustedError(`more than ${pendingStatusUpdatesMax} task status updates are waiting to be written; retry shortly`));
    }
    try {
      this.#store.view((tx) => this.#check(tx, nodeId, updates));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new InvalidArgumentError(errorMessage(error)));
    }
    const accepted = updates.filter((update) => this.#pending.has(update.taskId) || this.#store.view((tx) => tx.get("task", update.taskId)) !== undefined);
    if (accepted.length < updates.length) this.#logger.debug({ nodeId, dropped: updates.length - accepted.length }, "dropped status updates for deleted tasks");
    if (accepted.length === 0) return Promise.resolve();
    for (const update of accepted) this.#pending.set(update.taskId, { nodeId, status: update.status });
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    this.#flushes.note();
    return done;
  }

  /** Fails waiting requests and stops timers; a flush in progress finishes. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#flushes.cancel();
    const waiters = this.#waiters;
    this.#waiters = [];
    this.#pending = new Map();
    for (const waiter of waiters) waiter.reject(new UnavailableError("the dispatcher stopped before the status update was written; report it again"));
    await this.#flushing;
  }

  #check(tx: ReadTx, nodeId: string, updates: readonly StatusUpdate[]): void {
    for (const { taskId, status } of updates) {
      if (taskStateRank(status.state) < acceptedRank) {
        throw new InvalidArgumentError(`task ${taskId}: a worker reports states from "accepted" on, not "${status.state}"`);
      }
      const task = tx.get("task", taskId);
      if (task === undefined) continue;
      if (task.nodeId !== nodeId) throw new PermissionDeniedError(`task ${taskId} is not assigned to node ${nodeId}`);
      const current = this.#pending.get(taskId)?.status.state ?? task.status.state;
      if (!isForwardTransition(current, status.state)) {
        throw new FailedPreconditionError(`task ${taskId} is "${current}"; it cannot move back to "${status.state}"`);
      }
    }
  }

  #startFlush(): void {
    if (this.#flushing !== undefined) {
      // The running flush reschedules what arrived meanwhile.
      return;
    }
    this.#flushing = this.#flush().finally(() => {
      this.#flushing = undefined;
      if (this.#pending.size > 0 && !this.#closed) this.#flushes.note();
    });
  }

  async #flush(): Promise<void> {
    const pending = this.#pending;
    const waiters = this.#waiters;
    this.#pending = new Map();
    this.#waiters = [];
    if (pending.size === 0) return;
    let skipped = 0;
    try {
      await this.#store.batch(async (batch) => {
        for (const [taskId, update] of pending) {
          await batch.update((tx) => {
            const task = tx.get("task", taskId);
            // Re-checked under the write: the task may have moved or been deleted since submit.
            if (task === undefined || task.nodeId !== update.nodeId || !isForwardTransition(task.status.state, update.status.state)) {
              skipped += 1;
              return;
            }
            tx.update("task", { ...task, status: update.status });
          });
        }
      });
    } catch (error) {
      this.#logger.warn({ err: error, updates: pending.size }, "writing task status updates failed; workers will report again");
      for (const waiter of waiters) waiter.reject(error instanceof Error ? error : new UnavailableError(errorMessage(error)));
      return;
    }
    if (skipped > 0) this.#logger.debug({ skipped }, "status updates overtaken by other changes were not written");
    for (const waiter of waiters) waiter.resolve();
  }
}
