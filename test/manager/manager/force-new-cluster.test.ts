import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import { FailedPreconditionError } from "../../../src/common/errors.js";
import { forceNewManagerCluster, type Manager } from "../../../src/manager/manager/index.js";
import { waitFor } from "../../helpers/wait.js";
import { createNodes, logger, type TestNode } from "./cluster.js";

function serviceSpec(name: string): Record<string, unknown> {
  return { name, taskTemplate: { containerSpec: { image: "busybox:1.36", args: ["sleep", "1d"] } }, mode: { type: "replicated", replicas: 2 } };
}

function voters(manager: Manager): string[] {
  return manager
    .managers()
    .filter((member) => member.suffrage === "voter")
    .map((member) => member.nodeId);
}

/** Three managers, a first and b and c joined with a's manager token, all voters; removed after the test. */
async function threeManagers(t: TestContext): Promise<{ nodes: TestNode[]; a: TestNode; b: TestNode; c: TestNode }> {
  const { nodes, cleanup } = await createNodes(["a", "b", "c"]);
  t.after(cleanup);
  const [a, b, c] = nodes;
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  await a.init();
  const token = a.running.joinTokens().manager;
  await b.join(a.address, token);
  await c.join(a.address, token);
  await waitFor("three voters", () => (voters(a.running).length === 3 ? true : undefined), { timeoutMs: 20_000 });
  return { nodes, a, b, c };
}

test("forceNewManagerCluster: a survivor of three managers restarts alone with the whole store", { timeout: 90_000 }, async (t) => {
  const { nodes, a, b, c } = await threeManagers(t);
  const service = await a.running.controlApi().createService(serviceSpec("web"));
  const tokens = a.running.joinTokens();
  const ids = { a: a.running.nodeId, b: b.running.nodeId, c: c.running.nodeId };
  await waitFor("b to replicate the service", () => (b.running.store.view((tx) => tx.get("service", service.id)) === undefined ? undefined : true), {
    timeoutMs: 10_000,
  });
  for (const node of nodes) await node.stop();

  const forced = await forceNewManagerCluster({ dataDir: b.dataDir, logger });
  assert.deepEqual(forced.removedManagers.map((member) => member.nodeId).sort(), [ids.a, ids.c].sort());

  const manager = await b.restart();
  await waitFor("b to lead alone", () => (manager.isLeader() ? true : undefined), { timeoutMs: 20_000 });
  assert.deepEqual(voters(manager), [ids.b]);
  assert.deepEqual(manager.joinTokens(), tokens);
  assert.equal(manager.controlApi().getService(service.id).spec.name, "web");
  assert.deepEqual(manager.controlApi().listNodes().map((node) => node.id).sort(), [ids.a, ids.b, ids.c].sort());
  // The dropped managers are still wanted as managers: shown unreachable until demoted.
  assert.deepEqual(manager.managerStatus(ids.a), { leader: false, reachability: "unreachable", addr: a.address });
  assert.equal(manager.managerStatus(ids.b)?.leader, true);
  // Writable: one voter is a quorum.
  await manager.controlApi().createService(serviceSpec("after"));
  assert.equal(manager.controlApi().listServices().length, 2);
});

test("forceNewManagerCluster refuses a data dir without manager state", async (t) => {
  const { nodes, cleanup } = await createNodes(["empty"]);
  t.after(cleanup);
  const [empty] = nodes;
  assert.ok(empty !== undefined);
  await assert.rejects(forceNewManagerCluster({ dataDir: empty.dataDir, logger }), (error: unknown) => error instanceof FailedPreconditionError && /force-new-cluster/.test(error.message));
});

test("demoting a manager is refused when the managers left would not answer as a quorum", { timeout: 90_000 }, async (t) => {
  const { a, b, c } = await threeManagers(t);
  const ids = { b: b.running.nodeId, c: c.running.nodeId };
  await c.stop();
  const api = a.running.controlApi();
  const demote = (nodeId: string): Promise<unknown> => api.updateNode(nodeId, api.getNode(nodeId).meta.version, { ...api.getNode(nodeId).spec, role: "worker" });
  // Left: a and the stopped c; a quorum of two needs both.
  await assert.rejects(demote(ids.b), (error: unknown) => error instanceof FailedPreconditionError && /loss of quorum/.test(error.message));
  assert.equal(api.getNode(ids.b).spec.role, "manager");
  // Demoting the stopped one leaves a and b, which both answer.
  await demote(ids.c);
  assert.equal(api.getNode(ids.c).spec.role, "worker");
});
