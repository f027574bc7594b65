import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ConstraintFilter,
  HostPortFilter,
  MaxReplicasFilter,
  NodeInfo,
  PlatformFilter,
  ReadyFilter,
  ResourceFilter,
  type Filter,
} from "../../src/scheduler/index.js";
import { gib, makeNode, makeTask } from "./fixtures.js";

function passes(filter: Filter, node: NodeInfo): boolean {
  return filter.check(node);
}

test("ready filter: only ready and active nodes", () => {
  const filter = new ReadyFilter();
  assert.equal(filter.setTask(makeTask("t", "s")), true);
  assert.equal(passes(filter, new NodeInfo(makeNode("a"))), true);
  assert.equal(passes(filter, new NodeInfo(makeNode("b", { state: "down" }))), false);
  assert.equal(passes(filter, new NodeInfo(makeNode("c", { availability: "drain" }))), false);
  assert.equal(passes(filter, new NodeInfo(makeNode("d", { availability: "pause" }))), false);
  assert.equal(filter.explain(1), "1 node not available for new tasks");
  assert.equal(filter.explain(3), "3 nodes not available for new tasks");
});

test("resource filter: CPU and memory reservations against what is left", () => {
  const filter = new ResourceFilter();
  assert.equal(filter.setTask(makeTask("t", "s")), false, "irrelevant without reservations");
  assert.equal(filter.setTask(makeTask("t", "s", { nanoCPUs: 2_000_000_000, memoryBytes: 4 * gib })), true);
  const node = new NodeInfo(makeNode("a", { nanoCPUs: 4_000_000_000, memoryBytes: 8 * gib }));
  assert.equal(passes(filter, node), true);
  node.addTask(makeTask("x", "other", { nanoCPUs: 2_000_000_000, memoryBytes: 4 * gib }));
  assert.equal(passes(filter, node), true, "exactly enough left");
  node.addTask(makeTask("y", "other", { memoryBytes: 1 }));
  assert.equal(passes(filter, node), false, "one byte short");
  node.removeTask("y");
  assert.equal(passes(filter, node), true, "removing a task frees its reservation");
  filter.setTask(makeTask("t", "s", { nanoCPUs: 3_000_000_000 }));
  assert.equal(passes(filter, node), false, "CPU short");
  assert.equal(passes(filter, new NodeInfo(makeNode("b", { described: false }))), false, "an undescribed node has nothing");
  assert.equal(filter.explain(2), "insufficient resources on 2 nodes");
});

test("constraint filter: node attributes and labels with == and !=", () => {
  const filter = new ConstraintFilter();
  assert.equal(filter.setTask(makeTask("t", "s")), false);
  const node = new NodeInfo(
    makeNode("n1", { role: "manager", hostname: "Alpha", labels: { zone: "east" }, engineLabels: { disk: "ssd" }, os: "linux", architecture: "arm64" }),
  );
  const check = (constraint: string): boolean => {
    filter.setTask(makeTask("t", "s", { constraints: [constraint] }));
    return filter.check(node);
  };
  assert.equal(check("node.id==n1"), true);
  assert.equal(check("node.id!=n1"), false);
  assert.equal(check("node.hostname==alpha"), true, "values compare case-insensitively");
  assert.equal(check("node.role==worker"), false);
  assert.equal(check("node.role!=worker"), true);
  assert.equal(check("node.labels.zone==east"), true);
  assert.equal(check("node.labels.zone==west"), false);
  assert.equal(check("node.labels.rack==r1"), false, "a missing label never equals");
  assert.equal(check("node.labels.rack!=r1"), true, "a missing label is always unequal");
  assert.equal(check("engine.labels.disk==ssd"), true);
  assert.equal(check("node.platform.os==linux"), true);
  assert.equal(check("node.platform.arch==arm64"), true);
  filter.setTask(makeTask("t", "s", { constraints: ["node.labels.zone==east", "node.role==worker"] }));
  assert.equal(filter.check(node), false, "every constraint must hold");
  assert.equal(filter.explain(1), "scheduling constraints not satisfied on 1 node");
  filter.setTask(makeTask("t", "s", { constraints: ["node.colour==red"] }));
  assert.equal(filter.check(node), false);
  assert.match(filter.explain(1), /invalid constraint .*unknown key "node.colour"/);
});

test("host-port filter: host-mode published ports conflict, ingress ones do not", () => {
  const filter = new HostPortFilter();
  assert.equal(filter.setTask(makeTask("t", "s", { ports: [{ protocol: "tcp", publishedPort: 80, publishMode: "ingress" }] })), false);
  assert.equal(filter.setTask(makeTask("t", "s", { ports: [{ protocol: "tcp", publishedPort: 80, publishMode: "host" }] })), true);
  const node = new NodeInfo(makeNode("a"));
  assert.equal(filter.check(node), true);
  node.addTask(makeTask("u", "udp", { ports: [{ protocol: "udp", publishedPort: 80, publishMode: "host" }] }));
  assert.equal(filter.check(node), true, "udp/80 does not conflict with tcp/80");
  node.addTask(makeTask("x", "other", { ports: [{ protocol: "tcp", publishedPort: 80, publishMode: "host" }] }));
  assert.equal(filter.check(node), false);
  node.removeTask("x");
  assert.equal(filter.check(node), true, "the port is free again once the task leaves");
  assert.equal(filter.explain(4), "host-mode port already in use on 4 nodes");
});

test("max-replicas filter: at most N tasks of the service per node", () => {
  const filter = new MaxReplicasFilter();
  assert.equal(filter.setTask(makeTask("t", "s")), false);
  assert.equal(filter.setTask(makeTask("t", "s", { maxReplicas: 2 })), true);
  const node = new NodeInfo(makeNode("a"), [makeTask("a1", "s"), makeTask("b1", "other"), makeTask("b2", "other")]);
  assert.equal(filter.check(node), true);
  node.addTask(makeTask("a2", "s"));
  assert.equal(filter.check(node), false);
  assert.equal(filter.explain(1), "max replicas per node (2) reached on 1 node");
});

test("platform filter: os and architecture, with aliases and wildcards", () => {
  const filter = new PlatformFilter();
  assert.equal(filter.setTask(makeTask("t", "s")), false);
  const amd = new NodeInfo(makeNode("a", { os: "linux", architecture: "x86_64" }));
  const arm = new NodeInfo(makeNode("b", { os: "linux", architecture: "aarch64" }));
  filter.setTask(makeTask("t", "s", { platforms: [{ os: "linux", architecture: "amd64" }] }));
  assert.equal(filter.check(amd), true, "x86_64 is amd64");
  assert.equal(filter.check(arm), false);
  filter.setTask(makeTask("t", "s", { platforms: [{ os: "windows", architecture: "" }, { os: "", architecture: "arm64" }] }));
  assert.equal(filter.check(amd), false);
  assert.equal(filter.check(arm), true, "aarch64 is arm64 and an empty os matches any");
  assert.equal(filter.explain(1), "unsupported platform on 1 node");
});
