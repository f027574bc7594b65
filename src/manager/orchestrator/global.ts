import type { Clock } from "../../common/clock.js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { taskStateRank, type Node, type Service, type Task } from "../objects/index.js";
import type { MemoryStore, ReadTx, StoreObjectEvent } from "../store/index.js";
import { constraintMatches, parseConstraints, type Constraint } from "../../scheduler/index.js";
import { resolveOrchestratorOptions, type OrchestratorOptions } from "./options.js";
import { runReconcileLoop, type Reconciler } from "./reconcile-loop.js";
import { reconcileServices, removeServiceTasksActions, setDesiredStateAction, type TaskAction } from "./service-tasks.js";
import { isLiveTask, liveTaskLeft, newServiceTask } from "./task.js";
import { isTaskCurrent } from "./update-plan.js";

function isGlobal(service: Service): boolean {
  return service.spec.mode.type === "global";
}

/** What the orchestrator does about one node for one global service. */
type NodeVerdict = "run" | "stop" | "leave";

/**
 * Ready and active nodes that meet the constraints get a task; drained nodes and nodes
 * that no longer meet the constraints lose theirs; paused, down or not yet ready nodes
 * keep what they have and get nothing new (swarmkit global.go reconcileServicesOneNode).
 */
function nodeVerdict(node: Node, constraints: readonly Constraint[] | undefined): NodeVerdict {
  if (node.spec.availability === "drain") return "stop";
  if (constraints === undefined || !constraints.every((constraint) => constraintMatches(constraint, node))) return "stop";
  if (node.status.state === "ready" && node.spec.availability === "active") return "run";
  return "leave";
}

/** Node events that can change a verdict; heartbeats and address changes do not. */
function nodeChanged(event: StoreObjectEvent & { kind: "node" }): boolean {
  if (event.type !== "updated") return true;
  const { previous, object } = event;
  return (
    previous.status.state !== object.status.state ||
    previous.spec.availability !== object.spec.availability ||
    previous.spec.role !== object.spec.role ||
    JSON.stringify(previous.spec.labels) !== JSON.stringify(object.spec.labels) ||
    JSON.stringify(previous.description) !== JSON.stringify(object.description)
  );
}

/**
 * The global orchestrator (swarmkit manager/orchestrator/global): one live task per
 * eligible node for every global service, following nodes as they join, become ready,
 * are drained, paused or removed, and services as their constraints change. Tasks are
 * created with their node set; the scheduler only checks that node. Tasks of a node that
 * goes down are left alone (they are that node's; the restart supervisor does not move
 * them), tasks of a removed node are told to shut down and the reaper deletes them.
 */
export class GlobalOrchestrator implements Reconciler {
  readonly #store: MemoryStore;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #newId: () => string;
  readonly #dirtyServices = new Set<string>();
  #nodesDirty = false;

  constructor(options: OrchestratorOptions) {
    const resolved = resolveOrchestratorOptions(options, "global-orchestrator");
    this.#store = resolved.store;
    this.#logger = resolved.logger;
    this.#clock = resolved.clock;
    this.#newId = resolved.newId;
  }

  /** Orchestrates until `signal` fires. */
  async run(signal: AbortSignal): Promise<void> {
    await runReconcileLoop({
      component: "global-orchestrator",
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
        if (event.type === "deleted" || isGlobal(event.object)) this.#dirtyServices.add(event.object.id);
        return;
      case "node":
        if (nodeChanged(event)) this.#nodesDirty = true;
        return;
      case "task":
        // A global task deleted, or stopped by someone else, frees its node's place.
        if (event.object.slot === 0 && liveTaskLeft(event)) {
          this.#dirtyServices.add(event.object.serviceId);
        }
        return;
      case "cluster":
        return;
    }
  }

  async reconcileAll(signal: AbortSignal): Promise<number> {
    this.#dirtyServices.clear();
    this.#nodesDirty = false;
    const ids = this.#store.view((tx) => tx.find("service").filter(isGlobal).map((service) => service.id));
    await this.#reconcileServices(ids, signal);
    return ids.length;
  }

  async reconcileDirty(signal: AbortSignal): Promise<number> {
    // Node changes are rare next to task churn, and global services few: a node change
    // re-checks every global service against every node.
    const ids = this.#nodesDirty
      ? [...new Set([...this.#dirtyServices, ...this.#store.view((tx) => tx.find("service").filter(isGlobal).map((service) => service.id))])]
      : [...this.#dirtyServices];
    this.#dirtyServices.clear();
    this.#nodesDirty = false;
    await this.#reconcileServices(ids, signal);
    return ids.length;
  }

  #reconcileServices(serviceIds: readonly string[], signal: AbortSignal): Promise<void> {
    return reconcileServices({ store: this.#store, serviceIds, plan: (tx, id) => this.#planService(tx, id), signal });
  }

  #constraintsOf(service: Service): Constraint[] | undefined {
    try {
      return parseConstraints(service.spec.taskTemplate.placement.constraints);
    } catch (error) {
      this.#logger.warn({ serviceId: service.id, err: errorMessage(error) }, "global service has invalid constraints; no node is eligible");
      return undefined;
    }
  }

  /** Reads the service's tasks and the nodes and plans the writes that give each eligible node one task. */
  #planService(tx: ReadTx, serviceId: string): TaskAction[] {
    const service = tx.get("service", serviceId);
    if (service === undefined) return removeServiceTasksActions(tx, serviceId);
    if (!isGlobal(service)) return [];
    const constraints = this.#constraintsOf(service);
    const liveByNode = new Map<string, Task[]>();
    for (const task of tx.find("task", { by: "serviceId", serviceId })) {
      if (!isLiveTask(task)) continue;
      const list = liveByNode.get(task.nodeId);
      if (list === undefined) liveByNode.set(task.nodeId, [task]);
      else list.push(task);
    }
    const actions: TaskAction[] = [];
    for (const node of tx.find("node")) {
      const live = liveByNode.get(node.id) ?? [];
      liveByNode.delete(node.id);
      const verdict = nodeVerdict(node, constraints);
      if (verdict === "stop") {
        for (const task of live) actions.push(setDesiredStateAction(task.id, "shutdown"));
      } else if (verdict === "run" && live.length === 0) {
        actions.push(this.#createAction(serviceId, node.id));
      } else if (live.length > 1) {
        // Two live tasks of one spec on one node (a lost race): keep the one furthest along.
        // An old and a new task side by side are a start-first update: the updater's.
        for (const group of [live.filter((task) => isTaskCurrent(task, service)), live.filter((task) => !isTaskCurrent(task, service))]) {
          const sorted = [...group].sort((left, right) => taskStateRank(right.status.state) - taskStateRank(left.status.state));
          for (const task of sorted.slice(1)) actions.push(setDesiredStateAction(task.id, "shutdown"));
        }
      }
    }
    // What is left belongs to nodes that were removed.
    for (const tasks of liveByNode.values()) for (const task of tasks) actions.push(setDesiredStateAction(task.id, "shutdown"));
    return actions;
  }

  #createAction(serviceId: string, nodeId: string): TaskAction {
    return (tx) => {
      const service = tx.get("service", serviceId);
      if (service === undefined || tx.get("node", nodeId) === undefined) return;
      const live = tx.find("task", { by: "nodeId", nodeId }).some((task) => task.serviceId === serviceId && isLiveTask(task));
      if (live) return;
      tx.create("task", newServiceTask({ id: this.#newId(), service, slot: 0, nodeId, attempt: 0, desiredState: "running", now: this.#clock.now(), message: "created" }));
    };
  }
}
