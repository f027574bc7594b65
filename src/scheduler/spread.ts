import type { NodeInfo } from "./node-info.js";
import type { SchedulerNode } from "./types.js";

/**
 * Placement preferences `spread=node.labels.X`: nodes form a tree by label value, one level
 * per preference, and each level splits a service's tasks evenly between its branches,
 * counting the tasks already there (swarm's decision tree). Nodes without the label share
 * one branch, as in swarm.
 */
export interface SpreadBranch {
  value: string;
  nodes: NodeInfo[];
  children: SpreadBranch[];
  /** Tasks of the service in this branch, kept current while placing. */
  count: number;
}

function spreadValue(node: SchedulerNode, spread: string): string {
  if (spread.startsWith("node.labels.")) return node.spec.labels[spread.slice("node.labels.".length)] ?? "";
  if (spread.startsWith("engine.labels.")) return node.description?.engine.labels[spread.slice("engine.labels.".length)] ?? "";
  return "";
}

export function buildSpreadTree(nodes: readonly NodeInfo[], spreads: readonly string[], serviceId: string): SpreadBranch[] {
  const [spread, ...deeper] = spreads;
  if (spread === undefined) return [];
  const byValue = new Map<string, NodeInfo[]>();
  for (const node of nodes) {
    const value = spreadValue(node.node, spread);
    const members = byValue.get(value);
    if (members === undefined) byValue.set(value, [node]);
    else members.push(node);
  }
  return [...byValue].map(([value, members]) => ({
    value,
    nodes: members,
    children: buildSpreadTree(members, deeper, serviceId),
    count: members.reduce((sum, node) => sum + node.serviceTaskCount(serviceId), 0),
  }));
}

/**
 * How many of `taskCount` new tasks each branch gets so that the counts end as even as
 * possible ("water filling"): the emptiest branches are raised first; what cannot be split
 * evenly goes to the earlier branches.
 */
export function evenShares(counts: readonly number[], taskCount: number): number[] {
  const shares = counts.map(() => 0);
  if (counts.length === 0 || taskCount === 0) return shares;
  const order = counts.map((_, index) => index).sort((left, right) => (counts[left] ?? 0) - (counts[right] ?? 0) || left - right);
  const countAt = (position: number): number => counts[order[position] ?? 0] ?? 0;
  let level = countAt(0);
  let used = 0;
  let raised = 1;
  while (raised < order.length) {
    const next = countAt(raised);
    const cost = (next - level) * raised;
    if (used + cost > taskCount) break;
    used += cost;
    level = next;
    raised += 1;
  }
  const rest = taskCount - used;
  const each = Math.floor(rest / raised);
  const extra = rest % raised;
  // Every raised branch now sits at `level`: the extras go to the earlier ones.
  const atLevel = order.slice(0, raised).sort((left, right) => left - right);
  atLevel.forEach((index, position) => {
    shares[index] = level - (counts[index] ?? 0) + each + (position < extra ? 1 : 0);
  });
  return shares;
}
