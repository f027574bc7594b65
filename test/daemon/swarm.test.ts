import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { after, before, describe, test } from "node:test";

import { asArray, asRecord, stringField } from "../../src/cli/parse.js";
import { shoal, shoalOk, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { run, type RunResult } from "../helpers/run.js";
import { waitFor } from "../helpers/wait.js";

const dockerCli = "/usr/local/bin/docker";
const rootReason = process.getuid?.() === 0 ? false : "needs root (mounts, namespaces, cgroups)";
// Generous on a loaded 2-core machine: a task start is a runc create under conmon.
const convergeTimeoutMs = 90_000;

/** Running tasks (desired and observed) of a service, counted per node id. */
async function runningPerNode(manager: TestDaemon, serviceName: string): Promise<Map<string, number>> {
  const filters = JSON.stringify({ service: [serviceName], "desired-state": ["running"] });
  const tasks = asArray(await manager.client().json("GET", "/tasks", { query: { filters } }), "tasks");
  const counts = new Map<string, number>();
  for (const item of tasks) {
    const task = asRecord(item, "task");
    if (stringField(asRecord(task["Status"], "task status"), "State") !== "running") continue;
    const nodeId = stringField(task, "NodeID");
    counts.set(nodeId, (counts.get(nodeId) ?? 0) + 1);
  }
  return counts;
}

/** Waits until exactly `expected` (node id -> count) tasks of the service run. */
async function waitForSpread(manager: TestDaemon, serviceName: string, expected: ReadonlyMap<string, number>): Promise<void> {
  let last = new Map<string, number>();
  try {
    await waitFor(
      `service ${serviceName} to run ${JSON.stringify([...expected])}`,
      async () => {
        last = await runningPerNode(manager, serviceName);
        const same = last.size === expected.size && [...expected].every(([node, count]) => last.get(node) === count);
        return same ? true : undefined;
      },
      { timeoutMs: convergeTimeoutMs, intervalMs: 250 },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen ${JSON.stringify([...last])}`, { cause: error });
  }
}

function evenly(nodeIds: readonly string[], perNode: number): Map<string, number> {
  return new Map(nodeIds.map((nodeId) => [nodeId, perNode]));
}

describe("swarm mode across three shoald processes", { skip: rootReason }, () => {
  let manager: TestDaemon;
  const workers: TestDaemon[] = [];
  const nodeIds = new Map<TestDaemon, string>();
  let killed: TestDaemon | undefined;
  let revived: TestDaemon | undefined;

  before(async () => {
    manager = await startTestDaemon();
    for (let index = 0; index < 2; index += 1) workers.push(await startTestDaemon());
    for (const daemon of [manager, ...workers]) await shoalOk(daemon, "image", "build-demo");
    // No port, as docker users write it: the daemon's gRPC listen port is advertised.
    await shoalOk(manager, "swarm", "init", "--advertise-addr", "127.0.0.1");
    const token = (await shoalOk(manager, "swarm", "join-token", "-q", "worker")).trim();
    for (const worker of workers) await shoalOk(worker, "swarm", "join", "--token", token, manager.grpcAddress);
  });

  after(async () => {
    // Services first, so that no node starts replacements while the others are cleaned up.
    if (manager !== undefined) await shoal(manager, "service", "rm", "web", "dweb").catch(() => undefined);
    for (const worker of workers) {
      if (worker === killed) continue;
      await worker.cleanup();
    }
    if (killed !== undefined) {
      // A killed daemon's containers outlive it: a fresh daemon on its dir adopts and removes them.
      revived ??= await startTestDaemon({ dir: killed.dir });
      await revived.cleanup();
      await rm(killed.dir, { recursive: true, force: true });
    }
    await manager?.cleanup();
  });

  /** The CA-issued node id of a daemon (its /info NodeID). */
  async function swarmNodeId(daemon: TestDaemon): Promise<string> {
    const cached = nodeIds.get(daemon);
    if (cached !== undefined) return cached;
    const info = asRecord(await daemon.client().json("GET", "/info"), "info");
    const swarm = asRecord(info["Swarm"], "Swarm");
    assert.equal(swarm["LocalNodeState"], "active");
    const nodeId = stringField(swarm, "NodeID");
    nodeIds.set(daemon, nodeId);
    return nodeId;
  }

  test("/info reports the swarm role of each node", async () => {
    const managerInfo = asRecord(asRecord(await manager.client().json("GET", "/info"), "info")["Swarm"], "Swarm");
    assert.equal(managerInfo["ControlAvailable"], true);
    assert.equal(managerInfo["NodeAddr"], "127.0.0.1");
    const self = asRecord(await manager.client().json("GET", `/nodes/${await swarmNodeId(manager)}`), "node");
    assert.equal(asRecord(self["ManagerStatus"], "ManagerStatus")["Addr"], manager.grpcAddress, "the advertised address carries the listen port");
    const swarmId = stringField(asRecord(await manager.client().json("GET", "/swarm"), "swarm"), "ID");
    assert.equal(asRecord(managerInfo["Cluster"], "Cluster")["ID"], swarmId, "a manager's /info names its cluster");
    const workerInfo = asRecord(asRecord(await workers[0]?.client().json("GET", "/info"), "info")["Swarm"], "Swarm");
    assert.equal(workerInfo["LocalNodeState"], "active");
    assert.equal(workerInfo["ControlAvailable"], false);
    const refused = await shoal(workers[0] ?? manager, "node", "ls");
    assert.notEqual(refused.code, 0, "a worker served node ls");
    assert.match(refused.stderr, /not a swarm manager/);
  });

  test("node ls shows the manager and both workers ready", async () => {
    const ids = await Promise.all([manager, ...workers].map(swarmNodeId));
    await waitFor("three ready nodes", async () => {
      const listing = await shoalOk(manager, "node", "ls");
      const ready = ids.filter((id) => new RegExp(`^${id.slice(0, 12)}.*\\bReady\\b`, "m").test(listing));
      return ready.length === 3 ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
  });

  test("a replicated service spreads 2 per node, scales to 9 and 3, and moves off a killed worker", async () => {
    const nodes = [manager, ...workers];
    const byId = new Map<TestDaemon, string>();
    for (const node of nodes) byId.set(node, await swarmNodeId(node));
    const spread = (perNode: number): Map<string, number> => evenly([...byId.values()], perNode);

    await shoalOk(manager, "service", "create", "--detach", "--replicas", "6", "--name", "web", "shoal-demo/busybox", "sleep", "3600");
    await waitForSpread(manager, "web", spread(2));
    const serviceId = stringField(asRecord(await manager.client().json("GET", "/services/web"), "service"), "ID");
    for (const node of nodes) {
      // The store's "running" comes from the agents: check that each engine really runs two.
      const containers = asArray(await node.client().json("GET", "/containers/json"), "containers");
      const ours = containers.filter((item) => asRecord(asRecord(item, "container")["Labels"], "labels")["com.docker.swarm.service.id"] === serviceId);
      assert.equal(ours.length, 2, `running containers of web on ${byId.get(node) ?? ""}`);
    }
    await shoalOk(manager, "service", "scale", "web=9");
    await waitForSpread(manager, "web", spread(3));
    await shoalOk(manager, "service", "scale", "web=3");
    await waitForSpread(manager, "web", spread(1));

    const victim = workers[1];
    assert.ok(victim !== undefined);
    killed = victim;
    const killedAt = Date.now();
    victim.process.kill("SIGKILL");
    const victimId = byId.get(victim) ?? "";
    await waitFor("the killed worker to be down", async () => {
      const node = asRecord(await manager.client().json("GET", `/nodes/${victimId}`), "node");
      return stringField(asRecord(node["Status"], "node status"), "State") === "down" ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const downAt = Date.now();
    const survivors = nodes.filter((node) => node !== victim);
    await waitFor("3 running tasks on the surviving nodes", async () => {
      const counts = await runningPerNode(manager, "web");
      const total = survivors.reduce((sum, node) => sum + (counts.get(byId.get(node) ?? "") ?? 0), 0);
      return total === 3 && !counts.has(victimId) ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const movedAt = Date.now();
    process.stdout.write(`# node down after ${downAt - killedAt} ms; tasks replaced ${movedAt - downAt} ms after that\n`);
  });

  test("the docker CLI creates and scales a service", { skip: existsSync(dockerCli) ? false : `${dockerCli} is not installed` }, async () => {
    const docker = (...args: string[]): Promise<RunResult> => run(dockerCli, args, { env: { DOCKER_HOST: manager.host }, timeoutMs: 90_000 });
    const created = await docker("service", "create", "--detach", "--replicas", "2", "--name", "dweb", "shoal-demo/busybox", "sleep", "3600");
    assert.equal(created.code, 0, created.stderr);
    const alive = await Promise.all([manager, ...workers].filter((node) => node !== killed).map(swarmNodeId));
    await waitForSpread(manager, "dweb", evenly(alive, 1));
    const scaled = await docker("service", "scale", "--detach", "dweb=4");
    assert.equal(scaled.code, 0, scaled.stderr);
    await waitForSpread(manager, "dweb", evenly(alive, 2));
  });

  test("a worker leaves the swarm: its task containers go, its /info goes inactive and the manager sees it down", async () => {
    const worker = workers[0];
    assert.ok(worker !== undefined);
    const nodeId = await swarmNodeId(worker);
    const taskContainers = async (): Promise<number> => {
      const list = asArray(await worker.client().json("GET", "/containers/json", { query: { all: 1 } }), "containers");
      return list.filter((item) => asRecord(asRecord(item, "container")["Labels"], "labels")["com.docker.swarm.task.id"] !== undefined).length;
    };
    assert.ok((await taskContainers()) > 0, "the worker ran no task before leaving");
    await shoalOk(worker, "swarm", "leave");
    assert.equal(await taskContainers(), 0, "task containers survived swarm leave");
    const info = asRecord(asRecord(await worker.client().json("GET", "/info"), "info")["Swarm"], "Swarm");
    assert.equal(info["LocalNodeState"], "inactive");
    const again = await shoal(worker, "swarm", "leave");
    assert.notEqual(again.code, 0, "a second leave succeeded");
    await waitFor("the manager to see the worker down", async () => {
      const node = asRecord(await manager.client().json("GET", `/nodes/${nodeId}`), "node");
      return stringField(asRecord(node["Status"], "node status"), "State") === "down" ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
  });

  test("the killed worker's daemon restarted on its data dir rejoins as the same node", async () => {
    assert.ok(killed !== undefined, "the kill test did not run");
    const nodeId = nodeIds.get(killed);
    assert.ok(nodeId !== undefined);
    revived = await startTestDaemon({ dir: killed.dir });
    const info = asRecord(asRecord(await revived.client().json("GET", "/info"), "info")["Swarm"], "Swarm");
    assert.equal(info["LocalNodeState"], "active");
    assert.equal(info["NodeID"], nodeId);
    await waitFor("the manager to see the revived worker ready", async () => {
      const node = asRecord(await manager.client().json("GET", `/nodes/${nodeId}`), "node");
      return stringField(asRecord(node["Status"], "node status"), "State") === "ready" ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
  });
});
