// Scheduler throughput: 100,000 tasks of several services (some with constraints,
// reservations, spread preferences, a per-node cap) onto 1,000 simulated nodes, placed by
// the pure scheduler in one pass. Prints placements/s, wall time and evenness; with --json
// the last stdout line is one JSON object with every figure. No peer runs here: the
// published figures it is compared with are Nomad's C1M run and the Kubernetes gate.
import { parseArgs } from "node:util";

import { buildNodeInfos, constraintMatches, parseConstraints, scheduleTasks } from "../../src/scheduler/index.js";
import type { NodeInfo, SchedulerNode, SchedulerTask } from "../../src/scheduler/index.js";

const nomadC1mPlacementsPerSec = 3_750;
const kubernetesGatePlacementsPerSec = 400;
const targetPlacementsPerSec = 20_000;
const gib = 1024 ** 3;
const mib = 1024 ** 2;

interface ServicePlan {
  id: string;
  share: number;
  constraints: string[];
  spreads: string[];
  nanoCPUs: number;
  memoryBytes: number;
  maxReplicas: number;
}

const services: ServicePlan[] = [
  { id: "web", share: 0.4, constraints: [], spreads: [], nanoCPUs: 0, memoryBytes: 0, maxReplicas: 0 },
  { id: "api", share: 0.2, constraints: ["node.labels.type==compute"], spreads: [], nanoCPUs: 100_000_000, memoryBytes: 256 * mib, maxReplicas: 0 },
  { id: "cache", share: 0.2, constraints: [], spreads: ["node.labels.zone"], nanoCPUs: 0, memoryBytes: 64 * mib, maxReplicas: 0 },
  { id: "batch", share: 0.1, constraints: ["node.role!=manager"], spreads: ["node.labels.zone", "node.labels.rack"], nanoCPUs: 50_000_000, memoryBytes: 0, maxReplicas: 0 },
  { id: "edge", share: 0.1, constraints: ["node.labels.type!=storage"], spreads: [], nanoCPUs: 0, memoryBytes: 0, maxReplicas: 40 },
];

function makeNodes(count: number): SchedulerNode[] {
  return Array.from({ length: count }, (_, index) => ({
    id: `node${index.toString().padStart(5, "0")}`,
    spec: {
      role: index < 3 ? "manager" : "worker",
      availability: "active",
      labels: { zone: `zone${index % 3}`, rack: `rack${index % 20}`, type: index % 10 < 7 ? "compute" : "storage" },
    },
    description: {
      hostname: `host${index}`,
      platform: { os: "linux", architecture: "amd64" },
      resources: { nanoCPUs: 16_000_000_000, memoryBytes: 64 * gib },
      engine: { labels: {} },
    },
    status: { state: "ready" },
  }));
}

function makeTasks(count: number): SchedulerTask[] {
  const tasks: SchedulerTask[] = [];
  for (const service of services) {
    const spec = {
      resources: { reservations: { nanoCPUs: service.nanoCPUs, memoryBytes: service.memoryBytes } },
      placement: { constraints: service.constraints, preferences: service.spreads.map((spread) => ({ spread })), maxReplicas: service.maxReplicas, platforms: [] },
    };
    const serviceTasks = Math.round(count * service.share);
    for (let slot = 1; slot <= serviceTasks; slot += 1) {
      tasks.push({
        id: `${service.id}-${slot}`,
        serviceId: service.id,
        nodeId: "",
        specVersion: 1,
        slot,
        spec,
        endpoint: { ports: [] },
        status: { state: "pending" },
      });
    }
  }
  return tasks;
}

/** Max minus min tasks of each service over the nodes its constraints allow. */
function evenness(nodes: readonly NodeInfo[]): Record<string, number> {
  const figures: Record<string, number> = {};
  for (const service of services) {
    const constraints = parseConstraints(service.constraints);
    const counts = nodes
      .filter((node) => constraints.every((constraint) => constraintMatches(constraint, node.node)))
      .map((node) => node.serviceTaskCount(service.id));
    figures[service.id] = Math.max(...counts) - Math.min(...counts);
  }
  return figures;
}

function zoneSpread(nodes: readonly NodeInfo[], serviceId: string): number {
  const perZone = new Map<string, number>();
  for (const node of nodes) {
    const zone = node.node.spec.labels["zone"] ?? "";
    perZone.set(zone, (perZone.get(zone) ?? 0) + node.serviceTaskCount(serviceId));
  }
  return Math.max(...perZone.values()) - Math.min(...perZone.values());
}

function main(): void {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      tasks: { type: "string" },
      nodes: { type: "string" },
    },
  });
  const taskCount = Number(values.tasks ?? (values.quick ? 20_000 : 100_000));
  const nodeCount = Number(values.nodes ?? (values.quick ? 200 : 1_000));
  if (!Number.isSafeInteger(taskCount) || taskCount <= 0 || !Number.isSafeInteger(nodeCount) || nodeCount <= 0) {
    throw new Error("--tasks and --nodes must be positive whole numbers");
  }
  const nodes = buildNodeInfos(makeNodes(nodeCount), []);
  const tasks = makeTasks(taskCount);
  const started = process.hrtime.bigint();
  const result = scheduleTasks(nodes, tasks);
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  const placementsPerSec = Math.round(result.assignments.size / (elapsedMs / 1_000));
  const spreadByService = evenness(nodes);
  const overcommitted = nodes.filter((node) => node.available.nanoCPUs < 0 || node.available.memoryBytes < 0).length;
  const figures = {
    tasks: tasks.length,
    nodes: nodeCount,
    placed: result.assignments.size,
    unschedulable: result.unschedulable.size,
    elapsed_ms: Math.round(elapsedMs),
    placements_per_sec: placementsPerSec,
    target_placements_per_sec: targetPlacementsPerSec,
    overcommitted_nodes: overcommitted,
    ...Object.fromEntries(Object.entries(spreadByService).map(([service, spread]) => [`evenness_${service}_max_minus_min`, spread])),
    zone_spread_cache_max_minus_min: zoneSpread(nodes, "cache"),
    zone_spread_batch_max_minus_min: zoneSpread(nodes, "batch"),
    nomad_c1m_placements_per_sec: nomadC1mPlacementsPerSec,
    ratio_vs_nomad_c1m: Number((placementsPerSec / nomadC1mPlacementsPerSec).toFixed(1)),
    kubernetes_gate_placements_per_sec: kubernetesGatePlacementsPerSec,
    ratio_vs_kubernetes_gate: Number((placementsPerSec / kubernetesGatePlacementsPerSec).toFixed(1)),
  };
  console.log(`scheduler: ${figures.placed} of ${figures.tasks} tasks placed on ${nodeCount} nodes in ${figures.elapsed_ms} ms`);
  console.log(`  placements/s: ${placementsPerSec} (target ${targetPlacementsPerSec}; ${figures.unschedulable} unschedulable; ${overcommitted} nodes over-committed)`);
  console.log(`  evenness (max - min tasks per eligible node): ${Object.entries(spreadByService).map(([service, spread]) => `${service} ${spread}`).join(", ")}`);
  console.log(`  spread over zones (max - min tasks per zone): cache ${figures.zone_spread_cache_max_minus_min}, batch ${figures.zone_spread_batch_max_minus_min}`);
  console.log(`  no peer runs here; published figures: Nomad C1M ${nomadC1mPlacementsPerSec}/s (ratio ${figures.ratio_vs_nomad_c1m}x), Kubernetes scheduler gate ${kubernetesGatePlacementsPerSec}/s (ratio ${figures.ratio_vs_kubernetes_gate}x)`);
  if (values.json === true) console.log(JSON.stringify(figures));
}

main();
