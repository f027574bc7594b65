import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import { clusterDefaults, taskStateRank, type Task } from "../objects/index.js";
import type { MemoryStore, ReadTx, StoreObjectEvent } from "../store/index.js";
import { resolveOrchestratorOptions, type OrchestratorOptions } from "./options.js";
import { runReconcileLoop, type Reconciler } from "./reconcile-loop.js";
import { findSlotTasks, isHistoricTask, isLiveTask, isTaskFinished, taskSlotKey } from "./task.js";

const assignedRank = taskStateRank("assigned");

/** One slot to look at: enough of a task to find its slot's tasks again. */
type SlotRef = Pick<Task, "serviceId" | "slot" | "nodeId">;

/**
 * Whether deleting a stopped task loses nothing a worker still needs: it has ended, it
 * never reached a node, or its node is gone or down (nobody will report on it).
 */
function isDeletable(tx: ReadTx, task: Task): boolean {
  if (isTaskFinished(task)) return true;
  if (task.nodeId === "" || taskStateRank(task.status.state) < assignedRank) return true;
  const node = tx.get("node", task.nodeId);
  return node === undefined || node.status.state === "down";
}

/** Newest first: by creation time, then attempt (creation times tie on a fast leader). */
function newerFirst(left: Task, right: Task): number {
  return right.meta.createdAt - left.meta.createdAt || right.attempt - left.attempt;
}

/**
 * Which of a slot's tasks to delete: stopped tasks past the history limit (swarmkit
 * manager/orchestrator/taskreaper), tasks meant for removal (scale-down, deleted service),
 * tasks of a deleted service, and stopped tasks of a removed node, each once deletable.
 */
export function slotTasksToDelete(tx: ReadTx, slot: SlotRef, historyLimit: number): string[] {
  const tasks = findSlotTasks(tx, slot);
  const serviceGone = tx.get("service", slot.serviceId) === undefined;
  const doomed: string[] = [];
  const history: Task[] = [];
  for (const task of tasks) {
    if (!isHistoricTask(task) && !serviceGone) continue;
    const nodeGone = task.nodeId !== "" && tx.get("node", task.nodeId) === undefined;
    if (task.desiredState === "remove" || serviceGone || nodeGone) {
      if (isDeletable(tx, task)) doomed.push(task.id);
    } else {
      history.push(task);
    }
  }
  history.sort(newerFirst);
  for (const task of history.slice(Math.max(0, historyLimit))) if (isDeletable(tx, task)) doomed.push(task.id);
  return doomed;
}

/**
 * The task reaper: keeps at most the cluster's taskHistoryRetentionLimit stopped tasks per
 * slot (per node for global services) and deletes the tasks of scaled-down slots, deleted
 * services and removed nodes once nothing runs them. Deletions go out in batches.
 */
export class TaskReaper implements Reconciler {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #dirtySlots = new Map<string, SlotRef>();
  readonly #dirtyServices = new Set<string>();
  readonly #dirtyNodes = new Set<string>();
  #allDirty = false;

  constructor(options: OrchestratorOptions) {
    const resolved = resolveOrchestratorOptions(options, "task-reaper");
    this.#store = resolved.store;
    this.#logger = resolved.logger;
    this.#clock = resolved.clock;
  }

  /** Reaps until `signal` fires. */
  async run(signal: AbortSignal): Promise<void> {
    await runReconcileLoop({
      component: "task-reaper",
      store: this.#store,
      clock: this.#clock,
      logger: this.#logger,
      reconciler: this,
      // New nodes and services never make a task deletable; everything else may.
      filter: (event) => event.type !== "created" || event.kind === "task" || event.kind === "cluster",
      signal,
    });
  }

  observe(event: StoreObjectEvent): void {
    switch (event.kind) {
      case "task":
        if (event.type !== "deleted" && !isLiveTask(event.object)) this.#dirtySlots.set(taskSlotKey(event.object), event.object);
        return;
      case "service":
        if (event.type === "deleted") this.#dirtyServices.add(event.object.id);
        return;
      case "node":
        if (event.type === "deleted" || event.object.status.state === "down") this.#dirtyNodes.add(event.object.id);
        return;
      case "cluster":
        this.#allDirty = true;
        return;
    }
  }

  async reconcileAll(signal: AbortSignal): Promise<number> {
    this.#allDirty = false;
    this.#dirtySlots.clear();
    this.#dirtyServices.clear();
    this.#dirtyNodes.clear();
    const slots = new Map<string, SlotRef>();
    this.#store.view((tx) => {
      for (const task of tx.find("task")) slots.set(taskSlotKey(task), task);
    });
    await this.#reap([...slots.values()], signal);
    return slots.size;
  }

  async reconcileDirty(signal: AbortSignal): Promise<number> {
    if (this.#allDirty) return this.reconcileAll(signal);
    const slots = new Map(this.#dirtySlots);
    this.#store.view((tx) => {
      for (const serviceId of this.#dirtyServices) for (const task of tx.find("task", { by: "serviceId", serviceId })) slots.set(taskSlotKey(task), task);
      for (const nodeId of this.#dirtyNodes) for (const task of tx.find("task", { by: "nodeId", nodeId })) slots.set(taskSlotKey(task), task);
    });
    this.#dirtySlots.clear();
    this.#dirtyServices.clear();
    this.#dirtyNodes.clear();
    await this.#reap([...slots.values()], signal);
    return slots.size;
  }

  async #reap(slots: readonly SlotRef[], signal: AbortSignal): Promise<void> {
    if (slots.length === 0) return;
    const doomed = this.#store.view((tx) => {
      const limit = tx.find("cluster")[0]?.spec.taskHistoryRetentionLimit ?? clusterDefaults.taskHistoryRetentionLimit;
      return slots.flatMap((slot) => slotTasksToDelete(tx, slot, limit));
    });
    if (doomed.length === 0) return;
    await this.#store.batch(
      async (batch) => {
        // Re-checked at write time: a node that came back makes its stopped tasks live history again.
        for (const id of doomed) {
          await batch.update((tx) => {
            const task = tx.get("task", id);
            if (task !== undefined && isDeletable(tx, task)) tx.delete("task", id);
          });
        }
      },
      { signal },
    );
    this.#logger.debug({ deleted: doomed.length }, "reaped tasks");
  }
}
