import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

import { spawnCommand, spawnDetached, type CommandLauncher, type CommandOptions, type CommandResult, type DetachedOptions } from "./command.js";
import { CancelledError, UnavailableError, errorMessage } from "./errors.js";
import type { Logger } from "./logger.js";

/**
 * A fork blocks the forking process's event loop for as long as the kernel takes to copy
 * its page tables, which grows with its memory: about 1 ms for a fresh Node process and
 * 4-10 ms for a daemon holding 150-350 MB. A container's life takes a dozen helper programs
 * (mount, conmon, runc, CNI plugins, ip), so the daemon hands them to a small process of
 * its own that forks cheaply, on the other core, while the daemon's loop goes on.
 */
const spawnerMainPath = fileURLToPath(new URL("./spawner-main.js", import.meta.url));

/** Characters of a request's program, arguments, environment and input; bounded so one bad caller cannot flood the pipe. */
export const spawnerRequestBytesMax = 1024 * 1024;

export interface SpawnerRunRequest {
  kind: "run";
  id: number;
  file: string;
  args: string[];
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  resolveOnSuccessfulExit?: boolean;
}

/** startDetached: the program's first line on fd 3 is the reply. */
export interface SpawnerStartRequest {
  kind: "start";
  id: number;
  file: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export interface SpawnerCancelRequest {
  kind: "cancel";
  id: number;
}

export type SpawnerRequest = SpawnerRunRequest | SpawnerStartRequest | SpawnerCancelRequest;

export type SpawnerReply = { id: number; result: CommandResult } | { id: number; ready: string } | { id: number; error: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return isRecord(value) && Object.values(value).every((item) => typeof item === "string");
}

function requestId(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw new TypeError(`invalid request id ${String(value)}`);
  return value;
}

/** Parses a request arriving over the spawner's IPC channel; TypeError names what is wrong. */
export function parseSpawnerRequest(message: unknown): SpawnerRequest {
  if (!isRecord(message)) throw new TypeError("a spawner request must be an object");
  const id = requestId(message["id"]);
  if (message["kind"] === "cancel") return { kind: "cancel", id };
  if (message["kind"] !== "run" && message["kind"] !== "start") throw new TypeError(`unknown spawner request kind ${String(message["kind"])}`);
  const { file, args, input, env, cwd, timeoutMs, resolveOnSuccessfulExit } = message;
  if (typeof file !== "string" || file === "") throw new TypeError("a spawner request needs a program to run");
  if (!isStringArray(args)) throw new TypeError("spawner request arguments must be strings");
  if (env !== undefined && !isStringRecord(env)) throw new TypeError("spawner request environment must map names to strings");
  if (message["kind"] === "start") {
    if (cwd !== undefined && (typeof cwd !== "string" || cwd === "")) throw new TypeError("spawner request working directory must be a path");
    return { kind: "start", id, file, args, ...(env === undefined ? {} : { env }), ...(cwd === undefined ? {} : { cwd }) };
  }
  if (input !== undefined && typeof input !== "string") throw new TypeError("spawner request input must be a string");
  if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs > 0))) throw new TypeError("spawner request timeout must be positive");
  if (resolveOnSuccessfulExit !== undefined && typeof resolveOnSuccessfulExit !== "boolean") {
    throw new TypeError("spawner request resolveOnSuccessfulExit must be a boolean");
  }
  return {
    kind: "run",
    id,
    file,
    args,
    ...(input === undefined ? {} : { input }),
    ...(env === undefined ? {} : { env }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    ...(resolveOnSuccessfulExit === undefined ? {} : { resolveOnSuccessfulExit }),
  };
}

/** Parses a reply from the spawner process; TypeError names what is wrong. */
export function parseSpawnerReply(message: unknown): SpawnerReply {
  if (!isRecord(message)) throw new TypeError("a spawner reply must be an object");
  const id = requestId(message["id"]);
  if (typeof message["error"] === "string") return { id, error: message["error"] };
  if (typeof message["ready"] === "string") return { id, ready: message["ready"] };
  const result = message["result"];
  if (!isRecord(result)) throw new TypeError("a spawner reply needs a result or an error");
  const { code, stdout, stderr } = result;
  if (typeof code !== "number" || !Number.isInteger(code) || typeof stdout !== "string" || typeof stderr !== "string") {
    throw new TypeError("a spawner result needs an integer code and string outputs");
  }
  return { id, result: { code, stdout, stderr } };
}

function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** What a request carries, in UTF-16 units, counted without serialising it a second time. */
function requestBytes(request: SpawnerRunRequest | SpawnerStartRequest): number {
  const strings = [request.file, ...request.args, ...Object.entries(request.env ?? {}).flat(), ...(request.kind === "run" && request.input !== undefined ? [request.input] : [])];
  return strings.reduce((sum, text) => sum + text.length, 0);
}

interface PendingCommand {
  file: string;
  /** Takes the spawner's answer (a result or a ready line); errors go to reject. */
  settle(reply: Exclude<SpawnerReply, { error: string }>): void;
  reject(error: Error): void;
}

/** Runs commands in a helper process (see spawnerMainPath); restarted on the next call if it dies. */
export class CommandSpawner implements CommandLauncher {
  readonly #logger: Logger;
  #child: ChildProcess | null = null;
  readonly #pending = new Map<number, PendingCommand>();
  #nextId = 0;
  #closed = false;

  constructor(options: { logger: Logger }) {
    this.#logger = options.logger.child({ component: "spawner" });
  }

  /** Same contract as runCommand. */
  run(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
    // Closing stops the spawner, not the daemon's own last commands.
    if (this.#closed) return spawnCommand(file, args, options);
    const request: SpawnerRunRequest = {
      kind: "run",
      id: this.#nextId++,
      file,
      args: [...args],
      ...(options.input === undefined ? {} : { input: options.input }),
      ...(options.env === undefined ? {} : { env: definedEnv(options.env) }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.resolveOnSuccessfulExit === undefined ? {} : { resolveOnSuccessfulExit: options.resolveOnSuccessfulExit }),
    };
    return this.#request(request, options.signal, (reply) => ("result" in reply ? reply.result : undefined));
  }

  /** Same contract as startDetached. */
  startDetached(file: string, args: readonly string[], options: DetachedOptions = {}): Promise<string> {
    if (this.#closed) return spawnDetached(file, args, options);
    const request: SpawnerStartRequest = {
      kind: "start",
      id: this.#nextId++,
      file,
      args: [...args],
      ...(options.env === undefined ? {} : { env: definedEnv(options.env) }),
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    };
    return this.#request(request, options.signal, (reply) => ("ready" in reply ? reply.ready : undefined));
  }

  #request<T>(
    request: SpawnerRunRequest | SpawnerStartRequest,
    signal: AbortSignal | undefined,
    answer: (reply: Exclude<SpawnerReply, { error: string }>) => T | undefined,
  ): Promise<T> {
    const { file } = request;
    if (signal?.aborted === true) return Promise.reject(new CancelledError(`${file} cancelled`, { cause: signal.reason }));
    if (requestBytes(request) > spawnerRequestBytesMax) {
      return Promise.reject(new UnavailableError(`cannot run ${file}: its arguments and input exceed ${spawnerRequestBytesMax} bytes`));
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        done();
        // A spawner that died took the command with it: nothing to cancel, nothing to start.
        if (this.#child !== null) this.#send({ kind: "cancel", id: request.id });
        reject(new CancelledError(`${file} cancelled`, { cause: signal?.reason }));
      };
      const done = (): void => {
        this.#pending.delete(request.id);
        signal?.removeEventListener("abort", onAbort);
        if (this.#pending.size === 0) this.#idle();
      };
      this.#pending.set(request.id, {
        file,
        settle: (reply) => {
          done();
          const value = answer(reply);
          if (value === undefined) reject(new UnavailableError(`the command spawner answered ${file} with the wrong kind of reply`));
          else resolve(value);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#send(request);
    });
  }

  /** Stops the helper process once its running commands are done; later commands fork here. */
  async close(): Promise<void> {
    this.#closed = true;
    const child = this.#child;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // An idle spawner is unreferenced; its exit must still be awaited.
    child.ref();
    if (child.connected) child.disconnect();
    await exited;
  }

  #send(request: SpawnerRequest): void {
    const child = this.#child ?? this.#start();
    child.ref();
    child.channel?.ref();
    child.send(request, (error) => {
      if (error === null || request.kind === "cancel") return;
      this.#pending.get(request.id)?.reject(new UnavailableError(`cannot hand ${request.file} to the command spawner: ${error.message}`, { cause: error }));
    });
  }

  #start(): ChildProcess {
    // No inherited execArgv: the daemon's flags (--cpu-prof, --inspect) are not the spawner's.
    const child = fork(spawnerMainPath, [], { execArgv: [], stdio: ["ignore", "ignore", "inherit", "ipc"], serialization: "json" });
    this.#child = child;
    child.on("message", (message: unknown) => this.#onReply(message));
    child.on("error", (error) => this.#logger.error({ err: error }, "command spawner failed"));
    child.once("exit", (code, signal) => {
      if (this.#child === child) this.#child = null;
      if (!this.#closed) this.#logger.error({ code, signal, running: this.#pending.size }, "command spawner exited; the next command starts another");
      for (const [id, pending] of [...this.#pending]) {
        this.#pending.delete(id);
        pending.reject(new UnavailableError(`the command spawner exited (${signal ?? `code ${code}`}) while ${pending.file} ran; retry`));
      }
    });
    return child;
  }

  #onReply(message: unknown): void {
    let reply: SpawnerReply;
    try {
      reply = parseSpawnerReply(message);
    } catch (error) {
      this.#logger.error({ err: error }, `dropping an unreadable reply from the command spawner: ${errorMessage(error)}`);
      return;
    }
    // Replies to cancelled requests find nothing pending.
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    if ("error" in reply) pending.reject(new UnavailableError(reply.error));
    else pending.settle(reply);
  }

  /** An idle spawner keeps no process alive: the daemon's shutdown, not the spawner's, ends it. */
  #idle(): void {
    this.#child?.unref();
    this.#child?.channel?.unref();
  }
}
