import { nodesText, type Filter } from "../filter.js";
import type { NodeInfo } from "../node-info.js";
import { hostPortKeys, type SchedulerTask } from "../types.js";

/** Nodes where none of the task's host-mode published ports is taken already. */
export class HostPortFilter implements Filter {
  #ports: string[] = [];

  setTask(task: SchedulerTask): boolean {
    this.#ports = hostPortKeys(task);
    return this.#ports.length > 0;
  }

  check(node: NodeInfo): boolean {
    for (const port of this.#ports) {
      if (node.hostPortInUse(port)) return false;
    }
    return true;
  }

  explain(nodeCount: number): string {
    return `host-mode port already in use on ${nodesText(nodeCount)}`;
  }
}
