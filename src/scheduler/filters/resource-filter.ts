import { nodesText, type Filter } from "../filter.js";
import type { NodeInfo } from "../node-info.js";
import type { SchedulerTask } from "../types.js";

/** Nodes with enough unreserved CPU and memory for the task's reservations. */
export class ResourceFilter implements Filter {
  #nanoCPUs = 0;
  #memoryBytes = 0;

  setTask(task: SchedulerTask): boolean {
    const reservations = task.spec.resources.reservations;
    this.#nanoCPUs = reservations.nanoCPUs;
    this.#memoryBytes = reservations.memoryBytes;
    return this.#nanoCPUs > 0 || this.#memoryBytes > 0;
  }

  check(node: NodeInfo): boolean {
    return node.available.nanoCPUs >= this.#nanoCPUs && node.available.memoryBytes >= this.#memoryBytes;
  }

  explain(nodeCount: number): string {
    return `insufficient resources on ${nodesText(nodeCount)}`;
  }
}
