import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { AlreadyExistsError, ConflictError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../../src/common/errors.js";
import { addNodes, addTasks, createFixture, minimalSpec, newNode, newTask, type Fixture } from "./fixtures.js";

/** Asserts that `work` fails with InvalidArgumentError naming `field`, and that the store did not move. */
async function assertRejected(fixture: Fixture, work: () => Promise<unknown>, field: string): Promise<void> {
  const before = fixture.store.version;
  await assert.rejects(work, (error: unknown) => {
    assert.ok(error instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(error)}`);
    assert.ok(error.message.startsWith(`${field}:`), `"${error.message}" does not name ${field}`);
    return true;
  });
  assert.equal(fixture.store.version, before, "a rejected write must not move the store version");
}

describe("control API: services", () => {
  test("create fills defaults, inspect resolves id, name and prefix", async () => {
    const fixture = createFixture();
    const created = await fixture.api.createService(minimalSpec());
    assert.equal(created.spec.name, "web");
    assert.deepEqual(created.spec.mode, { type: "replicated", replicas: 3 });
    assert.equal(created.spec.taskTemplate.restartPolicy.condition, "any");
    assert.equal(created.meta.version, fixture.store.version);
    assert.equal(fixture.api.getService("web").id, created.id);
    assert.equal(fixture.api.getService(created.id.slice(0, 6)).id, created.id);
    assert.throws(() => fixture.api.getService("nope"), NotFoundError);
  });

  test("every kind of bad spec is rejected naming its field, and nothing is written", async () => {
    const fixture = createFixture();
    const { api } = fixture;
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["negative replicas", minimalSpec({ mode: { type: "replicated", replicas: -1 } }), "spec.mode.replicas"],
      ["fractional replicas", minimalSpec({ mode: { type: "replicated", replicas: 1.5 } }), "spec.mode.replicas"],
      ["unknown field", minimalSpec({ colour: "blue" }), "spec.colour"],
      ["bad constraint", minimalSpec({ taskTemplate: { containerSpec: { image: "busybox" }, placement: { constraints: ["node.role~manager"] } } }), "spec.taskTemplate.placement.constraints[0]"],
      ["non-DNS name", minimalSpec({ name: "web_server!" }), "spec.name"],
      ["oversized label", minimalSpec({ labels: { big: "x".repeat(5_000) } }), "spec.labels.big"],
      ["bad image reference", minimalSpec({ taskTemplate: { containerSpec: { image: "Busybox::latest" } } }), "spec.taskTemplate.containerSpec.image"],
    ];
    for (const [what, spec, field] of cases) {
      await assertRejected(fixture, () => api.createService(spec), field).catch((error: unknown) => {
        throw new Error(`${what}: ${String(error)}`, { cause: error });
      });
    }
    assert.equal(api.listServices().length, 0);
  });

  test("a taken name is AlreadyExistsError", async () => {
    const { api } = createFixture();
    await api.createService(minimalSpec());
    await assert.rejects(() => api.createService(minimalSpec()), AlreadyExistsError);
  });

  test("update keeps previousSpec, checks the version, and rolls back", async () => {
    const fixture = createFixture();
    const { api } = fixture;
    const created = await api.createService(minimalSpec());
    const updated = await api.updateService("web", created.meta.version, minimalSpec({ mode: { type: "replicated", replicas: 5 } }));
    assert.deepEqual(updated.spec.mode, { type: "replicated", replicas: 5 });
    assert.deepEqual(updated.previousSpec?.mode, { type: "replicated", replicas: 3 });
    assert.equal(updated.specVersion, created.specVersion + 1);
    const before = fixture.store.version;
    await assert.rejects(() => api.updateService("web", created.meta.version, minimalSpec()), (error: unknown) => {
      assert.ok(error instanceof ConflictError);
      assert.match(error.message, /update out of sequence/);
      return true;
    });
    assert.equal(fixture.store.version, before);
    const rolledBack = await api.updateService("web", updated.meta.version, undefined, { rollback: "previous" });
    assert.deepEqual(rolledBack.spec.mode, { type: "replicated", replicas: 3 });
    assert.deepEqual(rolledBack.previousSpec?.mode, { type: "replicated", replicas: 5 });
    assert.equal(rolledBack.updateStatus?.state, "rollback_started");
    assert.equal(rolledBack.updateStatus.message, "manually requested rollback");
    const again = await api.updateService("web", rolledBack.meta.version, minimalSpec());
    assert.equal(again.updateStatus, undefined, "a new spec starts a fresh update");
  });

  test("update refuses renames, mode changes and bad specs without writing", async () => {
    const fixture = createFixture();
    const created = await fixture.api.createService(minimalSpec());
    await assertRejected(fixture, () => fixture.api.updateService("web", created.meta.version, minimalSpec({ name: "other" })), "spec.name");
    await assertRejected(fixture, () => fixture.api.updateService("web", created.meta.version, minimalSpec({ mode: { type: "global" } })), "spec.mode");
    await assertRejected(fixture, () => fixture.api.updateService("web", created.meta.version, minimalSpec({ mode: { type: "replicated", replicas: -2 } })), "spec.mode.replicas");
    await assert.rejects(() => fixture.api.updateService("web", created.meta.version, undefined, { rollback: "previous" }), FailedPreconditionError);
  });

  test("list filters by id, name, label and mode", async () => {
    const { api } = createFixture();
    const web = await api.createService(minimalSpec({ labels: { tier: "front" } }));
    await api.createService(minimalSpec({ name: "worker", labels: { tier: "back" } }));
    await api.createService(minimalSpec({ name: "agent", mode: { type: "global" } }));
    const names = (filters: Parameters<typeof api.listServices>[0]): string[] => api.listServices(filters).map(({ service }) => service.spec.name).sort();
    assert.deepEqual(names({}), ["agent", "web", "worker"]);
    assert.deepEqual(names({ name: ["w"] }), ["web", "worker"]);
    assert.deepEqual(names({ id: [web.id] }), ["web"]);
    assert.deepEqual(names({ id: ["svc"] }), ["agent", "web", "worker"]);
    assert.deepEqual(names({ label: [{ key: "tier" }] }), ["web", "worker"]);
    assert.deepEqual(names({ label: [{ key: "tier", value: "back" }] }), ["worker"]);
    assert.deepEqual(names({ mode: ["global"] }), ["agent"]);
    assert.deepEqual(names({ mode: ["replicated"], name: ["wor"] }), ["worker"]);
  });

  test("ServiceStatus counts running tasks on live nodes against the desired count", async () => {
    const fixture = createFixture();
    const { api } = fixture;
    await addNodes(fixture, [newNode("n1"), newNode("n2", { state: "down" })]);
    const web = await api.createService(minimalSpec());
    await addTasks(fixture, [
      newTask(web, { id: "t1", slot: 1, nodeId: "n1" }),
      newTask(web, { id: "t2", slot: 2, nodeId: "n2" }),
      newTask(web, { id: "t3", slot: 3, nodeId: "n1", state: "starting" }),
      newTask(web, { id: "t4", slot: 3, nodeId: "n1", state: "complete", desired: "shutdown" }),
    ]);
    const [listed] = api.listServices({}, { status: true });
    assert.deepEqual(listed?.status, { runningTasks: 1, desiredTasks: 3, completedTasks: 1 });
    const agent = await api.createService(minimalSpec({ name: "agent", mode: { type: "global" } }));
    await addTasks(fixture, [newTask(agent, { id: "g1", slot: 0, nodeId: "n1" }), newTask(agent, { id: "g2", slot: 0, nodeId: "n2" })]);
    assert.deepEqual(api.serviceStatus(api.getService("agent")), { runningTasks: 1, desiredTasks: 1, completedTasks: 0 });
  });

  test("remove deletes the service", async () => {
    const { api } = createFixture();
    await api.createService(minimalSpec());
    await api.removeService("web");
    assert.throws(() => api.getService("web"), NotFoundError);
    await assert.rejects(() => api.removeService("web"), NotFoundError);
  });
});

describe("control API: tasks", () => {
  async function withTasks(): Promise<Fixture> {
    const fixture = createFixture();
    await addNodes(fixture, [newNode("n1", { hostname: "alpha" }), newNode("n2", { hostname: "beta" })]);
    const web = await fixture.api.createService(minimalSpec({ labels: { app: "shop" } }));
    const db = await fixture.api.createService(minimalSpec({ name: "db" }));
    await addTasks(fixture, [
      newTask(web, { id: "ta1", slot: 1, nodeId: "n1" }),
      newTask(web, { id: "ta10", slot: 10, nodeId: "n2" }),
      newTask(web, { id: "tb1", slot: 1, nodeId: "n1", state: "shutdown", desired: "shutdown", stale: true }),
      newTask(db, { id: "tc1", slot: 1, nodeId: "n2" }),
    ]);
    return fixture;
  }

  const ids = (fixture: Fixture, filters: Parameters<Fixture["api"]["listTasks"]>[0]): string[] => fixture.api.listTasks(filters).map((task) => task.id).sort();

  test("filters by service and node reference, desired state and id", async () => {
    const fixture = await withTasks();
    assert.deepEqual(ids(fixture, { service: ["web"] }), ["ta1", "ta10", "tb1"]);
    assert.deepEqual(ids(fixture, { service: ["nope"] }), []);
    assert.deepEqual(ids(fixture, { node: ["beta"] }), ["ta10", "tc1"]);
    assert.deepEqual(ids(fixture, { node: ["n1"], desiredState: ["running"] }), ["ta1"]);
    assert.deepEqual(ids(fixture, { id: ["ta"] }), ["ta1", "ta10"]);
  });

  test("filters by name svc.slot on whole parts, by service label, and _up-to-date", async () => {
    const fixture = await withTasks();
    assert.deepEqual(ids(fixture, { name: ["web.1"] }), ["ta1", "tb1"]);
    assert.deepEqual(ids(fixture, { name: ["web.10"] }), ["ta10"]);
    assert.deepEqual(ids(fixture, { name: ["web.1.ta1"] }), ["ta1"]);
    assert.deepEqual(ids(fixture, { label: [{ key: "app", value: "shop" }] }), ["ta1", "ta10", "tb1"]);
    assert.deepEqual(ids(fixture, { service: ["web"], upToDate: true }), ["ta1", "ta10"]);
    assert.equal(fixture.api.getTask("tc").id, "tc1");
  });
});

describe("control API: nodes and cluster", () => {
  test("node filters: name, role, membership and labels", async () => {
    const fixture = createFixture();
    await addNodes(fixture, [
      newNode("m1", { role: "manager", hostname: "alpha", engineLabels: { ssd: "yes" } }),
      newNode("w1", { hostname: "beta", labels: { zone: "east" } }),
    ]);
    const ids = (filters: Parameters<Fixture["api"]["listNodes"]>[0]): string[] => fixture.api.listNodes(filters).map((node) => node.id).sort();
    assert.deepEqual(ids({ role: ["manager"] }), ["m1"]);
    assert.deepEqual(ids({ name: ["be"] }), ["w1"]);
    assert.deepEqual(ids({ membership: ["accepted"] }), ["m1", "w1"]);
    assert.deepEqual(ids({ membership: ["pending"] }), []);
    assert.deepEqual(ids({ label: [{ key: "ssd" }] }), ["m1"]);
    assert.deepEqual(ids({ nodeLabel: [{ key: "zone", value: "east" }] }), ["w1"]);
  });

  test("node update changes availability, role and labels with a version check", async () => {
    const fixture = createFixture();
    await addNodes(fixture, [newNode("m1", { role: "manager" }), newNode("w1")]);
    const node = fixture.api.getNode("w1");
    const updated = await fixture.api.updateNode("w1", node.meta.version, { availability: "drain", labels: { zone: "west" }, role: "manager" });
    assert.deepEqual(updated.spec, { name: "", labels: { zone: "west" }, role: "manager", availability: "drain" });
    await assert.rejects(() => fixture.api.updateNode("w1", node.meta.version, { availability: "active" }), ConflictError);
    await assertRejected(fixture, () => fixture.api.updateNode("w1", updated.meta.version, { availability: "asleep" }), "spec.availability");
    await assertRejected(fixture, () => fixture.api.updateNode("w1", updated.meta.version, { colour: "red" }), "spec.colour");
  });

  test("the last manager cannot be demoted; managers and live nodes are not removed", async () => {
    const fixture = createFixture();
    await addNodes(fixture, [newNode("m1", { role: "manager" }), newNode("w1"), newNode("w2", { state: "down" })]);
    const manager = fixture.api.getNode("m1");
    await assert.rejects(() => fixture.api.updateNode("m1", manager.meta.version, { role: "worker" }), FailedPreconditionError);
    await assert.rejects(() => fixture.api.removeNode("m1"), FailedPreconditionError);
    await assert.rejects(() => fixture.api.removeNode("w1"), /not down/);
    await fixture.api.removeNode("w2");
    await fixture.api.removeNode("w1", { force: true });
    assert.deepEqual(fixture.api.listNodes().map((node) => node.id), ["m1"]);
  });

  test("cluster init, update with version, and tokens", async () => {
    const fixture = createFixture();
    assert.throws(() => fixture.api.getCluster(), NotFoundError);
    const cluster = await fixture.api.initCluster({
      clusterId: "c1",
      spec: { name: "default" },
      joinTokens: { worker: "SWMTKN-1-w", manager: "SWMTKN-1-m" },
      node: newNode("m1", { role: "manager" }),
    });
    assert.equal(cluster.spec.taskHistoryRetentionLimit, 5);
    assert.equal(fixture.api.getNode("m1").spec.role, "manager");
    await assert.rejects(() => fixture.api.initCluster({ clusterId: "c2", spec: { name: "default" }, joinTokens: cluster.joinTokens, node: newNode("m2") }), AlreadyExistsError);
    const updated = await fixture.api.updateCluster(cluster.meta.version, { taskHistoryRetentionLimit: 2 });
    assert.equal(updated.spec.taskHistoryRetentionLimit, 2);
    assert.equal(updated.spec.heartbeatPeriodMs, cluster.spec.heartbeatPeriodMs);
    await assert.rejects(() => fixture.api.updateCluster(cluster.meta.version, {}), ConflictError);
    await assertRejected(fixture, () => fixture.api.updateCluster(updated.meta.version, { taskHistoryRetentionLimit: -1 }), "spec.taskHistoryRetentionLimit");
    const rotated = await fixture.api.setJoinTokens({ worker: "SWMTKN-1-w2", manager: "SWMTKN-1-m" });
    assert.equal(rotated.joinTokens.worker, "SWMTKN-1-w2");
  });
});
