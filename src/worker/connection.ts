import type { ClientReadableStream, ClientUnaryCall, Metadata, ServiceError } from "@grpc/grpc-js";
import { status as grpcStatus } from "@grpc/grpc-js";

import type { Clock } from "../common/clock.js";
import { CancelledError, DeadlineExceededError, UnavailableError } from "../common/errors.js";
import type { AssignmentsMessage__Output } from "../gen/shoal/v1/AssignmentsMessage.js";
import type { DispatcherClient } from "../gen/shoal/v1/Dispatcher.js";
import type { NodeDescription as WireNodeDescription } from "../gen/shoal/v1/NodeDescription.js";
import type { SessionMessage__Output } from "../gen/shoal/v1/SessionMessage.js";
import type { TaskStatusUpdate } from "../gen/shoal/v1/TaskStatusUpdate.js";
import type { Logger } from "../common/logger.js";
import type { NodeDescription, Task } from "../manager/objects/index.js";

/**
 * How long a manager may take to answer a new session before the worker tries another.
 * A new leader marks the previous leader's nodes down when they have not opened a session
 * within 3 heartbeat periods (3 s by default): a worker caught opening a session with a
 * manager that stalled (SIGSTOP, cut off) must give up and move on well within that (issue 6).
 */
export const sessionOpenTimeoutMs = 2_500;
/** Deadline of one unary call (heartbeat, status report). */
export const callTimeoutMs = 10_000;
/**
 * Status reports wait this long for more state changes to send them together. Short: while
 * a report is in flight (the manager answers after its own batched commit, up to 20 ms
 * later) the next changes gather anyway; a longer wait only delayed every hop of a rollout.
 */
export const statusReportGapMs = 5;
/** Status updates per UpdateTaskStatus request (the manager's statusUpdatesPerRequestMax). */
export const statusReportUpdatesMax = 1_000;

/** What the session asks of the agent. */
export interface SessionPeer {
  /** The session's first message; throwing ends the session before it is used (e.g. a stale term). */
  onEstablished(message: SessionMessage__Output): void;
  /** A later session message (a changed manager list or desired role); throwing ends the session (e.g. a stale term). */
  onManagers(message: SessionMessage__Output): void;
  /** Applies one assignments message; throwing ends the session (e.g. a sequence gap). */
  onAssignments(message: AssignmentsMessage__Output): void;
  /** Resolves when there are unreported statuses; rejects with CancelledError on abort. */
  waitForUnreported(signal: AbortSignal): Promise<void>;
  unreported(limit: number): Task[];
  /** The manager took (or for good refused) these statuses. */
  acknowledge(tasks: readonly Task[]): void;
}

export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && "code" in error && typeof error.code === "number" && "metadata" in error;
}

export function toWireDescription(description: NodeDescription): WireNodeDescription {
  return {
    hostname: description.hostname,
    platformOs: description.platform.os,
    platformArchitecture: description.platform.architecture,
    nanoCpus: description.resources.nanoCPUs,
    memoryBytes: description.resources.memoryBytes,
    engineVersion: description.engine.engineVersion,
    engineLabels: { ...description.engine.labels },
  };
}

export function toWireStatus(task: Task): TaskStatusUpdate {
  const container = task.status.containerStatus;
  return {
    taskId: task.id,
    state: task.status.state,
    timestampMs: task.status.timestamp,
    message: task.status.message,
    err: task.status.err,
    containerId: container?.containerId ?? "",
    pid: container?.pid ?? 0,
    exitCode: container?.exitCode ?? -1,
    health: task.status.health ?? "",
  };
}

/** Runs a unary call; CancelledError when `signal` fires first. */
export function callUnary<T>(invoke: (callback: (error: ServiceError | null, value?: T) => void) => ClientUnaryCall, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new CancelledError("call cancelled"));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => call.cancel();
    const call = invoke((error, value) => {
      signal.removeEventListener("abort", onAbort);
      if (error !== null) reject(error);
      else if (value === undefined) reject(new UnavailableError("the manager answered without a message"));
      else resolve(value);
    });
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function firstMessage<T>(call: ClientReadableStream<T>, clock: Clock, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      cancelTimer();
      call.off("data", onData);
      call.off("error", onError);
      call.off("end", onEnd);
      signal.removeEventListener("abort", onAbort);
    };
    const onData = (message: T): void => {
      cleanup();
      resolve(message);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onEnd = (): void => onError(new UnavailableError("the manager ended the session before it started"));
    const onAbort = (): void => onError(new CancelledError("session cancelled"));
    const cancelTimer = clock.setTimer(sessionOpenTimeoutMs, () => onError(new DeadlineExceededError(`the manager did not open a session within ${sessionOpenTimeoutMs} ms`)));
    call.on("data", onData);
    call.on("error", onError);
    call.on("end", onEnd);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Codes with which the manager refuses a status for good (it would refuse it again). */
const refusedCodes: ReadonlySet<number> = new Set([grpcStatus.PERMISSION_DENIED, grpcStatus.FAILED_PRECONDITION, grpcStatus.INVALID_ARGUMENT]);

export interface SessionOptions {
  client: DispatcherClient;
  metadata: Metadata;
  description: NodeDescription;
  clock: Clock;
  peer: SessionPeer;
  logger: Logger;
  signal: AbortSignal;
}

/**
 * One session with one manager: opens Session, then runs the assignments stream, the
 * heartbeat loop and the status reporter until one of them fails or `signal` fires. It
 * always rejects: with the failure, or CancelledError when aborted.
 */
export async function runSession(options: SessionOptions): Promise<never> {
  const { client, metadata, clock, peer } = options;
  const abort = new AbortController();
  const onOuterAbort = (): void => abort.abort();
  options.signal.addEventListener("abort", onOuterAbort, { once: true });
  let fail: (error: unknown) => void = () => undefined;
  const ended = new Promise<never>((_resolve, reject) => {
    fail = reject;
  });
  // Marked handled: when opening fails, nobody awaits `ended` before the abort below rejects it.
  ended.catch(() => undefined);
  abort.signal.addEventListener("abort", () => fail(new CancelledError("session closed")), { once: true });
  const sessionCall = client.Session({ description: toWireDescription(options.description) }, metadata);
  let assignmentsCall: ClientReadableStream<AssignmentsMessage__Output> | null = null;
  try {
    const first = await firstMessage(sessionCall, clock, abort.signal);
    peer.onEstablished(first);
    const sessionId = first.sessionId;
    sessionCall.on("data", (message: SessionMessage__Output) => {
      try {
        peer.onManagers(message);
      } catch (error) {
        fail(error);
      }
    });
    sessionCall.on("error", fail);
    sessionCall.on("end", () => fail(new UnavailableError("the manager ended the session")));
    const assignments = client.Assignments({ sessionId }, metadata);
    assignmentsCall = assignments;
    assignments.on("data", (message: AssignmentsMessage__Output) => {
      try {
        peer.onAssignments(message);
      } catch (error) {
        fail(error);
      }
    });
    assignments.on("error", fail);
    assignments.on("end", () => fail(new UnavailableError("the manager ended the assignments stream")));
    heartbeatLoop({ client, metadata, clock, sessionId, signal: abort.signal }).catch(fail);
    reportLoop({ client, metadata, clock, peer, sessionId, logger: options.logger, signal: abort.signal }).catch(fail);
    return await ended;
  } finally {
    options.signal.removeEventListener("abort", onOuterAbort);
    abort.abort();
    sessionCall.cancel();
    assignmentsCall?.cancel();
    // Cancelled calls still emit "error"; keep a listener so it is not thrown.
    sessionCall.on("error", () => undefined);
    assignmentsCall?.on("error", () => undefined);
  }
}

async function heartbeatLoop(options: { client: DispatcherClient; metadata: Metadata; clock: Clock; sessionId: string; signal: AbortSignal }): Promise<void> {
  const { client, metadata, clock, sessionId, signal } = options;
  // Once the period is known, a heartbeat unanswered for one period ends the session: the
  // next leader marks this node down after 3 periods without one, so a worker stuck on a
  // stalled manager (SIGSTOP, one-way cut) must move on well before that (issue 6).
  let deadlineMs = callTimeoutMs;
  for (;;) {
    const response = await callUnary<{ periodMs: number }>(
      (callback) => client.Heartbeat({ sessionId }, metadata, { deadline: Date.now() + deadlineMs }, callback),
      signal,
    );
    if (!Number.isSafeInteger(response.periodMs) || response.periodMs <= 0) {
      throw new UnavailableError(`the manager asked for a heartbeat period of ${response.periodMs} ms`);
    }
    deadlineMs = Math.min(callTimeoutMs, response.periodMs);
    await clock.sleep(response.periodMs, { signal });
  }
}

async function reportLoop(options: { client: DispatcherClient; metadata: Metadata; clock: Clock; peer: SessionPeer; sessionId: string; logger: Logger; signal: AbortSignal }): Promise<void> {
  const { clock, peer, signal } = options;
  for (;;) {
    await peer.waitForUnreported(signal);
    await clock.sleep(statusReportGapMs, { signal });
    const batch = peer.unreported(statusReportUpdatesMax);
    try {
      await sendStatuses(options, batch);
      peer.acknowledge(batch);
    } catch (error) {
      if (!isServiceError(error) || !refusedCodes.has(error.code)) throw error;
      // One refused update fails the whole request: send them one by one to keep the good ones.
      for (const task of batch) {
        await sendStatuses(options, [task]).catch((single: unknown) => {
          if (!isServiceError(single) || !refusedCodes.has(single.code)) throw single;
          options.logger.warn({ taskId: task.id, state: task.status.state, err: single }, "the manager refused a task status; it will not be sent again");
        });
      }
      peer.acknowledge(batch);
    }
  }
}

// gRPC deadlines are wall-clock instants on the channel's own timers, so they use Date.now
// rather than the injected clock (a fake clock's time would expire them at once).
function sendStatuses(options: { client: DispatcherClient; metadata: Metadata; sessionId: string; signal: AbortSignal }, tasks: readonly Task[]): Promise<unknown> {
  const { client, metadata, sessionId, signal } = options;
  return callUnary<unknown>(
    (callback) => client.UpdateTaskStatus({ sessionId, updates: tasks.map(toWireStatus) }, metadata, { deadline: Date.now() + callTimeoutMs }, callback),
    signal,
  );
}
