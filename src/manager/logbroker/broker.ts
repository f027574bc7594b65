import { randomBytes } from "node:crypto";

import { systemClock, type Clock } from "../../common/clock.js";
import { CancelledError, NotFoundError, PermissionDeniedError, ResourceExhaustedError, UnavailableError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { LogContext, LogSelector, ServiceLogMessage, ServiceLogOptions, ServiceLogSource } from "../../api/docker-swarm/index.js";
import type { ReadTx } from "../store/index.js";

/** Log requests the broker serves at once; more are refused (ResourceExhaustedError). */
export const subscriptionsMax = 256;
/**
 * Lines buffered per request between the workers and the client. A full queue makes
 * publish() wait, which pauses the worker's gRPC stream: a slow client slows the workers
 * down (backpressure), nothing is dropped.
 */
export const subscriptionQueueLinesMax = 512;
/** Lines one publish() may carry (the worker batches below it). */
export const publishLinesMax = 256;
/** Tasks one request may address. */
export const subscriptionTasksMax = 10_000;
/** How often a follow request on a service looks for new tasks (scale-up, restarts, updates). */
export const followRescanMs = 1_000;

/** A task a request reads, where it runs. */
export interface LogTask {
  taskId: string;
  serviceId: string;
  nodeId: string;
}

/** What a worker's options say: ServiceLogOptions without the signal. */
export interface WorkerLogOptions {
  follow: boolean;
  tail?: number;
  sinceMs?: number;
  stdout: boolean;
  stderr: boolean;
}

/** What the broker tells one worker: read these tasks' logs, or stop reading them. */
export type SubscriptionEvent =
  | { type: "open"; subscriptionId: string; taskIds: string[]; options: WorkerLogOptions }
  | { type: "close"; subscriptionId: string };

export interface LogBrokerOptions {
  /** The tasks a selector names, with their nodes; NotFoundError for an unknown task. */
  resolveTasks: (selector: LogSelector) => LogTask[];
  logger: Logger;
  newSubscriptionId?: () => string;
  clock?: Clock;
}

interface Subscription {
  readonly id: string;
  readonly selector: LogSelector;
  readonly workerOptions: WorkerLogOptions;
  /** Follow on a service: new tasks join until the client goes away, so no worker finishing ends it. */
  readonly rescans: boolean;
  readonly tasks: Map<string, LogTask>;
  /** Worker streams still open per node; a node leaves when they finished, or it failed or detached. */
  readonly pending: Map<string, number>;
  readonly queue: ServiceLogMessage[];
  readonly spaceWaiters: Array<() => void>;
  wake: (() => void) | null;
  ended: boolean;
  cancelRescan: () => void;
}

interface Listener {
  send: (event: SubscriptionEvent) => void;
}

/** The tasks of a selector from the store: every task of a service that was given a node, or one task. */
export function resolveLogTasks(tx: ReadTx, selector: LogSelector): LogTask[] {
  if (selector.kind === "task") {
    const task = tx.get("task", selector.taskId);
    if (task === undefined) throw new NotFoundError(`task ${selector.taskId} not found`);
    return task.nodeId === "" ? [] : [{ taskId: task.id, serviceId: task.serviceId, nodeId: task.nodeId }];
  }
  return tx
    .find("task", { by: "serviceId", serviceId: selector.serviceId })
    .filter((task) => task.nodeId !== "")
    .map((task) => ({ taskId: task.id, serviceId: task.serviceId, nodeId: task.nodeId }));
}

function warningLine(task: LogTask, text: string, timestampMs: number): ServiceLogMessage {
  const context: LogContext = { nodeId: task.nodeId, serviceId: task.serviceId, taskId: task.taskId };
  return { stream: "stderr", line: Buffer.from(`shoal: ${text}\n`), timestampMs, context };
}

/**
 * The leader's log broker (after swarmkit's manager/logbroker). A logs request becomes a
 * subscription sent to each worker holding one of its tasks; the workers' lines are merged
 * into one bounded queue the request reads. A request without follow ends once every
 * addressed worker finished; a worker that is not attached, detaches or fails adds a
 * "shoal: ..." stderr line naming the task whose logs are incomplete, and when no addressed
 * worker is attached at all the request fails with UnavailableError instead.
 */
export class LogBroker implements ServiceLogSource {
  readonly #resolveTasks: (selector: LogSelector) => LogTask[];
  readonly #logger: Logger;
  readonly #newId: () => string;
  readonly #clock: Clock;
  readonly #listeners = new Map<string, Listener>();
  readonly #subscriptions = new Map<string, Subscription>();

  constructor(options: LogBrokerOptions) {
    this.#resolveTasks = options.resolveTasks;
    this.#logger = options.logger.child({ component: "logbroker" });
    this.#newId = options.newSubscriptionId ?? (() => randomBytes(12).toString("hex"));
    this.#clock = options.clock ?? systemClock;
  }

  /** Subscriptions in progress (diagnostics and tests). */
  get subscriptionCount(): number {
    return this.#subscriptions.size;
  }

  /** Nodes with an attached listener (diagnostics and tests). */
  attachedNodes(): string[] {
    return [...this.#listeners.keys()];
  }

  /**
   * Makes `send` the way to reach node `nodeId` (replacing an older listener of the node,
   * whose subscriptions then fail). Returns detach, which fails the node's pending
   * subscriptions; call it when the stream ends.
   */
  attachWorker(nodeId: string, send: (event: SubscriptionEvent) => void): () => void {
    const listener: Listener = { send };
    if (this.#listeners.has(nodeId)) this.#failNode(nodeId, "its log listener was replaced by a new connection");
    this.#listeners.set(nodeId, listener);
    return () => {
      if (this.#listeners.get(nodeId) !== listener) return;
      this.#listeners.delete(nodeId);
      this.#failNode(nodeId, `node ${nodeId} disconnected from the leader before it sent all logs`);
    };
  }

  /**
   * Adds lines a worker read. Resolves once the request's queue had room for them, so a
   * caller that waits before reading more passes backpressure on. NotFoundError when the
   * subscription ended (the client went away: stop reading), PermissionDeniedError for a
   * node or task the subscription did not address to this node.
   */
  async publish(nodeId: string, subscriptionId: string, lines: readonly ServiceLogMessage[]): Promise<void> {
    if (lines.length > publishLinesMax) throw new ResourceExhaustedError(`publish at most ${publishLinesMax} lines at once, not ${lines.length}`);
    let subscription = this.#open(nodeId, subscriptionId);
    for (const line of lines) {
      const task = subscription.tasks.get(line.context.taskId);
      if (task?.nodeId !== nodeId) throw new PermissionDeniedError(`task ${line.context.taskId} is not one node ${nodeId} was asked to read for subscription ${subscriptionId}`);
    }
    while (subscription.queue.length >= subscriptionQueueLinesMax) {
      await new Promise<void>((resolve) => subscription.spaceWaiters.push(resolve));
      subscription = this.#open(nodeId, subscriptionId);
    }
    for (const line of lines) {
      const task = subscription.tasks.get(line.context.taskId);
      // The context comes from the store, not from the worker.
      if (task !== undefined) subscription.queue.push({ ...line, context: { nodeId: task.nodeId, serviceId: task.serviceId, taskId: task.taskId } });
    }
    this.#wake(subscription);
  }

  /** A worker finished a subscription: done when `error` is null, else why it could not. */
  finish(nodeId: string, subscriptionId: string, error: string | null): void {
    const subscription = this.#subscriptions.get(subscriptionId);
    const streams = subscription?.pending.get(nodeId);
    if (subscription === undefined || streams === undefined) return;
    if (error !== null) this.#warnNode(subscription, nodeId, error);
    if (streams > 1) subscription.pending.set(nodeId, streams - 1);
    else subscription.pending.delete(nodeId);
    this.#wake(subscription);
  }

  /** The selector is resolved on the first next(), which rejects for an unknown task or when no addressed node is attached. */
  logs(selector: LogSelector, options: ServiceLogOptions): AsyncIterable<ServiceLogMessage> {
    return this.#run(selector, options);
  }

  /** Ends every subscription (the manager stops leading or closes). */
  close(): void {
    for (const subscription of this.#subscriptions.values()) this.#end(subscription);
    this.#listeners.clear();
  }

  async *#run(selector: LogSelector, options: ServiceLogOptions): AsyncGenerator<ServiceLogMessage> {
    if (options.signal.aborted) throw new CancelledError("the log request was cancelled");
    const subscription = this.#subscribe(selector, options);
    // The client went away: stop the workers and release publishers now, not at the next read.
    const onAbort = (): void => this.#end(subscription);
    options.signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const line = subscription.queue.shift();
        if (line !== undefined) {
          subscription.spaceWaiters.shift()?.();
          yield line;
          continue;
        }
        if ((subscription.pending.size === 0 && !subscription.rescans) || subscription.ended || options.signal.aborted) return;
        await new Promise<void>((resolve) => {
          subscription.wake = resolve;
        });
      }
    } finally {
      options.signal.removeEventListener("abort", onAbort);
      this.#end(subscription);
    }
  }

  #subscribe(selector: LogSelector, options: ServiceLogOptions): Subscription {
    if (this.#subscriptions.size >= subscriptionsMax) {
      throw new ResourceExhaustedError(`the leader already serves ${subscriptionsMax} log requests; try again when some have finished`);
    }
    const tasks = this.#resolveTasks(selector);
    if (tasks.length > subscriptionTasksMax) throw new ResourceExhaustedError(`a log request may read at most ${subscriptionTasksMax} tasks, not ${tasks.length}`);
    const nodes = new Set(tasks.map((task) => task.nodeId));
    const absent = [...nodes].filter((nodeId) => !this.#listeners.has(nodeId));
    if (absent.length > 0 && absent.length === nodes.size) {
      throw new UnavailableError(`no logs: the nodes running these tasks (${absent.join(", ")}) are not connected to the leader; check "shoal node ls" for nodes that are down`);
    }
    const workerOptions: WorkerLogOptions = {
      follow: options.follow,
      stdout: options.stdout,
      stderr: options.stderr,
      ...(options.tail === undefined ? {} : { tail: options.tail }),
      ...(options.sinceMs === undefined ? {} : { sinceMs: options.sinceMs }),
    };
    const subscription: Subscription = {
      id: this.#newId(),
      selector,
      workerOptions,
      rescans: options.follow && selector.kind === "service",
      tasks: new Map(),
      pending: new Map(),
      queue: [],
      spaceWaiters: [],
      wake: null,
      ended: false,
      cancelRescan: () => undefined,
    };
    this.#subscriptions.set(subscription.id, subscription);
    this.#addTasks(subscription, tasks, workerOptions);
    if (subscription.rescans) subscription.cancelRescan = this.#clock.setTimer(followRescanMs, () => this.#rescan(subscription));
    this.#logger.debug({ subscriptionId: subscription.id, selector, nodes: nodes.size, tasks: tasks.length }, "log subscription opened");
    return subscription;
  }

  /** Asks each node for its new tasks' logs; a node without a listener gets a warning line instead. */
  #addTasks(subscription: Subscription, tasks: readonly LogTask[], options: WorkerLogOptions): void {
    const byNode = new Map<string, string[]>();
    for (const task of tasks) {
      subscription.tasks.set(task.taskId, task);
      byNode.set(task.nodeId, [...(byNode.get(task.nodeId) ?? []), task.taskId]);
    }
    for (const [nodeId, taskIds] of byNode) {
      const listener = this.#listeners.get(nodeId);
      if (listener === undefined) {
        this.#warnTasks(subscription, taskIds, `node ${nodeId} is not connected to the leader (down or unreachable); its logs are missing`);
        continue;
      }
      subscription.pending.set(nodeId, (subscription.pending.get(nodeId) ?? 0) + 1);
      listener.send({ type: "open", subscriptionId: subscription.id, taskIds, options });
    }
    this.#wake(subscription);
  }

  #rescan(subscription: Subscription): void {
    if (subscription.ended) return;
    try {
      const fresh = this.#resolveTasks(subscription.selector).filter((task) => !subscription.tasks.has(task.taskId));
      const room = subscriptionTasksMax - subscription.tasks.size;
      if (fresh.length > room) this.#logger.warn({ subscriptionId: subscription.id, fresh: fresh.length, room }, "log request reached its task limit; newer tasks are not followed");
      // A new task's whole log is new: no tail or since for it.
      const { follow, stdout, stderr } = subscription.workerOptions;
      if (fresh.length > 0 && room > 0) this.#addTasks(subscription, fresh.slice(0, room), { follow, stdout, stderr });
    } catch (error) {
      this.#logger.warn({ subscriptionId: subscription.id, err: error }, "could not look for new tasks of a followed service");
    }
    subscription.cancelRescan = this.#clock.setTimer(followRescanMs, () => this.#rescan(subscription));
  }

  #open(nodeId: string, subscriptionId: string): Subscription {
    const subscription = this.#subscriptions.get(subscriptionId);
    if (subscription === undefined || subscription.ended) throw new NotFoundError(`log subscription ${subscriptionId} has ended: its client went away`);
    if (!subscription.pending.has(nodeId)) throw new PermissionDeniedError(`log subscription ${subscriptionId} expects nothing more from node ${nodeId}`);
    return subscription;
  }

  #warnNode(subscription: Subscription, nodeId: string, text: string): void {
    this.#warnTasks(subscription, [...subscription.tasks.values()].filter((task) => task.nodeId === nodeId).map((task) => task.taskId), text);
  }

  #warnTasks(subscription: Subscription, taskIds: readonly string[], text: string): void {
    // Warnings go past the bound: a few per task of the subscription at most.
    for (const taskId of taskIds) {
      const task = subscription.tasks.get(taskId);
      if (task !== undefined) subscription.queue.push(warningLine(task, `logs of task ${task.taskId} are incomplete: ${text}`, this.#clock.now()));
    }
  }

  #failNode(nodeId: string, reason: string): void {
    for (const subscription of this.#subscriptions.values()) {
      if (!subscription.pending.has(nodeId)) continue;
      this.#warnNode(subscription, nodeId, reason);
      subscription.pending.delete(nodeId);
      subscription.spaceWaiters.splice(0).forEach((resolve) => resolve());
      this.#wake(subscription);
    }
  }

  #wake(subscription: Subscription): void {
    const wake = subscription.wake;
    subscription.wake = null;
    wake?.();
  }

  /** Tells the workers still reading to stop, and releases publishers waiting for room. */
  #end(subscription: Subscription): void {
    if (subscription.ended) return;
    subscription.ended = true;
    subscription.cancelRescan();
    this.#subscriptions.delete(subscription.id);
    for (const nodeId of subscription.pending.keys()) this.#listeners.get(nodeId)?.send({ type: "close", subscriptionId: subscription.id });
    subscription.pending.clear();
    subscription.queue.length = 0;
    subscription.spaceWaiters.splice(0).forEach((resolve) => resolve());
    this.#wake(subscription);
    this.#logger.debug({ subscriptionId: subscription.id }, "log subscription ended");
  }
}
