import assert from "node:assert/strict";
import { test } from "node:test";

import { buildNodeInfos, evenShares, scheduleTasks, type NodeInfo } from "../../src/scheduler/index.js";
import { gib, makeNode, makeTask, makeTasks } from "./fixtures.js";

function countsBy(nodes: readonly NodeInfo[], serviceId: string): number[] {
  return nodes.map((node) => node.serviceTaskCount(serviceId));
}

test("a service's tasks spread evenly over the nodes", () => {
  const nodes = buildNodeInfos([makeNode("a"), makeNode("b"), makeNode("c")], []);
  const result = scheduleTasks(nodes, makeTasks("web", 12));
  assert.equal(result.assignments.size, 12);
  assert.deepEqual(countsBy(nodes, "web"), [4, 4, 4]);
});

test("spreading counts the service's existing tasks, then total load", () => {
  const existing = [
    makeTask("old1", "web", { nodeId: "a" }),
    makeTask("old2", "web", { nodeId: "a" }),
    makeTask("other1", "db", { nodeId: "b" }),
    makeTask("other2", "db", { nodeId: "b" }),
  ];
  const nodes = buildNodeInfos([makeNode("a"), makeNode("b"), makeNode("c")], existing);
  const result = scheduleTasks(nodes, makeTasks("web", 3));
  assert.deepEqual(countsBy(nodes, "web"), [2, 1, 2], "b and c get web tasks first; c before b because b carries more load");
  assert.equal(result.assignments.get("web-1"), "c");
});

test("batch placement uses resources incrementally and never over-commits a node", () => {
  const nodes = buildNodeInfos(
    [makeNode("a", { nanoCPUs: 2_000_000_000, memoryBytes: 4 * gib }), makeNode("b", { nanoCPUs: 1_000_000_000, memoryBytes: 4 * gib })],
    [],
  );
  const result = scheduleTasks(nodes, makeTasks("api", 5, { nanoCPUs: 500_000_000, memoryBytes: gib }));
  assert.equal(result.assignments.size, 5);
  assert.equal(result.unschedulable.size, 0);
  for (const node of nodes) {
    assert.ok(node.available.nanoCPUs >= 0 && node.available.memoryBytes >= 0, `${node.id} over-committed`);
  }
  const more = scheduleTasks(nodes, makeTasks("api2", 2, { nanoCPUs: 500_000_000 }));
  assert.equal(more.assignments.size, 1, "the state carries over: only 0.5 CPU is left in the cluster");
  assert.equal(more.unschedulable.get("api2-2"), "no suitable node (insufficient resources on 2 nodes)");
});

test("host ports and max replicas limit a batch as it fills nodes", () => {
  const nodes = buildNodeInfos([makeNode("a"), makeNode("b")], []);
  const ports = [{ protocol: "tcp", publishedPort: 8080, publishMode: "host" }];
  const result = scheduleTasks(nodes, makeTasks("edge", 3, { ports }));
  assert.equal(result.assignments.size, 2);
  assert.match(result.unschedulable.get("edge-3") ?? "", /host-mode port already in use on 2 nodes/);
  const capped = scheduleTasks(nodes, makeTasks("capped", 5, { maxReplicas: 2 }));
  assert.equal(capped.assignments.size, 4);
  assert.match(capped.unschedulable.get("capped-5") ?? "", /max replicas per node \(2\) reached on 2 nodes/);
});

test("spread preference splits tasks evenly between label values, then within them", () => {
  const nodes = buildNodeInfos(
    [
      makeNode("e1", { labels: { zone: "east" } }),
      makeNode("e2", { labels: { zone: "east" } }),
      makeNode("e3", { labels: { zone: "east" } }),
      makeNode("w1", { labels: { zone: "west" } }),
      makeNode("n1", {}),
    ],
    [],
  );
  const result = scheduleTasks(nodes, makeTasks("cache", 9, { spreads: ["node.labels.zone"] }));
  assert.equal(result.assignments.size, 9);
  const byZone = new Map<string, number>();
  for (const node of nodes) {
    const zone = node.node.spec.labels["zone"] ?? "(none)";
    byZone.set(zone, (byZone.get(zone) ?? 0) + node.serviceTaskCount("cache"));
  }
  assert.deepEqual(Object.fromEntries(byZone), { east: 3, west: 3, "(none)": 3 }, "nodes without the label form one branch");
  assert.deepEqual(countsBy(nodes, "cache"), [1, 1, 1, 3, 3]);
});

test("nested spread preferences split at each level and count existing tasks", () => {
  const nodes = buildNodeInfos(
    [
      makeNode("a1", { labels: { zone: "a", rack: "1" } }),
      makeNode("a2", { labels: { zone: "a", rack: "2" } }),
      makeNode("b1", { labels: { zone: "b", rack: "1" } }),
    ],
    [makeTask("old", "svc", { nodeId: "b1" })],
  );
  scheduleTasks(nodes, makeTasks("svc", 5, { spreads: ["node.labels.zone", "node.labels.rack"] }));
  assert.deepEqual(countsBy(nodes, "svc"), [2, 1, 3], "zone a gets 3 of 5 (b has one already), split 2/1 over its racks");
});

test("a spread branch that fills up passes its share to the others", () => {
  const nodes = buildNodeInfos(
    [makeNode("east", { labels: { zone: "east" }, memoryBytes: 2 * gib }), makeNode("west", { labels: { zone: "west" }, memoryBytes: 16 * gib })],
    [],
  );
  const result = scheduleTasks(nodes, makeTasks("db", 8, { spreads: ["node.labels.zone"], memoryBytes: gib }));
  assert.equal(result.assignments.size, 8);
  assert.deepEqual(countsBy(nodes, "db"), [2, 6]);
});

test("evenShares raises the emptiest branches first", () => {
  assert.deepEqual(evenShares([0, 0, 0], 7), [3, 2, 2]);
  assert.deepEqual(evenShares([5, 0, 2], 4), [0, 3, 1]);
  assert.deepEqual(evenShares([5, 0, 2], 10), [1, 6, 3]);
  assert.deepEqual(evenShares([1, 1], 0), [0, 0]);
});

test("tasks with a preset node (global services) are only checked against it", () => {
  const nodes = buildNodeInfos([makeNode("a"), makeNode("b", { availability: "drain" })], []);
  const result = scheduleTasks(nodes, [
    makeTask("g-a", "global", { nodeId: "a" }),
    makeTask("g-b", "global", { nodeId: "b" }),
    makeTask("g-c", "global", { nodeId: "c" }),
  ]);
  assert.equal(result.assignments.get("g-a"), "a");
  assert.equal(result.unschedulable.get("g-b"), "node b is not suitable (1 node not available for new tasks)");
  assert.equal(result.unschedulable.get("g-c"), "node c is not in the cluster");
});

test("placement is fast enough for the benchmark's scale", () => {
  const nodes = buildNodeInfos(
    Array.from({ length: 200 }, (_, index) => makeNode(`n${index}`, { labels: { zone: `z${index % 4}` } })),
    [],
  );
  const tasks = [...makeTasks("a", 10_000), ...makeTasks("b", 10_000, { spreads: ["node.labels.zone"], memoryBytes: 1 })];
  const started = performance.now();
  const result = scheduleTasks(nodes, tasks);
  const elapsedMs = performance.now() - started;
  assert.equal(result.assignments.size, 20_000);
  assert.ok(elapsedMs < 1_000, `20,000 placements took ${elapsedMs.toFixed(0)} ms (the target rate is 20,000/s)`);
  assert.deepEqual(new Set(countsBy(nodes, "a")), new Set([50]));
});
