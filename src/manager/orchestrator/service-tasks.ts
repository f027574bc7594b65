import type { TaskState } from "../objects/index.js";
import type { Batch, MemoryStore, ReadTx, WriteTx } from "../store/index.js";
import { withDesiredState } from "./task.js";

/**
 * One small write an orchestrator planned, re-checked against the store when it runs. A
 * reconcile pass reads once, plans, and then runs each action in its own batch.update, so
 * a 10,000-replica service never needs one transaction larger than transactionChangesMax.
 */
export type TaskAction = (tx: WriteTx) => void;

/** Runs planned actions one per batch.update, in order. */
export async function applyTaskActions(batch: Batch, actions: readonly TaskAction[]): Promise<void> {
  for (const action of actions) await batch.update(action);
}

/**
 * One reconcile pass over `serviceIds`: for each, plans from a fresh read and applies the
 * plan, all in one store batch.
 */
export async function reconcileServices(options: {
  store: MemoryStore;
  serviceIds: readonly string[];
  plan: (tx: ReadTx, serviceId: string) => TaskAction[];
  signal: AbortSignal;
}): Promise<void> {
  if (options.serviceIds.length === 0) return;
  await options.store.batch(
    async (batch) => {
      for (const id of options.serviceIds) {
        let actions: TaskAction[] = [];
        await batch.update((tx) => {
          actions = options.plan(tx, id);
        });
        await applyTaskActions(batch, actions);
      }
    },
    { signal: options.signal },
  );
}

/** Raises a task's desired state, if it still exists and is not already there. */
export function setDesiredStateAction(taskId: string, desiredState: TaskState): TaskAction {
  return (tx) => {
    const task = tx.get("task", taskId);
    if (task === undefined) return;
    const changed = withDesiredState(task, desiredState);
    if (changed !== task) tx.update("task", changed);
  };
}

/**
 * Tells every task of a deleted service to go away (desired state "remove"): the worker
 * stops it and the reaper deletes it once it has ended.
 */
export function removeServiceTasksActions(tx: ReadTx, serviceId: string): TaskAction[] {
  return tx
    .find("task", { by: "serviceId", serviceId })
    .filter((task) => withDesiredState(task, "remove") !== task)
    .map((task) => setDesiredStateAction(task.id, "remove"));
}
