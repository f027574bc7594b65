// Rolling update of 50 replicas on one real shoald (issue 8): `--env-add`, parallelism 10,
// delay 0, stop-first, pause on failure; the time until all 50 run the new spec, until the
// service reports the update completed, and the orchestrator's own share of the wall time.
// Run once with swarm's default 5 s monitor window and once with --update-monitor 0.
// Docker Swarm's recorded figures (RESULTS.md §2) are printed beside shoal's when no Docker
// engine runs here.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

import type { ApiClient } from "../../src/cli/client.js";
import { asArray, asRecord, numberField, recordField, stringField, type JsonRecord } from "../../src/cli/parse.js";
import { systemClock } from "../../src/common/clock.js";
import { InvalidArgumentError, UnavailableError } from "../../src/common/errors.js";
import { loadDemoImage, withBenchDaemon } from "../converge/daemon.js";
import { demoImage, removeAndDrain, waitForRunning } from "../converge/service.js";

const replicas = 50;
const parallelism = 10;
const repeatsMax = 10;
/** Polling period: the figures' resolution. */
const pollMs = 25;
const waitTimeoutMs = 300_000;
/** Engine-level samples of one batch of container starts and stops. */
const containerSamples = 3;
const cleanupTimeoutMs = 120_000;
/** Exits at once on SIGTERM, as in bench/converge and the peer script. */
const taskCommand = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"];
/** Docker Swarm's medians from /work/shared/peers/RESULTS.md §2 (5 s monitor), in ms. */
const swarmAllNewMs = 10_829.2;
const swarmCompletedMs = 15_826.7;

function serviceSpec(name: string, options: { env: string[]; monitorNs: number }): Record<string, unknown> {
  return {
    Name: name,
    TaskTemplate: { ContainerSpec: { Image: demoImage, Command: taskCommand, Env: options.env, StopGracePeriod: 1e9 } },
    Mode: { Replicated: { Replicas: replicas } },
    UpdateConfig: { Parallelism: parallelism, Delay: 0, FailureAction: "pause", Monitor: options.monitorNs, MaxFailureRatio: 0, Order: "stop-first" },
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

async function tasksOf(client: ApiClient, name: string, signal: AbortSignal): Promise<JsonRecord[]> {
  const filters = JSON.stringify({ service: [name] });
  return asArray(await client.json("GET", "/tasks", { query: { filters }, signal }), "task list").map((task) => asRecord(task, "task"));
}

function runsEnv(task: JsonRecord, env: string): boolean {
  const container = recordField(recordField(task, "Spec"), "ContainerSpec");
  return (
    stringField(task, "DesiredState") === "running" &&
    stringField(recordField(task, "Status"), "State") === "running" &&
    asArray(container["Env"] ?? [], "Env").includes(env)
  );
}

/**
 * What one batch costs the engine alone: `parallelism` containers of the task's image and
 * command created and started at once, then stopped at once (median of a few samples).
 */
async function measureContainerBatch(client: ApiClient, signal: AbortSignal): Promise<{ startMs: number; stopMs: number }> {
  const starts: number[] = [];
  const stops: number[] = [];
  const body = { Image: demoImage, Entrypoint: taskCommand.slice(0, 1), Cmd: taskCommand.slice(1), StopTimeout: 1 };
  for (let sample = 0; sample < containerSamples; sample += 1) {
    const ids: string[] = [];
    try {
      const began = performance.now();
      await Promise.all(
        Array.from({ length: parallelism }, async () => {
          const id = stringField(asRecord(await client.json("POST", "/containers/create", { body, signal }), "create answer"), "Id");
          ids.push(id);
          await client.json("POST", `/containers/${id}/start`, { signal });
        }),
      );
      starts.push(performance.now() - began);
      const stopping = performance.now();
      await Promise.all(ids.map((id) => client.json("POST", `/containers/${id}/stop`, { query: { t: 1 }, signal })));
      stops.push(performance.now() - stopping);
    } finally {
      for (const id of ids) await client.json("DELETE", `/containers/${id}`, { query: { force: 1 }, signal });
    }
  }
  return { startMs: median(starts), stopMs: median(stops) };
}

interface UpdateFigures {
  allNewMs: number;
  completedMs: number;
  /** Median, over the new tasks, of creation -> running (worker timestamps): placement, dispatch and container start. */
  taskStartMs: number;
}

/** Median, over the rollout's new tasks, of creation -> running (the worker's timestamp). */
function taskStartMedianMs(tasks: readonly JsonRecord[], env: string): number {
  const fresh = tasks.filter((task) => runsEnv(task, env));
  return median(fresh.map((task) => Date.parse(stringField(recordField(task, "Status"), "Timestamp")) - Date.parse(stringField(task, "CreatedAt"))));
}

/** Updates the service's env and polls until all replicas run it, then until the update completes. */
async function measureUpdate(client: ApiClient, name: string, options: { env: string; monitorNs: number; signal: AbortSignal }): Promise<UpdateFigures> {
  const { signal } = options;
  const inspected = asRecord(await client.json("GET", `/services/${name}`, { signal }), "service");
  const version = numberField(recordField(inspected, "Version"), "Index");
  const startedAt = performance.now();
  await client.json("POST", `/services/${name}/update`, { query: { version }, body: serviceSpec(name, { env: [options.env], monitorNs: options.monitorNs }), signal });
  let allNewMs: number | undefined;
  for (;;) {
    const now = performance.now();
    if (allNewMs === undefined && (await tasksOf(client, name, signal)).filter((task) => runsEnv(task, options.env)).length === replicas) allNewMs = performance.now() - startedAt;
    const status = recordField(asRecord(await client.json("GET", `/services/${name}`, { signal }), "service"), "UpdateStatus");
    const state = stringField(status, "State");
    if (state === "completed" && allNewMs !== undefined) {
      const completedMs = performance.now() - startedAt;
      return { allNewMs, completedMs, taskStartMs: taskStartMedianMs(await tasksOf(client, name, signal), options.env) };
    }
    if (state === "paused") throw new UnavailableError(`the update paused: ${stringField(status, "Message")}`);
    if (now - startedAt > waitTimeoutMs) throw new UnavailableError(`the update did not complete within ${waitTimeoutMs} ms (state "${state}")`);
    await systemClock.sleep(pollMs, { signal });
  }
}

function dockerEngineAvailable(): boolean {
  const result = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 10_000 });
  return result.status === 0 && result.stdout.trim() !== "";
}

async function measure(client: ApiClient, repeats: number, signal: AbortSignal): Promise<Record<string, number | boolean>> {
  await loadDemoImage(client, { signal });
  await client.json("POST", "/swarm/init", { body: { ListenAddr: "", AdvertiseAddr: "", ForceNewCluster: false, Spec: {} }, signal });
  const container = await measureContainerBatch(client, signal);
  process.stdout.write(`${parallelism} containers at once on the engine alone: create+start ${container.startMs.toFixed(1)} ms, stop ${container.stopMs.toFixed(1)} ms (median of ${containerSamples})\n`);
  const name = "update-bench";
  const created = asRecord(await client.json("POST", "/services/create", { body: serviceSpec(name, { env: ["V=0"], monitorNs: 5e9 }), signal }), "create answer");
  const serviceId = stringField(created, "ID");
  const figures = new Map<string, number[]>();
  const push = (key: string, value: number): void => {
    figures.set(key, [...(figures.get(key) ?? []), value]);
  };
  try {
    await waitForRunning(client, name, replicas, performance.now(), { signal });
    let version = 0;
    for (let repeat = 1; repeat <= repeats; repeat += 1) {
      for (const [label, monitorNs] of [["monitor5s", 5e9], ["monitor0", 0]] as const) {
        version += 1;
        const result = await measureUpdate(client, name, { env: `V=${version}`, monitorNs, signal });
        push(`all_new_ms_${label}`, result.allNewMs);
        push(`completed_ms_${label}`, result.completedMs);
        push(`task_start_ms_${label}`, result.taskStartMs);
        process.stdout.write(
          `run ${repeat} (${label === "monitor5s" ? "--update-monitor 5s, swarm's default" : "--update-monitor 0"}): all ${replicas} on the new spec ${result.allNewMs.toFixed(1)} ms, ` +
            `completed ${result.completedMs.toFixed(1)} ms; a new task runs ${result.taskStartMs.toFixed(0)} ms after it is created\n`,
        );
      }
    }
  } finally {
    await removeAndDrain(client, serviceId, { signal: AbortSignal.timeout(cleanupTimeoutMs) }).catch((error: unknown) => {
      process.stderr.write(`cleanup: service ${serviceId} was not fully removed: ${String(error)}\n`);
    });
  }
  // Stop-first with parallelism 10: five waves, each a batch of stops and then a batch of
  // starts on the critical path (a new task starts once its old one is reported stopped).
  const batches = Math.ceil(replicas / parallelism);
  const containerMs = batches * (container.startMs + container.stopMs);
  const out: Record<string, number | boolean> = { repeats, replicas, parallelism, container_start_ms: container.startMs, container_stop_ms: container.stopMs, container_critical_path_ms: containerMs };
  for (const [key, values] of figures) out[key] = Number(median(values).toFixed(1));
  out["overhead_ms_monitor0"] = Number((median(figures.get("all_new_ms_monitor0") ?? []) - containerMs).toFixed(1));
  out["overhead_ms_monitor5s"] = Number((median(figures.get("all_new_ms_monitor5s") ?? []) - containerMs).toFixed(1));
  return out;
}

function report(out: Record<string, number | boolean>, json: boolean): void {
  const figure = (key: string): number => (typeof out[key] === "number" ? out[key] : Number.NaN);
  process.stdout.write(`\nshoal, one shoald, ${replicas} replicas, parallelism ${parallelism}, delay 0, stop-first, median of ${String(out["repeats"])}:\n`);
  process.stdout.write(`  --update-monitor 5s (swarm's default): all new ${figure("all_new_ms_monitor5s").toFixed(1)} ms, completed ${figure("completed_ms_monitor5s").toFixed(1)} ms\n`);
  process.stdout.write(`  --update-monitor 0:                    all new ${figure("all_new_ms_monitor0").toFixed(1)} ms, completed ${figure("completed_ms_monitor0").toFixed(1)} ms\n`);
  process.stdout.write(
    `  containers' own time on the critical path: ${figure("container_critical_path_ms").toFixed(1)} ms (${Math.ceil(replicas / parallelism)} waves x (${parallelism} stops + ${parallelism} starts at once), measured on the engine alone)\n` +
      `  orchestrator overhead (all new - containers): ${figure("overhead_ms_monitor5s").toFixed(1)} ms (monitor 5s run), ${figure("overhead_ms_monitor0").toFixed(1)} ms (monitor 0 run)\n`,
  );
  out["swarm_same_run"] = false;
  out["swarm_baseline_all_new_ms"] = swarmAllNewMs;
  out["swarm_baseline_completed_ms"] = swarmCompletedMs;
  out["ratio_all_new_monitor5s"] = Number((swarmAllNewMs / figure("all_new_ms_monitor5s")).toFixed(2));
  out["ratio_completed_monitor5s"] = Number((swarmCompletedMs / figure("completed_ms_monitor5s")).toFixed(2));
  if (dockerEngineAvailable()) {
    process.stdout.write("\nA Docker engine answers here: run /work/shared/peers/ (rolling update) for same-machine Swarm figures.\n");
  } else {
    process.stdout.write(`\nDocker Swarm not available here (no Docker engine runs); RESULTS.md baselines with the 5 s monitor: all new ${swarmAllNewMs} ms, completed ${swarmCompletedMs} ms\n`);
  }
  process.stdout.write(
    `  swarm / shoal (same settings, 5 s monitor, recorded baseline, not same run): all new ${String(out["ratio_all_new_monitor5s"])}x, completed ${String(out["ratio_completed_monitor5s"])}x faster\n`,
  );
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, json: { type: "boolean", default: false }, repeats: { type: "string" } } });
  const repeatsText = values.repeats ?? (values.quick ? "1" : "3");
  const repeats = Number(repeatsText);
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > repeatsMax) throw new InvalidArgumentError(`--repeats must be a whole number from 1 to ${repeatsMax}, not "${repeatsText}"`);
  if (process.getuid?.() !== 0) throw new InvalidArgumentError("bench update starts containers (mounts, namespaces, cgroups): run it as root");
  await withBenchDaemon(async (daemon, signal) => report(await measure(daemon.client, repeats, signal), values.json));
}

await main();
