/**
 * Task states in the order a task moves through them (ARCHITECTURE.md, swarmkit
 * design/task_model.md). The manager moves a task up to "assigned"; the worker moves it from
 * "accepted" on. A task never moves backwards: a restart is a new task in the same slot.
 */
export const taskStates = [
  "new",
  "pending",
  "assigned",
  "accepted",
  "preparing",
  "ready",
  "starting",
  "running",
  "complete",
  "shutdown",
  "failed",
  "rejected",
  "remove",
  "orphaned",
] as const;

export type TaskState = (typeof taskStates)[number];

const taskStateRanks: ReadonlyMap<TaskState, number> = new Map(taskStates.map((state, rank) => [state, rank]));

/** The position of a state in `taskStates`; later states have higher ranks. */
export function taskStateRank(state: TaskState): number {
  const rank = taskStateRanks.get(state);
  if (rank === undefined) throw new RangeError(`unknown task state ${String(state)}`);
  return rank;
}

/** States after which a task's container is gone for good (or was never started). */
export const terminalTaskStates: ReadonlySet<TaskState> = new Set<TaskState>([
  "complete",
  "shutdown",
  "failed",
  "rejected",
  "remove",
  "orphaned",
]);

export function isTerminalTaskState(state: TaskState): boolean {
  return terminalTaskStates.has(state);
}

/**
 * Whether a task may move from `from` to `to`: staying put (a status message update) or
 * moving to a later state. This is plain rank order rather than "terminal states are final"
 * because the same order governs desired states (running -> shutdown -> remove) and the
 * manager marks an already shut-down task "orphaned" when its node is gone for good.
 */
export function isForwardTransition(from: TaskState, to: TaskState): boolean {
  return taskStateRank(to) >= taskStateRank(from);
}

const taskStateNames: ReadonlySet<string> = new Set(taskStates);

export function isTaskState(value: unknown): value is TaskState {
  return typeof value === "string" && taskStateNames.has(value);
}
