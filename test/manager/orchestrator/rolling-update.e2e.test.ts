import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { asArray, asRecord, numberField, recordField, stringField, type JsonRecord } from "../../../src/cli/parse.js";
import { shoal, shoalOk, startTestDaemon, type TestDaemon } from "../../helpers/daemon.js";
import { waitFor } from "../../helpers/wait.js";

/**
 * Rolling updates on real shoald processes and real containers: the floor of running
 * tasks during start-first and stop-first rollouts, a failing new version (exit 1, and a
 * failing health check) stopping itself while the old version keeps running, and a drain
 * that moves tasks with the service's parallelism.
 */

const rootReason = process.getuid?.() === 0 ? false : "needs root (mounts, namespaces, cgroups)";
// Generous on a loaded 2-core machine: each task start is a runc create under conmon.
const rolloutTimeoutMs = 120_000;
const sampleIntervalMs = 100;

async function serviceOf(manager: TestDaemon, name: string): Promise<JsonRecord> {
  return asRecord(await manager.client().json("GET", `/services/${name}`), "service");
}

async function tasksOf(manager: TestDaemon, name: string): Promise<JsonRecord[]> {
  const filters = JSON.stringify({ service: [name] });
  return asArray(await manager.client().json("GET", "/tasks", { query: { filters } }), "tasks").map((task) => asRecord(task, "task"));
}

function envOf(task: JsonRecord): string[] {
  return asArray(recordField(recordField(task, "Spec"), "ContainerSpec")["Env"] ?? [], "Env").map(String);
}

/** Tasks meant to run that do run. */
function serving(tasks: readonly JsonRecord[]): JsonRecord[] {
  return tasks.filter((task) => stringField(task, "DesiredState") === "running" && stringField(recordField(task, "Status"), "State") === "running");
}

function updateState(service: JsonRecord): string {
  return stringField(recordField(service, "UpdateStatus"), "State");
}

/**
 * Polls the service until its update status is one of `states`, recording the fewest
 * serving tasks seen on the way; returns that floor and the final service.
 */
async function followRollout(manager: TestDaemon, name: string, states: readonly string[]): Promise<{ floor: number; service: JsonRecord; elapsedMs: number }> {
  const started = Date.now();
  let floor = Number.POSITIVE_INFINITY;
  const service = await waitFor(
    `service ${name} to reach ${states.join(" or ")}`,
    async () => {
      floor = Math.min(floor, serving(await tasksOf(manager, name)).length);
      const current = await serviceOf(manager, name);
      return states.includes(updateState(current)) ? current : undefined;
    },
    { timeoutMs: rolloutTimeoutMs, intervalMs: sampleIntervalMs },
  );
  return { floor, service, elapsedMs: Date.now() - started };
}

async function waitServing(manager: TestDaemon, name: string, count: number, predicate: (task: JsonRecord) => boolean = () => true): Promise<void> {
  await waitFor(`${count} serving tasks of ${name}`, async () => (serving(await tasksOf(manager, name)).filter(predicate).length === count ? true : undefined), {
    timeoutMs: rolloutTimeoutMs,
    intervalMs: 250,
  });
}

describe("rolling updates on one shoald", { skip: rootReason }, () => {
  let manager: TestDaemon;

  before(async () => {
    manager = await startTestDaemon();
    await shoalOk(manager, "image", "build-demo");
    await shoalOk(manager, "swarm", "init");
  });

  after(async () => {
    if (manager === undefined) return;
    await shoal(manager, "service", "rm", "web", "bad").catch(() => undefined);
    await manager.cleanup();
  });

  test("12 replicas, parallelism 3: start-first never drops below 12 serving, stop-first never below 9, and every slot ends on the new spec", async () => {
    await shoalOk(manager, "service", "create", "--detach", "--name", "web", "--replicas", "12", "--stop-grace-period", "1s", "shoal-demo/busybox", "sleep", "3600");
    await waitServing(manager, "web", 12);
    const common = ["--detach", "--update-parallelism", "3", "--update-monitor", "1s"];
    await shoalOk(manager, "service", "update", ...common, "--update-order", "start-first", "--env-add", "V=2", "web");
    const startFirst = await followRollout(manager, "web", ["completed", "paused"]);
    assert.equal(updateState(startFirst.service), "completed", stringField(recordField(startFirst.service, "UpdateStatus"), "Message"));
    assert.ok(startFirst.floor >= 12, `start-first: only ${startFirst.floor} tasks served at one point`);
    let live = serving(await tasksOf(manager, "web"));
    assert.equal(live.length, 12);
    assert.ok(live.every((task) => envOf(task).includes("V=2")), "every slot runs the new spec");
    assert.deepEqual(live.map((task) => numberField(task, "Slot")).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

    // Followed by the CLI this time: it prints the rollout per slot (plain lines, no TTY) until completed.
    const following = shoal(manager, "service", "update", ...common.slice(1), "--update-order", "stop-first", "--env-add", "V=3", "web");
    const stopFirst = await followRollout(manager, "web", ["completed", "paused"]);
    const shown = await following;
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^updating: \d+ out of 12 tasks on the current spec/mu);
    assert.match(shown.stdout, /^\d+\/12: \w{12} (running|shutdown) -> \w{12} \w+/mu);
    assert.match(shown.stdout, /^completed: 12 out of 12 tasks on the current spec \(update completed\)\nverify: Service converged\n$/mu);
    assert.equal(updateState(stopFirst.service), "completed");
    assert.ok(stopFirst.floor >= 9, `stop-first: only ${stopFirst.floor} tasks served at one point`);
    live = serving(await tasksOf(manager, "web"));
    assert.equal(live.length, 12);
    assert.ok(live.every((task) => envOf(task).includes("V=3")));
  });

  test("a new version that exits 1 pauses within the monitor window, naming the failure, while the old version keeps serving", async () => {
    await shoalOk(manager, "service", "create", "--detach", "--name", "bad", "--replicas", "4", "--stop-grace-period", "1s", "shoal-demo/busybox", "sleep", "3600");
    await waitServing(manager, "bad", 4);
    await shoalOk(manager, "service", "update", "--detach", "--update-parallelism", "1", "--update-monitor", "10s", "--args", "false", "bad");
    const paused = await followRollout(manager, "bad", ["paused", "completed"]);
    const status = recordField(paused.service, "UpdateStatus");
    assert.equal(stringField(status, "State"), "paused");
    assert.match(stringField(status, "Message"), /update paused: 1 of 4 updated tasks failed .*task \w+ \(slot \d+ on node .*\) failed: exit code 1/u);
    assert.ok(paused.elapsedMs < 10_000 + 5_000, `paused after ${paused.elapsedMs} ms`);
    const old = serving(await tasksOf(manager, "bad")).filter((task) => asArray(recordField(recordField(task, "Spec"), "ContainerSpec")["Args"] ?? [], "Args").includes("sleep"));
    // The new task runs for a moment before it exits, so the next slot may have started by then (as in swarm).
    assert.ok(old.length >= 2, `only ${old.length} tasks of the old version serve`);
    const pretty = await shoalOk(manager, "service", "inspect", "--pretty", "bad");
    assert.match(pretty, /UpdateStatus:\n State:\t\tpaused\n[^]* Message:\tupdate paused: 1 of 4/u);

    // `service rollback` goes back to the version that works.
    await shoalOk(manager, "service", "rollback", "--detach", "bad");
    const back = await followRollout(manager, "bad", ["rollback_completed", "rollback_paused"]);
    assert.equal(updateState(back.service), "rollback_completed", stringField(recordField(back.service, "UpdateStatus"), "Message"));
    await waitServing(manager, "bad", 4);

    // A failing health check, with rollback as the failure action: the update undoes itself.
    await shoalOk(
      manager, "service", "update", "--detach", "--health-cmd", "false", "--health-interval", "300ms", "--health-retries", "1",
      "--update-failure-action", "rollback", "--update-monitor", "10s", "bad",
    );
    const rolled = await followRollout(manager, "bad", ["rollback_completed", "rollback_paused", "paused", "completed"]);
    const message = stringField(recordField(rolled.service, "UpdateStatus"), "Message");
    assert.equal(updateState(rolled.service), "rollback_completed", message);
    assert.match(message, /update rolled back: 1 of 4 updated tasks failed .*health check failed/u);
    await waitServing(manager, "bad", 4, (task) => recordField(recordField(task, "Spec"), "ContainerSpec")["Healthcheck"] === undefined);
  });
});

describe("draining a node of a three-node swarm", { skip: rootReason }, () => {
  const daemons: TestDaemon[] = [];

  before(async () => {
    for (let index = 0; index < 3; index += 1) daemons.push(await startTestDaemon());
    for (const daemon of daemons) await shoalOk(daemon, "image", "build-demo");
    const [manager, ...workers] = daemons;
    assert.ok(manager !== undefined);
    await shoalOk(manager, "swarm", "init");
    const token = (await shoalOk(manager, "swarm", "join-token", "-q", "worker")).trim();
    for (const worker of workers) await shoalOk(worker, "swarm", "join", "--token", token, manager.grpcAddress);
  });

  after(async () => {
    const [manager] = daemons;
    if (manager !== undefined) await shoal(manager, "service", "rm", "spread").catch(() => undefined);
    for (const daemon of daemons.reverse()) await daemon.cleanup();
  });

  test("a node running 4 of 12 drains with the service never below 12 - parallelism, and comes back for new placements", async () => {
    const [manager, worker] = daemons;
    assert.ok(manager !== undefined && worker !== undefined);
    const workerId = stringField(asRecord(asRecord(await worker.client().json("GET", "/info"), "info")["Swarm"], "Swarm"), "NodeID");
    await waitFor("three ready nodes", async () => {
      const nodes = asArray(await manager.client().json("GET", "/nodes"), "nodes").map((node) => asRecord(node, "node"));
      return nodes.filter((node) => stringField(recordField(node, "Status"), "State") === "ready").length === 3 ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    await shoalOk(manager, "service", "create", "--detach", "--name", "spread", "--replicas", "12", "--stop-grace-period", "1s", "--update-parallelism", "2", "shoal-demo/busybox", "sleep", "3600");
    await waitServing(manager, "spread", 12);
    assert.equal(serving(await tasksOf(manager, "spread")).filter((task) => stringField(task, "NodeID") === workerId).length, 4);

    await shoalOk(manager, "node", "update", "--availability", "drain", workerId);
    let floor = Number.POSITIVE_INFINITY;
    await waitFor("the drained node to run nothing", async () => {
      const live = serving(await tasksOf(manager, "spread"));
      floor = Math.min(floor, live.length);
      return live.length === 12 && live.every((task) => stringField(task, "NodeID") !== workerId) ? true : undefined;
    }, { timeoutMs: rolloutTimeoutMs, intervalMs: sampleIntervalMs });
    assert.ok(floor >= 10, `only ${floor} tasks served during the drain`);
    assert.equal(updateState(await serviceOf(manager, "spread")), "", "a drain is not an update");

    await shoalOk(manager, "node", "update", "--availability", "active", workerId);
    await shoalOk(manager, "service", "scale", "--detach", "spread=15");
    await waitServing(manager, "spread", 15);
    assert.ok(serving(await tasksOf(manager, "spread")).some((task) => stringField(task, "NodeID") === workerId), "new tasks are placed on the reactivated node");
  });
});
