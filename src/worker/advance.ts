import { CancelledError, errorMessage } from "../common/errors.js";
import { isTerminalTaskState, taskStateRank, type Task, type TaskState, type TaskStatus } from "../manager/objects/index.js";
import type { TaskController } from "./controller.js";

const runningRank = taskStateRank("running");

function transition(task: Task, controller: TaskController, now: number, state: TaskState, message: string, err = ""): TaskStatus {
  const status: TaskStatus = { state, timestamp: now, message, err };
  const container = controller.containerStatus() ?? task.status.containerStatus;
  if (container !== undefined) status.containerStatus = container;
  return status;
}

function rethrowCancellation(error: unknown, signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new CancelledError("task step cancelled", { cause: error });
}

/** Stops a task that is wanted no more, with a kill when the graceful stop fails. */
async function advanceTaskShutdown(task: Task, controller: TaskController, options: { now: () => number; signal?: AbortSignal }): Promise<TaskStatus> {
  const started = taskStateRank(task.status.state) >= taskStateRank("starting");
  if (started) {
    try {
      await controller.shutdown({ ...options });
    } catch (error) {
      rethrowCancellation(error, options.signal);
      await controller.terminate({ ...options });
    }
  }
  return transition(task, controller, options.now(), "shutdown", started ? "shut down as desired" : "shut down before it started");
}

/**
 * Performs one step of `task`'s lifecycle with `controller` and returns the status it
 * reached (after swarmkit's exec.Do): the very same status object when there is nothing to
 * do (terminal states, or the desired state reached), otherwise one state further on. Controller failures
 * become rejected (prepare) or failed (start, wait) statuses, never exceptions; the only
 * rejections are CancelledError when `signal` fires, and a failing terminate after a
 * failing shutdown (the caller retries).
 */
export async function advanceTask(task: Task, controller: TaskController, options: { now: () => number; signal?: AbortSignal }): Promise<TaskStatus> {
  const { signal, now } = options;
  const state = task.status.state;
  if (isTerminalTaskState(state)) return task.status;
  if (taskStateRank(task.desiredState) > runningRank) return advanceTaskShutdown(task, controller, options);
  // A task wanted only up to an earlier state (desired "ready": a delayed restart, prepared
  // but not started) waits there until the manager raises its desired state.
  if (taskStateRank(task.desiredState) < runningRank && taskStateRank(state) >= taskStateRank(task.desiredState)) return task.status;
  const step = { ...(signal === undefined ? {} : { signal }) };
  switch (state) {
    case "new":
    case "pending":
    case "assigned":
      return transition(task, controller, now(), "accepted", "accepted");
    case "accepted":
      return transition(task, controller, now(), "preparing", "preparing");
    case "preparing":
      try {
        await controller.prepare(step);
        return transition(task, controller, now(), "ready", "prepared");
      } catch (error) {
        rethrowCancellation(error, signal);
        return transition(task, controller, now(), "rejected", "preparing failed", errorMessage(error));
      }
    case "ready":
      return transition(task, controller, now(), "starting", "starting");
    case "starting":
      try {
        await controller.start(step);
        return transition(task, controller, now(), "running", "started");
      } catch (error) {
        rethrowCancellation(error, signal);
        return transition(task, controller, now(), "failed", "starting failed", errorMessage(error));
      }
    case "running":
      return advanceTaskWait(task, controller, options);
    case "complete":
    case "shutdown":
    case "failed":
    case "rejected":
    case "remove":
    case "orphaned":
      return task.status;
  }
}

async function advanceTaskWait(task: Task, controller: TaskController, options: { now: () => number; signal?: AbortSignal }): Promise<TaskStatus> {
  try {
    const exit = await controller.wait({ ...options });
    const status =
      exit.exitCode === 0
        ? transition(task, controller, options.now(), "complete", exit.message === "" ? "finished" : exit.message)
        : transition(task, controller, options.now(), "failed", exit.message === "" ? "exited" : exit.message, `task: non-zero exit (${exit.exitCode})`);
    status.containerStatus = { containerId: status.containerStatus?.containerId ?? "", pid: 0, exitCode: Math.max(-1, Math.min(255, exit.exitCode)) };
    return status;
  } catch (error) {
    rethrowCancellation(error, options.signal);
    return transition(task, controller, options.now(), "failed", "lost the container", errorMessage(error));
  }
}
