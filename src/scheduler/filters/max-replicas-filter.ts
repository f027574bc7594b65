import { nodesText, type Filter } from "../filter.js";
import type { NodeInfo } from "../node-info.js";
import type { SchedulerTask } from "../types.js";

/** Nodes holding fewer than placement.maxReplicas tasks of the task's service. */
export class MaxReplicasFilter implements Filter {
  #serviceId = "";
  #maxReplicas = 0;

  setTask(task: SchedulerTask): boolean {
    this.#serviceId = task.serviceId;
    this.#maxReplicas = task.spec.placement.maxReplicas;
    return this.#maxReplicas > 0;
  }

  check(node: NodeInfo): boolean {
    return node.serviceTaskCount(this.#serviceId) < this.#maxReplicas;
  }

  explain(nodeCount: number): string {
    return `max replicas per node (${this.#maxReplicas}) reached on ${nodesText(nodeCount)}`;
  }
}
