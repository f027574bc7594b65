import { spawn } from "node:child_process";
import { mkdir, open, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

import { ApiClient } from "../cli/client.js";
import type { Clock } from "../common/clock.js";
import { DeadlineExceededError, FailedPreconditionError, UnavailableError, errorMessage, throwIfAborted, systemErrorCode } from "../common/errors.js";
import { daemonNodeFlags } from "../common/runtime-flags.js";
import { labGrpcPort } from "./names.js";
import { labHostNsenterArgs } from "./network.js";
import type { LabHostState } from "./state.js";

export const shoaldPath = fileURLToPath(new URL("../bin/shoald.js", import.meta.url));
export const shoalPath = fileURLToPath(new URL("../bin/shoal.js", import.meta.url));
/** A shoald that has not answered its socket by then is reported with its log's tail. */
export const shoaldStartTimeoutMs = 30_000;
/** How long `stop` waits after SIGTERM before SIGKILL. */
export const shoaldStopGraceMs = 10_000;
export const processPollMs = 25;
/** Log lines quoted in an error about a host that failed. */
const logTailLines = 15;

/** True while the process exists and is not a zombie (a killed child we have not reaped yet). */
export async function isProcessAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The state follows the parenthesised command name, which may itself hold spaces.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** A process that is not alive may still hold our pid slot only as a zombie: both count as gone. */
export async function waitProcessGone(pid: number, timeoutMs: number, clock: Clock): Promise<boolean> {
  const deadline = clock.now() + timeoutMs;
  while (await isProcessAlive(pid)) {
    if (clock.now() > deadline) return false;
    await clock.sleep(processPollMs);
  }
  return true;
}

export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if (systemErrorCode(error) !== "ESRCH") throw error;
  }
}

export async function logTail(host: LabHostState): Promise<string> {
  const text = await readFile(host.logFile, "utf8").catch((error: unknown) => `(no log: ${errorMessage(error)})`);
  return text.trimEnd().split("\n").slice(-logTailLines).join("\n");
}

/**
 * Starts the host's shoald in its namespaces, detached in its own session so that it
 * outlives the lab CLI and a test that crashed. nsenter execs without forking (no pid
 * namespace is entered), so the pid returned is shoald's own.
 */
export async function spawnShoald(host: LabHostState): Promise<number> {
  await mkdir(host.dataDir, { recursive: true, mode: 0o700 });
  await mkdir(host.runDir, { recursive: true, mode: 0o700 });
  const log = await open(host.logFile, "a", 0o600);
  try {
    const address = `${host.address}:${labGrpcPort}`;
    const args = [
      ...labHostNsenterArgs(host),
      process.execPath,
      ...daemonNodeFlags,
      shoaldPath,
      ...["--data-dir", host.dataDir, "--run-dir", host.runDir, "--socket", host.socket],
      ...["--listen-addr", address, "--advertise-addr", address, "--log-level", process.env["SHOAL_LAB_LOG_LEVEL"] ?? "info"],
    ];
    // cwd "/": conmon fails when the daemon's start directory is later removed.
    const child = spawn("nsenter", args, { detached: true, stdio: ["ignore", log.fd, log.fd], cwd: "/" });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once("spawn", () => resolve(child.pid ?? 0));
      child.once("error", (error) => reject(new UnavailableError(`cannot start shoald for ${host.name}: ${error.message}`, { cause: error })));
    });
    child.unref();
    return pid;
  } finally {
    await log.close();
  }
}

/** Waits until the host's shoald answers /_ping; fails early, with its log, if it exits. */
export async function waitShoaldAnswers(host: LabHostState, pid: number, options: { clock: Clock; signal?: AbortSignal; timeoutMs?: number }): Promise<void> {
  const client = new ApiClient({ kind: "unix", path: host.socket });
  const deadline = options.clock.now() + (options.timeoutMs ?? shoaldStartTimeoutMs);
  for (;;) {
    throwIfAborted(options.signal);
    if (!(await isProcessAlive(pid))) {
      throw new FailedPreconditionError(`shoald on ${host.name} exited during start; its log ends with:\n${await logTail(host)}`);
    }
    try {
      const response = await client.stream("GET", "/_ping", { signal: AbortSignal.timeout(2_000) });
      response.body.resume();
      if (response.status === 200) return;
    } catch {
      // not listening yet: the deadline below bounds the wait
    }
    if (options.clock.now() > deadline) {
      throw new DeadlineExceededError(`shoald on ${host.name} did not answer on ${host.socket} within ${options.timeoutMs ?? shoaldStartTimeoutMs} ms; log:\n${await logTail(host)}`);
    }
    await options.clock.sleep(processPollMs * 4, options.signal === undefined ? {} : { signal: options.signal });
  }
}
