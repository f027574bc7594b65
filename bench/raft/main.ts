// Raft benchmark: 3 kv-node processes on loopback (RaftNode + WAL with fsync + gRPC), 256-byte
// values, committed puts/s and p50/p99 latency at 1, 64 and 1,000 concurrent clients, and
// leader failover after kill -9 (median of 3: time from the kill to the first successful
// put). When etcd is on PATH the same load runs against a 3-member etcd in the same run,
// both clusters up at once so that the one-client phase can alternate between them.
// Usage: npm run bench -- raft [--quick] [--json]
import { parseArgs } from "node:util";

import { field, HttpClient, KvCluster } from "./cluster.js";
import { EtcdCluster, etcdInstalled } from "./etcd.js";
import { measureFailover, measureLoad, runLoad, summarize } from "./load.js";
import type { LoadResult, LoadSample } from "./load.js";

const valueBytes = 256;
const value = "v".repeat(valueBytes);
const concurrencies = [1, 64, 1000] as const;

interface SystemFigures {
  readonly loads: Map<number, LoadResult>;
  readonly failoverMs: (number | null)[];
}

interface Plan {
  /**
   * The one-client phase runs in this many rounds of c1RoundPuts puts, alternating between
   * the systems: the machine's other load (other processes share its two cores) changes
   * from second to second, and back-to-back phases would hand it to one system only. With
   * a few hundred puts in all, p99 is the few worst puts, which one unlucky moment decides.
   * Rounds are not shorter because the first puts after a switch find cold caches.
   */
  readonly c1Rounds: number;
  readonly c1RoundPuts: number;
  readonly counts: Record<64 | 1000, number>;
  /**
   * Puts before any measurement, on both systems, in phases of a given concurrency: enough
   * for V8 to compile shoal's hot paths (a few hundred puts leave them in the interpreter,
   * which a long-running manager is not). Concurrent puts alone left the one-at-a-time path
   * still compiling (hundreds of TurboFan jobs per process, half again the CPU per put)
   * through the first 2,000 measured puts at c=1.
   */
  readonly warmup: readonly { readonly count: number; readonly concurrency: number }[];
  readonly failovers: number;
}

/** One system under test: puts go to its current leader. */
interface BenchSystem {
  readonly name: string;
  put(key: string): Promise<void>;
  /** kill -9 of the leader, ms until a put succeeds on a survivor, then the member restarts. */
  failover(): Promise<number | null>;
  close(): Promise<void>;
}

function median(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (known.length === 0) return null;
  return known[Math.floor((known.length - 1) / 2)] ?? null;
}

async function warmUp(plan: Plan, put: (key: string) => Promise<void>): Promise<void> {
  for (const [phase, { count, concurrency }] of plan.warmup.entries()) {
    await runLoad({ count, concurrency, prefix: `warmup${phase}`, put });
  }
}

async function shoalPut(client: HttpClient, endpoint: string, key: string): Promise<void> {
  const answer = await client.call("POST", `${endpoint}/put`, { key, value });
  if (answer.status !== 200) throw new Error(`put answered ${answer.status}: ${String(field(answer.body, "error"))}`);
}

async function startShoal(): Promise<BenchSystem> {
  const cluster = await KvCluster.start({ size: 3 });
  const client = new HttpClient(1100);
  let endpoint = cluster.url(await cluster.leader(), "");
  return {
    name: "shoal",
    put: (key) => shoalPut(client, endpoint, key),
    failover: async () => {
      const killed = await cluster.leader();
      const survivors = cluster.members.filter((member) => member.id !== killed).map((member) => cluster.url(member.id, ""));
      const ms = await measureFailover({
        kill: () => cluster.kill(killed),
        survivors,
        put: (target, key) => shoalPut(client, target, key),
        intervalMs: 10,
        deadlineMs: 30_000,
      });
      await cluster.startMember(killed);
      endpoint = cluster.url(await cluster.leader(), "");
      return ms;
    },
    close: async () => {
      client.close();
      await cluster.close();
    },
  };
}

async function startEtcd(): Promise<BenchSystem> {
  const cluster = await EtcdCluster.start();
  let endpoint = cluster.endpoint(await cluster.leader());
  return {
    name: "etcd",
    put: (key) => cluster.put(endpoint, key, value),
    failover: async () => {
      const killed = await cluster.leader();
      const survivors = [0, 1, 2].filter((index) => index !== killed).map((index) => cluster.endpoint(index));
      const ms = await measureFailover({
        kill: () => cluster.kill(killed),
        survivors,
        put: (target, key) => cluster.put(target, key, value),
        intervalMs: 10,
        deadlineMs: 30_000,
      });
      cluster.startMember(killed, "existing");
      endpoint = cluster.endpoint(await cluster.leader());
      return ms;
    },
    close: () => cluster.close(),
  };
}

/**
 * The one-client phase, in rounds alternating between the systems (see Plan.c1Rounds).
 * Each measured round follows the other system's round. Round 0's first system would
 * instead follow the other's whole warm-up, seconds of idling that no other measured
 * round gets: so an unmeasured round of each comes first.
 */
async function runOneClient(plan: Plan, systems: readonly BenchSystem[]): Promise<Map<BenchSystem, LoadResult>> {
  for (const system of systems) {
    await runLoad({ count: plan.c1RoundPuts, concurrency: 1, prefix: "c1/settle", put: (key) => system.put(key) });
  }
  const samples = new Map<BenchSystem, LoadSample[]>(systems.map((system) => [system, []]));
  for (let round = 0; round < plan.c1Rounds; round += 1) {
    const order = round % 2 === 0 ? systems : [...systems].reverse();
    for (const system of order) {
      const sample = await measureLoad({ count: plan.c1RoundPuts, concurrency: 1, prefix: `c1/${round}`, put: (key) => system.put(key) });
      samples.get(system)?.push(sample);
    }
  }
  return new Map([...samples].map(([system, runs]) => [system, summarize(runs)]));
}

/** The concurrent phases, then the failovers, of one system; returns the failover times. */
async function runConcurrentAndFailovers(plan: Plan, system: BenchSystem, loads: Map<number, LoadResult>): Promise<(number | null)[]> {
  for (const concurrency of [64, 1000] as const) {
    loads.set(concurrency, await runLoad({ count: plan.counts[concurrency], concurrency, prefix: `c${concurrency}`, put: (key) => system.put(key) }));
  }
  const failoverMs: (number | null)[] = [];
  for (let round = 0; round < plan.failovers; round += 1) failoverMs.push(await system.failover());
  return failoverMs;
}

/** Both systems run at once (an idle one only heartbeats), so that c=1 can alternate between them. */
async function benchAll(plan: Plan, withEtcd: boolean): Promise<Map<string, SystemFigures>> {
  const systems: BenchSystem[] = [];
  try {
    systems.push(await startShoal());
    if (withEtcd) systems.push(await startEtcd());
    for (const system of systems) await warmUp(plan, (key) => system.put(key));
    const oneClient = await runOneClient(plan, systems);
    const figures = new Map<string, SystemFigures>();
    for (const system of systems) {
      const loads = new Map<number, LoadResult>();
      const c1 = oneClient.get(system);
      if (c1 !== undefined) loads.set(1, c1);
      const failoverMs = await runConcurrentAndFailovers(plan, system, loads);
      figures.set(system.name, { loads, failoverMs });
    }
    return figures;
  } finally {
    for (const system of systems) await system.close();
  }
}

function printFigures(name: string, figures: SystemFigures): void {
  for (const [concurrency, result] of figures.loads) {
    console.log(
      `${name} c=${concurrency}: ${result.opsPerSec} puts/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms (${result.ok} ok, ${result.errors} errors)`,
    );
  }
  console.log(`${name} failover (kill -9 leader -> first put ok): ${figures.failoverMs.join(", ")} ms, median ${median(figures.failoverMs)} ms`);
}

function jsonFigures(prefix: string, figures: SystemFigures): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const [concurrency, result] of figures.loads) {
    out[`${prefix}ops_per_sec_c${concurrency}`] = result.opsPerSec;
    out[`${prefix}p50_ms_c${concurrency}`] = result.p50Ms;
    out[`${prefix}p99_ms_c${concurrency}`] = result.p99Ms;
    out[`${prefix}errors_c${concurrency}`] = result.errors;
  }
  out[`${prefix}failover_ms`] = median(figures.failoverMs);
  return out;
}

const { values: args } = parseArgs({ options: { quick: { type: "boolean", default: false }, json: { type: "boolean", default: false } } });
const plan: Plan = args.quick
  ? { c1Rounds: 4, c1RoundPuts: 500, counts: { 64: 3000, 1000: 4000 }, warmup: [{ count: 2000, concurrency: 8 }, { count: 1500, concurrency: 1 }], failovers: 3 }
  : { c1Rounds: 12, c1RoundPuts: 500, counts: { 64: 10000, 1000: 20000 }, warmup: [{ count: 5000, concurrency: 8 }, { count: 3000, concurrency: 1 }], failovers: 3 };
console.log(
  `raft bench: 3 nodes on 127.0.0.1, WAL with fsync, ${valueBytes}-byte values, ${args.quick ? "quick" : "full"} plan, ` +
    `c=1 in ${plan.c1Rounds} rounds of ${plan.c1RoundPuts} puts alternating between the systems, after an unmeasured one each`,
);
const withEtcd = etcdInstalled();
const results = await benchAll(plan, withEtcd);
const shoal = results.get("shoal");
if (shoal === undefined) throw new Error("shoal did not run");
printFigures("shoal", shoal);
const json: Record<string, number | string | null> = { ...jsonFigures("", shoal), value_bytes: valueBytes };
const etcd = results.get("etcd");
if (etcd !== undefined) {
  printFigures("etcd", etcd);
  Object.assign(json, jsonFigures("etcd_", etcd));
  for (const concurrency of concurrencies) {
    const ours = shoal.loads.get(concurrency)?.opsPerSec ?? 0;
    const theirs = etcd.loads.get(concurrency)?.opsPerSec ?? 0;
    const ratio = theirs > 0 ? Math.round((ours / theirs) * 100) / 100 : null;
    json[`ratio_ops_c${concurrency}`] = ratio;
    console.log(`ratio shoal/etcd puts/s at c=${concurrency}: ${ratio}`);
  }
  const ourFailover = median(shoal.failoverMs);
  const theirFailover = median(etcd.failoverMs);
  if (ourFailover !== null && theirFailover !== null) {
    json.ratio_failover = Math.round((ourFailover / theirFailover) * 100) / 100;
    console.log(`ratio shoal/etcd failover time: ${json.ratio_failover}`);
  }
} else {
  console.log("etcd is not on PATH: no side-by-side run (install Debian etcd-server for the ratios)");
  json.etcd = "not installed";
}
if (args.json) console.log(JSON.stringify(json));
