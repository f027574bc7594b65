import assert from "node:assert/strict";

import { hostPortKeys, type SchedulerNode, type SchedulerResources, type SchedulerTask } from "./types.js";

/**
 * A node as the scheduler sees it (swarmkit scheduler/nodeinfo.go): the node, the tasks
 * that hold its resources, what is left, and per-service counts for spreading. The
 * scheduler updates it as it places tasks, so one NodeInfo set carries state from one
 * placement pass to the next.
 */
export class NodeInfo {
  readonly node: SchedulerNode;
  readonly tasks = new Map<string, SchedulerTask>();
  /** Node resources minus the reservations of its tasks (negative if overcommitted before). */
  readonly available: SchedulerResources;
  readonly #serviceTaskCounts = new Map<string, number>();
  readonly #hostPorts = new Set<string>();

  constructor(node: SchedulerNode, tasks: Iterable<SchedulerTask> = []) {
    this.node = node;
    const total = node.description?.resources;
    this.available = { nanoCPUs: total?.nanoCPUs ?? 0, memoryBytes: total?.memoryBytes ?? 0 };
    for (const task of tasks) this.addTask(task);
  }

  get id(): string {
    return this.node.id;
  }

  /** Every task on the node, whatever its service. */
  get taskCount(): number {
    return this.tasks.size;
  }

  serviceTaskCount(serviceId: string): number {
    return this.#serviceTaskCounts.get(serviceId) ?? 0;
  }

  hostPortInUse(key: string): boolean {
    return this.#hostPorts.has(key);
  }

  /** Records a task as running here; false (and no change) when it already is. */
  addTask(task: SchedulerTask): boolean {
    if (this.tasks.has(task.id)) return false;
    this.tasks.set(task.id, task);
    this.#serviceTaskCounts.set(task.serviceId, this.serviceTaskCount(task.serviceId) + 1);
    const reservations = task.spec.resources.reservations;
    this.available.nanoCPUs -= reservations.nanoCPUs;
    this.available.memoryBytes -= reservations.memoryBytes;
    for (const key of hostPortKeys(task)) this.#hostPorts.add(key);
    return true;
  }

  /** Forgets a task (it ended or moved); false when it was not here. */
  removeTask(taskId: string): boolean {
    const task = this.tasks.get(taskId);
    if (task === undefined) return false;
    this.tasks.delete(taskId);
    const count = this.serviceTaskCount(task.serviceId) - 1;
    assert.ok(count >= 0, "per-service task counts never go negative");
    if (count === 0) this.#serviceTaskCounts.delete(task.serviceId);
    else this.#serviceTaskCounts.set(task.serviceId, count);
    const reservations = task.spec.resources.reservations;
    this.available.nanoCPUs += reservations.nanoCPUs;
    this.available.memoryBytes += reservations.memoryBytes;
    for (const key of hostPortKeys(task)) this.#hostPorts.delete(key);
    return true;
  }
}

/**
 * NodeInfos for `nodes`, each holding the tasks of `tasks` assigned to it. Pass only the
 * tasks that hold resources (desired state running or below, not yet terminal); tasks on
 * unknown nodes are ignored.
 */
export function buildNodeInfos(nodes: readonly SchedulerNode[], tasks: readonly SchedulerTask[]): NodeInfo[] {
  const infos = nodes.map((node) => new NodeInfo(node));
  const byId = new Map(infos.map((info) => [info.id, info]));
  for (const task of tasks) {
    if (task.nodeId !== "") byId.get(task.nodeId)?.addTask(task);
  }
  return infos;
}
