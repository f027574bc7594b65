import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import { FailedPreconditionError, NotFoundError, ResourceExhaustedError } from "../../../src/common/errors.js";
import {
  AddressPool,
  Allocator,
  checkServiceNetworking,
  createNetworkInTx,
  dynamicPortMin,
  networkAttachmentsReady,
  pickNetworkSubnet,
} from "../../../src/manager/allocator/index.js";
import { createControlApi } from "../../../src/manager/controlapi/index.js";
import { parseServiceSpec, type Network, type Service, type Task } from "../../../src/manager/objects/index.js";
import { newServiceTask } from "../../../src/manager/orchestrator/index.js";
import type { MemoryStore } from "../../../src/manager/store/index.js";
import { FakeClock } from "../../helpers/fake-clock.js";
import { counterIds, newStore, quiesce, silentLogger } from "../orchestrator/fixtures.js";

test("an address pool hands out every host address once, skips network and broadcast, and takes them back", () => {
  const pool = new AddressPool("10.0.0.0/29");
  assert.equal(pool.size, 6);
  const handed = Array.from({ length: 6 }, () => pool.allocate());
  assert.deepEqual(handed, ["10.0.0.1/29", "10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29", "10.0.0.5/29", "10.0.0.6/29"]);
  assert.throws(() => pool.allocate(), ResourceExhaustedError);
  assert.equal(pool.release("10.0.0.3/29"), true);
  assert.equal(pool.release("10.0.0.3/29"), false, "a second release of the same address is refused");
  assert.equal(pool.allocate(), "10.0.0.3/29");
  assert.equal(pool.claim("10.0.0.7/29"), false, "broadcast is not a host address");
  assert.equal(pool.claim("10.0.1.1/29"), false, "outside the subnet");
});

test("an address pool reuses a freed address last", () => {
  const pool = new AddressPool("10.0.0.0/24");
  const first = pool.allocate();
  pool.allocate();
  pool.release(first);
  assert.equal(pool.allocate(), "10.0.0.3/24");
});

test("networks get distinct /24 subnets and VNIs from the pool, and a full pool is an error", () => {
  const made: Network[] = [];
  const meta = { version: 1, createdAt: 0, updatedAt: 0 };
  for (let index = 0; index < 4; index += 1) {
    const { subnet, vni } = pickNetworkSubnet("10.20.0.0/22", made);
    made.push({ id: `n${index}`, meta, spec: { name: `n${index}`, labels: {}, driver: "overlay", ingress: false }, subnet, vni });
  }
  assert.deepEqual(made.map((network) => network.subnet), ["10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24", "10.20.3.0/24"]);
  assert.equal(new Set(made.map((network) => network.vni)).size, 4);
  assert.throws(() => pickNetworkSubnet("10.20.0.0/22", made), ResourceExhaustedError);
  assert.deepEqual(pickNetworkSubnet("10.20.0.0/22", made.slice(1)).subnet, "10.20.0.0/24", "a removed network's subnet is reused");
});

interface AllocatorHarness {
  store: MemoryStore;
  allocator: Allocator;
  newId: () => string;
  clock: FakeClock;
}

async function startAllocator(t: TestContext, store?: MemoryStore): Promise<AllocatorHarness> {
  const clock = new FakeClock();
  const used = store ?? newStore(clock);
  const allocator = new Allocator({ store: used, logger: silentLogger, clock, newId: counterIds(7) });
  const controller = new AbortController();
  const running = allocator.run(controller.signal);
  t.after(async () => {
    controller.abort();
    await running;
  });
  await quiesce(used);
  return { store: used, allocator, newId: counterIds(8), clock };
}

async function createNetwork(store: MemoryStore, id: string, name: string): Promise<Network> {
  return store.update((tx) => createNetworkInTx(tx, id, { name, labels: {}, driver: "overlay", ingress: false }));
}

async function createService(store: MemoryStore, id: string, input: Record<string, unknown>): Promise<Service> {
  const spec = parseServiceSpec({ name: id, taskTemplate: { containerSpec: { image: "busybox" } }, ...input });
  await store.update((tx) => {
    checkServiceNetworking(tx, spec, undefined);
    tx.create("service", { id, spec, specVersion: 1 });
  });
  const service = store.view((tx) => tx.get("service", id));
  assert.ok(service !== undefined);
  return service;
}

async function createTask(harness: AllocatorHarness, service: Service, slot: number): Promise<string> {
  const task = await harness.store.update((tx) =>
    tx.create("task", newServiceTask({ id: harness.newId(), service, slot, nodeId: "", attempt: 0, desiredState: "running", now: 0, message: "created" })),
  );
  return task.id;
}

function getTask(store: MemoryStore, id: string): Task {
  const task = store.view((tx) => tx.get("task", id));
  assert.ok(task !== undefined);
  return task;
}

function usedOn(allocator: Allocator, networkId: string): number {
  return allocator.usage().find((usage) => usage.networkId === networkId)?.used ?? -1;
}

test("the allocator creates the ingress network, gives services VIPs and ports and tasks addresses", async (t) => {
  const harness = await startAllocator(t);
  const { store } = harness;
  const ingress = store.view((tx) => tx.find("network").find((network) => network.spec.ingress));
  assert.ok(ingress !== undefined, "a leader's allocator creates the ingress network");
  const backend = await createNetwork(store, "net1", "backend");
  const service = await createService(store, "web", {
    taskTemplate: { containerSpec: { image: "busybox" }, networks: [{ target: "backend" }] },
    endpointSpec: { ports: [{ targetPort: 80 }, { targetPort: 81, publishedPort: 8080 }] },
  });
  const taskId = await createTask(harness, service, 1);
  assert.equal(networkAttachmentsReady(getTask(store, taskId)), false, "a task that needs networks is not ready before allocation");
  await quiesce(store);
  const allocated = store.view((tx) => tx.get("service", "web"));
  assert.deepEqual(allocated?.endpoint?.virtualIps.map((vip) => vip.networkId).sort(), [backend.id, ingress.id].sort());
  assert.deepEqual(allocated?.endpoint?.publishedPorts, [
    { protocol: "tcp", publishedPort: dynamicPortMin, targetPort: 80 },
    { protocol: "tcp", publishedPort: 8080, targetPort: 81 },
  ]);
  const task = getTask(store, taskId);
  assert.ok(networkAttachmentsReady(task));
  assert.deepEqual(task.networkAttachments?.map((attachment) => attachment.networkName).sort(), ["backend", "ingress"]);
  const onBackend = task.networkAttachments?.find((attachment) => attachment.networkId === backend.id);
  assert.equal(onBackend?.subnet, backend.subnet);
  assert.equal(onBackend?.vni, backend.vni);
  assert.notEqual(onBackend?.address, allocated?.endpoint?.virtualIps.find((vip) => vip.networkId === backend.id)?.address);
  assert.equal(usedOn(harness.allocator, backend.id), 2, "one VIP and one task address");
});

test("a task with no network needs no allocation", async (t) => {
  const harness = await startAllocator(t);
  const service = await createService(harness.store, "plain", {});
  const taskId = await createTask(harness, service, 1);
  await quiesce(harness.store);
  const task = getTask(harness.store, taskId);
  assert.equal(task.networkAttachments, undefined);
  assert.ok(networkAttachmentsReady(task));
});

test("1,000 task create/remove cycles end with the pools where they began", async (t) => {
  const harness = await startAllocator(t);
  const { store, allocator } = harness;
  const backend = await createNetwork(store, "net1", "backend");
  const service = await createService(store, "churn", { taskTemplate: { containerSpec: { image: "busybox" }, networks: [{ target: backend.id }] } });
  await quiesce(store);
  const before = allocator.usage();
  assert.equal(usedOn(allocator, backend.id), 1, "the service's VIP");
  const live = new Set<string>();
  for (let cycle = 0; cycle < 1_000; cycle += 1) {
    live.add(await createTask(harness, service, (cycle % 3) + 1));
    await quiesce(store);
    const addresses = store.view((tx) => tx.find("task").map((task) => task.networkAttachments?.[0]?.address));
    assert.ok(addresses.every((address) => address !== undefined), `cycle ${cycle}: every task has its address`);
    assert.equal(new Set(addresses).size, addresses.length, `cycle ${cycle}: no address is held twice`);
    // Remove the oldest once three are live; alternate deleting and stopping for good.
    if (live.size === 3) {
      const [oldest] = live;
      assert.ok(oldest !== undefined);
      live.delete(oldest);
      if (cycle % 2 === 0) await store.update((tx) => tx.delete("task", oldest));
      else {
        await store.update((tx) => {
          const task = tx.get("task", oldest);
          assert.ok(task !== undefined);
          tx.update("task", { ...task, desiredState: "shutdown", status: { ...task.status, state: "shutdown" } });
        });
        await store.update((tx) => tx.delete("task", oldest));
      }
    }
  }
  for (const id of live) await store.update((tx) => tx.delete("task", id));
  await quiesce(store);
  assert.deepEqual(allocator.usage(), before);
  await store.update((tx) => tx.delete("service", service.id));
  await quiesce(store);
  assert.equal(usedOn(allocator, backend.id), 0, "the VIP is freed with its service");
});

test("a new leader's allocator rebuilds the same pools from the store and hands out no held address", async (t) => {
  const first = await startAllocator(t);
  const backend = await createNetwork(first.store, "net1", "backend");
  const service = await createService(first.store, "web", { taskTemplate: { containerSpec: { image: "busybox" }, networks: [{ target: "backend" }] } });
  for (let slot = 1; slot <= 5; slot += 1) await createTask(first, service, slot);
  await quiesce(first.store);
  const second = new Allocator({ store: first.store, logger: silentLogger, clock: first.clock });
  const controller = new AbortController();
  const running = second.run(controller.signal);
  t.after(async () => {
    controller.abort();
    await running;
  });
  await quiesce(first.store);
  assert.equal(usedOn(second, backend.id), 6);
  const id = await createTask(first, service, 6);
  await quiesce(first.store);
  const addresses = first.store.view((tx) => tx.find("task").map((task) => task.networkAttachments?.[0]?.address));
  assert.equal(new Set(addresses).size, 6, `task ${id} got an address nobody holds`);
});

test("network create, list, inspect and remove through the control API; removal refuses a network in use", async (t) => {
  const harness = await startAllocator(t);
  const api = createControlApi({ store: harness.store, logger: silentLogger, newId: counterIds(9) });
  const network = await api.createNetwork({ name: "backend", driver: "overlay", labels: { team: "a" } });
  assert.match(network.subnet, /^10\.24\d\.\d+\.0\/24$/u);
  await assert.rejects(api.createNetwork({ name: "backend" }), FailedPreconditionError);
  assert.deepEqual(api.listNetworks().map((item) => item.spec.name).sort(), ["backend", "ingress"]);
  assert.equal(api.getNetwork("backend").id, network.id);
  await assert.rejects(api.createService({ name: "web", taskTemplate: { containerSpec: { image: "busybox" }, networks: [{ target: "nope" }] } }), NotFoundError);
  await api.createService({ name: "web", taskTemplate: { containerSpec: { image: "busybox" }, networks: [{ target: "backend" }] } });
  await assert.rejects(api.removeNetwork("backend"), (error: unknown) => error instanceof FailedPreconditionError && /in use by service\(s\) web/u.test(error.message));
  await api.removeService("web");
  await api.removeNetwork("backend");
  assert.throws(() => api.getNetwork("backend"), NotFoundError);
  const published = { taskTemplate: { containerSpec: { image: "busybox" } }, endpointSpec: { ports: [{ targetPort: 80, publishedPort: 8080 }] } };
  await api.createService({ name: "a", ...published });
  await assert.rejects(api.createService({ name: "b", ...published }), (error: unknown) => error instanceof FailedPreconditionError && /8080\/tcp is already published/u.test(error.message));
  await assert.rejects(api.removeNetwork("ingress"), (error: unknown) => error instanceof FailedPreconditionError && /in use by service\(s\) a/u.test(error.message));
});
