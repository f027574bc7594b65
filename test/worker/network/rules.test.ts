import assert from "node:assert/strict";
import { test } from "node:test";

import type { NetworkMap } from "../../../src/manager/dispatcher/index.js";
import type { Task } from "../../../src/manager/objects/index.js";
import { balancerRuleset } from "../../../src/worker/network/balancer.js";
import { desiredOverlay } from "../../../src/worker/network/desired.js";
import { meshRuleset } from "../../../src/worker/network/mesh.js";
import { createServiceLookup, vipRules } from "../../../src/worker/network/services.js";

const map: NetworkMap = {
  nodes: [
    { nodeId: "n1", addr: "192.168.0.1", ingressAddress: "10.240.0.250/24" },
    { nodeId: "n2", addr: "192.168.0.2" },
  ],
  networks: [
    { id: "ing", name: "ingress", vni: 4096, subnet: "10.240.0.0/24", ingress: true },
    { id: "back", name: "backend", vni: 4097, subnet: "10.240.1.0/24", ingress: false },
    { id: "other", name: "other", vni: 4098, subnet: "10.240.2.0/24", ingress: false },
  ],
  services: [
    {
      id: "s1",
      name: "Web",
      endpointMode: "vip",
      virtualIps: [{ networkId: "back", address: "10.240.1.2/24" }, { networkId: "ing", address: "10.240.0.2/24" }],
      publishedPorts: [{ protocol: "tcp", publishedPort: 8080, targetPort: 80 }],
      trafficPolicy: "cluster",
      hostPorts: [],
      tasks: [
        { id: "t1", nodeId: "n1", slot: 1, ready: true, addresses: [{ networkId: "back", address: "10.240.1.3/24" }, { networkId: "ing", address: "10.240.0.3/24" }] },
        { id: "t2", nodeId: "n2", slot: 2, ready: false, addresses: [{ networkId: "back", address: "10.240.1.4/24" }, { networkId: "ing", address: "10.240.0.4/24" }] },
      ],
    },
    { id: "s2", name: "db", endpointMode: "dnsrr", virtualIps: [], publishedPorts: [], trafficPolicy: "cluster", hostPorts: [], tasks: [{ id: "t3", nodeId: "n2", slot: 1, ready: true, addresses: [{ networkId: "other", address: "10.240.2.3/24" }] }] },
  ],
};

test("VIP rules and names follow readiness and stay within a container's networks", () => {
  assert.deepEqual(vipRules(map, new Set(["back"])), [{ vip: "10.240.1.2", backends: ["10.240.1.3"] }]);
  const ruleset = balancerRuleset(vipRules(map, new Set(["back"])), "10.88.0.1");
  assert.match(ruleset, /ip daddr 10\.240\.1\.2 dnat to numgen inc mod 1 map \{ 0 : 10\.240\.1\.3 \}/u);
  assert.match(ruleset, /udp dport 53 dnat to 10\.88\.0\.1:53/u);
  assert.match(ruleset, /tcp dport 53 dnat to 10\.88\.0\.1:53/u, "truncated answers are retried over TCP");
  assert.match(balancerRuleset([{ vip: "10.240.1.2", backends: [] }], undefined), /ip daddr 10\.240\.1\.2 reject/u, "a VIP without ready tasks refuses at once");
  const lookup = createServiceLookup(map, new Map([["10.88.0.5", new Set(["back"])]]));
  assert.deepEqual(lookup("10.88.0.5", "web"), ["10.240.1.2"]);
  assert.deepEqual(lookup("10.88.0.5", "tasks.web"), ["10.240.1.3"], "only ready tasks");
  assert.equal(lookup("10.88.0.5", "db"), undefined, "a service on another network is not a name here");
  assert.equal(lookup("10.88.0.9", "web"), undefined, "an unknown container gets the host's answer");
  const other = createServiceLookup(map, new Map([["10.88.0.6", new Set(["other"])]]));
  assert.deepEqual(other("10.88.0.6", "db"), ["10.240.2.3"], "dnsrr answers with the tasks");
});

test("the mesh publishes ports on every node to ready ingress tasks and masquerades toward them", () => {
  const ruleset = meshRuleset(map);
  assert.match(ruleset, /fib daddr type local tcp dport 8080 dnat ip to numgen inc mod 1 map \{ 0 : 10\.240\.0\.3 \. 80 \}/u);
  assert.match(ruleset, /oifname "shob-4096" ct status dnat masquerade/u);
  assert.equal((ruleset.match(/dport 8080 dnat/gu) ?? []).length, 2, "prerouting and output (localhost)");
  const [web] = map.services;
  assert.ok(web !== undefined);
  const local = meshRuleset({ ...map, services: [{ ...web, trafficPolicy: "local" }] }, [
    { protocol: "tcp", publishedPort: 8080, targetPort: 80, targets: ["10.88.0.7"] },
    { protocol: "tcp", publishedPort: 9090, targetPort: 80, targets: [] },
  ]);
  assert.doesNotMatch(local, /10\.240\.0\.3/u, "a local-policy port never leaves the node");
  assert.match(local, /tcp dport 8080 dnat ip to numgen inc mod 1 map \{ 0 : 10\.88\.0\.7 \. 80 \}/u);
  assert.match(local, /input_filter[^}]*tcp dport 9090 drop/u, "no local task: refused");
});

test("the desired overlay holds the ingress network on every node and one interface per running task and network", () => {
  const task = {
    id: "t1",
    desiredState: "running",
    status: { state: "running", timestamp: 0, message: "", err: "", containerStatus: { containerId: "c1", pid: 42, exitCode: -1 } },
    networkAttachments: [{ networkId: "back", networkName: "backend", subnet: "10.240.1.0/24", vni: 4097, address: "10.240.1.3/24" }],
  } as unknown as Task;
  const desired = desiredOverlay(map, "n1", [task]);
  assert.deepEqual(desired?.state, {
    localAddress: "192.168.0.1",
    peers: ["192.168.0.2"],
    networks: [{ vni: 4097, subnet: "10.240.1.0/24" }, { vni: 4096, subnet: "10.240.0.0/24", nodeAddress: "10.240.0.250/24" }],
  });
  assert.deepEqual(desired?.attachments, [{ key: "c1/back", containerNetns: "/proc/42/ns/net", vni: 4097, address: "10.240.1.3/24", interfaceName: "eth1" }]);
  assert.equal(desiredOverlay(map, "n1", [{ ...task, desiredState: "shutdown" }])?.attachments.length, 1, "a task told to stop still answers in-flight connections until its container exits");
  assert.equal(desiredOverlay(map, "n1", [{ ...task, desiredState: "shutdown", status: { ...task.status, state: "shutdown" } }])?.attachments.length, 0, "a stopped task is unplugged");
  assert.equal(desiredOverlay({ ...map, nodes: [{ nodeId: "n1", addr: "127.0.0.1" }] }, "n1", [task]), undefined, "loopback nodes share a host: no overlay");
});
