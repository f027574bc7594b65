import assert from "node:assert/strict";
import { test } from "node:test";

import { status as grpcStatus } from "@grpc/grpc-js";

import { systemClock } from "../../../src/common/clock.js";
import { createNetworkInTx } from "../../../src/manager/allocator/index.js";
import { buildNetworkMap, encodeNetworkMap, parseNetworkMap, type NetworkMap } from "../../../src/manager/dispatcher/index.js";
import { parseServiceSpec, type Task, type TaskStatus } from "../../../src/manager/objects/index.js";
import { newServiceTask } from "../../../src/manager/orchestrator/index.js";
import { MemoryStore } from "../../../src/manager/store/index.js";
import type { NetworkMapMessage__Output } from "../../../src/gen/shoal/v1/NetworkMapMessage.js";
import { waitFor } from "../../helpers/wait.js";
import { defer, dispatcherClient, nodeMetadata, silentLogger, startManager, StreamRecorder, testDescription } from "./harness.js";

async function seed(store: MemoryStore): Promise<{ networkId: string }> {
  const network = await store.update((tx) => createNetworkInTx(tx, "net1", { name: "backend", labels: {}, driver: "overlay", ingress: false }));
  const spec = parseServiceSpec({ name: "web", taskTemplate: { containerSpec: { image: "busybox" }, networks: [{ target: "backend" }] } });
  await store.update((tx) => {
    tx.create("service", { id: "svc1", spec, specVersion: 1, endpoint: { virtualIps: [{ networkId: network.id, address: "10.240.0.2/24" }], publishedPorts: [] } });
  });
  return { networkId: network.id };
}

async function addTask(store: MemoryStore, options: { id: string; status: Partial<TaskStatus>; desiredState?: Task["desiredState"]; address: string; networkId: string }): Promise<void> {
  await store.update((tx) => {
    const service = tx.get("service", "svc1");
    assert.ok(service !== undefined);
    const task = newServiceTask({ id: options.id, service, slot: 1, nodeId: "node1", attempt: 0, desiredState: options.desiredState ?? "running", now: 0, message: "" });
    tx.create("task", {
      ...task,
      status: { ...task.status, state: "running", ...options.status },
      networkAttachments: [{ networkId: options.networkId, networkName: "backend", subnet: "10.240.0.0/24", vni: 4096, address: options.address }],
    });
  });
}

test("the network map holds ready and draining tasks apart and survives its own parser", async () => {
  const store = new MemoryStore({ proposer: null, logger: silentLogger });
  const { networkId } = await seed(store);
  await store.update((tx) => tx.create("node", { id: "node1", spec: { name: "", labels: {}, role: "worker", availability: "active" }, status: { state: "ready", addr: "192.168.1.5", message: "" } }));
  await addTask(store, { id: "t1", status: {}, address: "10.240.0.3/24", networkId });
  await addTask(store, { id: "t2", status: { health: "healthy" }, address: "10.240.0.4/24", networkId });
  await addTask(store, { id: "t3", status: { health: "starting" }, address: "10.240.0.5/24", networkId });
  await addTask(store, { id: "t4", status: {}, desiredState: "shutdown", address: "10.240.0.6/24", networkId });
  await addTask(store, { id: "t5", status: { state: "complete" }, desiredState: "shutdown", address: "10.240.0.7/24", networkId });
  const map = store.view(buildNetworkMap);
  assert.deepEqual(map.nodes, [{ nodeId: "node1", addr: "192.168.1.5" }]);
  assert.deepEqual(map.networks, [{ id: networkId, name: "backend", vni: 4096, subnet: "10.240.0.0/24", ingress: false }]);
  const [service] = map.services;
  assert.ok(service !== undefined);
  assert.equal(service.name, "web");
  assert.deepEqual(
    service.tasks.map((task) => [task.id, task.ready]),
    [["t1", true], ["t2", true], ["t3", false], ["t4", false]],
    "no health check or healthy: ready; starting or told to stop: not ready; stopped: gone",
  );
  assert.deepEqual(parseNetworkMap(encodeNetworkMap(map)), map);
  assert.throws(() => parseNetworkMap(Buffer.from('{"nodes":[],"networks":[],"services":[{"id":"x"}]}')), /services\[0\]/u);
});

test("NetworkMap streams the map to a node with a session and sends changes within a second", { timeout: 20_000 }, async (t) => {
  const manager = await startManager({ clock: systemClock });
  defer(t, () => manager.close());
  const client = dispatcherClient(manager.address);
  defer(t, () => client.close());
  const refused = new StreamRecorder(client.NetworkMap({}, nodeMetadata("node1")));
  await waitFor("a refusal without a session", () => refused.error);
  assert.equal(refused.error?.code, grpcStatus.FAILED_PRECONDITION);

  const session = new StreamRecorder(client.Session({ description: testDescription }, nodeMetadata("node1")));
  defer(t, () => session.call.cancel());
  await waitFor("the session", () => session.messages[0]);
  const stream = new StreamRecorder<NetworkMapMessage__Output>(client.NetworkMap({}, nodeMetadata("node1")));
  defer(t, () => stream.call.cancel());
  const latest = (): NetworkMap | undefined => {
    const message = stream.messages.at(-1);
    return message === undefined ? undefined : parseNetworkMap(message.map);
  };
  const first = await waitFor("the first map", latest);
  assert.equal(first.services.length, 0);
  const { networkId } = await seed(manager.store);
  const changedAt = Date.now();
  await addTask(manager.store, { id: "t1", status: {}, address: "10.240.0.3/24", networkId });
  await waitFor("the map with the task", () => (latest()?.services[0]?.tasks.length === 1 ? true : undefined), { timeoutMs: 5_000, intervalMs: 10 });
  assert.ok(Date.now() - changedAt < 1_000, "the change reached the node within a second");
  const sequences = stream.messages.map((message) => Number(message.sequence));
  assert.deepEqual(sequences, sequences.map((_, index) => index + 1));
});
