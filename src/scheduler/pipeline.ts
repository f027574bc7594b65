import type { Filter } from "./filter.js";
import { ConstraintFilter } from "./filters/constraint-filter.js";
import { HostPortFilter } from "./filters/host-port-filter.js";
import { MaxReplicasFilter } from "./filters/max-replicas-filter.js";
import { PlatformFilter } from "./filters/platform-filter.js";
import { ReadyFilter } from "./filters/ready-filter.js";
import { ResourceFilter } from "./filters/resource-filter.js";
import type { NodeInfo } from "./node-info.js";
import type { SchedulerTask } from "./types.js";

/** The filters every placement runs, cheapest and most selective first. */
export function defaultFilters(): Filter[] {
  return [new ReadyFilter(), new ResourceFilter(), new PlatformFilter(), new ConstraintFilter(), new HostPortFilter(), new MaxReplicasFilter()];
}

/**
 * Runs a task's relevant filters over nodes and counts, per filter, the nodes it turned
 * away, so that "no suitable node (...)" explains itself (swarmkit scheduler/pipeline.go).
 */
export class Pipeline {
  readonly #filters: readonly Filter[];
  #active: { filter: Filter; failures: number }[] = [];

  constructor(filters: readonly Filter[] = defaultFilters()) {
    this.#filters = filters;
  }

  /** Prepares every filter for `task` and resets the failure counts. */
  setTask(task: SchedulerTask): void {
    this.#active = this.#filters.filter((filter) => filter.setTask(task)).map((filter) => ({ filter, failures: 0 }));
  }

  /** Whether `node` passes every relevant filter; counts a failure against the first that refuses. */
  process(node: NodeInfo): boolean {
    for (const entry of this.#active) {
      if (!entry.filter.check(node)) {
        entry.failures += 1;
        return false;
      }
    }
    return true;
  }

  /** "insufficient resources on 2 nodes; scheduling constraints not satisfied on 1 node", or "" without failures. */
  explain(): string {
    return this.#active
      .filter((entry) => entry.failures > 0)
      .map((entry) => entry.filter.explain(entry.failures))
      .join("; ");
  }
}
