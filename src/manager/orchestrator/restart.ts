import type { Clock } from "../../common/clock.js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { RestartPolicy, Service, Task } from "../objects/index.js";
import type { MemoryStore, ReadTx, StoreObjectEvent, WriteTx } from "../store/index.js";
import { resolveOrchestratorOptions, type OrchestratorOptions } from "./options.js";
import { runReconcileLoop, type Reconciler } from "./reconcile-loop.js";
import { findSlotTasks, isLiveTask, isTaskFinished, newServiceTask, taskSlotKey, withDesiredState } from "./task.js";
import { KeyedTimers } from "./keyed-timers.js";

/**
 * Delayed restarts waiting on a timer at once. Past this, a restart starts without its
 * delay (and says so in the log) rather than holding an unbounded number of timers.
 */
export const delayedStartsMax = 100_000;
/** Wait before retrying to start a delayed task whose write failed. */
export const delayedStartRetryMs = 1_000;
/**
 * How long past the old task's stop grace period a stop-first update's new task waits for
 * the old one to be reported stopped before it starts anyway (a worker that went silent).
 */
export const stopFirstWaitMarginMs = 5_000;

/** A task told to stop that its node (known and not down) has not reported stopped yet. */
function isStopping(tx: ReadTx, task: Task): boolean {
  if (isLiveTask(task) || isTaskFinished(task) || task.nodeId === "") return false;
  const node = tx.get("node", task.nodeId);
  return node !== undefined && node.status.state !== "down";
}

/**
 * When a task created with desired state "ready" may start. A restart (attempt > 0) waits
 * for its restart delay. A first task of its slot made "ready" is a stop-first update's
 * (swarmkit's DelayStart with waitStop): it starts once the old tasks of its slot are
 * reported stopped, at the latest their stop grace period plus stopFirstWaitMarginMs after
 * it was created.
 */
export function delayedStartDueAt(tx: ReadTx, task: Task): number {
  if (task.attempt > 0) return task.meta.createdAt + task.spec.restartPolicy.delayMs;
  const stopping = findSlotTasks(tx, task).filter((other) => other.id !== task.id && isStopping(tx, other));
  if (stopping.length === 0) return task.meta.createdAt;
  return task.meta.createdAt + Math.max(...stopping.map((other) => other.spec.containerSpec.stopGracePeriodMs)) + stopFirstWaitMarginMs;
}

/** Whether the policy's condition calls for a restart of a task that ended in its state. */
export function restartConditionMet(policy: RestartPolicy, task: Task): boolean {
  switch (policy.condition) {
    case "none":
      return false;
    case "on-failure":
      return task.status.state !== "complete";
    case "any":
      return true;
  }
}

/**
 * Restarts already made in `task`'s slot that count against maxAttempts. The history is
 * the store's, not memory's: without a window it is the task's own attempt counter; with
 * one, the retained restarted tasks of the slot created within the window (the reaper keeps
 * taskHistoryRetentionLimit of them, so a window counts at most that many).
 */
export function restartsCounted(tx: ReadTx, task: Task, options: { policy: RestartPolicy; now: number }): number {
  const { policy, now } = options;
  if (policy.windowMs === 0) return task.attempt;
  const windowStart = now - policy.windowMs;
  return findSlotTasks(tx, task).filter((other) => other.attempt > 0 && other.meta.createdAt >= windowStart).length;
}

/**
 * Replaces `task` by a new task in the same slot (same node for global services): the old
 * one is told to shut down and the new one starts, when `delayed`, after the service's
 * restart delay (desired state "ready" until then; the restart supervisor raises it). Used
 * for failed tasks (delayed) and for tasks stranded on a node that went down or was
 * drained (at once).
 */
export function replaceTask(tx: WriteTx, options: { task: Task; service: Service; now: number; id: string; reason: string; delayed: boolean }): Task {
  const { task, service } = options;
  tx.update("task", withDesiredState(task, "shutdown"));
  const delayMs = options.delayed ? service.spec.taskTemplate.restartPolicy.delayMs : 0;
  return tx.create(
    "task",
    newServiceTask({
      id: options.id,
      service,
      slot: task.slot,
      nodeId: task.slot === 0 ? task.nodeId : "",
      attempt: task.attempt + 1,
      desiredState: delayMs > 0 ? "ready" : "running",
      now: options.now,
      message: options.reason,
    }),
  );
}

/** A task that ended (or never started) while still meant to run. */
function awaitsRestartDecision(task: Task): boolean {
  return isLiveTask(task) && isTaskFinished(task);
}

/**
 * The restart supervisor (swarmkit manager/orchestrator/restart): when a task ends while
 * its desired state is still running, it applies the service's restart policy by
 * replacing the task in its slot, and starts delayed replacements when their delay is up
 * (and a stop-first update's new task once the old one stopped: delayedStartDueAt).
 * Delays are timers on the injected clock, re-armed on start from each waiting task's
 * creation time, so a restart delay survives a leader change. A task the policy does not
 * restart keeps its slot, as in swarm: the service then runs below its replica count.
 */
export class RestartSupervisor implements Reconciler {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #newId: () => string;
  readonly #dirty = new Set<string>();
  readonly #timers: KeyedTimers;
  /** Slots where a task was reported stopped: a stop-first start waiting there may be due now. */
  readonly #stoppedSlots = new Map<string, Pick<Task, "serviceId" | "slot" | "nodeId">>();
  #signal: AbortSignal | undefined;

  constructor(options: OrchestratorOptions) {
    const resolved = resolveOrchestratorOptions(options, "restart-supervisor");
    this.#store = resolved.store;
    this.#logger = resolved.logger;
    this.#clock = resolved.clock;
    this.#timers = new KeyedTimers(resolved.clock);
    this.#newId = resolved.newId;
  }

  /** Delayed restarts currently waiting on a timer. */
  get delayedStarts(): number {
    return this.#timers.size;
  }

  /** Supervises until `signal` fires; cancels every restart timer and waits for in-flight writes before returning. */
  async run(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    try {
      await runReconcileLoop({
        component: "restart-supervisor",
        store: this.#store,
        clock: this.#clock,
        logger: this.#logger,
        reconciler: this,
        filter: (event) => event.kind === "task",
        signal,
      });
    } finally {
      await this.#timers.stop();
    }
  }

  observe(event: StoreObjectEvent): void {
    if (event.kind !== "task") return;
    if (event.type === "deleted") {
      this.#timers.cancel(event.object.id);
      return;
    }
    const task = event.object;
    if (task.desiredState === "ready" || awaitsRestartDecision(task)) this.#dirty.add(task.id);
    else this.#timers.cancel(task.id);
    if (event.type === "updated" && !isLiveTask(task) && isTaskFinished(task) && !isTaskFinished(event.previous)) this.#stoppedSlots.set(taskSlotKey(task), task);
  }

  async reconcileAll(signal: AbortSignal): Promise<number> {
    this.#dirty.clear();
    this.#stoppedSlots.clear();
    const ids = this.#store.view((tx) =>
      tx
        .find("task")
        .filter((task) => task.desiredState === "ready" || awaitsRestartDecision(task))
        .map((task) => task.id),
    );
    await this.#reconcileTasks(ids, signal);
    return ids.length;
  }

  async reconcileDirty(signal: AbortSignal): Promise<number> {
    this.#store.view((tx) => {
      for (const slot of this.#stoppedSlots.values()) for (const task of findSlotTasks(tx, slot)) if (task.desiredState === "ready") this.#dirty.add(task.id);
    });
    this.#stoppedSlots.clear();
    const ids = [...this.#dirty];
    this.#dirty.clear();
    await this.#reconcileTasks(ids, signal);
    return ids.length;
  }

  async #reconcileTasks(ids: readonly string[], signal: AbortSignal): Promise<void> {
    if (ids.length === 0) return;
    const delayed: Array<{ task: Task; dueAt: number }> = [];
    await this.#store.batch(
      async (batch) => {
        for (const id of ids) {
          await batch.update((tx) => {
            const task = tx.get("task", id);
            if (task === undefined) return;
            if (awaitsRestartDecision(task)) this.#restartIfDue(tx, task);
            else if (task.desiredState === "ready") delayed.push({ task, dueAt: delayedStartDueAt(tx, task) });
          });
        }
      },
      { signal },
    );
    for (const { task, dueAt } of delayed) this.#armTimer(task, dueAt);
  }

  #restartIfDue(tx: WriteTx, task: Task): void {
    const service = tx.get("service", task.serviceId);
    // Tasks of a deleted service are the reaper's; they are never restarted.
    if (service === undefined) return;
    const policy = service.spec.taskTemplate.restartPolicy;
    if (!restartConditionMet(policy, task)) return;
    const now = this.#clock.now();
    if (policy.maxAttempts > 0) {
      const restarts = restartsCounted(tx, task, { policy, now });
      if (restarts >= policy.maxAttempts) {
        this.#logger.debug({ taskId: task.id, restarts }, "restart policy exhausted; the task stays ended");
        return;
      }
    }
    const reason = `restarted: task ${task.id} ended in state ${task.status.state}`;
    replaceTask(tx, { task, service, now, id: this.#newId(), reason, delayed: true });
  }

  /** Arms the task's start at `dueAt`, or moves an armed one earlier (a stop-first start whose old task stopped). */
  #armTimer(task: Task, dueAt: number): void {
    const armedAt = this.#timers.dueAt(task.id);
    if ((armedAt !== undefined && armedAt <= dueAt) || this.#signal?.aborted !== false) return;
    this.#timers.cancel(task.id);
    const now = this.#clock.now();
    const crowded = this.#timers.size >= delayedStartsMax;
    if (crowded && dueAt > now) {
      this.#logger.warn({ taskId: task.id, delayedStartsMax }, "too many delayed restarts waiting; starting this one now");
    }
    this.#timers.arm(task.id, crowded ? now : dueAt, () => this.#startDelayed(task.id));
  }

  async #startDelayed(id: string): Promise<void> {
    const signal = this.#signal;
    if (signal === undefined || signal.aborted) return;
    try {
      await this.#store.update(
        (tx) => {
          const task = tx.get("task", id);
          if (task?.desiredState === "ready") tx.update("task", withDesiredState(task, "running"));
        },
        { signal },
      );
    } catch (error) {
      if (signal.aborted) return;
      this.#logger.warn({ taskId: id, err: errorMessage(error), retryInMs: delayedStartRetryMs }, "could not start a delayed restart; retrying");
      this.#timers.arm(id, this.#clock.now() + delayedStartRetryMs, () => this.#startDelayed(id));
    }
  }
}
