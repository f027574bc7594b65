import { InvalidArgumentError } from "../../common/errors.js";

/** Largest log line forwarded in one frame; longer lines are split over frames. */
export const logFrameBytesMax = 1024 * 1024;

/** Which tasks' logs to read: every task of a service, or one task. */
export type LogSelector = { kind: "service"; serviceId: string } | { kind: "task"; taskId: string };

export interface LogContext {
  nodeId: string;
  serviceId: string;
  taskId: string;
}

/** One log line of one task, as its worker sent it. */
export interface ServiceLogMessage {
  stream: "stdout" | "stderr";
  /** The line's bytes, with its trailing newline when it had one. */
  line: Uint8Array;
  /** When the container wrote it, in milliseconds since the epoch. */
  timestampMs: number;
  context: LogContext;
}

export interface ServiceLogOptions {
  follow: boolean;
  /** Lines to send from the end of each task's log; undefined = all. */
  tail?: number;
  /** Only lines written at or after this time (ms since the epoch). */
  sinceMs?: number;
  stdout: boolean;
  stderr: boolean;
  signal: AbortSignal;
}

/**
 * Where service and task logs come from: the manager asks the workers running the tasks
 * (the daemon's composition provides it). The iterator ends when the logs end (or, with
 * follow, when the signal fires); it rejects with NotFoundError for an unknown task.
 */
export interface ServiceLogSource {
  logs(selector: LogSelector, options: ServiceLogOptions): AsyncIterable<ServiceLogMessage>;
}

export interface LogFrameOptions {
  timestamps: boolean;
  details: boolean;
}

/** Docker's detail attributes: sorted key=value pairs, values query-escaped, comma-separated. */
export function logDetails(context: LogContext): string {
  return [
    ["com.docker.swarm.node.id", context.nodeId],
    ["com.docker.swarm.service.id", context.serviceId],
    ["com.docker.swarm.task.id", context.taskId],
  ]
    .map(([key, value]) => `${key}=${encodeURIComponent(value ?? "")}`)
    .join(",");
}

/**
 * One message in Docker's multiplexed framing (8-byte header: stream 1 or 2, three zero
 * bytes, big-endian length), prefixed as moby does: the timestamp, then the details.
 */
export function encodeLogFrames(message: ServiceLogMessage, options: LogFrameOptions): Buffer[] {
  const prefix = `${options.timestamps ? `${new Date(message.timestampMs).toISOString()} ` : ""}${options.details ? `${logDetails(message.context)} ` : ""}`;
  const payload = Buffer.concat([Buffer.from(prefix), message.line]);
  const frames: Buffer[] = [];
  for (let offset = 0; offset < payload.length || frames.length === 0; offset += logFrameBytesMax) {
    const chunk = payload.subarray(offset, offset + logFrameBytesMax);
    const header = Buffer.alloc(8);
    header[0] = message.stream === "stderr" ? 2 : 1;
    header.writeUInt32BE(chunk.length, 4);
    frames.push(header, chunk);
  }
  return frames;
}

/** Docker's `tail` parameter: "all", empty, or a whole number of lines. */
export function parseTail(value: string | undefined): number | undefined {
  if (value === undefined || value === "" || value === "all") return undefined;
  if (!/^\d+$/u.test(value)) throw new InvalidArgumentError(`tail must be "all" or a whole number of lines, not "${value}"`);
  return Number(value);
}

/** Docker's `since`: Unix seconds with an optional fraction ("1700000000.5"), or empty. */
export function parseSince(value: string | undefined): number | undefined {
  if (value === undefined || value === "" || value === "0") return undefined;
  if (!/^\d+(\.\d{1,9})?$/u.test(value)) throw new InvalidArgumentError(`since must be a Unix timestamp in seconds (e.g. 1700000000.5), not "${value}"`);
  return Math.floor(Number(value) * 1000);
}
