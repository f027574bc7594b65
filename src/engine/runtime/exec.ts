import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

import { CancelledError, InvalidArgumentError, UnavailableError } from "../../common/errors.js";
import type { OciRuntime } from "./oci/runtime.js";
import type { OciProcess } from "./spec/types.js";

/** Output kept by `collectExecOutput` per stream; more is dropped and flagged. */
export const execOutputBytesMax = 16 * 1024 * 1024;

/** A process started in a running container. */
export interface ExecSession {
  stdout: Readable;
  stderr: Readable;
  /** Present when the exec was started with `stdin: true`; end it to send EOF. */
  stdin: Writable | null;
  /** The process's exit code (128+n when killed by signal n). */
  exited: Promise<number>;
}

export interface ExecOptions {
  cmd: readonly string[];
  env?: readonly string[];
  user?: string;
  workingDir?: string;
  stdin?: boolean;
  signal?: AbortSignal;
}

/**
 * Runs `<runtime> exec --process <file> <id>`: the runtime joins the container's
 * namespaces and cgroups and its stdio become the process's. The process file is written
 * in `scratchDirectory` and removed when the process ends.
 */
export async function startExec(options: {
  runtime: OciRuntime;
  containerId: string;
  process: OciProcess;
  scratchDirectory: string;
  stdin: boolean;
  signal?: AbortSignal;
}): Promise<ExecSession> {
  if (options.process.args.length === 0) throw new InvalidArgumentError("exec needs a command");
  if (options.signal?.aborted === true) throw new CancelledError("exec cancelled");
  const processFile = join(options.scratchDirectory, `exec-${randomBytes(8).toString("hex")}.json`);
  await writeFile(processFile, JSON.stringify(options.process));
  const child = spawn(options.runtime.path, [...options.runtime.globalArgs, "exec", "--process", processFile, options.containerId], {
    stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    ...(options.signal === undefined ? {} : { signal: options.signal, killSignal: "SIGKILL" }),
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once("error", (error) => {
      if (options.signal?.aborted === true) reject(new CancelledError("exec cancelled", { cause: error }));
      else reject(new UnavailableError(`cannot run ${options.runtime.name} exec: ${error.message}`, { cause: error }));
    });
    child.once("close", (code, signalName) => {
      resolve(code ?? (signalName === null ? 255 : 128 + constants.signals[signalName]));
    });
  }).finally(() => rm(processFile, { force: true }));
  const { stdout, stderr } = child;
  if (stdout === null || stderr === null) throw new UnavailableError("exec output pipes are missing");
  return { stdout, stderr, stdin: child.stdin, exited };
}

function collect(stream: Readable): Promise<{ data: Buffer; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let truncated = false;
    stream.on("data", (chunk: Buffer) => {
      if (bytes + chunk.length > execOutputBytesMax) {
        truncated = true;
        return;
      }
      chunks.push(chunk);
      bytes += chunk.length;
    });
    stream.on("error", reject);
    stream.on("end", () => resolve({ data: Buffer.concat(chunks), truncated }));
  });
}

/** Waits for an exec and returns its exit code with stdout and stderr kept apart. */
export async function collectExecOutput(
  session: ExecSession,
): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer; truncated: boolean }> {
  const [stdout, stderr, exitCode] = await Promise.all([collect(session.stdout), collect(session.stderr), session.exited]);
  return { exitCode, stdout: stdout.data, stderr: stderr.data, truncated: stdout.truncated || stderr.truncated };
}
