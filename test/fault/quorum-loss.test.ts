import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { asRecord, recordField } from "../../src/cli/parse.js";
import type { Lab } from "../../src/lab/index.js";
import { waitFor } from "../helpers/wait.js";
import { nodeIdOf, nodeRows, runningContainers, waitForRunning, type ApiTarget } from "../daemon/swarm-cluster.js";
import { labSkipReason, startTestLab, type TestLab } from "./support.js";

// A lab of three managers (m2 and m3 drained, so that killing them loses no task) and one
// worker. Runs in one sequence: each step needs the last.
describe("quorum loss: 2 of 3 managers killed, then --force-new-cluster on the survivor", { skip: labSkipReason }, () => {
  let testLab: TestLab;
  let lab: Lab;
  const on = (host: string): ApiTarget => ({ client: () => lab.client(host) });

  async function shoalOk(host: string, ...args: string[]): Promise<string> {
    const result = await lab.exec(host, ["shoal", ...args], { timeoutMs: 90_000 });
    assert.equal(result.code, 0, `${host}: shoal ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  }

  before(async () => {
    testLab = await startTestLab("f-quorum", { managers: 3, workers: 1 });
    lab = testLab.lab;
    for (const host of ["m2", "m3"]) await shoalOk("m1", "node", "update", "--availability", "drain", await nodeIdOf(on(host)));
  });

  after(async () => {
    await testLab?.close();
  });

  test("tasks keep running, writes name quorum loss, and the survivor recovers every service", async () => {
    await shoalOk("m1", "service", "create", "--detach", "--replicas", "4", "--name", "web", "shoal-demo/busybox", "sleep", "3600");
    await shoalOk("m1", "service", "create", "--detach", "--replicas", "1", "--name", "idle", "shoal-demo/busybox", "sleep", "3600");
    const before = await waitForRunning(on("m1"), "web", 4);
    await waitForRunning(on("m1"), "idle", 1);
    const containersBefore = [...(await runningContainers(on("w1"))), ...(await runningContainers(on("m1")))];

    await lab.kill("m2");
    await lab.kill("m3");
    // The leader steps down once it misses a quorum (check-quorum); writes then fail naming why.
    let refusal = "";
    await waitFor("a write refused for quorum loss", async () => {
      const result = await lab.exec("m1", ["shoal", "service", "scale", "--detach", "web=5"], { timeoutMs: 30_000 });
      assert.notEqual(result.code, 0, "a write succeeded without a quorum");
      refusal = result.stderr;
      return /quorum is lost/.test(result.stderr) ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    assert.match(refusal, /force-new-cluster/);
    const stillRunning = new Set([...(await runningContainers(on("w1"))), ...(await runningContainers(on("m1")))]);
    for (const id of containersBefore) assert.ok(stillRunning.has(id), `container ${id} stopped while the swarm had no quorum`);

    await shoalOk("m1", "swarm", "init", "--force-new-cluster");

    // Every object survived: both services with their specs, all four nodes.
    // The refused scale never committed: web still asks for 4.
    const web = asRecord(await lab.client("m1").json("GET", "/services/web"), "service");
    assert.deepEqual(recordField(recordField(web, "Spec"), "Mode")["Replicated"], { Replicas: 4 });
    assert.match(await shoalOk("m1", "service", "ls"), /\bidle\b/);
    const rows = await nodeRows(on("m1"));
    assert.equal(rows.length, 4);
    const self = await nodeIdOf(on("m1"));
    assert.deepEqual(rows.filter((row) => row.leader).map((row) => row.id), [self]);
    await waitFor("the killed managers marked down", async () => {
      const states = (await nodeRows(on("m1"))).filter((row) => row.id !== self && row.role === "manager").map((row) => row.state);
      return states.length === 2 && states.every((state) => state === "down") ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });

    // The same tasks still run in the same containers: nothing was restarted by the recovery.
    const afterRecovery = await waitForRunning(on("m1"), "web", 4);
    const describeTasks = (tasks: readonly { nodeId: string; containerId: string }[]): string =>
      JSON.stringify(tasks.map((task) => `${task.nodeId}:${task.containerId.slice(0, 12)}`).sort());
    assert.equal(describeTasks(afterRecovery), describeTasks(before));

    // Writable again: a scale converges on the worker and the survivor.
    await shoalOk("m1", "service", "scale", "--detach", "web=6");
    const scaled = await waitForRunning(on("m1"), "web", 6);
    const w1Id = await nodeIdOf(on("w1"));
    assert.ok(scaled.some((task) => task.nodeId === w1Id), "the worker did not reconnect to the recovered manager");

    // The lost managers show as unreachable managers until they are demoted and removed.
    const lost = (await nodeRows(on("m1"))).filter((row) => row.id !== self && row.role === "manager");
    assert.deepEqual(lost.map((row) => row.reachability), ["unreachable", "unreachable"]);
    await shoalOk("m1", "node", "demote", ...lost.map((row) => row.id));
    for (const row of lost) await shoalOk("m1", "node", "rm", row.id);
    assert.deepEqual((await nodeRows(on("m1"))).map((row) => row.id).sort(), [self, w1Id].sort());
  });

  test("a lost manager that comes back leaves with --force and is out of the swarm", async () => {
    await lab.start("m2");
    await shoalOk("m2", "swarm", "leave", "--force");
    const swarm = asRecord(asRecord(await lab.client("m2").json("GET", "/info"), "info")["Swarm"], "Swarm");
    assert.equal(swarm["LocalNodeState"], "inactive");
    // The recovered cluster never let it back in.
    assert.equal((await nodeRows(on("m1"))).length, 2);
  });

  test("the recovered manager restarts from its rewritten state as the one leader", async () => {
    await lab.stop("m1");
    await lab.start("m1");
    await waitFor("the restarted manager to lead", async () => ((await nodeRows(on("m1"))).some((row) => row.leader) ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    await shoalOk("m1", "service", "scale", "--detach", "web=3");
    await waitForRunning(on("m1"), "web", 3);
    assert.match(await shoalOk("m1", "service", "ls"), /\bidle\b/);
  });
});
