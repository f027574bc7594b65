import { nodesText, type Filter } from "../filter.js";
import type { NodeInfo } from "../node-info.js";
import type { SchedulerTask } from "../types.js";

/** Only nodes that are up (status ready) and take new work (availability active). */
export class ReadyFilter implements Filter {
  setTask(_task: SchedulerTask): boolean {
    return true;
  }

  check(node: NodeInfo): boolean {
    return node.node.status.state === "ready" && node.node.spec.availability === "active";
  }

  explain(nodeCount: number): string {
    return `${nodesText(nodeCount)} not available for new tasks`;
  }
}
