import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { status as grpcStatus, type ChannelCredentials } from "@grpc/grpc-js";

import { systemClock } from "../../../src/common/clock.js";
import { FailedPreconditionError, PermissionDeniedError, UnavailableError } from "../../../src/common/errors.js";
import { joinWithToken } from "../../../src/manager/ca/index.js";
import { joinManager, requestRaftJoin, type Manager } from "../../../src/manager/manager/index.js";
import { requestForward } from "../../../src/manager/manager/membership-service.js";
import type { ProtoGrpcType as RaftProto } from "../../../src/gen/raft.js";
import { loadProto } from "../../../src/rpc/index.js";
import { channelCredentials, tlsChannelOptions } from "../../../src/rpc/tls/index.js";
import { waitFor } from "../../helpers/wait.js";
import { createNodes, logger, type TestNode } from "./cluster.js";

const missedServicesCount = 30;

function serviceSpec(name: string, replicas: number): Record<string, unknown> {
  return { name, taskTemplate: { containerSpec: { image: "busybox:1.36", args: ["sleep", "1d"] } }, mode: { type: "replicated", replicas } };
}

/** Opens a raft stream as whoever `credentials` name and returns the status the server ends it with. */
async function raftStreamStatus(address: string, credentials: ChannelCredentials, to: number): Promise<number> {
  const proto = loadProto<RaftProto>("shoal/v1/raft.proto");
  const client = new proto.shoal.v1.Raft(address, credentials, { ...tlsChannelOptions });
  try {
    return await new Promise<number>((resolve) => {
      const stream = client.Stream((error) => resolve(error === null ? grpcStatus.OK : error.code));
      stream.on("error", () => undefined);
      stream.write({ from: 7, messages: [{ type: "RAFT_MESSAGE_TYPE_HEARTBEAT", from: 7, to, term: 99 }] });
      stream.end();
    });
  } finally {
    client.close();
  }
}

function voters(manager: Manager): number {
  return manager.managers().filter((member) => member.suffrage === "voter").length;
}

function serviceTasks(manager: Manager, name: string): number {
  return manager.store.view((tx) => {
    const service = tx.find("service", { by: "name", name })[0];
    return service === undefined ? 0 : tx.find("task", { by: "serviceId", serviceId: service.id }).length;
  });
}

async function waitForLeader(nodes: readonly TestNode[], timeoutMs: number): Promise<TestNode> {
  return waitFor("a manager leading with its components running", () => nodes.find((node) => node.manager?.isLeader() === true), { timeoutMs });
}

test("three managers: join, replicate, fail over, restart and leave", { timeout: 90_000 }, async (t) => {
  const { nodes, cleanup } = await createNodes(["a", "b", "c", "w"]);
  t.after(cleanup);
  const [a, b, c, w] = nodes;
  assert.ok(a !== undefined && b !== undefined && c !== undefined && w !== undefined);

  await t.test("swarm init makes a one-manager cluster led by the new manager", async () => {
    const manager = await a.init();
    assert.equal(manager.isLeader(), true);
    const cluster = manager.controlApi().getCluster();
    assert.equal(cluster.id, manager.clusterId);
    const self = manager.controlApi().getNode(manager.nodeId);
    assert.equal(self.spec.role, "manager");
    assert.equal(self.status.state, "ready");
    assert.equal(voters(manager), 1);
  });

  await t.test("managers joining with the manager token become raft voters", async () => {
    const token = a.running.joinTokens().manager;
    await b.join(a.address, token);
    // C joins through B, a follower: B relays the certificate request to the leader's CA,
    // and B's refusal of the raft join names the leader, where C then asks.
    await waitFor("b to know the leader", () => b.running.leaderAddress());
    await c.join(b.address, token);
    await waitFor("three voters on the leader", () => (voters(a.running) === 3 && a.running.raftStatus().members.size === 3 ? true : undefined), { timeoutMs: 20_000 });
    for (const node of [b, c]) {
      await waitFor(`${node.name} to see three voters`, () => (voters(node.running) === 3 ? true : undefined), { timeoutMs: 10_000 });
      assert.equal(node.running.clusterId, a.running.clusterId);
      assert.deepEqual(node.running.joinTokens(), a.running.joinTokens());
      assert.equal(node.running.leaderAddress(), a.address);
    }
  });

  await t.test("writes on the leader reach every manager's store", async () => {
    await a.running.controlApi().createService(serviceSpec("web", 1));
    for (const node of [b, c]) {
      await waitFor(`${node.name} to see the service`, () => node.running.store.view((tx) => tx.find("service", { by: "name", name: "web" })[0]), { timeoutMs: 10_000 });
    }
    const version = a.running.store.version;
    await waitFor("followers to apply up to the leader's version", () => (b.running.store.version >= version && c.running.store.version >= version ? true : undefined));
  });

  await t.test("a follower refuses writes with UnavailableError naming the leader", async () => {
    await assert.rejects(b.running.controlApi().createService(serviceSpec("refused", 1)), (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.match(error.message, new RegExp(a.address.replace(/\./g, "\\.")));
      return true;
    });
  });

  await t.test("a follower replays a REST request on the leader through ControlForward", async () => {
    a.running.setForwardExecutor((request) =>
      Promise.resolve({ status: 201, contentType: "application/json", body: Buffer.from(JSON.stringify({ path: request.path, query: request.query, body: request.body.toString() })) }),
    );
    const response = await b.running.forwardToLeader({ method: "POST", path: "/services/create", query: "x=1", contentType: "application/json", body: Buffer.from("{}") });
    assert.equal(response.status, 201);
    assert.deepEqual(JSON.parse(response.body.toString()), { path: "/services/create", query: "x=1", body: "{}" });
  });

  await t.test("a worker token cannot join raft", async () => {
    const workerToken = a.running.joinTokens().worker;
    await assert.rejects(
      joinManager({ dataDir: w.dataDir, logger, advertiseAddress: w.address, remoteAddresses: [a.address], joinToken: workerToken }),
      FailedPreconditionError,
    );
    // Even a client that skips that check is refused by the leader: Join needs a manager certificate.
    const worker = await joinWithToken({ address: a.address, token: workerToken, addresses: ["127.0.0.1"] });
    const credentials = channelCredentials({ ...worker, clusterId: worker.identity.clusterId });
    await assert.rejects(requestRaftJoin({ address: a.address, credentials, clock: systemClock, advertiseAddress: w.address }), PermissionDeniedError);
    assert.equal(a.running.managers().length, 3);
    const request = { method: "GET", path: "/info", query: "", contentType: "", body: Buffer.alloc(0) } as const;
    await assert.rejects(requestForward({ address: a.address, credentials, clock: systemClock, request }), PermissionDeniedError);
    assert.equal(await raftStreamStatus(a.address, credentials, a.running.raftId), grpcStatus.PERMISSION_DENIED);
  });

  let leader: TestNode | undefined;
  await t.test("when the leader stops, another manager leads within seconds and runs the orchestrators", async () => {
    const stoppedAt = Date.now();
    await a.stop();
    leader = await waitForLeader([b, c], 10_000);
    const elapsedMs = Date.now() - stoppedAt;
    assert.ok(elapsedMs < 5_000, `a new leader took ${elapsedMs} ms`);
    await leader.running.controlApi().createService(serviceSpec("api", 2));
    await waitFor("the new leader's orchestrator to create two tasks", () => (serviceTasks(leader?.running ?? b.running, "api") === 2 ? true : undefined), { timeoutMs: 10_000 });
  });

  await t.test("a restarted manager catches up from its peers, through a snapshot", async () => {
    assert.ok(leader !== undefined);
    // Enough writes while it is down that the log it needs is compacted away.
    for (let index = 0; index < missedServicesCount; index += 1) await leader.running.controlApi().createService(serviceSpec(`missed-${index}`, 0));
    const manager = await a.restart();
    await waitFor("the restarted manager to see what happened while it was down", () =>
      serviceTasks(manager, "api") === 2 && manager.store.view((tx) => tx.find("service").length) === missedServicesCount + 2 ? true : undefined,
      { timeoutMs: 15_000 },
    );
    assert.equal(manager.isLeader(), false);
    assert.equal(manager.leaderAddress(), leader?.address);
  });

  await t.test("a follower leaving shrinks raft to two voters", async () => {
    assert.ok(leader !== undefined);
    const current = leader.running;
    await a.running.leave();
    await a.stop();
    await waitFor("two voters on the leader", () => (voters(current) === 2 && current.raftStatus().members.size === 2 ? true : undefined), { timeoutMs: 10_000 });
    await assert.rejects(stat(join(a.dataDir, "swarm")), /ENOENT/);
    await current.controlApi().createService(serviceSpec("after-leave", 1));
    const other = leader === b ? c : b;
    await waitFor("the remaining follower to replicate", () => other.running.store.view((tx) => tx.find("service", { by: "name", name: "after-leave" })[0]), { timeoutMs: 10_000 });
  });

  await t.test("a leader leaving hands leadership over first; the last manager leaves only when forced", async () => {
    assert.ok(leader !== undefined);
    const leaving = leader;
    const other = leaving === b ? c : b;
    await leaving.running.leave();
    await leaving.stop();
    const successor = await waitForLeader([other], 10_000);
    await waitFor("one voter left", () => (voters(successor.running) === 1 && successor.running.raftStatus().members.size === 1 ? true : undefined), { timeoutMs: 10_000 });
    await successor.running.controlApi().createService(serviceSpec("alone", 1));
    await assert.rejects(successor.running.leave(), FailedPreconditionError);
    await successor.running.leave({ force: true });
    await successor.stop();
    await assert.rejects(stat(join(successor.dataDir, "swarm")), /ENOENT/);
  });
});
