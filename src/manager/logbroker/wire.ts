import { InvalidArgumentError } from "../../common/errors.js";
import type { LogSelector, ServiceLogMessage } from "../../api/docker-swarm/index.js";
import type { LogMessage, LogMessage__Output } from "../../gen/shoal/v1/LogMessage.js";
import type { LogOptions, LogOptions__Output } from "../../gen/shoal/v1/LogOptions.js";
import type { LogSelector as WireSelector, LogSelector__Output as WireSelectorOutput } from "../../gen/shoal/v1/LogSelector.js";
import type { WorkerLogOptions } from "./broker.js";

/** Bytes of one line on the wire (the engine splits longer lines before this). */
export const logLineWireBytesMax = 1024 * 1024 + 1;
/** Length of an id on the wire (ids are 25 characters; room for other schemes). */
export const logIdLengthMax = 128;

function checkId(value: string, path: string): string {
  if (value === "" || value.length > logIdLengthMax) throw new InvalidArgumentError(`${path} must be an id of 1 to ${logIdLengthMax} characters`);
  return value;
}

function checkWholeNumber(value: number, path: string, minimum: number): number {
  if (!Number.isSafeInteger(value) || value < minimum) throw new InvalidArgumentError(`${path} must be a whole number of at least ${minimum}, not ${value}`);
  return value;
}

export function toWireOptions(options: WorkerLogOptions): LogOptions {
  return { follow: options.follow, tail: options.tail ?? -1, sinceMs: options.sinceMs ?? 0, stdout: options.stdout, stderr: options.stderr };
}

export function parseWireOptions(options: LogOptions__Output | null, path: string): WorkerLogOptions {
  if (options === null) throw new InvalidArgumentError(`${path} is missing`);
  const tail = checkWholeNumber(options.tail, `${path}.tail`, -1);
  const sinceMs = checkWholeNumber(options.sinceMs, `${path}.sinceMs`, 0);
  if (!options.stdout && !options.stderr) throw new InvalidArgumentError(`${path} must ask for stdout, stderr or both`);
  return {
    follow: options.follow,
    stdout: options.stdout,
    stderr: options.stderr,
    ...(tail === -1 ? {} : { tail }),
    ...(sinceMs === 0 ? {} : { sinceMs }),
  };
}

export function toWireSelector(selector: LogSelector): WireSelector {
  return selector.kind === "service" ? { serviceIds: [selector.serviceId], taskIds: [] } : { serviceIds: [], taskIds: [selector.taskId] };
}

/** Exactly one service id or one task id (what the REST routes ask for). */
export function parseWireSelector(selector: WireSelectorOutput | null, path: string): LogSelector {
  if (selector === null) throw new InvalidArgumentError(`${path} is missing`);
  const [serviceId] = selector.serviceIds;
  const [taskId] = selector.taskIds;
  if (selector.serviceIds.length === 1 && selector.taskIds.length === 0 && serviceId !== undefined) return { kind: "service", serviceId: checkId(serviceId, `${path}.serviceIds[0]`) };
  if (selector.taskIds.length === 1 && selector.serviceIds.length === 0 && taskId !== undefined) return { kind: "task", taskId: checkId(taskId, `${path}.taskIds[0]`) };
  throw new InvalidArgumentError(`${path} must name one service or one task`);
}

export function toWireLogMessage(message: ServiceLogMessage): LogMessage {
  return {
    taskId: message.context.taskId,
    serviceId: message.context.serviceId,
    nodeId: message.context.nodeId,
    stream: message.stream === "stderr" ? "LOG_STREAM_STDERR" : "LOG_STREAM_STDOUT",
    timestampMs: message.timestampMs,
    data: Buffer.from(message.line.buffer, message.line.byteOffset, message.line.byteLength),
  };
}

export function parseWireLogMessage(message: LogMessage__Output, path: string): ServiceLogMessage {
  if (message.stream !== "LOG_STREAM_STDOUT" && message.stream !== "LOG_STREAM_STDERR") throw new InvalidArgumentError(`${path}.stream must be stdout or stderr`);
  if (message.data.length > logLineWireBytesMax) throw new InvalidArgumentError(`${path}.data holds ${message.data.length} bytes, more than ${logLineWireBytesMax}`);
  return {
    stream: message.stream === "LOG_STREAM_STDERR" ? "stderr" : "stdout",
    line: message.data,
    timestampMs: checkWholeNumber(message.timestampMs, `${path}.timestampMs`, 0),
    context: {
      taskId: checkId(message.taskId, `${path}.taskId`),
      serviceId: checkId(message.serviceId, `${path}.serviceId`),
      nodeId: checkId(message.nodeId, `${path}.nodeId`),
    },
  };
}
