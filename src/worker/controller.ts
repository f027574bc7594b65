import type { ContainerStatus, NodeDescription, Task } from "../manager/objects/index.js";
import type { HealthProbe, ResolvedHealthcheck } from "./health-monitor.js";

/** A task's health check, resolved from its spec and image, and the probe that runs it. */
export interface TaskHealthcheck {
  check: ResolvedHealthcheck;
  probe: HealthProbe;
}

/** How a task's container ended. */
export interface TaskExit {
  /** The process's exit code; 128+N when killed by signal N. */
  exitCode: number;
  /** Why it ended when the engine knows more than the code ("OOM killed"); empty otherwise. */
  message: string;
}

/**
 * Drives one task's container through its lifecycle (after swarmkit's
 * agent/exec/controller.go). One controller per task; the agent calls the methods one at a
 * time, in lifecycle order, and may call any of them again after a restart of the agent,
 * so each must be idempotent against the container's real state. Every method rejects
 * with CancelledError when its signal fires.
 */
export interface TaskController {
  /**
   * Makes the task ready to start: pulls the image if needed and creates the container.
   * Rejects when the task cannot run here (bad image, bad mounts): the task is rejected.
   */
  prepare(options: { signal?: AbortSignal }): Promise<void>;
  /** Starts the prepared container. A rejection fails the task. */
  start(options: { signal?: AbortSignal }): Promise<void>;
  /**
   * Resolves when the container exits (at once when it already has). Used both after
   * start and to re-adopt a container that kept running while the agent restarted.
   * Rejects (NotFoundError) when there is no container to wait for.
   */
  wait(options: { signal?: AbortSignal }): Promise<TaskExit>;
  /** Stops the container gracefully: the stop signal, then a kill after the grace period. */
  shutdown(options: { signal?: AbortSignal }): Promise<void>;
  /** Kills the container at once. */
  terminate(options: { signal?: AbortSignal }): Promise<void>;
  /** Removes the container and what it holds (a missing container is not an error). */
  remove(options: { signal?: AbortSignal }): Promise<void>;
  /**
   * The task's health check and how to run it in the container, once the container runs;
   * undefined when the task has none (its spec and image set none, or ["NONE"]). Optional:
   * a controller without it runs tasks without health checks.
   */
  healthcheck?(): TaskHealthcheck | undefined;
  /** What is known of the container now, for status reports; undefined before it exists. */
  containerStatus(): ContainerStatus | undefined;
  /** Frees what the controller holds; the container is left as it is. */
  close(): void;
}

/** Makes controllers for tasks and describes the node (swarmkit's exec.Executor). */
export interface Executor {
  /** The node's self-description, sent when a session opens. */
  describe(options: { signal?: AbortSignal }): Promise<NodeDescription>;
  /** A controller for `task`. InvalidArgumentError when the task's spec cannot run here. */
  controller(task: Task): TaskController;
}
