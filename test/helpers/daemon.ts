import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { ApiClient } from "../../src/cli/client.js";
import { daemonNodeFlags } from "../../src/common/runtime-flags.js";
import { releaseEngineRunDirectory, removeStoppedEngineState } from "../../src/engine/index.js";
import { asArray, asRecord, stringField } from "../../src/cli/parse.js";
import { run, type RunResult } from "./run.js";
import { waitFor } from "./wait.js";

export const shoaldPath = fileURLToPath(new URL("../../src/bin/shoald.js", import.meta.url));
export const shoalPath = fileURLToPath(new URL("../../src/bin/shoal.js", import.meta.url));

/** Runs the `shoal` CLI against `daemon`. */
export function shoal(daemon: Pick<TestDaemon, "host">, ...args: string[]): Promise<RunResult> {
  return run(process.execPath, [shoalPath, "-H", daemon.host, ...args], { timeoutMs: 90_000 });
}

/** Runs the `shoal` CLI against `daemon` and returns its stdout; a non-zero exit fails the test with its stderr. */
export async function shoalOk(daemon: Pick<TestDaemon, "host">, ...args: string[]): Promise<string> {
  const result = await shoal(daemon, ...args);
  if (result.code !== 0) throw new Error(`shoal ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

export interface TestDaemon {
  readonly dir: string;
  readonly dataDir: string;
  readonly runDir: string;
  readonly socketPath: string;
  readonly host: string;
  readonly grpcAddress: string;
  readonly nodeId: string;
  readonly process: ChildProcess;
  /** Everything the daemon wrote to stderr (its JSON log lines). */
  log(): string;
  client(): ApiClient;
  /** SIGTERM, then SIGKILL after a grace; resolves with the exit code (null if killed). */
  stop(options?: { graceMs?: number }): Promise<number | null>;
  /** Stops the daemon if running and removes its directories. */
  cleanup(): Promise<void>;
}

interface StartedLine {
  nodeId: string;
  grpc: string;
}

function parseStartedLine(log: string): StartedLine | undefined {
  for (const line of log.split("\n")) {
    if (!line.includes("shoald started")) continue;
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed === "object" && parsed !== null && "nodeId" in parsed && "grpc" in parsed) {
      const { nodeId, grpc } = parsed;
      if (typeof nodeId === "string" && typeof grpc === "string") return { nodeId, grpc };
    }
  }
  return undefined;
}

/**
 * Starts a real `shoald` process on a temporary data dir, run dir and socket, with its gRPC
 * server on a free loopback port, and waits until it has said it started.
 */
export async function startTestDaemon(options: { dir?: string; extraArgs?: readonly string[]; env?: Record<string, string> } = {}): Promise<TestDaemon> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "shoal-test-")));
  const dataDir = join(dir, "data");
  const runDir = join(dir, "run");
  const socketPath = join(dir, "shoald.sock");
  const child = spawn(
    process.execPath,
    [...daemonNodeFlags, shoaldPath, "--data-dir", dataDir, "--run-dir", runDir, "--socket", socketPath, "--listen-addr", "127.0.0.1:0", "--log-level", "debug", ...(options.extraArgs ?? [])],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...options.env } },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async (stopOptions: { graceMs?: number } = {}): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), stopOptions.graceMs ?? 10_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  try {
    const started = await waitFor("shoald to start", () => {
      if (child.exitCode !== null) throw new Error(`shoald exited with ${child.exitCode}: ${stderr}`);
      return parseStartedLine(stderr);
    }, { timeoutMs: 20_000 });
    return {
      dir,
      dataDir,
      runDir,
      socketPath,
      host: `unix://${socketPath}`,
      grpcAddress: started.grpc,
      nodeId: started.nodeId,
      process: child,
      log: () => stderr,
      client: () => new ApiClient({ kind: "unix", path: socketPath }),
      stop,
      async cleanup() {
        // Containers outlive their daemon by design (conmon holds them): remove them first.
        if (child.exitCode === null && child.signalCode === null) await removeAllContainers(new ApiClient({ kind: "unix", path: socketPath }));
        await stop({ graceMs: 5_000 });
        await removeStoppedEngineState(dataDir, runDir);
        if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stop({ graceMs: 2_000 });
    await releaseEngineRunDirectory(runDir);
    if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function removeAllContainers(client: ApiClient): Promise<void> {
  try {
    const list = asArray(await client.json("GET", "/containers/json", { query: { all: 1 } }), "containers");
    for (const item of list) {
      await client.json("DELETE", `/containers/${stringField(asRecord(item, "container"), "Id")}`, { query: { force: 1 } }).catch(() => undefined);
    }
  } catch {
    // the daemon is already unreachable: nothing it manages can be listed
  }
}

