import type { Clock } from "../../common/clock.js";
import type { Logger } from "../../common/logger.js";
import { isTerminalTaskState, taskStateRank, type Service, type Task } from "../objects/index.js";
import type { MemoryStore, ReadTx, StoreObjectEvent } from "../store/index.js";
import { pickTasksToRemove } from "../../scheduler/index.js";
import { resolveOrchestratorOptions, type OrchestratorOptions } from "./options.js";
import { runReconcileLoop, type Reconciler } from "./reconcile-loop.js";
import { replaceTask } from "./restart.js";
import { reconcileServices, removeServiceTasksActions, setDesiredStateAction, type TaskAction } from "./service-tasks.js";
import { isLiveTask, isNodeUsable, isTaskFinished, liveTaskLeft, newServiceTask } from "./task.js";

/**
 * A live task that has not ended, on a node that is down or gone. Tasks of drained nodes
 * are the updater's: it moves them with the service's parallelism and order.
 */
function isStranded(tx: ReadTx, task: Task): boolean {
  if (!isLiveTask(task) || isTaskFinished(task) || task.nodeId === "") return false;
  const node = tx.get("node", task.nodeId);
  return node === undefined || node.status.state === "down";
}

function isReplicated(service: Service): boolean {
  return service.spec.mode.type === "replicated";
}

function replicaCount(service: Service): number {
  return service.spec.mode.type === "replicated" ? service.spec.mode.replicas : 0;
}

/** The task that stands for its slot when choosing slots to drop: the furthest along. */
function slotRepresentative(tasks: readonly Task[]): Task | undefined {
  let best: Task | undefined;
  for (const task of tasks) {
    if (best === undefined || taskStateRank(task.status.state) > taskStateRank(best.status.state)) best = task;
  }
  return best;
}

/**
 * The replicated orchestrator (swarmkit manager/orchestrator/replicated): keeps slots
 * 1..replicas of every replicated service filled with one live task each. It creates
 * tasks for empty slots (in state "new"; the scheduler places them), drops the surplus
 * slots on scale-down with pickTasksToRemove (most loaded nodes first, tasks not yet
 * running first) by setting their tasks' desired state to "remove", replaces the live
 * tasks of nodes that went down or were removed (the updater moves those of drained
 * nodes), and marks the tasks of a deleted service for removal.
 */
export class ReplicatedOrchestrator implements Reconciler {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #newId: () => string;
  readonly #dirtyServices = new Set<string>();
  readonly #dirtyNodes = new Set<string>();
  /** serviceId -> slots whose live task left; the service needs a pass only if one stays empty. */
  readonly #dirtySlots = new Map<string, Set<number>>();

  constructor(options: OrchestratorOptions) {
    const resolved = resolveOrchestratorOptions(options, "replicated-orchestrator");
    this.#store = resolved.store;
    this.#logger = resolved.logger;
    this.#clock = resolved.clock;
    this.#newId = resolved.newId;
  }

  /** Orchestrates until `signal` fires. */
  async run(signal: AbortSignal): Promise<void> {
    await runReconcileLoop({
      component: "replicated-orchestrator",
      store: this.#store,
      clock: this.#clock,
      logger: this.#logger,
      reconciler: this,
      filter: (event) => event.kind === "service" || event.kind === "node" || event.kind === "task",
      signal,
    });
  }

  observe(event: StoreObjectEvent): void {
    switch (event.kind) {
      case "service":
        if (event.type === "deleted" || isReplicated(event.object)) this.#dirtyServices.add(event.object.id);
        return;
      case "node":
        if (event.type === "deleted" || !isNodeUsable(event.object)) this.#dirtyNodes.add(event.object.id);
        return;
      case "task": {
        // A slot frees up when its task is deleted or told to stop by someone else (the
        // restart supervisor stops one and fills its slot in the same transaction).
        const { serviceId, slot } = event.object;
        if (slot === 0 || !liveTaskLeft(event)) return;
        const slots = this.#dirtySlots.get(serviceId);
        if (slots === undefined) this.#dirtySlots.set(serviceId, new Set([slot]));
        else slots.add(slot);
        return;
      }
      case "cluster":
        return;
    }
  }

  async reconcileAll(signal: AbortSignal): Promise<number> {
    this.#dirtyServices.clear();
    this.#dirtyNodes.clear();
    this.#dirtySlots.clear();
    const ids = this.#store.view((tx) => {
      const services = new Set(tx.find("service").filter(isReplicated).map((service) => service.id));
      // Tasks whose service is gone (deleted while no leader was watching).
      for (const task of tx.find("task")) if (isLiveTask(task) && tx.get("service", task.serviceId) === undefined) services.add(task.serviceId);
      return [...services];
    });
    await this.#reconcileServices(ids, signal);
    return ids.length;
  }

  async reconcileDirty(signal: AbortSignal): Promise<number> {
    const ids = new Set(this.#dirtyServices);
    this.#store.view((tx) => {
      for (const nodeId of this.#dirtyNodes) for (const task of tx.find("task", { by: "nodeId", nodeId })) ids.add(task.serviceId);
      for (const [serviceId, slots] of this.#dirtySlots) {
        const emptied = [...slots].some((slot) => !tx.find("task", { by: "slot", serviceId, slot }).some(isLiveTask));
        if (emptied) ids.add(serviceId);
      }
    });
    this.#dirtyServices.clear();
    this.#dirtyNodes.clear();
    this.#dirtySlots.clear();
    await this.#reconcileServices([...ids], signal);
    return ids.size;
  }

  #reconcileServices(serviceIds: readonly string[], signal: AbortSignal): Promise<void> {
    return reconcileServices({ store: this.#store, serviceIds, plan: (tx, id) => this.#planService(tx, id), signal });
  }

  /** Reads the service's tasks and plans the writes that bring them in line with its spec. */
  #planService(tx: ReadTx, serviceId: string): TaskAction[] {
    const service = tx.get("service", serviceId);
    if (service === undefined) return removeServiceTasksActions(tx, serviceId);
    if (!isReplicated(service)) return [];
    const actions: TaskAction[] = [];
    const slots = new Map<number, Task[]>();
    for (const task of tx.find("task", { by: "serviceId", serviceId })) {
      if (!isLiveTask(task)) continue;
      const slot = slots.get(task.slot);
      if (slot === undefined) slots.set(task.slot, [task]);
      else slot.push(task);
      if (isStranded(tx, task)) actions.push(this.#replaceAction(task.id));
    }
    const replicas = replicaCount(service);
    if (slots.size < replicas) actions.push(...this.#addSlotsActions(service, { occupied: slots, count: replicas - slots.size }));
    if (slots.size > replicas) actions.push(...this.#removeSlotsActions(tx, { slots, count: slots.size - replicas }));
    return actions;
  }

  /** Replaces a task stranded on a node that is down, drained or gone, if it still is. */
  #replaceAction(taskId: string): TaskAction {
    return (tx) => {
      const task = tx.get("task", taskId);
      if (task === undefined || !isStranded(tx, task)) return;
      const service = tx.get("service", task.serviceId);
      if (service === undefined) return;
      const node = tx.get("node", task.nodeId);
      const why = node === undefined ? "was removed" : "is down";
      // A lost node is no task failure: the restart delay (which paces crash loops) does not apply.
      replaceTask(tx, { task, service, now: this.#clock.now(), id: this.#newId(), reason: `replaces task ${task.id}: node ${task.nodeId} ${why}`, delayed: false });
    };
  }

  #addSlotsActions(service: Service, options: { occupied: ReadonlyMap<number, Task[]>; count: number }): TaskAction[] {
    const actions: TaskAction[] = [];
    for (let slot = 1; actions.length < options.count; slot += 1) {
      if (options.occupied.has(slot)) continue;
      actions.push((tx) => {
        const current = tx.get("service", service.id);
        if (current === undefined || tx.find("task", { by: "slot", serviceId: service.id, slot }).some(isLiveTask)) return;
        const now = this.#clock.now();
        tx.create("task", newServiceTask({ id: this.#newId(), service: current, slot, nodeId: "", attempt: 0, desiredState: "running", now, message: "created" }));
      });
    }
    return actions;
  }

  #removeSlotsActions(tx: ReadTx, options: { slots: ReadonlyMap<number, Task[]>; count: number }): TaskAction[] {
    const representatives: Task[] = [];
    for (const tasks of options.slots.values()) {
      const representative = slotRepresentative(tasks);
      if (representative !== undefined) representatives.push(representative);
    }
    const loads = new Map<string, number>();
    const nodeTaskCount = (nodeId: string): number => {
      let load = loads.get(nodeId);
      if (load === undefined) {
        load = tx.find("task", { by: "nodeId", nodeId }).filter((task) => !isTerminalTaskState(task.status.state)).length;
        loads.set(nodeId, load);
      }
      return load;
    };
    const picked = new Set(pickTasksToRemove(representatives, options.count, { nodeTaskCount }));
    const actions: TaskAction[] = [];
    for (const representative of representatives) {
      if (!picked.has(representative.id)) continue;
      for (const task of options.slots.get(representative.slot) ?? []) actions.push(setDesiredStateAction(task.id, "remove"));
    }
    this.#logger.debug({ slots: picked.size }, "scaling down");
    return actions;
  }
}
