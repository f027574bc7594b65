/** What the scale-down picker reads of a task: a subset of the manager's Task. */
export interface ScaleDownTask {
  readonly id: string;
  /** Empty when not yet assigned. */
  readonly nodeId: string;
  readonly slot: number;
  readonly status: { readonly state: string };
}

/**
 * Which of a replicated service's tasks to remove, in order, to drop `count` of them
 * (swarmkit replicated/services.go deleteTasks): unassigned tasks first (removing them
 * frees nothing and unbalances nothing), then one at a time from the node holding the most
 * of the service's remaining tasks (ties: the node with more tasks overall per
 * `nodeTaskCount`, then node id), on that node a task that is not running before one that
 * is, and the highest slot first.
 */
export function pickTasksToRemove(
  tasks: readonly ScaleDownTask[],
  count: number,
  options: { nodeTaskCount?: (nodeId: string) => number } = {},
): string[] {
  const nodeTaskCount = options.nodeTaskCount ?? (() => 0);
  const removeFirst = (left: ScaleDownTask, right: ScaleDownTask): number => {
    const leftRunning = left.status.state === "running" ? 1 : 0;
    const rightRunning = right.status.state === "running" ? 1 : 0;
    return leftRunning - rightRunning || right.slot - left.slot;
  };
  const picked: string[] = [];
  const unassigned = tasks.filter((task) => task.nodeId === "").sort(removeFirst);
  for (const task of unassigned) {
    if (picked.length >= count) return picked;
    picked.push(task.id);
  }
  const byNode = new Map<string, ScaleDownTask[]>();
  for (const task of tasks) {
    if (task.nodeId === "") continue;
    const list = byNode.get(task.nodeId);
    if (list === undefined) byNode.set(task.nodeId, [task]);
    else list.push(task);
  }
  for (const list of byNode.values()) list.sort(removeFirst);
  while (picked.length < count) {
    let busiest: [string, ScaleDownTask[]] | undefined;
    for (const entry of byNode) {
      if (busiest === undefined || busierNode(entry, busiest, nodeTaskCount)) busiest = entry;
    }
    const task = busiest?.[1].shift();
    if (busiest === undefined || task === undefined) break;
    picked.push(task.id);
    if (busiest[1].length === 0) byNode.delete(busiest[0]);
  }
  return picked;
}

function busierNode(
  [leftId, leftTasks]: [string, ScaleDownTask[]],
  [rightId, rightTasks]: [string, ScaleDownTask[]],
  nodeTaskCount: (nodeId: string) => number,
): boolean {
  if (leftTasks.length !== rightTasks.length) return leftTasks.length > rightTasks.length;
  const leftLoad = nodeTaskCount(leftId);
  const rightLoad = nodeTaskCount(rightId);
  if (leftLoad !== rightLoad) return leftLoad > rightLoad;
  return leftId < rightId;
}
