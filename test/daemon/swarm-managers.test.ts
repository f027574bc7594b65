import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, describe, test } from "node:test";

import { asArray, asRecord, stringField } from "../../src/cli/parse.js";
import { shoal, shoalOk, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { waitFor } from "../helpers/wait.js";

const rootReason = process.getuid?.() === 0 ? false : "needs root (mounts, namespaces, cgroups)";

async function swarmInfo(daemon: TestDaemon): Promise<Record<string, unknown>> {
  return asRecord(asRecord(await daemon.client().json("GET", "/info"), "info")["Swarm"], "Swarm");
}

describe("two managers: follower forwarding and restart", { skip: rootReason }, () => {
  let leader: TestDaemon;
  let follower: TestDaemon;
  const dirs: string[] = [];

  before(async () => {
    leader = await startTestDaemon();
    follower = await startTestDaemon();
    dirs.push(follower.dir);
    await shoalOk(leader, "image", "build-demo");
    await shoalOk(follower, "image", "build-demo");
    await shoalOk(leader, "swarm", "init");
    const token = (await shoalOk(leader, "swarm", "join-token", "-q", "manager")).trim();
    await shoalOk(follower, "swarm", "join", "--token", token, leader.grpcAddress);
  });

  after(async () => {
    if (leader !== undefined) await shoal(leader, "service", "rm", "fw").catch(() => undefined);
    await follower?.cleanup();
    await leader?.cleanup();
    // startTestDaemon({ dir }) leaves the folder to its caller.
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test("the cluster lists exactly the two managers, both ready (no placeholder node from the join)", async () => {
    assert.equal((await swarmInfo(follower))["ControlAvailable"], true);
    let last = "";
    await waitFor("two ready nodes", async () => {
      const nodes = asArray(await leader.client().json("GET", "/nodes"), "nodes").map((item) => asRecord(item, "node"));
      const states = nodes.map((node) => stringField(asRecord(node["Status"], "status"), "State"));
      last = JSON.stringify(states);
      return states.length === 2 && states.every((state) => state === "ready") ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 }).catch((error: unknown) => {
      throw new Error(`node states ${last}`, { cause: error });
    });
  });

  test("a follower manager forwards service create to the leader; the tasks run on both nodes", async () => {
    await shoalOk(follower, "service", "create", "--detach", "--replicas", "2", "--name", "fw", "shoal-demo/busybox", "sleep", "3600");
    const onLeader = asRecord(await leader.client().json("GET", "/services/fw"), "service");
    assert.equal(asRecord(onLeader["Spec"], "spec")["Name"], "fw");
    const nodes = new Set([stringField(await swarmInfo(leader), "NodeID"), stringField(await swarmInfo(follower), "NodeID")]);
    let last = "";
    await waitFor("one running fw task on each manager", async () => {
      const filters = JSON.stringify({ service: ["fw"], "desired-state": ["running"] });
      const tasks = asArray(await follower.client().json("GET", "/tasks", { query: { filters } }), "tasks").map((item) => asRecord(item, "task"));
      const running = tasks.filter((task) => stringField(asRecord(task["Status"], "status"), "State") === "running").map((task) => stringField(task, "NodeID"));
      last = `running on ${JSON.stringify(running)}, managers ${JSON.stringify([...nodes])}`;
      return running.length === 2 && new Set(running).size === 2 && running.every((id) => nodes.has(id)) ? true : undefined;
    }, { timeoutMs: 90_000, intervalMs: 250 }).catch((error: unknown) => {
      throw new Error(`${last}`, { cause: error });
    });
  });

  test("a service the leader acknowledged is visible at once through the follower", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `seen${i}`);
    try {
      for (const name of names) {
        const spec = { Name: name, TaskTemplate: { ContainerSpec: { Image: "shoal-demo/busybox" } }, Mode: { Replicated: { Replicas: 0 } } };
        await leader.client().json("POST", "/services/create", { body: spec });
        // Without the follower's read barrier this races the leader's commit notice.
        const read = asRecord(await follower.client().json("GET", `/services/${name}`), "service");
        assert.equal(asRecord(read["Spec"], "spec")["Name"], name);
      }
    } finally {
      for (const name of names) await leader.client().json("DELETE", `/services/${name}`).catch(() => undefined);
    }
  });

  test("a restarted manager resumes its role on its advertised port and still serves the cluster", async () => {
    const nodeId = stringField(await swarmInfo(follower), "NodeID");
    const address = follower.grpcAddress;
    await follower.stop();
    follower = await startTestDaemon({ dir: follower.dir });
    assert.equal(follower.grpcAddress, address, "the restarted manager listens on another port than it advertised");
    const info = await swarmInfo(follower);
    assert.equal(info["LocalNodeState"], "active");
    assert.equal(info["NodeID"], nodeId);
    assert.equal(info["ControlAvailable"], true);
    await waitFor("the restarted manager to see the service", async () => {
      const listing = await shoalOk(follower, "service", "ls");
      return /\bfw\b/.test(listing) ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    // A write through the restarted follower proves it rejoined raft (forwarding needs a known leader).
    await waitFor("a scale through the restarted follower", async () => {
      const result = await shoal(follower, "service", "scale", "fw=3");
      return result.code === 0 ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const spec = asRecord(asRecord(await leader.client().json("GET", "/services/fw"), "service")["Spec"], "spec");
    assert.deepEqual(asRecord(spec["Mode"], "mode")["Replicated"], { Replicas: 3 });
  });

  test("a manager leaves only with --force; then it is inactive", async () => {
    const refused = await shoal(follower, "swarm", "leave");
    assert.notEqual(refused.code, 0, "a manager left without --force");
    assert.match(refused.stderr, /--force/);
    await shoalOk(follower, "swarm", "leave", "--force");
    assert.equal((await swarmInfo(follower))["LocalNodeState"], "inactive");
    assert.equal((await swarmInfo(follower))["ControlAvailable"], false);
  });
});
