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

/** Environment variables of the daemon that conmon and the runtime under it still get. */
const conmonInheritedVariables = ["PATH", "TZ"] as const;

/**
 * conmon's environment, which runc inherits: PATH to find helpers, TZ so log timestamps
 * match the daemon's clock, and the sync pipe. Nothing else: a locale (LANG) makes conmon
 * load a dozen locale files on every start, and NOTIFY_SOCKET (a daemon under systemd) would
 * make runc relay the container's sd_notify messages to the daemon's supervisor.
 */
export function conmonEnvironment(parent: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of conmonInheritedVariables) {
    const value = parent[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, _OCI_SYNCPIPE: "3" };
}

/** The POSIX shell that runs runDetachedScript (conmon execs its --runtime directly). */
export const runDetachedShell = "/bin/sh";

/**
 * conmon only knows `<runtime> create`, after which the container needs `<runtime> start`:
 * a second runtime process, i.e. another Go program start (4-5 ms, more on a busy host).
 * `<runtime> run --detach` does both in one process and returns as create does (init
 * running, its pid in --pid-file, stdio on conmon's pipes, the runtime's state kept), so
 * conmon runs the runtime through this shell adapter, which turns the first `create`
 * argument into `run --detach`. Its first argument is the runtime's path, then come
 * conmon's: global arguments, `create`, create's options, the container id. Paths travel
 * as positional parameters, never inside the script text.
 */
export const runDetachedScript =
  'runtime=$1; shift; replaced=; for arg do shift; if [ -z "$replaced" ] && [ "$arg" = create ]; then set -- "$@" run --detach; replaced=1; ' +
  'else set -- "$@" "$arg"; fi; done; exec "$runtime" "$@"';

/** conmon's command line for creating and starting one container under `runtime`. */
export function conmonArguments(options: { runtime: OciRuntime; id: string; paths: ConmonPaths }): string[] {
  const { paths, runtime, id } = options;
  const runtimeArgs = ["-c", runDetachedScript, `shoal-${runtime.name}`, runtime.path, ...runtime.globalArgs];
  return [
    "--api-version", "1",
    "--cid", id,
    "--cuuid", id,
    "--name", id,
    "--runtime", runDetachedShell,
    ...runtimeArgs.flatMap((arg) => ["--runtime-arg", arg]),
    "--bundle", paths.bundle,
    "--container-pidfile", paths.containerPidFile,
    "--conmon-pidfile", paths.conmonPidFile,
    "--exit-dir", paths.exitDir,
    "--persist-dir", paths.persistDir,
    "--socket-dir-path", paths.socketDir,
    "--full-attach",
    "--log-path", `k8s-file:${paths.logPath}`,
    "--log-size-max", String(containerLogBytesMax),
    // conmon fsyncs the log before it writes the exit file, so every exit waits for a
    // journal commit. Container logs are not kept across a host crash (the containers are
    // not either), as with Docker's json-file driver, which never fsyncs.
    "--no-sync-log",
    "--log-level", "error",
    "--syslog",
  ];
}

/**
 * Runs one container under conmon: conmon daemonises (so the container outlives this
 * process), runs `<runtime> run --detach` (see runDetachedScript), holds the container's
 * stdio and writes the log, and records the exit code in `exitDir/<id>` and
 * `persistDir/exit`. Resolves with the container init's pid once it runs; the runtime's
 * record stays until `<runtime> delete`. Throws FailedPreconditionError with the
 * runtime's reason when the container cannot be created or started.
 */
export async function runWithConmon(options: {
  conmonPath: string;
  runtime: OciRuntime;
  id: string;
  paths: ConmonPaths;
  signal?: AbortSignal;
}): Promise<{ pid: number }> {
  const { runtime } = options;
  // conmon outlives us, so it gets no pipe of ours but fd 3, the sync pipe: it reports the
  // init's pid (or the failure) there. Its own errors go to syslog.
  const syncText = await startDetached(options.conmonPath, conmonArguments(options), {
    env: conmonEnvironment(process.env),
    // conmon writes an "oom" file into its working directory on each OOM kill (besides the
    // one in its persist dir), as CRI-O runs it in the container's own directory.
    cwd: options.paths.bundle,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const sync = parseConmonSync(syncText);
  if ("pid" in sync) return sync;
  const reason = sync.error.trim() === "" ? "conmon gave no reason (see syslog)" : sync.error.trim();
  throw new FailedPreconditionError(`${runtime.name} run failed: ${reason.replace(/\s+/g, " ").slice(0, 2000)}`);
}
