import diagnosticsChannel from "node:diagnostics_channel";

import { systemClock, type Clock } from "../../common/clock.js";
import { Throttle } from "../../common/throttle.js";
import { errorMessage, ResourceExhaustedError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { isTerminalTaskState, taskStateRank, type Node, type Task } from "../objects/index.js";
import type { MemoryStore, StoreEvent, StoreObjectEvent } from "../store/index.js";
import { buildNodeInfos, scheduleTasks } from "../../scheduler/index.js";

/**
 * At most one pass per interval (see Throttle): a change waits at most this long after the
 * pass before it. swarmkit's scheduler debounces by the same 50 ms (commitDebounceGap).
 */
export const passIntervalMs = 50;
/** First wait before retrying a pass that failed (a lost write race, leadership moving); doubles per failure. */
export const passRetryDelayMs = 200;
export const passRetryDelayMsMax = 10_000;

/**
 * Published after every pass that had tasks to place:
 * `{ assigned, unschedulable, written, durationMs, version }` (counts, never task objects).
 */
export const taskAssignedChannel = diagnosticsChannel.channel("shoal:scheduler:task-assigned");

export interface TaskAssignedMessage {
  assigned: number;
  unschedulable: number;
  /** Tasks whose store object changed (unschedulable tasks whose message is unchanged are not rewritten). */
  written: number;
  durationMs: number;
  version: number;
}

const runningRank = taskStateRank("running");

/** A task waiting for a node: not yet assigned, and meant to run (now or after a restart delay). */
export function needsPlacement(task: Task): boolean {
  return (task.status.state === "new" || task.status.state === "pending") && taskStateRank(task.desiredState) <= runningRank;
}

/** A task that holds resources on its node: placed and not yet ended. */
function holdsResources(task: Task): boolean {
  return task.nodeId !== "" && !needsPlacement(task) && !isTerminalTaskState(task.status.state);
}

/**
 * Whether an event can change what a pass would decide. A task that comes to need a node
 * always can. A node's change, or resources held or freed, can only while some task waits
 * for a node: otherwise a pass would find nothing to do, yet start an interval that the
 * next service's tasks would have to wait out (the removal of one service right before
 * the creation of the next one cost a converge 50 ms).
 */
function eventMatters(event: StoreObjectEvent, tasksWaiting: boolean): boolean {
  switch (event.kind) {
    case "node":
      return tasksWaiting;
    case "task":
      if (event.type === "created") return needsPlacement(event.object);
      if (event.type === "deleted") return tasksWaiting && holdsResources(event.object);
      return (
        (needsPlacement(event.object) && !needsPlacement(event.previous)) ||
        (tasksWaiting && holdsResources(event.object) !== holdsResources(event.previous))
      );
    case "service":
    case "cluster":
    case "network":
      return false;
  }
}

interface TaskWrite {
  read: Task;
  nodeId: string;
  message: string;
}

export interface SchedulerOptions {
  store: MemoryStore;
  logger: Logger;
  clock?: Clock;
}

/**
 * The scheduler's driver (swarmkit manager/scheduler/scheduler.go): watches for tasks that
 * need a node and for changes that free or add capacity, runs at most once per
 * passIntervalMs (see Throttle), reads nodes and tasks once, places every waiting task in one call to the pure scheduleTasks, and writes the
 * assignments (state "assigned", nodeId) in one batch. Tasks no node can take move to
 * "pending" with the reason as their status message, written only when it changed.
 */
export class Scheduler {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  #signal: AbortSignal | undefined;
  readonly #passes: Throttle;
  /** Whether the last pass left tasks without a node (set when it decided, before it committed). */
  #tasksWaiting = false;
  #cancelRetry: (() => void) | undefined;
  #pass: Promise<void> | undefined;
  #passAgain = false;
  #retryDelayMs = passRetryDelayMs;
  /** Set once run() is leaving, so no timer starts a pass after it returned. */
  #stopped = false;

  constructor(options: SchedulerOptions) {
    this.#store = options.store;
    this.#logger = options.logger.child({ component: "scheduler" });
    this.#clock = options.clock ?? systemClock;
    this.#passes = new Throttle({
      clock: this.#clock,
      intervalMs: passIntervalMs,
      run: () => this.#startPass(),
    });
  }

  /**
   * Schedules until `signal` fires; returns once the last pass has finished. Rejects with
   * the watch's error when the store fails it for a reason other than falling behind
   * (UnavailableError once the store is closed).
   */
  async run(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    this.#stopped = false;
    try {
      while (!signal.aborted) {
        const events = this.#store.watch({ signal, filter: (event: StoreEvent) => event.type === "restored" || (event.type !== "commit" && eventMatters(event, this.#tasksWaiting)) });
        try {
          // A new leader places whatever was left waiting.
          this.#startPass();
          for await (const event of events) {
            if (event.type === "restored") this.#startPass();
            else this.#noteChange();
          }
        } catch (error) {
          if (signal.aborted) break;
          if (!(error instanceof ResourceExhaustedError)) throw error;
          this.#logger.warn({ err: errorMessage(error) }, "fell behind the store; re-reading everything");
        } finally {
          await events.return?.();
        }
      }
    } finally {
      this.#stopped = true;
      this.#passes.cancel();
      this.#cancelRetry?.();
      this.#cancelRetry = undefined;
      await this.#pass;
    }
  }

  #noteChange(): void {
    if (this.#stopped || this.#signal?.aborted !== false) return;
    this.#passes.note();
  }

  #startPass(): void {
    if (this.#stopped || this.#signal?.aborted !== false) return;
    if (this.#pass !== undefined) {
      this.#passAgain = true;
      return;
    }
    this.#passes.ranNow();
    this.#cancelRetry?.();
    this.#cancelRetry = undefined;
    this.#pass = this.#runPass().finally(() => {
      this.#pass = undefined;
      if (this.#passAgain) {
        this.#passAgain = false;
        this.#startPass();
      }
    });
  }

  async #runPass(): Promise<void> {
    const signal = this.#signal;
    if (signal === undefined || signal.aborted) return;
    try {
      await this.#placeWaitingTasks(signal);
      this.#retryDelayMs = passRetryDelayMs;
    } catch (error) {
      if (signal.aborted) return;
      this.#logger.warn({ err: errorMessage(error), retryInMs: this.#retryDelayMs }, "scheduling pass failed; retrying");
      this.#cancelRetry?.();
      this.#cancelRetry = this.#clock.setTimer(this.#retryDelayMs, () => {
        this.#cancelRetry = undefined;
        this.#startPass();
      });
      this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, passRetryDelayMsMax);
    }
  }

  async #placeWaitingTasks(signal: AbortSignal): Promise<void> {
    const startedAt = this.#clock.now();
    const { nodes, waiting, holding } = this.#store.view((tx) => {
      const tasks = tx.find("task");
      return { nodes: tx.find("node"), waiting: tasks.filter(needsPlacement), holding: tasks.filter(holdsResources) };
    });
    if (waiting.length === 0) {
      this.#tasksWaiting = false;
      return;
    }
    const writes = this.#decide(nodes, { waiting, holding });
    const assigned = writes.filter((write) => write.nodeId !== "").length;
    this.#tasksWaiting = assigned < waiting.length;
    const written = await this.#commit(writes, signal);
    const message: TaskAssignedMessage = {
      assigned,
      unschedulable: waiting.length - assigned,
      written,
      durationMs: this.#clock.now() - startedAt,
      version: this.#store.version,
    };
    if (taskAssignedChannel.hasSubscribers) taskAssignedChannel.publish(message);
    this.#logger.debug(message, "scheduling pass");
  }

  /** The writes a pass makes: every assignment, and unschedulable tasks whose state or message changes. */
  #decide(nodes: readonly Node[], tasks: { waiting: readonly Task[]; holding: readonly Task[] }): TaskWrite[] {
    const result = scheduleTasks(buildNodeInfos(nodes, tasks.holding), tasks.waiting);
    const writes: TaskWrite[] = [];
    for (const task of tasks.waiting) {
      const nodeId = result.assignments.get(task.id);
      if (nodeId !== undefined) {
        writes.push({ read: task, nodeId, message: "assigned by the scheduler" });
        continue;
      }
      const message = result.unschedulable.get(task.id) ?? "no suitable node";
      if (task.status.state !== "pending" || task.status.message !== message) writes.push({ read: task, nodeId: "", message });
    }
    return writes;
  }

  /** Writes the pass's decisions; a task changed since it was read is skipped and looked at again in another pass. */
  async #commit(writes: readonly TaskWrite[], signal: AbortSignal): Promise<number> {
    if (writes.length === 0) return 0;
    let written = 0;
    let skipped = 0;
    const now = this.#clock.now();
    await this.#store.batch(
      async (batch) => {
        for (const write of writes) {
          await batch.update((tx) => {
            const current = tx.get("task", write.read.id);
            if (current === undefined || current.meta.version !== write.read.meta.version) {
              skipped += 1;
              return;
            }
            const state = write.nodeId === "" ? "pending" : "assigned";
            const nodeId = write.nodeId === "" ? current.nodeId : write.nodeId;
            tx.update("task", { ...current, nodeId, status: { ...current.status, state, timestamp: now, message: write.message } });
            written += 1;
          });
        }
      },
      { signal },
    );
    if (skipped > 0) this.#noteChange();
    return written;
  }
}
