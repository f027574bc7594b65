import diagnosticsChannel from "node:diagnostics_channel";

import type { Clock } from "../../common/clock.js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import type { Service, UpdateStatus } from "../objects/index.js";
import type { MemoryStore, StoreObjectEvent, StoreObjectEventOf, WriteTx } from "../store/index.js";
import { parseConstraints, type Constraint } from "../../scheduler/index.js";
import { resolveOrchestratorOptions, type OrchestratorOptions } from "./options.js";
import { runReconcileLoop, type Reconciler } from "./reconcile-loop.js";
import { newServiceTask, withDesiredState } from "./task.js";
import { planServiceUpdate, type UpdatePlan } from "./update-plan.js";
import { KeyedTimers } from "./keyed-timers.js";

/** Wait before a timer-driven pass that failed is tried again. */
export const updaterRetryDelayMs = 500;
/** Tasks whose start the updater remembers (for per-task monitor windows); the oldest are forgotten first. */
export const updaterRunningSinceMax = 100_000;

/** Published on every update status change: `{ serviceId, status }`. */
export const updateStatusChannel = diagnosticsChannel.channel("shoal:orchestrator:update-status");

export interface UpdateStatusMessage {
  serviceId: string;
  status: UpdateStatus;
}

function constraintsOf(service: Service): Constraint[] | undefined {
  try {
    return parseConstraints(service.spec.taskTemplate.placement.constraints);
  } catch {
    // The control API refuses constraints that do not parse; a stored one that does not is
    // left where it is (the scheduler reports it on the tasks it cannot place).
    return undefined;
  }
}

/**
 * The updater (swarmkit manager/orchestrator/update): rolls a service's tasks onto its
 * current spec, and off drained nodes and nodes that no longer meet its constraints, with
 * the service's parallelism, delay, order, monitor window and failure action (see
 * planServiceUpdate). It keeps no state of its own: each pass reads the service and its
 * tasks, so a new leader picks a rollout up where it was, and a new spec simply supersedes
 * the one being rolled out. Time-driven steps (the end of a delay or of the monitor
 * window) are timers on the injected clock, re-armed by every pass.
 */
export class Updater implements Reconciler {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #newId: () => string;
  readonly #dirty = new Set<string>();
  /** Services whose last pass was not idle: only their task events can give the updater work. */
  readonly #active = new Set<string>();
  #nodesDirty = false;
  /**
   * When each task was seen entering "running" (its status timestamp), kept past its end so
   * a failure can be set against its monitor window. Memory only, as in swarm: a new leader
   * knows the tasks it sees running, and counts any other failure.
   */
  readonly #runningSince = new Map<string, number>();
  readonly #timers: KeyedTimers;
  #signal: AbortSignal | undefined;

  constructor(options: OrchestratorOptions) {
    const resolved = resolveOrchestratorOptions(options, "updater");
    this.#store = resolved.store;
    this.#logger = resolved.logger;
    this.#clock = resolved.clock;
    this.#timers = new KeyedTimers(resolved.clock);
    this.#newId = resolved.newId;
  }

  /** Updates until `signal` fires; cancels its timers and waits for in-flight passes before returning. */
  async run(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    try {
      await runReconcileLoop({
        component: "updater",
        store: this.#store,
        clock: this.#clock,
        logger: this.#logger,
        reconciler: this,
        filter: (event) => event.kind !== "cluster",
        signal,
      });
    } finally {
      await this.#timers.stop();
    }
  }

  observe(event: StoreObjectEvent): void {
    switch (event.kind) {
      case "service":
        this.#dirty.add(event.object.id);
        return;
      case "task":
        this.#noteRunning(event);
        if (this.#active.has(event.object.serviceId)) this.#dirty.add(event.object.serviceId);
        return;
      case "node":
        if (
          event.type !== "updated" ||
          event.previous.spec.availability !== event.object.spec.availability ||
          JSON.stringify(event.previous.spec.labels) !== JSON.stringify(event.object.spec.labels) ||
          event.previous.spec.role !== event.object.spec.role
        ) {
          this.#nodesDirty = true;
        }
        return;
      case "cluster":
        return;
    }
  }

  /** Remembers task starts from task events: a task may run and fail between two passes. */
  #noteRunning(event: StoreObjectEventOf<"task">): void {
    if (event.type === "deleted") {
      this.#runningSince.delete(event.object.id);
      return;
    }
    const seen = event.type === "updated" && event.previous.status.state === "running" ? event.previous : event.object;
    if (seen.status.state === "running") this.#rememberRunning(seen.id, seen.status.timestamp);
  }

  #rememberRunning(taskId: string, since: number): void {
    if (this.#runningSince.get(taskId) === since) return;
    this.#runningSince.delete(taskId);
    this.#runningSince.set(taskId, since);
    if (this.#runningSince.size > updaterRunningSinceMax) {
      const [oldest] = this.#runningSince.keys();
      if (oldest !== undefined) this.#runningSince.delete(oldest);
    }
  }

  async reconcileAll(signal: AbortSignal): Promise<number> {
    this.#dirty.clear();
    this.#active.clear();
    this.#nodesDirty = false;
    const ids = this.#store.view((tx) => tx.find("service").map((service) => service.id));
    await this.#reconcileServices(ids, signal);
    return ids.length;
  }

  async reconcileDirty(signal: AbortSignal): Promise<number> {
    if (this.#nodesDirty) return this.reconcileAll(signal);
    const ids = [...this.#dirty];
    this.#dirty.clear();
    await this.#reconcileServices(ids, signal);
    return ids.length;
  }

  async #reconcileServices(ids: readonly string[], signal: AbortSignal): Promise<void> {
    if (ids.length === 0) return;
    const plans = new Map<string, UpdatePlan>();
    await this.#store.batch(
      async (batch) => {
        for (const id of ids) {
          await batch.update((tx) => {
            const plan = this.#planAndApply(tx, id);
            if (plan !== undefined) plans.set(id, plan);
          });
        }
      },
      { signal },
    );
    for (const id of ids) {
      const plan = plans.get(id);
      if (plan === undefined || plan.idle) this.#active.delete(id);
      else this.#active.add(id);
      this.#armTimer(id, plan);
    }
  }

  /** Plans one service's pass from `tx` and writes it in the same transaction. */
  #planAndApply(tx: WriteTx, serviceId: string): UpdatePlan | undefined {
    const service = tx.get("service", serviceId);
    if (service === undefined) return undefined;
    const now = this.#clock.now();
    const tasks = tx.find("task", { by: "serviceId", serviceId });
    for (const task of tasks) if (task.status.state === "running") this.#rememberRunning(task.id, task.status.timestamp);
    const plan = planServiceUpdate({
      service,
      tasks,
      node: (nodeId) => tx.get("node", nodeId),
      constraints: constraintsOf(service),
      now,
      runningSince: (taskId) => this.#runningSince.get(taskId),
    });
    for (const { taskId, reason } of plan.shutdown) {
      const task = tx.get("task", taskId);
      if (task === undefined) continue;
      const changed = withDesiredState(task, "shutdown");
      if (changed !== task) tx.update("task", changed);
      this.#logger.debug({ serviceId, taskId, reason }, "stopping task");
    }
    let current = service;
    if (plan.rollback && service.previousSpec !== undefined) {
      current = { ...service, spec: service.previousSpec, previousSpec: service.spec, specVersion: service.specVersion + 1 };
    }
    if (plan.status !== undefined) {
      current = tx.update("service", { ...current, updateStatus: plan.status });
      this.#logger.info({ serviceId, state: plan.status.state, message: plan.status.message }, "update status changed");
      if (updateStatusChannel.hasSubscribers) updateStatusChannel.publish({ serviceId, status: plan.status } satisfies UpdateStatusMessage);
    }
    // An automatic rollback changes the spec: the new tasks come from the next pass.
    if (plan.rollback) return plan;
    for (const slot of plan.create) {
      tx.create(
        "task",
        newServiceTask({ id: this.#newId(), service: current, slot: slot.slot, nodeId: slot.nodeId, attempt: 0, desiredState: slot.desiredState, now, message: slot.reason }),
      );
    }
    return plan;
  }

  /** Arms (or moves) the service's wake-up timer; a plan that was cut short runs again at once. */
  #armTimer(serviceId: string, plan: UpdatePlan | undefined): void {
    const at = plan === undefined ? undefined : plan.more ? this.#clock.now() : plan.wakeAt;
    if (this.#timers.has(serviceId) && this.#timers.dueAt(serviceId) === at) return;
    this.#timers.cancel(serviceId);
    if (at === undefined || this.#signal?.aborted !== false) return;
    this.#timers.arm(serviceId, at, () => this.#timedPass(serviceId));
  }

  async #timedPass(serviceId: string): Promise<void> {
    const signal = this.#signal;
    if (signal === undefined || signal.aborted) return;
    try {
      await this.#reconcileServices([serviceId], signal);
    } catch (error) {
      if (signal.aborted) return;
      this.#logger.warn({ serviceId, err: errorMessage(error), retryInMs: updaterRetryDelayMs }, "update pass failed; retrying");
      this.#timers.arm(serviceId, this.#clock.now() + updaterRetryDelayMs, () => this.#timedPass(serviceId));
    }
  }
}
