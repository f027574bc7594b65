import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { errorMessage } from "../../src/common/errors.js";
import {
  addServiceLabel,
  createSleepService,
  hostServiceContainers,
  inspectService,
  type Lab,
  leaderElections,
  listServiceTasks,
  nodeIdsByHost,
  runningTasks,
  termsWithTwoLeaders,
} from "../../src/lab/index.js";
import { waitFor } from "../helpers/wait.js";
import { labSkipReason, startTestLab, type TestLab } from "./support.js";

/**
 * Held after the new leader is known: beyond the election timeout (1-2 s) and beyond the
 * new leader's grace for sessions of the old one's workers (3 heartbeat periods, <= 3.75 s),
 * so workers that do not leave the stalled leader in time are marked down.
 */
const pauseMs = 5_000;

function managers(lab: Lab): string[] {
  return lab.hosts.filter((host) => host.role === "manager").map((host) => host.name);
}

/** The leader named by every host in `among` (they must agree), other than `not`. */
async function leaderAmong(lab: Lab, among: readonly string[], not: string): Promise<string> {
  return await waitFor(`a leader other than ${not} named by ${among.join(",")}`, async () => {
    const named = new Set<string>();
    for (const host of among) named.add((await lab.nodes({ from: host, signal: AbortSignal.timeout(2_000) })).find((node) => node.leader)?.hostname ?? "");
    const [only] = named;
    return named.size === 1 && only !== undefined && only !== "" && only !== not ? only : undefined;
  }, { timeoutMs: 15_000, intervalMs: 50 });
}

/** Every manager, asked itself, names the same leader and holds the last write on the probe service. */
async function waitConverged(lab: Lab, key: string): Promise<void> {
  await waitFor("every manager to agree on the leader and to hold the last write", async () => {
    const leaders = new Set<string>();
    for (const host of managers(lab)) {
      if ((await inspectService(lab.client(host), "probe")).labels[key] !== "1") return undefined;
      leaders.add((await lab.nodes({ from: host })).find((node) => node.leader)?.hostname ?? "");
    }
    return leaders.size === 1 && !leaders.has("") ? true : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200 });
}

describe("partitions and stalls", { skip: labSkipReason }, () => {
  let testLab: TestLab;
  let lab: Lab;
  let workloadId: string;
  let stall: { before: string[]; after: string[] } | undefined;

  before(async () => {
    testLab = await startTestLab("f-part", { managers: 3, workers: 2 });
    lab = testLab.lab;
    await createSleepService(lab.client("m1"), "probe", { replicas: 0 });
    workloadId = await createSleepService(lab.client("m1"), "work", { replicas: 2, constraints: ["node.role==worker"] });
    await waitFor("two running work tasks", async () => (runningTasks(await listServiceTasks(lab.client("m1"), "work")).length === 2 ? true : undefined), { timeoutMs: 60_000, intervalMs: 200 });
  });

  after(async () => {
    await lab?.heal().catch(() => undefined);
    await testLab?.close();
  });

  test("a leader partitioned into the minority refuses writes naming quorum; the majority serves; after heal it catches up", async () => {
    const old = await lab.leader();
    const majority = managers(lab).filter((name) => name !== old);
    try {
      await lab.partition([[old], [...majority, "w1", "w2"]]);
      // A write already in flight when the leader steps down may or may not have reached a
      // majority, and its error says so; once the leader knows it is cut off, writes are
      // refused for quorum loss.
      const inFlight = await addServiceLabel(lab.client(old), "probe", "minority", AbortSignal.timeout(20_000)).then(() => undefined, (error: unknown) => error);
      assert.ok(inFlight !== undefined, "the isolated leader acknowledged a write");
      const refused = await addServiceLabel(lab.client(old), "probe", "minority-2", AbortSignal.timeout(20_000)).then(() => undefined, (error: unknown) => error);
      assert.ok(refused !== undefined, "the isolated manager acknowledged a write");
      assert.match(errorMessage(refused), /quorum/i);
      const leader = await leaderAmong(lab, majority, old);
      await addServiceLabel(lab.client(majority.find((name) => name !== leader) ?? leader), "probe", "majority");
    } finally {
      await lab.heal();
    }
    await waitConverged(lab, "majority");
    assert.equal((await inspectService(lab.client(old), "probe")).labels["minority-2"], undefined, "a refused write was applied");
    assert.deepEqual(termsWithTwoLeaders(await leaderElections(lab)), []);
  });

  test("SIGSTOP of the leader beyond the election timeout: one leader per term; on SIGCONT it follows; workers run only what the new leader assigns", async () => {
    const old = await lab.leader();
    const rest = managers(lab).filter((name) => name !== old);
    const before = runningTasks(await listServiceTasks(lab.client(old), "work")).map((task) => `${task.id}/${task.containerId}`).sort();
    await lab.pause(old);
    let leader: string;
    try {
      leader = await leaderAmong(lab, rest, old);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      await addServiceLabel(lab.client(leader), "probe", "during-pause");
    } finally {
      await lab.resume(old);
    }
    await waitConverged(lab, "during-pause");
    assert.deepEqual(termsWithTwoLeaders(await leaderElections(lab)), []);
    // A write through the resumed manager reaches the new leader (it does not act as leader itself).
    await waitFor("a write through the resumed manager", async () => {
      await addServiceLabel(lab.client(old), "probe", "via-resumed");
      return true;
    }, { timeoutMs: 15_000, intervalMs: 200 });
    await assertWorkersRunOnlyAssigned(lab, workloadId, 2);
    stall = { before, after: runningTasks(await listServiceTasks(lab.client(await lab.leader()), "work")).map((task) => `${task.id}/${task.containerId}`).sort() };
  });

  test("across that stall the workers keep their tasks (same tasks, same containers)", () => {
    assert.ok(stall !== undefined, "runs after the SIGSTOP test");
    assert.deepEqual(stall.after, stall.before, "the workers' tasks were replaced while the leader was stopped");
  });

  test("one-way partition of the leader (its connections out are cut): the others elect one leader, it steps down, heal converges", async () => {
    const old = await lab.leader();
    const rest = managers(lab).filter((name) => name !== old);
    try {
      await lab.partition([[old], [...rest, "w1", "w2"]], { oneWay: true });
      const leader = await leaderAmong(lab, rest, old);
      await waitFor("the majority to serve a write", async () => {
        await addServiceLabel(lab.client(leader), "probe", "one-way");
        return true;
      }, { timeoutMs: 15_000, intervalMs: 100 }).catch(async (error: unknown) => {
        throw new Error(`elections: ${JSON.stringify(await leaderElections(lab))}`, { cause: error });
      });
    } finally {
      await lab.heal();
    }
    await waitConverged(lab, "one-way");
    assert.deepEqual(termsWithTwoLeaders(await leaderElections(lab)), []);
    await assertWorkersRunOnlyAssigned(lab, workloadId, 2);
  });

  test("a leader cut off from the managers but not from the workers: workers follow the new leader's assignments, none from the old", async () => {
    const old = await lab.leader();
    const rest = managers(lab).filter((name) => name !== old);
    try {
      // The workers are in no group: they still reach the old leader, which may keep their sessions until it steps down.
      await lab.partition([[old], rest]);
      const leader = await leaderAmong(lab, rest, old);
      await waitFor("a scale to 3 through the new leader", async () => {
        const service = await inspectService(lab.client(leader), "work");
        await lab.client(leader).json("POST", `/services/${service.id}/update`, { query: { version: service.version }, body: { ...service.spec, Mode: { Replicated: { Replicas: 3 } } } });
        return true;
      }, { timeoutMs: 15_000, intervalMs: 200 });
      await waitFor("three running work tasks under the new leader", async () => (runningTasks(await listServiceTasks(lab.client(leader), "work")).length === 3 ? true : undefined), { timeoutMs: 30_000, intervalMs: 200 });
      await assertWorkersRunOnlyAssigned(lab, workloadId, 3);
    } finally {
      await lab.heal();
    }
    assert.deepEqual(termsWithTwoLeaders(await leaderElections(lab)), []);
    await assertWorkersRunOnlyAssigned(lab, workloadId, 3);
  });
});

/**
 * The workers' engines run exactly the containers of the tasks the current leader has
 * running on them: no task an old leader assigned survives, and no replica is doubled.
 */
async function assertWorkersRunOnlyAssigned(lab: Lab, serviceId: string, replicas: number): Promise<void> {
  let last = "";
  await waitFor("workers to run exactly the leader's tasks", async () => {
    const ids = await nodeIdsByHost(lab);
    const tasks = runningTasks(await listServiceTasks(lab.client(await lab.leader()), serviceId));
    const expected = new Map<string, string[]>();
    for (const worker of ["w1", "w2"]) expected.set(worker, tasks.filter((task) => task.nodeId === ids.get(worker)).map((task) => task.containerId).sort());
    const actual = new Map<string, string[]>();
    for (const worker of ["w1", "w2"]) actual.set(worker, (await hostServiceContainers(lab, worker, serviceId)).sort());
    last = `leader's tasks ${JSON.stringify([...expected])}, engines ${JSON.stringify([...actual])}`;
    return tasks.length === replicas && JSON.stringify([...expected]) === JSON.stringify([...actual]) ? true : undefined;
  }, { timeoutMs: 20_000, intervalMs: 250 }).catch((error: unknown) => {
    throw new Error(last, { cause: error });
  });
}
