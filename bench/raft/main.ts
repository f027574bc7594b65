// Raft benchmark: 3 kv-node processes on loopback (RaftNode + WAL with fsync + gRPC), 256-byte
// values, committed puts/s and p50/p99 latency at 1, 64 and 1,000 concurrent clients, and
// leader failover after kill -9 (median of 3: time from the kill to the first successful
// put). When etcd is on PATH the same load runs against a 3-member etcd in the same run.
// Usage: npm run bench -- raft [--quick] [--json]
import { parseArgs } from "node:util";

import { field, HttpClient, KvCluster } from "./cluster.js";
import { EtcdCluster, etcdInstalled } from "./etcd.js";
import { measureFailover, runLoad } from "./load.js";
import type { LoadResult } from "./load.js";

const valueBytes = 256;
const value = "v".repeat(valueBytes);
const concurrencies = [1, 64, 1000] as const;

interface SystemFigures {
  readonly loads: Map<number, LoadResult>;
  readonly failoverMs: (number | null)[];
}

interface Plan {
  readonly counts: Record<(typeof concurrencies)[number], number>;
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

async function benchShoal(plan: Plan): Promise<SystemFigures> {
  const cluster = await KvCluster.start({ size: 3 });
  const client = new HttpClient(1100);
  try {
    const loads = new Map<number, LoadResult>();
    let leader = await cluster.leader();
    let endpoint = cluster.url(leader, "");
    await warmUp(plan, (key) => shoalPut(client, endpoint, key));
    for (const concurrency of concurrencies) {
      const result = await runLoad({
        count: plan.counts[concurrency],
        concurrency,
        prefix: `c${concurrency}`,
        put: (key) => shoalPut(client, endpoint, key),
      });
      loads.set(concurrency, result);
    }
    const failoverMs: (number | null)[] = [];
    for (let round = 0; round < plan.failovers; round += 1) {
      leader = await cluster.leader();
      const survivors = cluster.members.filter((member) => member.id !== leader).map((member) => cluster.url(member.id, ""));
      const killed = leader;
      failoverMs.push(
        await measureFailover({
          kill: () => cluster.kill(killed),
          survivors,
          put: (target, key) => shoalPut(client, target, key),
          intervalMs: 10,
          deadlineMs: 30_000,
        }),
      );
      await cluster.startMember(killed);
      leader = await cluster.leader();
      endpoint = cluster.url(leader, "");
    }
    return { loads, failoverMs };
  } finally {
    client.close();
    await cluster.close();
  }
}

async function benchEtcd(plan: Plan): Promise<SystemFigures> {
  const cluster = await EtcdCluster.start();
  try {
    const loads = new Map<number, LoadResult>();
    let leader = await cluster.leader();
    await warmUp(plan, (key) => cluster.put(cluster.endpoint(leader), key, value));
    for (const concurrency of concurrencies) {
      const endpoint = cluster.endpoint(leader);
      loads.set(
        concurrency,
        await runLoad({ count: plan.counts[concurrency], concurrency, prefix: `c${concurrency}`, put: (key) => cluster.put(endpoint, key, value) }),
      );
    }
    const failoverMs: (number | null)[] = [];
    for (let round = 0; round < plan.failovers; round += 1) {
      leader = await cluster.leader();
      const killed = leader;
      const survivors = [0, 1, 2].filter((index) => index !== killed).map((index) => cluster.endpoint(index));
      failoverMs.push(
        await measureFailover({
          kill: () => cluster.kill(killed),
          survivors,
          put: (endpoint, key) => cluster.put(endpoint, key, value),
          intervalMs: 10,
          deadlineMs: 30_000,
        }),
      );
      cluster.startMember(killed, "existing");
      leader = await cluster.leader();
    }
    return { loads, failoverMs };
  } finally {
    await cluster.close();
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
  ? { counts: { 1: 500, 64: 3000, 1000: 4000 }, warmup: [{ count: 2000, concurrency: 8 }, { count: 1500, concurrency: 1 }], failovers: 1 }
  : { counts: { 1: 3000, 64: 10000, 1000: 20000 }, warmup: [{ count: 5000, concurrency: 8 }, { count: 3000, concurrency: 1 }], failovers: 3 };
console.log(`raft bench: 3 nodes on 127.0.0.1, WAL with fsync, ${valueBytes}-byte values, ${args.quick ? "quick" : "full"} plan`);
const shoal = await benchShoal(plan);
printFigures("shoal", shoal);
const json: Record<string, number | string | null> = { ...jsonFigures("", shoal), value_bytes: valueBytes };
if (etcdInstalled()) {
  const etcd = await benchEtcd(plan);
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
