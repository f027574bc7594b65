import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { asRecord, booleanField } from "../../src/cli/parse.js";
import { labGrpcPort, type Lab, type LabExecResult } from "../../src/lab/index.js";
import { waitFor } from "../helpers/wait.js";
import { nodeIdOf, nodeRows, waitForRunning, type ApiTarget, type RunningTask } from "../daemon/swarm-cluster.js";
import { labSkipReason, startTestLab, type TestLab } from "./support.js";

/** A lab host by name, with its REST client. */
interface LabTarget extends ApiTarget {
  readonly name: string;
}

async function controlAvailable(daemon: ApiTarget): Promise<boolean> {
  return booleanField(asRecord(asRecord(await daemon.client().json("GET", "/info"), "info")["Swarm"], "Swarm"), "ControlAvailable");
}

/**
 * Node ids of the raft members as `node ls` shows them, and the leader. A manager that left
 * raft on its own shows as Unreachable (as in docker) until it is demoted: not a member.
 */
async function raftMembers(daemon: ApiTarget): Promise<{ members: string[]; leader: string | undefined }> {
  const rows = await nodeRows(daemon);
  const members = rows.filter((row) => row.reachability !== "" && row.reachability !== "unreachable");
  return { members: members.map((row) => row.id).sort(), leader: rows.find((row) => row.leader)?.id };
}

async function waitForMembers(daemon: ApiTarget, expected: readonly string[], what: string): Promise<void> {
  let last = "";
  await waitFor(what, async () => {
    const { members, leader } = await raftMembers(daemon);
    last = JSON.stringify({ members, leader });
    return JSON.stringify(members) === JSON.stringify([...expected].sort()) && leader !== undefined ? true : undefined;
  }, { timeoutMs: 45_000, intervalMs: 250 }).catch((error: unknown) => {
    throw new Error(`${what}: raft members ${last}, expected ${JSON.stringify([...expected].sort())}`, { cause: error });
  });
}

function containers(tasks: readonly RunningTask[]): string {
  return JSON.stringify(tasks.map((task) => task.containerId).sort());
}

// A lab of one manager and two workers; each step runs while a 3-replica service runs and
// must leave its containers alone.
describe("membership changes while a service runs", { skip: labSkipReason }, () => {
  let testLab: TestLab;
  let lab: Lab;
  const on = (name: string): LabTarget => ({ name, client: () => lab.client(name) });
  const m1 = on("m1");
  const w1 = on("w1");
  const w2 = on("w2");
  const ids = { m1: "", w1: "", w2: "" };
  let running: RunningTask[] = [];

  function shoal(host: LabTarget, ...args: string[]): Promise<LabExecResult> {
    return lab.exec(host.name, ["shoal", ...args], { timeoutMs: 90_000 });
  }

  async function shoalOk(host: LabTarget, ...args: string[]): Promise<string> {
    const result = await shoal(host, ...args);
    assert.equal(result.code, 0, `shoal ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  }

  before(async () => {
    testLab = await startTestLab("f-members", { managers: 1, workers: 2 });
    lab = testLab.lab;
    ids.m1 = await nodeIdOf(m1);
    ids.w1 = await nodeIdOf(w1);
    ids.w2 = await nodeIdOf(w2);
    await shoalOk(m1, "service", "create", "--detach", "--replicas", "3", "--name", "web", "shoal-demo/busybox", "sleep", "3600");
    running = await waitForRunning(m1, "web", 3);
  });

  after(async () => {
    await testLab?.close();
  });

  test("promoting two workers makes them raft voters that serve the API; tasks keep running", async () => {
    await shoalOk(m1, "node", "promote", ids.w1, ids.w2);
    await waitForMembers(m1, [ids.m1, ids.w1, ids.w2], "three raft members after promotion");
    await waitFor("the promoted nodes serve the manager API", async () => ((await controlAvailable(w1)) && (await controlAvailable(w2)) ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    // A promoted node's view of the membership matches the leader's.
    await waitForMembers(w2, [ids.m1, ids.w1, ids.w2], "the membership as a promoted node sees it");
    assert.equal(containers(await waitForRunning(w1, "web", 3)), containers(running));
  });

  test("demoting the leader hands leadership over; it runs on as a worker with its tasks", async () => {
    await shoalOk(m1, "node", "demote", ids.m1);
    await waitForMembers(w1, [ids.w1, ids.w2], "two raft members after demoting the leader");
    await waitFor("the demoted node to stop serving the manager API", async () => ((await controlAvailable(m1)) ? undefined : true), { timeoutMs: 30_000, intervalMs: 250 });
    const { leader } = await raftMembers(w1);
    assert.ok(leader === ids.w1 || leader === ids.w2, `leader ${String(leader)}`);
    const rows = await nodeRows(w1);
    assert.equal(rows.find((row) => row.id === ids.m1)?.role, "worker");
    await waitFor("the demoted node ready as a worker", async () => ((await nodeRows(w1)).find((row) => row.id === ids.m1)?.state === "ready" ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    assert.equal(containers(await waitForRunning(w1, "web", 3)), containers(running));
  });

  test("demoting down to one manager works; demoting the last one is refused", async () => {
    await shoalOk(w1, "node", "demote", ids.w2);
    await waitForMembers(w1, [ids.w1], "one raft member");
    const refused = await shoal(w1, "node", "demote", ids.w1);
    assert.notEqual(refused.code, 0, "the last manager was demoted");
    assert.match(refused.stderr, /last manager/);
    // Writes still work with one manager, and the service converges.
    await shoalOk(w1, "service", "scale", "web=4");
    const scaled = await waitForRunning(w1, "web", 4);
    for (const id of running.map((task) => task.containerId)) {
      assert.ok(scaled.some((task) => task.containerId === id), `container ${id} was replaced by the membership changes`);
    }
  });

  test("a node rejoins as a manager and leaves raft again; the service stays converged", async () => {
    const downThenRemove = async (nodeId: string): Promise<void> => {
      await waitFor(`node ${nodeId} down`, async () => ((await nodeRows(w1)).find((row) => row.id === nodeId)?.state === "down" ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 250,
      });
      await shoalOk(w1, "node", "rm", nodeId);
    };
    await shoalOk(m1, "swarm", "leave");
    await downThenRemove(ids.m1);
    const token = (await shoalOk(w1, "swarm", "join-token", "-q", "manager")).trim();
    await shoalOk(m1, "swarm", "join", "--token", token, `${lab.host("w1").address}:${labGrpcPort}`);
    const rejoined = await nodeIdOf(m1);
    await waitForMembers(w1, [ids.w1, rejoined], "the rejoined manager in raft");
    assert.equal(await controlAvailable(m1), true);
    await waitForRunning(w1, "web", 4);
    await shoalOk(m1, "swarm", "leave", "--force");
    await waitForMembers(w1, [ids.w1], "the manager out of raft after leaving");
    assert.equal((await nodeRows(w1)).find((row) => row.id === rejoined)?.reachability, "unreachable");
    // Still a manager in the node list: it must be demoted before it can be removed.
    const refused = await shoal(w1, "node", "rm", "--force", rejoined);
    assert.notEqual(refused.code, 0, "a manager node was removed without being demoted");
    await shoalOk(w1, "node", "demote", rejoined);
    await downThenRemove(rejoined);
    assert.deepEqual((await nodeRows(w1)).map((row) => row.id).sort(), [ids.w1, ids.w2].sort());
    await waitForRunning(w1, "web", 4);
  });
});
