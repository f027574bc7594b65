import { MinHeap } from "./heap.js";
import type { NodeInfo } from "./node-info.js";
import { Pipeline } from "./pipeline.js";
import { buildSpreadTree, evenShares, type SpreadBranch } from "./spread.js";
import type { SchedulerTask } from "./types.js";

export interface ScheduleResult {
  /** taskId -> nodeId for every task placed. */
  assignments: Map<string, string>;
  /** taskId -> why it stays pending ("no suitable node (...)"). */
  unschedulable: Map<string, string>;
}

interface PlacementContext {
  pipeline: Pipeline;
  serviceId: string;
  result: ScheduleResult;
}

interface RankedNode {
  node: NodeInfo;
  /** Tasks of the group's service on the node (mirrors node.serviceTaskCount while placing). */
  serviceCount: number;
  order: number;
}

/** Fewest tasks of this service first, then the least loaded node, then input order. */
function rankedBefore(left: RankedNode, right: RankedNode): boolean {
  if (left.serviceCount !== right.serviceCount) return left.serviceCount < right.serviceCount;
  const leftLoad = left.node.taskCount;
  const rightLoad = right.node.taskCount;
  if (leftLoad !== rightLoad) return leftLoad < rightLoad;
  return left.order < right.order;
}

/**
 * Places `tasks` on `candidates` one at a time, always on the best ranked node, re-checking
 * that node first (earlier placements used its resources); a node that no longer passes
 * leaves the heap for good, since placing only ever takes capacity away. Returns the tasks
 * left over when no node remains.
 */
function placeOnNodes(candidates: readonly NodeInfo[], tasks: readonly SchedulerTask[], context: PlacementContext): SchedulerTask[] {
  const { pipeline, serviceId, result } = context;
  const heap = new MinHeap<RankedNode>(
    candidates.map((node, order) => ({ node, serviceCount: node.serviceTaskCount(serviceId), order })),
    rankedBefore,
  );
  let placed = 0;
  while (placed < tasks.length) {
    const top = heap.peek();
    if (top === undefined) break;
    if (!pipeline.process(top.node)) {
      heap.pop();
      continue;
    }
    const task = tasks[placed];
    if (task === undefined) break;
    top.node.addTask(task);
    result.assignments.set(task.id, top.node.id);
    top.serviceCount += 1;
    heap.updateTop();
    placed += 1;
  }
  return tasks.slice(placed);
}

function placeInBranch(branch: SpreadBranch, tasks: SchedulerTask[], context: PlacementContext): SchedulerTask[] {
  if (branch.children.length > 0) return placeInBranches(branch.children, tasks, context);
  return placeOnNodes(branch.nodes, tasks, context);
}

/**
 * Splits `tasks` evenly over `branches`; a branch that cannot take its whole share is full,
 * and what it could not take is split again over the branches still open.
 */
function placeInBranches(branches: readonly SpreadBranch[], tasks: SchedulerTask[], context: PlacementContext): SchedulerTask[] {
  let remaining = tasks;
  let open = branches.slice();
  while (remaining.length > 0 && open.length > 0) {
    const shares = evenShares(
      open.map((branch) => branch.count),
      remaining.length,
    );
    const leftover: SchedulerTask[] = [];
    const stillOpen: SpreadBranch[] = [];
    let offset = 0;
    open.forEach((branch, index) => {
      const share = shares[index] ?? 0;
      const mine = remaining.slice(offset, offset + share);
      offset += share;
      const rest = share === 0 ? [] : placeInBranch(branch, mine, context);
      branch.count += share - rest.length;
      if (rest.length > 0) leftover.push(...rest);
      else stillOpen.push(branch);
    });
    remaining = leftover;
    open = stillOpen;
  }
  return remaining;
}

function unschedulableMessage(nodeCount: number, pipeline: Pipeline): string {
  if (nodeCount === 0) return "no suitable node (no nodes in the cluster)";
  const reasons = pipeline.explain();
  return reasons === "" ? "no suitable node" : `no suitable node (${reasons})`;
}

function placeGroup(nodes: readonly NodeInfo[], group: SchedulerTask[], context: PlacementContext): void {
  const [first] = group;
  if (first === undefined) return;
  const { pipeline } = context;
  pipeline.setTask(first);
  const eligible = nodes.filter((node) => pipeline.process(node));
  const spreads = first.spec.placement.preferences.map((preference) => preference.spread);
  const leftover =
    spreads.length === 0
      ? placeOnNodes(eligible, group, context)
      : placeInBranches(buildSpreadTree(eligible, spreads, first.serviceId), group, context);
  if (leftover.length === 0) return;
  const message = unschedulableMessage(nodes.length, pipeline);
  for (const task of leftover) context.result.unschedulable.set(task.id, message);
}

function placePreassigned(byId: ReadonlyMap<string, NodeInfo>, task: SchedulerTask, context: PlacementContext): void {
  const node = byId.get(task.nodeId);
  if (node === undefined) {
    context.result.unschedulable.set(task.id, `node ${task.nodeId} is not in the cluster`);
    return;
  }
  context.pipeline.setTask(task);
  if (context.pipeline.process(node)) {
    node.addTask(task);
    context.result.assignments.set(task.id, node.id);
    return;
  }
  context.result.unschedulable.set(task.id, `node ${task.nodeId} is not suitable (${context.pipeline.explain()})`);
}

/**
 * Places pending tasks on `nodes` in one pass (swarmkit scheduler.go scheduleTaskGroup):
 * tasks of one service and spec version (which must share their spec, as tasks created
 * from one service version do) are a group, filtered once and spread evenly with
 * a heap, so a large service costs O(tasks x log nodes). Tasks whose nodeId is already set
 * (global services) are only checked against that node. `nodes` is updated with every
 * placement, so callers keep it as the incremental state for the next pass.
 */
export function scheduleTasks(nodes: readonly NodeInfo[], tasks: readonly SchedulerTask[], options: { pipeline?: Pipeline } = {}): ScheduleResult {
  const result: ScheduleResult = { assignments: new Map(), unschedulable: new Map() };
  const pipeline = options.pipeline ?? new Pipeline();
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const groups = new Map<string, SchedulerTask[]>();
  for (const task of tasks) {
    if (task.nodeId !== "") {
      placePreassigned(byId, task, { pipeline, serviceId: task.serviceId, result });
      continue;
    }
    const key = `${task.serviceId}\u0000${task.specVersion}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [task]);
    else group.push(task);
  }
  for (const group of groups.values()) {
    const [first] = group;
    if (first !== undefined) placeGroup(nodes, group, { pipeline, serviceId: first.serviceId, result });
  }
  return result;
}
