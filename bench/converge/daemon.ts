// One real shoald process for the benchmark: temp data/run dirs, its own socket, gRPC on a
// free loopback port. Mirrors test/helpers/daemon.ts, which benchmarks cannot import
// (test/ is not part of every build).
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

import { ApiClient, DaemonResponseError, readAll } from "../../src/cli/client.js";
import { asArray, asRecord, stringField } from "../../src/cli/parse.js";
import { systemClock } from "../../src/common/clock.js";
import { UnavailableError } from "../../src/common/errors.js";
import { daemonNodeFlags } from "../../src/common/runtime-flags.js";
import { buildDemoArchive } from "../../src/engine/images/index.js";
import { removeStoppedEngineState } from "../../src/engine/index.js";

const shoaldPath = fileURLToPath(new URL("../../src/bin/shoald.js", import.meta.url));
/** How long shoald may take to log that it started (a cold start on a loaded 2-core host). */
const startTimeoutMs = 30_000;
/** SIGTERM grace before SIGKILL when stopping shoald. */
const stopGraceMs = 10_000;
/** Only the tail of shoald's log is kept, for error messages. */
const logTailBytesMax = 64 * 1024;
const pollMs = 25;

export interface BenchDaemon {
  readonly client: ApiClient;
  /** The last lines shoald wrote to stderr. */
  logTail(): string;
  /** Removes every container, stops shoald, deletes the engine bridge and the temp dir. */
  close(): Promise<void>;
}

function startedLineSeen(log: string): boolean {
  return log.split("\n").some((line) => line.includes("shoald started") && line.includes("\"grpc\""));
}

/** Starts shoald and waits for its "shoald started" log line; cleans up on failure. */
export async function startBenchDaemon(options: { signal: AbortSignal }): Promise<BenchDaemon> {
  const dir = await mkdtemp(join(tmpdir(), "shoal-bench-converge-"));
  const dataDir = join(dir, "data");
  const runDir = join(dir, "run");
  const socketPath = join(dir, "shoald.sock");
  const child = spawn(
    process.execPath,
    [...daemonNodeFlags, shoaldPath, "--data-dir", dataDir, "--run-dir", runDir, "--socket", socketPath, "--listen-addr", "127.0.0.1:0", "--log-level", "info"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    log = (log + chunk).slice(-logTailBytesMax);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const client = new ApiClient({ kind: "unix", path: socketPath });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    // Containers outlive their daemon by design (conmon holds them): remove them first.
    if (child.exitCode === null && child.signalCode === null) {
      await removeAllContainers(client);
      child.kill("SIGTERM");
      const cancelKill = systemClock.setTimer(stopGraceMs, () => child.kill("SIGKILL"));
      await exited;
      cancelKill();
    }
    await removeStoppedEngineState(dataDir, runDir);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const deadline = performance.now() + startTimeoutMs;
    while (!startedLineSeen(log)) {
      if (child.exitCode !== null) throw new UnavailableError(`shoald exited with code ${child.exitCode} while starting: ${log}`);
      if (performance.now() > deadline) throw new UnavailableError(`shoald did not start within ${startTimeoutMs} ms: ${log}`);
      await systemClock.sleep(pollMs, { signal: options.signal });
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { client, logTail: () => log, close };
}

/**
 * Runs `work` against a fresh bench daemon: SIGINT and SIGTERM abort it, a failure prints
 * the daemon's log tail, and the daemon is cleaned up whatever happens. A cleanup failure
 * is reported, not thrown: it must not hide the measurement's own error.
 */
export async function withBenchDaemon(work: (daemon: BenchDaemon, signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const interrupt = (): void => controller.abort(new Error("interrupted"));
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  const daemon = await startBenchDaemon({ signal: controller.signal });
  try {
    await work(daemon, controller.signal);
  } catch (error) {
    if (!controller.signal.aborted) process.stderr.write(`shoald log tail:\n${daemon.logTail().split("\n").slice(-20).join("\n")}\n`);
    throw error;
  } finally {
    await daemon.close().catch((error: unknown) => {
      process.stderr.write(`cleanup failed (check for left-over containers and temp dirs): ${String(error)}\n`);
      process.exitCode = 1;
    });
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
  }
}

/** Loads shoal-demo/busybox the way `shoal image build-demo` does: archive made here, sent to /images/load. */
export async function loadDemoImage(client: ApiClient, options: { signal: AbortSignal }): Promise<void> {
  const archive = await buildDemoArchive({ busyboxPath: "/bin/busybox" });
  const response = await client.stream("POST", "/images/load", { upload: { stream: Readable.from([archive]), contentType: "application/x-tar" }, signal: options.signal });
  const text = await readAll(response.body);
  if (response.status >= 400) throw new DaemonResponseError(response.status, `loading the demo image failed: ${text}`);
  // The load answers with a JSON message stream; a failure mid-stream arrives as an "error" message.
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const message = asRecord(JSON.parse(line), "image load message");
    const failure = stringField(message, "error");
    if (failure !== "") throw new DaemonResponseError(response.status, `loading the demo image failed: ${failure}`);
  }
}

async function removeAllContainers(client: ApiClient): Promise<void> {
  const list = await client.json("GET", "/containers/json", { query: { all: 1 } }).then(
    (answer) => asArray(answer, "container list"),
    () => [], // shoald is already unreachable: nothing it manages can be listed
  );
  for (const item of list) {
    const id = stringField(asRecord(item, "container"), "Id");
    await client.json("DELETE", `/containers/${id}`, { query: { force: 1 } }).catch((error: unknown) => {
      process.stderr.write(`cleanup: could not remove container ${id}: ${String(error)}\n`);
    });
  }
}

