import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { DaemonResponseError } from "../../src/cli/client.js";
import { asRecord, booleanField, numberField, recordField } from "../../src/cli/parse.js";
import { labGrpcPort, type Lab } from "../../src/lab/index.js";
import { nodeIdOf, nodeRows, type ApiTarget, type NodeRow } from "../daemon/swarm-cluster.js";
import { waitFor } from "../helpers/wait.js";
import { labSkipReason, startTestLab, type TestLab } from "./support.js";

/**
 * A worker hears `node promote` on its session with the leader (no certificate polling), so
 * it must be a reachable raft member well within the 4 s the old polling alone could take.
 */
const promotionDeadlineMs = 2_000;

async function controlAvailable(daemon: ApiTarget): Promise<boolean> {
  return booleanField(asRecord(asRecord(await daemon.client().json("GET", "/info"), "info")["Swarm"], "Swarm"), "ControlAvailable");
}

/** Attempts at a node update that races the node's own status writes (as `shoal node promote` makes). */
const setRoleAttemptsMax = 5;

/**
 * Sets the node's role through the REST API, as `shoal node promote|demote` does: at the
 * node's current version, inspecting again when a status write got in between.
 */
async function setRole(daemon: ApiTarget, nodeId: string, role: "manager" | "worker"): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const node = asRecord(await daemon.client().json("GET", `/nodes/${nodeId}`), "node");
    const version = numberField(recordField(node, "Version"), "Index");
    const spec = recordField(node, "Spec");
    try {
      await daemon.client().json("POST", `/nodes/${nodeId}/update`, { query: { version: String(version) }, body: { ...spec, Role: role } });
      return;
    } catch (error) {
      if (!(error instanceof DaemonResponseError && error.status === 409) || attempt >= setRoleAttemptsMax) throw error;
    }
  }
}

describe("role changes and join availability", { skip: labSkipReason }, () => {
  let testLab: TestLab;
  let lab: Lab;
  const on = (name: string): ApiTarget => ({ client: () => lab.client(name) });
  const m1 = on("m1");
  const w1 = on("w1");
  const w2 = on("w2");

  before(async () => {
    testLab = await startTestLab("f-roles", { managers: 1, workers: 2 });
    lab = testLab.lab;
  });

  after(async () => {
    await testLab?.close();
  });

  /**
   * Gives w1 (nodeId) `role` and answers the ms until it has settled: a reachable raft member serving
   * the manager API, or out of raft and no longer serving it.
   */
  async function changeRole(nodeId: string, role: "manager" | "worker"): Promise<number> {
    const started = Date.now();
    await setRole(m1, nodeId, role);
    const manager = role === "manager";
    await waitFor(
      manager ? "the promoted worker to be a reachable raft member serving the manager API" : "the demoted manager out of raft, no longer serving the manager API",
      async () => {
        const row = (await nodeRows(m1)).find((candidate) => candidate.id === nodeId);
        const settled = row?.role === role && row.reachability === (manager ? "reachable" : "") && (await controlAvailable(w1)) === manager;
        return settled ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    return Date.now() - started;
  }

  // Three rounds: with 4 s certificate polling, every promotion beating the deadline by luck is unlikely.
  test(`a promoted worker is a reachable manager within ${promotionDeadlineMs} ms; a demoted one leaves raft on its store's event`, async (t) => {
    const w1Id = await nodeIdOf(w1);
    for (const round of [1, 2, 3]) {
      const promotedMs = await changeRole(w1Id, "manager");
      t.diagnostic(`round ${round}: promote -> reachable manager ${promotedMs} ms`);
      assert.ok(promotedMs < promotionDeadlineMs, `round ${round}: the promotion took ${promotedMs} ms`);
      // The leader tells reachability first-hand, itself included.
      assert.equal((await nodeRows(m1)).find((candidate) => candidate.leader)?.reachability, "reachable");
      const demotedMs = await changeRole(w1Id, "worker");
      t.diagnostic(`round ${round}: demote -> out of raft ${demotedMs} ms`);
      assert.ok(demotedMs < promotionDeadlineMs, `round ${round}: the demotion took ${demotedMs} ms`);
      await waitFor("the demoted node ready as a worker", async () => ((await nodeRows(m1)).find((row) => row.id === w1Id)?.state === "ready" ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 50,
      });
    }
  });

  /** `swarm leave` then `swarm join --availability ...` on w2; the new node as the leader lists it once ready. */
  async function rejoinW2(tokenRole: "Worker" | "Manager", availability: string): Promise<NodeRow> {
    const leave = await lab.exec("w2", ["shoal", "swarm", "leave"], { timeoutMs: 30_000 });
    assert.equal(leave.code, 0, leave.stderr);
    const token = recordField(asRecord(await m1.client().json("GET", "/swarm"), "swarm"), "JoinTokens")[tokenRole];
    assert.equal(typeof token, "string");
    const join = await lab.exec("w2", ["shoal", "swarm", "join", "--availability", availability, "--token", String(token), `${lab.host("m1").address}:${labGrpcPort}`], {
      timeoutMs: 30_000,
    });
    assert.equal(join.code, 0, join.stderr);
    const w2Id = await nodeIdOf(w2);
    return waitFor("the rejoined node ready", async () => {
      const found = (await nodeRows(m1)).find((candidate) => candidate.id === w2Id);
      return found?.state === "ready" ? found : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100 });
  }

  test("swarm join --availability registers the node with it: drain as a worker, pause as a manager", async () => {
    const worker = await rejoinW2("Worker", "drain");
    assert.deepEqual([worker.role, worker.availability], ["worker", "drain"]);
    const manager = await rejoinW2("Manager", "pause");
    assert.deepEqual([manager.role, manager.availability], ["manager", "pause"]);
  });

  test("a follower shows the other followers' reachability as the leader sees it, not unknown", async () => {
    // w2 joined as a manager above; with w1 promoted, w2 is a follower that never hears from w1.
    const w1Id = await nodeIdOf(w1);
    await changeRole(w1Id, "manager");
    await waitFor("w2 to list w1 as a reachable manager", async () => {
      const rows = await nodeRows(w2);
      return rows.find((row) => row.id === w1Id)?.reachability === "reachable" && rows.filter((row) => row.role === "manager").every((row) => row.reachability === "reachable") ? true : undefined;
    }, { timeoutMs: 10_000, intervalMs: 50 });
  });
});
