import { startDetached } from "../../../common/command.js";
import { FailedPreconditionError } from "../../../common/errors.js";
import type { OciRuntime } from "./runtime.js";

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
  // conmon outlives us, so it gets no pipe of ours but fd 3, the sync pipe: it reports the
  // created pid (or the failure) there. Its own errors go to syslog.
  const syncText = await startDetached(options.conmonPath, args, {
    env: { ...process.env, _OCI_SYNCPIPE: "3" },
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const sync = parseConmonSync(syncText);
  if ("pid" in sync) return sync;
  const reason = sync.error.trim() === "" ? "conmon gave no reason (see syslog)" : sync.error.trim();
  throw new FailedPreconditionError(`${runtime.name} create failed: ${reason.replace(/\s+/g, " ").slice(0, 2000)}`);
}
