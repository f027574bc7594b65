import type { Readable, Writable } from "node:stream";

import { asRecord, numberField, recordField, stringField } from "./parse.js";

/** Largest frame the demuxer accepts; a bigger length means a corrupt stream. */
export const dockerFrameBytesMax = 64 * 1024 * 1024;

/**
 * Splits Docker's multiplexed stream (8-byte header: stream id, 3 zero bytes, big-endian
 * length) into stdout and stderr.
 */
export async function demuxDockerStream(body: Readable, outputs: { stdout: Writable; stderr: Writable }): Promise<void> {
  let pending = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = Buffer.concat([pending, Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk))]);
    while (pending.length >= 8) {
      const stream = pending[0];
      const length = pending.readUInt32BE(4);
      if (length > dockerFrameBytesMax || (stream !== 0 && stream !== 1 && stream !== 2)) {
        throw new Error(`corrupt log stream from the daemon (stream ${stream}, frame of ${length} bytes)`);
      }
      if (pending.length < 8 + length) break;
      const payload = pending.subarray(8, 8 + length);
      (stream === 2 ? outputs.stderr : outputs.stdout).write(payload);
      pending = pending.subarray(8 + length);
    }
  }
  if (pending.length > 0) throw new Error("the daemon's log stream ended in the middle of a frame");
}

/** One line of a Docker JSON-lines progress stream (pull, push, load). */
export interface JsonMessage {
  readonly id: string;
  readonly status: string;
  readonly stream: string;
  readonly progress: { readonly current: number; readonly total: number } | null;
  readonly error: string | null;
}

export function parseJsonMessage(line: string): JsonMessage {
  const record = asRecord(JSON.parse(line), "progress message");
  const detail = recordField(record, "progressDetail");
  const errorDetail = recordField(record, "errorDetail");
  const error = stringField(errorDetail, "message", stringField(record, "error")) || null;
  const total = numberField(detail, "total");
  return {
    id: stringField(record, "id"),
    status: stringField(record, "status"),
    stream: stringField(record, "stream"),
    progress: total > 0 ? { current: numberField(detail, "current"), total } : null,
    error,
  };
}

/** Reads a JSON-lines stream, calling `onMessage` per line; an in-stream error throws. */
export async function readJsonMessages(body: Readable, onMessage: (message: JsonMessage) => void): Promise<void> {
  let pending = "";
  for await (const chunk of body) {
    pending += Buffer.isBuffer(chunk) ? chunk.toString("utf8") : String(chunk);
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line !== "") {
        const message = parseJsonMessage(line);
        if (message.error !== null) throw new Error(message.error);
        onMessage(message);
      }
      newline = pending.indexOf("\n");
    }
  }
  if (pending.trim() !== "") {
    const message = parseJsonMessage(pending.trim());
    if (message.error !== null) throw new Error(message.error);
    onMessage(message);
  }
}

function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes}B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)}kB`;
  return `${(bytes / 1_000_000).toFixed(1)}MB`;
}

/**
 * Shows pull/push progress like `docker pull`: one line per layer, redrawn in place on a
 * terminal; on anything else, a line per status change only.
 */
export class ProgressDisplay {
  readonly #out: Writable & { isTTY?: boolean };
  readonly #lines = new Map<string, string>();
  readonly #order: string[] = [];
  #drawn = 0;

  constructor(out: Writable & { isTTY?: boolean }) {
    this.#out = out;
  }

  update(message: JsonMessage): void {
    if (message.stream !== "") {
      this.#out.write(message.stream);
      return;
    }
    if (message.id === "") {
      this.#out.write(`${message.status}\n`);
      return;
    }
    const bar = message.progress === null ? "" : ` ${this.#bar(message.progress.current, message.progress.total)}`;
    const line = `${message.id}: ${message.status}${bar}`;
    const previous = this.#lines.get(message.id);
    if (previous === undefined) this.#order.push(message.id);
    this.#lines.set(message.id, line);
    if (this.#out.isTTY === true) this.#redraw();
    else if (previous === undefined || !previous.startsWith(`${message.id}: ${message.status}`)) this.#out.write(`${message.id}: ${message.status}\n`);
  }

  #bar(current: number, total: number): string {
    const width = 40;
    const filled = Math.min(width, Math.floor((current / total) * width));
    const arrow = filled < width ? ">" : "";
    return `[${"=".repeat(Math.max(0, filled - arrow.length))}${arrow}${" ".repeat(width - filled)}] ${formatSize(current)}/${formatSize(total)}`;
  }

  #redraw(): void {
    if (this.#drawn > 0) this.#out.write(`\x1b[${this.#drawn}A`);
    for (const id of this.#order) this.#out.write(`\x1b[2K${this.#lines.get(id) ?? ""}\n`);
    this.#drawn = this.#order.length;
  }
}
