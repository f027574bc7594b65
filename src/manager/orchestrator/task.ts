import {
  isTerminalTaskState,
  taskStateRank,
  type Node,
  type Service,
  type Task,
  type TaskState,
} from "../objects/index.js";
import type { NewObject, ReadTx, StoreObjectEventOf } from "../store/index.js";

/**
 * Task lifecycle as the orchestrators drive it (swarmkit design/task_model.md): an
 * orchestrator creates a task in state "new" (swarm's allocator step does not exist here,
 * so nothing moves it to "pending" but the scheduler); the scheduler moves new/pending
 * tasks to "assigned" (or to "pending" with the reason when no node fits). A task created
 * with desiredState "ready" is a delayed restart: it may be placed and prepared, but the
 * worker starts it only once the restart supervisor raises its desired state to "running".
 */
export const taskCreatedState: TaskState = "new";

const runningRank = taskStateRank("running");

/** The task still holds its slot: it is meant to run (or to start after a restart delay). */
export function isLiveTask(task: Task): boolean {
  return taskStateRank(task.desiredState) <= runningRank;
}

/** Whether the event took a live task away (deleted, or told to stop): its slot may need a new one. */
export function liveTaskLeft(event: StoreObjectEventOf<"task">): boolean {
  if (event.type === "deleted") return isLiveTask(event.object);
  return event.type === "updated" && isLiveTask(event.previous) && !isLiveTask(event.object);
}

/** The task was told to stop: it only counts as history of its slot now. */
export function isHistoricTask(task: Task): boolean {
  return !isLiveTask(task);
}

/**
 * A replicated task's slot is its slot number; a global task's is its node (swarm keys
 * global tasks by node, with slot 0).
 */
export function taskSlotKey(task: Pick<Task, "serviceId" | "slot" | "nodeId">): string {
  return task.slot === 0 ? `${task.serviceId}/node/${task.nodeId}` : `${task.serviceId}/${task.slot}`;
}

/** Every task of the same slot as `task` (itself included), read through `tx`. */
export function findSlotTasks(tx: ReadTx, task: Pick<Task, "serviceId" | "slot" | "nodeId">): Task[] {
  if (task.slot !== 0) return tx.find("task", { by: "slot", serviceId: task.serviceId, slot: task.slot });
  return tx.find("task", { by: "nodeId", nodeId: task.nodeId }).filter((other) => other.serviceId === task.serviceId && other.slot === 0);
}

/** A node that can keep running tasks: known, not down, and not drained. */
export function isNodeUsable(node: Node | undefined): boolean {
  return node !== undefined && node.status.state !== "down" && node.spec.availability !== "drain";
}

/** Whether the task's container is gone for good (or never existed). */
export function isTaskFinished(task: Task): boolean {
  return isTerminalTaskState(task.status.state);
}

export interface NewTaskOptions {
  id: string;
  service: Service;
  slot: number;
  nodeId: string;
  attempt: number;
  desiredState: TaskState;
  now: number;
  message: string;
}

/** A task for `service` from its current spec, in the state orchestrators create tasks in. */
export function newServiceTask(options: NewTaskOptions): NewObject<"task"> {
  const { service } = options;
  return {
    id: options.id,
    serviceId: service.id,
    serviceName: service.spec.name,
    slot: options.slot,
    nodeId: options.nodeId,
    desiredState: options.desiredState,
    spec: service.spec.taskTemplate,
    specVersion: service.specVersion,
    endpoint: service.spec.endpointSpec,
    attempt: options.attempt,
    status: { state: taskCreatedState, timestamp: options.now, message: options.message, err: "" },
  };
}

/** A copy of `task` with a later desired state; a no-op (same object) when it is already there or past it. */
export function withDesiredState(task: Task, desiredState: TaskState): Task {
  if (taskStateRank(task.desiredState) >= taskStateRank(desiredState)) return task;
  return { ...task, desiredState };
}
