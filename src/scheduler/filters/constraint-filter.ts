import { errorMessage } from "../../common/errors.js";
import { constraintMatches, parseConstraints, type Constraint } from "../constraint.js";
import { nodesText, type Filter } from "../filter.js";
import type { NodeInfo } from "../node-info.js";
import type { SchedulerTask } from "../types.js";

/** Nodes matching every placement constraint of the task. */
export class ConstraintFilter implements Filter {
  #constraints: Constraint[] = [];
  /** Set when the task's constraints do not parse: no node can satisfy them then. */
  #invalid: string | undefined;

  setTask(task: SchedulerTask): boolean {
    const texts = task.spec.placement.constraints;
    if (texts.length === 0) return false;
    try {
      this.#constraints = parseConstraints(texts);
      this.#invalid = undefined;
    } catch (error) {
      this.#constraints = [];
      this.#invalid = errorMessage(error);
    }
    return true;
  }

  check(node: NodeInfo): boolean {
    if (this.#invalid !== undefined) return false;
    for (const constraint of this.#constraints) {
      if (!constraintMatches(constraint, node.node)) return false;
    }
    return true;
  }

  explain(nodeCount: number): string {
    if (this.#invalid !== undefined) return `invalid constraint (${this.#invalid})`;
    return `scheduling constraints not satisfied on ${nodesText(nodeCount)}`;
  }
}
