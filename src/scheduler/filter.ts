import type { NodeInfo } from "./node-info.js";
import type { SchedulerTask } from "./types.js";

/** One placement rule (swarmkit scheduler/filter.go). */
export interface Filter {
  /** Prepares for `task`; false when the rule does not apply to it (then check is not called). */
  setTask(task: SchedulerTask): boolean;
  /** Whether `node` can take the task set last. */
  check(node: NodeInfo): boolean;
  /** Why `nodeCount` nodes failed this check, for "no suitable node (...)". */
  explain(nodeCount: number): string;
}

/** "1 node" / "3 nodes". */
export function nodesText(count: number): string {
  return count === 1 ? "1 node" : `${count} nodes`;
}
