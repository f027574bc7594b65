import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createSleepService, hostServiceContainers, type Lab, listServiceTasks, nodeIdsByHost, runningTasks } from "../../src/lab/index.js";
import { waitFor } from "../helpers/wait.js";
import { labSkipReason, startTestLab, type TestLab } from "./support.js";

/**
 * The dispatcher marks a node down after 3 heartbeat periods (1 s, plus up to 25 % jitter)
 * without a heartbeat: 3.75 s at most, plus 750 ms for the commit and this test's polling.
 */
const detectionMsMax = 4_500;
/** The bound from "node down" to its tasks running elsewhere. */
const rescheduleMsMax = 2_000;
const replicas = 3;
const workers = ["w1", "w2", "w3"];

describe("worker failure", { skip: labSkipReason }, () => {
  let testLab: TestLab;
  let lab: Lab;
  let serviceId: string;

  before(async () => {
    testLab = await startTestLab("f-worker", { managers: 1, workers: 3 });
    lab = testLab.lab;
    serviceId = await createSleepService(lab.client("m1"), "spread", { replicas, constraints: ["node.role==worker"] });
    await waitFor("one running task per worker", async () => {
      const running = runningTasks(await listServiceTasks(lab.client("m1"), "spread"));
      return running.length === replicas && new Set(running.map((task) => task.nodeId)).size === replicas ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  });

  after(async () => {
    await testLab?.close();
  });

  let deadId = "";
  let downAt = 0;

  test("kill -9 of a worker: marked down within the detection window", async () => {
    deadId = (await nodeIdsByHost(lab)).get("w1") ?? "";
    const killedAt = Date.now();
    await lab.kill("w1");
    await waitFor("w1 marked down", async () => ((await lab.nodes()).find((node) => node.id === deadId)?.state === "down" ? true : undefined), { timeoutMs: 20_000, intervalMs: 20 });
    downAt = Date.now();
    assert.ok(downAt - killedAt <= detectionMsMax, `w1 marked down ${downAt - killedAt} ms after kill -9 (window ${detectionMsMax} ms)`);
  });

  test("the dead worker's task runs on another worker within 2 s of detection", async () => {
    assert.ok(downAt > 0, "runs after the kill test");
    await waitFor("the lost task running on another worker", async () => {
      const running = runningTasks(await listServiceTasks(lab.client("m1"), "spread"));
      return running.length === replicas && running.every((task) => task.nodeId !== deadId) ? true : undefined;
    }, { timeoutMs: 20_000, intervalMs: 20 });
    const runningAt = Date.now();
    assert.ok(runningAt - downAt <= rescheduleMsMax, `the lost task ran ${runningAt - downAt} ms after w1 was marked down`);
  });

  test("the worker comes back: it rejoins and its stale task is removed (no replica above the count)", async () => {
    await lab.start("w1");
    const ids = await nodeIdsByHost(lab);
    await waitFor("w1 ready again", async () => ((await lab.nodes()).find((node) => node.id === ids.get("w1"))?.state === "ready" ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });
    let last = "";
    await waitFor("exactly the service's replicas running across the workers' engines", async () => {
      const running = runningTasks(await listServiceTasks(lab.client("m1"), "spread"));
      const containers = (await Promise.all(workers.map(async (host) => await hostServiceContainers(lab, host, serviceId)))).flat();
      last = `${running.length} running tasks, ${containers.length} running containers`;
      return running.length === replicas && containers.length === replicas && containers.every((id) => running.some((task) => task.containerId === id)) ? true : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 }).catch((error: unknown) => {
      throw new Error(last, { cause: error });
    });
  });
});
