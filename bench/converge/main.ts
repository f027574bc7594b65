// Service convergence on one real shoald (issue 5): POST /services/create -> N tasks running,
// and scale 100 -> 200, polled over the REST API the way peers/swarm-converge.sh polls dockerd.
// Docker Swarm's medians (RESULTS.md §2) are printed beside shoal's when dockerd is absent.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

import type { ApiClient } from "../../src/cli/client.js";
import { InvalidArgumentError } from "../../src/common/errors.js";
import { loadDemoImage, withBenchDaemon, type BenchDaemon } from "./daemon.js";
import { createService, removeAndDrain, scaleAndConverge, waitForRunning } from "./service.js";

const repeatsDefault = 3;
const repeatsMax = 20;
/** Time allowed to remove a left-over service when the run fails or is interrupted. */
const cleanupTimeoutMs = 120_000;
/** Docker Swarm single-node medians from /work/shared/peers/RESULTS.md §2, in ms. */
const swarmBaselineMs: Record<string, number> = {
  converge_ms_10: 807.9,
  converge_ms_50: 3038.1,
  converge_ms_100: 6127.7,
  scale_ms_100_200: 6267.7,
};

interface Plan {
  readonly sizes: readonly number[];
  readonly repeats: number;
}

function readPlan(): { plan: Plan; json: boolean } {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, json: { type: "boolean", default: false }, repeats: { type: "string" } } });
  const repeatsText = values.repeats ?? String(values.quick ? 1 : repeatsDefault);
  const repeats = Number(repeatsText);
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > repeatsMax) throw new InvalidArgumentError(`--repeats must be a whole number from 1 to ${repeatsMax}, not "${repeatsText}"`);
  // The largest size is the one scaled to twice its replicas, as the peer does with 100.
  return { plan: { sizes: values.quick ? [10, 50] : [10, 50, 100], repeats }, json: values.json };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** The service being measured, so that a failed run can still remove it. */
interface Current {
  serviceId: string | undefined;
}

async function measureRepeat(client: ApiClient, plan: Plan, repeat: number, figures: Map<string, number[]>, current: Current, signal: AbortSignal): Promise<void> {
  const largest = plan.sizes[plan.sizes.length - 1] ?? 0;
  for (const size of plan.sizes) {
    const name = `converge-${size}-r${repeat}`;
    const created = await createService(client, name, size, { signal });
    current.serviceId = created.serviceId;
    const converged = await waitForRunning(client, name, size, created.startedAt, { signal });
    figures.get(`converge_ms_${size}`)?.push(converged);
    process.stdout.write(`run ${repeat} converge ${size}: ${converged.toFixed(1)} ms\n`);
    if (size === largest) {
      const scaled = await scaleAndConverge(client, name, created.serviceId, size * 2, { signal });
      figures.get(`scale_ms_${size}_${size * 2}`)?.push(scaled);
      process.stdout.write(`run ${repeat} scale ${size}->${size * 2}: ${scaled.toFixed(1)} ms\n`);
    }
    const removed = await removeAndDrain(client, created.serviceId, { signal });
    current.serviceId = undefined;
    process.stdout.write(`run ${repeat} remove ${size === largest ? size * 2 : size}: ${removed.toFixed(1)} ms\n`);
  }
}

async function measure(daemon: BenchDaemon, plan: Plan, signal: AbortSignal): Promise<Map<string, number[]>> {
  const largest = plan.sizes[plan.sizes.length - 1] ?? 0;
  const figures = new Map<string, number[]>([...plan.sizes.map((size): [string, number[]] => [`converge_ms_${size}`, []]), [`scale_ms_${largest}_${largest * 2}`, []]]);
  await loadDemoImage(daemon.client, { signal });
  const initStarted = performance.now();
  await daemon.client.json("POST", "/swarm/init", { body: { ListenAddr: "", AdvertiseAddr: "", ForceNewCluster: false, Spec: {} }, signal });
  process.stdout.write(`swarm init: ${(performance.now() - initStarted).toFixed(1)} ms\n`);
  const current: Current = { serviceId: undefined };
  try {
    for (let repeat = 1; repeat <= plan.repeats; repeat += 1) await measureRepeat(daemon.client, plan, repeat, figures, current, signal);
  } finally {
    if (current.serviceId !== undefined) {
      await removeAndDrain(daemon.client, current.serviceId, { signal: AbortSignal.timeout(cleanupTimeoutMs) }).catch((error: unknown) => {
        process.stderr.write(`cleanup: service ${current.serviceId ?? ""} was not fully removed: ${String(error)}\n`);
      });
    }
  }
  return figures;
}

/** True when `docker info` answers from a Docker engine on the default socket. */
function dockerEngineAvailable(): boolean {
  const result = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 10_000 });
  return result.status === 0 && result.stdout.trim() !== "";
}

function report(figures: Map<string, number[]>, plan: Plan, json: boolean): void {
  const out: Record<string, number | boolean> = { repeats: plan.repeats };
  process.stdout.write(`\nshoal, one shoald, median of ${plan.repeats}:\n`);
  for (const [key, values] of figures) {
    out[key] = Number(median(values).toFixed(1));
    process.stdout.write(`  ${key.padEnd(18)} ${median(values).toFixed(1).padStart(9)} ms  (runs: ${values.map((value) => value.toFixed(1)).join(", ")})\n`);
  }
  const docker = dockerEngineAvailable();
  out["swarm_same_run"] = false;
  if (docker) {
    process.stdout.write("\nA Docker engine answers here: run /work/shared/peers/swarm-converge.sh [REPEATS] for same-machine Swarm figures.\n");
  } else {
    process.stdout.write("\nDocker Swarm not available here; RESULTS.md baselines: converge 10 = 808 ms, 100 = 6128 ms, scale 100->200 = 6268 ms\n");
  }
  for (const [key, baseline] of Object.entries(swarmBaselineMs)) {
    out[`swarm_baseline_${key}`] = baseline;
    const values = figures.get(key);
    if (values === undefined || values.length === 0) continue;
    const ratio = median(values) / baseline;
    out[`ratio_${key}`] = Number(ratio.toFixed(3));
    process.stdout.write(`  ${key.padEnd(18)} shoal / swarm = ${ratio.toFixed(3)}  (vs recorded baseline, not same run)\n`);
  }
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function main(): Promise<void> {
  const { plan, json } = readPlan();
  if (process.getuid?.() !== 0) throw new InvalidArgumentError("bench converge starts containers (mounts, namespaces, cgroups): run it as root");
  await withBenchDaemon(async (daemon, signal) => report(await measure(daemon, plan, signal), plan, json));
}

await main();
