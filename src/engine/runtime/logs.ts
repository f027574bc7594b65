import { watch, type FSWatcher } from "node:fs";
import { open, stat } from "node:fs/promises";

import { InvalidArgumentError } from "../../common/errors.js";

export type LogStream = "stdout" | "stderr";

/** One line of container output, as `docker logs` shows it (text ends with "\n" when complete). */
export interface LogEntry {
  stream: LogStream;
  /** The RFC 3339 timestamp with nanoseconds, as conmon wrote it. */
  time: string;
  timeMs: number;
  text: string;
}

export interface LogReadOptions {
  stdout?: boolean;
  stderr?: boolean;
  /** Keep reading until the container stops (or the signal fires). */
  follow?: boolean;
  /** Only the last `tail` lines of what exists now. */
  tail?: number;
  /** Only lines written at or after this time (ms since the epoch). */
  sinceMs?: number;
  /** Only lines written before this time (ms since the epoch). */
  untilMs?: number;
  signal?: AbortSignal;
}

/** Bytes read from the log file per step, so a huge log never sits in memory at once. */
export const logReadChunkBytes = 256 * 1024;
/** A partial line longer than this is emitted as is rather than buffered further. */
export const logLineBytesMax = 1024 * 1024;

const linePattern = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s;

/**
 * Parses k8s-file lines (`<time> <stream> <F|P> <text>`), joining partial (`P`) pieces with
 * the final (`F`) piece of the same stream. Keeps the pieces between calls.
 */
export class K8sLogParser {
  readonly #partial: Record<LogStream, string> = { stdout: "", stderr: "" };
  #lastTime = "";
  #lastTimeMs = 0;

  /**
   * Returns what is left of unfinished lines (output that ended without a newline), as
   * `docker logs` shows it, and forgets it.
   */
  flush(): LogEntry[] {
    const entries: LogEntry[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      const text = this.#partial[stream];
      if (text === "") continue;
      this.#partial[stream] = "";
      entries.push({ stream, time: this.#lastTime, timeMs: this.#lastTimeMs, text });
    }
    return entries;
  }

  /** Parses one line (without its newline); returns an entry when a line completes. */
  parseLine(line: string): LogEntry | null {
    const match = linePattern.exec(line);
    if (match === null) return null;
    const [, time = "", streamText, tag, content = ""] = match;
    const stream: LogStream = streamText === "stderr" ? "stderr" : "stdout";
    const timeMs = Date.parse(time);
    if (Number.isNaN(timeMs)) return null;
    this.#lastTime = time;
    this.#lastTimeMs = timeMs;
    if (tag === "P" && this.#partial[stream].length + content.length < logLineBytesMax) {
      this.#partial[stream] += content;
      return null;
    }
    const text = this.#partial[stream] + content + (tag === "F" ? "\n" : "");
    this.#partial[stream] = "";
    return { stream, time, timeMs, text };
  }
}

function wanted(entry: LogEntry, options: LogReadOptions): boolean {
  if (entry.stream === "stdout" && options.stdout === false) return false;
  if (entry.stream === "stderr" && options.stderr === false) return false;
  if (options.sinceMs !== undefined && entry.timeMs < options.sinceMs) return false;
  if (options.untilMs !== undefined && entry.timeMs >= options.untilMs) return false;
  return true;
}

interface FileCursor {
  offset: number;
  rest: string;
  parser: K8sLogParser;
}

async function readNewEntries(path: string, cursor: FileCursor, final: boolean): Promise<LogEntry[]> {
  const entries = await readAppended(path, cursor);
  return final ? [...entries, ...cursor.parser.flush()] : entries;
}

async function readAppended(path: string, cursor: FileCursor): Promise<LogEntry[]> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return [];
  }
  // conmon starts the file afresh when it passes its size cap.
  if (size < cursor.offset) Object.assign(cursor, { offset: 0, rest: "", parser: new K8sLogParser() });
  if (size === cursor.offset) return [];
  const handle = await open(path, "r");
  const entries: LogEntry[] = [];
  try {
    const buffer = Buffer.alloc(logReadChunkBytes);
    while (cursor.offset < size) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, cursor.offset);
      if (bytesRead === 0) break;
      cursor.offset += bytesRead;
      const lines = (cursor.rest + buffer.subarray(0, bytesRead).toString("utf8")).split("\n");
      cursor.rest = lines.pop() ?? "";
      for (const line of lines) {
        const entry = cursor.parser.parseLine(line);
        if (entry !== null) entries.push(entry);
      }
    }
  } finally {
    await handle.close();
  }
  return entries;
}

interface ChangeWaiter {
  changed: Promise<void>;
  cancel: () => void;
}

/** Arms an inotify watch before the caller reads, so a write between the two is not missed. */
function armChangeWaiter(path: string, done: Promise<void>, signal: AbortSignal | undefined): ChangeWaiter {
  let cancel = (): void => {};
  const changed = new Promise<void>((resolve) => {
    let watcher: FSWatcher | null = null;
    const finish = (): void => {
      watcher?.close();
      signal?.removeEventListener("abort", finish);
      resolve();
    };
    cancel = finish;
    try {
      watcher = watch(path, () => finish());
      watcher.on("error", finish);
    } catch {
      // No log file yet (never started): only the container's end or the signal can wake us.
    }
    signal?.addEventListener("abort", finish, { once: true });
    done.then(finish, finish);
  });
  return { changed, cancel };
}

/**
 * Reads a container's k8s-file log. With `follow`, keeps yielding new lines until `done`
 * resolves (the container stopped) and the file holds nothing more, or the signal fires.
 */
export async function* readContainerLog(
  path: string,
  options: LogReadOptions,
  done: () => Promise<void>,
): AsyncGenerator<LogEntry> {
  if (options.tail !== undefined && (!Number.isSafeInteger(options.tail) || options.tail < 0)) {
    throw new InvalidArgumentError(`tail ${options.tail} must be a non-negative integer`);
  }
  const cursor: FileCursor = { offset: 0, rest: "", parser: new K8sLogParser() };
  const existing = (await readNewEntries(path, cursor, options.follow !== true)).filter((entry) => wanted(entry, options));
  yield* options.tail === undefined ? existing : existing.slice(Math.max(0, existing.length - options.tail));
  if (options.follow !== true) return;
  let finished = false;
  const markFinished = (): void => {
    finished = true;
  };
  const donePromise = done().then(markFinished, markFinished);
  for (;;) {
    if (options.signal?.aborted === true) return;
    const wasFinished = finished;
    const waiter = armChangeWaiter(path, donePromise, options.signal);
    try {
      for (const entry of await readNewEntries(path, cursor, wasFinished)) if (wanted(entry, options)) yield entry;
      if (wasFinished) return;
      await waiter.changed;
    } finally {
      waiter.cancel();
    }
  }
}
