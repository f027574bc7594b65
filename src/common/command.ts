import { spawn } from "node:child_process";
import { Readable } from "node:stream";

import { CancelledError, UnavailableError } from "./errors.js";

/** Output kept from a helper command (runc, ip, nft, mount, CNI plugins); the rest is dropped. */
export const commandOutputBytesMax = 4 * 1024 * 1024;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  signal?: AbortSignal;
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Kills the program (SIGKILL) after this long; its result then has code 128. */
  timeoutMs?: number;
  /**
   * Resolve as soon as the program exits successfully instead of waiting for its output
   * pipes to close: `runtime create` hands its stdio to the container's init, which keeps
   * them open. On failure the init is gone, so the output is still awaited in full.
   */
  resolveOnSuccessfulExit?: boolean;
}

function appendLimited(chunks: Buffer[], chunk: Buffer, state: { bytes: number }): void {
  if (state.bytes >= commandOutputBytesMax) return;
  const room = commandOutputBytesMax - state.bytes;
  const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
  chunks.push(kept);
  state.bytes += kept.length;
}

/** The most a detached program may write on its ready pipe before the first newline. */
export const readyLineBytesMax = 64 * 1024;

export interface DetachedOptions {
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** The program's working directory; this process's by default. */
  cwd?: string;
}

/** Something that runs helper programs the way runCommand and startDetached promise to. */
export interface CommandLauncher {
  run(file: string, args: readonly string[], options: CommandOptions): Promise<CommandResult>;
  startDetached(file: string, args: readonly string[], options: DetachedOptions): Promise<string>;
}

let routedLauncher: CommandLauncher | null = null;

/**
 * Sends every later runCommand and startDetached of this process through `launcher` (the
 * daemon's spawner process) until the returned function is called. Process-wide on
 * purpose: the cost it avoids, forking this process, is process-wide too.
 */
export function routeCommandsThrough(launcher: CommandLauncher): () => void {
  routedLauncher = launcher;
  return () => {
    if (routedLauncher === launcher) routedLauncher = null;
  };
}

/**
 * Runs a helper program to completion and returns its exit code and output; never throws
 * for a non-zero exit (callers decide what a failure means). Throws UnavailableError when
 * the program cannot be started and CancelledError when the signal fires (the child is
 * killed with SIGKILL then).
 */
export function runCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return routedLauncher === null ? spawnCommand(file, args, options) : routedLauncher.run(file, args, options);
}

/**
 * Starts a program that outlives this process (its own session, no stdio of ours) and
 * reports on a pipe at fd 3, as conmon does with _OCI_SYNCPIPE=3; resolves with what it
 * wrote up to the first newline, or all of it when it closed the pipe first (empty when it
 * wrote nothing). Throws UnavailableError when it cannot start, CancelledError on abort.
 */
export function startDetached(file: string, args: readonly string[], options: DetachedOptions = {}): Promise<string> {
  return routedLauncher === null ? spawnDetached(file, args, options) : routedLauncher.startDetached(file, args, options);
}

function firstLine(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (chunk.includes(0x0a) || bytes > readyLineBytesMax) finish();
    };
    const finish = (): void => {
      stream.off("data", onData);
      stream.off("end", finish);
      stream.destroy();
      const text = Buffer.concat(chunks).toString("utf8");
      const newline = text.indexOf("\n");
      resolve(newline === -1 ? text.slice(0, readyLineBytesMax) : text.slice(0, newline + 1));
    };
    stream.on("data", onData);
    stream.on("end", finish);
    stream.on("error", reject);
  });
}

/** startDetached done by forking this process. */
export async function spawnDetached(file: string, args: readonly string[], options: DetachedOptions = {}): Promise<string> {
  const { signal } = options;
  if (signal?.aborted === true) throw new CancelledError(`${file} cancelled`, { cause: signal.reason });
  const child = spawn(file, args, {
    stdio: ["ignore", "ignore", "ignore", "pipe"],
    env: options.env ?? process.env,
    detached: true,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const ready = child.stdio[3];
  const spawnError = new Promise<never>((_, reject) => {
    child.once("error", (error) => reject(new UnavailableError(`cannot run ${file}: ${error.message}`, { cause: error })));
  });
  // Settled by the race below, or never: no unhandled rejection after it.
  spawnError.catch(() => undefined);
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      child.kill("SIGKILL");
      reject(new CancelledError(`${file} cancelled`, { cause: signal?.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    if (!(ready instanceof Readable)) {
      child.kill("SIGKILL");
      throw new UnavailableError(`cannot open the ready pipe of ${file}`);
    }
    return await Promise.race([firstLine(ready), spawnError, aborted]);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    child.unref();
  }
}

/** runCommand done by forking this process. */
export function spawnCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const { signal } = options;
  if (signal?.aborted === true) return Promise.reject(new CancelledError(`${file} cancelled`, { cause: signal.reason }));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
      killSignal: "SIGKILL",
      ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
      ...(signal === undefined ? {} : { signal }),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const outState = { bytes: 0 };
    const errState = { bytes: 0 };
    child.stdout?.on("data", (chunk: Buffer) => appendLimited(stdout, chunk, outState));
    child.stderr?.on("data", (chunk: Buffer) => appendLimited(stderr, chunk, errState));
    child.on("error", (error) => {
      if (signal?.aborted === true) {
        reject(new CancelledError(`${file} cancelled`, { cause: signal.reason }));
        return;
      }
      reject(new UnavailableError(`cannot run ${file}: ${error.message}`, { cause: error }));
    });
    if (options.resolveOnSuccessfulExit === true) {
      child.on("exit", (code) => {
        if (code !== 0) return;
        child.stdout?.destroy();
        child.stderr?.destroy();
        resolve({ code: 0, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") });
      });
    }
    child.on("close", (code, killedBy) => {
      resolve({
        code: code ?? (killedBy === null ? 1 : 128),
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    });
    if (options.input !== undefined) {
      // A program that exits before reading its input (nsenter into a namespace that just
      // vanished) makes the write fail with EPIPE; its exit code and stderr already say why.
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(options.input);
    }
  });
}

/** The last meaningful line of a tool's stderr, for error messages. */
export function lastErrorLine(text: string): string {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  return lines.at(-1) ?? "(no error output)";
}
