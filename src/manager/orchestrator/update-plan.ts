import { isDeepStrictEqual } from "node:util";

import { isTerminalTaskState, taskStateRank, type Node, type Service, type Task, type UpdateConfig, type UpdateState, type UpdateStatus } from "../objects/index.js";
import { constraintMatches, type Constraint } from "../../scheduler/index.js";
import { isLiveTask, taskSlotKey } from "./task.js";

/**
 * Slots the updater starts in one pass at most. With parallelism 0 (all at once) a huge
 * service is rolled in several passes, each one transaction below transactionChangesMax.
 */
export const updateSlotsPerPassMax = 60;
/** Failed tasks a status message names; the count says how many there were in all. */
export const updateFailuresNamedMax = 3;

const runningRank = taskStateRank("running");

/** What the updater knows about one service at one instant, all read from the store. */
export interface UpdatePlanInput {
  service: Service;
  /** Every task of the service, live and historic. */
  tasks: readonly Task[];
  node: (nodeId: string) => Node | undefined;
  /** The service's constraints, parsed; undefined when they do not parse (nothing moves for them). */
  constraints: readonly Constraint[] | undefined;
  now: number;
  /**
   * When a task was last seen entering "running" (its status timestamp then), as far as
   * the caller observed; undefined when it never saw the task run.
   */
  runningSince?: (taskId: string) => number | undefined;
}

export interface NewSlotTask {
  slot: number;
  /** "" for replicated tasks (the scheduler places them); the node for global ones. */
  nodeId: string;
  /** Why the task exists, for its status message. */
  reason: string;
  /**
   * "ready" for stop-first: the worker prepares the task but starts it only once the
   * restart supervisor sees the slot's old task stopped (see delayedStartDueAt).
   */
  desiredState: "running" | "ready";
}

/** The writes one pass decided on; the driver applies them in one transaction. */
export interface UpdatePlan {
  create: NewSlotTask[];
  shutdown: { taskId: string; reason: string }[];
  /** A new update status to store (undefined: leave it as it is). */
  status?: UpdateStatus;
  /** Swap spec and previousSpec (an automatic rollback); status says why. */
  rollback: boolean;
  /** When the plan may change by time alone (a delay or monitor window ends); undefined: only events change it. */
  wakeAt?: number;
  /** More slots were due than one pass starts: plan again right away. */
  more: boolean;
  /**
   * Nothing is rolling and no slot is stale: until the service or a node changes, task
   * events cannot give the updater work (new tasks always come from the current spec).
   */
  idle: boolean;
}

/** One slot as the updater sees it: tasks that match the current spec and placement, and the rest. */
interface SlotView {
  slot: number;
  nodeId: string;
  /** Live tasks from the current spec on a node they may stay on (or not placed yet). */
  fresh: Task[];
  /** Live tasks from an older spec, or on a drained node or one that no longer meets the constraints. */
  stale: Task[];
  /** Some stale task is misplaced (not only out of date): a drain or a label change moves it. */
  misplaced: boolean;
  /** A stopped task of the slot is misplaced: the slot is (or was) being moved. */
  movedOff: boolean;
}

/** Whether `task` was made from the service's current spec (swarmkit IsTaskDirty, inverted). */
export function isTaskCurrent(task: Task, service: Service): boolean {
  return isDeepStrictEqual(task.spec, service.spec.taskTemplate) && isDeepStrictEqual(task.endpoint, service.spec.endpointSpec);
}

/** A replicated task on a node it must leave: drained, or no longer meeting the service's constraints. */
function isMisplaced(input: UpdatePlanInput, task: Task): boolean {
  if (input.service.spec.mode.type === "global" || task.nodeId === "") return false;
  const node = input.node(task.nodeId);
  // Down and removed nodes are the replicated orchestrator's: it replaces those tasks at once.
  if (node === undefined || node.status.state === "down") return false;
  if (node.spec.availability === "drain") return true;
  return input.constraints !== undefined && !input.constraints.every((constraint) => constraintMatches(constraint, node));
}

function slotViews(input: UpdatePlanInput): SlotView[] {
  const slots = new Map<string, SlotView>();
  for (const task of input.tasks) {
    if (!isLiveTask(task)) continue;
    const key = taskSlotKey(task);
    let view = slots.get(key);
    if (view === undefined) {
      view = { slot: task.slot, nodeId: task.nodeId, fresh: [], stale: [], misplaced: false, movedOff: false };
      slots.set(key, view);
    }
    const misplaced = isMisplaced(input, task);
    if (!misplaced && isTaskCurrent(task, input.service)) view.fresh.push(task);
    else view.stale.push(task);
    view.misplaced ||= misplaced;
  }
  for (const task of input.tasks) {
    if (isLiveTask(task)) continue;
    const view = slots.get(taskSlotKey(task));
    if (view !== undefined && !view.movedOff) view.movedOff = isMisplaced(input, task);
  }
  return [...slots.values()].sort((left, right) => left.slot - right.slot || left.nodeId.localeCompare(right.nodeId));
}

/** How far a task got; one that already ended ranks below every task still going. */
function progressRank(task: Task): number {
  return isTerminalTaskState(task.status.state) ? -1 : taskStateRank(task.status.state);
}

/** The fresh task that stands for its slot: the furthest along, then the newest. */
function leadingTask(tasks: readonly Task[]): Task | undefined {
  let best: Task | undefined;
  for (const task of tasks) {
    if (best === undefined) best = task;
    else {
      const byRank = progressRank(task) - progressRank(best);
      if (byRank > 0 || (byRank === 0 && task.meta.createdAt > best.meta.createdAt)) best = task;
    }
  }
  return best;
}

/** A new task counts as updated once it runs and, when it has a health check, is healthy. */
export function isTaskDone(task: Task): boolean {
  return task.status.state === "running" && (task.status.health === undefined || task.status.health === "healthy");
}

/** A task that has not reached "done" yet and has not ended either: its slot is still rolling. */
function isTaskStarting(task: Task): boolean {
  return taskStateRank(task.status.state) < runningRank || (task.status.state === "running" && !isTaskDone(task));
}

/** Whether a task of the current spec failed: ended on its own, or was found unhealthy (swarm's "early termination"). */
export function isTaskFailed(task: Task): boolean {
  switch (task.status.state) {
    case "complete":
    case "failed":
    case "rejected":
      return true;
    case "shutdown":
    case "orphaned":
      return task.desiredState === "running";
    default:
      return task.status.health === "unhealthy";
  }
}

function isRollingBack(state: UpdateState | undefined): boolean {
  return state === "rollback_started" || state === "rollback_paused" || state === "rollback_completed";
}

function isInProgress(state: UpdateState | undefined): state is "updating" | "rollback_started" {
  return state === "updating" || state === "rollback_started";
}

/** The config that drives the current rollout: the rollback config while rolling back (as swarm does). */
export function activeUpdateConfig(service: Service): UpdateConfig {
  return isRollingBack(service.updateStatus?.state) ? service.spec.rollbackConfig : service.spec.updateConfig;
}

function nodeName(input: UpdatePlanInput, nodeId: string): string {
  if (nodeId === "") return "no node";
  const node = input.node(nodeId);
  const name = node?.spec.name !== undefined && node.spec.name !== "" ? node.spec.name : node?.description?.hostname;
  return name === undefined || name === "" ? `node ${nodeId}` : `node ${name} (${nodeId.slice(0, 12)})`;
}

/** "task abc (slot 3) on node w1 (...): exit code 1: <err>", the part of a status message naming one failure. */
export function describeTaskFailure(input: UpdatePlanInput, task: Task): string {
  const where = task.slot === 0 ? nodeName(input, task.nodeId) : `slot ${task.slot} on ${nodeName(input, task.nodeId)}`;
  const parts = [`task ${task.id.slice(0, 12)} (${where}) ${task.status.state}`];
  if (task.status.health === "unhealthy") parts.push("health check failed");
  const exitCode = task.status.containerStatus?.exitCode;
  if (exitCode !== undefined && exitCode !== 0) parts.push(`exit code ${exitCode}`);
  const why = task.status.err !== "" ? task.status.err : task.status.message;
  if (why !== "") parts.push(why);
  return parts.join(": ");
}

function failureSummary(input: UpdatePlanInput, failed: readonly Task[], slotCount: number): string {
  const config = activeUpdateConfig(input.service);
  const named = failed.slice(0, updateFailuresNamedMax).map((task) => describeTaskFailure(input, task));
  const more = failed.length > named.length ? `; and ${failed.length - named.length} more` : "";
  return `${failed.length} of ${slotCount} updated tasks failed (max failure ratio ${config.maxFailureRatio}): ${named.join("; ")}${more}`;
}

/**
 * Whether a failed task counts against the rollout. As in swarm, a task is watched for the
 * monitor window once it runs: one that ran longer before failing is the restart policy's
 * business, not the update's. A task never seen running (or seen by a former leader only)
 * counts.
 */
function failedWithinMonitor(input: UpdatePlanInput, task: Task): boolean {
  const since = input.runningSince?.(task.id);
  if (since === undefined) return true;
  // A running task found unhealthy keeps the timestamp of its start: it fails as of now.
  const failedAt = isTerminalTaskState(task.status.state) ? task.status.timestamp : input.now;
  return failedAt - since <= activeUpdateConfig(input.service).monitorMs;
}

/** Tasks of the current spec created since the rollout started that failed within their monitor window, oldest failure first. */
function failedSinceStart(input: UpdatePlanInput, startedAt: number): Task[] {
  return input.tasks
    .filter((task) => task.meta.createdAt >= startedAt && isTaskCurrent(task, input.service) && isTaskFailed(task) && failedWithinMonitor(input, task))
    .sort((left, right) => left.status.timestamp - right.status.timestamp);
}

function slotCountOf(input: UpdatePlanInput, slots: readonly SlotView[]): number {
  const { mode } = input.service.spec;
  return Math.max(1, mode.type === "replicated" ? mode.replicas : slots.length);
}

/** A fresh status when out-of-date tasks appear and no rollout is running or paused. */
function startedStatus(input: UpdatePlanInput, slots: readonly SlotView[]): UpdateStatus | undefined {
  const state = input.service.updateStatus?.state;
  if (isInProgress(state) || state === "paused" || state === "rollback_paused") return undefined;
  const outdated = slots.some((slot) => slot.fresh.length === 0 && slot.stale.some((task) => !isTaskCurrent(task, input.service)));
  if (!outdated) return undefined;
  return { state: "updating", startedAt: input.now, completedAt: 0, message: "update in progress" };
}

/** Start-first slots whose new task is done lose their old tasks; a slot keeps one fresh task. */
function planSlotCleanup(slots: readonly SlotView[], plan: UpdatePlan): void {
  for (const slot of slots) {
    const leader = leadingTask(slot.fresh);
    if (leader === undefined || !isTaskDone(leader)) continue;
    for (const task of slot.stale) plan.shutdown.push({ taskId: task.id, reason: `replaced by task ${leader.id}` });
    for (const task of slot.fresh) if (task !== leader) plan.shutdown.push({ taskId: task.id, reason: `slot already runs task ${leader.id}` });
  }
}

/** Applies the failure action once the failure ratio is passed; returns whether the rollout stops here. */
function planFailureAction(input: UpdatePlanInput, options: { status: UpdateStatus; slots: readonly SlotView[]; plan: UpdatePlan }): boolean {
  const { status, slots, plan } = options;
  const config = activeUpdateConfig(input.service);
  const failed = failedSinceStart(input, status.startedAt);
  const slotCount = slotCountOf(input, slots);
  if (failed.length === 0 || failed.length / slotCount <= config.maxFailureRatio) return false;
  if (config.failureAction === "continue") return false;
  const summary = failureSummary(input, failed, slotCount);
  const now = input.now;
  if (status.state === "updating" && config.failureAction === "rollback" && input.service.previousSpec !== undefined) {
    plan.rollback = true;
    plan.status = { state: "rollback_started", startedAt: now, completedAt: 0, message: `update rolled back: ${summary}` };
    return true;
  }
  const noPrevious = config.failureAction === "rollback" && status.state === "updating" ? " (no previous spec to roll back to)" : "";
  plan.status =
    status.state === "updating"
      ? { state: "paused", startedAt: status.startedAt, completedAt: 0, message: `update paused${noPrevious}: ${summary}` }
      : { state: "rollback_paused", startedAt: status.startedAt, completedAt: 0, message: `rollback paused: ${summary}` };
  return true;
}

/**
 * Slots still rolling: their new task has not reached done (and the rollout or a move made
 * it), or it finished within the last update delay. A slot starting for another reason (a
 * restart, a scale-up, a task no node can take) does not hold the rollout back.
 */
function planInFlight(input: UpdatePlanInput, options: { status: UpdateStatus | undefined; slots: readonly SlotView[]; plan: UpdatePlan }): number {
  const { status, slots, plan } = options;
  const rolling = status !== undefined && isInProgress(status.state);
  const delayMs = rolling ? activeUpdateConfig(input.service).delayMs : 0;
  let inFlight = 0;
  for (const slot of slots) {
    const leader = leadingTask(slot.fresh);
    if (leader === undefined) continue;
    // A restart (attempt > 0) of a task the rollout made is the restart policy's: its failure
    // counted (or not) already, and a crash loop must not hold the other slots back, by
    // starting again or by waiting out the delay anew after each restart.
    const madeByRollout = rolling && leader.attempt === 0 && leader.meta.createdAt >= status.startedAt;
    const touched = slot.stale.length > 0 || slot.movedOff || madeByRollout;
    if (isTaskStarting(leader)) {
      if (touched) inFlight += 1;
    } else if (delayMs > 0 && madeByRollout && isTaskDone(leader)) {
      const freeAt = leader.status.timestamp + delayMs;
      if (freeAt > input.now) {
        inFlight += 1;
        plan.wakeAt = Math.min(plan.wakeAt ?? freeAt, freeAt);
      }
    }
  }
  return inFlight;
}

/** Starts as many waiting slots as parallelism allows; returns how many were waiting. */
function planSlotStarts(input: UpdatePlanInput, options: { status: UpdateStatus | undefined; slots: readonly SlotView[]; inFlight: number; plan: UpdatePlan }): number {
  const { status, slots, plan } = options;
  const rolling = status !== undefined && isInProgress(status.state);
  // A paused rollout (or none) still moves tasks off drained nodes; only a running one replaces out-of-date tasks.
  const waiting = slots.filter((slot) => slot.fresh.length === 0 && slot.stale.length > 0 && (rolling || slot.misplaced));
  const config = activeUpdateConfig(input.service);
  const capacity = config.parallelism === 0 ? waiting.length : Math.max(0, config.parallelism - options.inFlight);
  const count = Math.min(capacity, waiting.length, updateSlotsPerPassMax);
  plan.more = count < Math.min(capacity, waiting.length);
  const global = input.service.spec.mode.type === "global";
  for (const slot of waiting.slice(0, count)) {
    const [old] = slot.stale;
    const reason = slot.misplaced ? `moves task ${old?.id ?? ""} off ${nodeName(input, slot.nodeId)}` : `updates task ${old?.id ?? ""}`;
    plan.create.push({ slot: slot.slot, nodeId: global ? slot.nodeId : "", reason, desiredState: config.order === "stop-first" ? "ready" : "running" });
    if (config.order === "stop-first") for (const task of slot.stale) plan.shutdown.push({ taskId: task.id, reason: "stopped for an update (stop-first)" });
  }
  return waiting.length;
}

/** Completes a rollout once nothing waits or rolls and the last new task has run a full monitor window. */
function planCompletion(input: UpdatePlanInput, options: { status: UpdateStatus; slots: readonly SlotView[]; plan: UpdatePlan }): void {
  const { status, slots, plan } = options;
  let lastDoneAt = status.startedAt;
  for (const slot of slots) {
    const leader = leadingTask(slot.fresh);
    if (leader !== undefined && leader.meta.createdAt >= status.startedAt) lastDoneAt = Math.max(lastDoneAt, leader.status.timestamp);
  }
  const monitorEnd = lastDoneAt + activeUpdateConfig(input.service).monitorMs;
  if (input.now < monitorEnd) {
    plan.wakeAt = Math.min(plan.wakeAt ?? monitorEnd, monitorEnd);
    return;
  }
  plan.status =
    status.state === "updating"
      ? { state: "completed", startedAt: status.startedAt, completedAt: input.now, message: "update completed" }
      : { state: "rollback_completed", startedAt: status.startedAt, completedAt: input.now, message: `rollback completed; ${status.message}` };
}

/**
 * One updater decision for one service (swarmkit manager/orchestrator/update, re-thought as
 * a pure function of the store): which slots to roll now, which old tasks to stop, and how
 * the update status moves. Everything it needs is in the store, so a new leader carries on
 * where the old one stopped. The rules:
 * - a slot is stale when it has no live task from the current spec on a node it may stay on
 *   (an out-of-date spec, a drained node, or constraints the node no longer meets);
 * - at most `parallelism` slots roll at once (0 = all); a slot rolls from when its new task
 *   is created until it runs (and is healthy, if it has a health check) plus `delayMs`;
 * - stop-first stops the old task as the new one is created, and the new one starts once
 *   the old one is reported stopped; start-first stops the old task once the new one is done;
 * - a task from the current spec created since the rollout started that fails before it ran
 *   for the monitor window counts as a failure; past maxFailureRatio the failure action
 *   applies (a rollback's "rollback" pauses);
 * - the rollout completes once no slot waits or rolls and the last new task has run for the
 *   monitor window.
 */
export function planServiceUpdate(input: UpdatePlanInput): UpdatePlan {
  const plan: UpdatePlan = { create: [], shutdown: [], rollback: false, more: false, idle: false };
  const slots = slotViews(input);
  const started = startedStatus(input, slots);
  if (started !== undefined) plan.status = started;
  const status = started ?? input.service.updateStatus;
  planSlotCleanup(slots, plan);
  if (status !== undefined && isInProgress(status.state) && planFailureAction(input, { status, slots, plan })) {
    if (plan.rollback) return plan;
  }
  const effective = plan.status ?? status;
  const inFlight = planInFlight(input, { status: effective, slots, plan });
  const waiting = planSlotStarts(input, { status: effective, slots, inFlight, plan });
  if (effective !== undefined && isInProgress(effective.state) && waiting === 0 && inFlight === 0 && plan.create.length === 0) {
    planCompletion(input, { status: effective, slots, plan });
  }
  const rolling = (plan.status ?? effective) !== undefined && isInProgress((plan.status ?? effective)?.state);
  plan.idle = !rolling && inFlight === 0 && waiting === 0 && slots.every((slot) => slot.stale.length === 0) && plan.shutdown.length === 0 && plan.wakeAt === undefined;
  return plan;
}
