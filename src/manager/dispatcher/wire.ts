import { InvalidArgumentError } from "../../common/errors.js";
import type { NodeDescription as WireNodeDescription } from "../../gen/shoal/v1/NodeDescription.js";
import type { TaskStatusUpdate__Output } from "../../gen/shoal/v1/TaskStatusUpdate.js";
import { isTaskState, parseNode, specLimits, taskHealthStates, type NodeDescription, type Task, type TaskStatus } from "../objects/index.js";

/** Status updates one UpdateTaskStatus request may carry. */
export const statusUpdatesPerRequestMax = 1_000;
const taskIdBytesMax = 64;
const taskIdPattern = /^[a-z0-9]+$/u;

export interface StatusUpdate {
  taskId: string;
  status: TaskStatus;
}

function parseText(value: string, path: string, bytesMax: number): string {
  if (Buffer.byteLength(value) > bytesMax) throw new InvalidArgumentError(`${path}: must be at most ${bytesMax} bytes`);
  return value;
}

/** Turns one wire status update into a TaskStatus, refusing unknown states and oversized text. */
function parseStatusUpdate(update: TaskStatusUpdate__Output, path: string): StatusUpdate {
  const taskId = update.taskId;
  if (taskId === "" || Buffer.byteLength(taskId) > taskIdBytesMax || !taskIdPattern.test(taskId)) {
    throw new InvalidArgumentError(`${path}.taskId: must be a task id (lower-case letters and digits), got ${JSON.stringify(taskId.slice(0, 80))}`);
  }
  if (!isTaskState(update.state)) throw new InvalidArgumentError(`${path}.state: "${update.state.slice(0, 40)}" is not a task state`);
  if (!Number.isSafeInteger(update.timestampMs) || update.timestampMs < 0) {
    throw new InvalidArgumentError(`${path}.timestampMs: must be milliseconds since the epoch`);
  }
  if (update.exitCode < -1 || update.exitCode > 255) throw new InvalidArgumentError(`${path}.exitCode: must be between -1 and 255, got ${update.exitCode}`);
  const status: TaskStatus = {
    state: update.state,
    timestamp: update.timestampMs,
    message: parseText(update.message, `${path}.message`, specLimits.messageBytesMax),
    err: parseText(update.err, `${path}.err`, specLimits.messageBytesMax),
  };
  if (update.health !== "") {
    const health = taskHealthStates.find((state) => state === update.health);
    if (health === undefined) throw new InvalidArgumentError(`${path}.health: "${update.health.slice(0, 40)}" is not starting, healthy or unhealthy`);
    status.health = health;
  }
  if (update.containerId !== "") {
    status.containerStatus = {
      containerId: parseText(update.containerId, `${path}.containerId`, specLimits.shortTextBytesMax),
      pid: update.pid,
      exitCode: update.exitCode,
    };
  }
  return { taskId, status };
}

/** Parses a request's updates; InvalidArgumentError names the first bad one. */
export function parseStatusUpdates(updates: readonly TaskStatusUpdate__Output[]): StatusUpdate[] {
  if (updates.length > statusUpdatesPerRequestMax) {
    throw new InvalidArgumentError(`a status request carries ${updates.length} updates, more than ${statusUpdatesPerRequestMax}; send them in several requests`);
  }
  return updates.map((update, index) => parseStatusUpdate(update, `updates[${index}]`));
}

/**
 * Validates a node's self-description with the store's own node parser (so a session can
 * never write a description the store would refuse), by wrapping it in a minimal node.
 */
export function parseNodeDescription(wire: WireNodeDescription | null | undefined, nodeId: string): NodeDescription {
  if (wire === null || wire === undefined) throw new InvalidArgumentError("session request: description is required");
  const candidate = {
    id: nodeId,
    meta: { version: 0, createdAt: 0, updatedAt: 0 },
    spec: {},
    status: { state: "unknown" },
    description: {
      hostname: wire.hostname ?? "",
      platform: { os: wire.platformOs ?? "", architecture: wire.platformArchitecture ?? "" },
      resources: { nanoCPUs: Number(wire.nanoCpus ?? 0), memoryBytes: Number(wire.memoryBytes ?? 0) },
      engine: { engineVersion: wire.engineVersion ?? "", labels: { ...wire.engineLabels } },
    },
  };
  const parsed = parseNode(candidate, "session request");
  if (parsed.description === undefined) throw new InvalidArgumentError("session request: description is required");
  return parsed.description;
}

/** Tasks travel as JSON of the store's model; the worker parses them back with parseTask. */
export function encodeTask(task: Task): Buffer {
  return Buffer.from(JSON.stringify(task));
}
