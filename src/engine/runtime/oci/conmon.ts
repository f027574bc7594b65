import { spawn } from "node:child_process";
import { Readable } from "node:stream";

import { CancelledError, FailedPreconditionError, UnavailableError } from "../../../common/errors.js";
import type { OciRuntime } from "./runtime.js";

/** The sync message conmon writes once the runtime's create finished; more is not expected. */
export const syncMessageBytesMax = 64 * 1024;
/** Size at which conmon starts the container log afresh (k8s-file driver). */
export const containerLogBytesMax = 64 * 1024 * 1024;

export interface ConmonPaths {
  /** The OCI bundle (config.json + rootfs); conmon also puts its ctl/winsz fifos here. */
  bundle: string;
  /** Where conmon writes the container init's pid. */
  containerPidFile: string;
  /** Where conmon writes its own pid (it double-forks, so the spawned pid is not it). */
  conmonPidFile: string;
  /** k8s-file log: `<RFC3339Nano> <stdout|stderr> <F|P> <text>` lines. */
  logPath: string;
  /** Directory that receives a file named after the container id holding its exit code. */
  exitDir: string;
  /** Per-container directory where conmon writes `exit` and, after an OOM kill, `oom`. */
  persistDir: string;
  /** Directory for attach sockets (unused by shoal, but conmon insists on one). */
  socketDir: string;
}

/** Parses conmon's sync pipe message: `{"data": pid}` or `{"data": -1, "message": "..."}`. */
export function parseConmonSync(text: string): { pid: number } | { error: string } {
  const firstLine = text.split("\n")[0] ?? "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(firstLine);
  } catch (error) {
    return { error: `conmon wrote an unreadable sync message (${firstLine.slice(0, 200)}): ${String(error)}` };
  }
  if (typeof parsed !== "object" || parsed === null || !("data" in parsed) || typeof parsed.data !== "number") {
    return { error: `conmon wrote an unexpected sync message: ${firstLine.slice(0, 200)}` };
  }
  if (parsed.data > 0) return { pid: parsed.data };
  const message = "message" in parsed && typeof parsed.message === "string" ? parsed.message : "no reason given";
  return { error: message };
}

function firstSyncLine(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (chunk.includes(0x0a) || bytes > syncMessageBytesMax) finish();
    };
    const finish = (): void => {
      stream.off("data", onData);
      stream.off("end", finish);
      stream.destroy();
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    stream.on("data", onData);
    stream.on("end", finish);
    stream.on("error", reject);
  });
}

/**
 * Starts conmon for one container: conmon daemonises (so the container outlives this
 * process), runs `<runtime> create`, holds the container's stdio and writes the log, and
 * records the exit code in `exitDir/<id>` and `persistDir/exit`. Resolves with the
 * container init's pid once created; the caller then runs `<runtime> start`.
 * Throws FailedPreconditionError with the runtime's reason when create fails.
 */
export async function createWithConmon(options: {
  conmonPath: string;
  runtime: OciRuntime;
  id: string;
  paths: ConmonPaths;
  signal?: AbortSignal;
}): Promise<{ pid: number }> {
  const { paths, runtime, id } = options;
  const args = [
    "--api-version", "1",
    "--cid", id,
    "--cuuid", id,
    "--name", id,
    "--runtime", runtime.path,
    ...runtime.globalArgs.flatMap((arg) => ["--runtime-arg", arg]),
    "--bundle", paths.bundle,
    "--container-pidfile", paths.containerPidFile,
    "--conmon-pidfile", paths.conmonPidFile,
    "--exit-dir", paths.exitDir,
    "--persist-dir", paths.persistDir,
    "--socket-dir-path", paths.socketDir,
    "--full-attach",
    "--log-path", `k8s-file:${paths.logPath}`,
    "--log-size-max", String(containerLogBytesMax),
    "--log-level", "error",
    "--syslog",
  ];
  const child = spawn(options.conmonPath, args, {
    // fd 3 is the sync pipe: conmon reports the created pid (or the failure) there.
    // conmon outlives us, so it gets no pipe of ours but fd 3; its own errors go to syslog.
    stdio: ["ignore", "ignore", "ignore", "pipe"],
    env: { ...process.env, _OCI_SYNCPIPE: "3" },
    detached: true,
  });
  const syncStream = child.stdio[3];
  if (!(syncStream instanceof Readable)) {
    child.kill("SIGKILL");
    throw new UnavailableError("cannot open conmon's sync pipe");
  }
  const spawnError = new Promise<never>((_, reject) => {
    child.once("error", (error) => reject(new UnavailableError(`cannot run conmon: ${error.message}`, { cause: error })));
  });
  const abortListener = (): void => {
    child.kill("SIGKILL");
  };
  options.signal?.addEventListener("abort", abortListener, { once: true });
  try {
    const syncText = await Promise.race([firstSyncLine(syncStream), spawnError]);
    if (options.signal?.aborted === true) throw new CancelledError("container create cancelled");
    const sync = parseConmonSync(syncText);
    if ("pid" in sync) return sync;
    const reason = sync.error.trim() === "" ? "conmon gave no reason (see syslog)" : sync.error.trim();
    throw new FailedPreconditionError(`${runtime.name} create failed: ${reason.replace(/\s+/g, " ").slice(0, 2000)}`);
  } finally {
    options.signal?.removeEventListener("abort", abortListener);
    child.unref();
  }
}
