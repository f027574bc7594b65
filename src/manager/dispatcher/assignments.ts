import { networkAttachmentsReady } from "../allocator/index.js";
import { isTerminalTaskState, taskStateRank, type Task } from "../objects/index.js";
import type { ReadTx, StoreEvent } from "../store/index.js";

const assignedRank = taskStateRank("assigned");
const runningRank = taskStateRank("running");

/**
 * Whether `task` belongs in `nodeId`'s assignment set: the scheduler has placed it there
 * (state assigned or later) and the worker still has work to do for it, either running it
 * (desired state up to running) or stopping it (a later desired state while the task has
 * not yet reached a terminal state). Once a task is terminal and no longer wanted it drops
 * out, which tells the worker to remove its container.
 */
export function isAssignedTo(task: Task, nodeId: string): boolean {
  if (task.nodeId !== nodeId) return false;
  if (taskStateRank(task.status.state) < assignedRank) return false;
  // A task that attaches to networks waits for its addresses: the worker builds its interfaces from them.
  if (!networkAttachmentsReady(task)) return false;
  if (taskStateRank(task.desiredState) <= runningRank) return true;
  return !isTerminalTaskState(task.status.state);
}

/** The full assignment set of a node, read from one consistent view. */
export function assignedTasks(tx: ReadTx, nodeId: string): Task[] {
  return tx.find("task", { by: "nodeId", nodeId }).filter((task) => isAssignedTo(task, nodeId));
}

/** Whether a store event may change `nodeId`'s assignments (watch filter). */
export function concernsNode(event: StoreEvent, nodeId: string): boolean {
  switch (event.type) {
    case "commit":
    case "restored":
      return true;
    case "created":
    case "deleted":
      return event.kind === "task" && event.object.nodeId === nodeId;
    case "updated":
      return event.kind === "task" && (event.object.nodeId === nodeId || event.previous.nodeId === nodeId);
  }
}

export interface AssignmentDelta {
  updates: Task[];
  removes: string[];
}

/**
 * What a node has been sent so far (task id -> the version sent), turning store changes
 * into deltas: a task is re-sent when its stored version moved, and removed once it no
 * longer belongs to the node.
 */
export class AssignmentSet {
  readonly #nodeId: string;
  readonly #sent = new Map<string, number>();
  readonly #pending = new Map<string, Task | null>();

  constructor(nodeId: string) {
    this.#nodeId = nodeId;
  }

  /** Replaces what was sent with `tasks` (a COMPLETE message). */
  reset(tasks: readonly Task[]): void {
    this.#sent.clear();
    this.#pending.clear();
    for (const task of tasks) this.#sent.set(task.id, task.meta.version);
  }

  /** Records one task's change (null: deleted) until the next `takeDelta`. */
  note(taskId: string, task: Task | null): void {
    this.#pending.set(taskId, task);
  }

  /** The delta for every change noted since the last call; empty when nothing the node sees changed. */
  takeDelta(): AssignmentDelta {
    const delta: AssignmentDelta = { updates: [], removes: [] };
    for (const [taskId, task] of this.#pending) {
      const sentVersion = this.#sent.get(taskId);
      if (task !== null && isAssignedTo(task, this.#nodeId)) {
        if (sentVersion === task.meta.version) continue;
        this.#sent.set(taskId, task.meta.version);
        delta.updates.push(task);
      } else if (sentVersion !== undefined) {
        this.#sent.delete(taskId);
        delta.removes.push(taskId);
      }
    }
    this.#pending.clear();
    return delta;
  }

  get size(): number {
    return this.#sent.size;
  }
}
