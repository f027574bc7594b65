import { spawn } from "node:child_process";

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

/** Something that runs helper programs the way runCommand promises to. */
export type CommandRunner = (file: string, args: readonly string[], options: CommandOptions) => Promise<CommandResult>;

let routedRunner: CommandRunner | null = null;

/**
 * Sends every later runCommand of this process through `runner` (the daemon's spawner
 * process) until the returned function is called. Process-wide on purpose: the cost it
 * avoids, forking this process, is process-wide too.
 */
export function routeCommandsThrough(runner: CommandRunner): () => void {
  routedRunner = runner;
  return () => {
    if (routedRunner === runner) routedRunner = null;
  };
}

/**
 * Runs a helper program to completion and returns its exit code and output; never throws
 * for a non-zero exit (callers decide what a failure means). Throws UnavailableError when
 * the program cannot be started and CancelledError when the signal fires (the child is
 * killed with SIGKILL then).
 */
export function runCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return (routedRunner ?? spawnCommand)(file, args, options);
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
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** The last meaningful line of a tool's stderr, for error messages. */
export function lastErrorLine(text: string): string {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  return lines.at(-1) ?? "(no error output)";
}
